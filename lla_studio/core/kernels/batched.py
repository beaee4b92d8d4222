r"""Batched compile of a kernel graph: all leaves of a kind in one gpytorch kernel, the tree as reductions.

The naive compile (:mod:`.compile`) builds one gpytorch module per node. For the hands-on kernel of
the CNN session (42 one-dimensional Matérn-5/2 leaves under 3 scales, 2 sums and a product) a GP fit
spends most of its time in gpytorch's per-module overhead, not in arithmetic: ~275 000
``Kernel.batch_shape`` calls per fit, ~20 s. :class:`BatchedGraphKernel` computes the same kernel with
a handful of tensor operations (outerloop's WeightedSPSMatérn idea):

1. **Leaf groups.** Leaves are grouped by a batching key: family (Matérn with its :math:`\nu`, RBF,
   RQ, periodic, linear), number of features, ``ard``, and per hyperparameter its prior spec and
   whether it is fixed (fixed and free leaves must not share a raw parameter: ``requires_grad`` is
   per tensor). A group of :math:`L` leaves on :math:`f` features each is ONE gpytorch base kernel
   with ``batch_shape = outer + [L]``, evaluated on stacked feature columns:
   ``... x n x d`` -> ``... x L x n x f`` -> ``... x L x n x m`` (leaf axis at -3; at -2 with
   ``diag``). The groups' outputs are concatenated on the leaf axis.
2. **Tree.** A sum (product) of leaves is a ``sum`` (``prod``) over their indices on the leaf axis,
   a sum (product) of inner nodes adds (multiplies) their results, and ``scale`` multiplies by an
   output scale. Output scales are grouped like leaves (prior spec, fixed or not): one raw vector
   ``raw_outputscale_<g>`` of shape ``outer x S_g`` per group, with the constraint the naive
   ``ScaleKernel`` gets (:func:`~.compile.lower_bounded` starting at the prior's mode when there is
   a prior, gpytorch's softplus ``Positive()`` otherwise).

Cost: the same floating-point work as the naive tree (every leaf's ``n x m`` block is computed once),
but O(#groups + #inner nodes) torch operations instead of O(#nodes) gpytorch module calls with their
lazy tensors. Two more savings while fitting, when every group is one-feature Matérn / RBF (the
hands-on kernel): the leaf formulas run on ``|x - x'|`` with an analytic lengthscale gradient
(:class:`_Stationary1D`; the distances hold no hyperparameter and are computed once per fit), and
``K(X, X)`` is evaluated on its ``n (n + 1) / 2`` distinct pairs only (:meth:`BatchedGraphKernel.
_symmetric`). Measured on the CNN session's kernel (n = 60, one thread, 2-core machine):
forward+backward of ``K(X, X)`` 22 -> 1.3 ms, one loss evaluation of the fit 27 -> 4.7 ms (the
rest is gpytorch's likelihood machinery, 3.5 ms with the default kernel too). Leaf blocks are
dense tensors, so a linear leaf in a sum or product never goes through the jittered root
decompositions gpytorch's lazy operators use at ``x1 == x2`` (the naive tree warns "A not p.d.,
added jitter" there).

Priors stay gpytorch priors on the group kernels (``groups.<g>.lengthscale_prior``, batched over
the leaves: the same log-probability sum as the naive tree) and on the output-scale groups
(``outputscale_prior_<g>``). Parameter *names* differ from the naive tree; :attr:`~BatchedGraphKernel.
naive_slots` maps every naive raw name (``kernels.0.base_kernel.kernels.3.raw_lengthscale``) to its
slice, and :meth:`~BatchedGraphKernel.naive_hyperparameters` /
:meth:`~BatchedGraphKernel.set_naive_hyperparameters` read and write values under the naive names.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from gpytorch.constraints import Interval, Positive
from gpytorch.kernels import Kernel, MaternKernel, RBFKernel
from torch import Tensor

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.compile import (
    _GPYTORCH_NAME,
    OUTPUTSCALE_LOWER,
    _mode,
    _prior,
    leaf_kernel,
    lower_bounded,
)
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import KernelNode, LeafNode, MaternNode, ProductNode, ScaleNode, SumNode

__all__ = ["BatchedGraphKernel", "NaiveSlot", "has_batchable_leaves"]


@dataclass(frozen=True)
class NaiveSlot:
    """Where one raw hyperparameter of the naive tree lives in a :class:`BatchedGraphKernel`.

    The naive raw tensor is ``kernel.get_parameter(parameter).select(dim, index)`` (same shape,
    same constraint, same value).

    Attributes:
        parameter: Name of the batched raw parameter (``groups.0.raw_lengthscale``).
        dim: Its leaf (or output-scale) axis, ``len(batch_shape)``.
        index: Position on that axis.
    """

    parameter: str
    dim: int
    index: int


# -- the tree as a plan of reductions ---------------------------------------------------------
@dataclass(frozen=True)
class _Leaf:
    index: int  # position on the concatenated leaf axis


@dataclass(frozen=True)
class _Scale:
    group: int  # output-scale group
    index: int  # position in that group's vector
    child: _Plan


@dataclass(frozen=True)
class _Reduce:
    product: bool
    leaves: tuple[int, ...]  # leaf-axis indices of the children that are leaves (reduced in one op)
    children: tuple[_Plan, ...]  # the other children


_Plan = _Leaf | _Scale | _Reduce


@dataclass(frozen=True)
class _Blocks:
    full: Tensor  # all leaf blocks, the leaf axis at -3 (-2 packed or diag)
    runs: dict[tuple[int, int], Tensor]  # (start, count) -> that run of leaves, split off ``full``


def _segments(plan: _Plan, total: int) -> tuple[tuple[int, int], ...] | None:
    """The runs of leaves the plan takes, ``(start, count)``, when they tile ``0 .. total`` exactly
    (then one ``split`` yields them all); ``None`` otherwise."""
    runs: list[tuple[int, int]] = []

    def walk(node: _Plan) -> None:
        if isinstance(node, _Leaf):
            runs.append((node.index, 1))
        elif isinstance(node, _Scale):
            walk(node.child)
        else:
            if node.leaves:
                start, count = node.leaves[0], len(node.leaves)
                if node.leaves != tuple(range(start, start + count)):
                    runs.append((-1, 0))  # not a run: no tiling
                runs.append((start, count))
            for child in node.children:
                walk(child)

    walk(plan)
    runs.sort()
    position = 0
    for start, count in runs:
        if start != position:
            return None
        position += count
    return tuple(runs) if position == total and len(runs) > 1 else None


def _leaf_key(node: LeafNode) -> tuple:
    """Leaves with equal keys share one batched gpytorch kernel."""
    params = tuple((p, getattr(node, f"{p}_prior"), getattr(node, p) is not None) for p in node.PARAMS)
    nu = node.nu if isinstance(node, MaternNode) else None
    return (node.KIND, nu, len(node.features), node.ard, params)


def _scale_key(node: ScaleNode) -> tuple:
    return (node.outputscale_prior, node.outputscale is not None)


def _leaves(node: KernelNode) -> list[LeafNode]:
    """The leaves in pre-order (the naive module order)."""
    if isinstance(node, LeafNode):
        return [node]
    return [leaf for child in node.child_nodes() for leaf in _leaves(child)]


def _scales(node: KernelNode) -> list[ScaleNode]:
    own = [node] if isinstance(node, ScaleNode) else []
    return own + [s for child in node.child_nodes() for s in _scales(child)]


def _root(graph: KernelGraph | KernelNode) -> KernelNode:
    return graph.root if isinstance(graph, KernelGraph) else graph


def has_batchable_leaves(graph: KernelGraph | KernelNode) -> bool:
    """Whether two or more leaves share a batching key (else the naive tree is as fast)."""
    keys = [_leaf_key(leaf) for leaf in _leaves(_root(graph))]
    return len(set(keys)) < len(keys)


def _strip_raw(name: str) -> str:
    """``kernels.0.raw_outputscale`` -> ``kernels.0.outputscale`` (the naive value's name)."""
    head, _, last = name.rpartition(".")
    return f"{head}.{last.removeprefix('raw_')}" if head else last.removeprefix("raw_")


_SQRT3, _SQRT5 = math.sqrt(3.0), math.sqrt(5.0)


class _Stationary1D(torch.autograd.Function):
    r"""Matérn-ν / RBF blocks ``k(d / l)`` of one-feature leaves with an analytic lengthscale gradient.

    Why by hand: gpytorch's ``MaternKernel`` centres and scales the inputs and takes distances by a
    squared-distance expansion and a square root for every leaf at every loss evaluation; for
    one-feature leaves ``d = |x - x'|`` is exact and holds no hyperparameter (so it is computed once
    per fit, see :meth:`BatchedGraphKernel._distances`), and with ``a = c r``, ``r = d / l``

    .. math::

        \frac{\partial k}{\partial l} = \frac{h(a)}{l}, \qquad h = \begin{cases}
        a e^{-a} & \nu = 1/2 \\ a^2 e^{-a} & \nu = 3/2 \\ \tfrac{a^2}{3} (1 + a) e^{-a} & \nu = 5/2
        \\ r^2 e^{-r^2/2} & \text{RBF} \end{cases}

    (the same closed forms as gpytorch's ``MaternKernel`` / ``RBFKernel``). Autograd through the
    elementwise formula was slower than gpytorch (about 20 elementwise passes over the ``L x n x m``
    block); this is 6-8 forward and 3 backward passes.
    """

    @staticmethod
    def forward(ctx: Any, dist: Tensor, ls: Tensor, nu: float) -> Tensor:  # type: ignore[override]
        # In place wherever possible: at n = 120 a block is 42 x 7 260 doubles (2.4 MB), and every
        # fresh tensor of that size is a new mapping the kernel must fault in (measured: 10.1 ms
        # with out-of-place arithmetic, 6.5 ms in place, for the same Matérn-5/2 values).
        need = ctx.needs_input_grad[1]
        h: Tensor | None = None
        if nu == 0.0:  # RBF: k = exp(-r^2 / 2), h = r^2 k
            r2 = (dist / ls).square_()
            k = (r2 * -0.5).exp_()
            h = r2.mul_(k) if need else None
        else:
            a = dist * ({0.5: 1.0, 1.5: _SQRT3, 2.5: _SQRT5}[nu] / ls)
            e = a.neg().exp_()
            if nu == 0.5:  # k = e^-a, h = a e^-a
                k = e
                h = a.mul_(e) if need else None
            elif nu == 1.5:  # k = (1 + a) e^-a, h = a^2 e^-a
                k = (a + 1.0).mul_(e)
                h = a.square_().mul_(e) if need else None
            else:  # k = (1 + a + a^2/3) e^-a, h = a^2/3 (1 + a) e^-a
                q = a.square().div_(3.0)
                onepa = a.add_(1.0)
                h = (q * onepa).mul_(e) if need else None
                k = q.add_(onepa).mul_(e)
        ctx.save_for_backward(h, ls)
        return k

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor | None, None]:  # type: ignore[override]
        h, ls = ctx.saved_tensors
        if h is None:
            return None, None, None
        return None, (grad * h).sum_to_size(ls.shape) / ls, None


