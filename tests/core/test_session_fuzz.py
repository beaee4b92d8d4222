"""Fuzz the session reader: whatever the document, it returns a Session or raises one of our errors.

Each example starts from a shipped session (``resources/sessions/*.json``), walks its JSON tree, picks
nodes and mutates them: deleted, duplicated, renamed and retyped keys; huge, tiny and non-finite
numbers; deep nesting; strings that are not Unicode text; numpy values (dict API only); whole
sections swapped for other plausible ones (an LLA surrogate, another benchmark); bad kernels and
conditions (cycles, unknown parents, impossible values). The result goes to :func:`session_from_dict`
and, as JSON text with text-level damage on top (a BOM, a cut, a stray character, a repeated key), to
:func:`loads_session`. Either may refuse it with an :class:`LLAStudioError` (one printable line);
nothing else may escape, and an accepted session must survive ``dumps_session`` / ``loads_session``
unchanged and print its summary.

``LLA_FUZZ_EXAMPLES`` sets the number of examples (default 2000, what CI runs). The run is
derandomized and uses no example database, so every run of a given size tries the same documents.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.session import Session, dumps_session, loads_session, session_from_dict

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "resources" / "sessions").glob("*.json"))}
EXAMPLES = int(os.environ.get("LLA_FUZZ_EXAMPLES", "2000"))

# ---------------------------------------------------------------------- building blocks
_BIG = 10**400  # no float64 holds it
_INF = float("inf")
_NAN = float("nan")
_WORDS = [
    "", " ", "x1", "x2", "type", "real", "integer", "choice", "gp", "lla", "mlp", "cnn", "relu", "branin",
    "ackley", "digits", "hartmann6", "forrester", "benchmark", "python", "manual", "minimize", "maximize", "log",
    "one_hot", "combine", "sum", "product", "scale", "rbf", "matern", "gamma", "lognormal", "completed",
    "failed", "proposed", "log_product", "children", "child", "features", "network", "settings", "sgd", "adam",
    "bad\ud800", "\udfff", "é", "\u0000", "a\nb", "n0", "n1", "m:f", "none", "posthoc", "all", "last_layer",
]
_EXTREME = [_BIG, -_BIG, 10**308, -(10**308), 2**64, 2**53 + 1, 1e308, -1.7976931348623157e308, 5e-324,
            _NAN, _INF, -_INF, 0, -1, 0.0, -0.0]
_PLAIN = [1, 2, 3, 5, 8, 64, 0.5, -0.5, 1e-300, 1.0, 2.5, 3.0, 1e6, True, False]
_KERNELS = [
    {"kernel": "rbf", "features": ["x1"]},
    {"kernel": "matern", "nu": 2.5, "features": ["x1", "x2"]},
    {"kernel": "matern", "nu": 2.0, "features": ["x1"]},
    {"kernel": "scale", "child": {"kernel": "rbf", "features": ["x2"]}, "outputscale": _BIG},
    {"kernel": "sum", "children": []},
    {"kernel": "sum", "children": [{"kernel": "rbf", "features": ["x1"], "id": "a"},
                                   {"kernel": "rbf", "features": ["x2"], "id": "a"}]},
    {"kernel": "product", "children": [{"kernel": "linear", "features": ["nope"]}]},
    {"kernel": "rbf", "features": ["x1"], "lengthscale_prior": {"prior": "gamma", "concentration": _BIG, "rate": 1}},
    {"kernel": "rbf", "features": ["x1"], "lengthscale_prior": {"prior": "lognormal", "loc": 0, "scale": 1}},
    {"kernel": "rq", "features": ["x1"], "alpha": -1, "lengthscale": 0.5},
    {"kernel": "periodic", "features": ["x2"], "period": 2.0, "ard": False},
    {"kernel": "rbf", "features": "x1"},
    {"kernel": {"a": 1}},
    {"kernel": ["rbf"], "features": ["x1"]},
]
# Plausible whole sections: they get the reader past the first checks to the deeper ones.
_SECTIONS: dict[str, list[Any]] = {
    "surrogate": [
        {"type": "lla"},
        {"type": "lla", "network": {"network": "mlp", "widths": [4, 4], "activation": "tanh"}},
        {"type": "lla", "network": {"network": "cnn", "image_shape": [2, 1], "channels": [2], "dense": [3],
                                    "kernel_size": 3, "pool": False}},
        {"type": "lla", "settings": {"tuning": "none", "max_epochs": 3, "prior_precision_bounds": [0.1, 10.0],
                                     "subset_of_weights": "last_layer", "optimizer": "adam"}},
        {"type": "gp"},
        {"type": "gp", "kernal": {"kernel": "rbf", "features": ["x1"]}},
    ],
    "objective": [
        {"type": "benchmark", "name": "branin", "options": {"noise_std": 0.1}},
        {"type": "benchmark", "name": "ackley", "options": {"dim": 2}},
        {"type": "benchmark", "name": "digits", "direction": "maximize", "options": {"target": 3, "seed": 0}},
        {"type": "benchmark", "name": "forrester", "options": {"dim": 1}},
        {"type": "python", "target": "m:f", "timeout_s": 5, "options": {"noise_std": 0.0, "free": [1, {"a": "b"}]}},
        {"type": "manual", "direction": "maximize"},
    ],
    "transforms": [
        [{"step": "log", "features": ["x1"]}],
        [{"step": "affine", "feature": "x1", "scale": 2.0, "shift": 1.0, "name": "y"}],
        [{"step": "combine", "op": "sum", "features": ["x1", "x2"], "name": "s", "low": -100, "high": 100}],
        [{"step": "combine", "op": "ratio", "features": ["x1", "x2"], "name": "r"}],
        [{"step": "rename", "mapping": {"x1": "a"}}, {"step": "drop", "features": ["a"]}],
    ],
    "trials": [
        [{"id": 0, "status": "completed", "value": 1.0, "config": {"x1": 1.0, "x2": 2.0}}],
        [{"id": 0, "status": "failed", "message": "boom", "config": {"x1": 1.0, "x2": 2.0}, "seconds": 0.5}],
        [{"id": 0, "status": "proposed", "source": "model", "config": {}}],
    ],
    "loop": [{"budget": 5, "initial_design": 2, "batch_size": 2, "seed": 3}],
    "acquisition": [{"type": "ucb", "beta": 0.5}, {"type": "thompson", "thompson_candidates": 16}],
    "kernel": _KERNELS,
}
# where a node is picked: each section about as often as its share of what there is to check (the
# four header fields together as often as the loop section)
_SECTION_WEIGHTS = [
    "search_space", "search_space", "search_space", "kernel", "kernel", "surrogate", "surrogate",
    "objective", "objective", "transforms", "transforms", "trials", "trials", "loop", "acquisition", "header",
]
_HEADER = ("format", "version", "name", "description")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?')


def _nested(depth: int, leaf: Any = 0, kind: str = "list") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every node of a JSON tree as a tuple of keys / indices, ``prefix`` (the node itself) first."""
    out = [prefix]
    stack = [(node, prefix)]
    while stack:
        value, here = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in items:
            out.append(here + (k,))
            stack.append((v, here + (k,)))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _parameter_names(doc: Any) -> list[str]:
    space = doc.get("search_space") if isinstance(doc, dict) else None
    params = space.get("parameters") if isinstance(space, dict) else None
    if not isinstance(params, list):
        return []
    return [p["name"] for p in params if isinstance(p, dict) and isinstance(p.get("name"), str)]


