"""Session format v1: round trips, atomic saves, and malformed documents refused with a JSON path."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from lla_studio.core.features import FeatureMap
from lla_studio.core.errors import SessionError
from lla_studio.core.session import (
    dumps_session,
    load_session,
    loads_session,
    save_session,
    session_from_dict,
    session_to_dict,
)
from lla_studio.core.specs import Trial

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "resources" / "sessions"
SHIPPED = sorted(SESSIONS.glob("*.json"))
FIXTURES = sorted((ROOT / "tests" / "data" / "sessions").glob("v*.json"))


def _doc(name: str = "branin") -> dict:
    return json.loads((SESSIONS / f"{name}.json").read_text())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sessions_load_and_round_trip(path, tmp_path):
    session = load_session(path)
    out = save_session(session, tmp_path / "s.json")
    again = load_session(out)
    assert again == session
    assert session_to_dict(again) == session_to_dict(session)
    assert dumps_session(again) == dumps_session(session)


def test_round_trip_with_trials(tmp_path):
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    configs = session.search_space.sample(5, seed=2)
    trials = (
        Trial(0, configs[0], "completed", value=0.25, source="initial", seconds=1.5),
        Trial(1, configs[1], "failed", message="objective raised ValueError: boom", source="initial"),
        Trial(2, configs[2], "proposed", source="model"),
        Trial(3, configs[3], "rejected", message="not runnable today", source="model"),
        Trial(4, configs[4], "completed", value=-3.0, source="manual"),
    )
    session = session.with_trials(trials)
    again = load_session(save_session(session, tmp_path / "s.json"))
    assert again == session
    assert again.trials[1].message == "objective raised ValueError: boom"
    assert dict(again.trials[2].config) == configs[2]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_released_format_fixtures_still_load(path):
    session = load_session(path)
    assert session.trials, "fixtures carry trials"


def test_atomic_save_keeps_the_previous_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "s.json"
    session = load_session(SESSIONS / "branin.json")
    save_session(session, target)
    before = target.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        save_session(session.with_trials((Trial(0, {"x1": 1.0, "x2": 2.0}, "completed", value=3.0),)), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "temporary file cleaned up"


def test_unwritable_session_leaves_file_untouched(tmp_path):
    target = tmp_path / "s.json"
    session = load_session(SESSIONS / "branin.json")
    save_session(session, target)
    before = target.read_bytes()
    bad = session.with_trials((Trial(0, {"x1": 1.0, "x2": 2.0}, "proposed", message=object()),))  # type: ignore[arg-type]
    with pytest.raises(SessionError, match="cannot be written as JSON"):
        save_session(bad, target)
    assert target.read_bytes() == before


def _mutated(mutate):
    doc = copy.deepcopy(_doc())
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(format="something-else"), r"^format: not an LLA Studio session"),
        (lambda d: d.pop("format"), r"^format: not an LLA Studio session"),
        (lambda d: d.update(version=2), r"^version: session version 2 is newer"),
        (lambda d: d.update(version="1"), r"^version: expected an integer version"),
        (lambda d: d.update(version=0), r"^version: unknown session version 0"),
        (lambda d: d.pop("search_space"), r"^search_space: missing required field"),
        (lambda d: d.update(search_space=[]), r"^search_space: expected an object, got a list"),
        (lambda d: d["search_space"]["parameters"][1].update(low="0"), r"^search_space.parameters\[1\].low: expected a finite number"),
        (lambda d: d["search_space"]["parameters"][0].update(high=-10), r"^search_space.parameters\[0\]: parameter 'x1': needs low < high"),
        (lambda d: d.update(transforms=[{"step": "log", "features": ["x3"]}]), r"^transforms\[0\]: transform step 0 \(log\): unknown feature 'x3'"),
        (lambda d: d.update(transforms=[{"step": "log", "features": ["x1"]}]), r"^transforms\[0\]: .*log of feature 'x1' needs values > 0"),
        (lambda d: d.update(surrogate={"type": "forest"}), r"^surrogate.type: unknown surrogate 'forest'"),
        (lambda d: d.update(acquisition={"type": "logei", "num_restarts": 0}), r"^acquisition.num_restarts: must be >= 1"),
        (lambda d: d.update(acquisition={"type": "ei", "beta": "big"}), r"^acquisition.beta: expected a finite number"),
        (lambda d: d.update(objective={"type": "benchmark"}), r"^objective.name: a benchmark objective needs a name"),
        (lambda d: d.update(objective={"type": "manual", "direction": "up"}), r"^objective.direction: must be 'minimize' or 'maximize'"),
        (lambda d: d.update(loop={"budget": 5, "initial_design": 8}), r"^loop.budget: budget 5 is smaller than the initial design 8"),
        (lambda d: d.update(loop={"budget": 1.5}), r"^loop.budget: expected an integer"),
        (lambda d: d.update(trials={}), r"^trials: expected a list"),
        (lambda d: d.update(trials=[{"id": 0, "status": "completed", "config": {"x1": 1.0, "x2": 2.0}}]), r"^trials\[0\].value: a completed trial needs a finite value"),
        (lambda d: d.update(trials=[{"id": 0, "status": "done", "config": {"x1": 1.0, "x2": 2.0}}]), r"^trials\[0\].status: unknown status 'done'"),
        (lambda d: d.update(trials=[{"id": 0, "status": "completed", "value": 1.0, "config": {"x1": 99.0, "x2": 2.0}}]), r"^trials\[0\].config: invalid configuration: parameter 'x1': value 99 is outside"),
        (lambda d: d.update(trials=[{"id": 0, "status": "proposed", "config": {"x1": 1.0, "x2": 2.0}}] * 2), r"^trials\[1\].id: duplicate trial id 0"),
        (lambda d: d.update(colour="blue"), r"^\$: unknown field 'colour'"),
        (lambda d: d.update(name=3), r"^name: expected a string"),
    ],
)
def test_malformed_sessions_name_the_json_path(mutate, match):
    with pytest.raises(SessionError, match=match):
        session_from_dict(_mutated(mutate))


def test_not_json_and_nan_are_refused(tmp_path):
    with pytest.raises(SessionError, match=r"not valid JSON: Expecting .* line 1 column"):
        loads_session("{not json")
    text = json.dumps(_doc()).replace('"trials": []', '"trials": [{"id": 0, "status": "completed", "value": NaN, "config": {"x1": 1.0, "x2": 2.0}}]')
    with pytest.raises(SessionError, match="NaN is not valid JSON"):
        loads_session(text)
    with pytest.raises(SessionError, match="no such file"):
        load_session(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SessionError, match="not a UTF-8 text file"):
        load_session(tmp_path / "bin.json")
    with pytest.raises(SessionError, match=r"^\$: expected an object, got a list"):
        loads_session("[1, 2]")


def test_kernel_graph_in_a_session_is_checked_against_the_features():
    doc = _doc("cnn_hyperparameters")
    session = session_from_dict(doc)
    assert session.kernel is not None and "log_epochs" in session.kernel.features_used()
    # deleting a transform step removes features the kernel uses: refused, naming the node and feature
    doc["transforms"] = doc["transforms"][1:]
    with pytest.raises(SessionError, match=r"^kernel\.children\[1\]\..*unknown feature 'log_epochs'"):
        session_from_dict(doc)
    bad = _doc()
    bad["kernel"] = {"kernel": "matern", "nu": 2.0, "features": ["x1"]}
    with pytest.raises(SessionError, match=r"^kernel.nu: must be one of 0.5, 1.5, 2.5"):
        session_from_dict(bad)


def test_cnn_session_has_the_hands_on_feature_space():
    import math

    import torch

    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    fmap = FeatureMap.of(session)
    names = fmap.feature_names
    assert {
        "optimizer", "nesterov", "log_epochs", "log_batch_size", "log_max_lr", "log_warmup_fraction",
        "log_initial_lr", "log_final_lr", "max_momentum", "min_momentum",
        "weight_decay_logmean", "width_logmean",
    } <= set(names)
    assert sum(n.startswith("weight_decay_") and n.endswith("_ratio") for n in names) == 5
    assert sum(n.endswith("_ratio") for n in names) == 9
    # the derived learning rates and min momentum replace their fractions
    assert not {"lr_initial_fraction", "lr_final_fraction", "min_momentum_fraction"} & set(names)
    assert not any(n.startswith("log_lr_") for n in names)
    assert session.kernel is not None and set(session.kernel.features_used()) == set(names)

    configs = session.search_space.sample(64, seed=0)
    F = fmap(torch.as_tensor(session.search_space.encode_many(configs), dtype=torch.float64))
    assert torch.isfinite(F).all()
    col = {n: F[:, j] for j, n in enumerate(names)}
    sgd = next(i for i, c in enumerate(configs) if c["optimizer"] == "sgd")
    for i in (0, sgd):
        c = configs[i]
        assert math.isclose(col["log_initial_lr"][i].item(), math.log(c["lr_initial_fraction"] * c["max_lr"]), rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(col["log_final_lr"][i].item(), math.log(c["lr_final_fraction"] * c["max_lr"]), rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(col["log_max_lr"][i].item(), math.log(c["max_lr"]), rel_tol=1e-12, abs_tol=1e-12)
    c = configs[sgd]
    assert math.isclose(col["min_momentum"][sgd].item(), c["min_momentum_fraction"] * c["max_momentum"], rel_tol=1e-12, abs_tol=1e-12)
