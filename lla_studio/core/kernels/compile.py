"""Compile a :class:`~lla_studio.core.kernels.graph.KernelGraph` into a gpytorch kernel.

========================  ===================================================================
node                      gpytorch module
========================  ===================================================================
``rbf``                   ``RBFKernel``
``matern`` (nu)           ``MaternKernel(nu=nu)``
``rq``                    ``RQKernel`` (alpha prior registered as ``alpha_prior``)
``periodic``              ``PeriodicKernel`` (period -> ``period_length``)
``linear``                ``LinearKernel`` (variance)
``scale``                 ``ScaleKernel`` (outputscale)
``sum`` / ``product``     ``AdditiveKernel`` / ``ProductKernel`` of the children, in order
========================  ===================================================================

Leaves get ``active_dims`` = the columns of their features in ``feature_names`` (in the leaf's
feature order) and, with ``ard``, ``ard_num_dims = len(features)``. A prior spec becomes a
``GammaPrior`` / ``LogNormalPrior`` registered under ``<param>_prior`` (e.g. ``lengthscale_prior``);
a lengthscale or output scale with a prior starts at the prior's mode with BoTorch's lower bound
(0.025 / 1e-4) and is optimized in log coordinates (:func:`lower_bounded`); a fixed
value is written through the parameter's constraint and its raw parameter gets
``requires_grad=False``, so botorch's ``fit_gpytorch_mll`` leaves it alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from gpytorch.kernels import (
    AdditiveKernel,
    Kernel,
    LinearKernel,
    MaternKernel,
    PeriodicKernel,
    ProductKernel,
    RBFKernel,
    RQKernel,
    ScaleKernel,
)
from gpytorch.constraints import GreaterThan
from gpytorch.priors import GammaPrior, LogNormalPrior, Prior

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import KernelNode, LeafNode, MaternNode, ScaleNode
from lla_studio.core.kernels.priors import Gamma, LogNormal, PriorSpec

__all__ = ["compile_kernel", "to_gpytorch_prior"]

_log = logging.getLogger(__name__)

# node hyperparameter name -> gpytorch attribute name
_GPYTORCH_NAME = {
    "lengthscale": "lengthscale",
    "alpha": "alpha",
    "period": "period_length",
    "variance": "variance",
    "outputscale": "outputscale",
}


def to_gpytorch_prior(prior: PriorSpec) -> Prior:
    """The gpytorch prior a spec describes: ``GammaPrior(c, r)`` or ``LogNormalPrior(loc, scale)``."""
    if isinstance(prior, Gamma):
        return GammaPrior(prior.concentration, prior.rate)
    if isinstance(prior, LogNormal):
        return LogNormalPrior(prior.loc, prior.scale)
    raise TypeError(f"not a prior spec: {prior!r}")


LENGTHSCALE_LOWER = 2.5e-2
"""Lower bound of lengthscales that have a prior (BoTorch's default)."""

OUTPUTSCALE_LOWER = 1e-4
"""Lower bound of output scales that have a prior."""


def lower_bounded(lower: float, initial_value: float, fixed: bool = False) -> GreaterThan:
    """Constraint ``value = lower + exp(raw)`` of a positive hyperparameter with a prior.

    BoTorch's convention optimizes the value itself (``GreaterThan(lower, transform=None)``, L-BFGS-B
    bounds). Lengthscales, output scales and noise span decades, and in linear coordinates the fit
    crawls along them: measured on the CNN session (``benchmarks/kernel_speed.py``' data, n = 60,
    one thread) the 42-leaf hands-on kernel took 282 L-BFGS iterations, the default kernel 101; in
    log coordinates (this constraint here and on the noise, :func:`~lla_studio.core.surrogates.gp.
    build_gp`) 23 and 23, reaching the same loss to 1e-7. The objective (marginal likelihood plus
    log priors of the values) is unchanged, only the optimizer's coordinates are. A fixed value is
    stored directly (``transform=None``), as before, so any value the graph allows can be fixed.
    """
    if fixed:
        return GreaterThan(lower, transform=None, initial_value=initial_value)
    return GreaterThan(lower, transform=torch.exp, inv_transform=torch.log, initial_value=initial_value)


def _mode(prior: Prior) -> float:
    """Mode of a Gamma/LogNormal prior (the mean for a Gamma with concentration < 1)."""
    if isinstance(prior, GammaPrior):
        c, r = float(prior.concentration), float(prior.rate)
        return (c - 1) / r if c > 1 else c / r
    return float(prior.mode)


def _alpha(module: RQKernel) -> torch.Tensor:
    return module.alpha


def _set_alpha(module: RQKernel, value: torch.Tensor) -> None:
    module.alpha = value


def _prior(node: KernelNode, param: str) -> Prior | None:
    spec = getattr(node, f"{param}_prior")
    return None if spec is None else to_gpytorch_prior(spec)


def _leaf(node: LeafNode, columns: dict[str, int], batch_shape: torch.Size) -> Kernel:
    dims = torch.tensor([columns[f] for f in node.features], dtype=torch.long)
    return leaf_kernel(node, batch_shape, active_dims=dims)


def leaf_kernel(node: LeafNode, batch_shape: torch.Size, active_dims: torch.Tensor | None = None) -> Kernel:
    """The gpytorch base kernel of one leaf (priors, constraints and initial values; no fixed values).

    Also builds the batched compile's group kernels (``active_dims=None``, the leaf axis in
    ``batch_shape``), so both compiles start from the same constraints and initial values.
    """
    kw: dict = {"batch_shape": batch_shape}
    if active_dims is not None:
        kw["active_dims"] = active_dims
    if node.ard:  # not ard_num_dims=None: PeriodicKernel (gpytorch 1.15) fails on an explicit None
        kw["ard_num_dims"] = len(node.features)
    if node.KIND == "linear":
        return LinearKernel(variance_prior=_prior(node, "variance"), **kw)
    kw["lengthscale_prior"] = prior = _prior(node, "lengthscale")
    if prior is not None:
        # Start at the prior's mode above BoTorch's lower bound, optimized in log coordinates.
        kw["lengthscale_constraint"] = lower_bounded(LENGTHSCALE_LOWER, _mode(prior), fixed=node.lengthscale is not None)
    if isinstance(node, MaternNode):
        return MaternKernel(nu=node.nu, **kw)
    if node.KIND == "rbf":
        return RBFKernel(**kw)
    if node.KIND == "periodic":
        return PeriodicKernel(period_length_prior=_prior(node, "period"), **kw)
    if node.KIND == "rq":
        kernel = RQKernel(**kw)
        alpha_prior = _prior(node, "alpha")
        if alpha_prior is not None:
            kernel.register_prior("alpha_prior", alpha_prior, _alpha, _set_alpha)
        return kernel
    raise KernelGraphError(f"cannot compile a {node.KIND} leaf", node_id=node.id)  # pragma: no cover


_Fixed = list[tuple[Kernel, str, float]]


def _compile(node: KernelNode, columns: dict[str, int], batch_shape: torch.Size, fixed: _Fixed) -> Kernel:
    """Build the module tree; fixed values are collected in ``fixed`` (set after any dtype cast)."""
    if isinstance(node, LeafNode):
        kernel = _leaf(node, columns, batch_shape)
    elif isinstance(node, ScaleNode):
        base = _compile(node.child, columns, batch_shape, fixed)
        prior = _prior(node, "outputscale")
        extra = {}
        if prior is not None:
            extra["outputscale_constraint"] = lower_bounded(OUTPUTSCALE_LOWER, _mode(prior), fixed=node.outputscale is not None)
        kernel = ScaleKernel(base, outputscale_prior=prior, batch_shape=batch_shape, **extra)
    elif node.KIND == "sum":
        kernel = AdditiveKernel(*(_compile(c, columns, batch_shape, fixed) for c in node.children))
    elif node.KIND == "product":
        kernel = ProductKernel(*(_compile(c, columns, batch_shape, fixed) for c in node.children))
    else:  # pragma: no cover - every node kind is handled above
        raise KernelGraphError(f"cannot compile a {node.KIND} node", node_id=node.id)
    for param in node.PARAMS:
        value = getattr(node, param)
        if value is not None:
            fixed.append((kernel, _GPYTORCH_NAME[param], value))
    return kernel


def compile_kernel(
    graph: KernelGraph | KernelNode,
    feature_names: Sequence[str],
    *,
    batch_shape: torch.Size = torch.Size(),
    dtype: torch.dtype | None = None,
    batched: bool = True,
) -> Kernel:
    """Build the gpytorch kernel a graph describes.

    Args:
        graph: The kernel graph (a bare node is wrapped in a :class:`KernelGraph`).
        feature_names: Names of the model's input features in column order; inputs to the
            compiled kernel are ``batch x n x len(feature_names)`` tensors.
        batch_shape: gpytorch batch shape of every hyperparameter (e.g. one per output).
        dtype: If given, the kernel (parameters and prior buffers) is cast to it before fixed
            values are written. Pass ``torch.float64`` for a float64 model: casting a float32
            kernel later keeps fixed values rounded to float32.
        batched: Compile to one :class:`~lla_studio.core.kernels.batched.BatchedGraphKernel`
            (leaves of a kind batched, the tree as tensor reductions; same values, gradients and
            priors) when two or more leaves can share a batched kernel; otherwise, and with
            ``batched=False``, the naive module tree of the table above (the reference).

    Returns:
        A fresh ``gpytorch.kernels.Kernel`` (nothing shared between calls).

    Raises:
        KernelGraphError: The graph uses a feature missing from ``feature_names`` (see
            :meth:`KernelGraph.validate`).
    """
    if not isinstance(graph, KernelGraph):
        graph = KernelGraph(graph)
    graph.validate(feature_names)
    if batched:
        from lla_studio.core.kernels.batched import BatchedGraphKernel, has_batchable_leaves

        # One gpytorch call per leaf group instead of per node: a fit of the CNN session's hands-on
        # kernel (42 leaves) spent most of its ~20 s in gpytorch's module overhead.
        if has_batchable_leaves(graph):
            try:
                return BatchedGraphKernel(graph, feature_names, batch_shape=torch.Size(batch_shape), dtype=dtype)
            except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:
                # never refused: a graph the batched compiler cannot take is compiled naively
                _log.warning("kernel graph compiled naively (batched compile failed: %s)", err)
    columns = {name: i for i, name in enumerate(feature_names)}
    fixed: _Fixed = []
    kernel = _compile(graph.root, columns, torch.Size(batch_shape), fixed)
    if dtype is not None:
        kernel = kernel.to(dtype=dtype)
    for module, name, value in fixed:  # after the cast, so 0.1 is not rounded to float32 first
        raw = getattr(module, f"raw_{name}")
        # A tensor in the raw dtype: some setters (LinearKernel) round a Python float via float32.
        setattr(module, name, torch.as_tensor(value, dtype=raw.dtype, device=raw.device))
        raw.requires_grad_(False)
    return kernel
