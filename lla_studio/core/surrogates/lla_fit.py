"""The study loop's bridge to the LLA surrogate: session options -> fitted botorch model.

A session's surrogate section for an LLA reads::

    {"type": "lla",
     "network": {"network": "mlp", "widths": [50, 50], "activation": "tanh"},
     "settings": {"tuning": "posthoc", "subset_of_weights": "all", ...}}

The model takes unit-cube encodings; the network sees the session's features normalized to the unit
cube through the model's BoTorch input transform
(:func:`~lla_studio.core.surrogates.feature_transform.feature_input_transform`), as the GP does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lla_studio.core.errors import SurrogateFitError
from lla_studio.core.surrogates.lla import LinearizedLaplaceModel, LLASettings, fit_lla
from lla_studio.core.surrogates.specs import DEFAULT_NETWORK, lla_options
from lla_studio.core.features import FeatureMap
from lla_studio.core.surrogates.feature_transform import feature_input_transform

__all__ = [
    "DEFAULT_NETWORK",
    "WARM_RESTART_EVERY",
    "LLAFitter",
    "LLAStep",
    "fit_lla_once",
    "lla_options",
]

def fit_lla_once(
    session: Any,
    U: torch.Tensor,
    Y: torch.Tensor,
    cancel: Callable[[], bool] | None = None,
) -> LinearizedLaplaceModel:
    """One cold LLA fit of ``session``'s surrogate on ``U``/``Y`` (no warm start, no chain): e.g. the
    folds of a leave-one-out refit, where warm weights would have seen the held-out point."""
    return LLAFitter.for_session(session).fit_cold(U, Y, cancel)


def _event_fields(model: LinearizedLaplaceModel, seconds: float) -> dict[str, Any]:
    report = model.report
    assert report is not None
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
        model: The fitted LLA (the last fit of the chain); it takes unit-cube encodings.
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
        feature_map: The session's feature map (the network sees its normalized features, through
            the model's input transform).
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
        self._last: tuple[list[bytes], LinearizedLaplaceModel] | None = None

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
        first = self.cold_start(n)
        last = self._last
        if last is not None and first <= len(last[0]) <= n and keys[: len(last[0])] == last[0]:
            j, model = len(last[0]), last[1]
            n_fits = 0
        else:
            j, model = first, self._fit_prefix(U, Y, first, None, cancel)
            self._last = (keys[:j], model)
            n_fits = 1
        while j < n:
            j += 1
            model = self._fit_prefix(U, Y, j, model, cancel)
            self._last = (keys[:j], model)
            n_fits += 1
        seconds = time.perf_counter() - start
        return LLAStep(model, n_fits, seconds, _event_fields(model, seconds))

    def fit_cold(self, U: torch.Tensor, Y: torch.Tensor, cancel: Callable[[], bool] | None = None) -> LinearizedLaplaceModel:
        """One fit from the seeded initialization, outside the chain (its cache is left alone)."""
        return self._fit_prefix(U, Y, U.shape[0], None, cancel)

    def _fit_prefix(
        self,
        U: torch.Tensor,
        Y: torch.Tensor,
        j: int,
        previous: LinearizedLaplaceModel | None,
        cancel: Callable[[], bool] | None,
    ) -> LinearizedLaplaceModel:
        # fresh copies: a fit in a restarted process sees its inputs in memory of its own, as the
        # live fit did (no view into a longer tensor)
        transform = feature_input_transform(self.feature_map, U.dtype)
        try:
            model, _ = fit_lla(
                U[:j].clone(), Y[:j].clone(), self.spec, self.settings, previous=previous, cancel=cancel,
                input_transform=transform,
            )
        except SurrogateFitError:
            raise
        except (RuntimeError, ValueError) as err:
            raise SurrogateFitError(f"LLA fit failed: {type(err).__name__}: {err}") from None
        return model


def _row_keys(U: torch.Tensor, Y: torch.Tensor) -> list[bytes]:
    """One exact key per training row: its encoding's and its value's float64 bytes."""
    rows = torch.cat([U, Y.reshape(-1, 1).to(U)], dim=1).detach().to(torch.float64).cpu().numpy()
    return [row.tobytes() for row in rows]
