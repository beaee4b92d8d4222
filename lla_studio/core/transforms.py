"""Feature transforms: the chain that maps a configuration to the features a surrogate sees.

The chain starts from one *feature per parameter*, named like the parameter: the value itself for
real and integer parameters, the choice index (0, 1, ...) for choice parameters. Inactive parameters
contribute their recorded inactive value, so every configuration has every feature. Each step
consumes named features and produces new ones in their place; features a step does not name pass
through unchanged. Every step declares its output names, so a kernel can be attached to them.

Steps (JSON type tag ``"step"``):

* ``log`` -- ``log_<f> = log(f)`` for each listed feature (all values must be > 0).
* ``affine`` -- ``f <- scale * f + shift`` (optionally under a new name).
* ``one_hot`` -- a choice feature ``f`` becomes ``f_<choice>`` indicator features.
* ``group_ratio`` -- the "orthogonal group" trick of hands-on BO: positive features
  ``f_1..f_k`` become ``<group>_logmean = mean_i log f_i`` and the log-ratios
  ``<f_i>_ratio = log f_i - mean_j log f_j`` (``log_ratios=False``: the plain ratios
  ``f_i / geomean``). The group's overall size and its shape are then separate inputs.
* ``combine`` -- one new feature from several: ``{"step": "combine", "op": OP, "features": [a, b, ...],
  "name": NEW, "keep": true, "low": .., "high": ..}`` with OP one of ``sum``, ``product``,
  ``ratio`` (``a / b``), ``log_product`` (``log(a b ...) = log a + log b + ...``) and ``log_ratio``
  (``log(a / b)``). Ratios take exactly two features, the others two or more; log ops need
  positive inputs and a ratio a denominator whose bounds exclude 0. ``keep`` (default true) keeps
  the inputs; ``low`` / ``high`` (optional) declare bounds that must contain the derived ones.
  Example: hands-on BO's ``log(initial_lr_pct * max_lr)`` is
  ``{"step": "combine", "op": "log_product", "features": ["initial_lr_pct", "max_lr"],
  "name": "log_initial_lr"}``. A conditional parameter's feature may be combined: while it is
  inactive its placeholder enters the op.
* ``rename`` -- rename features.
* ``drop`` -- remove features.

Bounds. Every feature carries bounds over the whole space (models normalize by them), derived from
the parameter bounds step by step by interval arithmetic (``combine`` takes the extreme corner
products, signs included). They always enclose the feature's values and are attained when the
inputs of each step can reach their extremes together (distinct parameters without conditions).

:meth:`TransformChain.plan` checks a chain against a search space and gives its
:class:`FeaturePlan` (feature names and bounds, step by step) without torch: a session is read and
validated, and the studio lists features, without loading torch.
:class:`~lla_studio.core.features.FeatureMap` evaluates the planned chain
on torch tensors of unit-cube encodings (differentiable), so the same code serves training data,
plotting grids and acquisition optimization.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from lla_studio.core.errors import SessionError, TransformError
from lla_studio.core.space import ChoiceParameter, RealParameter, SearchSpace
__all__ = [
    "AffineStep",
    "CombineStep",
    "DropStep",
    "FeaturePlan",
    "GroupRatioStep",
    "LogStep",
    "OneHotStep",
    "RenameStep",
    "TransformChain",
    "check_chain",
    "transform_chain_from_dict",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def _check_feature_name(name: str, where: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise TransformError(
            f"{where}: feature name {name!r} must start with a letter or '_' and hold only letters, digits, '_' or '.'"
        )


def sanitize(text: str) -> str:
    """Turn any choice value into a feature-name fragment."""
    out = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    return out or "_"


@dataclass(frozen=True)
class _Feature:
    """A feature during compilation: name, bounds and (for choice features) the choices."""

    name: str
    low: float
    high: float
    choices: tuple[Any, ...] | None = None


def _replace(features: list[_Feature], consumed: Sequence[str], produced: list[_Feature]) -> list[_Feature]:
    """Put ``produced`` where the first consumed feature was; drop the consumed ones."""
    names = [f.name for f in features]
    pos = min(names.index(c) for c in consumed) if consumed else len(features)
    kept_before = [f for f in features[:pos] if f.name not in consumed]
    kept_after = [f for f in features[pos:] if f.name not in consumed]
    out = kept_before + produced + kept_after
    seen: set[str] = set()
    for f in out:
        if f.name in seen:
            raise TransformError(f"feature {f.name!r} is produced twice")
        seen.add(f.name)
    return out


def _lookup(features: list[_Feature], name: str, step: str) -> _Feature:
    for f in features:
        if f.name == name:
            return f
    raise TransformError(f"{step}: unknown feature {name!r} (available: {', '.join(f.name for f in features)})")


@dataclass(frozen=True)
class LogStep:
    """``log_<f> = log(f)``; with ``prefix=""`` the feature keeps its name."""

    features: tuple[str, ...]
    prefix: str = "log_"

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise TransformError("log step: needs at least one feature")

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        produced: list[_Feature] = []
        for name in self.features:
            f = _lookup(feats, name, where)
            if f.low <= 0:
                raise TransformError(f"{where}: log of feature {name!r} needs values > 0, its lower bound is {f.low:g}")
            out = self.prefix + name
            _check_feature_name(out, where)
            produced.append(_Feature(out, math.log(f.low), math.log(f.high)))
        new = _replace(feats, self.features, produced)
        return new

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": "log", "features": list(self.features)}
        if self.prefix != "log_":
            d["prefix"] = self.prefix
        return d


@dataclass(frozen=True)
class AffineStep:
    """``name = scale * feature + shift`` (``name`` defaults to ``feature``)."""

    feature: str
    scale: float = 1.0
    shift: float = 0.0
    name: str | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.scale) or self.scale == 0:
            raise TransformError(f"affine step on {self.feature!r}: scale must be finite and non-zero, got {self.scale}")
        if not math.isfinite(self.shift):
            raise TransformError(f"affine step on {self.feature!r}: shift must be finite, got {self.shift}")

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        f = _lookup(feats, self.feature, where)
        out = self.name or self.feature
        _check_feature_name(out, where)
        a, b = self.scale * f.low + self.shift, self.scale * f.high + self.shift
        new = _replace(feats, [self.feature], [_Feature(out, min(a, b), max(a, b))])
        return new

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": "affine", "feature": self.feature, "scale": self.scale, "shift": self.shift}
        if self.name:
            d["name"] = self.name
        return d


@dataclass(frozen=True)
class OneHotStep:
    """A choice feature ``f`` becomes indicators ``f_<choice>`` (one per choice)."""

    feature: str

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        f = _lookup(feats, self.feature, where)
        if f.choices is None:
            raise TransformError(f"{where}: one-hot needs a choice feature, {self.feature!r} is numeric")
        names = [f"{self.feature}_{sanitize(c)}" for c in f.choices]
        if len(set(names)) != len(names):
            names = [f"{self.feature}_{i}" for i in range(len(f.choices))]
        for n in names:
            _check_feature_name(n, where)
        new = _replace(feats, [self.feature], [_Feature(n, 0.0, 1.0) for n in names])
        return new

    def to_dict(self) -> dict[str, Any]:
        return {"step": "one_hot", "feature": self.feature}


@dataclass(frozen=True)
class GroupRatioStep:
    """Orthogonal group: ``<group>_logmean`` plus per-feature (log-)ratios to the geometric mean."""

    features: tuple[str, ...]
    group: str
    log_ratios: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if len(self.features) < 2:
            raise TransformError(f"group_ratio {self.group!r}: needs at least two features, got {list(self.features)}")
        if len(set(self.features)) != len(self.features):
            raise TransformError(f"group_ratio {self.group!r}: features repeat: {list(self.features)}")

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        src = [_lookup(feats, n, where) for n in self.features]
        for f in src:
            if f.low <= 0:
                raise TransformError(
                    f"{where}: group {self.group!r} needs positive features, {f.name!r} has lower bound {f.low:g}"
                )
        k = len(src)
        logs = [(math.log(f.low), math.log(f.high)) for f in src]
        mean_lo = sum(lo for lo, _ in logs) / k
        mean_hi = sum(hi for _, hi in logs) / k
        produced = [_Feature(f"{self.group}_logmean", mean_lo, mean_hi)]
        for i, f in enumerate(src):
            # log f_i - mean_j log f_j = (1 - 1/k) log f_i - (1/k) sum_{j != i} log f_j
            lo = (1 - 1 / k) * logs[i][0] - sum(logs[j][1] for j in range(k) if j != i) / k
            hi = (1 - 1 / k) * logs[i][1] - sum(logs[j][0] for j in range(k) if j != i) / k
            if not self.log_ratios:  # exp of a ratio beyond 709 is no float64: inf, refused by compile_chain
                lo, hi = (math.exp(x) if x < 709.0 else math.inf for x in (lo, hi))
            produced.append(_Feature(f"{f.name}_ratio", lo, hi))
        for p in produced:
            _check_feature_name(p.name, where)
        new = _replace(feats, self.features, produced)
        return new

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": "group_ratio", "group": self.group, "features": list(self.features)}
        if not self.log_ratios:
            d["log_ratios"] = False
        return d


_COMBINE_OPS: dict[str, str] = {
    "sum": "f_1 + ... + f_k",
    "product": "f_1 * ... * f_k",
    "ratio": "a / b",
    "log_product": "log f_1 + ... + log f_k",
    "log_ratio": "log a - log b",
}
"""The ops of :class:`CombineStep`, each with its formula (the order is the documented one)."""

_TWO_ONLY = frozenset({"ratio", "log_ratio"})
_LOG_OPS = frozenset({"log_product", "log_ratio"})


def _interval_product(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Exact range of ``x * y`` for ``x`` in ``a`` and ``y`` in ``b`` varying independently (corners)."""
    corners = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(corners), max(corners)


