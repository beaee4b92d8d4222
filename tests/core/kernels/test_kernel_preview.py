"""prior_samples: the empirical covariance is the compiled kernel's, seeds reproduce, slices slice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import parse_kernel
from lla_studio.core.kernels.compile import compile_kernel
from lla_studio.core.kernels.preview import SliceSpec, grid_inputs, prior_covariance, prior_samples

FEATURES = ["f", "g", "h"]


def _reference_cov(graph, inputs):
    kernel = compile_kernel(graph, FEATURES, dtype=torch.float64)
    with torch.no_grad():
        return kernel(torch.tensor(inputs)).to_dense().numpy()


@pytest.mark.parametrize(
    "text, spec",
    [
        ("scale(matern52(f) * rbf(g); outputscale=2.0)", SliceSpec("f", "g", resolution=3)),
        ("rbf(f, h; lengthscale=0.3) + linear(g)", SliceSpec("h", resolution=6, fixed={"g": 0.8})),
    ],
)
def test_empirical_covariance_matches_compiled_kernel(text, spec):
    graph = parse_kernel(text)
    n = 40_000
    out = prior_samples(graph, FEATURES, spec, n_samples=n, seed=3)
    flat = out.samples.reshape(n, -1)
    K = _reference_cov(graph, out.inputs)
    emp = flat.T @ flat / n  # zero-mean prior: E[f f^T] = K
    # Monte-Carlo standard error of each entry: sqrt((K_ii K_jj + K_ij^2) / n)
    se = np.sqrt((np.outer(np.diag(K), np.diag(K)) + K**2) / n)
    assert np.all(np.abs(emp - K) < 5 * se + 1e-8), np.max(np.abs(emp - K) / se)
    assert out.jitter <= 1e-8 * np.mean(np.diag(K))


def test_grid_inputs_fix_other_features():
    x, y, X = grid_inputs(FEATURES, SliceSpec("g", resolution=5, fixed={"h": 0.2}))
    assert y is None
    np.testing.assert_allclose(x, np.linspace(0, 1, 5))
    np.testing.assert_allclose(X[:, 0], 0.5)
    np.testing.assert_allclose(X[:, 1], x)
    np.testing.assert_allclose(X[:, 2], 0.2)
    x, y, X = grid_inputs(FEATURES, ("h", "f"))
    r = len(x)
    grid = X.reshape(r, r, 3)  # [iy, ix, feature]
    np.testing.assert_allclose(grid[3, :, 2], x)  # x (= h) varies along columns
    np.testing.assert_allclose(grid[:, 3, 0], y)  # y (= f) varies along rows
    np.testing.assert_allclose(grid[..., 1], 0.5)


def test_seeded_reproducibility():
    graph = parse_kernel("matern32(f, g)")
    a = prior_samples(graph, FEATURES, "f", n_samples=5, seed=11)
    b = prior_samples(graph, FEATURES, "f", n_samples=5, seed=11)
    c = prior_samples(graph, FEATURES, "f", n_samples=5, seed=12)
    assert a.samples.shape == (5, 100)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.allclose(a.samples, c.samples)
    assert a.samples.dtype == np.float64
    assert not a.samples.flags.writeable


def test_rbf_over_f_varies_only_along_f():
    graph = parse_kernel("rbf(f; lengthscale=0.2)")
    along_f = prior_samples(graph, FEATURES, "f", n_samples=4, seed=0).samples
    along_g = prior_samples(graph, FEATURES, "g", n_samples=4, seed=0).samples
    assert np.all(np.ptp(along_f, axis=1) > 0.1)
    assert np.all(np.ptp(along_g, axis=1) < 1e-3)  # constant up to jitter
    heat = prior_samples(graph, FEATURES, ("f", "g"), n_samples=2, seed=0).samples
    assert heat.shape == (2, 32, 32)
    assert np.max(np.ptp(heat, axis=1)) < 1e-3  # constant down each column (along g)
    assert np.all(np.ptp(heat, axis=2) > 0.1)  # varies along each row (along f)


def test_errors_name_the_culprit():
    graph = parse_kernel("rbf(f)")
    with pytest.raises(KernelGraphError, match="'q' is not a model feature"):
        prior_samples(graph, FEATURES, "q")
    with pytest.raises(KernelGraphError, match="unknown feature 'f'"):
        prior_samples(graph, ["g", "h"], "g")
    with pytest.raises(KernelGraphError, match="x and y must differ"):
        SliceSpec("f", "f")
    with pytest.raises(KernelGraphError, match="n_samples"):
        prior_samples(graph, FEATURES, "f", n_samples=0)


def test_sum_with_a_linear_term_needs_no_jittered_root_decomposition():
    # k(X, X) with a linear (root) term plus a dense term makes gpytorch root-decompose the dense
    # term with jitter (and warn, an error here); prior_samples must not go down that path.
    graph = parse_kernel("rbf(f; lengthscale=0.5) + linear(g)")
    out = prior_samples(graph, FEATURES, ("f", "g"), n_samples=2, seed=0)
    kernel = compile_kernel(graph, FEATURES, dtype=torch.float64)
    X = torch.tensor(out.inputs)
    with torch.no_grad():
        parts = [k(X, X).to_dense().numpy() for k in kernel.kernels]
    np.testing.assert_allclose(prior_covariance(graph, FEATURES, out.inputs), sum(parts), rtol=1e-12, atol=1e-12)