def _stationary_1d(kernel: Kernel, dist: Tensor, diag: bool) -> Tensor:
    """Blocks of a one-feature Matérn / RBF group from its distances ``... x L x n x m``."""
    ls = kernel.lengthscale  # batch x L x 1 x 1
    if diag:  # k(0) = 1 for both families
        # dist is ... x L x n here: the diagonal's inputs (its distances are all 0)
        return torch.ones(torch.broadcast_shapes(dist.shape, ls.shape[:-1]), dtype=dist.dtype, device=dist.device)
    nu = 0.0 if isinstance(kernel, RBFKernel) else float(kernel.nu)
    return _Stationary1D.apply(dist, ls, nu)


def _is_stationary_1d(kernel: Kernel, features: int) -> bool:
    return features == 1 and type(kernel) in (MaternKernel, RBFKernel)


class _OutputscaleClosure:
    """Prior closure of output-scale group ``g`` (a class, not a lambda: deep-copies and pickles)."""

    def __init__(self, group: int) -> None:
        self.group = group

    def __call__(self, module: BatchedGraphKernel) -> Tensor:
        return module.outputscales(self.group)


class _OutputscaleSetter:
    def __init__(self, group: int) -> None:
        self.group = group

    def __call__(self, module: BatchedGraphKernel, value: Tensor | float) -> None:
        module.set_outputscales(self.group, value)


