"""The ask/tell loop: reproducibility, failures, human in the loop, cancellation, fallbacks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lla_studio.core import study as study_mod
from lla_studio.core.errors import StudyError, SurrogateFitError
from lla_studio.core.objectives import Objective
from lla_studio.core.session import load_session, session_from_dict
from lla_studio.core.specs import AcquisitionSpec, LoopSettings, ObjectiveSpec
from lla_studio.core.study import (
    AcquisitionOptimized,
    CancelToken,
    Study,
    StudyFinished,
    SurrogateFitFailed,
    SurrogateFitted,
    TrialCompleted,
    TrialFailed,
)

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


def _small(name: str = "branin", budget: int = 9, initial: int = 5, **acq) -> object:
    s = load_session(SESSIONS / f"{name}.json")
    return replace(
        s,
        loop=LoopSettings(budget=budget, initial_design=initial, seed=1),
        acquisition=AcquisitionSpec(num_restarts=2, raw_samples=64, **acq),
    )


def test_same_seed_gives_identical_trials():
    a = list(Study(_small()).run())
    b = list(Study(_small()).run())
    ta = [(e.trial.config, e.trial.value) for e in a if isinstance(e, TrialCompleted)]
    tb = [(e.trial.config, e.trial.value) for e in b if isinstance(e, TrialCompleted)]
    assert len(ta) == 9 and ta == tb
    sources = [e.trial.source for e in a if isinstance(e, TrialCompleted)]
    assert sources == ["initial"] * 5 + ["model"] * 4
    fits = [e for e in a if isinstance(e, SurrogateFitted)]
    assert len(fits) == 4 and all("covar_module.lengthscale" in f.hyperparameters for f in fits)
    assert [e.n_train for e in fits] == [5, 6, 7, 8]
    assert isinstance(a[-1], StudyFinished) and a[-1].reason == "budget"
    # best-so-far is non-increasing
    best = [e.best_value for e in a if isinstance(e, TrialCompleted)]
    assert all(x >= y for x, y in zip(best, best[1:]))


class _Flaky(Objective):
    """Branin, except every third call raises and every fifth returns NaN."""

    def __init__(self):
        super().__init__(ObjectiveSpec(type="benchmark", name="branin"))
        self.calls = 0

    def evaluate(self, config):  # what the study calls (value and extra metrics)
        self.calls += 1
        if self.calls % 3 == 0:
            return super().evaluate({"x1": "boom", "x2": 0})  # raises inside the function
        if self.calls % 5 == 0:
            from lla_studio.core.errors import ObjectiveError

            raise ObjectiveError("objective returned nan; expected a finite number")
        return super().evaluate(config)


def test_failing_objective_marks_trials_failed_and_the_loop_goes_on(monkeypatch):
    seen_train = []
    real_fit = study_mod.Study._fit

    def spy(self, iteration, cancel):
        U, Y = self.training_data()
        seen_train.append(Y.clone())
        return real_fit(self, iteration, cancel)

    monkeypatch.setattr(study_mod.Study, "_fit", spy)
    st = Study(_small(budget=12), objective=_Flaky())
    events = list(st.run())
    failed = [e.trial for e in events if isinstance(e, TrialFailed)]
    assert len(failed) >= 3
    assert any("nan" in t.message for t in failed)
    assert all(t.message for t in failed)
    assert st.n_evaluated() == 12
    assert all(torch.isfinite(y).all() for y in seen_train), "NaN never reaches the model"


def test_fit_failure_falls_back_to_space_filling(monkeypatch):
    def broken(*args, **kwargs):
        raise SurrogateFitError("GP fit failed: NotPSDError: matrix not positive definite after jitter")

    monkeypatch.setattr("lla_studio.core.surrogates.gp.fit_gp", broken)
    st = Study(_small(budget=7))
    events = list(st.run())
    fails = [e for e in events if isinstance(e, SurrogateFitFailed)]
    assert len(fails) == 2 and "NotPSDError" in fails[0].reason
    assert [t.source for t in st.trials] == ["initial"] * 5 + ["fallback"] * 2
    assert len({tuple(sorted(t.config.items())) for t in st.trials}) == 7, "fallback points are new Sobol points"
    assert st.n_evaluated() == 7


def test_human_in_the_loop_tell_reject_add():
    s = replace(_small(), objective=ObjectiveSpec(type="manual"))
    st = Study(s)
    events = list(st.run())
    assert isinstance(events[-1], StudyFinished) and events[-1].reason == "waiting"
    pending = st.pending()
    assert len(pending) == 1
    st.tell(pending[0].id, 3.5)
    assert st.trial(pending[0].id).status == "completed"
    with pytest.raises(StudyError, match="is completed; only proposed or running trials take a value"):
        st.tell(pending[0].id, 1.0)
    ev = st.ask()
    t = [e.trial for e in ev if hasattr(e, "trial")][0]
    st.reject(t.id, "cannot run that today")
    assert st.trial(t.id).status == "rejected" and st.n_evaluated() == 1
    mine = st.add({"x1": 1.0, "x2": 2.0}, 7.25)
    assert mine.source == "manual" and mine.value == 7.25
    with pytest.raises(StudyError, match=r"cannot add trial: invalid configuration: parameter 'x1': value 50 is outside"):
        st.add({"x1": 50.0, "x2": 2.0}, 1.0)
    with pytest.raises(StudyError, match="not finite"):
        st.tell(st.ask()[-1].trial.id, float("inf"))
    # the session round-trips with all of it
    again = session_from_dict(json.loads(json.dumps(__import__("lla_studio.core.session", fromlist=["x"]).session_to_dict(st.session))))
    assert again.trials == st.session.trials


def test_cancel_token_stops_the_loop():
    token = CancelToken()
    st = Study(_small(budget=20))
    events = []
    for e in st.run(cancel=token):
        events.append(e)
        if isinstance(e, TrialCompleted) and e.trial.id == 6:
            token.cancel()
    assert isinstance(events[-1], StudyFinished) and events[-1].reason == "cancelled"
    assert st.n_evaluated() == 7


def test_cancel_inside_a_fit_or_acquisition():
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 3  # fires in the middle of the first model-based step

    st = Study(_small(budget=12))
    st_events = list(st.run(cancel=cancel))
    assert st_events[-1].reason == "cancelled"


@pytest.mark.parametrize("kind", ["ei", "ucb", "pi", "thompson", "logei"])
def test_every_acquisition_proposes_valid_points(kind):
    st = Study(_small(budget=7, type=kind, thompson_candidates=256))
    events = list(st.run())
    acq = [e for e in events if isinstance(e, AcquisitionOptimized)]
    assert len(acq) == 2 and acq[0].kind == kind
    for t in st.trials:
        st.space.validate(t.config)


def test_batch_proposals_use_qlognei_and_maximize_works():
    s = replace(_small("branin", budget=9), loop=LoopSettings(budget=9, initial_design=5, batch_size=2, seed=0))
    s = replace(s, objective=ObjectiveSpec(type="benchmark", name="branin", direction="maximize"))
    st = Study(s)
    events = list(st.run())
    acq = [e for e in events if isinstance(e, AcquisitionOptimized)]
    assert acq and acq[0].kind == "qlognei" and acq[0].candidates.shape == (2, 2)
    values = [t.value for t in st.completed()]
    assert st.best().value == max(values)


def test_conditional_space_proposals_are_valid():
    s = load_session(SESSIONS / "cnn_hyperparameters.json")
    s = replace(s, loop=LoopSettings(budget=10, initial_design=6, seed=0), acquisition=AcquisitionSpec(num_restarts=2, raw_samples=64))
    st = Study(s)
    rng = np.random.default_rng(0)
    # a manual session: the user types values for each proposal
    for _ in range(8):
        for e in st.ask():
            if hasattr(e, "trial"):
                c = e.trial.config
                st.tell(e.trial.id, float(np.log(c["batch_size"]) + rng.normal(scale=0.1)))
    assert len(st.completed()) == 8
    assert sum(t.source == "model" for t in st.trials) == 2
    for t in st.trials:
        assert st.space.validate(t.config) == dict(t.config)


def test_budget_smaller_than_initial_design_is_refused():
    from lla_studio.core.errors import SessionError

    with pytest.raises(SessionError, match="loop.budget: budget 3 is smaller than the initial design 8"):
        LoopSettings(budget=3, initial_design=8)


def test_lla_surrogate_runs_in_the_loop():
    s = load_session(SESSIONS / "branin.json")
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["surrogate"] = {"type": "lla", "network": {"network": "mlp", "widths": [16, 16], "activation": "tanh"},
                        "settings": {"max_epochs": 20}}
    doc["loop"] = {"budget": 8, "initial_design": 6, "seed": 0}
    doc["acquisition"] = {"type": "logei", "num_restarts": 2, "raw_samples": 64}
    st = Study(session_from_dict(doc))
    events = list(st.run())
    fits = [e for e in events if isinstance(e, SurrogateFitted)]
    assert [f.kind for f in fits] == ["lla", "lla"]
    assert set(fits[0].hyperparameters) == {"prior_precision", "noise_std"}
    assert all(f.hyperparameters["prior_precision"][0] > 0 for f in fits)
    assert [t.source for t in st.trials][-2:] == ["model", "model"]
    doc["surrogate"]["network"]["activation"] = "sigmoidish"
    from lla_studio.core.errors import SessionError

    with pytest.raises(SessionError, match=r"^surrogate.network: .*sigmoidish"):
        session_from_dict(doc)


def test_reconfigure_keeps_what_a_section_change_leaves_valid_and_proposes_as_a_fresh_study():
    """A seed change keeps the fitted model; a kernel change drops it but keeps the trials; another
    search space is another study. After any of them the next proposal is the fresh study's."""
    from lla_studio.core.kernels.text import parse_kernel

    base = _small(budget=12, initial=5)
    study = Study(base)
    list(study.run(budget=7))  # 5 initial + 2 model-based
    fitted = study.last_fit
    assert fitted is not None and study.n_evaluated() == 7

    reseeded = replace(study.session, loop=replace(study.session.loop, seed=4))
    assert study.reconfigure(reseeded) == {"loop"}
    assert study.last_fit is fitted  # the seed does not touch the fitted model

    kernel = parse_kernel("scale(rbf(x1)) + scale(matern52(x2))")
    rekerneled = replace(study.session, kernel=kernel)
    assert study.reconfigure(rekerneled) == {"kernel"}
    assert study.last_fit is None and study.n_evaluated() == 7
    refit = study.fit_surrogate()
    assert refit.n_train == 7 and refit.hyperparameters.keys() != fitted.hyperparameters.keys()

    # the reconfigured study proposes exactly what a study built from the same session proposes
    fresh = Study(study.session)
    ours, theirs = study.suggest()[0], fresh.suggest()[0]
    assert ours.config == theirs.config and ours.source == theirs.source == "model"

    other_space = load_session(SESSIONS / "hartmann6.json")
    assert study.reconfigure(other_space) is None
    assert study.session.search_space == base.search_space  # refused: nothing adopted
