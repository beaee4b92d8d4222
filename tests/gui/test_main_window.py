"""Drive the real window offscreen through the real engine threads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from lla_studio.core.session import load_session, session_to_dict
from lla_studio.gui.main_window import MainWindow, default_session_path


def _type(line_edit, text: str) -> None:
    """Type ``text`` and press Enter (a typed value is announced on Enter or after a pause)."""
    line_edit.setText(text)
    line_edit.editingFinished.emit()


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(recovery_path=tmp_path / "recovery.json", settings=settings)
    w.ask_discard = lambda: True  # no modal dialog at teardown
    qtbot.addWidget(w)
    yield w
    w.shutdown()


def test_run_until_eight_trials_then_views_hold_data(window, qtbot, tmp_path):
    window.run()
    qtbot.waitUntil(lambda: window.latest is not None and window.latest.n_evaluated >= 10, timeout=120_000)
    window.pause()
    qtbot.waitUntil(lambda: window.latest.status in ("paused", "finished"), timeout=5_000)
    # the views are redrawn from a queue, one per ~33 ms tick: let the newest snapshot reach them
    qtbot.waitUntil(lambda: window.pending_redraws() == 0, timeout=5_000)
    snap = window.latest
    done = [t for t in snap.trials if t["status"] == "completed"]
    assert len(done) >= 8
    # convergence: one point per evaluated trial, best-so-far non-increasing
    xs, ys = window.convergence.values.getData()
    assert len(xs) == snap.n_evaluated
    best = window.convergence.best_curve
    assert np.all(np.diff(best) <= 0)
    # the trials table mirrors the study
    assert window.trials.rowCount() == len(snap.trials)
    # surrogate views after the first fit: 1-D slice and 2-D maps of the right shapes
    qtbot.waitUntil(lambda: window.slice_view.snapshot is not None and window.maps.snapshot is not None, timeout=60_000)
    s = window.slice_view.snapshot
    assert s.mean.shape == (120,) and s.sd.shape == (120,) and np.all(s.sd >= 0)
    m = window.maps.snapshot
    assert m.mean.shape == (60, 60) and m.acquisition.shape == (60, 60)
    img = window.maps.images["mean"].image
    assert img.shape == (60, 60) and np.isfinite(img).all()
    assert len(window.hyper.curves) >= 2
    assert window.loo.data is not None and len(window.loo.data.observed) >= 8
    # autosave after completed trials
    assert load_session(tmp_path / "recovery.json").trials


def test_pause_stops_the_run(window, qtbot):
    """Pause stops the run (a fit in progress is cancelled): no further trial after it.
    (How fast is a speed goal, not a test: a loaded 2-core machine stretched a 1 s bound here.)"""
    window.run()
    qtbot.waitUntil(lambda: window.latest is not None and window.latest.n_evaluated >= 9, timeout=120_000)
    window.pause()
    qtbot.waitUntil(lambda: window.latest.status == "paused", timeout=30_000)
    n, fits = len(window.latest.trials), len(window.latest.hyperparameters)
    qtbot.wait(800)
    assert len(window.latest.trials) == n and len(window.latest.hyperparameters) == fits


def test_typed_value_reaches_the_study(qtbot, tmp_path):
    doc = json.loads(default_session_path().read_text())
    doc["objective"] = {"type": "manual", "direction": "minimize"}
    path = tmp_path / "manual.json"
    path.write_text(json.dumps(doc))
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(path, settings=settings)
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    try:
        w.step()
        qtbot.waitUntil(lambda: w.latest is not None and any(t["status"] == "proposed" for t in w.latest.trials), timeout=30_000)
        qtbot.waitUntil(lambda: w.trials.rowCount() == 1, timeout=5_000)
        assert not w.trials.type_value(0, "4,25")  # refused: it stays in the cell, in red, with the reason
        assert w.trials.text(0, "value") == "4,25" and "'4,25' is not a finite number" in w.errors[-1]
        assert w.trials.type_value(0, "4.25")
        qtbot.waitUntil(lambda: w.latest.trials[0]["status"] == "completed", timeout=10_000)
        assert w.latest.trials[0]["value"] == 4.25
        # save, reopen and get an identical session
        out = tmp_path / "saved.json"
        assert w.save_to(out)
        again = load_session(out)
        assert session_to_dict(again) == session_to_dict(w.current_session())
        w2 = MainWindow(out, settings=settings)
        w2.ask_discard = lambda: True
        qtbot.addWidget(w2)
        try:
            qtbot.waitUntil(lambda: w2.latest is not None, timeout=10_000)
            assert session_to_dict(w2.current_session()) == session_to_dict(again)
        finally:
            w2.shutdown()
    finally:
        w.shutdown()


def test_malformed_session_is_refused_and_current_kept(window, tmp_path):
    bad = tmp_path / "bad.json"
    doc = json.loads(default_session_path().read_text())
    doc["version"] = 99
    bad.write_text(json.dumps(doc))
    before = window.session
    assert not window.open_session(bad)
    assert window.session is before
    assert "newer" in window.errors[-1]


def test_product_kernel_built_in_the_editor_reaches_the_session(window, qtbot):
    ed = window.kernel_editor
    assert window.kernel_text().startswith("matern52(x1, x2")
    for key in list(ed.node_keys()):
        ed.delete_node(key)
    prod = ed.add_node("product")
    a = ed.add_node("matern52")
    b = ed.add_node("rbf")
    ed.set_leaf_features(a, ["x1"])
    ed.set_leaf_features(b, ["x2"])
    with qtbot.waitSignal(ed.graph_changed, timeout=5_000):
        ed.connect_nodes(a, prod)
        ed.connect_nodes(b, prod)
    qtbot.waitUntil(lambda: window.kernel_text() == "matern52(x1) * rbf(x2)", timeout=5_000)
    assert window.dirty
    # the engine now fits that kernel: run a step past the initial design and read the hyperparameters
    window.run()
    qtbot.waitUntil(lambda: window.latest is not None and len(window.latest.hyperparameters) >= 1, timeout=120_000)
    window.pause()
    names = set(window.latest.hyperparameters[-1][1])
    assert any("kernels.0" in n for n in names) and any("kernels.1" in n for n in names)


def test_trials_csv_export_import_and_plot_export(window, qtbot, tmp_path):
    window.run()
    qtbot.waitUntil(lambda: window.latest is not None and window.latest.n_evaluated >= 9, timeout=120_000)
    window.pause()
    qtbot.waitUntil(lambda: window.latest.status in ("paused", "finished"), timeout=5_000)
    csv_path = tmp_path / "trials.csv"
    assert window.export_trials(csv_path)
    n_before = window.latest.n_evaluated
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "trial,status,x1,x2,value" and len(lines) >= n_before + 1
    # importing the same measurements again adds them as manual, completed trials
    assert window.import_trials(csv_path) == len(lines) - 1 - sum(1 for l in lines[1:] if ",failed," in l)
    qtbot.waitUntil(lambda: window.latest.n_evaluated >= 2 * n_before, timeout=10_000)
    assert sum(t["source"] == "manual" for t in window.latest.trials) >= n_before
    bad = tmp_path / "bad.csv"
    bad.write_text("x1,x2,value\n1,abc,3\n")
    assert window.import_trials(bad) == 0 and "row 2, column 'x2'" in window.errors[-1]
    written = window.export_plots(tmp_path / "plots")
    assert all(p.exists() and p.stat().st_size > 0 for p in written)
    assert str(csv_path.parent) not in "".join(window._recent())  # only sessions are remembered


def test_slice_follows_sliders(window, qtbot):
    window.run()
    qtbot.waitUntil(lambda: window.slice_view.snapshot is not None, timeout=120_000)
    window.pause()
    qtbot.waitUntil(lambda: window.latest.status in ("paused", "finished"), timeout=5_000)
    window.slice_view.combo.setCurrentText("x1")
    fixed = window.slice_view.fixed
    fixed.follow.setChecked(False)
    fixed.sliders["x2"].setValue(1000)  # x2 at its upper bound (15)
    qtbot.waitUntil(lambda: window.slice_view.snapshot.incumbent_u[1] == 1.0, timeout=20_000)
    at_top = window.slice_view.snapshot.mean.copy()
    fixed.sliders["x2"].setValue(0)
    qtbot.waitUntil(lambda: window.slice_view.snapshot.incumbent_u[1] == 0.0, timeout=20_000)
    assert not np.allclose(at_top, window.slice_view.snapshot.mean)


def test_search_space_editor_validates_inline_and_flags_kernel_leaves(window, qtbot):
    ed = window.space_editor
    assert ed.table.rowCount() == 2 and ed.valid and window.run_action.isEnabled()
    ed.set_cell(0, "low", "20")
    assert not ed.valid and "needs low < high" in ed.error and 0 in ed.row_errors
    assert "parameter 'x1'" in ed.table.item(0, 0).toolTip()
    assert not window.run_action.isEnabled()
    ed.set_cell(0, "low", "-5")
    assert ed.valid and window.run_action.isEnabled()
    # a new parameter reaches the session (and its default kernel)
    ed.add_row()
    qtbot.waitUntil(lambda: len(window.session.search_space) == 3, timeout=5_000)
    assert window.session.search_space.names == ("x1", "x2", "p1")
    assert [ed.features.item(i).text() for i in range(ed.features.count())] == ["x1", "x2", "p1"]
    # with a kernel over x2, deleting x2 flags the leaf instead of dropping it, and the session keeps x2
    ed2 = window.kernel_editor
    assert ed2.set_text("matern52(x1) + rbf(x2)")
    qtbot.waitUntil(lambda: window.kernel_text() == "matern52(x1) + rbf(x2)", timeout=5_000)
    ed.remove_row(1)
    assert any("x2" in msg for msg in ed2.errors().values())
    assert "x2" in window.session.search_space.names
    assert not window.run_action.isEnabled()
    # conditions are typed as text
    ed.add_row()
    ed.set_cell(ed.table.rowCount() - 1, "condition", "ghost == 1")
    assert "unknown parameter 'ghost'" in ed.error


def test_recovery_file_is_offered_and_removed_on_clean_close(qtbot, tmp_path):
    from lla_studio.gui.app import recovered_session

    recovery = tmp_path / "recovery.json"
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(recovery_path=recovery, settings=settings)
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    w.run()
    qtbot.waitUntil(lambda: recovery.is_file(), timeout=60_000)
    w.pause()
    qtbot.waitUntil(lambda: w.latest.status in ("paused", "finished"), timeout=5_000)
    # "crash": the window is gone without a clean close; the next start offers the autosave
    w.shutdown()
    saved = load_session(recovery)
    assert recovered_session(recovery, ask=lambda: True) == recovery
    w2 = MainWindow(recovery, recovery_path=tmp_path / "r2.json", settings=settings)
    w2.ask_discard = lambda: True
    qtbot.addWidget(w2)
    qtbot.waitUntil(lambda: w2.latest is not None, timeout=10_000)
    assert w2.current_session().trials == saved.trials
    assert w2.close()
    assert not (tmp_path / "r2.json").exists()
    assert recovered_session(recovery, ask=lambda: False) is None and not recovery.exists()


def test_switching_to_the_lla_surrogate(window, qtbot):
    window.surrogate_combo.setCurrentText("lla")
    assert window.session.surrogate.type == "lla"
    window.run()
    qtbot.waitUntil(lambda: window.latest is not None and len(window.latest.hyperparameters) >= 1, timeout=120_000)
    window.pause()
    assert set(window.latest.hyperparameters[-1][1]) == {"prior_precision", "noise_std"}
    qtbot.waitUntil(lambda: window.slice_view.snapshot is not None, timeout=60_000)
    assert np.all(np.isfinite(window.slice_view.snapshot.mean))


def test_surrogate_panel_edits_the_network_and_gates_run(window, qtbot):
    editor = window.surrogate_editor
    window.surrogate_combo.setCurrentText("lla")
    assert editor.type_combo.currentData() == "lla"
    _type(editor.widths, "0, 50")  # zero width: refused inline, Run disabled, session untouched
    assert not editor.valid and not window.run_action.isEnabled()
    assert "width" in editor.widths.toolTip()
    assert window.session.surrogate.options["network"]["widths"] == (50, 50)
    _type(editor.widths, "32, 32, 32")
    editor.mlp_activation.setCurrentIndex(editor.mlp_activation.findData("relu"))
    assert editor.valid and window.run_action.isEnabled()
    net = window.session.surrogate.options["network"]
    assert (tuple(net["widths"]), net["activation"]) == ((32, 32, 32), "relu")
    assert window.dirty
    editor.widths.setText("32, 32")  # typed without Enter, then Run at once: the run uses it
    assert window.session.surrogate.options["network"]["widths"] == (32, 32, 32)
    window.run()  # the edited network is the one fitted: one fit, then look at its timeline entry
    qtbot.waitUntil(lambda: window.latest is not None and len(window.latest.hyperparameters) >= 1, timeout=120_000)
    window.pause()
    assert window.current_session().surrogate.options["network"]["activation"] == "relu"
    assert tuple(window.current_session().surrogate.options["network"]["widths"]) == (32, 32)


def test_search_space_edits_undo_and_redo(window, qtbot):
    editor = window.space_editor
    assert not editor.undo_stack.canUndo()
    editor.set_cell(0, "high", "20")
    qtbot.waitUntil(lambda: window.session.search_space["x1"].high == 20.0, timeout=5_000)
    editor.remove_row(1)
    qtbot.waitUntil(lambda: len(window.session.search_space) == 1, timeout=5_000)
    editor.undo_stack.undo()  # the row comes back, with its cells
    qtbot.waitUntil(lambda: len(window.session.search_space) == 2, timeout=5_000)
    assert window.session.search_space["x2"].high == 15.0 and editor.cell(1, "name") == "x2"
    editor.undo_stack.undo()
    qtbot.waitUntil(lambda: window.session.search_space["x1"].high == 10.0, timeout=5_000)
    assert not editor.undo_stack.canUndo()
    editor.undo_stack.redo()
    qtbot.waitUntil(lambda: window.session.search_space["x1"].high == 20.0, timeout=5_000)
    editor.set_cell(0, "low", "abc")  # an invalid edit is undoable too, and undo makes the space valid again
    assert not editor.valid and not window.run_action.isEnabled()
    editor.undo_stack.undo()
    assert editor.valid and window.run_action.isEnabled() and editor.cell(0, "low") == "-5.0"


def test_relu_lab_tab_is_built_when_shown(window, qtbot):
    assert window.relu_lab is None  # nothing computes until the user opens it
    window.show()
    window.docks["ReLU lab"].raise_()
    qtbot.waitUntil(lambda: window.relu_lab is not None, timeout=5_000)
    assert window.docks["ReLU lab"].widget() is window.relu_lab
    with qtbot.waitSignal(window.relu_lab.resultShown, timeout=120_000):
        pass
    result = window.relu_lab.result
    assert set(result.models) == {"relu", "tanh", "gp"}


def test_long_lived_objects_are_frozen_out_of_the_collector_while_the_window_lives(window, qtbot):
    import gc

    window.show()
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 50_000, timeout=5_000)  # Qt, pyqtgraph, numpy, the window
    window.shutdown()
    assert gc.get_freeze_count() == 0  # a closed window can be collected again


def _session_with_trials(n: int = 5):
    from lla_studio.core.objectives import get_benchmark
    from lla_studio.core.study import Trial

    session = load_session(default_session_path())
    bench = get_benchmark("branin")
    configs = session.search_space.sample(n, seed=4)
    trials = tuple(Trial(id=i, config=c, value=float(bench(c)), status="completed") for i, c in enumerate(configs))
    return session.with_trials(trials)


def test_a_recovered_session_is_unsaved_and_never_written_into_the_autosave(qtbot, tmp_path):
    """Reproduced before: kill -9, recover, Save (it wrote into the recovery file), close (it deleted
    that file): the trials were gone. Now the recovered session has no path, Save asks for one, the
    autosave file is refused as a target and never listed in Open Recent."""
    from lla_studio.core.session import save_session

    recovery = tmp_path / "recovery.json"
    save_session(_session_with_trials(5), recovery)  # what the study process autosaved before the kill
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(recovery, recovery_path=recovery, settings=settings)  # as run_app opens it
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    assert w.session_path is None and w.dirty
    assert len(w.current_session().trials) == 5
    assert str(recovery.resolve()) not in w._recent()
    assert not w.save_to(recovery) and "autosave file" in w.errors[-1]
    asked = []
    w._save_as_dialog = lambda: asked.append(1) or w.save_to(tmp_path / "mine.json")
    assert w.save() and asked  # no path: Save asks where
    assert w.close()
    assert len(load_session(tmp_path / "mine.json").trials) == 5  # the user's file has them
    assert str((tmp_path / "mine.json").resolve()) in w._recent()
    assert str(recovery.resolve()) not in w._recent()


def test_the_toolbar_budget_is_saved_with_the_session(window, tmp_path):
    budget = window.session.loop.budget
    window.budget.setValue(budget + 7)
    assert window.dirty and window.session.loop.budget == budget + 7  # the document's loop section
    assert window.save_to(tmp_path / "b.json")
    assert load_session(tmp_path / "b.json").loop.budget == budget + 7
    # the spin box cannot go below the initial design (the session would refuse it)
    window.budget.setValue(1)
    assert window.budget.value() == window.session.loop.initial_design


def test_a_reader_failure_of_any_kind_keeps_the_current_session(window, tmp_path, monkeypatch):
    import lla_studio.gui.main_window as main_window

    before = window.session

    def broken(path):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(main_window, "load_session", broken)
    assert not window.open_session(tmp_path / "deep.json")
    assert window.session is before
    assert window.errors[-1] == f"cannot open {tmp_path / 'deep.json'}: RecursionError: maximum recursion depth exceeded"


def test_a_bad_file_at_launch_shows_the_message_and_opens_the_default(qtbot, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "lla-studio-session", "version": 1, "search_space": [' + "[" * 5 + "]")
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(bad, settings=settings)
    qtbot.addWidget(w)
    try:
        assert w.errors and w.errors[0].startswith(f"cannot open {bad}: ")
        assert w.session is not None and w.session_path == default_session_path()
        assert w.statusBar().currentMessage() == w.errors[-1].splitlines()[0]
    finally:
        w.shutdown()


def test_metrics_are_trials_table_columns_and_survive_the_studio(qtbot, tmp_path):
    """A trial's extra metrics show as columns beside the value (both frozen on the left), the value
    stays the editable column, and the session the window saves still has them (the engine's trial
    dicts carry them)."""
    from dataclasses import replace

    from lla_studio.core.session import save_session
    from lla_studio.core.specs import Trial

    session = _session_with_trials(3)
    trials = tuple(replace(t, metrics={"test_error": 0.1 * (i + 1), "seconds_train": 2.0}) for i, t in enumerate(session.trials))
    pending = Trial(id=3, config=dict(trials[0].config), status="proposed", source="manual")
    path = tmp_path / "m.json"
    save_session(session.with_trials(trials + (pending,)), path)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(path, settings=settings)
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    try:
        qtbot.waitUntil(lambda: w.trials.rowCount() == 4, timeout=10_000)
        headers = w.trials.headers
        assert headers[:3] == ["value", "test_error", "seconds_train"]  # the frozen columns
        assert w.trials.model_.frozen_columns == 3 and headers[w.trials.value_column] == "value"
        assert w.trials.text(1, "test_error") == _cell_text(0.2)
        assert w.save_to(tmp_path / "again.json")
        assert [dict(t.metrics) for t in load_session(tmp_path / "again.json").trials][:3] == [dict(t.metrics) for t in trials]
    finally:
        w.shutdown()


def _cell_text(value):
    from lla_studio.gui.main_window import _cell

    return _cell(value)


def test_a_seed_change_keeps_the_undo_history_and_an_unfinished_kernel_canvas(window, qtbot):
    """The seed is the loop section's: the editors are not reloaded. One stack holds the canvas
    edit, the table edit and the seed edit, and undoes them in that order backwards."""
    kernel, space = window.kernel_editor, window.space_editor
    graph = kernel.graph()
    loose = kernel.add_node("sum")  # an operator with no inputs: the canvas is unfinished
    assert "unconnected" in kernel.status() or "Incomplete" in kernel.status()
    space.set_cell(0, "high", "20")
    qtbot.waitUntil(lambda: window.session.search_space["x1"].high == 20.0, timeout=5_000)
    count = window.undo_stack.count()
    assert count == 2
    window.seed.setValue(7)
    assert window.session.loop.seed == 7 and window.engine.session.loop.seed == 7
    assert window.undo_stack.count() == count + 1 and window.undo_stack.undoText() == "Seed 7"
    assert loose in kernel.node_keys() and "Incomplete" in kernel.status()  # the canvas is as it was
    assert space.cell(0, "high") == "20" and window.session.search_space["x1"].high == 20.0
    window.undo_stack.undo()  # the seed
    assert window.session.loop.seed == 0 and window.seed.value() == 0
    assert loose in kernel.node_keys() and space.cell(0, "high") == "20"
    window.undo_stack.undo()  # the table edit
    qtbot.waitUntil(lambda: window.session.search_space["x1"].high == 10.0, timeout=5_000)
    window.undo_stack.undo()  # the canvas edit
    assert loose not in kernel.node_keys() and kernel.graph() == graph
    window.undo_stack.redo()
    assert loose in kernel.node_keys()


def test_one_add_is_one_undo(window, qtbot):
    stack, space, kernel = window.undo_stack, window.space_editor, window.kernel_editor
    rows = space.table.rowCount()
    space.add_row()
    assert stack.count() == 1 and space.table.rowCount() == rows + 1
    stack.undo()
    assert space.table.rowCount() == rows and not stack.canUndo()
    nodes = len(kernel.node_keys())
    kernel.add_node("rbf", features=["x1"])
    assert stack.count() == 1 and len(kernel.node_keys()) == nodes + 1  # the undone table Add is gone
    stack.undo()
    assert len(kernel.node_keys()) == nodes


def test_the_view_menu_shows_and_hides_every_panel_and_resets_the_layout(window, qtbot):
    window.show()
    qtbot.waitExposed(window)
    titles = [a.text() for a in window.view_menu.actions() if a.isCheckable()]
    assert titles == list(window.docks) and {"Posterior lab", "ReLU lab", "Trials"} <= set(titles)
    trials = next(a for a in window.view_menu.actions() if a.text() == "Trials")
    trials.trigger()  # hide
    assert not window.docks["Trials"].isVisible() and not trials.isChecked()
    window.docks["Convergence"].close()  # closed from its own title bar
    assert not window.docks["Convergence"].isVisible()
    reset = next(a for a in window.view_menu.actions() if a.text() == "&Reset layout")
    reset.trigger()
    assert window.docks["Trials"].isVisible() and window.docks["Convergence"].isVisible()
    assert not window.docks["Posterior lab"].isFloating()


def test_quit_is_ctrl_q_and_closes_the_window(window, qtbot):
    from PySide6.QtGui import QKeySequence

    assert window.quit_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Quit)
    window.show()
    qtbot.waitExposed(window)
    window.quit_action.trigger()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)


def test_plots_export_at_a_chosen_size_and_resolution_as_png_and_svg(window, qtbot, tmp_path):
    from PySide6.QtGui import QImage

    from lla_studio.gui.export_dialog import ExportPlotsDialog

    window.show()
    qtbot.waitExposed(window)
    written = window.export_plots(tmp_path / "png", fmt="png", width=1800, dpi=300)
    assert [p.stem for p in written] == list(window.PLOT_PANELS)
    image = QImage(str(written[window.PLOT_PANELS.index("leave_one_out")]))
    assert image.width() == 1800 and round(image.dotsPerMeterX() * 0.0254) == 300  # 6 in at 300 dpi
    (svg,) = window.export_plots(tmp_path / "svg", fmt="svg", width=1200, dpi=300, panels=["convergence"])
    text = svg.read_text()
    assert svg.name == "convergence.svg" and 'viewBox="0 0 1200 ' in text and 'width="101.6mm"' in text  # 4 in
    assert text.count("<path") + text.count("<polyline") > 5  # the axes and curves, as vectors
    with pytest.raises(ValueError, match="no plot panel 'nope'"):
        window.export_plots(tmp_path, panels=["nope"])
    dialog = ExportPlotsDialog(window.PLOT_PANELS, window)
    dialog.folder.setText(str(tmp_path / "d"))
    dialog.format.setCurrentText("svg")
    dialog.panel.setCurrentIndex(dialog.panel.findData("maps"))
    dialog.width_px.setValue(900)
    dialog.dpi.setValue(150)
    assert dialog.options() == {"folder": tmp_path / "d", "fmt": "svg", "width": 900, "dpi": 150, "panels": ["maps"]}
    assert "6.00 in" in dialog.inches.text()


def test_run_settings_edit_the_session_as_undoable_commands(window, qtbot, tmp_path):
    panel = window.run_settings
    assert panel.value("loop", "initial_design") == window.session.loop.initial_design
    assert panel.value("acquisition", "type") == window.session.acquisition.type
    panel.set_value("loop", "initial_design", 5)
    assert window.session.loop.initial_design == 5 and window.engine.session.loop.initial_design == 5
    panel.set_value("acquisition", "type", "ucb")
    panel.set_value("acquisition", "beta", 4.5)
    assert window.session.acquisition.type == "ucb" and window.session.acquisition.beta == 4.5
    assert window.undo_stack.count() == 3 and window.undo_stack.undoText() == "Acquisition: beta"
    panel.set_value("acquisition", "num_restarts", 0)  # refused by the spec: nothing changes
    assert "acquisition.num_restarts" in panel.error.text() and window.session.acquisition.num_restarts == 10
    assert window.undo_stack.count() == 3
    window.undo_stack.undo()
    assert window.session.acquisition.beta == 2.0 and panel.value("acquisition", "beta") == 2.0
    assert window.save_to(tmp_path / "r.json")
    saved = load_session(tmp_path / "r.json")
    assert saved.loop.initial_design == 5 and saved.acquisition.type == "ucb"


def test_opening_another_session_or_switching_the_surrogate_leaves_nothing_of_the_old_drawn(window, qtbot):
    from types import SimpleNamespace

    trials = tuple({"id": k, "status": "completed", "source": "initial", "config": {"x1": 0.0, "x2": 1.0},
                    "value": float(k), "message": None} for k in range(4))
    window.convergence.update_trials(trials, True)
    window.hyper.update_timeline(((4, {"covar_module.lengthscale": [0.3, 0.4], "likelihood.noise_covar.noise": [1e-3]}),))
    loo = SimpleNamespace(observed=np.arange(4.0), mean=np.arange(4.0), sd=np.ones(4), mlpd=-1.0, rmse=0.5, coverage95=1.0)
    window.loo.update_loo(loo)
    window.slice_view.mean.setData([0.0, 1.0], [1.0, 2.0])
    window.maps.images["mean"].setImage(np.ones((4, 4), dtype=np.float32))
    assert len(window.hyper.curves) == 3 and window.loo.data is not None
    window.surrogate_editor.type_combo.setCurrentIndex(window.surrogate_editor.type_combo.findData("lla"))
    qtbot.waitUntil(lambda: window.session.surrogate.type == "lla", timeout=5_000)
    assert not window.hyper.curves and not window.hyper.legend.items  # no GP lengthscale beside LLA values
    assert window.loo.data is None and window.loo.label.text() == "no surrogate yet"
    assert window.slice_view.mean.getData()[0] is None or len(window.slice_view.mean.getData()[0]) == 0
    assert window.maps.images["mean"].image is None
    assert len(window.convergence.values.getData()[0]) == 4  # the trials are the same: still drawn
    assert window.open_session(Path(default_session_path()).with_name("hartmann6.json"))
    assert len(window.convergence.values.getData()[0]) == 0 and len(window.convergence.best_curve) == 0
    assert window.slice_view.snapshot is None and window.maps.snapshot is None


PARALLEL_OBJECTIVE = '''
import math, time

def slow_branin(config):
    time.sleep(1.5)
    x1, x2 = config["x1"], config["x2"]
    return (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
'''


def test_the_studio_runs_on_two_workers_and_shows_two_running_rows(window, qtbot, tmp_path):
    """A session with ``loop.workers = 2`` runs on a local Dask cluster that the study process keeps
    open: two trials run at once, each a row saying since when and on which worker."""
    (tmp_path / "slow.py").write_text(PARALLEL_OBJECTIVE)
    doc = session_to_dict(load_session(default_session_path()))
    doc["objective"] = {"type": "python", "target": f"{tmp_path / 'slow.py'}:slow_branin", "direction": "minimize"}
    doc["loop"] = {**doc["loop"], "budget": 6, "initial_design": 4, "workers": 2}
    doc["acquisition"] = {"type": "logei", "num_restarts": 2, "raw_samples": 64}
    path = tmp_path / "parallel.json"
    path.write_text(json.dumps(doc))
    assert window.open_session(path)
    window.run()
    model = window.trials.model_

    def running_rows() -> list[tuple[str, str]]:
        col = model.column("status")
        cells = [model.index(r, col) for r in range(model.rowCount())]
        return [(c.data(), c.data(Qt.ItemDataRole.ToolTipRole)) for c in cells if str(c.data()).startswith("running")]

    qtbot.waitUntil(lambda: len(running_rows()) == 2, timeout=90_000)
    rows = running_rows()
    assert all(re.fullmatch(r"running \d\d:\d\d:\d\d", text) for text, _ in rows), rows
    assert all(tip.startswith("running since ") and " on worker tcp://127.0.0.1:" in tip for _, tip in rows), rows
    assert len({tip.rsplit(" ", 1)[1] for _, tip in rows}) == 2  # one trial per worker
    qtbot.waitUntil(lambda: window.latest is not None and window.latest.status == "finished", timeout=120_000)
    assert window.latest.n_evaluated == 6 and all(t["status"] == "completed" for t in window.latest.trials)
    qtbot.waitUntil(lambda: window.pending_redraws() == 0, timeout=5_000)  # the table draws one tick later
    assert not running_rows()
    trials = window.engine.session.trials
    assert sorted(t.completed_order for t in trials) == list(range(6))
    assert {t.worker for t in trials} and len({t.worker for t in trials}) == 2