class BatchedGraphKernel(Kernel):
    r"""A kernel graph as one gpytorch kernel: batched leaf groups and tensor reductions.

    Same values, gradients, priors, constraints, initial values and fixed values as the naive
    compile (:func:`~lla_studio.core.kernels.compile.compile_kernel` with ``batched=False``); see the
    module docstring for the method.

    Args:
        graph: The kernel graph (a bare node is wrapped in a :class:`KernelGraph`).
        feature_names: Names of the input columns; inputs are ``... x n x len(feature_names)``.
        batch_shape: gpytorch batch shape of every hyperparameter (e.g. one per output).
        dtype: If given, parameters and prior buffers are cast to it before fixed values are
            written (as the naive compile does).

    Attributes:
        groups: The group kernels, ``groups[g]`` a gpytorch base kernel with batch shape
            ``batch_shape + [L_g]``.
        naive_slots: Naive raw name -> :class:`NaiveSlot`, in the naive tree's parameter order.

    Raises:
        KernelGraphError: The graph uses a feature missing from ``feature_names``.
    """

    def __init__(
        self,
        graph: KernelGraph | KernelNode,
        feature_names: Sequence[str],
        *,
        batch_shape: torch.Size = torch.Size(),
        dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(graph, KernelGraph):
            graph = KernelGraph(graph)
        graph.validate(feature_names)
        outer = torch.Size(batch_shape)
        super().__init__(batch_shape=outer)
        columns = {name: i for i, name in enumerate(feature_names)}
        axis = len(outer)  # leaf / output-scale axis of every batched parameter

        # Leaf groups, in order of first appearance; members in pre-order.
        leaves = _leaves(graph.root)
        keys: dict[tuple, int] = {}
        members: list[list[LeafNode]] = []
        slot_of_leaf: list[tuple[int, int]] = []
        for leaf in leaves:
            g = keys.setdefault(_leaf_key(leaf), len(keys))
            if g == len(members):
                members.append([])
            slot_of_leaf.append((g, len(members[g])))
            members[g].append(leaf)
        offsets = [0]
        for group in members:
            offsets.append(offsets[-1] + len(group))
        self.groups = torch.nn.ModuleList(
            [leaf_kernel(group[0], outer + torch.Size([len(group)])) for group in members]
        )
        for g, group in enumerate(members):
            cols = torch.tensor([[columns[f] for f in leaf.features] for leaf in group], dtype=torch.long)
            self.register_buffer(f"_columns_{g}", cols, persistent=False)  # L_g x f_g
        self._num_groups = len(members)
        self._fast = [_is_stationary_1d(k, len(group[0].features)) for k, group in zip(self.groups, members)]
        self._dist_cache: dict[int, tuple[Tensor, Tensor | None, Tensor]] = {}
        self._pair_cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

        # Output-scale groups: one raw vector each, registered like ScaleKernel's raw_outputscale.
        scales = _scales(graph.root)
        skeys: dict[tuple, int] = {}
        smembers: list[list[ScaleNode]] = []
        slot_of_scale: list[tuple[int, int]] = []
        for node in scales:
            g = skeys.setdefault(_scale_key(node), len(skeys))
            if g == len(smembers):
                smembers.append([])
            slot_of_scale.append((g, len(smembers[g])))
            smembers[g].append(node)
        for g, group in enumerate(smembers):
            name = f"raw_outputscale_{g}"
            self.register_parameter(name, torch.nn.Parameter(torch.zeros(*outer, len(group))))
            prior = _prior(group[0], "outputscale")
            if prior is not None:
                self.register_prior(f"outputscale_prior_{g}", prior, _OutputscaleClosure(g), _OutputscaleSetter(g))
                constraint: Interval = lower_bounded(OUTPUTSCALE_LOWER, _mode(prior), fixed=group[0].outputscale is not None)
            else:
                constraint = Positive()
            self.register_constraint(name, constraint)
        self._num_scale_groups = len(smembers)

        # The plan (tree of reductions) and the naive names, in one pre-order walk.
        slots: dict[str, NaiveSlot] = {}
        counters = [0, 0]  # next leaf, next scale (pre-order)

        def build(node: KernelNode, prefix: str) -> _Plan:
            if isinstance(node, LeafNode):
                g, j = slot_of_leaf[counters[0]]
                counters[0] += 1
                for p in node.PARAMS:
                    name = _GPYTORCH_NAME[p]
                    slots[f"{prefix}raw_{name}"] = NaiveSlot(f"groups.{g}.raw_{name}", axis, j)
                return _Leaf(offsets[g] + j)
            if isinstance(node, ScaleNode):
                g, j = slot_of_scale[counters[1]]
                counters[1] += 1
                slots[f"{prefix}raw_outputscale"] = NaiveSlot(f"raw_outputscale_{g}", axis, j)
                return _Scale(g, j, build(node.child, f"{prefix}base_kernel."))
            if isinstance(node, (SumNode, ProductNode)):
                kids = [build(c, f"{prefix}kernels.{i}.") for i, c in enumerate(node.children)]
                return _Reduce(
                    isinstance(node, ProductNode),
                    tuple(k.index for k in kids if isinstance(k, _Leaf)),
                    tuple(k for k in kids if not isinstance(k, _Leaf)),
                )
            raise KernelGraphError(f"cannot compile a {node.KIND} node", node_id=node.id)  # pragma: no cover

        self._plan = build(graph.root, "")
        self._segments = _segments(self._plan, sum(len(m) for m in members))
        self.naive_slots: dict[str, NaiveSlot] = slots

        if dtype is not None:
            self.to(dtype=dtype)
        # Fixed values after the cast, so 0.1 is not rounded to float32 first (as in the naive compile).
        for g, group in enumerate(members):
            kernel = self.groups[g]
            for p in group[0].PARAMS:
                if getattr(group[0], p) is None:
                    continue
                name = _GPYTORCH_NAME[p]
                raw = getattr(kernel, f"raw_{name}")
                values = torch.tensor([getattr(leaf, p) for leaf in group], dtype=raw.dtype, device=raw.device)
                values = values.view(len(group), *([1] * (raw.dim() - axis - 1))).expand(raw.shape)
                setattr(kernel, name, values)
                raw.requires_grad_(False)
        for g, group in enumerate(smembers):
            if group[0].outputscale is None:
                continue
            raw = getattr(self, f"raw_outputscale_{g}")
            values = torch.tensor([node.outputscale for node in group], dtype=raw.dtype, device=raw.device)
            self.set_outputscales(g, values.expand(raw.shape))
            raw.requires_grad_(False)

    # -- gpytorch plumbing ---------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        """The outer batch shape (not gpytorch's broadcast over sub-kernels: groups carry the leaf axis)."""
        return self._batch_shape

    @batch_shape.setter
    def batch_shape(self, value: torch.Size) -> None:
        self._batch_shape = torch.Size(value)

    @property
    def is_stationary(self) -> bool:
        return all(k.is_stationary for k in self.groups)

    def __getitem__(self, index: Any) -> BatchedGraphKernel:
        """Index the outer batch dimensions of every hyperparameter (gpytorch's batch indexing)."""
        if len(self.batch_shape) == 0:
            return self
        new = copy.deepcopy(self)
        index = index if isinstance(index, tuple) else (index,)
        for g in range(self._num_scale_groups):
            raw = getattr(new, f"raw_outputscale_{g}")
            raw.data = raw.data[index]
        for g, kernel in enumerate(self.groups):
            new.groups[g] = kernel[index]
        new.batch_shape = new.groups[0].batch_shape[:-1]
        return new

    # -- output scales ---------------------------------------------------------------------------
    def outputscales(self, group: int) -> Tensor:
        """Constrained output scales of group ``group``, a ``batch_shape x S_g`` tensor."""
        raw = getattr(self, f"raw_outputscale_{group}")
        return getattr(self, f"raw_outputscale_{group}_constraint").transform(raw)

    def set_outputscales(self, group: int, value: Tensor | float) -> None:
        """Write the output scales of group ``group`` (broadcast to ``batch_shape x S_g``)."""
        raw = getattr(self, f"raw_outputscale_{group}")
        value = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
        constraint = getattr(self, f"raw_outputscale_{group}_constraint")
        self.initialize(**{f"raw_outputscale_{group}": constraint.inverse_transform(value)})

    # -- the naive names -------------------------------------------------------------------------
    def naive_hyperparameters(self) -> dict[str, Tensor]:
        """Constrained hyperparameters under the naive tree's names and shapes.

        Returns:
            ``{"kernels.0.outputscale": ..., "kernels.0.base_kernel.kernels.3.lengthscale": ...}``:
            exactly the names ``named_parameters_and_constraints()`` of the naive compile yields
            without ``raw_``, in its order; each value has the naive shape (e.g. ``batch_shape x 1 x f``
            for a lengthscale, ``batch_shape`` for an output scale) and keeps its graph.
        """
        values: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}
        for name, slot in self.naive_slots.items():
            if slot.parameter not in values:
                raw = self.get_parameter(slot.parameter)
                values[slot.parameter] = self.constraint_for_parameter_name(slot.parameter).transform(raw)
            out[_strip_raw(name)] = values[slot.parameter].select(slot.dim, slot.index)
        return out

    def set_naive_hyperparameters(self, values: Mapping[str, Tensor | float]) -> None:
        """Write constrained values under naive names (``kernels.0.outputscale``); fixed ones too.

        Args:
            values: Naive name (without ``raw_``) -> value, broadcastable to the naive shape.

        Raises:
            KernelGraphError: A name the naive tree does not have.
        """
        index = {_strip_raw(n): s for n, s in self.naive_slots.items()}
        with torch.no_grad():
            for name, value in values.items():
                slot = index.get(name)
                if slot is None:
                    raise KernelGraphError(f"no hyperparameter {name!r} in the naive kernel tree")
                raw = self.get_parameter(slot.parameter)
                target = raw.select(slot.dim, slot.index)
                value = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
                constraint = self.constraint_for_parameter_name(slot.parameter)
                target.copy_(constraint.inverse_transform(value).expand(target.shape))

    # -- evaluation ------------------------------------------------------------------------------
    def _stack(self, x: Tensor, g: int) -> Tensor:
        """``... x n x d`` -> ``... x L_g x n x f_g``: the columns of group ``g``'s leaves."""
        cols: Tensor = getattr(self, f"_columns_{g}")
        return x[..., cols].transpose(-3, -2)

    def _distances(self, g: int, z1: Tensor, z2: Tensor, same: bool, diag: bool) -> Tensor:
        """``|x - x'|`` of group ``g``'s one-feature leaves, ``... x L x n x m`` (no gradient).

        While hyperparameters are fitted the inputs never change: the newest distances of each
        group are kept and reused when the inputs are equal (``torch.equal`` on ``n x f`` stacks
        is cheaper than the ``L x n x m`` subtraction).
        """
        if diag:
            return z1[..., 0]
        cached = self._dist_cache.get(g)
        if (
            cached is not None
            and cached[0].shape == z1.shape
            and torch.equal(cached[0], z1)
            and ((same and cached[1] is None) or (cached[1] is not None and cached[1].shape == z2.shape and torch.equal(cached[1], z2)))
        ):
            return cached[2]
        with torch.no_grad():
            dist = (z1 - z2.transpose(-1, -2)).abs_()
        self._dist_cache[g] = (z1.detach().clone(), None if same else z2.detach().clone(), dist)
        return dist

    def forward(
        self, x1: Tensor, x2: Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params: Any
    ) -> Tensor:
        """Evaluate the kernel.

        Args:
            x1: A ``... x n x d`` tensor of inputs (``d = len(feature_names)``).
            x2: A ``... x m x d`` tensor of inputs.
            diag: Return only the diagonal (``x1`` and ``x2`` equal).

        Returns:
            A ``... x n x m`` tensor (``... x n`` with ``diag``), ``...`` broadcast with ``batch_shape``.
        """
        if last_dim_is_batch:
            raise NotImplementedError("BatchedGraphKernel does not support last_dim_is_batch (deprecated in gpytorch)")
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        if same and not diag and all(self._fast) and not x1.requires_grad and x1.shape[-2] > 1:
            return self._symmetric(x1)
        blocks = []
        for g, kernel in enumerate(self.groups):
            z1 = self._stack(x1, g)
            z2 = z1 if same else self._stack(x2, g)
            if self._fast[g] and not (z1.requires_grad or z2.requires_grad):
                out = _stationary_1d(kernel, self._distances(g, z1, z2, same, diag), diag)
            else:
                out = kernel.forward(z1, z2, diag=diag, **params)
            blocks.append(out if isinstance(out, Tensor) else out.to_dense())
        if len(blocks) == 1:
            K = blocks[0]
        else:
            dim = -2 if diag else -3
            batch = torch.broadcast_shapes(*(b.shape[: b.dim() + dim] for b in blocks))
            K = torch.cat([b.expand(*batch, *b.shape[b.dim() + dim :]) for b in blocks], dim=dim)
        scales = [self.outputscales(g) for g in range(self._num_scale_groups)]
        return self._evaluate(self._plan, self._split(K, -2 if diag else -3), scales, diag)

    def _symmetric(self, x: Tensor) -> Tensor:
        """``K(X, X)`` from its ``n (n + 1) / 2`` distinct pairs (every group one-feature Matérn/RBF).

        ``K(X, X)`` is symmetric, and every operation of the tree (leaf formulas, sums, products,
        scales) acts pair by pair: the leaf blocks and the tree are evaluated on the packed upper
        triangle, ``... x L x P``, and unpacked once at the end (one gather). While fitting, this
        halves the elementwise work that dominates the kernel (42 leaves at n = 60: 151 200 -> 76 860
        values per pass).
        """
        n = x.shape[-2]
        rows, cols, unpack = self._pairs(n, x.device)
        blocks = []
        for g, kernel in enumerate(self.groups):
            z = self._stack(x, g)[..., 0]  # ... x L x n
            dist = self._packed_distances(g, z, rows, cols)
            ls = kernel.lengthscale[..., 0]  # batch x L x 1
            nu = 0.0 if isinstance(kernel, RBFKernel) else float(kernel.nu)
            blocks.append(_Stationary1D.apply(dist, ls, nu))
        if len(blocks) == 1:
            K = blocks[0]
        else:
            batch = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
            K = torch.cat([b.expand(*batch, *b.shape[-2:]) for b in blocks], dim=-2)
        scales = [self.outputscales(g) for g in range(self._num_scale_groups)]
        packed = self._evaluate(self._plan, self._split(K, -2), scales, diag=True)  # the leaf axis at -2, as for diag
        return packed[..., unpack]

    def _pairs(self, n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Row and column of each packed pair (``i <= j``) and the ``n x n`` map back to them."""
        cached = self._pair_cache.get(n)
        if cached is None or cached[0].device != device:
            rows, cols = torch.triu_indices(n, n, device=device)
            unpack = torch.empty(n, n, dtype=torch.long, device=device)
            index = torch.arange(rows.numel(), device=device)
            unpack[rows, cols] = index
            unpack[cols, rows] = index
            cached = self._pair_cache[n] = (rows, cols, unpack)
        return cached

    def _packed_distances(self, g: int, z: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """``|x_i - x_j|`` over the packed pairs of group ``g``, ``... x L x P`` (cached like
        :meth:`_distances`)."""
        key = -1 - g
        cached = self._dist_cache.get(key)
        if cached is not None and cached[0].shape == z.shape and torch.equal(cached[0], z):
            return cached[2]
        with torch.no_grad():
            dist = (z[..., rows] - z[..., cols]).abs_()
        self._dist_cache[key] = (z.detach().clone(), None, dist)
        return dist

    def _split(self, K: Tensor, dim: int) -> _Blocks:
        """The leaf blocks with the contiguous leaf runs the plan reduces split off in one op.

        Why: the backward of every ``narrow`` / ``select`` of ``K`` is a zero-filled tensor of K's full
        size plus an accumulation into K's gradient; ``split`` has one backward that concatenates.
        On the hands-on kernel at n = 120 (three runs of 5, 16 and 21 leaves over a 42 x 7 260 block)
        the fills alone were 0.9 of 7.8 ms per loss evaluation.
        """
        if self._segments is None:
            return _Blocks(K, {})
        sizes = [count for _, count in self._segments]
        return _Blocks(K, dict(zip(self._segments, K.split(sizes, dim))))

    def _evaluate(self, plan: _Plan, blocks: _Blocks, scales: list[Tensor], diag: bool) -> Tensor:
        """One node of the plan on the leaf blocks (``... x L x n x m``, or ``... x L x n``)."""
        dim = -2 if diag else -3
        K = blocks.full
        if isinstance(plan, _Leaf):
            run = blocks.runs.get((plan.index, 1))
            return run.squeeze(dim) if run is not None else K.select(dim, plan.index)
        if isinstance(plan, _Scale):
            s = scales[plan.group][..., plan.index]  # batch_shape
            s = s.unsqueeze(-1) if diag else s.view(*s.shape, 1, 1)
            return s * self._evaluate(plan.child, blocks, scales, diag)
        terms = []
        if plan.leaves:
            start, count = plan.leaves[0], len(plan.leaves)
            if (start, count) in blocks.runs and plan.leaves == tuple(range(start, start + count)):
                sel = blocks.runs[start, count]
            elif plan.leaves == tuple(range(start, start + count)):
                sel = K.narrow(dim, start, count)
            else:
                sel = K.index_select(dim, torch.tensor(plan.leaves, device=K.device))
            terms.append(sel.prod(dim) if plan.product else sel.sum(dim))
        terms.extend(self._evaluate(c, blocks, scales, diag) for c in plan.children)
        out = terms[0]
        for t in terms[1:]:
            out = out * t if plan.product else out + t
        return out
