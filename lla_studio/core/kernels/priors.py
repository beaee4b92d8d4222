"""Prior specs for kernel hyperparameters: frozen, validated, JSON-serializable.

A spec is only a description (this module does not import torch, so a GUI editor can use it);
:func:`lla_studio.core.kernels.compile_kernel` turns it into the gpytorch prior it registers.

JSON form (stable type tags)::

    {"prior": "gamma", "concentration": 3.0, "rate": 6.0}
    {"prior": "lognormal", "loc": 0.0, "scale": 1.0}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.schema import brief

__all__ = ["Gamma", "LogNormal", "PriorSpec", "prior_from_dict", "prior_to_dict"]


def _msg(path: str | None, label: str, field: str, reason: str) -> str:
    return f"{path}.{field}: {reason}" if path else f"{label}: {field} {reason}"


def _real(value: Any, field: str, label: str, path: str | None, positive: bool) -> float:
    """Check that ``value`` is a finite real (and > 0 if ``positive``); return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise KernelGraphError(_msg(path, label, field, f"must be a number, got {brief(value)}"))
    try:
        x = float(value)
    except OverflowError:  # an int beyond float64
        x = math.inf
    if not math.isfinite(x) or (positive and x <= 0.0):
        need = "a finite number > 0" if positive else "a finite number"
        raise KernelGraphError(_msg(path, label, field, f"must be {need}, got {brief(value)}"))
    return x


@dataclass(frozen=True)
class Gamma:
    """Gamma(concentration, rate) prior; mean ``concentration / rate``.

    Args:
        concentration: Shape parameter, > 0.
        rate: Inverse scale parameter, > 0.
    """

    concentration: float
    rate: float

    TAG: ClassVar[str] = "gamma"
    PARAMS: ClassVar[tuple[str, str]] = ("concentration", "rate")

    def __post_init__(self) -> None:
        _check_prior(self, None)


@dataclass(frozen=True)
class LogNormal:
    """LogNormal(loc, scale) prior: ``log(theta) ~ Normal(loc, scale**2)``.

    Args:
        loc: Mean of ``log(theta)``, any finite number.
        scale: Standard deviation of ``log(theta)``, > 0.
    """

    loc: float
    scale: float

    TAG: ClassVar[str] = "lognormal"
    PARAMS: ClassVar[tuple[str, str]] = ("loc", "scale")

    def __post_init__(self) -> None:
        _check_prior(self, None)


PriorSpec = Union[Gamma, LogNormal]
PRIOR_TYPES: dict[str, type[Gamma] | type[LogNormal]] = {"gamma": Gamma, "lognormal": LogNormal}


def _check_prior(prior: Gamma | LogNormal, path: str | None) -> None:
    label = f"{prior.TAG} prior"
    for field in prior.PARAMS:
        positive = not (prior.TAG == "lognormal" and field == "loc")
        value = _real(getattr(prior, field), field, label, path, positive)
        object.__setattr__(prior, field, value)


def prior_to_dict(prior: PriorSpec) -> dict[str, Any]:
    """JSON form of a prior spec, e.g. ``{"prior": "gamma", "concentration": 3.0, "rate": 6.0}``."""
    out: dict[str, Any] = {"prior": prior.TAG}
    for field in prior.PARAMS:
        out[field] = getattr(prior, field)
    return out


def prior_from_dict(d: Any, path: str = "prior") -> PriorSpec:
    """Read a prior spec from its JSON form.

    Args:
        d: A dict like ``{"prior": "gamma", "concentration": 3.0, "rate": 6.0}``.
        path: JSON path of ``d``, used as the prefix of every error message.

    Raises:
        KernelGraphError: The dict is malformed; the message starts with the JSON path.
    """
    if not isinstance(d, Mapping):
        raise KernelGraphError(f"{path}: expected a prior object, got {d!r}")
    tag = d.get("prior")
    cls = PRIOR_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise KernelGraphError(f"{path}.prior: unknown prior {tag!r}; expected one of {', '.join(PRIOR_TYPES)}")
    for key in d:
        if key != "prior" and key not in cls.PARAMS:
            raise KernelGraphError(f"{path}.{key}: unknown field of a {tag} prior")
    values = []
    for field in cls.PARAMS:
        if field not in d:
            raise KernelGraphError(f"{path}.{field}: missing required field")
        positive = not (tag == "lognormal" and field == "loc")
        values.append(_real(d[field], field, f"{tag} prior", path, positive))
    return cls(*values)

