"""Feature transforms against closed forms computed in the test."""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lla_studio.core.errors import SessionError, TransformError
from lla_studio.core.features import FeatureMap
from lla_studio.core.session import load_session, session_from_dict, session_to_dict
from lla_studio.core.space import ChoiceParameter, Condition, IntegerParameter, RealParameter, SearchSpace
from lla_studio.core.transforms import (
    AffineStep,
    CombineStep,
    DropStep,
    GroupRatioStep,
    LogStep,
    OneHotStep,
    RenameStep,
    TransformChain,
    transform_chain_from_dict,
)

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"

SPACE = SearchSpace([
    ChoiceParameter("optimizer", ("adam", "sgd", "rms-prop")),
    RealParameter("lr", 1e-4, 1.0, log=True),
    IntegerParameter("w1", 4, 64, log=True),
    IntegerParameter("w2", 8, 128, log=True),
    IntegerParameter("w3", 16, 256, log=True),
    RealParameter("x", -1.0, 3.0),
])


def test_chain_output_names_and_values():
    chain = TransformChain((
        OneHotStep("optimizer"),
        LogStep(("lr",)),
        GroupRatioStep(("w1", "w2", "w3"), group="width"),
        AffineStep("x", scale=2.0, shift=1.0, name="x2"),
        RenameStep((("log_lr", "loglr"),)),
    ))
    fmap = FeatureMap(SPACE, chain)
    assert fmap.feature_names == (
        "optimizer_adam", "optimizer_sgd", "optimizer_rms_prop", "loglr",
        "width_logmean", "w1_ratio", "w2_ratio", "w3_ratio", "x2",
    )
    config = {"optimizer": "rms-prop", "lr": 0.01, "w1": 8, "w2": 32, "w3": 200, "x": 0.5}
    f = fmap.features_of([config])[0]
    logs = np.log([8.0, 32.0, 200.0])
    expected = [0, 0, 1, math.log(0.01), logs.mean(), *(logs - logs.mean()), 2.0]
    np.testing.assert_allclose(f, expected, rtol=1e-12, atol=1e-12)
    # the log ratios of a group sum to zero and the geometric mean recovers the product
    assert abs(f[5:8].sum()) < 1e-12
    assert math.isclose(math.exp(3 * f[4]), 8 * 32 * 200, rel_tol=1e-12)


def test_feature_bounds_enclose_samples_and_are_attained():
    chain = TransformChain((GroupRatioStep(("w1", "w2", "w3"), group="width"), LogStep(("lr",))))
    fmap = FeatureMap(SPACE, chain)
    bounds = fmap.feature_bounds()
    feats = fmap.features_of(SPACE.sample(512, seed=1))
    assert np.all(feats >= bounds[0] - 1e-9) and np.all(feats <= bounds[1] + 1e-9)
    # the corner w1 = 64, w2 = 8, w3 = 16 attains the upper bound of w1_ratio
    corner = {"optimizer": "adam", "lr": 0.1, "w1": 64, "w2": 8, "w3": 16, "x": 0.0}
    i = fmap.feature_names.index("w1_ratio")
    assert math.isclose(fmap.features_of([corner])[0, i], bounds[1, i], rel_tol=1e-12)


def test_plain_ratios_option():
    fmap = FeatureMap(SPACE, TransformChain((GroupRatioStep(("w1", "w2"), group="g", log_ratios=False),)))
    f = fmap.features_of([{"optimizer": "adam", "lr": 0.1, "w1": 4, "w2": 64, "w3": 16, "x": 0.0}])[0]
    names = fmap.feature_names
    assert math.isclose(f[names.index("w1_ratio")], 4 / 16, rel_tol=1e-12)
    assert math.isclose(f[names.index("w2_ratio")], 64 / 16, rel_tol=1e-12)


def test_features_are_differentiable_in_the_encoding():
    fmap = FeatureMap(SPACE, TransformChain((LogStep(("lr",)),)))
    U = torch.full((1, SPACE.dim), 0.3, dtype=torch.float64, requires_grad=True)
    fmap(U)[0, fmap.feature_names.index("log_lr")].backward()
    # log_lr = log(1e-4) + u * (log 1 - log 1e-4): derivative log(1e4)
    assert math.isclose(U.grad[0, 1].item(), math.log(1e4), rel_tol=1e-12)


