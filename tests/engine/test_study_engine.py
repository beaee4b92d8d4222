"""The study engine: the loop runs in a child process; the GUI side survives its death."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lla_studio.core.features import FeatureMap
from lla_studio.core.session import load_session, session_from_dict, session_to_dict
from lla_studio.engine.messages import Load, SnapshotReady
from lla_studio.engine.study_server import StudySnapshot, snapshot_of_session, trials_of_view
from lla_studio.engine.study_worker import StudyEngine
from lla_studio.gui.main_window import default_session_path

SESSIONS = default_session_path().parent


def test_snapshot_of_an_untouched_session_and_pickle_round_trip():
    session = load_session(default_session_path())
    snap = snapshot_of_session(session)
    assert snap.n_evaluated == 0 and np.isnan(snap.best_value) and snap.status == "idle"
    back = pickle.loads(pickle.dumps(SnapshotReady(snap))).snapshot
    assert back.trials == snap.trials


@pytest.mark.parametrize("name", sorted(p.name for p in SESSIONS.glob("*.json")))
def test_every_shipped_session_crosses_the_process_boundary_as_data(name):
    """What crosses the pipe is plain data: the session as its JSON document, trials as dicts.
    A session with feature transforms holds compiled closures that do not pickle (this was the
    bug: Run did nothing for such sessions); its document does, and rebuilds the same session."""
    session = load_session(SESSIONS / name)
    session = session.with_trials(tuple(session.trials))
    msg = pickle.loads(pickle.dumps(Load(session_to_dict(session), 7)))
    assert msg.load_id == 7 and session_from_dict(msg.document) == session
    snap = pickle.loads(pickle.dumps(SnapshotReady(snapshot_of_session(session)))).snapshot
    assert trials_of_view(snap.trials) == session.trials
    if session.transforms.steps:  # the live object itself does not cross
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            pickle.dumps(FeatureMap.of(session))


def _listened(engine: StudyEngine) -> tuple[list[StudySnapshot], list[str]]:
    """The engine's snapshots and failures, as they arrive."""
    snaps: list[StudySnapshot] = []
    errors: list[str] = []
    engine.snapshot.connect(snaps.append)
    engine.failed.connect(errors.append)
    return snaps, errors


def test_engine_survives_the_death_of_its_process(qtbot, tmp_path):
    session = load_session(default_session_path())
    engine = StudyEngine(recovery_path=tmp_path / "recovery.json")
    snaps, errors = _listened(engine)
    try:
        engine.load(session)
        qtbot.waitUntil(lambda: bool(snaps), timeout=5_000)
        assert not engine.process_alive  # loading alone starts nothing
        engine.run(0)
        qtbot.waitUntil(lambda: snaps[-1].n_evaluated >= 3, timeout=60_000)
        first_pid = engine._proc.pid
        engine._proc.kill()  # a crash, or the kernel's OOM killer
        qtbot.waitUntil(lambda: any("stopped unexpectedly" in e for e in errors), timeout=10_000)
        qtbot.waitUntil(lambda: snaps[-1].status == "error", timeout=5_000)
        kept = snaps[-1].n_evaluated
        assert kept >= 3 and engine.session is not None and len(engine.session.trials) >= 3
        # the next command starts a fresh process on the newest session: the trials go on from there
        engine.run(kept + 2)
        qtbot.waitUntil(lambda: snaps[-1].n_evaluated >= kept + 2 and snaps[-1].status == "finished", timeout=60_000)
        assert engine._proc.pid != first_pid
        ids = [t["id"] for t in snaps[-1].trials]
        assert ids == sorted(set(ids))
        assert (tmp_path / "recovery.json").is_file()
    finally:
        engine.shutdown()
    assert not engine.process_alive


