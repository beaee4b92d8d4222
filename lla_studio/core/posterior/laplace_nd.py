"""Laplace approximation in ``d`` dimensions: Newton's method on the exact (autograd) Hessian.

The d-dimensional version of `lla_studio.core.posterior.laplace` for densities on all of ``R^d``
(no support box): damped Newton with Armijo backtracking while ``-H`` is positive definite, a
`scipy.optimize.minimize(method="trust-exact")` fallback where it is not or the line search stalls,
and ``cov = (-H)^-1`` at the mode. A final Hessian that is not negative definite raises a
`PosteriorError` naming the point and the eigenvalues. The 2-D `fit_laplace` is this algorithm plus
support checks; its `value_grad_hessian` is `value_grad_hessian_nd` at ``d = 2``.

Cost per Newton step: one reverse pass for the gradient and ``d`` more for the Hessian rows, then a
``d x d`` Cholesky (``O(d^3)``; negligible against the density for the ``d <= 15`` we use).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import torch
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.gaussian_nd import LOG_2PI, gaussian_log_pdf_nd
from lla_studio.core.posterior.models import DTYPE

__all__ = ["LogDensity", "LaplaceFitND", "fit_laplace_nd", "value_grad_hessian_nd"]

LogDensity = Callable[[Tensor], Tensor]  # ``... x d`` float64 tensor -> ``...`` log densities


def _fmt(x: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.asarray(x).ravel()) + ")"


def value_grad_hessian_nd(log_density: LogDensity, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log density, gradient (`d`) and exact Hessian (`d x d`, reverse-over-reverse autograd) at ``x``.

    Non-finite densities give NaN gradient and Hessian.
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    d = x.size
    t = torch.tensor(x, dtype=DTYPE, requires_grad=True)
    f = log_density(t)
    if not torch.isfinite(f):
        return float(f.detach()), np.full(d, np.nan), np.full((d, d), np.nan)
    (g,) = torch.autograd.grad(f, t, create_graph=True, allow_unused=True)
    if g is None:
        return float(f.detach()), np.zeros(d), np.zeros((d, d))
    H = np.zeros((d, d))
    if g.requires_grad:
        for i in range(d):
            (row,) = torch.autograd.grad(g[i], t, retain_graph=True, allow_unused=True)
            if row is not None:
                H[i] = row.detach().numpy()
    return float(f.detach()), g.detach().numpy().copy(), 0.5 * (H + H.T)


def _value(log_density: LogDensity, x: np.ndarray) -> float:
    with torch.no_grad():
        return float(log_density(torch.tensor(x, dtype=DTYPE)))


@dataclass(frozen=True)
class LaplaceFitND:
    """A Gaussian ``N(mode, cov)`` at a local maximum of a log density on ``R^d``.

    Attributes:
        mode: A `d` array.
        cov: A `d x d` array ``(-H)^-1``.
        hessian: A `d x d` array: the Hessian of the log density at the mode.
        log_density: Log density at the mode.
        iterations: Newton iterations used.
        used_fallback: Whether the trust-region fallback was needed.
    """

    mode: np.ndarray
    cov: np.ndarray
    hessian: np.ndarray
    log_density: float
    iterations: int = 0
    used_fallback: bool = False

    def __post_init__(self) -> None:
        mode = np.asarray(self.mode, dtype=float).reshape(-1)
        d = mode.size
        cov = np.asarray(self.cov, dtype=float).reshape(d, d)
        if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(cov))):
            raise PosteriorError(f"Laplace fit: non-finite mode {_fmt(mode)} or covariance")
        cov = 0.5 * (cov + cov.T)
        if np.linalg.eigvalsh(cov).min() <= 0:
            raise PosteriorError(f"Laplace fit at {_fmt(mode)}: covariance is not positive definite")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "hessian", np.asarray(self.hessian, dtype=float).reshape(d, d))
        object.__setattr__(self, "log_density", float(self.log_density))

    @property
    def dim(self) -> int:
        """``d``."""
        return int(self.mode.size)

    @property
    def sd(self) -> np.ndarray:
        """A `d` array of marginal standard deviations."""
        return np.sqrt(np.diag(self.cov))

    @property
    def log_evidence(self) -> float:
        """Laplace evidence ``log p(mode) + log |2 pi cov|^(1/2)``."""
        _, logdet = np.linalg.slogdet(self.cov)
        return self.log_density + 0.5 * self.dim * LOG_2PI + 0.5 * float(logdet)

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """Normalised Gaussian log density at a `... x d` array of points."""
        return gaussian_log_pdf_nd(points, self.mode, self.cov)

    def to_dict(self, weight: float = 1.0) -> dict[str, Any]:
        """``{"weight", "mean", "cov"}`` in plain lists."""
        return {"weight": float(weight), "mean": self.mode.tolist(), "cov": self.cov.tolist()}


def _newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray | None:
    try:
        chol = np.linalg.cholesky(-H)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(chol)):
        return None
    return scipy.linalg.cho_solve((chol, True), g)


def _trust_region(log_density: LogDensity, x: np.ndarray) -> np.ndarray:
    def fun(z: np.ndarray) -> float:
        val = _value(log_density, z)
        return -val if math.isfinite(val) else math.inf

    def jac(z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(-value_grad_hessian_nd(log_density, z)[1], nan=0.0)

    def hess(z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(-value_grad_hessian_nd(log_density, z)[2], nan=0.0)

    res = scipy.optimize.minimize(
        fun, x, jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-10, "maxiter": 200}
    )
    return np.asarray(res.x, dtype=float) if np.isfinite(res.fun) else x


def _not_a_mode(x: np.ndarray, H: np.ndarray) -> PosteriorError:
    eig = np.linalg.eigvalsh(np.nan_to_num(H))
    return PosteriorError(
        f"Laplace: the Hessian at {_fmt(x)} is not negative definite (eigenvalues {_fmt(eig)}); "
        "this is a saddle point or a ridge, not a mode"
    )


def fit_laplace_nd(
    log_density: LogDensity,
    start: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> LaplaceFitND:
    """Find a local mode by Newton's method and return its Laplace approximation.

    Args:
        log_density: ``... x d -> ...`` (an unnormalised log density; differentiable in torch).
        start: A `d` array.
        max_iter: Maximum Newton iterations (a trust-region fallback call counts as one).
        tol: Convergence threshold on the Newton decrement ``sqrt(g^T (-H)^-1 g)``.

    Returns:
        The `LaplaceFitND`.

    Raises:
        PosteriorError: for a start with zero density, no convergence within ``max_iter``, or a
            final Hessian that is not negative definite (the message gives the point and eigenvalues).
    """
    x = np.asarray(start, dtype=float).reshape(-1).copy()
    x0 = x.copy()
    f, g, H = value_grad_hessian_nd(log_density, x)
    if not math.isfinite(f):
        raise PosteriorError(f"Laplace: the log density at the start point {_fmt(x)} is {f}")
    used_fallback = False
    lam = math.inf
    for it in range(1, max_iter + 1):
        step = _newton_step(g, H)
        moved = False
        if step is not None:
            lam = math.sqrt(max(float(g @ step), 0.0))
            if lam < tol:
                xn = x + step
                f2, g2, H2 = value_grad_hessian_nd(log_density, xn)
                if math.isfinite(f2):
                    x, f, g, H = xn, f2, g2, H2
                return _finish(x, f, H, it, used_fallback)
            t = 1.0
            while t > 1e-12:
                xn = x + t * step
                fn = _value(log_density, xn)
                # Armijo with slack for rounding in f (near the mode lam^2/2 falls below its resolution)
                slack = 64 * np.finfo(float).eps * (1.0 + abs(f))
                if math.isfinite(fn) and fn >= f + 1e-4 * t * lam * lam - slack:
                    x, moved = xn, True
                    break
                t *= 0.5
        if not moved:
            used_fallback = True
            xn = _trust_region(log_density, x)
            if np.allclose(xn, x, rtol=0, atol=1e-14 * (1 + np.abs(x).max())):
                step = _newton_step(g, H)
                if step is not None and math.sqrt(max(float(g @ step), 0.0)) < 1e3 * tol:
                    return _finish(x, f, H, it, used_fallback)
                if step is None:
                    raise _not_a_mode(x, H)
                raise PosteriorError(f"Laplace: Newton from {_fmt(x0)} stalled at {_fmt(x)} (log density {f:.6g})")
            x = xn
        f, g, H = value_grad_hessian_nd(log_density, x)
    raise PosteriorError(
        f"Laplace: Newton did not converge in {max_iter} iterations from {_fmt(x0)}; last point {_fmt(x)}, "
        f"log density {f:.6g}, Newton decrement {lam:.3g}"
    )


def _finish(x: np.ndarray, f: float, H: np.ndarray, iterations: int, used_fallback: bool) -> LaplaceFitND:
    eig = np.linalg.eigvalsh(H)
    if not np.all(np.isfinite(eig)) or eig.max() >= 0:
        raise _not_a_mode(x, H)
    return LaplaceFitND(
        mode=x, cov=np.linalg.inv(-H), hessian=H, log_density=f, iterations=iterations, used_fallback=used_fallback
    )