@pytest.mark.parametrize(
    "step, match",
    [
        (LogStep(("ghost",)), r"transform step 0 \(log\): unknown feature 'ghost'"),
        (LogStep(("x",)), r"log of feature 'x' needs values > 0, its lower bound is -1"),
        (OneHotStep("lr"), r"one-hot needs a choice feature, 'lr' is numeric"),
        (GroupRatioStep(("w1", "x"), group="g"), r"group 'g' needs positive features, 'x'"),
        (DropStep(("lr", "nope")), r"unknown feature 'nope'"),
        (RenameStep((("lr", "w1"),)), r"two features share a name"),
    ],
)
def test_bad_chains_name_the_step_and_feature(step, match):
    with pytest.raises(TransformError, match=match):
        FeatureMap(SPACE, TransformChain((step,)))


def test_chain_from_dict_errors_name_the_path():
    with pytest.raises(SessionError, match=r"^transforms\[1\].step: unknown transform step 'sqrt'"):
        transform_chain_from_dict([{"step": "log", "features": ["lr"]}, {"step": "sqrt", "features": ["lr"]}])
    with pytest.raises(SessionError, match=r"^transforms\[0\].features\[1\]: expected a feature name, got 3"):
        transform_chain_from_dict([{"step": "log", "features": ["lr", 3]}])


def test_shipped_cnn_session_uses_orthogonal_groups():
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    names = session.features.feature_names
    for group in ("weight_decay", "width"):
        assert f"{group}_logmean" in names
    assert sum(n.startswith("weight_decay_") and n.endswith("_ratio") for n in names) == 5
    assert {"channels_conv1_ratio", "channels_conv2_ratio", "channels_conv3_ratio", "dense_units_ratio"} <= set(names)


def test_inactive_parameters_do_not_move_the_features():
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    space, fmap = session.search_space, FeatureMap.of(session)
    adam = {**space.default_config(), "optimizer": "adam"}
    U = torch.as_tensor(space.encode_many([adam, adam]), dtype=torch.float64)
    # scramble the coordinates of the sgd-only parameters in the second row: features must not change
    for name in ("nesterov", "max_momentum", "min_momentum_fraction"):
        U[1, space.index(name)] = 0.123
    F = fmap(U)
    assert torch.equal(F[0], F[1])
    # ...while under sgd they are live
    sgd = {**space.default_config(), "optimizer": "sgd", "nesterov": True, "max_momentum": 0.9, "min_momentum_fraction": 0.5}
    U = torch.as_tensor(space.encode_many([sgd, sgd]), dtype=torch.float64)
    U[1, space.index("max_momentum")] = 0.123
    F = fmap(U)
    assert not torch.equal(F[0], F[1])


# ---------------------------------------------------------------------- combine step
# independent parameters of both signs: every corner of a combine's inputs is reachable
SIGNED = SearchSpace([
    RealParameter("a", -2.0, 3.0),
    RealParameter("b", 0.5, 4.0),
    RealParameter("c", -1.0, -0.25),
    RealParameter("p", 1e-3, 10.0, log=True),
    IntegerParameter("q", 4, 64, log=True),
])

COMBINES = [
    ("sum", ("a", "b", "c"), lambda v: v["a"] + v["b"] + v["c"]),
    ("product", ("a", "c"), lambda v: v["a"] * v["c"]),
    ("product", ("a", "b", "c"), lambda v: v["a"] * v["b"] * v["c"]),
    ("ratio", ("a", "c"), lambda v: v["a"] / v["c"]),
    ("ratio", ("c", "b"), lambda v: v["c"] / v["b"]),
    ("log_product", ("b", "p", "q"), lambda v: np.log(v["b"] * v["p"] * v["q"])),
    ("log_ratio", ("p", "q"), lambda v: np.log(v["p"] / v["q"])),
]
COMBINE_IDS = [f"{op}-{'-'.join(f)}" for op, f, _ in COMBINES]


def _columns(configs):
    return {k: np.array([float(c[k]) for c in configs]) for k in configs[0]}


