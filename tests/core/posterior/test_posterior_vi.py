"""VI refinement: warm vs cold starts, transformed coordinates, cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import (
    Box,
    Cancelled,
    fit_laplace_mixture,
    grid_posterior,
    js_divergence,
    make_model,
    refine_vi,
)
from lla_studio.core.posterior.vi import SupportTransform


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bioassay():
    model = make_model("bioassay")
    mix = fit_laplace_mixture(model, 8, seed=0)
    grid = grid_posterior(model, 201, components=mix.components)
    return model, mix, grid


def test_warm_vi_beats_the_mixture_and_reaches_cold_final_sooner(bioassay):
    model, mix, grid = bioassay
    jsd_mix = js_divergence(grid.log_density, mix.log_pdf(grid.points))
    warm = refine_vi(model, mix, grid=grid, start="warm", steps=300, seed=0)
    cold = refine_vi(model, mix, grid=grid, start="cold", steps=300, seed=0)
    assert "log(beta - 0)" in warm.coordinates
    assert warm.final_jsd < 0.5 * jsd_mix
    # the trace starts at the (transformed) Laplace mixture and the final JSD matches the fitted q
    assert warm.trace[0, 0] == 0.0
    assert warm.final_jsd == pytest.approx(js_divergence(grid.log_density, warm.log_pdf(grid.points)), rel=1e-9)
    cold_final = cold.final_jsd
    reached = warm.trace[warm.trace[:, 1] <= cold_final, 0]
    assert reached.size > 0 and reached[0] < cold.trace[-1, 0]
    assert np.all(np.diff(warm.trace[:, 0]) >= 0)


def test_vi_is_seeded(bioassay):
    model, mix, _ = bioassay
    a = refine_vi(model, mix, start="cold", steps=20, seed=5)
    b = refine_vi(model, mix, start="cold", steps=20, seed=5)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.elbo, b.elbo)
    assert a.trace.shape == (0, 2)  # no grid, no trace


def test_vi_density_is_normalised_in_model_coordinates():
    model = make_model("shear-frame")
    mix = fit_laplace_mixture(model, 8, seed=0)
    vi = refine_vi(model, mix, start="warm", steps=5, seed=0)
    grid = grid_posterior(model, (281, 141), box=model.support)
    mass = np.exp(vi.log_pdf(grid.points)).sum() * grid.cell_area
    assert mass == pytest.approx(1.0, abs=5e-3)


def test_support_transform_round_trip_and_log_jacobian():
    support = Box((0.0, -np.inf), (1.4, 3.0))
    tr = SupportTransform(support)
    assert tr.kinds == ("logit", "log-upper")
    z = torch.tensor([[0.3, -1.2], [-2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    x, logdet = tr.forward(z)
    zi, logdet_inv = tr.inverse(x.detach().numpy())
    np.testing.assert_allclose(zi, z.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(logdet_inv, -logdet.detach().numpy(), atol=1e-12)
    for i in range(2):  # diagonal Jacobian by autograd
        (g,) = torch.autograd.grad(x[i].sum(), z, retain_graph=True)
        jac = g[i].numpy()  # x_k depends only on z_k
        assert np.log(np.abs(jac)).sum() == pytest.approx(logdet[i].item(), abs=1e-12)


def test_vi_cancel_and_bad_inputs(bioassay):
    model, mix, _ = bioassay
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled, match="VI"):
        refine_vi(model, mix, steps=1000, cancel=cancel)
    assert len(calls) == 4
    with pytest.raises(PosteriorError, match="'steps' must be a positive integer"):
        refine_vi(model, mix, steps=0)
    with pytest.raises(PosteriorError, match="warm start needs the Laplace mixture"):
        refine_vi(model, None, start="warm")
    with pytest.raises(PosteriorError, match="'start' must be 'warm' or 'cold'"):
        refine_vi(model, mix, start="hot")
