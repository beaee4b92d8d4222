"""The posterior lab's torch-free form metadata agrees with the registry's spec dataclasses."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import MODEL_NAMES, ExpressionSpec, default_spec
from lla_studio.core.posterior.forms import (
    EXPRESSION,
    FIELD_KINDS,
    MODEL_LABELS,
    PANEL_MODELS,
    default_spec_dict,
    model_fields,
    spec_type,
)


def _registry_spec(name: str):
    return ExpressionSpec() if name == EXPRESSION else default_spec(name)


def test_the_panel_models_are_the_registry_models_and_the_expression():
    assert PANEL_MODELS == (*MODEL_NAMES, EXPRESSION)
    assert set(MODEL_LABELS) == set(PANEL_MODELS)


@pytest.mark.parametrize("name", PANEL_MODELS)
def test_defaults_and_field_kinds_agree_with_the_spec_dataclass(name):
    spec = _registry_spec(name)
    assert default_spec_dict(name) == spec.to_dict()
    assert spec_type(name) == spec.TYPE
    edited = {f.name: f for f in model_fields(name)}
    for f in dataclasses.fields(spec):
        kind = FIELD_KINDS.get(str(f.type))
        assert kind is not None, f"{name}.{f.name}: no editor for a field of type {f.type}"
        if f.name in edited:  # every field but the one the model picker chooses (log_beta)
            info = edited[f.name]
            assert info.kind == kind and info.value == getattr(spec, f.name), f.name
            if info.value is None:  # an optional switched on takes a valid value of its kind
                assert info.enabled_value is not None
    assert list(edited) == [f.name for f in dataclasses.fields(spec) if f.name in edited]
    hidden = {f.name for f in dataclasses.fields(spec)} - set(edited)
    assert hidden == ({"log_beta"} if spec.TYPE == "bioassay" else set())


def test_a_form_with_its_enabled_values_builds_a_valid_spec():
    from lla_studio.core.posterior import spec_from_dict

    for name in PANEL_MODELS:
        spec = default_spec_dict(name)
        for info in model_fields(name):
            spec[info.name] = info.enabled_value
        spec_from_dict(spec).build()  # raises PosteriorError if a default or enabled value is bad


def test_an_unknown_model_is_refused_with_the_valid_names():
    with pytest.raises(PosteriorError, match="unknown posterior model 'nope'.*bioassay"):
        model_fields("nope")


def test_the_forms_and_snapshot_modules_import_no_torch():
    code = (
        "import sys\n"
        "import lla_studio.core.posterior.forms, lla_studio.core.posterior.snapshot\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
