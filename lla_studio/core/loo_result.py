"""Leave-one-out results: per-point predictions and their scores, as plain numpy data.

:class:`LOOResult` is computed in the study process (:mod:`lla_studio.core.diagnostics`, which
imports torch and BoTorch) and travels to the GUI inside a study snapshot. Unpickling an object
imports the module of its class, so the class lives here, torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LOOResult", "loo_scores"]


@dataclass(frozen=True)
class LOOResult:
    """Per-point leave-one-out predictions and their scores.

    Attributes:
        observed: ``n`` observed values.
        mean: ``n`` LOO predictive means.
        sd: ``n`` LOO predictive standard deviations (of the observation).
        mlpd: Mean log predictive density.
        rmse: Root mean squared error of the means.
        coverage95: Fraction of observations inside the central 95 % predictive interval.
    """

    observed: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    mlpd: float
    rmse: float
    coverage95: float


def loo_scores(observed: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> LOOResult:
    """Scores of Gaussian predictive distributions ``N(mean, sd²)`` for ``observed``."""
    y, mu, s = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (observed, mean, sd))
    z = (y - mu) / s
    logpdf = -0.5 * z**2 - np.log(s) - 0.5 * math.log(2 * math.pi)
    return LOOResult(
        observed=y, mean=mu, sd=s,
        mlpd=float(np.mean(logpdf)),
        rmse=float(np.sqrt(np.mean((y - mu) ** 2))),
        coverage95=float(np.mean(np.abs(z) <= 1.959963984540054)),
    )
