"""Reading a search space from its session JSON (``search_space`` section): one ``SearchSpaceError``
naming the JSON path for anything malformed."""

from __future__ import annotations

from typing import Any

from lla_studio.core.errors import SearchSpaceError
from lla_studio.core.space import (
    ChoiceParameter,
    Condition,
    IntegerParameter,
    Parameter,
    RealParameter,
    SearchSpace,
)

__all__ = ["condition_from_dict", "parameter_from_dict", "search_space_from_dict"]

_PARAM_KEYS = {
    "real": {"name", "type", "low", "high", "log", "default", "conditions", "inactive_value"},
    "integer": {"name", "type", "low", "high", "log", "default", "conditions", "inactive_value"},
    "choice": {"name", "type", "choices", "default", "conditions", "inactive_value"},
}


def condition_from_dict(d: Any, path: str) -> Condition:
    from lla_studio.core.schema import check_keys, expect_object, get

    from lla_studio.core.errors import SessionError

    obj = expect_object(d, path)
    check_keys(obj, {"parent", "values"}, path)
    parent = get(obj, "parent", "str", path)
    values = get(obj, "values", "list", path)
    for i, v in enumerate(values):
        if not isinstance(v, (str, bool, int, float)):
            raise SessionError(f"expected a string, number or boolean, got {v!r}", f"{path}.values[{i}]")
    try:
        return Condition(parent, tuple(values))
    except SearchSpaceError as err:
        raise SessionError(str(err), path) from None


def parameter_from_dict(d: Any, path: str) -> Parameter:
    """Read one parameter; errors are :class:`SessionError` naming ``path``."""
    from lla_studio.core.errors import SessionError
    from lla_studio.core.schema import check_keys, expect_list, expect_object, get

    obj = expect_object(d, path)
    kind = get(obj, "type", "str", path)
    if kind not in _PARAM_KEYS:
        raise SessionError(f"unknown parameter type {kind!r} (use real, integer or choice)", f"{path}.type")
    check_keys(obj, _PARAM_KEYS[kind], path)
    name = get(obj, "name", "str", path)
    conditions = tuple(
        condition_from_dict(c, f"{path}.conditions[{i}]")
        for i, c in enumerate(expect_list(obj.get("conditions", []), f"{path}.conditions"))
    )
    try:
        if kind == "choice":
            return ChoiceParameter(
                name=name,
                choices=tuple(get(obj, "choices", "list", path)),
                default=get(obj, "default", "scalar?", path, None),
                conditions=conditions,
                inactive_value=get(obj, "inactive_value", "scalar?", path, None),
            )
        number = "int" if kind == "integer" else "number"
        cls = IntegerParameter if kind == "integer" else RealParameter
        return cls(
            name=name,
            low=get(obj, "low", number, path),
            high=get(obj, "high", number, path),
            log=get(obj, "log", "bool", path, False),
            default=get(obj, "default", f"{number}?", path, None),
            conditions=conditions,
            inactive_value=get(obj, "inactive_value", f"{number}?", path, None),
        )
    except SearchSpaceError as err:
        raise SessionError(str(err), path) from None


def search_space_from_dict(d: Any, path: str = "search_space") -> SearchSpace:
    """Read a search space ``{"parameters": [...]}``; errors name the JSON path."""
    from lla_studio.core.errors import SessionError
    from lla_studio.core.schema import check_keys, expect_list, expect_object

    obj = expect_object(d, path)
    check_keys(obj, {"parameters"}, path)
    if "parameters" not in obj:
        raise SessionError("missing required field", f"{path}.parameters")
    items = expect_list(obj["parameters"], f"{path}.parameters")
    params = [parameter_from_dict(p, f"{path}.parameters[{i}]") for i, p in enumerate(items)]
    names = [p.name for p in params]
    for i, n in enumerate(names):
        if n in names[:i]:
            raise SessionError(f"duplicate parameter name {n!r}", f"{path}.parameters[{i}].name")
    try:
        return SearchSpace(params)
    except SearchSpaceError as err:
        # Point at the parameter the message names, when it names one.
        for i, n in enumerate(names):
            if f"parameter {n!r}" in str(err):
                raise SessionError(str(err), f"{path}.parameters[{i}]") from None
        raise SessionError(str(err), path) from None
