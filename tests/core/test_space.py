"""Search space: validation, conditions, encoding, sampling. References are computed in the tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lla_studio.core.errors import SearchSpaceError, SessionError
from lla_studio.core.session import load_session
from lla_studio.core.space import (
    ChoiceParameter,
    Condition,
    IntegerParameter,
    RealParameter,
    SearchSpace,
)
from lla_studio.core.space_reader import search_space_from_dict

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"
SHIPPED = {name: load_session(SESSIONS / f"{name}.json").search_space for name in ("branin", "cnn_hyperparameters")}


def _active_reference(space: SearchSpace, values: dict) -> set[str]:
    """Independent fixed-point evaluation of which parameters are active."""
    active = {p.name for p in space.parameters if not p.conditions}
    changed = True
    while changed:
        changed = False
        for p in space.parameters:
            if p.name in active:
                continue
            if all(c.parent in active and values.get(c.parent) in c.values for c in p.conditions):
                active.add(p.name)
                changed = True
    return active


@st.composite
def configurations(draw, space: SearchSpace):
    raw = {}
    for p in space.parameters:
        if isinstance(p, RealParameter):
            raw[p.name] = draw(st.floats(p.low, p.high, allow_nan=False))
        elif isinstance(p, IntegerParameter):
            raw[p.name] = draw(st.integers(p.low, p.high))
        else:
            raw[p.name] = draw(st.sampled_from(p.choices))
    active = _active_reference(space, raw)
    return {k: v for k, v in raw.items() if k in active}


def _assert_same_config(a: dict, b: dict, space: SearchSpace) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(space[k], RealParameter):
            assert math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=1e-12 * (space[k].high - space[k].low)), k
        else:
            assert a[k] == b[k] and type(a[k]) is type(b[k]), k


@pytest.mark.parametrize("name", sorted(SHIPPED))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_decode_encode_round_trip(name, data):
    space = SHIPPED[name]
    config = data.draw(configurations(space))
    assert space.validate(config) == config
    u = space.encode(config)
    assert u.shape == (space.dim,) and np.all((u >= 0) & (u <= 1))
    _assert_same_config(space.decode(u), config, space)


@pytest.mark.parametrize("name", sorted(SHIPPED))
@pytest.mark.parametrize("method", ["sobol", "uniform"])
def test_samples_validate_and_inactive_are_exactly_failed_conditions(name, method):
    space = SHIPPED[name]
    configs = space.sample(256, seed=3, method=method)
    assert len(configs) == 256
    for c in configs:
        assert space.validate(c) == c
        # Inactive parameters are exactly those whose conditions fail under the sampled parent values.
        full = dict(c)
        for p in space.parameters:
            if p.name not in c:
                full[p.name] = p.placeholder
        assert set(c) == _active_reference(space, c)


def test_sampling_is_seeded():
    space = SHIPPED["cnn_hyperparameters"]
    assert space.sample(50, seed=7) == space.sample(50, seed=7)
    assert space.sample(50, seed=7) != space.sample(50, seed=8)
    assert space.sample(50, seed=7, method="uniform") == space.sample(50, seed=7, method="uniform")


def test_sobol_covers_each_active_range_of_the_cnn_space():
    space = SHIPPED["cnn_hyperparameters"]
    assert space.dim == 19
    configs = space.sample(1024, seed=0)
    for p in space.parameters:
        rows = [space.encode({**c})[space.index(p.name)] for c in configs if p.name in c]
        assert len(rows) > 300, p.name
        lo, hi = min(rows), max(rows)
        assert lo <= 0.05 and hi >= 0.95, (p.name, lo, hi)
    # conditional parameters are active in about half the samples (optimizer is a fair coin)
    n_sgd = sum(c["optimizer"] == "sgd" for c in configs)
    assert 450 < n_sgd < 574
    assert all(("nesterov" in c) == (c["optimizer"] == "sgd") for c in configs)


def test_encoding_matches_closed_form():
    space = SearchSpace([
        RealParameter("x", -5.0, 10.0),
        RealParameter("lr", 1e-4, 1.0, log=True),
        IntegerParameter("n", 2, 60, log=True),
        ChoiceParameter("c", ("a", "b", "c")),
    ])
    u = space.encode({"x": 1.0, "lr": 1e-2, "n": 8, "c": "c"})
    np.testing.assert_allclose(u, [6 / 15, 0.5, math.log(4) / math.log(30), 1.0], rtol=1e-14)
    assert space.decode([0.5, 0.25, 0.999, 0.74]) == {"x": 2.5, "lr": pytest.approx(1e-3), "n": 60, "c": "b"}
    # integer decoding rounds in value space; out-of-cube inputs are clipped
    assert space.decode([-1.0, 2.0, math.log(7.4 / 2) / math.log(30), 0.2])["n"] == 7
    assert space.decode([-1.0, 2.0, 0.0, 0.2])["lr"] == 1.0


def test_chains_of_conditions():
    space = SearchSpace([
        ChoiceParameter("optimizer", ("adam", "sgd")),
        ChoiceParameter("momentum_kind", ("none", "classic", "nesterov"), conditions=(Condition("optimizer", ("sgd",)),)),
        RealParameter("momentum", 0.0, 0.99, conditions=(Condition("momentum_kind", ("classic", "nesterov")),)),
    ])
    assert space.active_names({"optimizer": "adam", "momentum_kind": "classic"}) == {"optimizer"}
    assert space.active_names({"optimizer": "sgd", "momentum_kind": "classic"}) == {"optimizer", "momentum_kind", "momentum"}
    combos = space.choice_combinations()
    assert combos == [
        {"optimizer": "adam"},
        {"optimizer": "sgd", "momentum_kind": "none"},
        {"optimizer": "sgd", "momentum_kind": "classic"},
        {"optimizer": "sgd", "momentum_kind": "nesterov"},
    ]
    with pytest.raises(SearchSpaceError, match="'momentum'.*inactive"):
        space.validate({"optimizer": "sgd", "momentum_kind": "none", "momentum": 0.5})


def test_choice_values_are_type_aware():
    p = ChoiceParameter("flag", (True, 1, "1", 1.5))
    assert p.index(1) == 1 and p.index(True) == 0 and p.index("1") == 2
    with pytest.raises(SearchSpaceError, match="'flag'.*2"):
        p.check_value(2)


# ------------------------------------------------------------------- bad input names the culprit
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: RealParameter("lr", 1.0, 1.0), r"'lr': needs low < high, got low=1, high=1"),
        (lambda: RealParameter("lr", 2.0, 1.0), r"'lr': needs low < high"),
        (lambda: RealParameter("lr", 0.0, 1.0, log=True), r"'lr': log scale needs low > 0, got low=0"),
        (lambda: IntegerParameter("n", -1, 5, log=True), r"'n': log scale needs low > 0"),
        (lambda: IntegerParameter("n", 0.5, 5), r"'n': low must be an integer"),
        (lambda: ChoiceParameter("opt", ()), r"'opt': choices must not be empty"),
        (lambda: ChoiceParameter("opt", ("a", "b", "a")), r"'opt': duplicate choice 'a'"),
        (lambda: ChoiceParameter("opt", ("a", None)), r"'opt': choice None is not a JSON scalar"),
        (lambda: RealParameter("x", 0.0, 1.0, default=2.0), r"'x': default 2 is outside \[0, 1\]"),
        (lambda: IntegerParameter("n", 1, 5, default=9), r"'n': default 9 is outside \[1, 5\]"),
        (lambda: ChoiceParameter("opt", ("a", "b"), default="c"), r"'opt': default 'c' is not one of"),
        (lambda: SearchSpace([RealParameter("x"), RealParameter("x")]), r"duplicate parameter name 'x'"),
        (
            lambda: SearchSpace([RealParameter("x", conditions=(Condition("ghost", ("a",)),))]),
            r"'x': condition on unknown parameter 'ghost'",
        ),
        (
            lambda: SearchSpace([ChoiceParameter("o", ("a", "b")), RealParameter("x", conditions=(Condition("o", ("c",)),))]),
            r"'x': condition value 'c' is impossible for parameter 'o'",
        ),
        (
            lambda: SearchSpace([
                ChoiceParameter("a", ("u", "v"), conditions=(Condition("b", ("u",)),)),
                ChoiceParameter("b", ("u", "v"), conditions=(Condition("c", ("u",)),)),
                ChoiceParameter("c", ("u", "v"), conditions=(Condition("a", ("u",)),)),
            ]),
            r"cycle of conditions: a -> b -> c -> a",
        ),
    ],
)
def test_impossible_spaces_are_refused(make, match):
    with pytest.raises(SearchSpaceError, match=match):
        make()


@pytest.mark.parametrize(
    "config, match",
    [
        ({"x1": 1.0}, r"'x2': missing value"),
        ({"x1": 1.0, "x2": 2.0, "x3": 0.0}, r"unknown parameter 'x3'"),
        ({"x1": 11.0, "x2": 2.0}, r"'x1': value 11 is outside \[-5, 10\]"),
        ({"x1": "1.0", "x2": 2.0}, r"'x1': expected a number, got str"),
        ({"x1": True, "x2": 2.0}, r"'x1': expected a number, got bool"),
        ({"x1": float("nan"), "x2": 2.0}, r"'x1': value must be finite"),
    ],
)
def test_bad_configurations_name_the_field(config, match):
    with pytest.raises(SearchSpaceError, match=match):
        SHIPPED["branin"].validate(config)


def test_bad_configuration_for_integer_and_choice():
    space = SHIPPED["cnn_hyperparameters"]
    good = space.default_config()
    assert space.validate(good) == good
    with pytest.raises(SearchSpaceError, match=r"'epochs': expected an integer, got 2.5"):
        space.validate({**good, "epochs": 2.5})
    with pytest.raises(SearchSpaceError, match=r"'optimizer': value 'rmsprop' is not one of the choices"):
        space.validate({**good, "optimizer": "rmsprop"})
    # an integral float is accepted and normalized to int
    assert space.validate({**good, "epochs": 20.0})["epochs"] == 20


def test_space_from_dict_errors_name_the_json_path():
    with pytest.raises(SessionError, match=r"^search_space.parameters\[1\]: parameter 'lr': log scale needs low > 0"):
        search_space_from_dict({"parameters": [
            {"name": "x", "type": "real", "low": 0, "high": 1},
            {"name": "lr", "type": "real", "low": 0, "high": 1, "log": True},
        ]})
    with pytest.raises(SessionError, match=r"^search_space.parameters\[0\].type: unknown parameter type 'float'"):
        search_space_from_dict({"parameters": [{"name": "x", "type": "float", "low": 0, "high": 1}]})
    with pytest.raises(SessionError, match=r"^search_space.parameters\[0\].low: expected a finite number, got a string"):
        search_space_from_dict({"parameters": [{"name": "x", "type": "real", "low": "0", "high": 1}]})
    with pytest.raises(SessionError, match=r"^search_space.parameters\[1\].name: duplicate parameter name 'x'"):
        search_space_from_dict({"parameters": [
            {"name": "x", "type": "real", "low": 0, "high": 1},
            {"name": "x", "type": "integer", "low": 0, "high": 1},
        ]})
    with pytest.raises(SessionError, match=r"^search_space.parameters\[0\]: unknown field 'lwo'"):
        search_space_from_dict({"parameters": [{"name": "x", "type": "real", "lwo": 0, "high": 1}]})


def test_boundary_hits_name_the_parameters_at_an_end_of_their_range():
    space = search_space_from_dict(
        {"parameters": [
            {"name": "x", "type": "real", "low": -5.0, "high": 10.0},
            {"name": "lr", "type": "real", "low": 1e-5, "high": 1e-1, "log": True},
            {"name": "n", "type": "integer", "low": 1, "high": 1000},
            {"name": "opt", "type": "choice", "choices": ["sgd", "adam"]},
            {"name": "momentum", "type": "real", "low": 0.0, "high": 0.99,
             "conditions": [{"parent": "opt", "values": ["sgd"]}]},
        ]}
    )
    base = {"x": 2.5, "lr": 1e-3, "n": 500, "opt": "adam"}
    assert space.boundary_hits(base) == ()
    # 1 % of the range (0.15): -5 + 0.14 is inside the band, -5 + 0.16 is not; the log range counts for lr
    assert space.boundary_hits(dict(base, x=-4.86, lr=1e-1)) == ("x low", "lr high")
    assert space.boundary_hits(dict(base, x=-4.84, lr=10 ** (-5 + 4 * 0.011))) == ()
    assert space.boundary_hits(dict(base, lr=10 ** (-5 + 4 * 0.009))) == ("lr low",)
    assert space.boundary_hits(dict(base, n=1000)) == ("n high",)
    # a choice has no boundary; an inactive parameter is skipped, an active one is not
    assert space.boundary_hits(dict(base, opt="adam", momentum=0.0)) == ()
    assert space.boundary_hits(dict(base, opt="sgd", momentum=0.0)) == ("momentum low",)
    assert space.boundary_hits(dict(base, x=10.0), tol=0.0) == ("x high",)
