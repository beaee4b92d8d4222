"""Digit image search: an offline stand-in for searching MNIST images with Bayesian optimization.

The candidate pool is the 1 797 images (8 x 8 pixels, values 0..16) of
``sklearn.datasets.load_digits``. A configuration *is* an image: 64 real parameters ``p<row>_<col>``
on ``[0, 16]``. The objective, to be maximized, is

    f(x) = log p(target | x)

under a multinomial logistic regression (``sklearn.linear_model.LogisticRegression``, L-BFGS,
``C = 1``) fitted once on the whole data set and cached for the process. ``f`` is defined for any pixel
vector, so evaluating needs no pool look-up; a study over this objective only *chooses* among the
pool images (see :mod:`lla_studio.core.objectives.pool`). Surrogates see the raw pixels (the
session's transform chain is the identity).

``f`` is computed as a numerically careful log-softmax of the classifier's decision values:
``-log1p(sum_{j != t} exp(z_j - z_t))`` when the target is the top class, so the confident images,
whose log-probabilities are around ``-1e-9``, keep distinct values instead of rounding to 0.

Session form::

    {"type": "benchmark", "name": "digits", "direction": "maximize",
     "options": {"target": 3, "seed": 0}}
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives.pool import CandidatePool
from lla_studio.core.space import RealParameter, SearchSpace

__all__ = [
    "DIGITS_OPTIONS",
    "DigitsOptions",
    "DigitsSearch",
    "digits_options",
    "pixel_names",
]

IMAGE_SHAPE = (8, 8)
PIXEL_MAX = 16.0
MAX_ITER = 1000  # L-BFGS needs ~190 iterations on the raw pixels; ample margin, no ConvergenceWarning
DIGITS_OPTIONS = ("target", "seed")


def pixel_names() -> tuple[str, ...]:
    """``p0_0 .. p7_7`` (row-major): the parameter of each pixel."""
    h, w = IMAGE_SHAPE
    return tuple(f"p{r}_{c}" for r in range(h) for c in range(w))


@dataclass(frozen=True)
class DigitsOptions:
    """Options of the digits objective.

    Args:
        target: The digit whose log-probability is maximized (0..9).
        seed: ``random_state`` of the logistic regression fit. L-BFGS is deterministic, so today
            every seed gives the same classifier; the seed pins the objective should the solver
            ever use randomness.
    """

    target: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        t = self.target
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= 9:
            raise ObjectiveError(f"digits objective: option 'target' must be an integer digit 0..9, got {t!r}")
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ObjectiveError(f"digits objective: option 'seed' must be an integer >= 0, got {s!r}")


def digits_options(options: Mapping[str, Any]) -> DigitsOptions:
    """Validate a session's objective options (unknown keys are refused, naming them).

    Raises:
        ObjectiveError: an unknown option, a target outside 0..9, a negative or non-integer seed.
    """
    unknown = sorted(set(options) - set(DIGITS_OPTIONS))
    if unknown:
        raise ObjectiveError(
            f"digits objective: unknown option(s) {unknown} (allowed: {', '.join(DIGITS_OPTIONS)})"
        )
    values = {k: options[k] for k in DIGITS_OPTIONS if k in options}
    # JSON has one number type: accept 3.0 for 3, refuse 3.5
    for key, v in list(values.items()):
        if isinstance(v, float) and v.is_integer():
            values[key] = int(v)
    return DigitsOptions(**values)


# --------------------------------------------------------------------------- data and classifier
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _dataset() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def fit_classifier(seed: int = 0) -> Any:
    """A freshly fitted multinomial logistic regression on all of ``load_digits`` (not cached)."""
    from sklearn.linear_model import LogisticRegression

    X, y = _dataset()
    model = LogisticRegression(solver="lbfgs", C=1.0, max_iter=MAX_ITER, random_state=seed)
    model.fit(X, y)
    return model


_classifiers: dict[int, Any] = {}


def classifier(seed: int = 0) -> Any:
    """The classifier for ``seed``, fitted on first use and cached for the process (thread-safe)."""
    with _lock:
        model = _classifiers.get(seed)
        if model is None:
            model = _classifiers[seed] = fit_classifier(seed)
        return model


def log_probability(model: Any, X: np.ndarray, target: int) -> np.ndarray:
    """``log p(target | x)`` for the rows of ``X`` (``n x 64``), a careful log-softmax.

    Args:
        model: A fitted multinomial ``LogisticRegression``.
        X: A ``n x 64`` array of pixel values.
        target: The class.

    Returns:
        An ``n`` array of log-probabilities (<= 0).
    """
    Z = np.asarray(model.decision_function(np.asarray(X, dtype=np.float64)), dtype=np.float64)
    col = int(np.flatnonzero(model.classes_ == target)[0])
    top = Z.argmax(axis=1)
    zmax = Z[np.arange(Z.shape[0]), top]
    E = np.exp(Z - zmax[:, None])
    E[np.arange(Z.shape[0]), top] = 0.0
    rest = E.sum(axis=1)  # sum over the non-top classes of exp(z_j - z_max), in [0, 9]
    return Z[:, col] - zmax - np.log1p(rest)


# --------------------------------------------------------------------------- the problem
class DigitsSearch:
    """The digit image search problem: pool, search space and ``f``.

    Args:
        target: Digit whose log-probability is maximized.
        seed: Seed of the classifier fit.

    Example:
        >>> problem = DigitsSearch(target=3)
        >>> problem.pool.values.shape
        (1797, 64)
        >>> problem(problem.pool.config(0))  # a configuration is an image
    """

    name = "digits"
    direction = "maximize"

    def __init__(self, target: int = 3, seed: int = 0) -> None:
        self.options = DigitsOptions(target=target, seed=seed)
        self._pool: CandidatePool | None = None
        self._pool_values: np.ndarray | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DigitsSearch:
        o = digits_options(options)
        return cls(o.target, o.seed)

    @property
    def target(self) -> int:
        return self.options.target

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return pixel_names()

    @property
    def dim(self) -> int:
        return IMAGE_SHAPE[0] * IMAGE_SHAPE[1]

    def search_space(self) -> SearchSpace:
        """64 real pixel parameters on ``[0, 16]``."""
        return SearchSpace([RealParameter(n, 0.0, PIXEL_MAX) for n in self.parameter_names])

    @property
    def model(self) -> Any:
        """The fitted logistic regression (shared by every instance with the same seed)."""
        return classifier(self.options.seed)

    @property
    def pool(self) -> CandidatePool:
        """The 1 797 images as a ``1797 x 64`` candidate pool (parameters ``p<row>_<col>``)."""
        if self._pool is None:
            self._pool = CandidatePool(self.parameter_names, _dataset()[0])
        return self._pool

    @property
    def labels(self) -> np.ndarray:
        """The true digit of each pool image."""
        return _dataset()[1]

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """``f`` at the rows of a ``n x 64`` array of pixels (row-major ``p0_0 .. p7_7``)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.dim)
        return log_probability(self.model, X, self.target)

    def pool_values(self) -> np.ndarray:
        """``f`` over the whole pool (cached)."""
        if self._pool_values is None:
            values = self.evaluate(self.pool.values)
            values.setflags(write=False)
            self._pool_values = values
        return self._pool_values

    def top_threshold(self, fraction: float = 0.01) -> float:
        """The smallest value among the best ``ceil(fraction * 1797)`` pool images.

        A search has "reached the top fraction" once its best value is ``>= top_threshold``.
        """
        if not 0 < fraction <= 1:
            raise ObjectiveError(f"digits objective: fraction must be in (0, 1], got {fraction}")
        values = np.sort(self.pool_values())[::-1]
        k = max(1, math.ceil(fraction * values.shape[0]))
        return float(values[k - 1])

    def __call__(self, config: Mapping[str, Any]) -> float:
        """``f`` at a configuration ``{"p0_0": ..., ..., "p7_7": ...}``."""
        try:
            x = np.array([[float(config[n]) for n in self.parameter_names]])
        except KeyError as err:
            raise ObjectiveError(f"digits objective: the configuration has no pixel {err}") from None
        return float(self.evaluate(x)[0])
