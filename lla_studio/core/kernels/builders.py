r"""Ready-made kernel graphs: the default kernel and the hands-on "weighted sum of products of sums".

Hands-on kernel (:func:`hands_on_kernel`). For groups of features :math:`G_1, \dots, G_m`,

.. math::

    k(x, x') = \sum_{g=1}^{m} s_g \, S_g(x, x') \;+\; s_J \prod_{g=1}^{m} S^J_g(x, x'),
    \qquad S_g(x, x') = \sum_{f \in G_g} k_\nu(x_f, x'_f; \ell_{g,f}),

where :math:`k_\nu` is a 1-D Matérn-ν kernel on feature :math:`f` and every :math:`s` is an output
scale. Each group term says "this group matters on its own, additively in its features"; the joint
term :math:`s_J \prod_g S^J_g` lets all groups interact. The joint term's Matérns are separate
leaves with their own lengthscales (:math:`S^J_g` has the structure of :math:`S_g`, not its
hyperparameters). As a graph::

    scale(S_1) + ... + scale(S_m) + scale(S_1' * ... * S_m')

A group of one feature is its Matérn itself (no one-child sum); with one group, or
``joint=False``, the joint term is left out (with one group it would repeat the group term).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import KernelNode, MaternNode, ProductNode, ScaleNode, SumNode
from lla_studio.core.kernels.priors import Gamma, LogNormal, PriorSpec

__all__ = [
    "DEFAULT_LENGTHSCALE_PRIOR",
    "DEFAULT_OUTPUTSCALE_PRIOR",
    "default_kernel",
    "dim_scaled_lengthscale_prior",
    "hands_on_kernel",
]

DEFAULT_LENGTHSCALE_PRIOR = Gamma(3.0, 6.0)
"""Lengthscale prior of :func:`hands_on_kernel`'s 1-D leaves (BoTorch < 0.12 default)."""

DEFAULT_OUTPUTSCALE_PRIOR = Gamma(2.0, 0.15)
"""Output-scale prior of :func:`hands_on_kernel`'s weights (BoTorch < 0.12 default)."""


def default_kernel(
    feature_names: Sequence[str],
    *,
    nu: float = 2.5,
    lengthscale_prior: PriorSpec | None = None,
) -> KernelGraph:
    """The default kernel: one Matérn-ν ARD kernel over all features, no output scale.

    This is BoTorch's current ``SingleTaskGP`` default (0.12+) with a Matérn-5/2 in place of the RBF:
    a dimension-scaled LogNormal(√2 + ½ log d, √3) lengthscale prior (Hvarfner et al., 2024) on
    standardized outcomes, so no output scale is needed. With a prior, the compiled lengthscale
    starts at the prior's mode and is bounded below by 0.025 (see :mod:`.compile`), as BoTorch does.

    Args:
        feature_names: All model features, in column order.
        nu: Matérn smoothness.
        lengthscale_prior: Prior on the ARD lengthscales (``None``: the dimension-scaled LogNormal).

    Raises:
        KernelGraphError: No features, or a bad ``nu``.
    """
    if lengthscale_prior is None:
        lengthscale_prior = dim_scaled_lengthscale_prior(len(feature_names))
    return KernelGraph(MaternNode(tuple(feature_names), nu=nu, lengthscale_prior=lengthscale_prior))


def dim_scaled_lengthscale_prior(d: int) -> LogNormal:
    """BoTorch's dimension-scaled lengthscale prior LogNormal(√2 + ½ log d, √3)."""
    return LogNormal(math.sqrt(2.0) + 0.5 * math.log(max(d, 1)), math.sqrt(3.0))


def hands_on_kernel(
    groups: Mapping[str, Sequence[str]] | Sequence[Sequence[str]],
    joint: bool = True,
    nu: float = 2.5,
    *,
    lengthscale_prior: PriorSpec | None = DEFAULT_LENGTHSCALE_PRIOR,
    outputscale_prior: PriorSpec | None = DEFAULT_OUTPUTSCALE_PRIOR,
) -> KernelGraph:
    """The hands-on BO kernel: a weighted sum of group terms and one joint product of the groups.

    See the module docstring for the formula.

    Args:
        groups: Feature groups. A mapping ``{name: features}`` names the group scale nodes
            (their ids are the group names, the joint scale's id is ``"joint"``); a plain sequence
            of feature lists leaves all ids automatic.
        joint: Add the joint term ``scale(product of all group sums)`` (only with >= 2 groups).
        nu: Smoothness of every 1-D Matérn (0.5, 1.5 or 2.5).
        lengthscale_prior: Prior on every 1-D lengthscale (``None``: no prior).
        outputscale_prior: Prior on every output scale (``None``: no prior).

    Returns:
        The graph ``scale(S_1) + ... + scale(S_m) [+ scale(S_1' * ... * S_m')]``.

    Raises:
        KernelGraphError: No groups, an empty group, a bad ``nu``, or a group named ``"joint"``
            while ``joint`` is on.
    """
    if isinstance(groups, Mapping):
        named = [(str(k), list(v)) for k, v in groups.items()]
    else:
        if isinstance(groups, str):
            raise KernelGraphError(f"groups must be a list of feature lists, got the string {groups!r}")
        named = [(None, list(v)) for v in groups]  # type: ignore[misc]
    if not named:
        raise KernelGraphError("hands_on_kernel needs at least one feature group")
    for i, (name, feats) in enumerate(named):
        label = repr(name) if name is not None else f"#{i}"
        if not feats:
            raise KernelGraphError(f"feature group {label} is empty")

    def group_sum(feats: list[str]) -> KernelNode:
        leaves = [MaternNode((f,), nu=nu, lengthscale_prior=lengthscale_prior) for f in feats]
        return leaves[0] if len(leaves) == 1 else SumNode(tuple(leaves))

    terms: list[KernelNode] = [
        ScaleNode(group_sum(feats), outputscale_prior=outputscale_prior, id=name) for name, feats in named
    ]
    if joint and len(named) > 1:
        if any(name == "joint" for name, _ in named):
            raise KernelGraphError("a feature group named 'joint' clashes with the joint term's id", node_id="joint")
        product = ProductNode(tuple(group_sum(feats) for _, feats in named))
        terms.append(
            ScaleNode(
                product,
                outputscale_prior=outputscale_prior,
                id="joint" if isinstance(groups, Mapping) else None,
            )
        )
    root = terms[0] if len(terms) == 1 else SumNode(tuple(terms))
    return KernelGraph(root)
