"""Laplace mixtures: multi-start mode finding, NNLS weights and evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import (
    MixtureSpec,
    fit_laplace_mixture,
    grid_posterior,
    js_divergence,
    make_model,
)


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


def test_shear_frame_multistart_finds_truth_and_mirror(shear):
    _, mix, _ = shear
    assert len(mix.components) == 2
    modes = mix.means[np.argsort(mix.means[:, 0])]
    np.testing.assert_allclose(modes, [[0.2, 0.5], [1.0, 0.1]], atol=1e-7)
    # every start ended in one of the two modes
    assert set(mix.start_component.tolist()) == {0, 1}
    np.testing.assert_allclose(mix.weights, [0.5, 0.5], atol=0.02)
    np.testing.assert_allclose(mix.laplace_weights, [0.5, 0.5], atol=1e-6)


def test_shear_frame_mixture_beats_single_laplace_and_estimates_evidence(shear):
    _, mix, grid = shear
    pts = grid.points
    jsd_single = js_divergence(grid.log_density, mix.components[0].log_pdf(pts))
    jsd_mix = js_divergence(grid.log_density, mix.log_pdf(pts))
    assert jsd_mix * 5 <= jsd_single
    # a single Gaussian misses one of two equal modes: JSD close to that of two disjoint halves
    assert jsd_single > 0.15
    # NNLS evidence against the grid's log-sum-exp evidence
    assert mix.log_evidence == pytest.approx(grid.log_evidence, abs=0.1)


def test_gaussian_mixture_weights_and_evidence():
    model = MixtureSpec(separation=5.0, sd=1.0, weight=0.3).build()
    mix = fit_laplace_mixture(model, 16, seed=1)
    order = np.argsort(mix.means[:, 0])
    np.testing.assert_allclose(mix.means[order], [[-2.5, 0.0], [2.5, 0.0]], atol=5e-3)
    np.testing.assert_allclose(mix.weights[order], [0.3, 0.7], atol=0.01)
    assert mix.log_evidence == pytest.approx(0.0, abs=0.01)  # normalised density: Z = 1


def test_unimodal_models_give_one_component_and_dedup_merges_starts():
    mix = fit_laplace_mixture(make_model("bioassay"), 8, seed=0)
    assert len(mix.components) == 1
    assert np.all(mix.start_component == 0)
    assert mix.weights == pytest.approx([1.0])
    np.testing.assert_allclose(mix.means[0], [0.8466, 7.7488], atol=1e-3)


def test_mixture_bad_inputs():
    model = make_model("banana")
    with pytest.raises(PosteriorError, match="'starts' must be a positive integer, got 0"):
        fit_laplace_mixture(model, 0)
    with pytest.raises(PosteriorError, match="'dedup_distance' must be positive"):
        fit_laplace_mixture(model, 4, dedup_distance=0.0)


def test_sobol_starts_are_seeded():
    model = make_model("banana")
    a = fit_laplace_mixture(model, 4, seed=3).starts
    b = fit_laplace_mixture(model, 4, seed=3).starts
    c = fit_laplace_mixture(model, 4, seed=4).starts
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(model.box.contains(a))
    assert math.isfinite(float(a.sum()))
