"""Background computation for the posterior lab: a worker on a `QThread` and its controller.

The GUI (`lla_studio.gui.posterior_lab.PosteriorLab`) never touches torch. It describes what it wants
as a frozen `PosteriorRequest` (a model spec as a plain dict plus analysis settings) and receives frozen
`PosteriorSnapshot`s: detached, read-only numpy arrays ready to draw (normalised grid density, HPD
contour paths, Laplace ellipses, marginals, a quantile table, samples, VI traces) next to the core's
own `PosteriorAnalysis`.

Threads (CONVENTIONS §3):

* `PosteriorWorker` is a parent-less `QObject` moved to a `QThread`; its `compute` slot runs
  `compute_posterior` and emits ``computed(PosteriorSnapshot)``, ``failed(PosteriorFailure)`` and, once
  per request whatever happened, ``finished_request("posterior", request_id)``.
* `PosteriorController` (a `lla_studio.engine.background.NewestRequestController`) lives on the GUI
  thread and owns the thread, the growing request ids, the debounce timer (`schedule` collapses a
  burst of edits into one request) and cancellation: submitting a request sets the ``cancel_event``
  of the previous one, which the core checks inside its long loops, so a superseded computation stops
  within a fraction of a second and queued stale requests are skipped without work. Answers for any
  request but the newest are dropped before they reach the view.

Each request answers in stages: ``"laplace"`` (Laplace, Laplace mixture, grid; fast) and, with VI on,
``"vi-warm"`` and ``"vi"`` (warm- then cold-started VI refinement on the same model, mixture and grid,
so the fast part is not recomputed).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import contourpy
import numpy as np
import torch
from PySide6.QtCore import QObject, Signal, Slot
from scipy import optimize, stats

from lla_studio.core.errors import Cancelled, LLAStudioError
from lla_studio.core.posterior import (
    MODEL_NAMES,
    ExpressionSpec,
    PosteriorAnalysis,
    analyze,
    default_spec,
    js_divergence,
    kl_divergence,
    refine_vi,
    spec_from_dict,
)
from lla_studio.core.posterior.gaussian import covariance_ellipse
from lla_studio.core.posterior.vi import SupportTransform, VIResult
from lla_studio.engine.background import (
    CancellableRequest,
    NewestRequestController,
    configure_torch_threads,
    run_reporting,
)

__all__ = [
    "EXPRESSION",
    "HPD_MASSES",
    "MODEL_LABELS",
    "PANEL_MODELS",
    "QUANTILE_METHODS",
    "FieldInfo",
    "PosteriorController",
    "PosteriorFailure",
    "PosteriorRequest",
    "PosteriorSnapshot",
    "PosteriorWorker",
    "compute_posterior",
    "configure_torch_threads",
    "default_spec_dict",
    "model_fields",
]

EXPRESSION = "expression"
PANEL_MODELS: tuple[str, ...] = tuple(MODEL_NAMES) + (EXPRESSION,)
MODEL_LABELS: dict[str, str] = {
    "bioassay": "bioassay (alpha, beta)",
    "bioassay-logbeta": "bioassay (alpha, log beta)",
    "shear-frame": "shear frame (c1, c2)",
    "banana": "banana",
    "mixture": "Gaussian mixture",
    EXPRESSION: "user expression (a, b)",
}
QUANTILE_METHODS: tuple[str, ...] = ("grid", "laplace", "mixture", "vi")
# Mass inside the 1- and 2-sigma ellipses of a bivariate Gaussian: 1 - exp(-k^2 / 2).
HPD_MASSES: tuple[float, float] = (1.0 - math.exp(-0.5), 1.0 - math.exp(-2.0))
ELLIPSE_POINTS = 121
POSTERIOR = "posterior"  # the one kind of request

# ------------------------------------------------------------------------------ model catalog
@dataclass(frozen=True)
class FieldInfo:
    """How the panel edits one field of a model spec.

    Attributes:
        name: The spec field name (a key of ``ModelSpec.to_dict()``).
        kind: ``"bool"``, ``"int"``, ``"float"``, ``"str"``, ``"pair"`` (two floats),
            ``"optional-pair"`` (``None`` or two floats, e.g. a normal prior ``(mean, sd)``) or
            ``"optional-int"`` (``None`` or an integer, e.g. a noise seed).
        value: The default value (``None`` for an unset optional; pairs as tuples).
        enabled_value: The value an optional field takes when it is switched on.
        label: Text for the form row.
        parts: Labels of the two entries of a pair.
        hint: Tooltip text.
    """

    name: str
    kind: str
    value: Any
    enabled_value: Any
    label: str
    parts: tuple[str, str] = ("", "")
    hint: str = ""


_KINDS = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "str": "str",
    "tuple[float, float]": "pair",
    "tuple[float, float] | None": "optional-pair",
    "int | None": "optional-int",
}
_HIDDEN = {("bioassay", "log_beta")}  # chosen by the model picker (bioassay vs bioassay-logbeta)
_ENABLED = {
    ("bioassay", "prior_alpha"): (0.0, 2.0),
    ("bioassay", "prior_beta"): (10.0, 10.0),
    ("shear-frame", "noise_seed"): 0,
}
_PARTS = {
    "prior_alpha": ("mean", "sd"),
    "prior_beta": ("mean", "sd"),
    "true_c": ("c1", "c2"),
    "c_max": ("c1", "c2"),
    "masses": ("m1", "m2"),
    "stiffnesses": ("k1", "k2"),
    "low": ("a", "b"),
    "high": ("a", "b"),
}
_LABELS = {
    "prior_alpha": "normal prior on alpha",
    "prior_beta": "normal prior on beta",
    "true_c": "true damping",
    "sigma": "noise sd",
    "noise_seed": "noisy data (seed)",
    "c_max": "prior box upper ends",
    "n_obs": "observations",
    "s1": "s1 (sd of x1)",
    "s2": "s2 (sd of x2 | x1)",
    "c": "c (curvature)",
    "d": "d (offset)",
    "mu": "mu (mean of x1)",
    "sd": "component sd",
    "weight": "weight of the left component",
    "low": "box low",
    "high": "box high",
}
_HINTS = {
    "prior_alpha": "Switch on a N(mean, sd^2) prior on alpha (off: flat prior).",
    "prior_beta": "Switch on a N(mean, sd^2) prior on beta (off: flat prior on beta > 0).",
    "noise_seed": "Off: noise-free data. On: add N(0, sigma^2) noise drawn with this seed.",
    "expression": "Unnormalised log density in a and b, e.g. -(a**2 + b**2)/2. Functions: exp log log1p "
    "sqrt sin cos tan tanh abs where minimum maximum; constants pi, e.",
    "c": "x2 | x1 ~ N(c x1^2 + d, s2^2): the curvature of the banana.",
    "separation": "Distance between the two component means along x1.",
    "low": "Lower corner of the box (the density is zero outside it).",
    "high": "Upper corner of the box (the density is zero outside it).",
}


def _spec_for(name: str):
    if name == EXPRESSION:
        return ExpressionSpec()
    return default_spec(name)


def default_spec_dict(name: str) -> dict[str, Any]:
    """The default spec of a panel model (see `PANEL_MODELS`) as a plain dict (``ModelSpec.to_dict``)."""
    return _spec_for(name).to_dict()


def model_fields(name: str) -> tuple[FieldInfo, ...]:
    """The editable fields of a panel model, in declaration order (derived from the spec dataclass)."""
    spec = _spec_for(name)
    tag = spec.TYPE
    out = []
    for f in dataclasses.fields(spec):
        kind = _KINDS.get(str(f.type))
        if kind is None or (tag, f.name) in _HIDDEN:
            continue
        value = getattr(spec, f.name)
        if kind == "optional-pair":
            enabled = _ENABLED.get((tag, f.name), (0.0, 1.0))
        elif kind == "optional-int":
            enabled = _ENABLED.get((tag, f.name), 0)
        else:
            enabled = value
        out.append(
            FieldInfo(
                name=f.name,
                kind=kind,
                value=value,
                enabled_value=enabled if value is None else value,
                label=_LABELS.get(f.name, f.name.replace("_", " ")),
                parts=_PARTS.get(f.name, ("1", "2")),
                hint=_HINTS.get(f.name, ""),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- request / result
def _freeze_value(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_freeze_value(x) for x in v)
    return v


@dataclass(frozen=True)
class PosteriorRequest(CancellableRequest):
    """One computation the GUI asks for.

    Attributes:
        request_id: Grows with every request of a controller; answers carry it back.
        spec: Model spec as a plain dict with a ``"type"`` tag (``ModelSpec.to_dict`` form), frozen.
        grid_n: Grid points per axis.
        starts: Multi-start count of the Laplace mixture.
        seed: Seeds the starts, VI and the displayed samples.
        vi: Also run warm- and cold-started VI (two more answers).
        vi_steps: Adam steps per VI run.
        n_samples: Samples drawn from each approximation for the scatter overlay.
        cancel_event: Set by the controller when a newer request supersedes this one.
    """

    spec: Mapping[str, Any]
    grid_n: int = 101
    starts: int = 16
    seed: int = 0
    vi: bool = False
    vi_steps: int = 400
    n_samples: int = 300

    def __post_init__(self) -> None:
        frozen = MappingProxyType({str(k): _freeze_value(copy.deepcopy(v)) for k, v in dict(self.spec).items()})
        object.__setattr__(self, "spec", frozen)


@dataclass(frozen=True)
class PosteriorSnapshot:
    """One answer, ready to draw: every array is a read-only numpy copy.

    Attributes:
        request_id: The request it answers.
        stage: ``"laplace"`` (no VI yet), ``"vi-warm"`` (warm VI done) or ``"vi"`` (both VI runs done).
        final: No further answer for this request follows.
        analysis: The core's `PosteriorAnalysis` (numpy only).
        param_names: The two parameter names.
        box_low, box_high: Grid box corners ``(a, b)``.
        density: `n_b x n_a` float32 normalised grid density (rows follow the 2nd parameter), finite.
        hpd_levels: Density values bounding the highest-density regions of `HPD_MASSES` mass.
        contours: One `N x 2` array per HPD level (segments separated by NaN rows).
        ellipses: Per Laplace-mixture component, ``(1 sigma, 2 sigma)`` closed curves (`n x 2` each).
        component_weights: `K` normalised weights of the Laplace mixture.
        modes: `K x 2` modes of the Laplace mixture.
        vi_curves: ``(1 sigma, 2 sigma)`` curves of the warm VI components mapped to the model's
            coordinates (NaN-separated), or ``None`` without VI.
        marginals: ``param -> {"x", "grid", "laplace", "mixture", "vi"}`` densities on the grid axes
            (``"vi"`` is ``None`` without VI).
        quantile_levels: The quantile levels (2.5, 25, 50, 75, 97.5 %).
        quantiles: A `2 x 5 x 4` array ``[param, level, method]`` for methods `QUANTILE_METHODS`
            (NaN where missing).
        samples: ``"laplace" | "mixture" | "vi" -> n x 2`` samples (``"vi"`` absent without VI).
        traces: ``"warm" | "cold" -> T x 2`` (seconds, JSD to the grid) of the VI runs done so far.
        jsd: Jensen-Shannon divergences to the grid posterior (nats), ``None`` where not computed.
        notes: Messages from the core (failed starts, fallbacks).
        seconds: Wall-clock seconds since the request started computing.
    """

    request_id: int
    stage: str
    final: bool
    analysis: PosteriorAnalysis
    param_names: tuple[str, str]
    box_low: tuple[float, float]
    box_high: tuple[float, float]
    density: np.ndarray
    hpd_levels: tuple[float, ...]
    contours: tuple[np.ndarray, ...]
    ellipses: tuple[tuple[np.ndarray, np.ndarray], ...]
    component_weights: np.ndarray
    modes: np.ndarray
    vi_curves: tuple[np.ndarray, np.ndarray] | None
    marginals: Mapping[str, Mapping[str, np.ndarray | None]]
    quantile_levels: tuple[float, ...]
    quantiles: np.ndarray
    samples: Mapping[str, np.ndarray]
    traces: Mapping[str, np.ndarray]
    jsd: Mapping[str, float | None]
    notes: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class PosteriorFailure:
    """A request that failed: ``message`` names the culprit (a `PosteriorError` message, usually)."""

    request_id: int
    stage: str
    message: str
    error_type: str


# ------------------------------------------------------------------------------- computation
def _ro(a: Any, dtype: Any = float) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


def _join_curves(curves: list[np.ndarray]) -> np.ndarray:
    """Concatenate `n x 2` curves with a NaN row between them (for ``connect="finite"``)."""
    if not curves:
        return _ro(np.zeros((0, 2)))
    gap = np.full((1, 2), np.nan)
    parts: list[np.ndarray] = []
    for c in curves:
        if parts:
            parts.append(gap)
        parts.append(np.asarray(c, dtype=float).reshape(-1, 2))
    return _ro(np.concatenate(parts, 0))


def _hpd_levels(density: np.ndarray, cell_area: float, masses: tuple[float, ...]) -> tuple[float, ...]:
    p = np.sort(density.ravel())[::-1] * cell_area
    total = p.sum()
    if not (total > 0):
        return tuple(0.0 for _ in masses)
    c = np.cumsum(p) / total
    return tuple(float(p[min(int(np.searchsorted(c, m)), p.size - 1)] / cell_area) for m in masses)


def _contours(a: np.ndarray, b: np.ndarray, density: np.ndarray, levels: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    gen = contourpy.contour_generator(a, b, density, line_type="Separate")
    out = []
    for level in levels:
        lines = gen.lines(level) if level > 0 else []
        out.append(_join_curves([np.asarray(x) for x in lines]))
    return tuple(out)


def _edges(x: np.ndarray) -> np.ndarray:
    h = x[1] - x[0]
    return np.concatenate([[x[0] - h / 2], x + h / 2])


def _quantiles_from_density(x: np.ndarray, dens: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """Quantiles of a density tabulated at cell centres ``x`` (constant per cell)."""
    masses = np.clip(np.nan_to_num(dens, nan=0.0, posinf=0.0), 0.0, None)
    if not masses.sum() > 0:
        return np.full(len(levels), np.nan)
    cdf = np.concatenate([[0.0], np.cumsum(masses)])
    cdf /= cdf[-1]
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    return np.interp(levels, cdf[keep], _edges(x)[keep])


def _mixture_quantiles(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    lo, hi = float(np.min(mu - 12 * sd)), float(np.max(mu + 12 * sd))
    out = []
    for q in levels:
        out.append(optimize.brentq(lambda x: float(w @ stats.norm.cdf((x - mu) / sd)) - q, lo, hi, xtol=1e-10))
    return np.asarray(out)


def _vi_marginals(analysis: PosteriorAnalysis) -> tuple[np.ndarray, np.ndarray] | None:
    ld = analysis.vi_log_density
    if ld is None:
        return None
    ld = np.where(np.isfinite(ld), ld, -np.inf)
    top = np.max(ld)
    if not np.isfinite(top):
        return None
    p = np.exp(ld - top)
    p /= p.sum()
    grid = analysis.grid
    da, db = grid.a[1] - grid.a[0], grid.b[1] - grid.b[0]
    return p.sum(0) / da, p.sum(1) / db


def _sample_gaussians(
    rng: np.random.Generator, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, n: int
) -> np.ndarray:
    counts = rng.multinomial(n, np.asarray(weights) / np.sum(weights))
    parts = []
    for k, m in enumerate(counts):
        if m:
            chol = np.linalg.cholesky(covs[k])
            parts.append(means[k] + rng.standard_normal((m, 2)) @ chol.T)
    return np.concatenate(parts, 0) if parts else np.zeros((0, 2))


def _to_model_coordinates(vi: VIResult, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x, _ = SupportTransform(vi.support).forward(torch.as_tensor(np.asarray(z, dtype=float)))
    return x.numpy()


def make_snapshot(
    analysis: PosteriorAnalysis, request: PosteriorRequest, stage: str, final: bool, seconds: float = 0.0
) -> PosteriorSnapshot:
    """Turn a `PosteriorAnalysis` into display-ready, read-only arrays (runs on the worker thread)."""
    grid = analysis.grid
    names = tuple(analysis.param_names)
    density = np.nan_to_num(grid.density, nan=0.0, posinf=0.0, neginf=0.0)
    levels = _hpd_levels(density, grid.cell_area, HPD_MASSES)
    contours = _contours(grid.a, grid.b, density, levels)

    mix = analysis.mixture
    weights = mix.weights
    ellipses = tuple(
        tuple(_ro(covariance_ellipse(c.mode, c.cov, k, ELLIPSE_POINTS)) for k in (1.0, 2.0))
        for c in mix.components
    )

    lap = analysis.laplace
    levels_q = tuple(analysis.quantile_levels)
    quant = np.full((2, len(levels_q), len(QUANTILE_METHODS)), np.nan)
    vi_marg = _vi_marginals(analysis)
    marginals: dict[str, Mapping[str, np.ndarray | None]] = {}
    comp_means, comp_covs = mix.means, mix.covs
    for i, (name, x, gm) in enumerate(zip(names, (grid.a, grid.b), (grid.marginal_a, grid.marginal_b))):
        comp_sd = np.sqrt(comp_covs[:, i, i])
        lap_m = stats.norm.pdf(x, lap.mode[i], lap.sd[i])
        mix_m = (weights[:, None] * stats.norm.pdf(x[None, :], comp_means[:, i, None], comp_sd[:, None])).sum(0)
        vi_m = None if vi_marg is None else vi_marg[i]
        marginals[name] = MappingProxyType(
            {
                "x": _ro(x),
                "grid": _ro(gm),
                "laplace": _ro(lap_m),
                "mixture": _ro(mix_m),
                "vi": None if vi_m is None else _ro(vi_m),
            }
        )
        quant[i, :, 0] = analysis.quantiles[name]
        quant[i, :, 1] = stats.norm.ppf(levels_q, lap.mode[i], lap.sd[i])
        quant[i, :, 2] = _mixture_quantiles(weights, comp_means[:, i], comp_sd, levels_q)
        if vi_m is not None:
            quant[i, :, 3] = _quantiles_from_density(x, vi_m, levels_q)

    rng = np.random.default_rng(request.seed)
    n = int(request.n_samples)
    samples: dict[str, np.ndarray] = {
        "laplace": _ro(_sample_gaussians(rng, np.ones(1), lap.mode[None], lap.cov[None], n)),
        "mixture": _ro(_sample_gaussians(rng, weights, comp_means, comp_covs, n)),
    }
    vi_curves = None
    traces: dict[str, np.ndarray] = {}
    vi = analysis.vi_warm
    if vi is not None:
        z = _sample_gaussians(rng, vi.weights, vi.means, vi.covs, n)
        samples["vi"] = _ro(_to_model_coordinates(vi, z))
        curves = []
        for k_sd in (1.0, 2.0):
            parts = [
                _to_model_coordinates(vi, covariance_ellipse(m, c, k_sd, ELLIPSE_POINTS))
                for m, c in zip(vi.means, vi.covs)
            ]
            curves.append(_join_curves(parts))
        vi_curves = (curves[0], curves[1])
        traces["warm"] = _ro(vi.trace)
    if analysis.vi_cold is not None:
        traces["cold"] = _ro(analysis.vi_cold.trace)

    return PosteriorSnapshot(
        request_id=request.request_id,
        stage=stage,
        final=final,
        analysis=analysis,
        param_names=names,  # type: ignore[arg-type]
        box_low=tuple(grid.box.low),  # type: ignore[arg-type]
        box_high=tuple(grid.box.high),  # type: ignore[arg-type]
        density=_ro(density, np.float32),
        hpd_levels=levels,
        contours=contours,
        ellipses=ellipses,
        component_weights=_ro(weights),
        modes=_ro(comp_means),
        vi_curves=vi_curves,
        marginals=MappingProxyType(marginals),
        quantile_levels=levels_q,
        quantiles=_ro(quant),
        samples=MappingProxyType(samples),
        traces=MappingProxyType(traces),
        jsd=MappingProxyType(dict(analysis.jsd)),
        notes=tuple(analysis.notes),
        seconds=float(seconds),
    )


def _with_vi(fast: PosteriorAnalysis, warm: VIResult, cold: VIResult | None) -> PosteriorAnalysis:
    """``fast`` plus VI results: the same quantities `analyze(vi=True)` adds."""
    grid = fast.grid
    pts = grid.points
    vi_ld = warm.log_pdf(pts)
    jsd = dict(fast.jsd)
    kl = dict(fast.kl)
    jsd["vi"] = js_divergence(grid.log_density, vi_ld)
    kl["vi"] = kl_divergence(grid.log_density, vi_ld)
    seconds = dict(fast.seconds)
    seconds["vi_warm"] = warm.seconds
    if cold is not None:
        cold_ld = cold.log_pdf(pts)
        jsd["vi_cold"] = js_divergence(grid.log_density, cold_ld)
        kl["vi_cold"] = kl_divergence(grid.log_density, cold_ld)
        seconds["vi_cold"] = cold.seconds
    return dataclasses.replace(
        fast, vi_warm=warm, vi_cold=cold, vi_log_density=vi_ld, jsd=jsd, kl=kl, seconds=seconds
    )


def compute_posterior(
    request: PosteriorRequest,
    emit: Callable[[PosteriorSnapshot], None],
    stage_hook: Callable[[str], None] | None = None,
) -> None:
    """Run one request, calling ``emit`` after each stage (no Qt; the worker and tests call it).

    ``stage_hook`` is called with the name of each stage as it starts (``"model"``, ``"laplace"``,
    ``"vi-warm"``, ``"vi"``), so a failure can be attributed to its stage.

    Raises:
        PosteriorError: bad spec or settings, failed fit (the message names the culprit).
        Cancelled: when the request's ``cancel_event`` is set.
    """
    t0 = time.perf_counter()
    cancel = request.cancelled

    def stage(name: str) -> None:
        if stage_hook is not None:
            stage_hook(name)

    stage("model")
    model = spec_from_dict(dict(request.spec)).build()
    stage("laplace")
    fast = analyze(model, grid_n=request.grid_n, starts=request.starts, vi=False, seed=request.seed, cancel=cancel)
    emit(make_snapshot(fast, request, "laplace", not request.vi, time.perf_counter() - t0))
    if not request.vi:
        return
    stage("vi-warm")
    warm = refine_vi(
        model, fast.mixture, grid=fast.grid, start="warm", steps=request.vi_steps, seed=request.seed, cancel=cancel
    )
    if cancel():
        raise Cancelled("cancelled after the warm VI run")
    emit(make_snapshot(_with_vi(fast, warm, None), request, "vi-warm", False, time.perf_counter() - t0))
    stage("vi")
    cold = refine_vi(
        model, fast.mixture, grid=fast.grid, start="cold", steps=request.vi_steps, seed=request.seed, cancel=cancel
    )
    emit(make_snapshot(_with_vi(fast, warm, cold), request, "vi", True, time.perf_counter() - t0))


# --------------------------------------------------------------------------------- Qt objects
class PosteriorWorker(QObject):
    """Runs requests on its own thread (create without parent, then ``moveToThread``)."""

    computed = Signal(object)  # PosteriorSnapshot
    failed = Signal(object)  # PosteriorFailure
    finished_request = Signal(str, int)  # POSTERIOR, request id: after success, failure or cancellation

    @Slot(object)
    def compute(self, request: PosteriorRequest) -> None:
        """Compute ``request`` unless it was superseded already; always ends with ``finished_request``."""
        current = ["queued"]

        def fail(message: str, error_type: str) -> None:
            self.failed.emit(PosteriorFailure(request.request_id, current[0], message, error_type))

        try:
            run_reporting(
                request,
                lambda: compute_posterior(request, self.computed.emit, lambda s: current.__setitem__(0, s)),
                fail,
                (LLAStudioError, ValueError, ArithmeticError, np.linalg.LinAlgError),
                Cancelled,
            )
        finally:
            self.finished_request.emit(POSTERIOR, request.request_id)


class PosteriorController(NewestRequestController):
    """Owns the worker thread, request ids, the debounce timer and cancellation (GUI thread).

    Signals:
        result_ready(PosteriorSnapshot): an answer to the newest request (stale ones are dropped).
        failed(PosteriorFailure): the newest request failed.
        busy_changed(bool): whether the newest request is still being computed.
        submitted(int): a request id was sent to the worker.
    """

    name = "posterior"
    result_ready = Signal(object)
    failed = Signal(object)
    busy_changed = Signal(bool)
    submitted = Signal(int)
    _send = Signal(object)

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 150) -> None:
        super().__init__(parent, debounce_ms, primary=POSTERIOR)
        worker = PosteriorWorker()
        worker.computed.connect(self._on_computed)
        worker.failed.connect(self._on_failed)
        self._add_worker(POSTERIOR, worker, self._send)

    @property
    def thread(self):
        """The worker thread (for tests: ``isRunning``)."""
        return self._threads[POSTERIOR]

    @property
    def latest_request_id(self) -> int:
        """Id of the newest submitted request (0 before the first)."""
        req = self._latest[POSTERIOR]
        return req.request_id if req is not None else 0

    def submit(self, spec: Mapping[str, Any], **settings: Any) -> int:
        """Cancel the running request and send a new one at once; returns its id."""
        request_id = self._submit(PosteriorRequest(self._next_id(), spec, **settings), POSTERIOR, self._send)
        self.submitted.emit(request_id)
        return request_id

    def _busy_signal(self, kind: str):
        return self.busy_changed

    @Slot(object)
    def _on_computed(self, snapshot: PosteriorSnapshot) -> None:
        if self._accept(POSTERIOR, snapshot.request_id):
            self.result_ready.emit(snapshot)

    @Slot(object)
    def _on_failed(self, failure: PosteriorFailure) -> None:
        if self._accept(POSTERIOR, failure.request_id):
            self.failed.emit(failure)
