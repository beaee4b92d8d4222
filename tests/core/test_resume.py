"""An interrupted run is the same run: stop a study, save and reload its session, continue, and get the
trials of the uninterrupted run with the same seed.

Trials are compared exactly (``==`` on configurations and values), not to a tolerance: a proposal is
decoded from the same unit-cube candidate to the same Python floats, and JSON round-trips a Python
float exactly (``repr`` is the shortest string that reads back to the same double). Only ``seconds``
(wall-clock time of an evaluation) is left out of the comparison.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lla_studio.core.features import FeatureMap
from lla_studio.core.session import load_session, session_from_dict, session_to_dict
from lla_studio.core.study import Study, SurrogateFitted
from lla_studio.core.surrogates.lla_fit import LLAFitter, lla_options

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"

TINY_LLA = {
    "type": "lla",
    "network": {"network": "mlp", "widths": [8, 8], "activation": "tanh"},
    "settings": {"max_epochs": 8, "warm_max_epochs": 4},
}


def _doc(budget: int, initial: int, surrogate: dict | None = None, small_acquisition: bool = False) -> dict:
    """Branin (the shipped session: GP, LogEI with 10 restarts from 512 raw samples) with its loop
    changed; an LLA surrogate and a cheaper acquisition optimization when asked."""
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["loop"] = {"budget": budget, "initial_design": initial, "batch_size": 1, "seed": 3}
    if surrogate is not None:
        doc["surrogate"] = surrogate
    if small_acquisition:
        doc["acquisition"] = {"type": "logei", "num_restarts": 2, "raw_samples": 64}
    return doc


def _run(doc: dict, budget: int) -> Study:
    study = Study(session_from_dict(doc))
    list(study.run(budget=budget))
    return study


def _reloaded(study: Study) -> Study:
    """A new study on the session as a restarted process reads it: JSON text and back."""
    return Study(session_from_dict(json.loads(json.dumps(session_to_dict(study.session)))))


def _trials(study: Study) -> list[tuple]:
    return [(t.id, t.status, t.source, dict(t.config), t.value) for t in study.trials]


@pytest.fixture(scope="module")
def gp_uninterrupted() -> list[tuple]:
    torch.manual_seed(0)
    return _trials(_run(_doc(14, 8), 14))


@pytest.mark.parametrize("stop", [10, 12])
def test_gp_run_resumed_after_model_based_trials_is_the_uninterrupted_run(gp_uninterrupted, stop):
    full = gp_uninterrupted
    assert [t[2] for t in full] == ["initial"] * 8 + ["model"] * 6
    first = _run(_doc(14, 8), stop)
    assert _trials(first) == full[:stop]
    torch.manual_seed(12345)  # a restarted process: whatever the global generator holds
    resumed = _reloaded(first)
    list(resumed.run(budget=14))
    assert _trials(resumed) == full


def test_lla_run_resumed_after_model_based_trials_is_the_uninterrupted_run():
    doc = _doc(12, 6, TINY_LLA, small_acquisition=True)
    full_study = Study(session_from_dict(doc))
    fits = [e for e in full_study.run(budget=12) if isinstance(e, SurrogateFitted)]
    full = _trials(full_study)
    assert [f.kind for f in fits] == ["lla"] * 6 and [t[2] for t in full] == ["initial"] * 6 + ["model"] * 6
    # stop after three model-based trials: the next fit's warm start is three fits deep
    first = _run(doc, 9)
    assert _trials(first) == full[:9]
    resumed = _reloaded(first)
    list(resumed.run(budget=10))
    assert _trials(resumed) == full[:10]
    # ... and again, this time after the GUI's kind of extra fit (a view asked for the model)
    again = _reloaded(resumed)
    again.fit_surrogate()
    list(again.run(budget=12))
    assert _trials(again) == full


def test_the_lla_warm_start_is_a_function_of_the_training_data():
    """Fitting step by step (each fit warm-started from the previous) and fitting at once from a
    fresh fitter give the same network and the same hyperparameters, bit for bit, also across the
    chain's cold restarts."""
    session = session_from_dict(_doc(12, 4, TINY_LLA, small_acquisition=True))
    spec, settings = lla_options(session.surrogate.options)
    g = torch.Generator().manual_seed(0)
    U = torch.rand(11, 2, generator=g, dtype=torch.float64)
    Y = torch.sin(6 * U[:, :1]) + U[:, 1:] ** 2

    def fitter() -> LLAFitter:
        return LLAFitter(spec, settings, FeatureMap.of(session), anchor=4, restart_every=3)

    stepwise = fitter()
    for n in range(2, 12):
        step = stepwise.fit(U[:n], Y[:n])
        assert step.n_fits == 1  # the live chain: one fit per new trial
    at_once = fitter().fit(U, Y)
    assert at_once.n_fits == 2  # the chain 4, 7, 10 (cold), 11 (warm from 10)
    a, b = step.model, at_once.model
    assert a.report.warm_started and b.report.warm_started
    assert (a.prior_precision, a.noise_std) == (b.prior_precision, b.noise_std)
    for (k, v), (k2, v2) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    # the same data again: the cached model, no fit
    assert stepwise.fit(U, Y).n_fits == 0
    # data that differ in an early trial: the chain is recomputed from its anchor
    V = U.clone()
    V[5, 0] = 0.5
    assert stepwise.fit(V, Y).n_fits == 2
    # retraining from scratch needs no chain
    cold = LLAFitter(spec, replace(settings, warm_start=False), FeatureMap.of(session), anchor=4)
    result = cold.fit(U, Y)
    assert result.n_fits == 1 and not result.model.report.warm_started


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lla_studio", *args], capture_output=True, text=True, timeout=600)


def test_cli_run_continued_on_the_same_out_is_the_uninterrupted_run(tmp_path):
    """``lla-studio run --budget 10``, then ``run OUT/session.json --budget 13`` on the same ``--out``
    (two processes) write the trials of one uninterrupted 13-trial run (here, in the test's process)."""
    from lla_studio.core.trials_io import trials_csv

    doc = _doc(13, 8, small_acquisition=True)
    session, out = tmp_path / "branin.json", tmp_path / "out"
    session.write_text(json.dumps(doc))
    for source, budget in [(session, "10"), (out / "session.json", "13")]:
        r = run_cli("run", str(source), "--budget", budget, "--out", str(out), "--quiet")
        assert r.returncode == 0, r.stderr[-2000:]
    whole = _run(doc, 13)
    assert [t.source for t in whole.trials] == ["initial"] * 8 + ["model"] * 5
    assert (out / "trials.csv").read_text() == trials_csv(whole.session)
    assert _trials(Study(load_session(out / "session.json"))) == _trials(whole)
