"""Laplace approximation: the mode by Newton's method on the exact (autograd) Hessian.

`fit_laplace` runs damped Newton (Armijo backtracking) while ``-H`` is positive definite and falls
back to `scipy.optimize.minimize(method="trust-exact")` (exact gradient and Hessian) when it is
not or when the line search stalls. The covariance is ``(-H)^-1`` at the mode. A final Hessian
that is not negative definite (a saddle, a ridge, a mode on the support boundary) raises a
`PosteriorError` naming the point and the eigenvalues rather than returning a useless Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
import torch

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.gaussian import LOG_2PI, CovarianceSummary, gaussian_log_pdf
from lla_studio.core.posterior.models import DTYPE, PosteriorModel

__all__ = ["LaplaceFit", "fit_laplace", "value_and_grad", "value_grad_hessian"]


def value_and_grad(model: PosteriorModel, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Log density and its gradient at one point (``x``: a `2` array); the gradient is NaN off-support."""
    t = torch.tensor(np.asarray(x, dtype=float), dtype=DTYPE, requires_grad=True)
    f = model.log_density(t)
    if not torch.isfinite(f):
        return float(f.detach()), np.full(2, np.nan)
    (g,) = torch.autograd.grad(f, t, allow_unused=True)
    return float(f.detach()), (np.zeros(2) if g is None else g.numpy().copy())


def value_grad_hessian(model: PosteriorModel, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log density, gradient `2` and exact Hessian `2 x 2` (reverse-over-reverse autograd) at ``x``."""
    t = torch.tensor(np.asarray(x, dtype=float), dtype=DTYPE, requires_grad=True)
    f = model.log_density(t)
    if not torch.isfinite(f):
        return float(f.detach()), np.full(2, np.nan), np.full((2, 2), np.nan)
    (g,) = torch.autograd.grad(f, t, create_graph=True, allow_unused=True)
    if g is None:
        return float(f.detach()), np.zeros(2), np.zeros((2, 2))
    H = np.zeros((2, 2))
    if g.requires_grad:
        for i in range(2):
            (row,) = torch.autograd.grad(g[i], t, retain_graph=True, allow_unused=True)
            if row is not None:
                H[i] = row.detach().numpy()
    H = 0.5 * (H + H.T)
    return float(f.detach()), g.detach().numpy().copy(), H


@dataclass(frozen=True)
class LaplaceFit(CovarianceSummary):
    """A Gaussian ``N(mode, cov)`` at a local maximum of the log density.

    Attributes:
        mode: A `2` array.
        cov: A `2 x 2` array ``(-H)^-1``.
        hessian: A `2 x 2` array: the Hessian of the log density at the mode.
        log_density: Unnormalised log density at the mode.
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
        mode = np.asarray(self.mode, dtype=float).reshape(2)
        cov = np.asarray(self.cov, dtype=float).reshape(2, 2)
        if not (np.all(np.isfinite(mode)) and np.all(np.isfinite(cov))):
            raise PosteriorError(f"Laplace fit: non-finite mode {mode} or covariance {cov.tolist()}")
        if np.linalg.eigvalsh(0.5 * (cov + cov.T)).min() <= 0:
            raise PosteriorError(f"Laplace fit at {_fmt(mode)}: covariance is not positive definite")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "cov", 0.5 * (cov + cov.T))
        object.__setattr__(self, "hessian", np.asarray(self.hessian, dtype=float).reshape(2, 2))
        object.__setattr__(self, "log_density", float(self.log_density))

    @property
    def log_evidence(self) -> float:
        """Laplace evidence ``log p(mode) + log |2 pi cov|^(1/2)``."""
        return self.log_density + LOG_2PI + 0.5 * float(np.log(np.linalg.det(self.cov)))

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """Normalised Gaussian log density at a `... x 2` array of points."""
        return gaussian_log_pdf(points, self.mode, self.cov)

    def to_dict(self, weight: float = 1.0) -> dict[str, Any]:
        """``{"weight", "mean", "cov"}`` in plain lists (the report's component schema)."""
        return {"weight": float(weight), "mean": self.mode.tolist(), "cov": self.cov.tolist()}


def _fmt(x: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in np.asarray(x).ravel()) + ")"