def _node_path(rnd: random.Random, doc: Any) -> tuple:
    """A node of ``doc``: first a section (by ``_SECTION_WEIGHTS``), then a node inside it, a leaf
    two times in three. Picking among all nodes at once would nearly always land in the long lists
    of parameters and trials and hardly ever in the surrogate, objective or loop sections."""
    if not isinstance(doc, dict) or rnd.randint(0, 40) == 0:
        return ()
    header = [k for k in _HEADER if k in doc]
    present = [s for s in _SECTION_WEIGHTS if s in doc or (s == "header" and header)]
    present += sorted(set(doc) - set(_SECTION_WEIGHTS) - set(_HEADER))
    if not present:
        return ()
    section = rnd.choice(present)
    if section == "header":
        section = rnd.choice(header)
    paths = _paths(doc[section], (section,))
    leaves = [p for p in paths if not isinstance(_get(doc, p), (dict, list))]
    if leaves and rnd.randint(0, 2) > 0:
        return rnd.choice(leaves)
    return rnd.choice(paths)


def _replacement(rnd: random.Random, doc: Any, old: Any, numpy_ok: bool) -> Any:
    """A value to put in place of ``old``."""
    # like for like (a number for a number, a string for a string) half the time: that gets past the
    # type checks to the range and consistency checks behind them
    if isinstance(old, (int, float)) and not isinstance(old, bool) and rnd.random() < 0.5:
        return rnd.choice(_EXTREME if rnd.random() < 0.5 else _PLAIN)
    if isinstance(old, str) and rnd.random() < 0.5:
        return rnd.choice(_WORDS + _parameter_names(doc))
    kind = rnd.choice([
        "extreme", "plain", "word", "null", "empty", "nested", "nested", "perturb", "perturb", "copy", "kernel",
        "numpy", "list_of", "text",
    ])
    if kind == "extreme":
        return rnd.choice(_EXTREME)
    if kind == "plain":
        return rnd.choice(_PLAIN)
    if kind == "word":
        return rnd.choice(_WORDS + _parameter_names(doc))
    if kind == "null":
        return None
    if kind == "empty":
        return rnd.choice([[], {}, "", [[]], [{}], {"": None}])
    if kind == "nested":
        depth = rnd.choice([30, 58, 62, 63, 64, 65, 100, 300])
        leaf = old if not isinstance(old, (dict, list)) else 0
        return _nested(depth, leaf, rnd.choice(["list", "dict"]))
    if kind == "perturb":
        if isinstance(old, bool):
            return not old
        if isinstance(old, (int, float)):
            op = rnd.choice(["neg", "x10", "x1e300", "plus1", "minus1", "float", "int", "str", "zero"])
            try:
                return {
                    "neg": lambda: -old, "x10": lambda: old * 10, "x1e300": lambda: old * 1e300,
                    "plus1": lambda: old + 1, "minus1": lambda: old - 1, "float": lambda: float(old),
                    "int": lambda: int(old), "str": lambda: str(old), "zero": lambda: 0 * old,
                }[op]()
            except (OverflowError, ValueError):
                return old
        if isinstance(old, str):
            op = rnd.choice(["upper", "append", "strip", "dup", "list"])
            return {"upper": old.upper(), "append": old + "_", "strip": old[1:], "dup": old + old, "list": [old]}[op]
        if isinstance(old, list):
            return old[::-1] if rnd.random() < 0.5 else old + old
        if isinstance(old, dict):
            return list(old.values())
        return old
    if kind == "copy":  # another node of the same document, e.g. a parameter where a kernel goes
        return copy.deepcopy(_get(doc, _node_path(rnd, doc)))
    if kind == "kernel":
        return copy.deepcopy(rnd.choice(_KERNELS))
    if kind == "numpy" and numpy_ok:
        return rnd.choice([np.float64(1.5), np.int64(3), np.bool_(True), np.array([1.0]), np.array(2.0),
                                     np.float32(_NAN), np.int32(-1), np.uint64(2**64 - 1), np.str_("x1")])
    if kind == "list_of":
        return [copy.deepcopy(old)] * rnd.randint(0, 3)
    return "".join(rnd.choice("ab\u00e9\u4e2d\U0001f600\ud800\x00\n\"\\ ") for _ in range(rnd.randint(0, 8)))


