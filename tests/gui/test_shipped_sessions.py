"""Every session the product ships runs in the real window through the real study process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from lla_studio.core.session import load_session
from lla_studio.gui.main_window import MainWindow, default_session_path

ALL_SESSIONS = sorted(default_session_path().parent.glob("*.json"))
SESSIONS = [p for p in ALL_SESSIONS if not json.loads(p.read_text()).get("trials")]
DATA_SETS = [p for p in ALL_SESSIONS if p not in SESSIONS]  # sessions shipped with their trials


def _open(qtbot, tmp_path, path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(path, recovery_path=tmp_path / "recovery.json", settings=settings)
    w.ask_discard = lambda: True
    qtbot.addWidget(w)
    return w


def _completed(w) -> int:
    return 0 if w.latest is None else sum(t["status"] == "completed" for t in w.latest.trials)


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_shipped_session_runs_in_the_studio(qtbot, tmp_path, path):
    """Two trials complete (a manual objective is answered through the Trials table), then the
    surrogate is fitted on them and every view holds data. An initial design of two keeps it short:
    the shipped sessions' own designs are 10-20 trials of the same code path."""
    doc = json.loads(path.read_text())
    doc["loop"] = {**doc["loop"], "initial_design": 2, "budget": 3}
    copy = tmp_path / path.name
    copy.write_text(json.dumps(doc))
    session = load_session(copy)
    manual = session.objective.type == "manual"
    w = _open(qtbot, tmp_path, copy)
    try:
        for answered in range(2):
            w.step()
            if manual:  # the user types each measured value into the proposal's value cell
                qtbot.waitUntil(lambda: w.trials.rowCount() == answered + 1, timeout=60_000)
                assert w.trials.text(answered, "status") == "proposed"
                assert w.trials.type_value(answered, f"{1.5 + answered}")
            qtbot.waitUntil(lambda: _completed(w) == answered + 1, timeout=60_000)
        assert not w.errors, w.errors
        w.step()  # the first model-based round: fit on the two trials, optimize the acquisition
        qtbot.waitUntil(lambda: len(w.latest.hyperparameters) == 1 and len(w.latest.trials) == 3, timeout=120_000)
        qtbot.waitUntil(lambda: w.slice_view.snapshot is not None and w.maps.snapshot is not None, timeout=60_000)
        qtbot.waitUntil(lambda: w.pending_redraws() == 0, timeout=10_000)
        assert not w.errors, w.errors
        assert w.latest.trials[2]["source"] == "model"
        assert w.trials.rowCount() == 3
        xs, ys = w.convergence.values.getData()
        assert len(xs) == w.latest.n_evaluated >= 2 and np.isfinite(ys).all()
        s = w.slice_view.snapshot
        assert np.isfinite(s.mean).all() and (s.sd > 0).all()
        img = w.maps.images["mean"].image
        assert img is not None and np.isfinite(img).all()
        assert len(w.hyper.curves) >= 1
        # the window's session is the loaded one with the study's trials
        assert [t.id for t in w.current_session().trials] == [0, 1, 2]
        assert w.current_session().search_space == session.search_space
    finally:
        w.shutdown()


@pytest.mark.parametrize("path", DATA_SETS, ids=[p.stem for p in DATA_SETS])
def test_a_shipped_data_set_opens_and_continues_in_the_studio(qtbot, tmp_path, path):
    """A session shipped with its trials (the 120-run CNN data set) opens with every trial in the
    table, and one more Step fits the surrogate on all of them and proposes and evaluates a trial."""
    doc = json.loads(path.read_text())
    n = len(doc["trials"])
    doc["loop"] = {**doc["loop"], "budget": n + 1}
    copy = tmp_path / path.name
    copy.write_text(json.dumps(doc))
    w = _open(qtbot, tmp_path, copy)
    try:
        qtbot.waitUntil(lambda: w.trials.rowCount() == n, timeout=60_000)  # after the study's first snapshot
        w.step()
        qtbot.waitUntil(lambda: _completed(w) == n + 1, timeout=180_000)
        assert not w.errors, w.errors
        assert w.latest.trials[n]["source"] == "model" and len(w.latest.hyperparameters) == 1
        assert w.trials.rowCount() == n + 1
    finally:
        w.shutdown()


def test_an_error_on_the_send_path_reaches_the_status_bar(qtbot, tmp_path):
    """A message that cannot be sent (here a configuration holding a function, which does not
    pickle) is reported in the status bar with its reason, and the window stays usable."""
    w = _open(qtbot, tmp_path, default_session_path())
    try:
        w.step()
        qtbot.waitUntil(lambda: _completed(w) == 1, timeout=60_000)
        w.engine.add({"x1": lambda: 0.0, "x2": 1.0}, None)
        qtbot.waitUntil(lambda: bool(w.errors), timeout=5_000)
        assert "could not send Add" in w.errors[-1]
        assert "could not send Add" in w.statusBar().currentMessage()
        w.step()  # still usable: the next command goes through
        qtbot.waitUntil(lambda: _completed(w) == 2, timeout=60_000)
    finally:
        w.shutdown()