def fit_laplace(
    model: PosteriorModel,
    start: np.ndarray | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> LaplaceFit:
    """Find a local mode by Newton's method and return its Laplace approximation.

    Args:
        model: The posterior model.
        start: A `2` array; defaults to the centre of the model's default box within its support.
        max_iter: Maximum number of Newton iterations (fallback calls count as one).
        tol: Convergence threshold on the Newton decrement ``sqrt(g^T (-H)^-1 g)`` (the step length
            in standard-deviation units).

    Returns:
        The `LaplaceFit` at the mode.

    Raises:
        PosteriorError: when the start has zero density, Newton does not converge within
            ``max_iter`` iterations, the mode lies on the support boundary, or the Hessian at the
            final point is not negative definite (the message gives the point and eigenvalues).
    """
    x = np.asarray(model.box.intersect(model.support).center if start is None else start, dtype=float).reshape(2)
    x0 = x.copy()
    f, g, H = value_grad_hessian(model, x)
    if not math.isfinite(f):
        raise PosteriorError(f"Laplace: the log density at the start point {_fmt(x)} is {f} (outside the support?)")
    used_fallback = False
    lam = math.inf
    for it in range(1, max_iter + 1):
        step = _newton_step(g, H)
        moved = False
        if step is not None:
            lam = math.sqrt(max(float(g @ step), 0.0))
            if lam < tol:
                x = x + step
                f2, g2, H2 = value_grad_hessian(model, x)
                if math.isfinite(f2):
                    f, g, H = f2, g2, H2
                else:
                    x = x - step
                return _finish(model, x, f, g, H, it, used_fallback)
            t = 1.0
            while t > 1e-12:
                xn = x + t * step
                fn = _value(model, xn)
                # Armijo, with slack for rounding in f: near the mode the predicted increase
                # lam^2/2 falls below the floating-point resolution of f
                slack = 64 * np.finfo(float).eps * (1.0 + abs(f))
                if math.isfinite(fn) and fn >= f + 1e-4 * t * lam * lam - slack:
                    x = xn
                    moved = True
                    break
                t *= 0.5
        if not moved:
            _check_boundary(model, x, g)
            used_fallback = True
            xn = _trust_region(model, x)
            if np.allclose(xn, x, rtol=0, atol=1e-14 * (1 + np.abs(x).max())):
                lam = _decrement(g, H)
                if lam is not None and lam < 1e3 * tol:
                    return _finish(model, x, f, g, H, it, used_fallback)
                _raise_not_nd_or_stuck(model, x, f, g, H, x0)
            x = xn
        f, g, H = value_grad_hessian(model, x)
    raise PosteriorError(
        f"Laplace: Newton did not converge in {max_iter} iterations from {_fmt(x0)}; "
        f"last point {_fmt(x)}, log density {f:.6g}, gradient {_fmt(g)}, Newton decrement {lam:.3g}"
    )


def _newton_step(g: np.ndarray, H: np.ndarray) -> np.ndarray | None:
    try:
        chol = np.linalg.cholesky(-H)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(chol)):
        return None
    return scipy.linalg.cho_solve((chol, True), g)


def _decrement(g: np.ndarray, H: np.ndarray) -> float | None:
    step = _newton_step(g, H)
    return None if step is None else math.sqrt(max(float(g @ step), 0.0))


def _value(model: PosteriorModel, x: np.ndarray) -> float:
    with torch.no_grad():
        return float(model.log_density(torch.tensor(x, dtype=DTYPE)))


def _trust_region(model: PosteriorModel, x: np.ndarray) -> np.ndarray:
    def fun(z: np.ndarray) -> float:
        val = _value(model, z)
        return -val if math.isfinite(val) else math.inf

    # scipy builds the subproblem (gradient and Hessian) at every proposed point, also at rejected
    # ones outside the support: give it finite zeros there, the infinite objective rejects the step.
    def jac(z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(-value_and_grad(model, z)[1], nan=0.0)

    def hess(z: np.ndarray) -> np.ndarray:
        return np.nan_to_num(-value_grad_hessian(model, z)[2], nan=0.0)

    res = scipy.optimize.minimize(
        fun, x, jac=jac, hess=hess, method="trust-exact", options={"gtol": 1e-10, "maxiter": 200}
    )
    return np.asarray(res.x, dtype=float) if np.isfinite(res.fun) else x


def _check_boundary(model: PosteriorModel, x: np.ndarray, g: np.ndarray) -> None:
    width = model.box.width
    for i in range(2):
        lo, hi = model.support.low[i], model.support.high[i]
        near_lo = math.isfinite(lo) and x[i] - lo <= 1e-6 * width[i] and g[i] < 0
        near_hi = math.isfinite(hi) and hi - x[i] <= 1e-6 * width[i] and g[i] > 0
        if near_lo or near_hi:
            raise PosteriorError(
                f"Laplace: the maximum lies on the support boundary at {_fmt(x)} "
                f"({model.param_names[i]} = {x[i]:.6g}, gradient {_fmt(g)} points outside); "
                "a Gaussian there is not a valid approximation"
            )


def _raise_not_nd_or_stuck(
    model: PosteriorModel, x: np.ndarray, f: float, g: np.ndarray, H: np.ndarray, x0: np.ndarray
) -> None:
    eig = np.linalg.eigvalsh(H)
    if eig.max() >= 0:
        raise PosteriorError(
            f"Laplace: the Hessian at {_fmt(x)} is not negative definite (eigenvalues {_fmt(eig)}); "
            "this is a saddle point, a ridge or a mode on the support boundary, not a mode"
        )
    raise PosteriorError(
        f"Laplace: Newton from {_fmt(x0)} stalled at {_fmt(x)} (log density {f:.6g}, gradient {_fmt(g)})"
    )


def _finish(
    model: PosteriorModel, x: np.ndarray, f: float, g: np.ndarray, H: np.ndarray, iterations: int, used_fallback: bool
) -> LaplaceFit:
    eig = np.linalg.eigvalsh(H)
    if not np.all(np.isfinite(eig)) or eig.max() >= 0:
        raise PosteriorError(
            f"Laplace: the Hessian at {_fmt(x)} is not negative definite (eigenvalues {_fmt(eig)}); "
            "this is a saddle point, a ridge or a mode on the support boundary, not a mode"
        )
    _check_boundary(model, x, g)
    cov = np.linalg.inv(-H)
    return LaplaceFit(mode=x, cov=cov, hessian=H, log_density=f, iterations=iterations, used_fallback=used_fallback)