def _add_condition(rnd: random.Random, doc: Any) -> None:
    """A condition on a random parameter, on a random parent: cycles, unknown parents, bad values."""
    params = doc.get("search_space", {}).get("parameters") if isinstance(doc.get("search_space"), dict) else None
    if not isinstance(params, list) or not params:
        return
    p = rnd.choice(params)
    if not isinstance(p, dict):
        return
    parents = _parameter_names(doc) or ["x1"]
    values = ["a", "sgd", "adam", "relu", 0, 1, 2, 8, True, 1.5, None, _BIG]
    cond = {"parent": rnd.choice(parents + ["ghost"]), "values": [rnd.choice(values) for _ in range(rnd.randint(0, 3))]}
    if not isinstance(p.get("conditions"), list):
        p["conditions"] = []
    p["conditions"].append(cond)


def _kernel_edit(rnd: random.Random, doc: Any) -> None:
    """Wrap, replace or strip a node of the kernel graph (or put a graph where there was none)."""
    kernel = doc.get("kernel")
    targets = []
    if isinstance(kernel, (dict, list)):
        targets = [("kernel",) + p for p in _paths(kernel) if isinstance(_get(kernel, p), dict)]
    path = rnd.choice(targets or [("kernel",)])
    parent, key = _get(doc, path[:-1]), path[-1]
    old = parent.get(key) if isinstance(parent, dict) else parent[key]
    how = rnd.choice(["wrap_scale", "wrap_sum", "snippet", "drop_field", "deep"])
    if how == "wrap_scale":
        parent[key] = {"kernel": "scale", "child": old}
    elif how == "wrap_sum":
        parent[key] = {"kernel": "sum", "children": [old, copy.deepcopy(old)]}
    elif how == "snippet":
        parent[key] = copy.deepcopy(rnd.choice(_KERNELS))
    elif how == "deep":
        node = copy.deepcopy(old) if isinstance(old, dict) else {"kernel": "rbf", "features": ["x1"]}
        for _ in range(rnd.choice([10, 20, 31, 32, 33, 40, 200])):
            node = {"kernel": "scale", "child": node}
        parent[key] = node
    elif isinstance(old, dict) and old:
        del old[rnd.choice(sorted(old))]