@pytest.mark.parametrize("op, feats, reference", COMBINES, ids=COMBINE_IDS)
def test_combine_values_match_numpy(op, feats, reference):
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep(op, feats, "z"),)))
    configs = SIGNED.sample(200, seed=7)
    got = fmap.features_of(configs)
    names = fmap.feature_names
    np.testing.assert_allclose(got[:, names.index("z")], reference(_columns(configs)), rtol=1e-12, atol=1e-12)
    # keep=True: the inputs stay unchanged and the new feature follows the first input
    assert names.index("z") == names.index(feats[0]) + 1
    for f in feats:
        np.testing.assert_allclose(got[:, names.index(f)], _columns(configs)[f], rtol=1e-12)


@pytest.mark.parametrize("op, feats, reference", COMBINES, ids=COMBINE_IDS)
def test_combine_bounds_enclose_samples_and_are_reached_at_corners(op, feats, reference):
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep(op, feats, "z", keep=False),)))
    assert "z" in fmap.feature_names and not set(feats) & set(fmap.feature_names)
    j = fmap.feature_names.index("z")
    lo, hi = fmap.feature_bounds()[:, j]
    values = fmap.features_of(SIGNED.sample(2000, seed=11))[:, j]
    tol = 1e-12 * max(1.0, abs(lo), abs(hi))
    assert values.min() >= lo - tol and values.max() <= hi + tol
    # tight: the extremes over the corners of the inputs' box are the bounds
    base = SIGNED.default_config()
    corners = [
        {**base, **{f: SIGNED[f].low if end == 0 else SIGNED[f].high for f, end in zip(feats, ends)}}
        for ends in itertools.product((0, 1), repeat=len(feats))
    ]
    at_corners = fmap.features_of(corners)[:, j]
    assert math.isclose(at_corners.min(), lo, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(at_corners.max(), hi, rel_tol=1e-12, abs_tol=1e-12)


def test_combine_bounds_of_a_signed_product_by_hand():
    # [-2, 3] * [-1, -0.25]: corners 2, 0.5, -3, -0.75
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep("product", ("a", "c"), "z"),)))
    np.testing.assert_allclose(fmap.feature_bounds()[:, fmap.feature_names.index("z")], [-3.0, 2.0], rtol=0)
    # [-2, 3] / [-1, -0.25] = [-2, 3] * [-4, -1]
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep("ratio", ("a", "c"), "z"),)))
    np.testing.assert_allclose(fmap.feature_bounds()[:, fmap.feature_names.index("z")], [-12.0, 8.0], rtol=0)


