"""Small helpers to read plain JSON dicts into frozen objects with errors that name the JSON path.

:func:`plain_json` is the reader's first pass over a whole document: it walks the tree without
recursion, refuses what JSON cannot hold or what no later check should have to think about (nesting
deeper than :data:`MAX_DEPTH`, numbers no float64 holds, NaN and infinities, strings that cannot be
written as UTF-8, keys that are not strings, Python objects such as sets or numpy arrays) with a
:class:`~lla_studio.core.errors.SessionError` naming the path, and returns a plain copy (dicts, lists,
str, int, float, bool, None; numpy scalars become Python scalars). Everything after it may recurse
and may convert numbers to float without a guard.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from lla_studio.core.errors import SessionError

__all__ = [
    "MAX_DEPTH",
    "Unreadable",
    "brief",
    "check_keys",
    "child_path",
    "expect_list",
    "expect_object",
    "finite_float",
    "get",
    "plain_json",
    "type_name",
]

MAX_DEPTH = 64
"""Deepest nesting of objects and lists in a session document (the document itself is level 1).

The shipped sessions reach level 10 (the kernel graph of the CNN session); 64 leaves room for any
kernel a person writes and keeps every recursive step of the reader (kernel graphs, frozen options, error
messages) far from Python's recursion limit.
"""

_MISSING = object()
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Unreadable:
    """Placeholder the text reader leaves where a JSON literal is no value (``NaN``, ``1e999``, an
    integer of 5000 digits); :func:`plain_json` refuses it with ``reason`` and the path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def child_path(path: str, key: str | int) -> str:
    """JSON path of ``key`` below ``path`` (``""`` is the document): ``a.b``, ``a[2]``, ``a["x y"]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"  # quoted, with non-ASCII and lone surrogates escaped


def _digits(value: int) -> str:
    """How many decimal digits ``value`` has, without ``str`` (refused above 4300 digits)."""
    try:
        return str(len(str(abs(value))))
    except ValueError:
        return f"more than {int(abs(value).bit_length() * math.log10(2))}"


def brief(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message: one line, at most about ``limit`` characters, safe for huge ints."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {_digits(value)} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # pragma: no cover - plain_json lets neither through
        return type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finite_float(value: Any) -> float | None:
    """``float(value)`` for a real number (not a bool) that float64 holds as a finite value, else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return x if math.isfinite(x) else None


def _string(value: str, path: str, what: str = "string") -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise SessionError(
                f"{what} holds {value[err.start]!r} at index {err.start}, a lone UTF-16 surrogate that UTF-8 "
                "cannot encode; it is not text",
                path,
            ) from None
    return str(value)


def _leaf(value: Any, path: str) -> Any:
    """A plain copy of a JSON scalar, or a SessionError naming ``path``."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _string(value, path)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        value = int(value)
        if value.bit_length() > 1023:
            try:
                float(value)
            except OverflowError:
                raise SessionError(
                    f"integer of {_digits(value)} digits is out of range (a number must fit a float64, "
                    "at most about 1.8e308)",
                    path,
                ) from None
        return value
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            raise SessionError(f"expected a finite number, got {x}", path)
        return x
    if isinstance(value, Unreadable):
        raise SessionError(value.reason, path)
    if isinstance(value, np.ndarray):
        raise SessionError(
            f"expected a JSON value, got a numpy array of shape {value.shape}; pass array.tolist()", path
        )
    raise SessionError(
        f"expected a JSON value (object, list, string, number, true, false or null), got {type(value).__name__}",
        path,
    )


def plain_json(value: Any, path: str = "", level: int = 1) -> Any:
    """A plain-JSON copy of ``value``, checked all the way down (see the module docstring).

    Args:
        value: A parsed JSON document or a Python structure of mappings, lists, tuples and scalars.
        path: JSON path of ``value`` (``""``: the document itself, named ``$`` in messages).
        level: Nesting level of ``value`` in its document (1: the document itself).

    Returns:
        ``value`` as dicts, lists, str, int, float, bool and None (numpy scalars converted).

    Raises:
        SessionError: Naming the path of the first culprit in document order.
    """
    holder: list[Any] = [None]
    # (value, path, level, container to fill, key in it); popped in document order
    stack: list[tuple[Any, str, int, Any, Any]] = [(value, path, level, holder, 0)]
    while stack:
        v, p, depth, parent, key = stack.pop()
        if isinstance(v, Mapping) or isinstance(v, (list, tuple)):
            if depth > MAX_DEPTH:
                raise SessionError(f"nested more than {MAX_DEPTH} levels deep", p or "$")
            if isinstance(v, Mapping):
                out: Any = {}
                items = []
                for k in v:
                    if not isinstance(k, str):
                        raise SessionError(f"object keys must be strings, got {type_name(k)} {brief(k)}", p or "$")
                    k = _string(k, p or "$", f"key {brief(k)}")
                    out[k] = None
                    items.append((k, v[k]))
                children = [(item, child_path(p, k), out, k) for k, item in items]
            else:
                out = [None] * len(v)
                children = [(item, child_path(p, i), out, i) for i, item in enumerate(v)]
            parent[key] = out
            stack.extend((item, cp, depth + 1, o, k) for item, cp, o, k in reversed(children))
        else:
            parent[key] = _leaf(v, p or "$")
    return holder[0]


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
        "number": lambda v: finite_float(v) is not None,
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
        shown = brief(value)
        got = shown if shown.startswith("an integer of ") else f"{type_name(value)} {shown}"
        raise SessionError(f"expected {want}, got {got}", sub)
    if kind == "number":
        return float(value)
    if kind == "int":
        return int(value)
    return value
