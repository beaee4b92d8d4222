"""Search spaces: typed parameters, conditions, validation, sampling, unit-cube encoding.

A :class:`SearchSpace` is an ordered tuple of parameters. Each parameter is one of

* :class:`RealParameter` -- a float in ``[low, high]``, optionally log-scaled;
* :class:`IntegerParameter` -- an int in ``[low, high]``, optionally log-scaled;
* :class:`ChoiceParameter` -- one of a list of JSON scalars (str, int, float, bool).

Any parameter may be *conditional*: it is active only when each of its :class:`Condition`\\ s holds
(``parent`` takes one of ``values``) and its parents are active themselves, so chains of conditions
work; cycles are rejected. Conditions are data, never callables.

A *configuration* is a plain ``dict`` from the names of the active parameters to their values;
inactive parameters are absent (``None`` is accepted as "absent" on input). Each parameter records the
value it stands for while inactive (:attr:`inactive_value`, default: its default) so that the numeric
encoding of a configuration is always a full vector.

Encoding maps a configuration to a vector on the unit cube, one coordinate per parameter, in the
order of :attr:`SearchSpace.parameters`: reals and integers linearly (or linearly in the log for
log-scaled ones) from ``[low, high]`` to ``[0, 1]``; choice ``i`` of ``k`` to ``i / (k - 1)`` (0 for a
single choice). Decoding inverts that, rounding integers and snapping choices to the nearest index.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from lla_studio.core.errors import SearchSpaceError
from lla_studio.core.schema import brief

JSONScalar = Union[str, int, float, bool]

__all__ = [
    "BOUNDARY_TOL",
    "ChoiceParameter",
    "Condition",
    "IntegerParameter",
    "Parameter",
    "RealParameter",
    "SearchSpace",
]

BOUNDARY_TOL = 0.01
"""A value within this fraction of its (log-)range of an end of the box is on the boundary."""


MAX_INTEGER = 2**53
"""Bound on the magnitude of integer parameters: every integer up to it is exact in float64, the
precision of the unit-cube encoding, so each one can be proposed and encoded without rounding."""


def _is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite float64 (an int beyond float range is not), else None."""
    try:
        x = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _is_integer_value(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Integral):
        return True
    if not isinstance(value, numbers.Real):
        return False
    x = _finite(value)
    return x is not None and x.is_integer()


