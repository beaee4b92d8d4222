"""Digit image search: the objective against sklearn, the pool, and pool-based studies."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from sklearn.datasets import load_digits

from lla_studio.core.acquisition import AcquisitionCancelled, propose_from_pool
from lla_studio.core.errors import ObjectiveError, SessionError, StudyError
from lla_studio.core.objectives import make_objective
from lla_studio.core.objectives.digits import DigitsSearch, digits_options, fit_classifier, pixel_names
from lla_studio.core.session import load_session, loads_session, session_from_dict
from lla_studio.core.specs import AcquisitionSpec, LoopSettings, ObjectiveSpec
from lla_studio.core.study import AcquisitionOptimized, Study, SurrogateFitted, TrialCompleted

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


@pytest.fixture(scope="module")
def problem() -> DigitsSearch:
    return DigitsSearch(target=3, seed=0)


def _gp_session(budget: int = 13, initial: int = 10, seed: int = 0, **acq):
    s = load_session(SESSIONS / "digits_search_gp.json")
    return replace(
        s, loop=LoopSettings(budget=budget, initial_design=initial, seed=seed), acquisition=AcquisitionSpec(**acq)
    )


# --------------------------------------------------------------------------- the objective
def test_f_is_the_log_probability_of_the_target_under_sklearn(problem):
    X = problem.pool.values
    ours = problem.pool_values()
    # sklearn's own log-probabilities; they round log(1 - tiny) to about 1e-16, ours keeps it
    np.testing.assert_allclose(ours, problem.model.predict_log_proba(X)[:, 3], rtol=1e-9, atol=1e-13)
    # an independent log-softmax of the logits, from the fitted weights
    Z = X @ problem.model.coef_.T + problem.model.intercept_
    np.testing.assert_allclose(ours, log_softmax(Z, axis=1)[:, 3], rtol=1e-9, atol=1e-13)
    assert np.all(ours <= 0)
    # a refit with the same seed gives the same objective (not the cached model)
    refit = fit_classifier(0)
    assert refit is not problem.model
    np.testing.assert_allclose(refit.predict_log_proba(X[:50])[:, 3], ours[:50], rtol=1e-9, atol=1e-13)
    # f is defined for any image, not only pool images; a configuration is an image
    rng = np.random.default_rng(0)
    Xr = rng.uniform(0, 16, size=(20, 64))
    np.testing.assert_allclose(problem.evaluate(Xr), problem.model.predict_log_proba(Xr)[:, 3], rtol=1e-9, atol=1e-13)
    config = dict(zip(pixel_names(), Xr[0]))
    assert problem(config) == pytest.approx(problem.evaluate(Xr[:1])[0], rel=1e-12)
    obj = make_objective(load_session(SESSIONS / "digits_search_gp.json").objective)
    assert obj(problem.pool.config(7)) == pytest.approx(ours[7], rel=1e-12, abs=1e-15)
    assert obj.pool is not None and obj.benchmark is None


def test_other_targets_and_the_classifier_is_good(problem):
    seven = DigitsSearch(target=7)
    assert seven.model is problem.model  # one fit per seed, shared
    y = problem.labels
    assert (problem.model.predict(problem.pool.values) == y).mean() > 0.99
    # the images of a digit are the likely ones
    assert np.median(seven.pool_values()[y == 7]) > -1e-3 > np.median(seven.pool_values()[y != 7])


def test_pool_holds_the_load_digits_images(problem):
    pool = problem.pool
    assert pool.values.shape == (1797, 64) and len(pool) == 1797
    assert pool.values.min() == 0.0 and pool.values.max() == 16.0
    assert pool.names == pixel_names() and pool.names[:3] == ("p0_0", "p0_1", "p0_2") and pool.names[-1] == "p7_7"
    images = load_digits().images
    np.testing.assert_array_equal(pool.values.reshape(-1, 8, 8), images)  # row-major pixels
    assert not pool.values.flags.writeable
    space = problem.search_space()
    assert space.names == pool.names and all(p.low == 0 and p.high == 16 for p in space.parameters)


def test_top_one_percent_threshold(problem):
    values = problem.pool_values()
    threshold = problem.top_threshold(0.01)
    top = values >= threshold
    assert top.sum() == math.ceil(0.01 * 1797) == 18
    assert threshold == np.sort(values)[-18]
    assert set(problem.labels[top]) == {3}
    assert problem.top_threshold(1.0) == values.min()
    with pytest.raises(ObjectiveError, match="fraction"):
        problem.top_threshold(0.0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"target": 11}, r"option 'target' must be an integer digit 0..9, got 11"),
        ({"target": -1}, r"option 'target' must be an integer digit 0..9, got -1"),
        ({"target": 2.5}, r"option 'target' must be an integer digit 0..9, got 2.5"),
        ({"target": "3"}, r"option 'target' must be an integer digit 0..9, got '3'"),
        ({"seed": -2}, r"option 'seed' must be an integer >= 0, got -2"),
        ({"taget": 3, "noise_std": 0.1}, r"unknown option\(s\) \['noise_std', 'taget'\] \(allowed: target, seed\)"),
    ],
)
def test_bad_options_are_refused_naming_them(options, match):
    with pytest.raises(ObjectiveError, match=match):
        digits_options(options)
    with pytest.raises(SessionError, match=r"^objective.options: digits objective: " + match):
        ObjectiveSpec(type="benchmark", name="digits", direction="maximize", options=options)
    doc = json.loads((SESSIONS / "digits_search_gp.json").read_text())
    doc["objective"]["options"] = options
    with pytest.raises(SessionError, match=r"^objective.options: .*" + match):
        session_from_dict(doc)


def test_integral_json_numbers_are_accepted():
    assert digits_options({"target": 3.0, "seed": 1.0}).target == 3
    assert DigitsSearch.from_options({}).target == 3


# --------------------------------------------------------------------------- sessions
@pytest.mark.parametrize("name, kind", [("digits_search_gp.json", "gp"), ("digits_search_lla.json", "lla")])
def test_shipped_sessions_load_and_validate(name, kind, capsys):
    from lla_studio.cli import main

    s = load_session(SESSIONS / name)
    assert s.surrogate.type == kind
    assert s.objective.to_dict() == {
        "type": "benchmark", "name": "digits", "direction": "maximize", "options": {"target": 3, "seed": 0},
    }
    assert s.loop.budget == 110 and s.loop.initial_design == 10 and s.loop.seed == 0
    assert s.acquisition.type == "logei"
    assert s.search_space.names == pixel_names() and s.features.is_identity_on_unit_cube
    if kind == "gp":
        leaves = s.kernel.leaves()
        assert len(leaves) == 1 and leaves[0].KIND == "rbf" and leaves[0].features == pixel_names()
    else:
        net = s.surrogate.options["network"]
        assert net["network"] == "cnn" and list(net["image_shape"]) == [8, 8]
        assert s.surrogate.options["settings"]["tuning"] == "posthoc"
    assert main(["validate", str(SESSIONS / name)]) == 0
    assert capsys.readouterr().out.startswith("ok: Digit image search")
    # the file is what a save writes
    from lla_studio.core.session import dumps_session

    assert loads_session(dumps_session(s)) == s


# --------------------------------------------------------------------------- pool-based study
def test_pool_study_proposes_only_unseen_pool_images(problem):
    st = Study(_gp_session(budget=14))
    rows = {row.tobytes(): i for i, row in enumerate(problem.pool.values)}
    events = list(st.run())
    done = [e.trial for e in events if isinstance(e, TrialCompleted)]
    assert [t.source for t in done] == ["initial"] * 10 + ["model"] * 4
    idx = [rows[np.array([t.config[n] for n in pixel_names()]).tobytes()] for t in done]
    assert len(set(idx)) == 14  # all pool images, all distinct
    assert idx[:10] == st.pool_order()[:10].tolist()  # the seeded initial design
    assert [t.value for t in done] == pytest.approx(problem.pool_values()[idx].tolist(), rel=1e-12, abs=1e-15)
    acq = [e for e in events if isinstance(e, AcquisitionOptimized)]
    assert len(acq) == 4 and all(e.kind == "logei" and e.candidates.shape == (1, 64) for e in acq)
    remaining = st.pool_remaining()
    assert remaining.size == 1797 - 14 and not set(idx) & set(remaining.tolist())
    assert [f.n_train for f in events if isinstance(f, SurrogateFitted)] == [10, 11, 12, 13]


def test_pool_remaining_excludes_added_and_rejected_images(problem):
    st = Study(_gp_session())
    first = int(st.pool_order()[0])
    st.add(problem.pool.config(first), value=problem(problem.pool.config(first)))  # the user evaluated it
    st.add({n: 1.5 for n in pixel_names()}, value=-30.0)  # an image outside the pool is fine
    st.ask()
    t = st.pending()[0]
    assert dict(t.config) == problem.pool.config(int(st.pool_order()[1]))  # the design skips the added image
    st.reject(t.id)
    assert int(st.pool_order()[1]) not in st.pool_remaining() and first not in st.pool_remaining()
    assert st.pool_remaining().size == 1797 - 2


def test_same_seed_gives_identical_pool_trials():
    def trials(seed: int):
        st = Study(_gp_session(budget=12, seed=seed))
        return [(dict(e.trial.config), e.trial.value) for e in st.run() if isinstance(e, TrialCompleted)]

    a, b = trials(0), trials(0)
    assert len(a) == 12 and a == b
    c = trials(1)
    assert [v for _, v in c[:10]] != [v for _, v in a[:10]]


def test_propose_from_pool_batches_thompson_and_cancel(problem):
    st = Study(_gp_session(budget=12))
    list(st.run(max_iterations=10))
    fit = st.fit_surrogate()
    U, Y = st.training_data()
    cand = torch.as_tensor(st._pool_U[st.pool_remaining()[:300]])
    one = propose_from_pool(fit.model, AcquisitionSpec("logei"), cand, U, Y, minimize=False, max_batch_size=64)
    assert one.indices.shape == (1,) and np.array_equal(one.candidates, cand[one.indices].numpy())
    # the argmax over all candidates, whatever the batching
    from botorch.acquisition import LogExpectedImprovement

    with torch.no_grad():
        scores = LogExpectedImprovement(fit.model, best_f=Y.max())(cand.unsqueeze(1))
    assert int(one.indices[0]) == int(scores.argmax()) and one.value == pytest.approx(float(scores.max()))
    two = propose_from_pool(fit.model, AcquisitionSpec("logei"), cand, U, Y, minimize=False, q=2, seed=3)
    assert two.kind == "qlognei" and len(set(two.indices.tolist())) == 2
    ts = propose_from_pool(fit.model, AcquisitionSpec("thompson"), cand, U, Y, minimize=False, q=3, seed=3)
    assert ts.kind == "thompson" and len(set(ts.indices.tolist())) == 3
    again = propose_from_pool(fit.model, AcquisitionSpec("thompson"), cand, U, Y, minimize=False, q=3, seed=3)
    assert np.array_equal(ts.indices, again.indices)
    calls = iter(range(100))
    with pytest.raises(AcquisitionCancelled):  # fires at the second batch
        propose_from_pool(fit.model, AcquisitionSpec("ucb"), cand, U, Y, minimize=False, max_batch_size=64,
                          cancel=lambda: next(calls) >= 2)
    with pytest.raises(ValueError, match="q must be in 1..300"):
        propose_from_pool(fit.model, AcquisitionSpec("logei"), cand, U, Y, minimize=False, q=301)


def test_pool_batches_and_lla_surrogate():
    doc = json.loads((SESSIONS / "digits_search_lla.json").read_text())
    doc["surrogate"]["settings"]["max_epochs"] = 5
    doc["loop"] = {"budget": 14, "initial_design": 10, "batch_size": 2, "seed": 0}
    st = Study(session_from_dict(doc))
    events = list(st.run())
    fits = [e for e in events if isinstance(e, SurrogateFitted)]
    assert [f.kind for f in fits] == ["lla", "lla"] and [f.n_train for f in fits] == [10, 12]
    assert [e.kind for e in events if isinstance(e, AcquisitionOptimized)] == ["qlognei", "qlognei"]
    configs = [tuple(t.config.values()) for t in st.trials]
    assert len(st.trials) == 14 and len(set(configs)) == 14 and st.pool_remaining().size == 1797 - 14


def test_a_pool_needs_a_matching_search_space():
    s = _gp_session()
    doc = json.loads((SESSIONS / "digits_search_gp.json").read_text())
    doc["search_space"]["parameters"][0]["name"] = "q0_0"
    doc["kernel"] = None
    with pytest.raises(StudyError, match=r"disagree: the pool has no column for \['q0_0'\]; the search space lacks \['p0_0'\]"):
        Study(session_from_dict(doc))
    doc = json.loads((SESSIONS / "digits_search_gp.json").read_text())
    doc["search_space"]["parameters"][5]["high"] = 10.0
    with pytest.raises(StudyError, match="outside the search space's bounds"):
        Study(session_from_dict(doc))
    assert Study(s).pool is not None


def test_headless_run_of_the_gp_session(tmp_path):
    from lla_studio.core.runner import run_headless

    out = tmp_path / "out"
    assert run_headless(SESSIONS / "digits_search_gp.json", out, budget=12, progress=False) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_completed"] == 12 and summary["n_failed"] == 0 and "regret" not in summary
    rows = list(csv.reader(io.StringIO((out / "trials.csv").read_text())))
    assert rows[0][:3] == ["trial", "status", "p0_0"] and len(rows) == 13
    assert max(float(r[-1]) for r in rows[1:]) == summary["best_value"]
    resumed = load_session(out / "session.json")
    assert len(resumed.trials) == 12
