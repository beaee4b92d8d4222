"""KL and Jensen-Shannon divergences between two densities on ``R^d`` by Monte Carlo, with standard errors.

Both densities must be *normalised* and sampleable (`SampledDensity`: ``log_pdf`` and ``sample``),
as the targets of `gmm_targets` and the fitted mixtures are. With ``x_i ~ p`` (``i <= n_p``) and
``y_j ~ q`` (``j <= n_q``), all in nats:

* ``KL(p || q) = E_p[log p - log q]``, estimated by the sample mean of ``log p(x_i) - log q(x_i)``,
  standard error ``sd / sqrt(n_p)``; ``KL(q || p)`` likewise from the ``y_j``.
* ``JSD(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``:
  ``log p - log m = log 2 - log(1 + q/p) = log 2 - softplus(log q - log p)`` at the ``x_i``, and the
  mirror image at the ``y_j`` (log-sum-exp throughout, so ``q = 0`` or ``p = 0`` is exact). Each
  summand is at most ``log 2``, so the estimate never exceeds ``log 2``; it is exactly 0 for ``q = p``;
  it is unbiased (and can be slightly negative when ``q ~ p``). Standard error
  ``sqrt(var_p / n_p + var_q / n_q) / 2``.

The grid divergences of `lla_studio.core.posterior.divergence` are the 2-D, quadrature
counterparts; a 2-D test checks that both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lla_studio.core.errors import PosteriorError

__all__ = [
    "MCEstimate",
    "MCDivergences",
    "SampledDensity",
    "kl_from_samples",
    "jsd_from_samples",
    "divergences_from_samples",
    "mc_divergences",
]

LOG2 = math.log(2.0)


class SampledDensity(Protocol):
    """A normalised density that can be evaluated and sampled exactly."""

    def log_pdf(self, x: np.ndarray) -> np.ndarray:
        """`... x d` -> `...` normalised log densities."""
        ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n x d` independent samples."""
        ...


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo estimate with its standard error.

    Attributes:
        value: The estimate (nats).
        se: Its Monte Carlo standard error (``inf`` when the value is infinite).
        n: Samples used (from both densities for a JSD).
    """

    value: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.se:.2g}"


@dataclass(frozen=True)
class MCDivergences:
    """``KL(p || q)``, ``KL(q || p)`` and ``JSD(p, q)`` from the same samples."""

    kl_pq: MCEstimate
    kl_qp: MCEstimate
    jsd: MCEstimate


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    mean = float(values.mean())
    se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return mean, se


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float).reshape(-1), np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise PosteriorError(f"{what}: need two equally long, non-empty arrays, got {a.size} and {b.size}")
    if np.any(np.isnan(a)) or np.any(np.isnan(b)):
        raise PosteriorError(f"{what}: NaN log density")
    if np.any(np.isposinf(a)) or np.any(np.isposinf(b)):
        raise PosteriorError(f"{what}: +inf log density")
    return a, b


def kl_from_samples(log_a_at_a: np.ndarray, log_b_at_a: np.ndarray) -> MCEstimate:
    """``KL(a || b)`` from samples of ``a``.

    Args:
        log_a_at_a: `n` normalised log densities of ``a`` at samples of ``a``.
        log_b_at_a: `n` normalised log densities of ``b`` at the same samples.

    Returns:
        The estimate; ``inf`` (standard error ``inf``) when ``b`` is zero at a sample of ``a``.
    """
    la, lb = _check_pair(log_a_at_a, log_b_at_a, "KL")
    if np.any(np.isneginf(la)):
        raise PosteriorError("KL: a sample of 'a' has zero density under 'a'")
    if np.any(np.isneginf(lb)):
        return MCEstimate(math.inf, math.inf, la.size)
    mean, se = _mean_se(la - lb)
    return MCEstimate(mean, se, la.size)


def _half_jsd_terms(log_self: np.ndarray, log_other: np.ndarray) -> np.ndarray:
    """``log self - log m = log 2 - softplus(log other - log self)`` (``<= log 2``)."""
    return LOG2 - np.logaddexp(0.0, log_other - log_self)


def jsd_from_samples(
    log_p_at_p: np.ndarray, log_q_at_p: np.ndarray, log_p_at_q: np.ndarray, log_q_at_q: np.ndarray
) -> MCEstimate:
    """``JSD(p, q)`` from samples of both (see the module docstring).

    Args:
        log_p_at_p, log_q_at_p: `n_p` log densities of ``p`` and ``q`` at samples of ``p``.
        log_p_at_q, log_q_at_q: `n_q` log densities of ``p`` and ``q`` at samples of ``q``.

    Returns:
        The estimate (``<= log 2``) and its standard error.
    """
    lpp, lqp = _check_pair(log_p_at_p, log_q_at_p, "JSD (samples of p)")
    lpq, lqq = _check_pair(log_p_at_q, log_q_at_q, "JSD (samples of q)")
    if np.any(np.isneginf(lpp)) or np.any(np.isneginf(lqq)):
        raise PosteriorError("JSD: a sample has zero density under the distribution it was drawn from")
    a = _half_jsd_terms(lpp, lqp)
    b = _half_jsd_terms(lqq, lpq)
    ma, sa = _mean_se(a)
    mb, sb = _mean_se(b)
    # each mean of terms <= log 2 is <= log 2 but for the rounding of the sum
    return MCEstimate(0.5 * (min(ma, LOG2) + min(mb, LOG2)), 0.5 * math.hypot(sa, sb), a.size + b.size)


def divergences_from_samples(
    log_p_at_p: np.ndarray, log_q_at_p: np.ndarray, log_p_at_q: np.ndarray, log_q_at_q: np.ndarray
) -> MCDivergences:
    """`MCDivergences` from log densities at samples of both (arguments as in `jsd_from_samples`)."""
    return MCDivergences(
        kl_pq=kl_from_samples(log_p_at_p, log_q_at_p),
        kl_qp=kl_from_samples(log_q_at_q, log_p_at_q),
        jsd=jsd_from_samples(log_p_at_p, log_q_at_p, log_p_at_q, log_q_at_q),
    )


def mc_divergences(p: SampledDensity, q: SampledDensity, n: int = 10_000, seed: int = 0) -> MCDivergences:
    """KL both ways and JSD between ``p`` and ``q`` from ``n`` fresh samples of each.

    Args:
        p: The reference (e.g. the target).
        q: The approximation.
        n: Samples drawn from each.
        seed: Seeds ``numpy.random.default_rng`` (``p`` is sampled first, then ``q``).

    Returns:
        The `MCDivergences`.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise PosteriorError(f"Monte Carlo divergences: 'n' must be an integer >= 2, got {n!r}")
    rng = np.random.default_rng(seed)
    xp = p.sample(n, rng)
    xq = q.sample(n, rng)
    return divergences_from_samples(p.log_pdf(xp), q.log_pdf(xp), p.log_pdf(xq), q.log_pdf(xq))
