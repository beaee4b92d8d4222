"""VI in ``d`` dimensions: a full-covariance Gaussian mixture fitted by maximising the ELBO.

The d-dimensional version of `lla_studio.core.posterior.vi` for targets on all of ``R^d`` (so no
support transform): ``q(x) = sum_k pi_k N(x; mu_k, L_k L_k^T)`` with ``L_k`` lower triangular
(log-parameterised diagonal, free strict lower part: ``K (1 + d + d(d+1)/2)`` parameters, the
paper's ``O(d^2)``). The ELBO ``sum_k pi_k E_{N_k}[log p(x) - log q(x)]`` is estimated with
``samples`` reparameterised draws from every component and maximised by Adam with a cosine-decayed
learning rate, using the "sticking the landing" estimator (``log q`` with detached parameters;
unbiased because the score has mean zero). Warm start: the Laplace mixture. Cold start: random means
uniform in the inner 80 % of the target's box, ``sd = width / 10`` per coordinate, equal weights (as
in 2-D).

JSD-vs-time: every ``eval_every`` steps the Jensen-Shannon divergence to an exactly sampleable target
is estimated by Monte Carlo (`mc_divergence.jsd_from_samples`, ``n_eval`` samples of each side) and
recorded with its standard error against the optimisation wall-clock time; evaluation time is
excluded. The evaluation uses common random numbers -- one fixed set of target samples, and ``q``'s
samples as a fixed transformation of fixed standard normals and uniforms -- so the curve moves only
because ``q`` does, not from resampling noise (each point's standard error still says how far the
estimate may be from the exact JSD).

The 2-D `vi._Mixture` is the ``d = 2`` case of `GaussianMixtureQ` and could be replaced by it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gaussian_nd import LOG_2PI, mixture_log_pdf_nd, sample_mixture_nd
from lla_studio.core.posterior.mc_divergence import jsd_from_samples
from lla_studio.core.posterior.mixture_nd import BoxedDensity, LaplaceMixtureND
from lla_studio.core.posterior.models import DTYPE

__all__ = ["GaussianMixtureQ", "VIResultND", "refine_vi_nd"]


class GaussianMixtureQ(torch.nn.Module):
    """A full-covariance Gaussian mixture with Cholesky parameters (`K` components in `d` dimensions).

    Args:
        log_weights: A `K` array (need not be normalised).
        means: A `K x d` array.
        covs: A `K x d x d` array of SPD covariances.
    """

    def __init__(self, log_weights: np.ndarray, means: np.ndarray, covs: np.ndarray) -> None:
        super().__init__()
        means = np.asarray(means, dtype=float)
        k, d = means.shape
        chol = np.linalg.cholesky(np.asarray(covs, dtype=float))
        rows, cols = np.tril_indices(d, -1)
        self._rows, self._cols = torch.as_tensor(rows), torch.as_tensor(cols)
        self._diag = torch.arange(d)
        self.logits = torch.nn.Parameter(torch.tensor(np.asarray(log_weights, dtype=float), dtype=DTYPE))
        self.mu = torch.nn.Parameter(torch.tensor(means, dtype=DTYPE))
        self.log_diag = torch.nn.Parameter(torch.tensor(np.log(np.diagonal(chol, axis1=1, axis2=2)), dtype=DTYPE))
        self.off = torch.nn.Parameter(torch.tensor(chol[:, rows, cols], dtype=DTYPE))

    @property
    def n_components(self) -> int:
        """``K``."""
        return int(self.mu.shape[0])

    @property
    def dim(self) -> int:
        """``d``."""
        return int(self.mu.shape[1])

    def chol(self, detach: bool = False) -> Tensor:
        """`K x d x d` lower-triangular Cholesky factors."""
        off, log_diag = (self.off.detach(), self.log_diag.detach()) if detach else (self.off, self.log_diag)
        L = torch.zeros(self.n_components, self.dim, self.dim, dtype=DTYPE)
        L[:, self._rows, self._cols] = off
        L[:, self._diag, self._diag] = torch.exp(log_diag)
        return L

    def sample(self, eps: Tensor) -> Tensor:
        """``eps``: `K x S x d` standard normals -> `K x S x d` reparameterised samples of each component."""
        return self.mu[:, None, :] + torch.einsum("kij,ksj->ksi", self.chol(), eps)

    def log_q(self, z: Tensor, detach: bool = False) -> Tensor:
        """Mixture log density at `... x d` points (parameters detached for the STL estimator)."""
        L = self.chol(detach)
        mu, logits, log_diag = self.mu, self.logits, self.log_diag
        if detach:
            mu, logits, log_diag = mu.detach(), logits.detach(), log_diag.detach()
        batch = z.shape[:-1]
        flat = z.reshape(-1, self.dim)
        u = (flat[None, :, :] - mu[:, None, :]).transpose(1, 2)  # K x d x N
        w = torch.linalg.solve_triangular(L, u, upper=False)
        comp = -0.5 * (w * w).sum(1) - log_diag.sum(-1, keepdim=True) - 0.5 * self.dim * LOG_2PI  # K x N
        out = torch.logsumexp(torch.log_softmax(logits, -1)[:, None] + comp, 0)
        return out.reshape(batch)

    def export(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised log weights `K`, means `K x d`, covariances `K x d x d` (numpy copies)."""
        with torch.no_grad():
            L = self.chol()
            return (
                torch.log_softmax(self.logits, -1).numpy().copy(),
                self.mu.numpy().copy(),
                (L @ L.transpose(-1, -2)).numpy().copy(),
            )


