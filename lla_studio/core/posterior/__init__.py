"""Posterior lab: 2-D models, Laplace, grid posteriors, Laplace mixtures, VI, divergences.

Entry points: `analyze` (plain numpy out), `lla_studio.core.posterior.view.compute_posterior` (the
lab process: display-ready snapshots) and `lla_studio.core.posterior.report.run_posterior_report`
(CLI). Models are built from frozen, serialisable specs (`spec_from_dict`, `default_spec`,
`MODEL_NAMES`).

Names are imported on first use (PEP 562, the pattern of Scientific Python's SPEC 1, as in
``lla_studio/__init__.py``). Why: most of this package imports torch, but two of its modules are
torch-free on purpose -- `lla_studio.core.posterior.forms` (what the panel's form edits) and
`lla_studio.core.posterior.snapshot` (the request and the numpy-only answer that cross to the GUI
process). Importing a submodule runs this ``__init__`` first; if it imported everything eagerly,
the GUI would load torch just by reading a form.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "PosteriorAnalysis": "analysis",
    "analyze": "analysis",
    "Box": "box",
    "Cancelled": "cancel",
    "js_divergence": "divergence",
    "kl_divergence": "divergence",
    "ExpressionModel": "expression",
    "ExpressionSpec": "expression",
    "compile_expression": "expression",
    "QUANTILE_LEVELS": "grid",
    "GridPosterior": "grid",
    "auto_grid_box": "grid",
    "grid_posterior": "grid",
    "LaplaceFit": "laplace",
    "fit_laplace": "laplace",
    "LaplaceMixture": "mixture",
    "fit_laplace_mixture": "mixture",
    "BananaModel": "models",
    "BananaSpec": "models",
    "BioassayModel": "models",
    "BioassaySpec": "models",
    "GaussianMixtureModel": "models",
    "MixtureSpec": "models",
    "ModelSpec": "models",
    "PosteriorModel": "models",
    "MODEL_NAMES": "registry",
    "default_spec": "registry",
    "make_model": "registry",
    "spec_from_dict": "registry",
    "ShearFrameModel": "shear_frame",
    "ShearFrameSpec": "shear_frame",
    "VIResult": "vi",
    "refine_vi": "vi",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lla_studio.core.posterior' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