@pytest.mark.parametrize("op, feats, reference", COMBINES, ids=COMBINE_IDS)
def test_combine_gradients(op, feats, reference):
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep(op, feats, "z"),)))
    gen = torch.Generator().manual_seed(3)
    U = (0.05 + 0.9 * torch.rand(4, SIGNED.dim, generator=gen, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(fmap, (U,), eps=1e-6, atol=1e-7)


def test_declared_bounds_replace_the_derived_ones():
    step = CombineStep("sum", ("a", "b"), "z", low=-10.0, high=10.0)
    fmap = FeatureMap(SIGNED, TransformChain((step,)))
    np.testing.assert_array_equal(fmap.feature_bounds()[:, fmap.feature_names.index("z")], [-10.0, 10.0])
    # one declared end, the other derived ([-1.5, 7])
    fmap = FeatureMap(SIGNED, TransformChain((CombineStep("sum", ("a", "b"), "z", high=8.0),)))
    np.testing.assert_array_equal(fmap.feature_bounds()[:, fmap.feature_names.index("z")], [-1.5, 8.0])


def test_combining_conditional_features_uses_their_placeholders():
    space = SearchSpace([
        ChoiceParameter("optimizer", ("adam", "sgd")),
        RealParameter("momentum", 0.0, 0.99, default=0.9, conditions=(Condition("optimizer", ("sgd",)),)),
        RealParameter("fraction", 0.0, 1.0, default=0.5, conditions=(Condition("optimizer", ("sgd",)),)),
    ])
    fmap = FeatureMap(space, TransformChain((CombineStep("product", ("fraction", "momentum"), "min_momentum"),)))
    f = fmap.features_of([{"optimizer": "adam"}, {"optimizer": "sgd", "momentum": 0.8, "fraction": 0.25}])
    j = fmap.feature_names.index("min_momentum")
    assert f[0, j] == pytest.approx(0.9 * 0.5, rel=1e-12) and f[1, j] == pytest.approx(0.2, rel=1e-12)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: CombineStep("product", ("lr", "ghost"), "z"), r"^transform step 0 \(combine\): product 'z': unknown feature 'ghost'"),
        (lambda: CombineStep("sum", ("lr", "x", "lr"), "z"), r"^combine step 'z': feature 'lr' is listed twice"),
        (lambda: CombineStep("product", ("lr",), "z"), r"^combine step 'z': product needs at least two features, got \['lr'\]"),
        (lambda: CombineStep("sum", (), "z"), r"^combine step 'z': sum needs at least two features, got \[\]"),
        (lambda: CombineStep("ratio", ("lr", "x", "w1"), "z"), r"^combine step 'z': ratio takes exactly two features"),
        (lambda: CombineStep("log_ratio", ("lr", "x", "w1"), "z"), r"^combine step 'z': log_ratio takes exactly two features"),
        (lambda: CombineStep("log_product", ("lr", "x"), "z"), r"^transform step 0 \(combine\): log_product 'z': log of feature 'x' needs values > 0, its lower bound is -1"),
        (lambda: CombineStep("log_ratio", ("w1", "x"), "z"), r"log_ratio 'z': log of feature 'x' needs values > 0"),
        (lambda: CombineStep("ratio", ("lr", "x"), "z"), r"^transform step 0 \(combine\): ratio 'z': denominator 'x' can be 0 \(its bounds are \[-1, 3\]\)"),
        (lambda: CombineStep("sum", ("lr", "x"), "w1"), r"^transform step 0 \(combine\): sum 'w1': output name 'w1' clashes with an existing feature"),
        (lambda: CombineStep("sum", ("lr", "x"), "lr"), r"sum 'lr': output name 'lr' clashes"),
        (lambda: CombineStep("sum", ("lr", "x"), "log lr"), r"^combine step 'log lr': feature name 'log lr' must start with a letter"),
        (lambda: CombineStep("power", ("lr", "x"), "z"), r"^combine step 'z': unknown op 'power' \(use sum, product, ratio, log_product, log_ratio\)"),
        (lambda: CombineStep("sum", ("optimizer", "x"), "z"), r"sum 'z': feature 'optimizer' is a choice index"),
        (lambda: CombineStep("sum", ("lr", "x"), "z", low=0.0), r"sum 'z': declared low 0 is above the derived lower bound -0.9999"),
        (lambda: CombineStep("sum", ("lr", "x"), "z", high=3.5), r"sum 'z': declared high 3.5 is below the derived upper bound 4"),
        (lambda: CombineStep("sum", ("lr", "x"), "z", low=5.0, high=5.0), r"^combine step 'z': declared low 5 must be below high 5"),
        (lambda: CombineStep("sum", ("lr", "x"), "z", keep="yes"), r"^combine step 'z': keep must be true or false"),
    ],
)
def test_bad_combine_steps_name_the_step_and_feature(make, match):
    with pytest.raises(TransformError, match=match):
        FeatureMap(SPACE, TransformChain((make(),)))


def test_combine_in_place_of_an_input_may_reuse_its_name():
    fmap = FeatureMap(SPACE, TransformChain((CombineStep("product", ("lr", "x"), "lr", keep=False),)))
    assert fmap.feature_names == ("optimizer", "lr", "w1", "w2", "w3")
    f = fmap.features_of([{"optimizer": "sgd", "lr": 0.5, "w1": 8, "w2": 16, "w3": 32, "x": -0.5}])[0]
    assert f[1] == pytest.approx(-0.25, rel=1e-12)


def _branin_doc(step: dict) -> dict:
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["transforms"] = [
        {"step": "affine", "feature": "x1", "shift": 6.0, "name": "x1s"},  # [1, 16]
        {"step": "combine", "op": "sum", "features": ["x1s", "x2"], "name": "s"},  # [1, 31]
        {"step": "combine", "op": "product", "features": ["x1s", "s"], "name": "t"},  # [1, 496]
        {"step": "combine", **step},
    ]
    return doc


GOOD = {"op": "log_product", "features": ["x1s", "s"], "name": "z"}


