"""The shipped 120-run CNN data set: it validates, it is the study's own design, it reproduces, cv runs."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
from pathlib import Path

from lla_studio.core.objectives.cnn_digits import CHANCE_LOSS
from lla_studio.core.session import load_session

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "resources" / "sessions" / "cnn_digits_sobol120.json"
METRICS = {"train_seconds", "val_log_loss", "val_error", "test_error", "diverged"}


def test_the_data_set_is_120_completed_runs_of_the_hands_on_study():
    session = load_session(DATA)
    hands_on = load_session(ROOT / "resources" / "sessions" / "cnn_digits_hands_on.json")
    assert (session.loop.initial_design, session.loop.budget, session.loop.seed) == (120, 120, 100)
    assert session.search_space == hands_on.search_space and session.kernel == hands_on.kernel
    assert session.objective == hands_on.objective
    assert [t.id for t in session.trials] == list(range(120))
    assert all(t.status == "completed" and t.source == "initial" for t in session.trials)
    for t in session.trials:
        assert set(t.metrics) == METRICS
        session.search_space.validate(t.config)  # raises if a configuration left the space
        diverged = t.metrics["diverged"] == 1.0
        # the value is the log of the validation cross-entropy, chance level for diverged runs
        assert abs(t.value - math.log(t.metrics["val_log_loss"])) < 1e-12
        assert (not diverged) or t.metrics["val_log_loss"] == CHANCE_LOSS
    values = sorted(t.value for t in session.trials)
    assert values[0] < -2.5 and values[-1] <= math.log(CHANCE_LOSS) + 1e-12


def test_rerunning_the_script_reproduces_configurations_and_values():
    # --check: the study re-proposes its 120-point initial design (compared with the file, in order)
    # and the two quickest shipped runs are retrained in a worker process (values compared exactly)
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_cnn_dataset.py"), "--check", "2", "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    assert "configurations: identical (120 proposed, 120 shipped)" in r.stdout
    assert "retrained: identical" in r.stdout


def test_cv_runs_on_the_data_set():
    r = subprocess.run(
        [sys.executable, "-m", "lla_studio", "cv", str(DATA), "--kernel", "scale(matern52(log_max_lr, optimizer))"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("120 completed trials, 21 features")
    rows = {l.split()[0]: l.split() for l in lines[2:4]}
    assert set(rows) == {"session", "--kernel"}
    for row in rows.values():
        assert 0.0 <= float(row[-2]) <= 1.0 and float(row[-3]) > 0  # coverage, RMSE


def test_session_specs_and_trials_pickle():
    # specs hold read-only mappings (which pickle refuses); they travel to worker processes as
    # their fields and are rebuilt by their constructors
    session = load_session(DATA)
    for spec in (session.objective, session.surrogate, session.acquisition, session.loop, session.trials[0]):
        back = pickle.loads(pickle.dumps(spec))
        assert back == spec and type(back) is type(spec)
    assert dict(pickle.loads(pickle.dumps(session.trials[5])).metrics) == dict(session.trials[5].metrics)