@dataclass(frozen=True)
class CombineStep:
    """One new feature from several: ``name = op(f_1, ..., f_k)``.

    Ops (see ``_COMBINE_OPS``): ``sum``, ``product`` (two or more features), ``ratio`` (``a / b``,
    exactly two), ``log_product`` (``log(f_1 ... f_k)``, computed as a sum of logs so tiny products do
    not underflow) and ``log_ratio`` (``log(a / b) = log a - log b``, exactly two). The log ops need
    positive inputs (lower bound > 0); a ratio needs a denominator whose interval excludes 0. Choice
    features (indices) are refused: one-hot them first.

    With ``keep`` (the default) the inputs stay and the new feature goes right after the first input;
    without it the inputs are consumed and the new feature takes the first input's place (it may
    then reuse an input's name). ``f_k`` may be any feature of the chain so far, including one of a
    conditional parameter: inactive parameters take their placeholder, so the combined feature is
    defined for every configuration (for an inactive input it is a function of the placeholder).

    Bounds: interval arithmetic on the input bounds (sums add bounds, products take the extreme
    corner products, signs included, ``a / b = a * [1/b_hi, 1/b_lo]``, logs are monotone). They are
    exact -- reached at a corner -- when the inputs can take their extremes together (distinct,
    unconditioned parameters); otherwise (inputs derived from shared parameters, conditions that
    exclude each other) they are an enclosure. Declared ``low`` / ``high`` replace the derived ones
    and must contain them (to within 1e-12 relative), else the step is refused.

    Args:
        op: One of ``sum``, ``product``, ``ratio``, ``log_product``, ``log_ratio``.
        features: Input feature names, in order (for a ratio: numerator, denominator).
        name: The new feature's name.
        keep: Keep the inputs as features.
        low: Declared lower bound (``None``: derived).
        high: Declared upper bound (``None``: derived).
    """

    op: str
    features: tuple[str, ...]
    name: str
    keep: bool = True
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        label = f"combine step {self.name!r}"
        _check_feature_name(self.name, label)
        if not isinstance(self.op, str) or self.op not in _COMBINE_OPS:
            raise TransformError(f"{label}: unknown op {self.op!r} (use {', '.join(_COMBINE_OPS)})")
        if not isinstance(self.keep, bool):
            raise TransformError(f"{label}: keep must be true or false, got {self.keep!r}")
        for n in self.features:
            if not isinstance(n, str):
                raise TransformError(f"{label}: expected a feature name, got {n!r}")
        if len(self.features) < 2:
            raise TransformError(f"{label}: {self.op} needs at least two features, got {list(self.features)}")
        dup = next((n for i, n in enumerate(self.features) if n in self.features[:i]), None)
        if dup is not None:
            raise TransformError(f"{label}: feature {dup!r} is listed twice")
        if self.op in _TWO_ONLY and len(self.features) != 2:
            raise TransformError(
                f"{label}: {self.op} takes exactly two features (numerator, denominator), got {list(self.features)}"
            )
        for key in ("low", "high"):
            v = getattr(self, key)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise TransformError(f"{label}: declared {key} must be a finite number, got {v!r}")
                object.__setattr__(self, key, float(v))
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise TransformError(f"{label}: declared low {self.low:g} must be below high {self.high:g}")

    def derived_bounds(self, src: Sequence[_Feature]) -> tuple[float, float]:
        """Interval-arithmetic bounds of the op over the input bounds (inputs already checked)."""
        if self.op == "sum":
            return sum(f.low for f in src), sum(f.high for f in src)
        if self.op == "product":
            lo, hi = src[0].low, src[0].high
            for f in src[1:]:
                lo, hi = _interval_product((lo, hi), (f.low, f.high))
            return lo, hi
        if self.op == "ratio":
            a, b = src
            return _interval_product((a.low, a.high), (1.0 / b.high, 1.0 / b.low))
        if self.op == "log_product":
            return sum(math.log(f.low) for f in src), sum(math.log(f.high) for f in src)
        a, b = src  # log_ratio
        return math.log(a.low) - math.log(b.high), math.log(a.high) - math.log(b.low)

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        at = f"{where}: {self.op} {self.name!r}"
        by_name = {f.name: f for f in feats}
        src: list[_Feature] = []
        for n in self.features:
            if n not in by_name:
                raise TransformError(f"{at}: unknown feature {n!r} (available: {', '.join(by_name)})")
            f = by_name[n]
            if f.choices is not None:
                raise TransformError(
                    f"{at}: feature {n!r} is a choice index, not a number (one_hot it first and combine the indicators)"
                )
            src.append(f)
        if self.op in _LOG_OPS:
            for f in src:
                if f.low <= 0:
                    raise TransformError(
                        f"{at}: log of feature {f.name!r} needs values > 0, its lower bound is {f.low:g}"
                    )
        if self.op == "ratio" and src[1].low <= 0 <= src[1].high:
            raise TransformError(
                f"{at}: denominator {src[1].name!r} can be 0 (its bounds are [{src[1].low:g}, {src[1].high:g}])"
            )
        remaining = set(by_name) if self.keep else set(by_name) - set(self.features)
        if self.name in remaining:
            raise TransformError(f"{at}: output name {self.name!r} clashes with an existing feature")
        lo, hi = self.derived_bounds(src)
        # a declared bound may differ from the derived one by rounding (1e-12 relative), not more
        if self.low is not None and self.low - lo > 1e-12 * max(1.0, abs(lo)):
            raise TransformError(
                f"{at}: declared low {self.low:.17g} is above the derived lower bound {lo:.17g} "
                f"(the feature reaches [{lo:g}, {hi:g}])"
            )
        if self.high is not None and hi - self.high > 1e-12 * max(1.0, abs(hi)):
            raise TransformError(
                f"{at}: declared high {self.high:.17g} is below the derived upper bound {hi:.17g} "
                f"(the feature reaches [{lo:g}, {hi:g}])"
            )
        out = _Feature(self.name, lo if self.low is None else self.low, hi if self.high is None else self.high)
        names = [f.name for f in feats]
        if self.keep:
            pos = names.index(self.features[0]) + 1
            new = [*feats[:pos], out, *feats[pos:]]
        else:
            new = _replace(feats, self.features, [out])
        return new

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"step": "combine", "op": self.op, "features": list(self.features), "name": self.name}
        if not self.keep:
            d["keep"] = False
        if self.low is not None:
            d["low"] = self.low
        if self.high is not None:
            d["high"] = self.high
        return d


