"""The study loop's bridge to the LLA surrogate: session options -> fitted botorch model.

A session's surrogate section for an LLA reads::

    {"type": "lla",
     "network": {"network": "mlp", "widths": [50, 50], "activation": "tanh"},
     "settings": {"tuning": "posthoc", "subset_of_weights": "all", ...}}

The network sees the session's features normalized to the unit cube (through
:class:`FeatureSpaceModel` when the transform chain is not the identity on the encoding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from botorch.models.model import Model

from lla_studio.core.errors import LLAStudioError, SessionError, SurrogateFitError
from lla_studio.core.surrogates.lla import LinearizedLaplaceModel, LLASettings, fit_lla
from lla_studio.core.surrogates.networks import network_from_dict
from lla_studio.core.transforms import FeatureMap

__all__ = ["DEFAULT_NETWORK", "FeatureSpaceModel", "fit_lla_for_study", "lla_options"]

DEFAULT_NETWORK: dict[str, Any] = {"network": "mlp", "widths": [50, 50], "activation": "tanh"}


def lla_options(options: Mapping[str, Any], path: str = "surrogate") -> tuple[Any, LLASettings]:
    """Validate a session's LLA options into a network spec and settings (errors name the path)."""
    unknown = set(options) - {"network", "settings"}
    if unknown:
        raise SessionError(f"unknown LLA option(s) {sorted(unknown)} (allowed: network, settings)", path)
    try:
        spec = network_from_dict(dict(options.get("network", DEFAULT_NETWORK)))
    except LLAStudioError as err:
        raise SessionError(str(err), f"{path}.network") from None
    try:
        settings = LLASettings.from_dict(dict(options.get("settings", {})))
    except LLAStudioError as err:
        raise SessionError(str(err), f"{path}.settings") from None
    return spec, settings


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


def fit_lla_for_study(study: Any, U: torch.Tensor, Y: torch.Tensor, cancel: Callable[[], bool] | None) -> dict[str, Any]:
    """Fit (warm-started from the study's previous LLA) and return the SurrogateFitted fields."""
    spec, settings = lla_options(study._session.surrogate.options)
    fmap: FeatureMap = study.feature_map
    identity = fmap.is_identity_on_unit_cube
    X = U if identity else (fmap(U) - torch.as_tensor(fmap.feature_bounds()[0])) / torch.as_tensor(
        (fmap.feature_bounds()[1] - fmap.feature_bounds()[0]).clip(1e-12)
    )
    previous = study._lla_previous
    try:
        inner, report = fit_lla(X, Y, spec, settings, previous=previous, cancel=cancel)
    except SurrogateFitError:
        raise
    except (RuntimeError, ValueError) as err:
        raise SurrogateFitError(f"LLA fit failed: {type(err).__name__}: {err}") from None
    study._lla_previous = inner
    model: Model = inner if identity else FeatureSpaceModel(inner, fmap)
    seconds = report.seconds_training + report.seconds_laplace + report.seconds_tuning
    return {
        "hyperparameters": {"prior_precision": [report.prior_precision], "noise_std": [report.noise_std_original]},
        "mll": report.log_marginal_likelihood_original,
        "seconds": seconds,
        "model": model,
        "warnings": tuple(report.warnings),
    }