class FittedMixture:
    """What a VI result of any dimension answers from its ``log_weights`` and JSD ``trace``
    (rows ``(step, jsd, ...)``)."""

    log_weights: np.ndarray
    trace: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Normalised weights (`K`)."""
        return np.exp(self.log_weights)

    @property
    def final_jsd(self) -> float | None:
        """The last recorded JSD (``None`` without a trace)."""
        return float(self.trace[-1, 1]) if self.trace.size else None


@dataclass(frozen=True)
class VIResultND(FittedMixture):
    """A Gaussian mixture on ``R^d`` fitted by VI.

    Attributes:
        start: ``"warm"`` (from the Laplace mixture) or ``"cold"`` (random).
        log_weights: `K` normalised log weights.
        means: `K x d` means.
        covs: `K x d x d` covariances.
        trace: `T x 3` array of (optimisation seconds, JSD estimate, its standard error); empty
            without evaluation. The first row is the initial ``q`` at 0 s.
        trace_steps: `T` steps after which each trace row was taken (0 for the initial ``q``).
        elbo: `steps` array of ELBO estimates.
        seconds: Total optimisation wall-clock time (JSD evaluations excluded).
    """

    start: str
    log_weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    trace: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    trace_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    elbo: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.start not in ("warm", "cold"):
            raise PosteriorError(f"VI result: 'start' must be 'warm' or 'cold', got {self.start!r}")
        lw = np.asarray(self.log_weights, dtype=float).reshape(-1)
        means = np.asarray(self.means, dtype=float)
        k = lw.size
        if means.ndim != 2 or means.shape[0] != k:
            raise PosteriorError(f"VI result: means must be a {k} x d array, got shape {means.shape}")
        d = means.shape[1]
        object.__setattr__(self, "log_weights", lw)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covs", np.asarray(self.covs, dtype=float).reshape(k, d, d))
        object.__setattr__(self, "trace", np.asarray(self.trace, dtype=float).reshape(-1, 3))
        object.__setattr__(self, "trace_steps", np.asarray(self.trace_steps, dtype=int).reshape(-1))
        object.__setattr__(self, "elbo", np.asarray(self.elbo, dtype=float).reshape(-1))

    @property
    def dim(self) -> int:
        """``d``."""
        return int(self.means.shape[1])

    def log_pdf(self, points: np.ndarray) -> np.ndarray:
        """Normalised log density of ``q`` at a `... x d` array of points."""
        return mixture_log_pdf_nd(points, self.log_weights, self.means, self.covs)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` exact samples of ``q`` (`n x d`)."""
        return sample_mixture_nd(rng, self.weights, self.means, self.covs, n)


def _warm_init(init: LaplaceMixtureND) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = init.weights > 1e-8
    if not np.any(keep):
        raise PosteriorError("VI warm start: no Laplace component with positive weight")
    lw = np.log(init.weights[keep])
    return lw - np.logaddexp.reduce(lw), init.means[keep], init.covs[keep]


