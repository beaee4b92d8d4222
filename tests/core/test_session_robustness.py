"""The session reader refuses every bad input with one SessionError that names the JSON path (issue 12).

Each case here once escaped the reader as a RecursionError, ValueError, OverflowError, TypeError or
UnicodeEncodeError from deep inside, or was accepted and failed later (a run that crashed, a summary
that could not be printed, a session that could not be saved).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from lla_studio.cli import main
from lla_studio.core.errors import KernelGraphError, SearchSpaceError, SessionError
from lla_studio.core.kernels import KernelGraph, RBFNode, ScaleNode, format_kernel, parse_kernel
from lla_studio.core.objectives.benchmarks import check_benchmark_options
from lla_studio.core.schema import MAX_DEPTH
from lla_studio.core.session import dumps_session, load_session, loads_session, session_from_dict
from lla_studio.core.space import ChoiceParameter, Condition, SearchSpace
from lla_studio.core.specs import ObjectiveSpec, SurrogateSpec

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "resources" / "sessions"


def _doc(name: str = "branin") -> dict:
    return json.loads((SESSIONS / f"{name}.json").read_text())


def _text(name: str = "branin") -> str:
    return (SESSIONS / f"{name}.json").read_text()


def _refused(doc_or_text, path: str) -> SessionError:
    """The error for a document or text; its path is ``path`` (or below it) and it is one line."""
    read = loads_session if isinstance(doc_or_text, str) else session_from_dict
    with pytest.raises(SessionError) as info:
        read(doc_or_text)
    err = info.value
    assert type(err) is SessionError
    assert err.path == path or err.path.startswith((path + ".", path + "[")), (err.path, str(err))
    assert str(err).startswith(f"{err.path}: "), str(err)
    assert "\n" not in str(err)
    str(err).encode("utf-8")  # printable
    return err


def _nested(depth: int, leaf=0):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _round_trips(session) -> None:
    again = loads_session(dumps_session(session))
    assert again == session
    assert dumps_session(again) == dumps_session(session)


# ------------------------------------------------------------------ 1. depth, huge numbers, long chains
def test_deep_nesting_in_the_text_is_refused_before_parsing():
    text = _text().replace('"default": 2.5', '"default": ' + "[" * 1000 + "]" * 1000, 1)
    err = _refused(text, "search_space.parameters[0].default")
    assert f"nested more than {MAX_DEPTH} levels deep" in err.reason


def test_deep_nesting_through_the_dict_api_is_refused():
    doc = _doc()
    doc["search_space"]["parameters"][0]["default"] = _nested(1000)
    err = _refused(doc, "search_space.parameters[0].default")
    assert f"nested more than {MAX_DEPTH} levels deep" in err.reason


def test_a_self_containing_list_is_refused_not_a_recursion_error():
    doc = _doc()
    loop: list = []
    loop.append(loop)
    doc["objective"]["options"] = {"x": loop}
    _refused(doc, "objective.options.x")


def test_nesting_within_the_limit_is_read_normally():
    doc = _doc()
    doc["objective"] = {"type": "python", "target": "m:f", "options": {"deep": _nested(MAX_DEPTH - 4)}}
    _round_trips(session_from_dict(doc))


def test_an_integer_literal_of_5000_digits_is_refused_naming_the_path():
    text = _text().replace('"default": 2.5', '"default": ' + "1" * 5000, 1)
    err = _refused(text, "search_space.parameters[0].default")
    assert "5000 digits" in err.reason and len(str(err)) < 300


@pytest.mark.parametrize("digits", [310, 400, 4000])
def test_an_integer_beyond_float_range_is_refused_in_text_and_dict(digits):
    big = "1" + "0" * (digits - 1)
    text = _text().replace('"high": 10.0', f'"high": {big}', 1)
    err = _refused(text, "search_space.parameters[0].high")
    assert "out of range" in err.reason
    doc = _doc()
    doc["search_space"]["parameters"][0]["high"] = int(big)
    err = _refused(doc, "search_space.parameters[0].high")
    assert "out of range" in err.reason


def test_a_float_literal_beyond_float_range_is_refused_naming_the_path():
    text = _text().replace('"high": 10.0', '"high": 1e400', 1)
    err = _refused(text, "search_space.parameters[0].high")
    assert "1e400" in err.reason


@pytest.mark.parametrize("field", ["budget", "seed"])
def test_huge_integers_in_integer_fields_are_refused(field):
    doc = _doc()
    doc["loop"][field] = 10**400
    _refused(doc, f"loop.{field}")


@pytest.mark.parametrize(
    "section, field, value, match",
    [
        ("loop", "budget", 10**20, "must be at most 10000000"),
        ("loop", "batch_size", 10**9, "must be at most 10000000"),
        ("loop", "seed", 2**64, "< 2\\*\\*63"),
        ("acquisition", "raw_samples", 10**300, "must be at most 10000000"),
    ],
)
def test_counts_and_seeds_a_run_cannot_use_are_refused(section, field, value, match):
    import re

    doc = _doc()
    doc[section][field] = value
    err = _refused(doc, f"{section}.{field}")
    assert re.search(match, err.reason) and len(str(err)) < 200, err.reason


def test_integer_parameter_bounds_must_be_exact_in_float64():
    doc = _doc()
    doc["search_space"]["parameters"].append({"name": "n", "type": "integer", "low": 0, "high": 10**300})
    doc["objective"] = {"type": "manual"}
    err = _refused(doc, "search_space.parameters[2]")
    assert "2**53" in err.reason


def test_real_parameter_with_an_infinite_width_is_refused():
    doc = _doc()
    doc["search_space"]["parameters"][0].update(low=-1.7e308, high=1.7e308, default=0.0)
    err = _refused(doc, "search_space.parameters[0]")
    assert "high - low" in err.reason


def _chain(n: int, *, cycle: bool = False, reverse: bool = False) -> dict:
    params = [{"name": "c0", "type": "choice", "choices": ["on", "off"]}]
    for i in range(1, n):
        params.append({
            "name": f"c{i}", "type": "choice", "choices": ["on", "off"],
            "conditions": [{"parent": f"c{i - 1}", "values": ["on"]}],
        })
    if cycle:
        params[0]["conditions"] = [{"parent": f"c{n - 1}", "values": ["on"]}]
    if reverse:
        params.reverse()
    doc = _doc()
    doc["search_space"] = {"parameters": params}
    doc["objective"] = {"type": "manual"}
    return doc


@pytest.mark.parametrize("reverse", [False, True], ids=["parents-first", "children-first"])
def test_a_1000_long_condition_chain_is_accepted(reverse):
    session = session_from_dict(_chain(1000, reverse=reverse))
    space = session.search_space
    config = {f"c{i}": "on" for i in range(1000)}
    assert space.active_names(config) == set(config)
    config["c500"] = "off"
    assert space.active_names(config) == {f"c{i}" for i in range(501)}
    assert space.validate({f"c{i}": "on" for i in range(1000)}) == {f"c{i}": "on" for i in range(1000)}
    _round_trips(session)


def test_a_1000_long_condition_cycle_is_refused_with_a_short_message():
    err = _refused(_chain(1000, cycle=True), "search_space")
    assert "cycle of conditions" in err.reason
    assert "c0" in err.reason and "1000 parameters" in err.reason
    assert len(str(err)) < 400


def test_a_short_cycle_names_every_parameter():
    with pytest.raises(SearchSpaceError, match=r"cycle of conditions: a -> b -> a$"):
        SearchSpace([
            ChoiceParameter("a", ("u", "v"), conditions=(Condition("b", ("u",)),)),
            ChoiceParameter("b", ("u", "v"), conditions=(Condition("a", ("u",)),)),
        ])


def test_deep_nesting_inside_free_form_surrogate_options_is_refused():
    doc = _doc()
    doc["surrogate"] = {"type": "lla", "network": {"network": "mlp", "widths": [3], "extra": _nested(1000)}}
    _refused(doc, "surrogate.network.extra")
    with pytest.raises(SessionError, match=r"^surrogate\.network\.extra.*nested more than"):
        SurrogateSpec("lla", {"network": {"extra": _nested(1000)}})


# ------------------------------------------------------------------ 2. LLA network and settings
@pytest.mark.parametrize(
    "surrogate, path, match",
    [
        ({"network": "mlp"}, "surrogate.network", "expected an object, got a string"),
        ({"network": 3}, "surrogate.network", "expected an object, got an integer"),
        ({"network": [1]}, "surrogate.network", "expected an object, got a list"),
        ({"network": {"network": {"a": 1}}}, "surrogate.network", "network: unknown network type"),
        ({"network": {"network": ["mlp"]}}, "surrogate.network", "network: unknown network type"),
        ({"network": {"network": "mlp", "widths": [3], "activation": {"a": 1}}}, "surrogate.network",
         "activation: unknown activation"),
        ({"network": {"network": "mlp", "widths": [3], "activation": ["relu"]}}, "surrogate.network",
         "activation: unknown activation"),
        ({"network": {"network": "cnn", "image_shape": [2, 2], "channels": 3}}, "surrogate.network",
         "channels: expected a list of integers"),
        ({"network": {"network": "cnn", "image_shape": [8, 8], "dense": "32"}}, "surrogate.network",
         "dense: expected a list of integers"),
        ({"network": {"network": "cnn", "image_shape": 8}}, "surrogate.network", "image_shape: expected"),
        ({"settings": "fast"}, "surrogate.settings", "expected an object, got a string"),
        ({"settings": [1]}, "surrogate.settings", "expected an object, got a list"),
        ({"settings": 3}, "surrogate.settings", "expected an object, got an integer"),
        ({"settings": {"subset_of_weights": {"a": 1}}}, "surrogate.settings", "subset_of_weights: expected one of"),
        ({"settings": {"tuning": ["none"]}}, "surrogate.settings", "tuning: expected one of"),
        ({"settings": {"prior_precision_bounds": {"a": 1, "b": 2}}}, "surrogate.settings",
         "prior_precision_bounds: expected \\[low, high\\]"),
        ({"settings": {"noise_std_bounds": [1, 1e308, 3]}}, "surrogate.settings", "noise_std_bounds: expected"),
    ],
)
def test_bad_lla_options_are_session_errors_naming_the_field(surrogate, path, match):
    doc = _doc()
    doc["surrogate"] = {"type": "lla", **surrogate}
    err = _refused(doc, path)
    assert err.path == path
    import re

    assert re.search(match, err.reason), err.reason


def test_huge_numbers_in_lla_settings_are_refused_through_the_python_api():
    from lla_studio.core.surrogates.lla import LLASettings, LLASettingsError

    with pytest.raises(LLASettingsError, match=r"^prior_precision: must be finite, got an integer of 401 digits"):
        LLASettings(prior_precision=10**400)
    with pytest.raises(LLASettingsError, match=r"^noise_std_bounds\[1\]: must be finite"):
        LLASettings(noise_std_bounds=(1, 10**400))


# ------------------------------------------------------------------ 3. accepted but wrong
def test_unknown_fields_of_a_gp_surrogate_are_refused():
    doc = _doc()
    doc["surrogate"] = {"type": "gp", "kernal": {"kernel": "rbf", "features": ["x1"]}}
    err = _refused(doc, "surrogate")
    assert "unknown field 'kernal'" in err.reason


@pytest.mark.parametrize(
    "objective, path, match",
    [
        ({"name": "brainin"}, "objective.name", r"unknown benchmark 'brainin' \(known: ackley, branin, cnn-digits, digits"),
        ({"name": "branin", "options": {"dim": "five"}}, "objective.options.dim", "must be an integer"),
        ({"name": "branin", "options": {"dim": 3}}, "objective.options.dim", "branin is 2-dimensional"),
        ({"name": "ackley", "options": {"dim": 0}}, "objective.options.dim", ">= 1"),
        ({"name": "ackley", "options": {"dim": 2.5}}, "objective.options.dim", "must be an integer"),
        ({"name": "ackley", "options": {"dim": True}}, "objective.options.dim", "must be an integer"),
        ({"name": "ackley", "options": {"dim": 10**12}}, "objective.options.dim", "at most"),
        ({"name": "branin", "options": {"noise_std": "x"}}, "objective.options.noise_std", "finite number >= 0"),
        ({"name": "branin", "options": {"noise_std": -1}}, "objective.options.noise_std", "finite number >= 0"),
        ({"name": "branin", "options": {"nois_std": 0.1}}, "objective.options", r"unknown option 'nois_std'"),
        ({"name": "digits", "options": {"target": 12}}, "objective.options", "target"),
    ],
)
def test_benchmark_names_and_options_are_checked_at_read_time(objective, path, match):
    import re

    doc = _doc()
    doc["objective"] = {"type": "benchmark", "direction": "minimize", **objective}
    err = _refused(doc, path)
    assert err.path == path
    assert re.search(match, err.reason), err.reason


def test_benchmark_option_check_accepts_what_the_benchmarks_take():
    check_benchmark_options("ackley", {"dim": 3, "noise_std": 0.1})
    check_benchmark_options("ackley", {"dim": 3.0})
    check_benchmark_options("branin", {"dim": 2, "noise_std": None})
    check_benchmark_options("hartmann6", {})
    doc = _doc("ackley5")
    assert session_from_dict(doc).objective.options["dim"] == 5


def test_python_objective_noise_option_is_checked():
    doc = _doc()
    doc["objective"] = {"type": "python", "target": "m:f", "options": {"noise_std": "loud", "anything": [1, "x"]}}
    _refused(doc, "objective.options.noise_std")


def test_choices_equal_as_numbers_collide_but_booleans_stay_apart():
    doc = _doc()
    doc["objective"] = {"type": "manual"}
    doc["search_space"]["parameters"].append({"name": "c", "type": "choice", "choices": [1, 1.0]})
    err = _refused(doc, "search_space.parameters[2]")
    assert "duplicate choice 1.0" in err.reason
    # JSON's true and 1 are different values: both are kept, and they stay apart through a round trip
    doc["search_space"]["parameters"][2]["choices"] = [True, 1, "1"]
    session = session_from_dict(doc)
    p = session.search_space["c"]
    assert [p.index(v) for v in (True, 1, "1")] == [0, 1, 2]
    _round_trips(session)


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d.update(name="bad\ud800"), "name"),
        (lambda d: d.update(description="x\udfff"), "description"),
        (lambda d: d["search_space"]["parameters"][0].update(name="x\ud800"), "search_space.parameters[0].name"),
        (lambda d: d["objective"].update(options={"k\ud800": 1}), "objective.options"),
        (lambda d: d["objective"].update(type="python", name=None, target="m:f", options={"s": ["\ud800"]}),
         "objective.options.s[0]"),
    ],
)
def test_strings_that_are_not_unicode_text_are_refused(mutate, path):
    doc = _doc()
    mutate(doc)
    err = _refused(doc, path)
    assert "UTF-8" in err.reason
    text = json.dumps(doc)  # "\ud800" escapes: the same through the text reader
    _refused(text, path)


def test_non_finite_numbers_in_objective_options_are_refused():
    for bad in (float("nan"), float("inf"), -float("inf")):
        doc = _doc()
        doc["objective"]["options"] = {"noise_std": bad}
        _refused(doc, "objective.options.noise_std")
        doc["objective"] = {"type": "python", "target": "m:f", "options": {"scale": [1.0, bad]}}
        _refused(doc, "objective.options.scale[1]")
    with pytest.raises(SessionError, match=r"^objective\.options\.scale: expected a finite number"):
        ObjectiveSpec(type="python", target="m:f", options={"scale": float("nan")})


def test_nan_literal_is_refused_naming_its_path():
    text = _text().replace('"trials": []', '"trials": [{"id": 0, "status": "proposed", "config": {"x1": NaN, "x2": 2}}]')
    err = _refused(text, "trials[0].config.x1")
    assert "NaN is not valid JSON" in err.reason


def test_numpy_arrays_are_refused_and_numpy_scalars_converted():
    doc = _doc()
    doc["search_space"]["parameters"][0]["default"] = np.array([1.0])
    err = _refused(doc, "search_space.parameters[0].default")
    assert "numpy array" in err.reason
    doc = _doc()
    doc["objective"]["options"] = {"noise_std": np.array(0.1)}
    _refused(doc, "objective.options.noise_std")
    doc = _doc()
    doc["search_space"]["parameters"][0]["default"] = np.float64(1.5)
    doc["loop"]["budget"] = np.int64(12)
    doc["search_space"]["parameters"][0]["log"] = np.bool_(False)
    doc["objective"]["options"] = {"noise_std": np.float32(0.5)}
    session = session_from_dict(doc)
    assert session.search_space["x1"].default == 1.5 and type(session.loop.budget) is int
    assert type(session.objective.options["noise_std"]) is float
    _round_trips(session)


@pytest.mark.parametrize("value", [{1, 2}, b"bytes", object(), 1j])
def test_other_python_objects_are_refused_naming_the_path(value):
    doc = _doc()
    doc["objective"]["options"] = {"x": value}
    _refused(doc, "objective.options.x")


def test_non_string_keys_are_refused():
    doc = _doc()
    doc["objective"]["options"] = {1: 2}
    _refused(doc, "objective.options")


# ------------------------------------------------------------------ 4. BOM
def test_a_session_file_with_a_utf8_bom_is_read(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (SESSIONS / "branin.json").read_bytes())
    assert load_session(path) == load_session(SESSIONS / "branin.json")
    assert loads_session("\ufeff" + _text()) == load_session(SESSIONS / "branin.json")


# ------------------------------------------------------------------ 5. kernel text and graphs
def test_kernel_text_nested_3000_parentheses_is_a_kernel_graph_error():
    with pytest.raises(KernelGraphError, match=r"^col \d+: kernel nested more than \d+ levels deep"):
        parse_kernel("(" * 3000 + "rbf(x1)" + ")" * 3000)
    with pytest.raises(KernelGraphError, match="nested more than"):
        parse_kernel("scale(" * 3000 + "rbf(x1)" + ")" * 3000)
    g = parse_kernel("(" * 20 + "scale(" * 20 + "rbf(x1)" + ")" * 40)
    assert parse_kernel(format_kernel(g)) == g


def test_kernel_graphs_nested_very_deeply_are_kernel_graph_errors():
    d: dict = {"kernel": "rbf", "features": ["x1"]}
    for _ in range(3000):
        d = {"kernel": "scale", "child": d}
    with pytest.raises(KernelGraphError, match=r"^kernel(\.child)+: kernel graph nested more than"):
        KernelGraph.from_dict(d)
    node = RBFNode(("x1",))
    for _ in range(3000):
        node = ScaleNode(node)
    with pytest.raises(KernelGraphError, match="nested more than"):
        KernelGraph(node)


def test_cv_with_a_kernel_nested_3000_deep_is_one_error_line(capsys):
    text = "(" * 3000 + "rbf(x1)" + ")" * 3000
    assert main(["cv", str(SESSIONS / "branin.json"), "--kernel", text]) == 2
    out, err = capsys.readouterr()
    assert err == "lla-studio: error: --kernel #1: col 65: kernel nested more than 64 levels deep\n"


def test_a_deep_kernel_in_a_session_is_a_session_error():
    d: dict = {"kernel": "rbf", "features": ["x1"]}
    for _ in range(40):
        d = {"kernel": "sum", "children": [d]}
    doc = _doc()
    doc["kernel"] = d
    _refused(doc, "kernel")


# ------------------------------------------------------------------ the CLI: one line, exit 2
@pytest.mark.parametrize(
    "edit, path",
    [
        (lambda t: t.replace('"default": 2.5', '"default": ' + "[" * 1000 + "]" * 1000, 1), "search_space.parameters[0].default"),
        (lambda t: t.replace('"default": 2.5', '"default": ' + "1" * 5000, 1), "search_space.parameters[0].default"),
        (lambda t: t.replace('"high": 10.0', '"high": 1' + "0" * 400, 1), "search_space.parameters[0].high"),
        (lambda t: t.replace('"name": "Branin"', '"name": "bad\\ud800"', 1), "name"),
        (lambda t: t.replace('"direction"', '"options": {"dim": "five"}, "direction"', 1), "objective.options.dim"),
    ],
)
def test_validate_prints_one_error_line_and_exits_2(tmp_path, capsys, edit, path):
    bad = tmp_path / "bad.json"
    bad.write_text(edit(_text()), encoding="utf-8")
    assert main(["validate", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"lla-studio: error: {path}") and err.count("\n") == 1, err
