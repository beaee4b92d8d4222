"""The study loop's bridge to the LLA surrogate: session options -> fitted botorch model.

A session's surrogate section for an LLA reads::

    {"type": "lla",
     "network": {"network": "mlp", "widths": [50, 50], "activation": "tanh"},
     "settings": {"tuning": "posthoc", "subset_of_weights": "all", ...}}

The network sees the session's features normalized to the unit cube (through
:class:`FeatureSpaceModel` when the transform chain is not the identity on the encoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from botorch.models.model import Model

from lla_studio.core.errors import SurrogateFitError
from lla_studio.core.surrogates.lla import LinearizedLaplaceModel, LLAFitReport, LLASettings, fit_lla
from lla_studio.core.surrogates.specs import DEFAULT_NETWORK, lla_options
from lla_studio.core.features import FeatureMap

__all__ = [
    "DEFAULT_NETWORK",
    "WARM_RESTART_EVERY",
    "FeatureSpaceModel",
    "LLAFitter",
    "LLAStep",
    "fit_lla_for_study",
    "lla_options",
]

class FeatureSpaceModel(Model):
    """Unit-cube encodings -> normalized features -> the wrapped model (an LLA)."""

    def __init__(self, inner: LinearizedLaplaceModel, feature_map: FeatureMap) -> None:
        super().__init__()
        self.inner = inner
        self.feature_map = feature_map
        bounds = torch.as_tensor(feature_map.feature_bounds(), dtype=torch.float64)
        self.register_buffer("lo", bounds[0])
        self.register_buffer("span", (bounds[1] - bounds[0]).clamp_min(1e-12))

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def features(self, X: torch.Tensor) -> torch.Tensor:
        return (self.feature_map(X) - self.lo.to(X)) / self.span.to(X)

    def posterior(self, X: torch.Tensor, output_indices: Any = None, observation_noise: Any = False, posterior_transform: Any = None, **kwargs: Any) -> Any:
        return self.inner.posterior(self.features(X), observation_noise=observation_noise, posterior_transform=posterior_transform)


def fit_lla_for_study(
    study: Any,
    U: torch.Tensor,
    Y: torch.Tensor,
    cancel: Callable[[], bool] | None,
    previous: LinearizedLaplaceModel | None = None,
) -> dict[str, Any]:
    """One LLA fit on a study's trials (warm-started from ``previous`` only when given) and the
    SurrogateFitted fields. The study loop itself fits through :class:`LLAFitter`."""
    spec, settings = lla_options(study._session.surrogate.options)
    fmap: FeatureMap = study.feature_map
    inner, report = _fit_one(spec, settings, _network_inputs(fmap, U), Y, previous, cancel)
    return _event_fields(inner, report, fmap, _report_seconds(report))


def _report_seconds(report: LLAFitReport) -> float:
    """Seconds of one fit: MAP training, Laplace statistics and tuning."""
    return report.seconds_training + report.seconds_laplace + report.seconds_tuning


def _network_inputs(fmap: FeatureMap, U: torch.Tensor) -> torch.Tensor:
    """``n x d`` encodings -> ``n x m`` features normalized to the unit cube (the encodings themselves
    when the chain is the identity on them)."""
    if fmap.is_identity_on_unit_cube:
        return U
    lo, hi = fmap.feature_bounds()
    return (fmap(U) - torch.as_tensor(lo)) / torch.as_tensor((hi - lo).clip(1e-12))


def _fit_one(
    spec: Any,
    settings: LLASettings,
    X: torch.Tensor,
    Y: torch.Tensor,
    previous: LinearizedLaplaceModel | None,
    cancel: Callable[[], bool] | None,
) -> tuple[LinearizedLaplaceModel, LLAFitReport]:
    try:
        return fit_lla(X, Y, spec, settings, previous=previous, cancel=cancel)
    except SurrogateFitError:
        raise
    except (RuntimeError, ValueError) as err:
        raise SurrogateFitError(f"LLA fit failed: {type(err).__name__}: {err}") from None


def _event_fields(inner: LinearizedLaplaceModel, report: LLAFitReport, fmap: FeatureMap, seconds: float) -> dict[str, Any]:
    model: Model = inner if fmap.is_identity_on_unit_cube else FeatureSpaceModel(inner, fmap)
    return {
        "hyperparameters": {"prior_precision": [report.prior_precision], "noise_std": [report.noise_std_original]},
        "mll": report.log_marginal_likelihood_original,
        "seconds": seconds,
        "model": model,
        "warnings": tuple(report.warnings),
    }


WARM_RESTART_EVERY = 10
"""Completed trials between cold starts of the study's chain of warm-started LLA fits.