@dataclass(frozen=True)
class RenameStep:
    """Rename features: ``mapping = {old: new}``."""

    mapping: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        m = self.mapping.items() if isinstance(self.mapping, Mapping) else self.mapping
        object.__setattr__(self, "mapping", tuple((str(a), str(b)) for a, b in m))
        if not self.mapping:
            raise TransformError("rename step: mapping is empty")

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        m = dict(self.mapping)
        for old, new_name in m.items():
            _lookup(feats, old, where)
            _check_feature_name(new_name, where)
        new = [_Feature(m.get(f.name, f.name), f.low, f.high, f.choices) for f in feats]
        if len({f.name for f in new}) != len(new):
            raise TransformError(f"{where}: rename makes two features share a name")
        return new

    def to_dict(self) -> dict[str, Any]:
        return {"step": "rename", "mapping": dict(self.mapping)}


@dataclass(frozen=True)
class DropStep:
    """Remove features from the chain's output."""

    features: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))

    def plan(self, feats: list[_Feature], where: str) -> list[_Feature]:
        for n in self.features:
            _lookup(feats, n, where)
        new = [f for f in feats if f.name not in self.features]
        if not new:
            raise TransformError(f"{where}: dropping {list(self.features)} leaves no features")
        return new

    def to_dict(self) -> dict[str, Any]:
        return {"step": "drop", "features": list(self.features)}


