"""Kernel graphs: serializable specs, validation, text form, compilation to gpytorch.

* :mod:`.nodes` / :mod:`.priors`: frozen node and prior specs with ``to_dict`` / ``from_dict``.
* :mod:`.graph`: :class:`KernelGraph` (ids, validation against feature names, immutable edits).
* :mod:`.text`: :func:`format_kernel` / :func:`parse_kernel`, e.g.
  ``scale(matern52(log_lr, momentum) * matern52(log_epochs)) + scale(rbf(log_batch_size))``.
* :mod:`.builders`: :func:`default_kernel`, :func:`hands_on_kernel`.
* :mod:`.compile`: :func:`compile_kernel` to a gpytorch kernel.

Everything except :func:`compile_kernel` / :func:`to_gpytorch_prior` is free of torch, so the GUI's
kernel editor can import this package; those two are loaded (with gpytorch) on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from lla_studio.core.kernels.compile import compile_kernel, to_gpytorch_prior

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
    "compile_kernel",
    "default_kernel",
    "format_kernel",
    "hands_on_kernel",
    "node_from_dict",
    "parse_kernel",
    "prior_from_dict",
    "prior_to_dict",
    "to_gpytorch_prior",
]

_LAZY = {"compile_kernel", "to_gpytorch_prior"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from lla_studio.core.kernels import compile as _compile_module

        return getattr(_compile_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
