"""The ReLU extrapolation lab: settings validation, and the pathology itself on the default problem.

The numbers asserted here were verified on the default problem (seed 0, width 50, depth 2, LogEI,
fixed input frame). The fits do not depend on the box width in the fixed frame, so one module-wide
`FitCache` fits each model once and every box width reuses it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from lla_studio.core.errors import Cancelled
from lla_studio.core.relu_lab import (
    BOUNDARY_FRACTION,
    GP,
    FitCache,
    ReluLabError,
    ReluLabSettings,
    boundary_rate,
    compute_relu_lab,
    default_objective,
    make_data,
)


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dim": 3}, "dim"),
        ({"box_scale": 0.5}, "box_scale"),
        ({"box_scale": 2000}, "box_scale"),
        ({"box_scale": float("nan")}, "box_scale"),
        ({"activations": ("relu", "swish")}, "activations[1]"),
        ({"activations": ("relu", "relu")}, "activations[1]"),
        ({"activations": "relu"}, "activations"),
        ({"activations": (), "include_gp": False}, "activations"),
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"prior_precision": -1.0}, "prior_precision"),
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"n_data": 1}, "n_data"),
        ({"noise_std": float("inf")}, "noise_std"),
        ({"seed": -1}, "seed"),
        ({"acquisition": "ei"}, "acquisition"),
        ({"beta": 0.0}, "beta"),
        ({"frame": "unit"}, "frame"),
        ({"grid_size": 5}, "grid_size"),
        ({"include_gp": 1}, "include_gp"),
    ],
)
def test_invalid_settings_name_the_field(kwargs, field):
    with pytest.raises(ReluLabError) as info:
        ReluLabSettings(**kwargs)
    assert str(info.value).startswith(f"{field}:"), str(info.value)
    assert isinstance(info.value, ValueError)


def test_settings_defaults_and_derived_values():
    s = ReluLabSettings()
    assert s.models == ("relu", "tanh", GP)
    assert s.resolved_n_data == 12 and ReluLabSettings(dim=2).resolved_n_data == 20
    assert s.prior_precision is None  # tuned on the evidence
    np.testing.assert_array_equal(ReluLabSettings(box_scale=100).box(), [[-100.0], [100.0]])
    assert ReluLabSettings(activations=["tanh"], include_gp=False).models == ("tanh",)
    assert ReluLabSettings(activations=(), include_gp=True).models == (GP,)
    assert s.to_dict()["activations"] == ["relu", "tanh"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.box_scale = 3.0  # type: ignore[misc]


def test_default_problem_has_its_maximum_inside_the_data_region():
    x = np.linspace(-200, 200, 40001)[:, None]
    f = default_objective(x)
    assert abs(x[np.argmax(f), 0] - 0.3) < 0.02
    assert np.all(np.abs(f[np.abs(x[:, 0]) > 5]) < 1e-6)  # nothing to find far away
    X, y = make_data(ReluLabSettings())
    assert X.shape == (12, 1) and y.shape == (12,)
    assert np.all(np.abs(X) <= 1) and np.all(np.diff(X[:, 0]) >= 0)
    X2, y2 = make_data(ReluLabSettings())
    np.testing.assert_array_equal(X, X2)  # seeded
    np.testing.assert_array_equal(y, y2)


# ---------------------------------------------------------------------- the pathology (1-D)
@pytest.fixture(scope="module")
def lab():
    """Results of the default problem at several box widths, with shared fits."""
    cache = FitCache()
    results = {scale: compute_relu_lab(ReluLabSettings(box_scale=scale), cache=cache) for scale in (100, 1, 10, 1000)}
    return results, cache


def test_fits_are_reused_across_box_widths(lab):
    results, cache = lab
    assert len(cache) == 3  # one fit per model, reused by the three other widths
    assert cache.hits == 9
    for r in results.values():
        for key in ("relu", "tanh"):
            assert r.models[key].hyperparameters == results[100].models[key].hyperparameters


def test_at_x100_relu_maximizer_is_on_the_boundary_and_tanh_and_gp_are_not(lab):
    r = lab[0][100]
    relu, tanh, gp = r.models["relu"], r.models["tanh"], r.models[GP]
    assert relu.on_boundary and relu.edge_distance <= BOUNDARY_FRACTION
    assert abs(abs(relu.maximizer[0]) - 100.0) < 1e-6  # on an edge, exactly
    assert not tanh.on_boundary and not gp.on_boundary
    # the ReLU's acquisition strictly prefers the edge: its edge value is its maximum
    assert relu.edge_value == pytest.approx(relu.maximizer_value)
    assert relu.std_at_maximizer == pytest.approx(_at(r, relu.std, relu.maximizer[0]), rel=1e-6)
    assert relu.std_at_maximizer > 50.0  # y spans about 1: sigma at the edge is huge
    # the GP's maximum is with the data, strictly better than anywhere near the edge
    assert abs(gp.maximizer[0]) <= 1.0 and gp.maximizer_value > gp.edge_value + 0.5
    # tanh: a flat, saturated far field; it does not prefer the edge (verified: flat from x ≈ 33)
    assert tanh.edge_value <= tanh.maximizer_value + 1e-9
    assert tanh.edge_distance > 0.1


def test_maximizers_agree_with_the_grid(lab):
    for r in lab[0].values():
        for m in r.models.values():
            # optimize_acqf restarts from the best grid points: never worse than the grid
            assert m.maximizer_value >= m.grid_max_value - 1e-6 * (1 + abs(m.grid_max_value))
            assert np.all(m.maximizer >= r.box[0]) and np.all(m.maximizer <= r.box[1])
            # and the grid is fine enough that it is not much worse either (LogEI units)
            assert m.maximizer_value - m.grid_max_value < 0.05


def test_at_x1_no_maximizer_is_on_the_boundary(lab):
    r = lab[0][1]
    for key, m in r.models.items():
        assert not m.on_boundary, key
        assert abs(m.maximizer[0] - 0.3) < 0.1, (key, m.maximizer)  # all near the true maximum


def test_relu_stays_on_the_boundary_as_the_box_grows(lab):
    results = lab[0]
    for scale in (10, 100, 1000):
        relu = results[scale].models["relu"]
        assert relu.on_boundary and abs(abs(relu.maximizer[0]) - scale) < 1e-6 * scale
        assert not results[scale].models[GP].on_boundary
    # ... and its best acquisition value keeps growing with the box (unbounded)
    values = [results[s].models["relu"].maximizer_value for s in (10, 100, 1000)]
    assert values[0] < values[1] < values[2]
    # the tanh's does not: saturated, the same plateau value at x100 and x1000
    assert results[1000].models["tanh"].maximizer_value == pytest.approx(
        results[100].models["tanh"].maximizer_value, abs=1e-9
    )
    assert not results[1000].models["tanh"].on_boundary


def _at(r, arr, x):
    return float(np.interp(x, r.grid, arr))


def test_relu_std_grows_linearly_and_tanh_and_gp_std_level_off(lab):
    r = lab[0][100]
    relu = r.models["relu"]
    for side in (1.0, -1.0):
        # far from the data the ReLU net is linear: sigma(2x) / sigma(x) = 2 (variance x4)
        ratio = _at(r, relu.std, 100 * side) / _at(r, relu.std, 50 * side)
        assert ratio == pytest.approx(2.0, rel=0.03)
        # and so is its mean: equal increments over equal steps
        d1 = _at(r, relu.mean, 100 * side) - _at(r, relu.mean, 75 * side)
        d2 = _at(r, relu.mean, 75 * side) - _at(r, relu.mean, 50 * side)
        assert d1 == pytest.approx(d2, rel=0.02)
        for key in ("tanh", GP):
            m = r.models[key]
            assert _at(r, m.std, 100 * side) / _at(r, m.std, 50 * side) == pytest.approx(1.0, rel=0.01), key
    assert relu.std.max() > 50 * max(r.models["tanh"].std.max(), r.models[GP].std.max())


def test_result_is_numpy_only_and_read_only(lab):
    r = lab[0][100]
    m = len(r.grid)
    assert np.all(np.diff(r.grid) > 0) and r.grid[0] == -100 and r.grid[-1] == 100
    assert r.truth.shape == (m,) and r.X.shape == (12, 1)
    for curves in r.models.values():
        for name in ("mean", "std", "acquisition", "acquisition_relative"):
            arr = getattr(curves, name)
            assert isinstance(arr, np.ndarray) and arr.shape == (m,) and not arr.flags.writeable
            assert np.all(np.isfinite(arr))
        assert curves.acquisition_relative.min() >= 0 and curves.acquisition_relative.max() == pytest.approx(1.0)
        for value in vars(curves).values():
            assert not isinstance(value, torch.Tensor)


# ------------------------------------------------------------------------------- 2-D, misc
def test_2d_result_shapes():
    s = ReluLabSettings(dim=2, box_scale=10, width=16, depth=1, grid_size=21, max_epochs=3)
    r = compute_relu_lab(s)
    assert r.grid.shape == (21,) and r.grid[0] == -10 and r.grid[-1] == 10
    assert r.truth.shape == (21, 21) and r.X.shape == (20, 2) and r.box.shape == (2, 2)
    for key in ("relu", "tanh", GP):
        curves = r.models[key]
        for name in ("mean", "std", "acquisition", "acquisition_relative"):
            assert getattr(curves, name).shape == (21, 21), (key, name)
        assert curves.maximizer.shape == (2,)
        assert np.all(np.abs(curves.maximizer) <= 10)
    # row-major [iy, ix]: the truth peaks near (0.3, -0.2)
    iy, ix = np.unravel_index(np.argmax(r.truth), r.truth.shape)
    assert abs(r.grid[ix] - 0.3) <= 0.5 and abs(r.grid[iy] + 0.2) <= 0.5


def test_cancel_stops_the_computation():
    with pytest.raises(Cancelled):
        compute_relu_lab(ReluLabSettings(include_gp=False, activations=("relu",)), cancel=lambda: True)


def test_boundary_rate_counts_relu_proposals_on_the_edge():
    s = ReluLabSettings(box_scale=100, activations=("relu",), include_gp=True)
    seen = []
    r = boundary_rate(s, steps=2, progress=lambda model, step: seen.append((model, step)))
    assert seen == [("relu", 1), ("relu", 2), (GP, 1), (GP, 2)]
    assert r.proposals["relu"].shape == (2, 1) and r.on_boundary["relu"].dtype == bool
    assert r.on_boundary["relu"][0]  # the first proposal is the x100 lab's: on the edge
    assert r.rates["relu"] >= 0.5
    assert r.rates[GP] == 0.0
    assert np.all(np.isfinite(r.values["relu"]))
