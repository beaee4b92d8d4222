"""Starting the studio: a missing X11 library is named; the package to install is derived right."""

from __future__ import annotations

from lla_studio.gui.app import debian_package, missing_libraries, xcb_problem

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f73)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f73)
"""


def test_ldd_output_names_the_missing_libraries_and_their_packages():
    missing = missing_libraries(LDD)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxkbcommon-x11.so.0"]
    assert [debian_package(m) for m in missing] == ["libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"]


def test_the_check_reports_what_ldd_says(monkeypatch):
    import subprocess

    monkeypatch.setenv("DISPLAY", ":9")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=LDD, stderr=""))
    problem = xcb_problem()
    assert problem == (
        "Qt's X11 plugin cannot load: missing libxcb-icccm.so.4, libxcb-keysyms.so.1, libxkbcommon-x11.so.0 "
        "(on Debian/Ubuntu: sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0)"
    )


def test_no_check_offscreen_and_the_real_ldd_is_read(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert xcb_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":9")
    problem = xcb_problem()  # the real plugin through the real ldd: installed or not, no crash
    assert problem is None or problem.startswith("Qt's X11 plugin cannot load: missing lib")


def test_run_app_prints_the_problem_and_exits_2(monkeypatch, capsys):
    import lla_studio.gui.app as app

    monkeypatch.setattr(app, "xcb_problem", lambda: "Qt's X11 plugin cannot load: missing libxcb-icccm.so.4")
    assert app.run_app(None) == 2
    assert capsys.readouterr().err == "lla-studio: error: Qt's X11 plugin cannot load: missing libxcb-icccm.so.4\n"
