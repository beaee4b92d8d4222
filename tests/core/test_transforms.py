"""Feature transforms against closed forms computed in the test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lla_studio.core.errors import SessionError, TransformError
from lla_studio.core.session import load_session
from lla_studio.core.space import ChoiceParameter, IntegerParameter, RealParameter, SearchSpace
from lla_studio.core.transforms import (
    AffineStep,
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
    fmap = chain.compile(SPACE)
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
    fmap = chain.compile(SPACE)
    bounds = fmap.feature_bounds()
    feats = fmap.features_of(SPACE.sample(512, seed=1))
    assert np.all(feats >= bounds[0] - 1e-9) and np.all(feats <= bounds[1] + 1e-9)
    # the corner w1 = 64, w2 = 8, w3 = 16 attains the upper bound of w1_ratio
    corner = {"optimizer": "adam", "lr": 0.1, "w1": 64, "w2": 8, "w3": 16, "x": 0.0}
    i = fmap.feature_names.index("w1_ratio")
    assert math.isclose(fmap.features_of([corner])[0, i], bounds[1, i], rel_tol=1e-12)


def test_plain_ratios_option():
    fmap = TransformChain((GroupRatioStep(("w1", "w2"), group="g", log_ratios=False),)).compile(SPACE)
    f = fmap.features_of([{"optimizer": "adam", "lr": 0.1, "w1": 4, "w2": 64, "w3": 16, "x": 0.0}])[0]
    names = fmap.feature_names
    assert math.isclose(f[names.index("w1_ratio")], 4 / 16, rel_tol=1e-12)
    assert math.isclose(f[names.index("w2_ratio")], 64 / 16, rel_tol=1e-12)


def test_features_are_differentiable_in_the_encoding():
    fmap = TransformChain((LogStep(("lr",)),)).compile(SPACE)
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
        TransformChain((step,)).compile(SPACE)


def test_chain_from_dict_errors_name_the_path():
    with pytest.raises(SessionError, match=r"^transforms\[1\].step: unknown transform step 'sqrt'"):
        transform_chain_from_dict([{"step": "log", "features": ["lr"]}, {"step": "sqrt", "features": ["lr"]}])
    with pytest.raises(SessionError, match=r"^transforms\[0\].features\[1\]: expected a feature name, got 3"):
        transform_chain_from_dict([{"step": "log", "features": ["lr", 3]}])


def test_shipped_cnn_session_uses_orthogonal_groups():
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    names = session.feature_map.feature_names
    for group in ("weight_decay", "width"):
        assert f"{group}_logmean" in names
    assert sum(n.startswith("weight_decay_") and n.endswith("_ratio") for n in names) == 5
    assert {"channels_conv1_ratio", "channels_conv2_ratio", "channels_conv3_ratio", "dense_units_ratio"} <= set(names)


def test_inactive_parameters_do_not_move_the_features():
    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    space, fmap = session.search_space, session.feature_map
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
