"""A planned transform chain evaluated on torch tensors: unit-cube encodings -> named features.

:class:`~lla_studio.core.transforms.FeaturePlan` (torch-free) checks a chain against the search space
and names every feature after every step; :class:`FeatureMap` turns each step into a tensor op
(differentiable), so the same code serves training data, plotting grids and acquisition
optimization. Written here rather than as BoTorch input transforms because the steps work on named,
conditional features (placeholders for inactive parameters, choice indices, group ratios) that
BoTorch's column-wise transforms do not describe; the models still normalize and standardize
with BoTorch's own transforms.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lla_studio.core.errors import TransformError
from lla_studio.core.space import ChoiceParameter, IntegerParameter, RealParameter, SearchSpace
from lla_studio.core.transforms import (
    AffineStep,
    CombineStep,
    DropStep,
    FeaturePlan,
    GroupRatioStep,
    LogStep,
    OneHotStep,
    RenameStep,
    Step,
    TransformChain,
)

__all__ = ["FeatureMap"]

_Env = dict[str, torch.Tensor]
"""Named feature tensors, in feature order (each op returns a new one)."""


def _sum(xs: list[torch.Tensor]) -> torch.Tensor:
    return functools.reduce(operator.add, xs)


def _product(xs: list[torch.Tensor]) -> torch.Tensor:
    return functools.reduce(operator.mul, xs)


_COMBINE_FNS: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]] = {
    "sum": _sum,
    "product": _product,
    "ratio": lambda xs: xs[0] / xs[1],
    "log_product": lambda xs: _sum([torch.log(x) for x in xs]),
    "log_ratio": lambda xs: torch.log(xs[0]) - torch.log(xs[1]),
}


def _rebuild(env: _Env, consumed: Sequence[str], made: _Env, order: Sequence[str]) -> _Env:
    merged = {k: v for k, v in env.items() if k not in consumed}
    merged.update(made)
    return {name: merged[name] for name in order}


def _op(step: Step, before: Sequence[str], after: Sequence[str]) -> Callable[[_Env], _Env]:
    """The tensor op of one planned step (``before`` / ``after``: the feature names around it)."""
    if isinstance(step, LogStep):
        feats, prefix = step.features, step.prefix
        return lambda env: _rebuild(env, feats, {prefix + n: torch.log(env[n]) for n in feats}, after)
    if isinstance(step, AffineStep):
        out = step.name or step.feature
        f, a, b = step.feature, step.scale, step.shift
        return lambda env: _rebuild(env, [f], {out: env[f] * a + b}, after)
    if isinstance(step, OneHotStep):
        f = step.feature
        names = [n for n in after if n not in before]  # the indicators, in choice order

        def one_hot(env: _Env) -> _Env:
            idx = torch.round(env[f])
            return _rebuild(env, [f], {n: (idx == i).to(idx.dtype) for i, n in enumerate(names)}, after)

        return one_hot
    if isinstance(step, GroupRatioStep):
        feats, group, log_ratios = step.features, step.group, step.log_ratios

        def group_ratio(env: _Env) -> _Env:
            logs = torch.stack([torch.log(env[n]) for n in feats], dim=-1)
            mean = logs.mean(dim=-1)
            made = {f"{group}_logmean": mean}
            for i, n in enumerate(feats):
                r = logs[..., i] - mean
                made[f"{n}_ratio"] = r if log_ratios else torch.exp(r)
            return _rebuild(env, feats, made, after)

        return group_ratio
    if isinstance(step, CombineStep):
        fn, feats, name = _COMBINE_FNS[step.op], step.features, step.name
        consumed = () if step.keep else feats
        return lambda env: _rebuild(env, consumed, {name: fn([env[n] for n in feats])}, after)
    if isinstance(step, RenameStep):
        m = dict(step.mapping)
        return lambda env: {m.get(k, k): v for k, v in env.items()}
    if isinstance(step, DropStep):
        dropped = set(step.features)
        return lambda env: {k: v for k, v in env.items() if k not in dropped}
    raise TypeError(f"unknown transform step {step!r}")


class FeatureMap(FeaturePlan):
    """A transform chain compiled for one search space: unit-cube encodings -> named features.

    Args:
        space: The search space.
        chain: The transform chain.
    """

    def __init__(self, space: SearchSpace, chain: TransformChain) -> None:
        super().__init__(space, chain)
        before = [p.name for p in space.parameters]
        ops = []
        for step, after in zip(chain.steps, self.stage_names):
            ops.append(_op(step, before, after))
            before = list(after)
        self._ops = tuple(ops)

    @classmethod
    def of(cls, session: Any) -> FeatureMap:
        """The feature map of a :class:`~lla_studio.core.session.Session` (its space and transforms)."""
        return cls(session.search_space, session.transforms)

    def values_from_unit(self, U: torch.Tensor) -> _Env:
        """Parameter values (relaxed: integers not rounded) from unit-cube encodings ``... x d``."""
        env: _Env = {}
        for j, p in enumerate(self.space.parameters):
            u = U[..., j].clamp(0.0, 1.0)
            if isinstance(p, (RealParameter, IntegerParameter)):
                if p.log:
                    lo, hi = math.log(p.low), math.log(p.high)
                    env[p.name] = torch.exp(lo + u * (hi - lo))
                else:
                    env[p.name] = p.low + u * (p.high - p.low)
            else:
                env[p.name] = torch.round(u * (len(p.choices) - 1))
        if self.space.is_conditional:
            self._apply_placeholders(env)
        return env

    def _apply_placeholders(self, env: _Env) -> None:
        """Inactive parameters take their placeholder, so the features never depend on them."""
        active: dict[str, torch.Tensor] = {}
        order = self.space._order  # parents before children
        for name in order:
            p = self.space[name]
            ref = env[name]
            mask = torch.ones_like(ref, dtype=torch.bool)
            for c in p.conditions:
                parent = self.space[c.parent]
                pv = env[c.parent]
                if isinstance(parent, ChoiceParameter):
                    targets = [float(parent.index(v)) for v in c.values]
                else:
                    pv = torch.round(pv)
                    targets = [float(v) for v in c.values]
                hit = torch.zeros_like(mask)
                for t in targets:
                    hit = hit | (pv == t)
                mask = mask & active[c.parent] & hit
            active[name] = mask
            if p.conditions:
                if isinstance(p, ChoiceParameter):
                    placeholder = float(p.index(p.placeholder))
                else:
                    placeholder = float(p.placeholder)
                env[name] = torch.where(mask, ref, torch.full_like(ref, placeholder))

    def __call__(self, U: torch.Tensor) -> torch.Tensor:
        """Features of unit-cube encodings.

        Args:
            U: A ``batch_shape x d`` tensor of unit-cube encodings.

        Returns:
            A ``batch_shape x m`` tensor of features, in :attr:`feature_names` order.
        """
        if U.shape[-1] != self.space.dim:
            raise TransformError(f"expected encodings with {self.space.dim} columns, got {U.shape[-1]}")
        env = self.values_from_unit(U)
        for op in self._ops:
            env = op(env)
        return torch.stack([env[n] for n in self.feature_names], dim=-1)

    def features_of(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """``n x m`` float64 features of configurations (each validated)."""
        U = torch.as_tensor(self.space.encode_many(configs), dtype=torch.float64)
        return self(U).detach().numpy()