def test_snapshots_mark_model_proposals_on_the_box_boundary():
    from lla_studio.core.specs import Trial
    from lla_studio.gui.main_window import boundary_text

    session = load_session(default_session_path())  # Branin: x1 in [-5, 10], x2 in [0, 15]
    trials = (
        Trial(0, {"x1": -5.0, "x2": 7.0}, "completed", 10.0, source="initial"),  # a corner of the design: not counted
        Trial(1, {"x1": 2.0, "x2": 7.0}, "completed", 20.0, source="model"),
        Trial(2, {"x1": -5.0, "x2": 15.0}, "completed", 30.0, source="model"),
        Trial(3, {"x1": 9.99, "x2": 3.0}, "proposed", source="model"),
    )
    snap = snapshot_of_session(session.with_trials(trials))
    assert [t["boundary"] for t in snap.trials] == [("x1 low",), (), ("x1 low", "x2 high"), ("x1 high",)]
    assert snap.boundary == (2, 3, 2, 3)
    assert boundary_text(snap.boundary) == "   on the boundary: 2 of 3 model proposals"
    assert boundary_text((4, 25, 3, 10)) == "   on the boundary: 4 of 25 model proposals (3 of the last 10)"
    assert boundary_text((0, 3, 0, 3)) == ""
    # a pool-based study chooses among fixed candidates: no box to run off
    digits = load_session(default_session_path().parent / "digits_search_gp.json")
    pixel = {name: 0.0 for name in digits.search_space.names}
    snap = snapshot_of_session(digits.with_trials((Trial(0, pixel, "proposed", source="model"),)))
    assert snap.trials[0]["boundary"] == () and snap.boundary == (0, 1, 0, 1)


def test_a_kernel_change_refits_and_keeps_trials_history_and_loo_a_seed_change_keeps_the_model(qtbot):
    from dataclasses import replace

    from lla_studio.core.kernels.text import parse_kernel
    from lla_studio.core.specs import SurrogateSpec

    session = load_session(default_session_path())  # Branin, 8 initial trials
    session = replace(session, loop=replace(session.loop, budget=10))
    engine = StudyEngine()
    snaps, errors = _listened(engine)
    try:
        engine.load(session)
        engine.run(10)
        qtbot.waitUntil(lambda: bool(snaps) and snaps[-1].status == "finished", timeout=90_000)
        done = snaps[-1]
        assert done.n_evaluated == 10 and len(done.hyperparameters) == 2 and done.loo is not None

        engine.load(replace(engine.session, loop=replace(engine.session.loop, seed=3)))
        qtbot.waitUntil(lambda: snaps[-1].load_id == engine._load_id, timeout=10_000)
        reseeded = snaps[-1]
        assert reseeded.trials == done.trials and reseeded.hyperparameters == done.hyperparameters
        assert reseeded.loo.mlpd == done.loo.mlpd  # no refit for a seed

        kernel = parse_kernel("scale(rbf(x1)) + scale(matern52(x2))")
        engine.load(replace(engine.session, kernel=kernel))
        qtbot.waitUntil(lambda: len(snaps[-1].hyperparameters) == 3, timeout=30_000)
        refit = snaps[-1]
        assert refit.trials == done.trials  # the same trials
        assert refit.hyperparameters[:2] == done.hyperparameters  # the history is kept
        n_train, names = refit.hyperparameters[2]
        assert n_train == 10 and set(names) != set(done.hyperparameters[-1][1])  # the new kernel's
        assert refit.loo is not None and refit.loo.mlpd != done.loo.mlpd  # the new model's LOO
        # the snapshot between the load and the refit showed the old LOO, never an empty view
        since = [s for s in snaps if s.load_id == engine._load_id]
        assert all(s.loo is not None for s in since)

        engine.load(replace(engine.session, surrogate=SurrogateSpec("lla", {"settings": {"max_epochs": 20}})))
        qtbot.waitUntil(
            lambda: snaps[-1].load_id == engine._load_id and len(snaps[-1].hyperparameters) == 1, timeout=60_000,
        )
        assert "prior_precision" in snaps[-1].hyperparameters[0][1]  # another model: a new history
        assert not errors
    finally:
        engine.shutdown()
