"""Small helpers to read plain JSON dicts into frozen objects with errors that name the JSON path."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from lla_studio.core.errors import SessionError

_MISSING = object()

_TYPE_NAMES = {
    str: "a string",
    bool: "true or false",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def type_name(value: Any) -> str:
    """JSON-ish name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Integral):
        return "an integer"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def expect_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SessionError(f"expected an object, got {type_name(value)}", path)
    return value


def expect_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise SessionError(f"expected a list, got {type_name(value)}", path)
    return list(value)


def check_keys(obj: Mapping[str, Any], allowed: set[str] | frozenset[str], path: str) -> None:
    """Reject unknown keys (typos must not pass silently)."""
    for key in obj:
        if key not in allowed:
            raise SessionError(f"unknown field {key!r} (allowed: {', '.join(sorted(allowed))})", path)


def get(obj: Mapping[str, Any], key: str, kind: str, path: str, default: Any = _MISSING) -> Any:
    """Read ``obj[key]`` and check its JSON type.

    Args:
        obj: The JSON object.
        key: Field name.
        kind: One of ``"str"``, ``"bool"``, ``"int"``, ``"number"``, ``"list"``, ``"object"``,
            ``"scalar"`` (string/number/bool), ``"any"``; suffix ``"?"`` allows null.
        path: JSON path of ``obj``.
        default: Returned when the key is absent; without it the key is required.
    """
    sub = f"{path}.{key}" if path else key
    if key not in obj:
        if default is _MISSING:
            raise SessionError("missing required field", sub)
        return default
    value = obj[key]
    nullable = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and nullable:
        return None
    ok = {
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
        "list": lambda v: isinstance(v, (list, tuple)),
        "object": lambda v: isinstance(v, Mapping),
        "scalar": lambda v: isinstance(v, (str, bool, numbers.Real)),
        "any": lambda v: True,
    }[kind]
    if not ok(value):
        want = {
            "str": "a string", "bool": "true or false", "int": "an integer", "number": "a finite number",
            "list": "a list", "object": "an object", "scalar": "a string, number or boolean", "any": "a value",
        }[kind]
        raise SessionError(f"expected {want}, got {type_name(value)} {value!r}", sub)
    if kind == "number":
        return float(value)
    if kind == "int":
        return int(value)
    return value
