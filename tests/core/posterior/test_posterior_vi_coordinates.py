"""2-D VI: the choice between the model's own coordinates and support-transformed ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import ExpressionSpec, fit_laplace_mixture, grid_posterior, js_divergence, make_model
from lla_studio.core.posterior.vi import refine_vi


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def shear():
    model = make_model("shear-frame")
    mix = fit_laplace_mixture(model, 16, seed=0)
    grid = grid_posterior(model, 201, components=mix.components)
    return model, mix, grid


def test_shear_frame_vi_within_10_percent_of_the_reference_optimum(shear):
    """The issue's claim: warm VI reaches JSD <= 0.0073 (the reference optimum 0.00662 + 10 %) at the
    settings `analyze` and ``lla-studio posterior shear-frame --vi`` use (400 steps, 64 samples, seed 0)."""
    model, mix, grid = shear
    vi = refine_vi(model, mix, grid=grid, start="warm", steps=400, samples=64, seed=0)
    assert vi.coordinates.startswith("model coordinates: z_c1 = c1; z_c2 = c2")
    assert vi.truncation == model.support
    assert vi.final_jsd <= 0.0073
    assert vi.final_jsd == pytest.approx(js_divergence(grid.log_density, vi.log_pdf(grid.points)), rel=1e-9)
    # the density is cut at the support; q's mass inside is what the Laplace mixture has there
    assert np.isneginf(vi.log_pdf(np.array([[-0.01, 0.3], [0.5, 0.71]]))).all()
    g = grid_posterior(model, (281, 141), box=model.support)
    assert np.exp(vi.log_pdf(g.points)).sum() * g.cell_area == pytest.approx(1.0, abs=2e-3)


@pytest.mark.slow
def test_shear_frame_logit_coordinates_stay_above_the_target(shear):
    """Same settings in logit coordinates (what VI did before): 0.00743, above 0.0073."""
    model, mix, grid = shear
    logit = refine_vi(model, mix, grid=grid, start="warm", steps=400, samples=64, seed=0, coordinates="unconstrained")
    assert "logit" in logit.coordinates and logit.truncation is None
    assert logit.final_jsd > 0.0073


def test_auto_keeps_transformed_coordinates_where_mass_or_the_formula_end_at_the_support():
    bio = make_model("bioassay")  # beta > 0 with 5 % of the Laplace mass below 0
    mix = fit_laplace_mixture(bio, 8, seed=0)
    vi = refine_vi(bio, mix, start="warm", steps=3, seed=0)
    assert "log(beta - 0)" in vi.coordinates and vi.truncation is None
    # a Gaussian far inside its box: model coordinates ...
    inside = ExpressionSpec("-(a**2 + b**2)/2", low=(-7.0, -7.0), high=(7.0, 7.0)).build()
    mix_in = fit_laplace_mixture(inside, 4, seed=0)
    assert refine_vi(inside, mix_in, start="warm", steps=3, seed=0).coordinates.startswith("model coordinates")
    # ... unless the formula is not finite past the box (log of a negative number is NaN there)
    ends = ExpressionSpec("-(a**2 + b**2)/2 + 0*log(7 - a)", low=(-7.0, -7.0), high=(7.0, 7.0)).build()
    mix_end = fit_laplace_mixture(ends, 4, seed=0)
    assert "logit" in refine_vi(ends, mix_end, start="warm", steps=3, seed=0).coordinates
    # unbounded support: the identity either way, described as before
    banana = make_model("banana")
    mix_b = fit_laplace_mixture(banana, 4, seed=0)
    assert refine_vi(banana, mix_b, start="warm", steps=3, seed=0).coordinates.startswith("unconstrained coordinates")


def test_coordinates_setting_is_checked(shear):
    model, mix, _ = shear
    with pytest.raises(PosteriorError, match="'coordinates' must be 'auto', 'model' or 'unconstrained'"):
        refine_vi(model, mix, steps=2, coordinates="polar")
    with pytest.raises(PosteriorError, match="coordinates='model' needs the Laplace mixture"):
        refine_vi(model, None, start="cold", steps=2, coordinates="model")
    cold = refine_vi(model, mix, start="cold", steps=2, seed=0)  # cold runs make the warm run's choice
    assert cold.coordinates.startswith("model coordinates")