Step = Union[LogStep, AffineStep, OneHotStep, GroupRatioStep, CombineStep, RenameStep, DropStep]


@dataclass(frozen=True)
class TransformChain:
    """An ordered list of steps; ``TransformChain(())`` is the identity."""

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))

    def plan(self, space: SearchSpace) -> FeaturePlan:
        """Check the chain against ``space``: the features (names, bounds) after every step, no torch.

        Raises:
            TransformError: a step names an unknown feature, logs a non-positive one, ...; the message
                names the step (``step 2 (log)``) and the feature.
        """
        return FeaturePlan(space, self)

    def to_list(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]


class FeaturePlan:
    """A transform chain checked against one search space: the named features and their bounds.

    Torch-free: what reading a session, the kernel editor and ``lla-studio validate`` need.
    :class:`~lla_studio.core.features.FeatureMap` evaluates the same plan on tensors.

    Args:
        space: The search space.
        chain: The transform chain.
    """

    def __init__(self, space: SearchSpace, chain: TransformChain) -> None:
        self.space = space
        self.chain = chain
        feats: list[_Feature] = []
        for p in space.parameters:
            if isinstance(p, ChoiceParameter):
                feats.append(_Feature(p.name, 0.0, float(len(p.choices) - 1), tuple(p.choices)))
            else:
                feats.append(_Feature(p.name, float(p.low), float(p.high)))
        for p in space.parameters:
            _check_feature_name(p.name, f"parameter {p.name!r}")
        stages = []
        for i, step in enumerate(chain.steps):
            tag = step.to_dict()["step"]
            feats = step.plan(feats, f"transform step {i} ({tag})")
            stages.append(tuple(f.name for f in feats))
        self._features = tuple(feats)
        self.stage_names: tuple[tuple[str, ...], ...] = tuple(stages)
        """The feature names after each step, in order (what the compiled ops produce)."""

    @property
    def is_identity_on_unit_cube(self) -> bool:
        """True when normalizing the features by their bounds gives back the encoding itself.

        That holds for an empty chain over linear real parameters without conditions: each feature
        is ``low + u (high - low)``. Models can then skip the transforms (a fast path).
        """
        return not self.chain.steps and all(
            isinstance(p, RealParameter) and not p.log and not p.conditions for p in self.space.parameters
        )

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._features)

    @property
    def num_features(self) -> int:
        return len(self._features)

    def feature_bounds(self) -> np.ndarray:
        """``2 x m`` array of lower and upper bounds of each feature (over the whole space)."""
        return np.array([[f.low for f in self._features], [f.high for f in self._features]], dtype=np.float64)


