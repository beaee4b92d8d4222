"""KL and Jensen-Shannon divergences between densities tabulated on the same grid (in nats).

Inputs are *unnormalised* log densities (or log cell masses) on a common set of equal-area cells;
each is normalised by its log-sum-exp, so the result compares the two distributions restricted to
the grid. Everything stays in log space: no ``exp`` of a large number, no ``0 * log 0``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from lla_studio.core.errors import PosteriorError

__all__ = ["kl_divergence", "js_divergence", "normalize_log"]


def normalize_log(log_p: np.ndarray, name: str = "p") -> np.ndarray:
    """Log cell probabilities from unnormalised log densities (NaN counts as zero density)."""
    lp = np.asarray(log_p, dtype=float)
    lp = np.where(np.isnan(lp), -np.inf, lp)
    if np.any(np.isposinf(lp)):
        raise PosteriorError(f"divergence: '{name}' has +inf log density")
    if not np.any(np.isfinite(lp)):
        raise PosteriorError(f"divergence: '{name}' is zero on every grid cell")
    return lp - special.logsumexp(lp)


def _check(log_p: np.ndarray, log_q: np.ndarray) -> None:
    if np.shape(log_p) != np.shape(log_q):
        raise PosteriorError(f"divergence: shapes differ, {np.shape(log_p)} vs {np.shape(log_q)}")


def kl_divergence(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """``KL(p || q) = sum_i p_i (log p_i - log q_i)`` on the grid.

    Args:
        log_p: Unnormalised log densities of p on the cells (any shape).
        log_q: Same for q (same shape).

    Returns:
        KL in nats; ``inf`` when q is zero on a cell where p is not.
    """
    _check(log_p, log_q)
    lp, lq = normalize_log(log_p, "p"), normalize_log(log_q, "q")
    mask = np.isfinite(lp)
    if np.any(~np.isfinite(lq[mask])):
        return math.inf
    return float(max(0.0, np.sum(np.exp(lp[mask]) * (lp[mask] - lq[mask]))))


def js_divergence(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """Jensen-Shannon divergence ``KL(p||m)/2 + KL(q||m)/2``, ``m = (p + q)/2``, in nats (<= log 2)."""
    _check(log_p, log_q)
    lp, lq = normalize_log(log_p, "p"), normalize_log(log_q, "q")
    lm = np.logaddexp(lp, lq) - math.log(2.0)
    total = 0.0
    for log_x in (lp, lq):
        mask = np.isfinite(log_x)
        total += 0.5 * float(np.sum(np.exp(log_x[mask]) * (log_x[mask] - lm[mask])))
    return float(min(max(total, 0.0), math.log(2.0)))
