"""Benchmarks against botorch.test_functions; user objectives and their failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.test_functions import Ackley, Branin, Hartmann

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives import get_benchmark, load_callable, make_objective
from lla_studio.core.specs import ObjectiveSpec


@pytest.mark.parametrize(
    "name, dim, reference",
    [("branin", None, Branin()), ("hartmann6", None, Hartmann(dim=6)), ("ackley", 5, Ackley(dim=5)), ("ackley", 3, Ackley(dim=3))],
)
def test_benchmarks_equal_botorch(name, dim, reference):
    bench = get_benchmark(name, dim)
    rng = np.random.default_rng(0)
    lo = np.array([b[0] for b in bench.bounds])
    hi = np.array([b[1] for b in bench.bounds])
    X = lo + (hi - lo) * rng.random((200, bench.dim))
    ref = reference.evaluate_true(torch.as_tensor(X, dtype=torch.float64)).numpy()
    # botorch stores Hartmann's constants in float32: agreement to ~1e-8 is what float32 allows
    np.testing.assert_allclose(bench.evaluate(X), ref, rtol=1e-6, atol=1e-7)
    assert math.isclose(bench.optimum, reference.optimal_value, abs_tol=1e-5)
    for x in bench.optimizers:
        assert math.isclose(float(bench.evaluate(np.array([x]))[0]), bench.optimum, abs_tol=1e-4)
    config = {n: float(v) for n, v in zip(bench.parameter_names, X[0])}
    assert bench(config) == pytest.approx(ref[0], rel=1e-6, abs=1e-7)


def test_forrester_closed_form_minimum():
    bench = get_benchmark("forrester")
    x = np.linspace(0, 1, 200001)[:, None]
    y = bench.evaluate(x)
    assert math.isclose(y.min(), bench.optimum, abs_tol=1e-8)
    assert abs(x[y.argmin(), 0] - bench.optimizers[0][0]) < 1e-5


def test_unknown_benchmark_and_bad_dim():
    with pytest.raises(ObjectiveError, match="unknown benchmark 'rosenbrok'"):
        get_benchmark("rosenbrok")
    with pytest.raises(ObjectiveError, match="'branin' is 2-dimensional, got dim=3"):
        get_benchmark("branin", 3)


def test_user_objective_from_file_and_module(tmp_path):
    (tmp_path / "obj.py").write_text("def f(c):\n    return (c['x'] - 0.25) ** 2\n")
    fn = load_callable("obj.py:f", base_dir=tmp_path)
    assert fn({"x": 0.75}) == 0.25
    assert load_callable("math:hypot")(3, 4) == 5  # any importable module works
    obj = make_objective(ObjectiveSpec(type="python", target="obj.py:f"), base_dir=tmp_path)
    assert obj({"x": 1.25}) == 1.0


@pytest.mark.parametrize(
    "target, match",
    [
        ("no_such_module_xyz:f", r"cannot import module 'no_such_module_xyz'"),
        ("math:no_such_function", r"module 'math' has no attribute 'no_such_function'"),
        ("math:pi", r"'pi' is not callable"),
        ("missing.py:f", r"no such file 'missing.py'"),
        ("just_a_name", r"expected 'package.module:function'"),
        ("broken.py:f", r"importing broken.py raised ZeroDivisionError"),
    ],
)
def test_objective_targets_that_cannot_be_imported(tmp_path, target, match):
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    with pytest.raises(ObjectiveError, match=match):
        load_callable(target, base_dir=tmp_path)


def test_objective_failures_are_objective_errors(tmp_path):
    (tmp_path / "bad.py").write_text(
        "import math, time\n"
        "def raises(c):\n    raise ValueError('the lab is closed')\n"
        "def nan(c):\n    return math.nan\n"
        "def text(c):\n    return 'fast'\n"
        "def slow(c):\n    time.sleep(30)\n    return 1.0\n"
    )
    for name, match in [("raises", r"objective raised ValueError: the lab is closed \(bad.py:3\)"), ("nan", r"returned nan"), ("text", r"returned a str, expected a number: 'fast'")]:
        obj = make_objective(ObjectiveSpec(type="python", target=f"bad.py:{name}"), base_dir=tmp_path)
        with pytest.raises(ObjectiveError, match=match):
            obj({"x": 0.0})
    obj = make_objective(ObjectiveSpec(type="python", target="bad.py:slow", timeout_s=1.0), base_dir=tmp_path)
    with pytest.raises(ObjectiveError, match=r"timed out after 1 s"):
        obj({"x": 0.0})


RESULTS = """
import os, signal, sys

