"""Read-only results survive a pipe: pickled, they come back frozen (core/readonly.py), and the types
that cross to the GUI process live in torch-free modules."""

from __future__ import annotations

import pickle
import subprocess
import sys
from types import MappingProxyType

import numpy as np
import pytest

from lla_studio.core.readonly import freeze, readonly_array
from lla_studio.core.relu_lab_types import BoundaryRateResult, ModelCurves, ReluLabResult, ReluLabSettings


def _curves() -> ModelCurves:
    a = readonly_array(np.linspace(0, 1, 5))
    return ModelCurves(
        name="relu", label="ReLU LLA", mean=a, std=a, acquisition=a, acquisition_relative=a,
        maximizer=readonly_array([1.0]), maximizer_value=1.0, std_at_maximizer=0.5, grid_max_value=1.0,
        edge_distance=0.0, on_boundary=True, edge_value=1.0, flat_to_edge=False,
        hyperparameters=MappingProxyType({"noise_std": 0.1}), seconds=0.1,
    )


def test_a_relu_lab_result_pickles_and_stays_read_only():
    settings = ReluLabSettings(box_scale=10)
    a = readonly_array(np.zeros((2, 1)))
    result = ReluLabResult(settings, a, a, a, readonly_array(np.zeros(2)), readonly_array(np.zeros(5)),
                           readonly_array(np.zeros(5)), MappingProxyType({"relu": _curves()}), 1.0)
    back = pickle.loads(pickle.dumps(result))
    assert back.settings == settings and isinstance(back.models, MappingProxyType)
    curves = back.models["relu"]
    assert isinstance(curves, ModelCurves) and curves.on_boundary and curves.hyperparameters["noise_std"] == 0.1
    assert not curves.mean.flags.writeable and not back.box.flags.writeable
    np.testing.assert_array_equal(curves.mean, result.models["relu"].mean)
    with pytest.raises(TypeError):
        back.models["tanh"] = curves  # type: ignore[index]
    rate = BoundaryRateResult(settings, 2, MappingProxyType({"relu": 1.0}), MappingProxyType({"relu": a}),
                              MappingProxyType({"relu": readonly_array([True, True], bool)}), MappingProxyType({}), 1.0)
    back = pickle.loads(pickle.dumps(rate))
    assert back.rates == {"relu": 1.0} and back.on_boundary["relu"].dtype == bool
    assert not back.on_boundary["relu"].flags.writeable


def test_freeze_makes_nested_mappings_and_arrays_read_only():
    frozen = freeze({"a": np.arange(3.0), "b": {"c": (np.ones(2), 1)}})
    assert isinstance(frozen, MappingProxyType) and isinstance(frozen["b"], MappingProxyType)
    assert not frozen["a"].flags.writeable and not frozen["b"]["c"][0].flags.writeable


def test_the_types_that_cross_to_the_gui_import_no_torch():
    code = (
        "import sys\n"
        "import lla_studio.core.relu_lab_types, lla_studio.core.surface_types, lla_studio.core.loo_result\n"
        "import lla_studio.core.posterior.snapshot, lla_studio.engine.lab_jobs, lla_studio.engine.study_snapshot\n"
        "import lla_studio.engine.messages, lla_studio.engine.child\n"
        "heavy = [m for m in ('torch', 'gpytorch', 'botorch', 'PySide6') if m in sys.modules]\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
