"""What the posterior lab's form edits: the panel's models, their fields, defaults and labels.

Torch-free on purpose: the GUI process imports this module to build its form, while the specs
themselves (`lla_studio.core.posterior.models` and friends) live next to torch code that builds the
log densities. The table below is therefore a copy of the spec dataclasses' fields and defaults;
``tests/core/posterior/test_posterior_forms.py`` checks that it agrees with the registry
(`lla_studio.core.posterior.registry.default_spec`, `ExpressionSpec`) field by field, so a new spec
field fails a test instead of silently missing from the form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lla_studio.core.errors import PosteriorError

__all__ = [
    "EXPRESSION",
    "FIELD_KINDS",
    "MODEL_LABELS",
    "PANEL_MODELS",
    "FieldInfo",
    "default_spec_dict",
    "model_fields",
    "spec_type",
]

EXPRESSION = "expression"


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


FIELD_KINDS: dict[str, str] = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "str": "str",
    "tuple[float, float]": "pair",
    "tuple[float, float] | None": "optional-pair",
    "int | None": "optional-int",
}
"""Field annotation of a spec dataclass -> the kind of editor (a field of another type is not edited)."""

# panel model -> (spec type tag, ((field, kind, default), ...)) in the spec dataclass's field order
_SPECS: dict[str, tuple[str, tuple[tuple[str, str, Any], ...]]] = {
    "bioassay": ("bioassay", (
        ("log_beta", "bool", False),
        ("prior_alpha", "optional-pair", None),
        ("prior_beta", "optional-pair", None),
    )),
    "bioassay-logbeta": ("bioassay", (
        ("log_beta", "bool", True),
        ("prior_alpha", "optional-pair", None),
        ("prior_beta", "optional-pair", None),
    )),
    "shear-frame": ("shear-frame", (
        ("true_c", "pair", (1.0, 0.1)),
        ("sigma", "float", 0.015),
        ("noise_seed", "optional-int", None),
        ("c_max", "pair", (1.4, 0.7)),
        ("n_obs", "int", 40),
        ("dt", "float", 0.5),
        ("masses", "pair", (1.0, 1.0)),
        ("stiffnesses", "pair", (2.0, 1.0)),
    )),
    "banana": ("banana", (
        ("mu", "float", 0.0),
        ("s1", "float", 1.0),
        ("c", "float", 1.0),
        ("d", "float", 0.0),
        ("s2", "float", 0.5),
    )),
    "mixture": ("mixture", (
        ("separation", "float", 4.0),
        ("sd", "float", 1.0),
        ("correlation", "float", 0.0),
        ("weight", "float", 0.5),
    )),
    EXPRESSION: ("expression", (
        ("expression", "str", "-(a**2 + b**2)/2"),
        ("low", "pair", (-4.0, -4.0)),
        ("high", "pair", (4.0, 4.0)),
    )),
}

PANEL_MODELS: tuple[str, ...] = tuple(_SPECS)
"""The registry's model names (``MODEL_NAMES``) followed by the user expression."""
MODEL_LABELS: dict[str, str] = {
    "bioassay": "bioassay (alpha, beta)",
    "bioassay-logbeta": "bioassay (alpha, log beta)",
    "shear-frame": "shear frame (c1, c2)",
    "banana": "banana",
    "mixture": "Gaussian mixture",
    EXPRESSION: "user expression (a, b)",
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


def _entry(name: str) -> tuple[str, tuple[tuple[str, str, Any], ...]]:
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise PosteriorError(f"unknown posterior model {name!r}; valid names: {', '.join(PANEL_MODELS)}") from None


def spec_type(name: str) -> str:
    """The ``"type"`` tag of a panel model's spec (``bioassay-logbeta`` is a ``bioassay`` spec)."""
    return _entry(name)[0]


def default_spec_dict(name: str) -> dict[str, Any]:
    """The default spec of a panel model as a plain dict, equal to ``default_spec(name).to_dict()``
    (pairs as lists, as JSON holds them).

    Raises:
        PosteriorError: for a name not in `PANEL_MODELS`.
    """
    tag, specs = _entry(name)
    out: dict[str, Any] = {"type": tag}
    for field, _kind, value in specs:
        out[field] = list(value) if isinstance(value, tuple) else value
    return out


def model_fields(name: str) -> tuple[FieldInfo, ...]:
    """The editable fields of a panel model, in the spec's declaration order.

    Raises:
        PosteriorError: for a name not in `PANEL_MODELS`.
    """
    tag, specs = _entry(name)
    out = []
    for field, kind, value in specs:
        if (tag, field) in _HIDDEN:
            continue
        if kind == "optional-pair":
            enabled = _ENABLED.get((tag, field), (0.0, 1.0))
        elif kind == "optional-int":
            enabled = _ENABLED.get((tag, field), 0)
        else:
            enabled = value
        out.append(
            FieldInfo(
                name=field,
                kind=kind,
                value=value,
                enabled_value=enabled if value is None else value,
                label=_LABELS.get(field, field.replace("_", " ")),
                parts=_PARTS.get(field, ("1", "2")),
                hint=_HINTS.get(field, ""),
            )
        )
    return tuple(out)