def _mutate_once(rnd: random.Random, doc: Any, numpy_ok: bool) -> Any:
    """One mutation (returns the new document; ``doc`` may be changed in place)."""
    action = rnd.choice(["replace", "replace", "replace", "replace", "delete", "duplicate", "rename",
                                   "add_key", "condition", "kernel", "section", "section"])
    if action == "condition":
        _add_condition(rnd, doc)
        return doc
    if action == "kernel":
        _kernel_edit(rnd, doc)
        return doc
    if action == "section":
        name = rnd.choice(sorted(_SECTIONS))
        doc[name] = copy.deepcopy(rnd.choice(_SECTIONS[name]))
        return doc
    path = _node_path(rnd, doc)
    if not path:  # the root
        if action in ("replace", "delete"):
            return rnd.choice([[], None, "session", 1, [doc]])
        node = doc
    else:
        node = _get(doc, path)
    parent = _get(doc, path[:-1]) if path else None
    if action == "replace" and path:
        parent[path[-1]] = _replacement(rnd, doc, node, numpy_ok)
    elif action == "delete" and path:
        del parent[path[-1]]
    elif action == "duplicate" and path:
        if isinstance(parent, list):
            parent.insert(path[-1], copy.deepcopy(node))
        else:
            parent[f"{path[-1]}_"] = copy.deepcopy(node)  # a near-copy of the key: an unknown field
    elif action == "rename" and path and isinstance(path[-1], str):
        new = rnd.choice([path[-1] + "_", path[-1].upper(), "kernal", "\ud800", "", "type"])
        parent[new] = parent.pop(path[-1])
    elif action == "add_key" and isinstance(node, dict):
        node[rnd.choice(_WORDS)] = _replacement(rnd, doc, None, numpy_ok)
    return doc


def mutated_document(rnd: random.Random, numpy_ok: bool = True) -> Any:
    """A shipped session after one to four mutations; one time in ten, then a node nested thousands
    of levels deep (last, since the mutations deep-copy nodes, recursively)."""
    doc = copy.deepcopy(SHIPPED[rnd.choice(sorted(SHIPPED))])
    for _ in range(rnd.randint(1, 4)):
        doc = _mutate_once(rnd, doc, numpy_ok)
        if not isinstance(doc, dict):
            return doc
    if rnd.randrange(10) == 0:
        path = _node_path(rnd, doc)
        if path:
            _get(doc, path[:-1])[path[-1]] = _nested(rnd.choice([1000, 5000]), 0, rnd.choice(["list", "dict"]))
    return doc


def _text_damage(rnd: random.Random, text: str) -> str:
    """JSON text with (sometimes) one text-level defect."""
    how = rnd.choice(["none", "none", "none", "bom", "truncate", "insert", "delete", "duplicate_key", "flip"])
    if how == "none" or not text:
        return text
    at = rnd.randrange(len(text))
    if how == "bom":
        return "\ufeff" + text
    if how == "truncate":
        return text[:at]
    if how == "insert":
        return text[:at] + rnd.choice([
            "[", "]", "{", "}", '"', ",", ":", "\\", "1e999", "-", "NaN", "Infinity", "0" * 400, "9" * 5000,
            "\\ud800", "\ufeff", "true", "[" * 200, "[" * 70 + "]" * 70, "[" * 5000, '{"k":' * 2000,
        ]) + text[at:]
    if how == "delete":
        return text[:at] + text[at + 1:]
    if how == "duplicate_key":  # a key given twice (the JSON reader keeps the last)
        keys = [m.start() for m in _STRING.finditer(text) if m.group(1)]
        if not keys:
            return text
        i = rnd.choice(keys)
        key = _STRING.match(text, i).group(0)
        return text[:i] + key + ' "dup", ' + text[i:]
    return text[:at] + rnd.choice(list('[]{}",:0123456789eE.-+ntf')) + text[at + 1:]


def _check(read: Any, value: Any) -> None:
    try:
        session = read(value)
    except LLAStudioError as err:
        message = str(err)
        assert "\n" not in message, message
        message.encode("utf-8")  # printable on a UTF-8 terminal
        return
    assert isinstance(session, Session)
    text = dumps_session(session)
    again = loads_session(text)
    assert again == session
    assert dumps_session(again) == text
    session.summary().encode("utf-8")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(st.randoms(use_true_random=False))
def test_mutated_sessions_are_read_or_refused_with_our_errors(rnd):
    doc = mutated_document(rnd)
    _check(session_from_dict, doc)
    try:
        text = json.dumps(doc, indent=rnd.choice([None, 2]))
    except (TypeError, ValueError, RecursionError):
        return  # numpy values and nesting too deep for json.dumps have no text; the dict API saw them
    _check(loads_session, _text_damage(rnd, text))
