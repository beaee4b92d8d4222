"""Posterior-view numerics (core/posterior/view.py) against closed forms and scipy."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from scipy import stats
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import Cancelled
from lla_studio.core.posterior import analyze
from lla_studio.core.posterior.snapshot import HPD_MASSES, QUANTILE_METHODS, PosteriorRequest
from lla_studio.core.posterior.view import (
    compute_posterior,
    contours,
    hpd_levels,
    make_snapshot,
    marginals_from_log_density,
    mixture_quantiles,
    quantiles_from_density,
    sample_gaussians,
)

LEVELS = (0.025, 0.25, 0.5, 0.75, 0.975)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _standard_normal_grid(half_width: float = 7.0, n: int = 701):
    """Cell centres and the 2-D standard normal density on them (rows follow the second axis)."""
    h = 2 * half_width / n
    x = -half_width + h * (np.arange(n) + 0.5)
    xx, yy = np.meshgrid(x, x)
    return x, np.exp(-0.5 * (xx**2 + yy**2)) / (2 * math.pi), h * h


@pytest.mark.parametrize("mass", [*HPD_MASSES, 0.5, 0.95])
def test_hpd_levels_of_a_standard_normal_match_the_closed_form(mass):
    # {p >= t} is the disc of radius r with mass 1 - exp(-r^2/2), so t = exp(-r^2/2)/(2 pi) = (1 - m)/(2 pi)
    _, dens, area = _standard_normal_grid()
    (level,) = hpd_levels(dens, area, (mass,))
    r2 = -2 * math.log(1 - mass)
    assert level == pytest.approx(math.exp(-r2 / 2) / (2 * math.pi), rel=5e-3)


def test_hpd_levels_do_not_depend_on_normalisation_and_are_zero_without_mass():
    _, dens, area = _standard_normal_grid(n=201)
    levels = hpd_levels(dens, area, HPD_MASSES)
    scaled = hpd_levels(3.0 * dens, area, HPD_MASSES)
    np.testing.assert_allclose(scaled, 3.0 * np.asarray(levels), rtol=1e-12)
    assert levels[0] > levels[1]  # more mass: a lower level
    assert hpd_levels(np.zeros((5, 5)), 1.0, HPD_MASSES) == (0.0, 0.0)


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.0])
def test_the_contour_of_a_normal_is_a_circle_of_the_right_radius(radius):
    x, dens, _ = _standard_normal_grid(half_width=5.0, n=401)
    level = math.exp(-radius**2 / 2) / (2 * math.pi)
    (path,) = contours(x, x, dens, (level,))
    pts = path[np.all(np.isfinite(path), axis=1)]
    assert len(pts) > 50
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1]), radius, rtol=2e-3)
    assert not path.flags.writeable
    (empty,) = contours(x, x, dens, (0.0,))
    assert empty.shape == (0, 2)


def test_contours_separate_the_pieces_of_a_bimodal_level_set_with_nan_rows():
    x = np.linspace(-6, 6, 301)
    xx, yy = np.meshgrid(x, x)
    dens = np.exp(-0.5 * ((xx - 3) ** 2 + yy**2)) + np.exp(-0.5 * ((xx + 3) ** 2 + yy**2))
    (path,) = contours(x, x, dens, (0.5,))
    assert np.isnan(path[:, 0]).sum() == 1  # two closed curves, one separator
    finite = path[np.isfinite(path[:, 0])]
    centres = np.where(finite[:, 0] > 0, 3.0, -3.0)
    # exp(-r^2/2) = 0.5 around each mode (the other mode adds ~exp(-18), negligible)
    np.testing.assert_allclose(np.hypot(finite[:, 0] - centres, finite[:, 1]), math.sqrt(2 * math.log(2)), rtol=2e-3)


def test_quantiles_of_a_gridded_normal_match_scipy():
    h = 16.0 / 1600
    x = -8.0 + h * (np.arange(1600) + 0.5)
    dens = stats.norm.pdf(x, 1.5, 0.7)
    q = quantiles_from_density(x, dens, LEVELS)
    np.testing.assert_allclose(q, stats.norm.ppf(LEVELS, 1.5, 0.7), atol=2e-4)
    assert np.all(np.isnan(quantiles_from_density(x, np.zeros_like(x), LEVELS)))


def test_quantiles_of_a_gaussian_mixture_match_scipy():
    w = np.array([0.3, 0.7])
    mu = np.array([-2.0, 1.0])
    sd = np.array([0.5, 1.5])
    q = mixture_quantiles(w, mu, sd, LEVELS)
    # the mixture's CDF at its quantiles is the level (scipy's normal CDF)
    cdf = (w[None, :] * stats.norm.cdf((q[:, None] - mu[None, :]) / sd[None, :])).sum(1)
    np.testing.assert_allclose(cdf, LEVELS, atol=1e-9)
    assert np.all(np.diff(q) > 0)
    # one component: scipy's ppf; two mirrored equal components: the median is the centre
    np.testing.assert_allclose(mixture_quantiles(np.ones(1), mu[:1], sd[:1], LEVELS), stats.norm.ppf(LEVELS, -2.0, 0.5), atol=1e-8)
    sym = mixture_quantiles(np.array([0.5, 0.5]), np.array([-1.0, 1.0]), np.array([0.4, 0.4]), (0.25, 0.5, 0.75))
    assert sym[1] == pytest.approx(0.0, abs=1e-9) and sym[0] == pytest.approx(-sym[2], abs=1e-9)


def test_marginals_of_a_correlated_normal_log_density_are_its_normal_marginals():
    a = np.linspace(-6, 6, 241)
    b = np.linspace(-9, 9, 301)
    aa, bb = np.meshgrid(a, b)
    cov = np.array([[1.0, 0.8], [0.8, 4.0]])
    prec = np.linalg.inv(cov)
    ld = -0.5 * (prec[0, 0] * aa**2 + 2 * prec[0, 1] * aa * bb + prec[1, 1] * bb**2) + 17.0  # unnormalised
    pa, pb = marginals_from_log_density(ld, a[1] - a[0], b[1] - b[0])
    np.testing.assert_allclose(pa, stats.norm.pdf(a, 0, 1.0), atol=1e-4)
    np.testing.assert_allclose(pb, stats.norm.pdf(b, 0, 2.0), atol=1e-4)
    assert marginals_from_log_density(np.full((3, 3), -np.inf), 1.0, 1.0) is None


def test_samples_of_a_gaussian_mixture_have_its_weights_means_and_covariances():
    rng = np.random.default_rng(0)
    means = np.array([[-3.0, 0.0], [3.0, 1.0]])
    covs = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.5]]])
    x = sample_gaussians(rng, np.array([1.0, 3.0]), means, covs, 40_000)  # unnormalised weights
    assert x.shape == (40_000, 2)
    left = x[:, 0] < 0
    assert left.mean() == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(x[left].mean(0), means[0], atol=0.05)
    np.testing.assert_allclose(np.cov(x[left].T), covs[0], atol=0.08)
    np.testing.assert_allclose(np.cov(x[~left].T), covs[1], atol=0.03)


def test_make_snapshot_holds_the_analysis_display_ready_and_survives_a_pipe():
    analysis = analyze("mixture", grid_n=48, starts=6, seed=0)
    request = PosteriorRequest(7, {"type": "mixture"}, grid_n=48, starts=6, n_samples=50)
    snap = make_snapshot(analysis, request, "laplace", True, 0.5)
    grid = analysis.grid
    assert snap.request_id == 7 and snap.stage == "laplace" and snap.final
    assert snap.grid_shape == (48, 48) and snap.density.dtype == np.float32
    np.testing.assert_allclose(snap.density, grid.density.astype(np.float32))
    # the HPD contours bound the masses the grid holds above their levels
    for level, mass in zip(snap.hpd_levels, HPD_MASSES):
        assert grid.probabilities[grid.density >= level].sum() == pytest.approx(mass, abs=0.03)
    assert len(snap.ellipses) == 2 and snap.modes.shape == (2, 2)
    for name in snap.param_names:
        m = snap.marginals[name]
        dx = m["x"][1] - m["x"][0]
        for key in ("grid", "laplace", "mixture"):
            assert float(m[key].sum() * dx) == pytest.approx(1.0, abs=0.02), key
        assert m["vi"] is None
    assert snap.quantiles.shape == (2, 5, len(QUANTILE_METHODS))
    np.testing.assert_allclose(snap.quantiles[0, :, 0], analysis.quantiles[snap.param_names[0]])
    assert np.all(np.isnan(snap.quantiles[:, :, 3]))
    assert set(snap.samples) == {"laplace", "mixture"} and snap.samples["mixture"].shape == (50, 2)
    assert snap.spec["type"] == "mixture" and snap.log_evidence["grid"] == pytest.approx(grid.log_evidence)

    back = pickle.loads(pickle.dumps(snap))
    np.testing.assert_array_equal(back.density, snap.density)
    assert not back.density.flags.writeable and not back.marginals[snap.param_names[0]]["grid"].flags.writeable
    with pytest.raises(TypeError):
        back.samples["laplace"] = None  # read-only mapping
    assert back.jsd == snap.jsd and back.spec == snap.spec


def test_compute_posterior_answers_in_stages_and_stops_when_cancelled():
    request = PosteriorRequest(3, {"type": "banana"}, grid_n=32, starts=4, vi=True, vi_steps=10, n_samples=20)
    snaps, stages = [], []
    compute_posterior(request, snaps.append, stages.append)
    assert [s.stage for s in snaps] == ["laplace", "vi-warm", "vi"]
    assert [s.final for s in snaps] == [False, False, True]
    assert stages == ["model", "laplace", "vi-warm", "vi"]
    assert snaps[0].vi_curves is None and snaps[1].vi_curves is not None
    assert set(snaps[2].traces) == {"warm", "cold"} and "cold" not in snaps[1].traces
    assert np.all(np.isfinite(snaps[2].quantiles))
    with pytest.raises(Cancelled):
        compute_posterior(request, snaps.append, cancel=lambda: True)
