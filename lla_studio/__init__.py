"""LLA Studio: hands-on Bayesian optimization and Laplace approximations.

The public Python API (``README.md``, section "Python API"): search spaces with conditional
parameters, feature transforms, kernel graphs and their text form, surrogate / acquisition /
objective / loop specs, sessions and their JSON form, and :class:`Study` with ask/tell/run.
Everything here is usable from a script or a notebook without the GUI.

Names are imported on first use (PEP 562): ``import lla_studio`` stays instant, and the model
layer (spaces, transforms, kernels, specs, sessions) never loads torch; :class:`Study` and
:class:`Objective` load the numerical stack when they are first touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # search spaces
    "SearchSpace": "lla_studio.core.space",
    "RealParameter": "lla_studio.core.space",
    "IntegerParameter": "lla_studio.core.space",
    "ChoiceParameter": "lla_studio.core.space",
    "Condition": "lla_studio.core.space",
    # feature transforms
    "TransformChain": "lla_studio.core.transforms",
    "LogStep": "lla_studio.core.transforms",
    "AffineStep": "lla_studio.core.transforms",
    "OneHotStep": "lla_studio.core.transforms",
    "GroupRatioStep": "lla_studio.core.transforms",
    "CombineStep": "lla_studio.core.transforms",
    "RenameStep": "lla_studio.core.transforms",
    "DropStep": "lla_studio.core.transforms",
    # kernel graphs and their text form
    "KernelGraph": "lla_studio.core.kernels",
    "parse_kernel": "lla_studio.core.kernels",
    "format_kernel": "lla_studio.core.kernels",
    "default_kernel": "lla_studio.core.kernels",
    "hands_on_kernel": "lla_studio.core.kernels",
    # specs and trials
    "SurrogateSpec": "lla_studio.core.specs",
    "AcquisitionSpec": "lla_studio.core.specs",
    "ObjectiveSpec": "lla_studio.core.specs",
    "LoopSettings": "lla_studio.core.specs",
    "Trial": "lla_studio.core.specs",
    # sessions
    "Session": "lla_studio.core.session",
    "load_session": "lla_studio.core.session",
    "save_session": "lla_studio.core.session",
    "loads_session": "lla_studio.core.session",
    "dumps_session": "lla_studio.core.session",
    # studies and objectives (these load torch)
    "Study": "lla_studio.core.study",
    "Objective": "lla_studio.core.objectives",
    # errors (every error of the API is an LLAStudioError)
    "LLAStudioError": "lla_studio.core.errors",
    "SearchSpaceError": "lla_studio.core.errors",
    "TransformError": "lla_studio.core.errors",
    "KernelGraphError": "lla_studio.core.errors",
    "SessionError": "lla_studio.core.errors",
    "ObjectiveError": "lla_studio.core.errors",
    "StudyError": "lla_studio.core.errors",
    "SurrogateFitError": "lla_studio.core.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lla_studio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