A warm start (the previous network and its tuned ``(delta, sigma)``) trains 10 L-BFGS epochs instead
of 50: on Branin with the default 50-50 MLP a fit took 0.2-0.5 s warm against 1.8-2.3 s cold, on the
digit search's CNN 0.5 s against 2.6-3.8 s (n = 10..29, one thread). The warm start of a fit on ``n``
trials is the fit on the first ``n - 1``, so a restarted process must refit the chain from its last
cold start to reproduce it; restarting the chain every 10 trials bounds that to 10 fits (about 5 s on
Branin, 8 s on the CNN) and costs (cold - warm) / 10, 0.15-0.3 s, per step on average."""


@dataclass(frozen=True)
class LLAStep:
    """What :meth:`LLAFitter.fit` returns.

    Attributes:
        model: The fitted LLA on the normalized features (the last fit of the chain).
        n_fits: Fits this call ran: 1 in a running study, more after a restart (the chain from its
            last cold start is recomputed), 0 when the same data were fitted last time.
        seconds: Wall-clock seconds of this call.
        fields: The :class:`~lla_studio.core.study.SurrogateFitted` fields.
    """

    model: LinearizedLaplaceModel
    n_fits: int
    seconds: float
    fields: dict[str, Any]


class LLAFitter:
    """Fits a study's LLA with a warm start that is a function of the training data alone.

    Let ``r_1 .. r_n`` be the completed trials in session order (their encodings and values). The LLA
    on ``r_1 .. r_n`` is fitted from the seeded initialization when ``n <= anchor`` or
    ``(n - anchor)`` is a multiple of ``restart_every`` (a cold start), else warm-started from the LLA
    on ``r_1 .. r_{n-1}`` (:attr:`LLASettings.warm_start` false: always cold). That definition makes
    the proposal after ``n`` trials the same whether the study ran without a stop, was resumed from
    its saved session, or was refitted in between (a view asking for the model): the last fit is
    kept only as a cache of the chain; on a miss the chain is refitted from its last cold start.

    Args:
        spec: The network.
        settings: The fit settings.
        feature_map: The session's feature map (the network sees its normalized features).
        anchor: The first cold start: the loop's initial design, after which model-based steps begin.
        restart_every: Trials between cold starts (see :data:`WARM_RESTART_EVERY`).
    """

    def __init__(
        self,
        spec: Any,
        settings: LLASettings,
        feature_map: FeatureMap,
        anchor: int,
        restart_every: int = WARM_RESTART_EVERY,
    ) -> None:
        if restart_every < 1:
            raise ValueError(f"restart_every must be >= 1, got {restart_every}")
        self.spec = spec
        self.settings = settings
        self.feature_map = feature_map
        self.anchor = max(1, int(anchor))
        self.restart_every = int(restart_every)
        self._last: tuple[list[bytes], LinearizedLaplaceModel, LLAFitReport] | None = None

    @classmethod
    def for_session(cls, session: Any) -> LLAFitter:
        spec, settings = lla_options(session.surrogate.options)
        return cls(spec, settings, FeatureMap.of(session), anchor=session.loop.initial_design)

    def cold_start(self, n: int) -> int:
        """Number of trials of the cold fit that the chain ending at ``n`` trials starts from."""
        if not self.settings.warm_start or n <= self.anchor:
            return n
        return self.anchor + (n - self.anchor) // self.restart_every * self.restart_every

    def fit(self, U: torch.Tensor, Y: torch.Tensor, cancel: Callable[[], bool] | None = None) -> LLAStep:
        """Fit on ``n`` trials.

        Args:
            U: A ``n x d`` tensor of unit-cube encodings of the completed trials (session order).
            Y: A ``n x 1`` tensor of their values.
            cancel: Checked inside every fit; the fits finished before a cancel stay cached.

        Raises:
            SurrogateFitError: a fit of the chain failed.
            FitCancelled: ``cancel()`` returned True.
        """
        start = time.perf_counter()
        n = U.shape[0]
        keys = _row_keys(U, Y)
        X = _network_inputs(self.feature_map, U)
        first = self.cold_start(n)
        last = self._last
        if last is not None and first <= len(last[0]) <= n and keys[: len(last[0])] == last[0]:
            j, inner, report = len(last[0]), last[1], last[2]
            n_fits = 0
        else:
            j, inner, report = first, *self._fit_prefix(X, Y, first, None, cancel)
            self._last = (keys[:j], inner, report)
            n_fits = 1
        while j < n:
            j += 1
            inner, report = self._fit_prefix(X, Y, j, inner, cancel)
            self._last = (keys[:j], inner, report)
            n_fits += 1
        seconds = time.perf_counter() - start
        return LLAStep(inner, n_fits, seconds, _event_fields(inner, report, self.feature_map, seconds))

    def _fit_prefix(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        j: int,
        previous: LinearizedLaplaceModel | None,
        cancel: Callable[[], bool] | None,
    ) -> tuple[LinearizedLaplaceModel, LLAFitReport]:
        # fresh copies: a fit in a restarted process sees its inputs in memory of its own, as the
        # live fit did (no view into a longer tensor)
        return _fit_one(self.spec, self.settings, X[:j].clone(), Y[:j].clone(), previous, cancel)


def _row_keys(U: torch.Tensor, Y: torch.Tensor) -> list[bytes]:
    """One exact key per training row: its encoding's and its value's float64 bytes."""
    rows = torch.cat([U, Y.reshape(-1, 1).to(U)], dim=1).detach().to(torch.float64).cpu().numpy()
    return [row.tobytes() for row in rows]