import numpy as np

def huge(c):
    return 10 ** 400

def none(c):
    pass

def text(c):
    return "1.5"

def flag(c):
    return True

def np_flag(c):
    return np.bool_(False)

def texts(c):
    return np.array(["1.5"])

def pair(c):
    return [1.0, 2.0]

def np_float(c):
    return np.float32(2.5)

def one_element(c):
    return np.array([[3]])

def exits(c):
    sys.exit(3)

def exits_plain(c):
    sys.exit()

def interrupted(c):
    raise KeyboardInterrupt

def dies(c):
    os._exit(1)

def killed(c):
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _objective(tmp_path, name, timeout_s=None):
    (tmp_path / "results.py").write_text(RESULTS)
    return make_objective(ObjectiveSpec(type="python", target=f"results.py:{name}", timeout_s=timeout_s), base_dir=tmp_path)


REFUSED = [
    ("huge", r"^objective returned an int too large for a float \(401 digits\)$"),
    ("none", r"^objective returned None, expected a number \(a missing return\?\)$"),
    ("text", r"^objective returned a str, expected a number: '1\.5'$"),
    # a bool is refused: a comparison returned by mistake, not a measurement (True would count as 1.0)
    ("flag", r"^objective returned a bool, expected a number: True$"),
    ("np_flag", r"^objective returned a bool, expected a number: False$"),
    ("texts", r"^objective returned an array of str, expected a number$"),
    ("pair", r"^objective returned 2 values; expected one number$"),
    ("exits", r"^objective called sys\.exit\(3\)$"),
    ("exits_plain", r"^objective called sys\.exit\(\)$"),
]


@pytest.mark.parametrize("name, match", REFUSED)
def test_objective_results_that_are_not_one_number_fail_with_a_message(tmp_path, name, match):
    obj = _objective(tmp_path, name)
    with pytest.raises(ObjectiveError, match=match):
        obj({"x": 0.0})


def test_numeric_results_are_accepted(tmp_path):
    assert _objective(tmp_path, "np_float")({"x": 0.0}) == 2.5
    assert _objective(tmp_path, "one_element")({"x": 0.0}) == 3.0


def test_keyboard_interrupt_in_the_objective_is_the_user_interrupting(tmp_path):
    # documented choice: it stops the run (the CLI saves and exits 130), it is not a failed trial
    with pytest.raises(KeyboardInterrupt):
        _objective(tmp_path, "interrupted")({"x": 0.0})


def test_objective_in_a_child_process_reports_like_in_process(tmp_path):
    """With a timeout the objective runs in a child process: the same messages, and a child that
    dies is reported as such at once instead of after the timeout (300 s here: a hang guard)."""
    for name, match in [
        ("exits", r"^objective called sys\.exit\(3\)$"),
        ("none", r"^objective returned None, expected a number"),
        ("dies", r"^objective process exited with code 1$"),
        ("killed", r"^objective process was killed by signal SIGKILL$"),
    ]:
        obj = _objective(tmp_path, name, timeout_s=300)
        with pytest.raises(ObjectiveError, match=match):
            obj({"x": 0.0})
    with pytest.raises(KeyboardInterrupt):
        _objective(tmp_path, "interrupted", timeout_s=300)({"x": 0.0})