def _choice_key(value: Any) -> tuple[str, Any]:
    """A hashable key under which two choices are the same exactly when :func:`_same_scalar` says so."""
    if isinstance(value, bool):
        return ("bool", value)
    if _is_real_number(value):
        return ("number", value)  # 1 == 1.0 and hash(1) == hash(1.0): exact, no float rounding
    return (type(value).__name__, value)


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_real_number(a) and _is_real_number(b):
        return bool(a == b)  # exact (2**53 + 1 is not 2.0**53) and never overflows
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class Condition:
    """The owning parameter is active only when ``parent`` takes one of ``values``.

    Args:
        parent: Name of the parameter the condition looks at.
        values: The values of ``parent`` for which the condition holds.
    """

    parent: str
    values: tuple[JSONScalar, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.parent, str) or not self.parent:
            raise SearchSpaceError(f"condition: parent must be a non-empty name, got {self.parent!r}")
        values = tuple(self.values) if not isinstance(self.values, (str, bytes)) else (self.values,)
        if not values:
            raise SearchSpaceError(f"condition on {self.parent!r}: needs at least one value")
        object.__setattr__(self, "values", values)

    def holds(self, parent_value: Any) -> bool:
        """Whether the condition holds for a value of the parent."""
        return any(_same_scalar(parent_value, v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent, "values": list(self.values)}

    def describe(self) -> str:
        """Text form: ``parent == value`` or ``parent in [v1, v2]``."""
        import json

        if len(self.values) == 1:
            return f"{self.parent} == {json.dumps(self.values[0])}"
        return f"{self.parent} in {json.dumps(list(self.values))}"


@dataclass(frozen=True)
class _ParameterBase:
    name: str

    def _check_name(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SearchSpaceError(f"parameter name must be a non-empty string, got {self.name!r}")
        if self.name != self.name.strip():
            raise SearchSpaceError(f"parameter {self.name!r}: name has leading/trailing spaces")

    def _check_conditions(self) -> None:
        conditions = tuple(self.conditions)  # type: ignore[attr-defined]
        for c in conditions:
            if not isinstance(c, Condition):
                raise SearchSpaceError(f"parameter {self.name!r}: conditions must be Condition objects")
            if c.parent == self.name:
                raise SearchSpaceError(f"parameter {self.name!r}: a condition cannot refer to itself")
        object.__setattr__(self, "conditions", conditions)

    @property
    def is_conditional(self) -> bool:
        return bool(self.conditions)  # type: ignore[attr-defined]


class _RangedParameter(_ParameterBase):
    """What real and integer parameters share: a ``[low, high]`` range, searched linearly or on a
    log scale, a default and a placeholder while inactive."""

    low: Any
    high: Any
    log: bool
    default: Any
    inactive_value: Any
    conditions: tuple[Condition, ...]
    kind: str

    def _check_scale(self, fmt: Callable[[Any], str]) -> None:
        n = self.name
        if not isinstance(self.log, bool):
            raise SearchSpaceError(f"parameter {n!r}: log must be true or false, got {self.log!r}")
        if self.low >= self.high:
            raise SearchSpaceError(f"parameter {n!r}: needs low < high, got low={fmt(self.low)}, high={fmt(self.high)}")
        if not math.isfinite(self.high - self.low):
            raise SearchSpaceError(
                f"parameter {n!r}: high - low must be a finite number (the encoding divides by it), "
                f"got low={fmt(self.low)}, high={fmt(self.high)}"
            )
        if self.log and self.low <= 0:
            raise SearchSpaceError(f"parameter {n!r}: log scale needs low > 0, got low={fmt(self.low)}")

    def _checked(self, what: str, v: Any) -> Any:
        """``v`` as this parameter's type, refused when it is not a value of the range."""
        raise NotImplementedError

    def _check_default_and_placeholder(self) -> None:
        if self.default is None:
            object.__setattr__(self, "default", self.from_unit(0.5))  # type: ignore[attr-defined]
        else:
            object.__setattr__(self, "default", self._checked("default", self.default))
        if self.inactive_value is not None:
            object.__setattr__(self, "inactive_value", self._checked("inactive_value", self.inactive_value))
        self._check_conditions()

    @property
    def placeholder(self) -> Any:
        """The value used in the encoding while the parameter is inactive."""
        return self.default if self.inactive_value is None else self.inactive_value

    def to_unit(self, v: float) -> float:
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def _scaled(self, u: float) -> float:
        """The (unrounded) value at unit coordinate ``u`` (clipped to ``[0, 1]``)."""
        u = min(max(float(u), 0.0), 1.0)
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.kind, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        d["default"] = self.default
        if self.conditions:
            d["conditions"] = [c.to_dict() for c in self.conditions]
        if self.inactive_value is not None:
            d["inactive_value"] = self.inactive_value
        return d


@dataclass(frozen=True)
class RealParameter(_RangedParameter):
    """A float in ``[low, high]``; with ``log=True`` it is searched on a log scale.

    Args:
        name: Unique name.
        low: Lower bound (``> 0`` when ``log``).
        high: Upper bound, ``> low``.
        log: Search on a log scale.
        default: Default value (``None``: the midpoint in the searched scale).
        conditions: The parameter is active only when all of these hold.
        inactive_value: The value the parameter stands for while inactive (``None``: the default).
    """

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    default: float | None = None
    conditions: tuple[Condition, ...] = ()
    inactive_value: float | None = None
    kind: str = field(default="real", init=False)

    def __post_init__(self) -> None:
        self._check_name()
        n = self.name
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if not _is_real_number(v) or _finite(v) is None:
                raise SearchSpaceError(f"parameter {n!r}: {attr} must be a finite number, got {brief(v)}")
            object.__setattr__(self, attr, float(v))
        self._check_scale(lambda v: f"{v:g}")
        self._check_default_and_placeholder()

    def _checked(self, what: str, v: Any) -> float:
        if not _is_real_number(v) or _finite(v) is None:
            raise SearchSpaceError(f"parameter {self.name!r}: {what} must be a finite number, got {brief(v)}")
        if not self.low <= float(v) <= self.high:
            raise SearchSpaceError(
                f"parameter {self.name!r}: {what} {float(v):g} is outside [{self.low:g}, {self.high:g}]"
            )
        return float(v)


    def check_value(self, v: Any) -> float:
        """Validate one value; return it as a float."""
        if not _is_real_number(v):
            raise SearchSpaceError(f"parameter {self.name!r}: expected a number, got {type(v).__name__} {brief(v)}")
        if _finite(v) is None:
            raise SearchSpaceError(f"parameter {self.name!r}: value must be finite, got {brief(v)}")
        if not self.low <= float(v) <= self.high:
            raise SearchSpaceError(
                f"parameter {self.name!r}: value {float(v):g} is outside [{self.low:g}, {self.high:g}]"
            )
        return float(v)

    def from_unit(self, u: float) -> float:
        return min(max(self._scaled(u), self.low), self.high)


@dataclass(frozen=True)
class IntegerParameter(_RangedParameter):
    """An integer in ``[low, high]``; with ``log=True`` it is searched on a log scale.

    Args mirror :class:`RealParameter`; bounds and default must be integers.
    """

    low: int = 0
    high: int = 1
    log: bool = False
    default: int | None = None
    conditions: tuple[Condition, ...] = ()
    inactive_value: int | None = None
    kind: str = field(default="integer", init=False)

    def __post_init__(self) -> None:
        self._check_name()
        n = self.name
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if not _is_integer_value(v):
                raise SearchSpaceError(f"parameter {n!r}: {attr} must be an integer, got {brief(v)}")
            if abs(int(v)) > MAX_INTEGER:
                raise SearchSpaceError(
                    f"parameter {n!r}: {attr} must lie within +-2**53 (integers beyond it are not exact in "
                    f"float64), got {brief(int(v))}"
                )
            object.__setattr__(self, attr, int(v))
        self._check_scale(str)
        self._check_default_and_placeholder()

    def _checked(self, what: str, v: Any) -> int:
        if not _is_integer_value(v):
            raise SearchSpaceError(f"parameter {self.name!r}: {what} must be an integer, got {brief(v)}")
        if not self.low <= int(v) <= self.high:
            raise SearchSpaceError(
                f"parameter {self.name!r}: {what} {brief(int(v))} is outside [{self.low}, {self.high}]"
            )
        return int(v)


    def check_value(self, v: Any) -> int:
        if isinstance(v, bool) or not _is_real_number(v):
            raise SearchSpaceError(f"parameter {self.name!r}: expected an integer, got {type(v).__name__} {brief(v)}")
        if not _is_integer_value(v):
            raise SearchSpaceError(f"parameter {self.name!r}: expected an integer, got {brief(v)}")
        if not self.low <= int(v) <= self.high:
            raise SearchSpaceError(
                f"parameter {self.name!r}: value {brief(int(v))} is outside [{self.low}, {self.high}]"
            )
        return int(v)

    def from_unit(self, u: float) -> int:
        return int(min(max(round(self._scaled(u)), self.low), self.high))


@dataclass(frozen=True)
class ChoiceParameter(_ParameterBase):
    """One of a list of JSON scalars (strings, numbers, booleans).

    Args:
        name: Unique name.
        choices: The allowed values, at least one, no duplicates. Numbers compare by value, so ``1``
            and ``1.0`` are the same choice (refused as a duplicate: a configuration could not say
            which one it means); JSON's ``true`` is not the number ``1`` and the string ``"1"`` is
            neither, so ``[true, 1, "1"]`` are three choices.
        default: Default value (``None``: the first choice).
        conditions: The parameter is active only when all of these hold.
        inactive_value: The value the parameter stands for while inactive (``None``: the default).
    """

    choices: tuple[JSONScalar, ...] = ()
    default: JSONScalar | None = None
    conditions: tuple[Condition, ...] = ()
    inactive_value: JSONScalar | None = None
    kind: str = field(default="choice", init=False)

    def __post_init__(self) -> None:
        self._check_name()
        n = self.name
        if isinstance(self.choices, (str, bytes)) or not isinstance(self.choices, Iterable):
            raise SearchSpaceError(f"parameter {n!r}: choices must be a list, got {self.choices!r}")
        choices = tuple(self.choices)
        if not choices:
            raise SearchSpaceError(f"parameter {n!r}: choices must not be empty")
        seen: set[tuple[str, Any]] = set()
        for c in choices:
            if not isinstance(c, (str, bool, int, float)) or (_is_real_number(c) and _finite(c) is None):
                raise SearchSpaceError(
                    f"parameter {n!r}: choice {brief(c)} is not a JSON scalar (a string, finite number or boolean)"
                )
            key = _choice_key(c)
            if key in seen:
                raise SearchSpaceError(f"parameter {n!r}: duplicate choice {brief(c)}")
            seen.add(key)
        object.__setattr__(self, "choices", choices)
        if self.default is None:
            object.__setattr__(self, "default", choices[0])
        else:
            self.index(self.default, what="default")
        if self.inactive_value is not None:
            self.index(self.inactive_value, what="inactive_value")
        self._check_conditions()

    def index(self, v: Any, what: str = "value") -> int:
        """Position of ``v`` among the choices (type-aware: ``True`` is not ``1``)."""
        for i, c in enumerate(self.choices):
            if _same_scalar(c, v):
                return i
        raise SearchSpaceError(
            f"parameter {self.name!r}: {what} {v!r} is not one of the choices {list(self.choices)!r}"
        )

    @property
    def placeholder(self) -> JSONScalar:
        return self.default if self.inactive_value is None else self.inactive_value  # type: ignore[return-value]

    def check_value(self, v: Any) -> JSONScalar:
        return self.choices[self.index(v)]

    def to_unit(self, v: Any) -> float:
        k = len(self.choices)
        return 0.0 if k == 1 else self.index(v) / (k - 1)

    def from_unit(self, u: float) -> JSONScalar:
        k = len(self.choices)
        u = min(max(float(u), 0.0), 1.0)
        return self.choices[int(round(u * (k - 1)))]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": "choice", "choices": list(self.choices)}
        d["default"] = self.default
        if self.conditions:
            d["conditions"] = [c.to_dict() for c in self.conditions]
        if self.inactive_value is not None:
            d["inactive_value"] = self.inactive_value
        return d


Parameter = Union[RealParameter, IntegerParameter, ChoiceParameter]


def _describe_cycle(names: list[str]) -> str:
    """``a -> b -> a``; a long cycle shows its ends and how many parameters it holds."""
    if len(names) <= 8:
        return " -> ".join([*names, names[0]])
    return " -> ".join([*names[:3], "...", *names[-2:], names[0]]) + f" ({len(names)} parameters)"


class SearchSpace:
    """An ordered, validated set of parameters with conditions between them.

    Args:
        parameters: The parameters in display/encoding order.

    Raises:
        SearchSpaceError: duplicate names, a condition on an unknown parameter or an impossible
            value, a condition on a real-valued parameter, or a cycle of conditions.
    """

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        params = tuple(parameters)
        if not params:
            raise SearchSpaceError("search space has no parameters")
        by_name: dict[str, Parameter] = {}
        for p in params:
            if not isinstance(p, (RealParameter, IntegerParameter, ChoiceParameter)):
                raise SearchSpaceError(f"not a parameter: {p!r}")
            if p.name in by_name:
                raise SearchSpaceError(f"duplicate parameter name {p.name!r}")
            by_name[p.name] = p
        for p in params:
            for c in p.conditions:
                parent = by_name.get(c.parent)
                if parent is None:
                    raise SearchSpaceError(f"parameter {p.name!r}: condition on unknown parameter {c.parent!r}")
                if isinstance(parent, RealParameter):
                    raise SearchSpaceError(
                        f"parameter {p.name!r}: condition on real parameter {c.parent!r}; "
                        "conditions need a choice or integer parent"
                    )
                for v in c.values:
                    try:
                        parent.check_value(v)
                    except SearchSpaceError:
                        raise SearchSpaceError(
                            f"parameter {p.name!r}: condition value {v!r} is impossible for parameter {c.parent!r}"
                        ) from None
        self._params = params
        self._by_name = by_name
        self._order = self._topological_order()

    def _topological_order(self) -> tuple[str, ...]:
        """Names ordered so that parents come before children; raises on cycles.

        A depth-first search with an explicit stack, so a chain of thousands of conditions needs no
        recursion; the order is the one the recursive search gives (parents in condition order).
        """
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        order: list[str] = []
        for p in self._params:
            if state.get(p.name):
                continue
            state[p.name] = 1
            path = [p.name]
            todo = [iter(p.conditions)]  # per name on the path: its conditions not yet followed
            while todo:
                c = next(todo[-1], None)
                if c is None:
                    done = path.pop()
                    todo.pop()
                    state[done] = 2
                    order.append(done)
                    continue
                s = state.get(c.parent, 0)
                if s == 2:
                    continue
                if s == 1:
                    raise SearchSpaceError("cycle of conditions: " + _describe_cycle(path[path.index(c.parent):]))
                state[c.parent] = 1
                path.append(c.parent)
                todo.append(iter(self._by_name[c.parent].conditions))
        return tuple(order)

    # ------------------------------------------------------------------ accessors
    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return self._params

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._params)

    @property
    def dim(self) -> int:
        """Number of coordinates of the unit-cube encoding (one per parameter)."""
        return len(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._params)

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._by_name[name]
        except KeyError:
            raise SearchSpaceError(f"unknown parameter {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def index(self, name: str) -> int:
        """Column of ``name`` in the encoding."""
        self[name]
        return self.names.index(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self._params == other._params

    def __hash__(self) -> int:
        return hash(self._params)

    def __repr__(self) -> str:
        return f"SearchSpace({list(self._params)!r})"

    @property
    def is_conditional(self) -> bool:
        return any(p.conditions for p in self._params)

    @property
    def choice_parameters(self) -> tuple[ChoiceParameter, ...]:
        return tuple(p for p in self._params if isinstance(p, ChoiceParameter))

    # ------------------------------------------------------------------ activity
    def active_names(self, values: Mapping[str, Any]) -> set[str]:
        """Names of the parameters active under the (possibly partial) assignment ``values``.

        A parameter is active iff each condition's parent is active and takes one of the listed values.
        """
        active: set[str] = set()
        for name in self._order:
            p = self._by_name[name]
            if all(c.parent in active and c.holds(values.get(c.parent)) for c in p.conditions):
                active.add(name)
        return active

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        return name in self.active_names(config)

    def boundary_hits(self, config: Mapping[str, Any], tol: float = BOUNDARY_TOL) -> tuple[str, ...]:
        """Where ``config`` touches the box: ``("x1 low", "lr high", ...)`` for each active real or
        integer parameter within ``tol`` of an end of its range (of its log range when ``log``).

        Model proposals that pile up on the boundary are the signature of a surrogate whose
        uncertainty grows without bound away from the data (a ReLU network's LLA, see
        :mod:`lla_studio.core.relu_lab`). Choice parameters have no boundary; inactive ones are skipped.
        """
        active = self.active_names(config)
        hits = []
        for name in self._order:
            p = self._by_name[name]
            if isinstance(p, ChoiceParameter) or name not in active or config.get(name) is None:
                continue
            u = p.to_unit(config[name])
            if u <= tol:
                hits.append(f"{name} low")
            elif u >= 1.0 - tol:
                hits.append(f"{name} high")
        return tuple(hits)

    # ------------------------------------------------------------------ validation
    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a configuration; return it normalized (ints as int, inactive entries dropped).

        Raises:
            SearchSpaceError: listing every bad field (missing, extra, out of range, wrongly typed,
                or set although inactive).
        """
        if not isinstance(config, Mapping):
            raise SearchSpaceError(f"configuration must be a mapping, got {type(config).__name__}")
        problems: list[str] = []
        for key in config:
            if key not in self._by_name:
                problems.append(f"unknown parameter {key!r}")
        checked: dict[str, Any] = {}
        for name in self._order:
            p = self._by_name[name]
            if name in config and config[name] is not None:
                try:
                    checked[name] = p.check_value(config[name])
                except SearchSpaceError as err:
                    problems.append(str(err))
        active = self.active_names(checked)
        out: dict[str, Any] = {}
        for p in self._params:
            present = p.name in config and config[p.name] is not None
            if p.name in active:
                if not present:
                    problems.append(f"parameter {p.name!r}: missing value")
                elif p.name in checked:
                    out[p.name] = checked[p.name]
            elif present and p.name in checked:
                why = " and ".join(c.describe() for c in p.conditions)
                problems.append(f"parameter {p.name!r}: is inactive (needs {why}) but has value {config[p.name]!r}")
        if problems:
            raise SearchSpaceError("invalid configuration: " + "; ".join(problems))
        return out

    def default_config(self) -> dict[str, Any]:
        """The configuration of defaults (inactive parameters dropped)."""
        values = {p.name: p.default for p in self._params}
        active = self.active_names(values)
        return {p.name: p.default for p in self._params if p.name in active}

    # ------------------------------------------------------------------ encoding
    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Encode a valid configuration to a ``d``-vector on the unit cube (float64)."""
        cfg = self.validate(config)
        return np.array(
            [p.to_unit(cfg[p.name] if p.name in cfg else p.placeholder) for p in self._params], dtype=np.float64
        )

    def encode_many(self, configs: Iterable[Mapping[str, Any]]) -> np.ndarray:
        """Encode configurations to an ``n x d`` array."""
        rows = [self.encode(c) for c in configs]
        return np.array(rows, dtype=np.float64).reshape(len(rows), self.dim)

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Decode a unit-cube vector (clipped to ``[0, 1]``) to a valid configuration.

        Integers are rounded, choices snapped to the nearest index; parameters that are inactive under
        the decoded values of their parents are dropped.
        """
        arr = np.asarray(u, dtype=np.float64).reshape(-1)
        if arr.shape[0] != self.dim:
            raise SearchSpaceError(f"decode: expected a vector of length {self.dim}, got {arr.shape[0]}")
        if not np.all(np.isfinite(arr)):
            raise SearchSpaceError("decode: vector has non-finite entries")
        values = {p.name: p.from_unit(x) for p, x in zip(self._params, arr)}
        active = self.active_names(values)
        return {p.name: values[p.name] for p in self._params if p.name in active}

    def decode_many(self, U: np.ndarray) -> list[dict[str, Any]]:
        return [self.decode(row) for row in np.asarray(U, dtype=np.float64).reshape(-1, self.dim)]

    def canonicalize_encoded(self, U: np.ndarray) -> np.ndarray:
        """Snap encoded rows onto representable points: round integers and choices, set inactive
        coordinates to their placeholder. ``encode(decode(u))`` for each row, vectorized enough."""
        return self.encode_many(self.decode_many(U))

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, seed: int | None = 0, method: str = "sobol") -> list[dict[str, Any]]:
        """Draw ``n`` valid configurations.

        Args:
            n: Number of configurations.
            seed: Seed; the same seed gives the same configurations.
            method: ``"sobol"`` (scrambled Sobol points on the unit cube) or ``"uniform"``.
        """
        return self.decode_many(self.sample_encoded(n, seed=seed, method=method))

    def sample_encoded(self, n: int, seed: int | None = 0, method: str = "sobol") -> np.ndarray:
        """Raw unit-cube sample (``n x d``) that :meth:`sample` decodes."""
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise SearchSpaceError(f"sample: n must be a non-negative integer, got {n!r}")
        if method == "sobol":
            from scipy.stats import qmc

            if n == 0:
                return np.zeros((0, self.dim))
            engine = qmc.Sobol(d=self.dim, scramble=True, seed=seed)
            # Draw a whole power of two (Sobol's balance properties need it) and keep the first n.
            m = max(0, math.ceil(math.log2(n)))
            return engine.random_base2(m)[:n]
        if method == "uniform":
            return np.random.default_rng(seed).random((n, self.dim))
        raise SearchSpaceError(f"sample: unknown method {method!r}; use 'sobol' or 'uniform'")

    # ------------------------------------------------------------------ choices
    def choice_combinations(self) -> list[dict[str, Any]]:
        """Every valid assignment of the choice parameters (inactive ones absent).

        Conditions are honoured: a choice parameter that is inactive under an assignment of its
        parents does not multiply the count. Integer parents are not enumerated; conditions on them
        are evaluated later, so such children are always enumerated.
        """
        choice_names = [n for n in self._order if isinstance(self._by_name[n], ChoiceParameter)]
        combos: list[dict[str, Any]] = [{}]
        for name in choice_names:
            p = self._by_name[name]
            assert isinstance(p, ChoiceParameter)
            new: list[dict[str, Any]] = []
            for combo in combos:
                decidable = all(
                    isinstance(self._by_name[c.parent], ChoiceParameter) for c in p.conditions
                )
                if decidable and not all(
                    c.parent in combo and c.holds(combo[c.parent]) for c in p.conditions
                ):
                    new.append(combo)
                    continue
                for v in p.choices:
                    new.append({**combo, name: v})
            combos = new
        return combos

    def n_choice_combinations(self) -> int:
        return len(self.choice_combinations())

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        return {"parameters": [p.to_dict() for p in self._params]}


# ---------------------------------------------------------------------- reading from JSON