def _cold_init(target: BoxedDensity, k: int, gen: torch.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high = np.asarray(target.box_low, dtype=float), np.asarray(target.box_high, dtype=float)
    width = high - low
    lo, hi = low + 0.1 * width, high - 0.1 * width
    u = torch.rand(k, target.dim, generator=gen, dtype=DTYPE).numpy()
    sd = (hi - lo) / 8.0
    return np.full(k, -math.log(k)), lo + u * (hi - lo), np.stack([np.diag(sd**2)] * k)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PosteriorError(f"VI: '{name}' must be a positive integer, got {value!r}")
    return value


class _Evaluator:
    """JSD of ``q`` to the target with common random numbers (see the module docstring)."""

    def __init__(self, target: BoxedDensity, n_eval: int, seed: int) -> None:
        if not (hasattr(target, "sample") and hasattr(target, "log_pdf")):
            raise PosteriorError(
                "VI: a JSD trace needs a target with exact 'sample' and 'log_pdf' (a TargetND); "
                "pass eval_every=None for none"
            )
        self.target = target
        rng_p = np.random.default_rng([seed, 1])
        self.x_p = target.sample(n_eval, rng_p)  # type: ignore[attr-defined]
        self.lp_p = target.log_pdf(self.x_p)  # type: ignore[attr-defined]
        rng_q = np.random.default_rng([seed, 2])
        self.eps = torch.tensor(rng_q.standard_normal((n_eval, target.dim)), dtype=DTYPE)
        self.u = rng_q.uniform(size=n_eval)

    def __call__(self, q: GaussianMixtureQ) -> tuple[float, float]:
        with torch.no_grad():
            w = torch.softmax(q.logits, -1).numpy()
            comp = np.minimum(np.searchsorted(np.cumsum(w), self.u * w.sum(), side="right"), w.size - 1)
            comp_t = torch.as_tensor(comp)
            L = q.chol()
            y = q.mu[comp_t] + torch.einsum("nij,nj->ni", L[comp_t], self.eps)
            lq_q = q.log_q(y).numpy()
            lq_p = q.log_q(torch.from_numpy(self.x_p)).numpy()
        y_np = y.numpy()
        lp_q = self.target.log_pdf(y_np)  # type: ignore[attr-defined]
        est = jsd_from_samples(self.lp_p, lq_p, lp_q, lq_q)
        return est.value, est.se


def refine_vi_nd(
    target: BoxedDensity,
    init: LaplaceMixtureND | None = None,
    *,
    start: Literal["warm", "cold"] = "warm",
    n_components: int | None = None,
    steps: int = 1000,
    samples: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    eval_every: int | None = 50,
    n_eval: int = 2000,
    cancel: CancelCallback = None,
) -> VIResultND:
    """Fit a Gaussian-mixture ``q`` to ``target`` by maximising the ELBO (see the module docstring).

    Args:
        target: Anything with ``dim``, ``box_low``, ``box_high`` and a torch ``log_density`` (a
            `TargetND` for a JSD trace).
        init: The Laplace mixture for a warm start (required for ``start="warm"``).
        start: ``"warm"`` (from ``init``) or ``"cold"`` (random means in the target's box).
        n_components: Components of a cold start (default: as many as ``init`` has, else the
            target's ``n_components``, else 2).
        steps: Adam steps.
        samples: Reparameterised samples per component and step.
        lr: Initial Adam learning rate (cosine decay to 5 % of it).
        seed: Seeds the cold start, all ELBO samples and the evaluation samples.
        eval_every: Steps between JSD evaluations (also after the last step); ``None``: no trace.
        n_eval: Samples of the target and of ``q`` per JSD evaluation.
        cancel: Checked every step; returning True raises `Cancelled` within one step.

    Returns:
        The `VIResultND`.

    Raises:
        PosteriorError: for bad settings or a non-finite ELBO.
    """
    _positive_int("steps", steps)
    _positive_int("samples", samples)
    if eval_every is not None:
        _positive_int("eval_every", eval_every)
        _positive_int("n_eval", n_eval)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0):
        raise PosteriorError(f"VI: 'lr' must be positive, got {lr!r}")
    gen = torch.Generator().manual_seed(int(seed))
    if start == "warm":
        if init is None:
            raise PosteriorError("VI: a warm start needs the Laplace mixture ('init')")
        if init.dim != target.dim:
            raise PosteriorError(f"VI: the Laplace mixture has dimension {init.dim}, the target {target.dim}")
        lw, means, covs = _warm_init(init)
    elif start == "cold":
        k = n_components
        if k is None:
            k = len(init.components) if init is not None else int(getattr(target, "n_components", 2))
        _positive_int("n_components", k)
        lw, means, covs = _cold_init(target, k, gen)
    else:
        raise PosteriorError(f"VI: 'start' must be 'warm' or 'cold', got {start!r}")

    q = GaussianMixtureQ(lw, means, covs)
    opt = torch.optim.Adam(q.parameters(), lr=lr)
    evaluate = _Evaluator(target, n_eval, seed) if eval_every is not None else None
    trace: list[tuple[float, float, float]] = []
    trace_steps: list[int] = []
    if evaluate is not None:
        trace.append((0.0, *evaluate(q)))
        trace_steps.append(0)
    k, d = q.n_components, q.dim
    elbos = np.empty(steps)
    elapsed = 0.0
    for step in range(steps):
        check_cancel(cancel, f"VI ({start} start), step {step}")
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        eps = torch.randn(k, samples, d, generator=gen, dtype=DTYPE)
        z = q.sample(eps)
        target_lp = target.log_density(z)
        per_comp = (target_lp - q.log_q(z, detach=True)).mean(-1)
        elbo = (torch.softmax(q.logits, -1) * per_comp).sum()
        if not torch.isfinite(elbo):
            raise PosteriorError(
                f"VI ({start} start): the ELBO is not finite at step {step}; the log density is -inf or NaN "
                "at sampled points, or q has degenerated"
            )
        opt.zero_grad()
        (-elbo).backward()
        opt.step()
        elapsed += time.perf_counter() - t0
        elbos[step] = float(elbo.detach())
        if evaluate is not None and ((step + 1) % eval_every == 0 or step + 1 == steps):  # type: ignore[operator]
            trace.append((elapsed, *evaluate(q)))
            trace_steps.append(step + 1)
    lw_, mu_, cov_ = q.export()
    return VIResultND(
        start=start,
        log_weights=lw_,
        means=mu_,
        covs=cov_,
        trace=np.array(trace, dtype=float).reshape(-1, 3),
        trace_steps=np.array(trace_steps, dtype=int),
        elbo=elbos,
        seconds=elapsed,
    )
