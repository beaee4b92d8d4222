"""compute_surface: slices and maps of the surrogate and of the study's own acquisition function,
checked against the model's posterior and the closed forms of EI, PI, log EI and UCB."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskGP
from scipy import stats

from lla_studio.core.space_reader import search_space_from_dict
from lla_studio.core.specs import AcquisitionSpec
from lla_studio.core.surface import SurfaceRequest, acquisition_label, compute_surface

SPACE = search_space_from_dict(
    {"parameters": [
        {"name": "x1", "type": "real", "low": -5.0, "high": 10.0},
        {"name": "x2", "type": "real", "low": 0.0, "high": 15.0},
    ]}
)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    U = torch.rand(9, 2, generator=g, dtype=torch.float64)
    Y = (torch.sin(6 * U[:, :1]) + U[:, 1:] ** 2).to(torch.float64)
    model = SingleTaskGP(U, Y)
    model.eval()
    return model, U, Y


def _closed_form(kind, mean, sd, best, minimize, beta=2.0):
    z = (best - mean) / sd if minimize else (mean - best) / sd
    if kind == "ucb":
        return (-mean if minimize else mean) + np.sqrt(beta) * sd
    if kind == "pi":
        return stats.norm.cdf(z)
    ei = sd * (z * stats.norm.cdf(z) + stats.norm.pdf(z))
    return ei if kind == "ei" else np.log(ei)


def test_slice_holds_the_posterior_along_the_parameter_in_its_units(data):
    model, U, Y = data
    snap = compute_surface(model, SPACE, U, Y, True, SurfaceRequest(1, ("x2",), {"x1": 0.25}, n=41))
    assert snap.axes[0].shape == (41,) and snap.axes[0][0] == 0.0 and snap.axes[0][-1] == 15.0
    best = int(torch.argmin(Y))
    X = torch.stack([torch.full((41,), 0.25, dtype=torch.float64), torch.linspace(0, 1, 41, dtype=torch.float64)], -1)
    with torch.no_grad():
        post = model.posterior(X)
    np.testing.assert_allclose(snap.mean, post.mean.squeeze(-1).numpy(), rtol=1e-10)
    np.testing.assert_allclose(snap.sd, post.variance.squeeze(-1).sqrt().numpy(), rtol=1e-10)
    np.testing.assert_allclose(snap.incumbent_u, [0.25, U[best, 1].item()])  # fixed value overrides the incumbent
    np.testing.assert_allclose(snap.distance, np.abs(U[:, 0].numpy() - 0.25))


@pytest.mark.parametrize("minimize", [True, False])
@pytest.mark.parametrize("kind", ["logei", "ei", "pi", "ucb"])
def test_the_acquisition_shown_is_the_studys_own(data, kind, minimize):
    model, U, Y = data
    spec = AcquisitionSpec(type=kind, beta=3.0)
    snap = compute_surface(model, SPACE, U, Y, minimize, SurfaceRequest(1, ("x1",), n=60), spec)
    best = float(Y.min() if minimize else Y.max())
    expected = _closed_form(kind, snap.mean, snap.sd, best, minimize, beta=3.0)
    keep = np.isfinite(expected) & (expected > -30) if kind == "logei" else np.ones(len(expected), bool)
    assert keep.sum() >= 20
    np.testing.assert_allclose(snap.acquisition[keep], expected[keep], rtol=1e-6, atol=1e-9)
    assert snap.acquisition_label == {"logei": "log EI", "ei": "EI", "pi": "PI", "ucb": "UCB"}[kind]
    assert snap.log_acquisition == (kind == "logei")


def test_thompson_and_the_default_show_log_ei(data):
    model, U, Y = data
    req = SurfaceRequest(1, ("x1", "x2"), n=12)
    default = compute_surface(model, SPACE, U, Y, True, req)
    thompson = compute_surface(model, SPACE, U, Y, True, req, AcquisitionSpec(type="thompson"))
    assert default.acquisition.shape == (12, 12) and default.acquisition_label == "log EI"
    assert thompson.acquisition_label == "log EI" == acquisition_label(AcquisitionSpec(type="thompson"))
    np.testing.assert_array_equal(thompson.acquisition, default.acquisition)
    # rows follow the second parameter: row 0 is x2 = 0, column 0 is x1 = -5
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        m = model.posterior(X).mean.squeeze(-1).numpy()
    np.testing.assert_allclose([default.mean[0, 0], default.mean[0, -1], default.mean[-1, 0]], m, rtol=1e-10)