@pytest.mark.parametrize(
    "change, match",
    [
        ({"features": ["x1s", "ghost"]}, r"^transforms\[3\]: transform step 3 \(combine\): log_product 'z': unknown feature 'ghost'"),
        ({"features": ["x1s", "x1s"]}, r"^transforms\[3\]: combine step 'z': feature 'x1s' is listed twice"),
        ({"features": ["x1s"]}, r"^transforms\[3\]: combine step 'z': log_product needs at least two features"),
        ({"features": []}, r"^transforms\[3\]: combine step 'z': log_product needs at least two features"),
        ({"op": "ratio", "features": ["x1s", "s", "t"]}, r"^transforms\[3\]: combine step 'z': ratio takes exactly two"),
        ({"features": ["x1s", "x2"]}, r"^transforms\[3\]: transform step 3 \(combine\): log_product 'z': log of feature 'x2' needs values > 0, its lower bound is 0"),
        ({"op": "ratio", "features": ["x1s", "x2"]}, r"^transforms\[3\]: .*ratio 'z': denominator 'x2' can be 0 \(its bounds are \[0, 15\]\)"),
        ({"name": "t"}, r"^transforms\[3\]: transform step 3 \(combine\): log_product 't': output name 't' clashes with an existing feature"),
        ({"name": "2z"}, r"^transforms\[3\]: combine step '2z': feature name '2z' must start"),
        ({"op": "power"}, r"^transforms\[3\]\.op: unknown combine op 'power' \(use sum, product"),
        ({"scale": 2.0}, r"^transforms\[3\]: unknown field 'scale'"),
        ({"keep": "yes"}, r"^transforms\[3\]\.keep: expected true or false"),
        ({"low": "0"}, r"^transforms\[3\]\.low: expected a finite number"),
        ({"low": 1.0}, r"^transforms\[3\]: transform step 3 \(combine\): log_product 'z': declared low 1 is above the derived lower bound 0"),
        ({"features": ["x1s", 2]}, r"^transforms\[3\]\.features\[1\]: expected a feature name, got 2"),
        ({"name": None}, r"^transforms\[3\]\.name: expected a string"),
    ],
)
def test_bad_combine_steps_in_a_session_name_the_json_path(change, match):
    doc = _branin_doc({**GOOD, **change})
    with pytest.raises(SessionError, match=match):
        session_from_dict(doc)


def test_combine_in_a_session_reads_and_computes():
    session = session_from_dict(_branin_doc({**GOOD, "keep": False, "high": 7.0}))
    fmap = FeatureMap.of(session)
    # x1s and s consumed; z takes x1s's place
    assert fmap.feature_names == ("z", "t", "x2")
    np.testing.assert_allclose(fmap.feature_bounds()[:, 0], [0.0, 7.0], atol=1e-15)
    f = fmap.features_of([{"x1": 1.0, "x2": 2.0}])[0]
    # x1s = 7, s = x1s + x2 = 9, t = 63
    np.testing.assert_allclose(f, [math.log(63.0), 63.0, 2.0], rtol=1e-12)


def test_combine_json_round_trip():
    chain = TransformChain((
        LogStep(("lr",)),
        CombineStep("log_ratio", ("w1", "w2"), "log_w1_per_w2"),
        CombineStep("product", ("log_lr", "x"), "lr_x", keep=False, low=-40.0),
        CombineStep("sum", ("w1", "w2", "w3"), "w_total", low=0.0, high=500.0),
        CombineStep("ratio", ("w3", "w1"), "w3_per_w1", keep=False),
    ))
    listed = chain.to_list()
    assert listed[2] == {"step": "combine", "op": "product", "features": ["log_lr", "x"], "name": "lr_x", "keep": False, "low": -40.0}
    assert listed[1] == {"step": "combine", "op": "log_ratio", "features": ["w1", "w2"], "name": "log_w1_per_w2"}
    again = transform_chain_from_dict(json.loads(json.dumps(listed)))
    assert again == chain
    assert again.to_list() == listed
    assert FeatureMap(SPACE, again).feature_names == FeatureMap(SPACE, chain).feature_names
    # a version-1 session with combine steps: written and read back, the same session
    session = session_from_dict(_branin_doc(copy.deepcopy(GOOD)))
    written = session_to_dict(session)
    assert written["version"] == 1
    assert written["transforms"][3] == {"step": "combine", **GOOD}
    assert session_from_dict(json.loads(json.dumps(written))) == session
