r"""Prior samples of a kernel graph on a 1-D or 2-D slice of the unit cube of features.

The editor's preview answers "what functions does this kernel believe in?": it draws
:math:`f \sim \mathcal{GP}(0, k)` at the kernel's initial hyperparameters (a hyperparameter with a
prior starts at the prior's mode, a fixed one at its value, see :mod:`.compile`) on a grid that
varies one feature (1-D slice) or two (2-D slice) while every other feature stays fixed (at 0.5 of
the unit cube unless told otherwise).

Sampling is exact on the grid: ``K = k(X, X)`` in float64, a Cholesky factor ``L`` of
``K + jitter * I`` (the jitter starts at ``1e-10 * mean(diag K)`` and grows by factors of 10, up
to ``1e-2 * mean(diag K)``, until the factorization succeeds) and ``f = L z`` with standard-normal ``z`` from ``numpy.random.default_rng(seed)``,
so the same ``seed`` gives the same samples.

This module imports torch (through :func:`compile_kernel`); the GUI reaches it only through the
engine's preview worker.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np
import torch

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.compile import compile_kernel
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import KernelNode

__all__ = ["PriorSamples", "SliceSpec", "grid_inputs", "prior_covariance", "prior_samples"]

DEFAULT_FIXED = 0.5
"""Unit-cube value of the features a slice does not vary."""


@dataclass(frozen=True)
class SliceSpec:
    """A 1-D or 2-D axis-aligned slice of the unit cube of features.

    Args:
        x: Feature that varies along the horizontal axis.
        y: Feature that varies along the vertical axis (``None``: a 1-D slice).
        fixed: Unit-cube values of other features; features not named here sit at 0.5.
        resolution: Grid points per varying axis (default: 100 for 1-D, 32 for 2-D).
        low: Lower end of each varying axis (unit-cube coordinates).
        high: Upper end of each varying axis.

    Raises:
        KernelGraphError: ``x == y``, a resolution < 2, ``low >= high`` or a non-finite value.
    """

    x: str
    y: str | None = None
    fixed: Mapping[str, float] = field(default_factory=dict)
    resolution: int | None = None
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.x, str) or not self.x:
            raise KernelGraphError(f"slice: x must be a feature name, got {self.x!r}")
        if self.y is not None and (not isinstance(self.y, str) or not self.y):
            raise KernelGraphError(f"slice: y must be a feature name or None, got {self.y!r}")
        if self.y == self.x:
            raise KernelGraphError(f"slice: x and y must differ, both are {self.x!r}")
        res = self.resolution
        if res is None:
            res = 100 if self.y is None else 32
        if isinstance(res, bool) or not isinstance(res, numbers.Integral) or res < 2:
            raise KernelGraphError(f"slice: resolution must be an integer >= 2, got {self.resolution!r}")
        object.__setattr__(self, "resolution", int(res))
        for name in ("low", "high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise KernelGraphError(f"slice: {name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not self.low < self.high:
            raise KernelGraphError(f"slice: low must be < high, got low={self.low}, high={self.high}")
        fixed = dict(self.fixed)
        for k, v in fixed.items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise KernelGraphError(f"slice: fixed value of {k!r} must be a finite number, got {v!r}")
            fixed[k] = float(v)
        object.__setattr__(self, "fixed", fixed)

    @property
    def ndim(self) -> int:
        """1 or 2."""
        return 1 if self.y is None else 2

    @classmethod
    def coerce(cls, spec: SliceLike) -> SliceSpec:
        """A :class:`SliceSpec` from itself, a feature name (1-D) or a pair of names (2-D)."""
        if isinstance(spec, SliceSpec):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, Sequence) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
            return cls(spec[0], spec[1])
        raise KernelGraphError(f"slice: expected a SliceSpec, a feature name or two names, got {spec!r}")


SliceLike = Union[SliceSpec, str, Sequence[str]]


@dataclass(frozen=True, eq=False)
class PriorSamples:
    """Prior samples on a slice (read-only float64 arrays).

    Attributes:
        slice: The slice the samples live on.
        x: A ``resolution`` array: grid of the ``x`` feature (unit cube).
        y: A ``resolution`` array for a 2-D slice, else ``None``.
        inputs: A ``m x d`` array of the full feature vectors evaluated (``m = r`` or ``r * r``,
            2-D rows ordered with ``x`` fastest).
        samples: ``n_samples x r`` (1-D) or ``n_samples x r x r`` (2-D, row-major: ``[.., iy, ix]``).
        jitter: The diagonal jitter the Cholesky factorization needed.
    """

    slice: SliceSpec
    x: np.ndarray
    y: np.ndarray | None
    inputs: np.ndarray
    samples: np.ndarray
    jitter: float


def _check_features(feature_names: Sequence[str], spec: SliceSpec) -> list[str]:
    if isinstance(feature_names, str):
        raise KernelGraphError(f"feature_names must be a list of names, got the string {feature_names!r}")
    names = list(feature_names)
    for which in ("x", "y"):
        f = getattr(spec, which)
        if f is not None and f not in names:
            raise KernelGraphError(
                f"slice: {which} feature {f!r} is not a model feature; known: {', '.join(names) or '(none)'}"
            )
    for f in spec.fixed:
        if f not in names:
            raise KernelGraphError(f"slice: fixed feature {f!r} is not a model feature")
    return names


def grid_inputs(feature_names: Sequence[str], slice_spec: SliceLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The grid of a slice.

    Returns:
        ``(x, y, inputs)``: the axis grids (``y`` is ``None`` for 1-D) and the ``m x d`` float64
        inputs (2-D: ``m = r * r`` with ``x`` varying fastest, so ``inputs.reshape(r, r, d)[iy, ix]``).
    """
    spec = SliceSpec.coerce(slice_spec)
    names = _check_features(feature_names, spec)
    r = spec.resolution
    assert r is not None
    axis = np.linspace(spec.low, spec.high, r)
    base = np.array([spec.fixed.get(f, DEFAULT_FIXED) for f in names], dtype=np.float64)
    ix = names.index(spec.x)
    if spec.y is None:
        inputs = np.tile(base, (r, 1))
        inputs[:, ix] = axis
        return axis, None, inputs
    iy = names.index(spec.y)
    gx, gy = np.meshgrid(axis, axis)  # gx[iy, ix] = axis[ix]
    inputs = np.tile(base, (r * r, 1))
    inputs[:, ix] = gx.ravel()
    inputs[:, iy] = gy.ravel()
    return axis, axis.copy(), inputs