# ---------------------------------------------------------------------- reading from JSON
def _step_from_dict(d: Any, path: str) -> Step:
    from lla_studio.core.schema import check_keys, expect_object, get

    obj = expect_object(d, path)
    tag = get(obj, "step", "str", path)

    def names(key: str) -> tuple[str, ...]:
        items = get(obj, key, "list", path)
        for i, n in enumerate(items):
            if not isinstance(n, str):
                raise SessionError(f"expected a feature name, got {n!r}", f"{path}.{key}[{i}]")
        return tuple(items)

    try:
        if tag == "log":
            check_keys(obj, {"step", "features", "prefix"}, path)
            return LogStep(names("features"), get(obj, "prefix", "str", path, "log_"))
        if tag == "affine":
            check_keys(obj, {"step", "feature", "scale", "shift", "name"}, path)
            return AffineStep(
                get(obj, "feature", "str", path),
                get(obj, "scale", "number", path, 1.0),
                get(obj, "shift", "number", path, 0.0),
                get(obj, "name", "str?", path, None),
            )
        if tag == "one_hot":
            check_keys(obj, {"step", "feature"}, path)
            return OneHotStep(get(obj, "feature", "str", path))
        if tag == "group_ratio":
            check_keys(obj, {"step", "features", "group", "log_ratios"}, path)
            return GroupRatioStep(names("features"), get(obj, "group", "str", path), get(obj, "log_ratios", "bool", path, True))
        if tag == "combine":
            check_keys(obj, {"step", "op", "features", "name", "keep", "low", "high"}, path)
            op = get(obj, "op", "str", path)
            if op not in _COMBINE_OPS:
                raise SessionError(f"unknown combine op {op!r} (use {', '.join(_COMBINE_OPS)})", f"{path}.op")
            return CombineStep(
                op,
                names("features"),
                get(obj, "name", "str", path),
                get(obj, "keep", "bool", path, True),
                get(obj, "low", "number?", path, None),
                get(obj, "high", "number?", path, None),
            )
        if tag == "rename":
            check_keys(obj, {"step", "mapping"}, path)
            mapping = get(obj, "mapping", "object", path)
            for k, v in mapping.items():
                if not isinstance(v, str):
                    raise SessionError(f"expected a feature name, got {v!r}", f"{path}.mapping.{k}")
            return RenameStep(tuple(mapping.items()))
        if tag == "drop":
            check_keys(obj, {"step", "features"}, path)
            return DropStep(names("features"))
    except TransformError as err:
        raise SessionError(str(err), path) from None
    raise SessionError(
        f"unknown transform step {tag!r} (use log, affine, one_hot, group_ratio, combine, rename or drop)", f"{path}.step"
    )


