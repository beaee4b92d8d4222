"""Bad input and interrupted runs: one line ``lla-studio: error: ...`` (exit 2) or ``lla-studio:
interrupted; ...`` (exit 130), never a traceback, and the files of a run always hold every finished trial.

Most cases call :func:`lla_studio.cli.main` in-process (no torch import per case); the Ctrl-C case
is a real process sent a real SIGINT.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lla_studio.cli import main
from lla_studio.core.session import load_session, write_text_atomic

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "resources" / "sessions"
V1 = ROOT / "tests" / "data" / "sessions" / "v1.json"


def _session(tmp_path: Path, objective: str, budget: int = 3, timeout_s: float | None = None) -> Path:
    """A Branin-space session whose objective is ``obj.py:f`` with the given source (no GP fit:
    the whole budget is the initial design)."""
    (tmp_path / "obj.py").write_text(objective)
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["objective"] = {"type": "python", "target": "obj.py:f", "direction": "minimize"}
    if timeout_s is not None:
        doc["objective"]["timeout_s"] = timeout_s
    doc["loop"] = {"budget": budget, "initial_design": budget, "batch_size": 1, "seed": 0}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- --out
def test_out_that_is_a_file_or_cannot_be_created_is_one_line(tmp_path, capsys):
    session = _session(tmp_path, "def f(c):\n    return 1.0\n")
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    under_file = afile / "sub"
    for command in (["run", str(session), "--quiet"], ["posterior", "banana", "--grid", "16"]):
        assert main([*command, "--out", str(afile)]) == 2
        assert _one_error_line(capsys) == f"lla-studio: error: --out {str(afile)!r}: exists and is not a folder"
        assert main([*command, "--out", str(under_file)]) == 2
        assert _one_error_line(capsys) == (
            f"lla-studio: error: --out {str(under_file)!r}: cannot create the folder: Not a directory"
        )
    assert afile.read_text() == "keep me"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys, read-only even for root")
def test_out_that_is_not_writable_is_one_line(tmp_path, capsys):
    session = _session(tmp_path, "def f(c):\n    return 1.0\n")
    for command in (["run", str(session), "--quiet"], ["posterior", "banana", "--grid", "16"]):
        assert main([*command, "--out", "/sys/lla-studio-test-out"]) == 2
        line = _one_error_line(capsys)
        assert line.startswith("lla-studio: error: --out '/sys/lla-studio-test-out': cannot create the folder: "), line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write into any folder")
def test_out_folder_without_write_permission_is_one_line(tmp_path, capsys):
    session = _session(tmp_path, "def f(c):\n    return 1.0\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["run", str(session), "--quiet", "--out", str(locked)]) == 2
        assert _one_error_line(capsys) == f"lla-studio: error: --out {str(locked)!r}: the folder is not writable"
    finally:
        locked.chmod(0o700)


def test_an_output_file_that_cannot_be_written_is_one_line(tmp_path, capsys):
    session = _session(tmp_path, "def f(c):\n    return 1.0\n")
    out = tmp_path / "out"
    (out / "trials.csv").mkdir(parents=True)  # a folder where the run writes a file
    assert main(["run", str(session), "--out", str(out), "--quiet"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("lla-studio: error: Is a directory: ") and line.endswith(f" -> {str(out / 'trials.csv')!r}"), line
    assert not list(out.glob(".*.tmp"))


def test_posterior_refuses_an_unknown_model_before_creating_the_folder(tmp_path, capsys):
    out = tmp_path / "new" / "folder"
    assert main(["posterior", "rosenbrock", "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("lla-studio: error: unknown posterior model 'rosenbrock'; valid names: bioassay"), line
    assert main(["posterior", "banana", "--grid", "3", "--out", str(out)]) == 2
    assert _one_error_line(capsys) == "lla-studio: error: grid 3 x 3 is too coarse: need at least 16 points per axis"
    assert main(["posterior", "banana", "--starts", "0", "--out", str(out)]) == 2
    assert _one_error_line(capsys) == "lla-studio: error: --starts must be >= 1, got 0"
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------------- cv
def test_cv_with_a_deeply_nested_kernel_is_one_line(capsys):
    deep = "(" * 3000 + "rbf(x1)" + ")" * 3000
    assert main(["cv", str(V1), "--kernel", "rbf(x1)", "--kernel", deep]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("lla-studio: error: --kernel #2: "), line
    assert len(line) < 500  # names the problem, does not echo the input


# --------------------------------------------------------------------------- objectives in a run
def test_objective_that_exits_or_overflows_fails_its_trial_and_the_run_goes_on(tmp_path, capsys):
    session = _session(
        tmp_path,
        "import sys\n"
        "CALLS = []\n"
        "def f(c):\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) == 1:\n"
        "        sys.exit(3)\n"
        "    if len(CALLS) == 2:\n"
        "        return 10 ** 400\n"
        "    return 1.5\n",
    )
    out = tmp_path / "out"
    assert main(["run", str(session), "--out", str(out), "--quiet"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    trials = load_session(out / "session.json").trials
    assert [(t.status, t.message, t.value) for t in trials] == [
        ("failed", "objective called sys.exit(3)", None),
        ("failed", "objective returned an int too large for a float (401 digits)", None),
        ("completed", None, 1.5),
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_completed"], summary["n_failed"]) == (1, 2)


def test_keyboard_interrupt_in_the_objective_stops_the_run_and_keeps_it(tmp_path, capsys):
    session = _session(
        tmp_path,
        "import pathlib\n"
        "CALLS = []\n"
        "def f(c):\n"
        "    CALLS.append(1)\n"
        "    once = pathlib.Path(__file__).with_name('interrupted')\n"
        "    if len(CALLS) == 2 and not once.exists():\n"
        "        once.touch()\n"
        "        raise KeyboardInterrupt\n"
        "    return 2.0\n",
    )
    out = tmp_path  # beside obj.py, so that out/session.json finds it when continued
    assert main(["run", str(session), "--out", str(out), "--quiet"]) == 130
    assert _one_error_line(capsys) == f"lla-studio: interrupted; 1 completed trial saved in {out / 'session.json'}"
    trials = load_session(out / "session.json").trials
    assert [t.status for t in trials] == ["completed", "proposed"]  # the interrupted one runs on continue
    assert main(["run", str(out / "session.json"), "--out", str(out), "--quiet"]) == 0
    assert [t.status for t in load_session(out / "session.json").trials] == ["completed"] * 3


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("where", ["in-process", "child"])
def test_sigint_during_a_run_prints_one_line_and_every_file_holds_the_finished_trials(tmp_path, where):
    """The second evaluation blocks (after writing its PID to ``waiting``); by then trials.csv,
    summary.json and session.json already hold the first trial, which is what a ``kill -9`` would
    leave. Then Ctrl-C: to the run's process (in-process objective), or, as a terminal does, to the
    whole process group (an objective with a timeout, blocked in its child process)."""
    session = _session(
        tmp_path,
        "import os, pathlib, time\n"
        "def f(c):\n"
        "    here = pathlib.Path(__file__).parent\n"
        "    if not (here / 'first').exists():\n"
        "        (here / 'first').touch()\n"
        "        return 0.25\n"
        "    (here / 'pid').write_text(str(os.getpid()))\n"
        "    os.replace(here / 'pid', here / 'waiting')\n"
        "    time.sleep(600)  # a hang guard: the test interrupts long before\n"
        "    return 0.0\n",
        timeout_s=None if where == "in-process" else 900,
    )
    out = tmp_path / "out"
    waiting = tmp_path / "waiting"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lla_studio", "run", str(session), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=(where == "child"),
        # A test run started in the background by a non-interactive shell (as CI may be) inherits
        # SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler: the run would
        # never see the Ctrl-C (a clean-clone run hung here). A terminal's Ctrl-C reaches a
        # foreground run with the default disposition; give the run that.
        preexec_fn=_default_sigint,
    )
    objective_pid = None
    try:
        guard = time.monotonic() + 300  # hang guard only
        while not waiting.exists() and proc.poll() is None and time.monotonic() < guard:
            time.sleep(0.05)
        assert waiting.exists(), proc.communicate(timeout=60)
        objective_pid = int(waiting.read_text())
        assert (objective_pid == proc.pid) == (where == "in-process")
        rows = list(csv.reader(io.StringIO((out / "trials.csv").read_text())))
        assert rows == [["trial", "status", "x1", "x2", "value"], rows[1]] and rows[1][1:2] == ["completed"]
        assert float(rows[1][4]) == 0.25
        summary = json.loads((out / "summary.json").read_text())
        assert (summary["n_completed"], summary["best_value"]) == (1, 0.25)
        if where == "child":
            os.killpg(proc.pid, signal.SIGINT)  # the group this test created: the run and its child
        else:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        if where == "child":  # the run stopped its objective process before exiting
            while _alive(objective_pid) and time.monotonic() < guard:
                time.sleep(0.05)
            assert not _alive(objective_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reaps it and closes the pipes
        if where == "child" and objective_pid is not None and _alive(objective_pid):
            os.kill(objective_pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines() == [f"lla-studio: interrupted; 1 completed trial saved in {out / 'session.json'}"]
    trials = load_session(out / "session.json").trials
    assert [(t.status, t.value) for t in trials] == [("completed", 0.25), ("proposed", None)]
    rows = list(csv.reader(io.StringIO((out / "trials.csv").read_text())))
    assert [r[1] for r in rows[1:]] == ["completed", "proposed"]
    assert not list(out.glob(".*.tmp"))


# --------------------------------------------------------------------------- atomic writes
def test_write_text_atomic_keeps_the_umask_and_an_existing_mode(tmp_path):
    old = os.umask(0o027)
    try:
        new = write_text_atomic(tmp_path / "new.json", "{}\n")
        assert stat.S_IMODE(new.stat().st_mode) == 0o640
        os.umask(0o002)
        assert stat.S_IMODE(write_text_atomic(tmp_path / "shared.json", "{}\n").stat().st_mode) == 0o664
        os.umask(0o077)
        existing = tmp_path / "existing.json"
        existing.write_text("old")
        existing.chmod(0o664)
        write_text_atomic(existing, "new")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o664 and existing.read_text() == "new"
        existing.chmod(0o600)
        write_text_atomic(existing, "newer")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_write_text_atomic_removes_stale_temporaries_of_its_target(tmp_path):
    """A kill during a save leaves ``.NAME.XXXX.tmp``; the next save of NAME removes the ones last
    written before this process started (a live writer's temporary is newer, so it is kept)."""
    target = tmp_path / "session.json"
    stale = tmp_path / ".session.json.k1ll3d.tmp"
    fresh = tmp_path / ".session.json.inflight.tmp"
    other = tmp_path / ".trials.csv.k1ll3d.tmp"
    unrelated = tmp_path / ".session.json.bak"
    for p in (stale, fresh, other, unrelated):
        p.write_text("partial")
    day_ago = time.time() - 86400
    for p in (stale, other, unrelated):
        os.utime(p, (day_ago, day_ago))
    write_text_atomic(target, "{}\n")
    assert target.read_text() == "{}\n"
    assert not stale.exists()
    assert fresh.exists() and other.exists() and unrelated.exists()
