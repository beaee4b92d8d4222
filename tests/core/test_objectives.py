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
    for name, match in [("raises", r"objective raised ValueError: the lab is closed \(bad.py:3\)"), ("nan", r"returned nan"), ("text", r"returned str 'fast'")]:
        obj = make_objective(ObjectiveSpec(type="python", target=f"bad.py:{name}"), base_dir=tmp_path)
        with pytest.raises(ObjectiveError, match=match):
            obj({"x": 0.0})
    obj = make_objective(ObjectiveSpec(type="python", target="bad.py:slow", timeout_s=1.0), base_dir=tmp_path)
    with pytest.raises(ObjectiveError, match=r"timed out after 1 s"):
        obj({"x": 0.0})