def transform_chain_from_dict(d: Any, path: str = "transforms") -> TransformChain:
    """Read a chain from a JSON list of steps."""
    from lla_studio.core.schema import expect_list

    items = expect_list(d, path)
    return TransformChain(tuple(_step_from_dict(s, f"{path}[{i}]") for i, s in enumerate(items)))


def check_chain(space: SearchSpace, chain: TransformChain, path: str = "transforms") -> FeaturePlan:
    """Plan the chain with errors re-raised as :class:`SessionError` pointing at the step's JSON path.

    Also refuses a chain whose derived feature bounds are not finite (``affine`` by 1e308, a product
    of huge ranges): models normalize every feature by its bounds, so such a chain could not be fitted.
    """
    try:
        fmap = chain.plan(space)
    except TransformError as err:
        m = re.match(r"transform step (\d+)", str(err))
        raise SessionError(str(err), f"{path}[{m.group(1)}]" if m else path) from None
    bounds = fmap.feature_bounds()
    if not np.isfinite(bounds).all():
        # the first step whose output has a non-finite bound (only on this error path: n small compiles)
        at, names = path, fmap.feature_names
        for i in range(len(chain.steps)):
            part = TransformChain(chain.steps[: i + 1]).plan(space)
            if not np.isfinite(part.feature_bounds()).all():
                at, names = f"{path}[{i}]", part.feature_names
                bounds = part.feature_bounds()
                break
        j = int(np.flatnonzero(~np.isfinite(bounds).all(axis=0))[0])
        raise SessionError(
            f"feature {names[j]!r} gets the bounds [{bounds[0, j]:g}, {bounds[1, j]:g}]; feature bounds must be "
            "finite (models normalize by them)",
            at,
        )
    return fmap

