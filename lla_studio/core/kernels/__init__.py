"""Kernel graphs: serializable specs, validation, text form, compilation to gpytorch.

* :mod:`.nodes` / :mod:`.priors`: frozen node and prior specs with ``to_dict`` / ``from_dict``.
* :mod:`.graph`: :class:`KernelGraph` (ids, validation against feature names, immutable edits).
* :mod:`.text`: :func:`format_kernel` / :func:`parse_kernel`, e.g.
  ``scale(matern52(log_lr, momentum) * matern52(log_epochs)) + scale(rbf(log_batch_size))``.
* :mod:`.builders`: :func:`default_kernel`, :func:`hands_on_kernel`.

This package is the kernel graph as data and is free of torch (part of the model layer: the GUI's
kernel editor imports it). Compiling a graph to gpytorch is :mod:`.compile` (``compile_kernel``,
``to_gpytorch_prior``) and :mod:`.batched`, imported by name by the numerics that need them.
"""

from __future__ import annotations

from lla_studio.core.kernels.builders import (
    DEFAULT_LENGTHSCALE_PRIOR,
    DEFAULT_OUTPUTSCALE_PRIOR,
    default_kernel,
    hands_on_kernel,
)
from lla_studio.core.kernels.graph import KernelGraph, NodeRef
from lla_studio.core.kernels.nodes import (
    LEAF_TYPES,
    NODE_TYPES,
    NU_VALUES,
    KernelNode,
    LeafNode,
    LinearNode,
    MaternNode,
    PeriodicNode,
    ProductNode,
    RBFNode,
    RQNode,
    ScaleNode,
    SumNode,
    node_from_dict,
)
from lla_studio.core.kernels.priors import Gamma, LogNormal, PriorSpec, prior_from_dict, prior_to_dict
from lla_studio.core.kernels.text import format_kernel, parse_kernel

__all__ = [
    "DEFAULT_LENGTHSCALE_PRIOR",
    "DEFAULT_OUTPUTSCALE_PRIOR",
    "LEAF_TYPES",
    "NODE_TYPES",
    "NU_VALUES",
    "Gamma",
    "KernelGraph",
    "KernelNode",
    "LeafNode",
    "LinearNode",
    "LogNormal",
    "MaternNode",
    "NodeRef",
    "PeriodicNode",
    "PriorSpec",
    "ProductNode",
    "RBFNode",
    "RQNode",
    "ScaleNode",
    "SumNode",
    "default_kernel",
    "format_kernel",
    "hands_on_kernel",
    "node_from_dict",
    "parse_kernel",
    "prior_from_dict",
    "prior_to_dict",
]
