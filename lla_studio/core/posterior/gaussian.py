"""Bivariate Gaussians and Gaussian mixtures: log densities, ellipses, mass outside a box."""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from lla_studio.core.posterior.box import Box

__all__ = ["CovarianceSummary", "covariance_ellipse", "gaussian_log_pdf", "gaussian_mass_outside", "mixture_log_pdf"]

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_pdf(points: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log density of ``N(mean, cov)``.

    Args:
        points: A `... x 2` array.
        mean: A `2` array.
        cov: A `2 x 2` symmetric positive-definite array.

    Returns:
        A `...` array.
    """
    p = np.asarray(points, dtype=float)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    u = p - np.asarray(mean, dtype=float)
    w1 = u[..., 0] / chol[0, 0]
    w2 = (u[..., 1] - chol[1, 0] * w1) / chol[1, 1]
    return -0.5 * (w1 * w1 + w2 * w2) - np.log(chol[0, 0]) - np.log(chol[1, 1]) - LOG_2PI


def mixture_log_pdf(points: np.ndarray, log_weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """Log of ``sum_k exp(log_weights[k]) N(points; means[k], covs[k])``.

    Args:
        points: A `... x 2` array.
        log_weights: A `K` array (need not be normalised; ``-inf`` allowed).
        means: A `K x 2` array.
        covs: A `K x 2 x 2` array.

    Returns:
        A `...` array.
    """
    terms = [lw + gaussian_log_pdf(points, m, c) for lw, m, c in zip(log_weights, means, covs) if lw > -math.inf]
    if not terms:
        return np.full(np.shape(points)[:-1], -math.inf)
    return special.logsumexp(np.stack(terms, 0), axis=0)


def gaussian_mass_outside(mean: np.ndarray, cov: np.ndarray, support: Box) -> float:
    """Probability mass of ``N(mean, cov)`` outside a (possibly half-infinite) box.

    Exact via the 1-D normal cdf when at most one coordinate is bounded (a half-plane or a strip);
    otherwise via scipy's bivariate normal cdf (Genz's algorithm, seeded; absolute error about 1e-9).
    """
    mean = np.asarray(mean, dtype=float)
    cov = np.asarray(cov, dtype=float)
    lo, hi = np.asarray(support.low), np.asarray(support.high)
    bounded = [i for i in range(2) if math.isfinite(lo[i]) or math.isfinite(hi[i])]
    if not bounded:
        return 0.0
    if len(bounded) == 1:
        i = bounded[0]
        sd = math.sqrt(cov[i, i])
        # P(outside) = P(x < lo) + P(x > hi), each an upper/lower tail computed without cancellation
        below = stats.norm.cdf((lo[i] - mean[i]) / sd) if math.isfinite(lo[i]) else 0.0
        above = stats.norm.sf((hi[i] - mean[i]) / sd) if math.isfinite(hi[i]) else 0.0
        return float(min(1.0, below + above))
    mvn = stats.multivariate_normal(mean=mean, cov=cov, abseps=1e-10, releps=1e-10, maxpts=200000, seed=0)
    inside = mvn.cdf(hi, lower_limit=lo)
    return float(min(1.0, max(0.0, 1.0 - inside)))


def covariance_ellipse(mean: np.ndarray, cov: np.ndarray, n_sd: float = 1.0, n: int = 100) -> np.ndarray:
    """Points on the ``n_sd``-sigma ellipse of ``N(mean, cov)``: an `n x 2` array (closed curve)."""
    t = np.linspace(0, 2 * np.pi, n)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    circle = np.stack([np.cos(t), np.sin(t)], -1) * n_sd
    return np.asarray(mean, dtype=float) + circle @ chol.T


class CovarianceSummary:
    """Marginal standard deviations and correlation of a 2-D posterior from its ``cov`` (a `2 x 2`
    array attribute of the class this is mixed into)."""

    cov: np.ndarray

    @property
    def sd(self) -> np.ndarray:
        """A `2` array of marginal standard deviations."""
        return np.sqrt(np.diag(self.cov))

    @property
    def correlation(self) -> float:
        """Correlation coefficient of the two parameters."""
        return float(self.cov[0, 1] / (self.sd[0] * self.sd[1]))