def prior_covariance(graph: KernelGraph | KernelNode, feature_names: Sequence[str], inputs: np.ndarray) -> np.ndarray:
    """``k(X, X)`` of the compiled graph at its initial hyperparameters, float64.

    Args:
        graph: The kernel graph.
        feature_names: Model features in column order.
        inputs: A ``m x d`` array of feature vectors.

    Returns:
        The ``m x m`` covariance matrix.
    """
    kernel = compile_kernel(graph, feature_names, dtype=torch.float64)
    X = torch.tensor(np.asarray(inputs, dtype=np.float64))  # a copy: inputs may be read-only
    # Evaluate k(X, [X; x_0]) and drop the last column: with x1 != x2, gpytorch builds plain dense
    # (or matmul) operators. With x1 == x2 it builds root operators for linear kernels, and adding
    # one to a dense term triggers a jittered root decomposition of the dense term (and a warning).
    X2 = torch.cat([X, X[:1]], dim=0)
    with torch.no_grad():
        K = kernel(X, X2).to_dense()[..., : X.shape[0]]
    K = K.detach().cpu().numpy().astype(np.float64, copy=True)
    return 0.5 * (K + K.T)


def _cholesky(K: np.ndarray) -> tuple[np.ndarray, float]:
    diag_mean = float(np.mean(np.diag(K))) if K.size else 1.0
    scale = diag_mean if math.isfinite(diag_mean) and diag_mean > 0 else 1.0
    if not np.all(np.isfinite(K)):
        raise KernelGraphError("prior preview: the kernel matrix has non-finite entries")
    eye = np.eye(K.shape[0])
    for k in range(-10, -2):
        jitter = scale * 10.0**k
        try:
            return np.linalg.cholesky(K + jitter * eye), jitter
        except np.linalg.LinAlgError:
            pass
    jitter = scale * 1e-2
    try:
        return np.linalg.cholesky(K + jitter * eye), jitter
    except np.linalg.LinAlgError:
        raise KernelGraphError(
            f"prior preview: the kernel matrix is not positive definite even with jitter {jitter:.1e}"
        ) from None


def prior_samples(
    graph: KernelGraph | KernelNode,
    feature_names: Sequence[str],
    slice_spec: SliceLike,
    n_samples: int = 5,
    seed: int = 0,
) -> PriorSamples:
    """Draw GP prior samples of a kernel graph on a slice of the unit cube.

    Args:
        graph: The kernel graph (validated against ``feature_names``).
        feature_names: Model features in column order.
        slice_spec: A :class:`SliceSpec`, a feature name (1-D) or a pair of names (2-D).
        n_samples: Number of samples, >= 1.
        seed: Seed of the standard-normal draws (same seed, same samples).

    Returns:
        :class:`PriorSamples` with ``samples`` of shape ``n_samples x r`` or ``n_samples x r x r``.

    Raises:
        KernelGraphError: Invalid graph for these features, bad slice, or a covariance that no
            jitter makes positive definite.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
        raise KernelGraphError(f"prior preview: n_samples must be an integer >= 1, got {n_samples!r}")
    spec = SliceSpec.coerce(slice_spec)
    if not isinstance(graph, KernelGraph):
        graph = KernelGraph(graph)
    graph.validate(feature_names)
    x, y, inputs = grid_inputs(feature_names, spec)
    K = prior_covariance(graph, feature_names, inputs)
    L, jitter = _cholesky(K)
    z = np.random.default_rng(seed).standard_normal((inputs.shape[0], int(n_samples)))
    f = (L @ z).T  # n_samples x m
    r = spec.resolution
    assert r is not None
    samples = f.reshape(int(n_samples), r) if y is None else f.reshape(int(n_samples), r, r)
    samples = np.ascontiguousarray(samples)
    for arr in (x, inputs, samples) + ((y,) if y is not None else ()):
        arr.setflags(write=False)
    return PriorSamples(spec, x, y, inputs, samples, jitter)
