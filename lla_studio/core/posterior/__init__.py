"""Posterior lab: 2-D models, Laplace, grid posteriors, Laplace mixtures, VI, divergences.

Entry points: `analyze` (GUI worker; plain numpy out) and
`lla_studio.core.posterior.report.run_posterior_report` (CLI). Models are built from frozen,
serialisable specs (`spec_from_dict`, `default_spec`, `MODEL_NAMES`).
"""

from lla_studio.core.posterior.analysis import PosteriorAnalysis, analyze
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.cancel import Cancelled
from lla_studio.core.posterior.divergence import js_divergence, kl_divergence
from lla_studio.core.posterior.expression import ExpressionModel, ExpressionSpec, compile_expression
from lla_studio.core.posterior.grid import QUANTILE_LEVELS, GridPosterior, auto_grid_box, grid_posterior
from lla_studio.core.posterior.laplace import LaplaceFit, fit_laplace
from lla_studio.core.posterior.mixture import LaplaceMixture, fit_laplace_mixture
from lla_studio.core.posterior.models import (
    BananaModel,
    BananaSpec,
    BioassayModel,
    BioassaySpec,
    GaussianMixtureModel,
    MixtureSpec,
    ModelSpec,
    PosteriorModel,
)
from lla_studio.core.posterior.registry import MODEL_NAMES, default_spec, make_model, spec_from_dict
from lla_studio.core.posterior.shear_frame import ShearFrameModel, ShearFrameSpec
from lla_studio.core.posterior.vi import VIResult, refine_vi

__all__ = [
    "MODEL_NAMES",
    "QUANTILE_LEVELS",
    "BananaModel",
    "BananaSpec",
    "BioassayModel",
    "BioassaySpec",
    "Box",
    "Cancelled",
    "ExpressionModel",
    "ExpressionSpec",
    "GaussianMixtureModel",
    "GridPosterior",
    "LaplaceFit",
    "LaplaceMixture",
    "MixtureSpec",
    "ModelSpec",
    "PosteriorAnalysis",
    "PosteriorModel",
    "ShearFrameModel",
    "ShearFrameSpec",
    "VIResult",
    "analyze",
    "auto_grid_box",
    "compile_expression",
    "default_spec",
    "fit_laplace",
    "fit_laplace_mixture",
    "grid_posterior",
    "js_divergence",
    "kl_divergence",
    "make_model",
    "refine_vi",
    "spec_from_dict",
]
