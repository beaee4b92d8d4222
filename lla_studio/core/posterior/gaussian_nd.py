"""Gaussians and Gaussian mixtures in ``d`` dimensions: log densities, sampling, overlap.

The d-dimensional counterparts of `lla_studio.core.posterior.gaussian` (whose 2-D
`gaussian_log_pdf` / `mixture_log_pdf` are the ``d = 2`` case of `gaussian_log_pdf_nd` /
`mixture_log_pdf_nd` and could call them). Everything works through Cholesky factors:
``log N(x; mu, Sigma) = -|L^-1 (x - mu)|^2 / 2 - sum log diag L - d/2 log 2 pi`` with
``Sigma = L L^T``; no inverse or determinant is formed.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy import special

from lla_studio.core.errors import PosteriorError

__all__ = [
    "checked_mixture",
    "dice_overlap",
    "gaussian_log_pdf_nd",
    "mixture_log_pdf_nd",
    "sample_mixture_nd",
]

LOG_2PI = math.log(2 * math.pi)


def _cholesky(cov: np.ndarray, what: str) -> np.ndarray:
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))
        raise PosteriorError(
            f"{what}: covariance is not positive definite (smallest eigenvalue {eig.min():.3g})"
        ) from None


def gaussian_log_pdf_nd(points: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, cov)``.

    Args:
        points: A `... x d` array.
        mean: A `d` array.
        cov: A `d x d` symmetric positive-definite array.

    Returns:
        A `...` array.
    """
    p = np.asarray(points, dtype=float)
    mean = np.asarray(mean, dtype=float)
    d = mean.shape[-1]
    chol = _cholesky(np.asarray(cov, dtype=float), "Gaussian log density")
    u = (p - mean).reshape(-1, d)
    w = scipy.linalg.solve_triangular(chol, u.T, lower=True)  # d x N
    quad = np.sum(w * w, axis=0)
    out = -0.5 * quad - np.sum(np.log(np.diag(chol))) - 0.5 * d * LOG_2PI
    return out.reshape(p.shape[:-1])


def mixture_log_pdf_nd(points: np.ndarray, log_weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Log of ``sum_k exp(log_weights[k]) N(points; means[k], covs[k])``.

    Args:
        points: A `... x d` array.
        log_weights: A `K` array (need not be normalised; ``-inf`` allowed).
        means: A `K x d` array.
        covs: A `K x d x d` array.

    Returns:
        A `...` array.
    """
    terms = [
        lw + gaussian_log_pdf_nd(points, m, c) for lw, m, c in zip(log_weights, means, covs) if lw > -math.inf
    ]
    if not terms:
        return np.full(np.shape(points)[:-1], -math.inf)
    return special.logsumexp(np.stack(terms, 0), axis=0)


def sample_mixture_nd(
    rng: np.random.Generator, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, n: int
) -> np.ndarray:
    """``n`` exact samples (`n x d`, in random order) of ``sum_k w_k N(means[k], covs[k])``."""
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    counts = rng.multinomial(int(n), weights / weights.sum())
    parts = []
    for k, m in enumerate(counts):
        if m:
            chol = _cholesky(np.asarray(covs[k], dtype=float), f"mixture sampling, component {k}")
            parts.append(means[k] + rng.standard_normal((m, means.shape[1])) @ chol.T)
    out = np.concatenate(parts, 0) if parts else np.zeros((0, means.shape[1]))
    return out[rng.permutation(out.shape[0])]


def dice_overlap(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """Dice coefficient of two Gaussian densities, ``2 <p, q> / (<p, p> + <q, q>)`` in ``L2``.

    Closed form: ``<N(m1, S1), N(m2, S2)> = N(m1; m2, S1 + S2)`` and ``<N(m, S), N(m, S)> =
    (4 pi)^(-d/2) |S|^(-1/2)``. 1 for identical densities, ``-> 0`` as they separate. (Our reading of
    the "Dice metric" by which Bridgman et al. bound the overlap between components, ``lambda``.)
    """
    m1, m2 = np.asarray(mean1, dtype=float), np.asarray(mean2, dtype=float)
    c1, c2 = np.asarray(cov1, dtype=float), np.asarray(cov2, dtype=float)
    d = m1.size
    cross = float(gaussian_log_pdf_nd(m1, m2, c1 + c2))

    def self_log(c: np.ndarray) -> float:
        return -0.5 * d * math.log(4 * math.pi) - float(np.sum(np.log(np.diag(_cholesky(c, "Dice overlap")))))

    a, b = self_log(c1), self_log(c2)
    return float(math.exp(math.log(2.0) + cross - np.logaddexp(a, b)))


def checked_mixture(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and normalise a mixture: `K` positive weights, `K x d` means, `K x d x d` SPD covariances.

    Raises:
        PosteriorError: naming ``what`` and the offending component.
    """
    w = np.asarray(weights, dtype=float).reshape(-1)
    mu = np.asarray(means, dtype=float)
    cov = np.asarray(covs, dtype=float)
    k = w.size
    if k == 0:
        raise PosteriorError(f"{what}: no components")
    if mu.ndim != 2 or mu.shape[0] != k:
        raise PosteriorError(f"{what}: means must be a {k} x d array, got shape {mu.shape}")
    d = mu.shape[1]
    if d < 1:
        raise PosteriorError(f"{what}: dimension must be at least 1")
    if cov.shape != (k, d, d):
        raise PosteriorError(f"{what}: covariances must be a {k} x {d} x {d} array, got shape {cov.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise PosteriorError(f"{what}: weights must be finite, non-negative and not all zero, got {w.tolist()}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(cov))):
        raise PosteriorError(f"{what}: means and covariances must be finite")
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    for j in range(k):
        _cholesky(cov[j], f"{what}, component {j}")
    return w / w.sum(), mu, cov
