"""Model registry: CLI names -> default specs, and spec (de)serialisation by type tag."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.expression import ExpressionSpec
from lla_studio.core.posterior.models import BananaSpec, BioassaySpec, MixtureSpec, ModelSpec, PosteriorModel
from lla_studio.core.posterior.shear_frame import ShearFrameSpec

__all__ = ["MODEL_NAMES", "SPEC_TYPES", "default_spec", "make_model", "spec_from_dict", "resolve_model"]

_DEFAULTS: dict[str, ModelSpec] = {
    "bioassay": BioassaySpec(),
    "bioassay-logbeta": BioassaySpec(log_beta=True),
    "shear-frame": ShearFrameSpec(),
    "banana": BananaSpec(),
    "mixture": MixtureSpec(),
}
MODEL_NAMES: tuple[str, ...] = tuple(_DEFAULTS)
SPEC_TYPES: dict[str, type[ModelSpec]] = {
    cls.TYPE: cls for cls in (BioassaySpec, ShearFrameSpec, BananaSpec, MixtureSpec, ExpressionSpec)
}


def default_spec(name: str) -> ModelSpec:
    """The default-configured spec for a CLI model name.

    Raises:
        PosteriorError: for an unknown name; the message lists the valid names.
    """
    try:
        return _DEFAULTS[name]
    except (KeyError, TypeError):
        raise PosteriorError(f"unknown posterior model {name!r}; valid names: {', '.join(MODEL_NAMES)}") from None


def make_model(name: str) -> PosteriorModel:
    """Build the default-configured model for a CLI name (see `MODEL_NAMES`)."""
    return default_spec(name).build()


def spec_from_dict(data: Mapping[str, Any]) -> ModelSpec:
    """Rebuild a spec from `ModelSpec.to_dict` output, dispatching on its ``"type"`` tag."""
    if not isinstance(data, Mapping) or "type" not in data:
        raise PosteriorError(f"model spec must be a dict with a 'type' key, got {data!r}")
    cls = SPEC_TYPES.get(data["type"])
    if cls is None:
        raise PosteriorError(f"unknown model spec type {data['type']!r}; valid types: {', '.join(SPEC_TYPES)}")
    return cls.from_dict(data)


def resolve_model(model: str | ModelSpec | PosteriorModel) -> PosteriorModel:
    """Accept a CLI name, a spec or a built model and return the model."""
    if isinstance(model, PosteriorModel):
        return model
    if isinstance(model, ModelSpec):
        return model.build()
    if isinstance(model, str):
        return make_model(model)
    raise PosteriorError(f"expected a model name, spec or model, got {type(model).__name__}")
