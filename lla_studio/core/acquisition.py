"""A thin layer over BoTorch's acquisition functions and ``optimize_acqf``.

Acquisition functions run on unit-cube encodings of configurations. The surrogate models the values
as the user measures them; minimization is handled with ``maximize=False`` (analytic functions) or a
negating objective (Monte-Carlo ones), so the model's mean stays in the user's units.

Mixed and conditional spaces: when the space has choice parameters, every valid combination of
choice values (:meth:`SearchSpace.choice_combinations`) is fixed in turn and the continuous rest is
optimized (``optimize_acqf_mixed``); coordinates of parameters that a combination makes inactive are
fixed at their placeholders too. Above ``max_choice_combinations`` combinations, a relaxation is
used: the choice coordinates are chosen by the raw-sample heuristic and kept during gradient
refinement (the features round them, so their gradient is zero). Integer parameters are optimized
as continuous and rounded when the candidate is decoded.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from botorch.acquisition import (
    AcquisitionFunction,
    ExpectedImprovement,
    LogExpectedImprovement,
    ProbabilityOfImprovement,
    UpperConfidenceBound,
    qLogNoisyExpectedImprovement,
)
from botorch.acquisition.objective import LinearMCObjective
from botorch.exceptions.warnings import NumericsWarning
from botorch.generation.sampling import MaxPosteriorSampling
from botorch.models.model import Model
from botorch.optim import optimize_acqf, optimize_acqf_mixed
from botorch.utils.sampling import draw_sobol_samples, manual_seed

from lla_studio.core.errors import Cancelled
from lla_studio.core.space import ChoiceParameter, SearchSpace
from lla_studio.core.specs import AcquisitionSpec

__all__ = ["AcquisitionCancelled", "Proposal", "build_acquisition", "fixed_features_list", "propose"]


class AcquisitionCancelled(Cancelled):
    """Raised inside the optimizer when the cancel token fires."""


@dataclass(frozen=True)
class Proposal:
    """Where the acquisition function wants to evaluate next.

    Attributes:
        candidates: ``q x d`` unit-cube encodings, snapped to representable configurations.
        value: Acquisition value of the batch (before snapping).
        kind: The acquisition function used.
        seconds: Wall-clock seconds spent optimizing.
    """

    candidates: np.ndarray
    value: float
    kind: str
    seconds: float


def build_acquisition(
    spec: AcquisitionSpec,
    model: Model,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    q: int = 1,
) -> AcquisitionFunction:
    """The acquisition function a spec names (``qlognei`` whenever ``q > 1``).

    Args:
        spec: Acquisition settings.
        model: A fitted BoTorch model on unit-cube inputs.
        train_U: ``n x d`` encodings of the completed trials.
        train_Y: ``n x 1`` their values.
        minimize: Whether lower values are better.
        q: Batch size.
    """
    best_f = train_Y.min() if minimize else train_Y.max()
    kind = "qlognei" if q > 1 and spec.type not in ("thompson",) else spec.type
    maximize = not minimize
    if kind == "logei":
        return LogExpectedImprovement(model, best_f=best_f, maximize=maximize)
    if kind in ("ei", "pi"):
        # The user chose plain EI/PI on purpose (e.g. to compare with LogEI); BoTorch's advice to
        # switch is shown in the acquisition picker, not raised on every step.
        cls = ExpectedImprovement if kind == "ei" else ProbabilityOfImprovement
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericsWarning)
            return cls(model, best_f=best_f, maximize=maximize)
    if kind == "ucb":
        return UpperConfidenceBound(model, beta=spec.beta, maximize=maximize)
    if kind == "qlognei":
        objective = LinearMCObjective(torch.tensor([-1.0 if minimize else 1.0], dtype=train_U.dtype))
        return qLogNoisyExpectedImprovement(model, X_baseline=train_U, objective=objective, prune_baseline=True)
    raise ValueError(f"acquisition {kind!r} has no acquisition function (Thompson sampling samples directly)")


def fixed_features_list(space: SearchSpace) -> list[dict[int, float]]:
    """One ``{column: encoded value}`` per valid combination of choice values.

    Parameters inactive under a combination (when their conditions depend on choices only) are
    fixed at the encoding of their placeholder.
    """
    out: list[dict[int, float]] = []
    for combo in space.choice_combinations():
        fixed: dict[int, float] = {}
        active = space.active_names({**{p.name: p.placeholder for p in space.parameters}, **combo})
        for j, p in enumerate(space.parameters):
            if isinstance(p, ChoiceParameter):
                fixed[j] = p.to_unit(combo[p.name]) if p.name in combo else p.to_unit(p.placeholder)
            elif p.conditions and p.name not in active and all(
                isinstance(space[c.parent], ChoiceParameter) for c in p.conditions
            ):
                fixed[j] = p.to_unit(p.placeholder)
        out.append(fixed)
    return out


def propose(
    model: Model,
    spec: AcquisitionSpec,
    space: SearchSpace,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    q: int = 1,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
) -> Proposal:
    """Optimize the acquisition function and return the next ``q`` candidates.

    Args:
        model: Fitted surrogate on unit-cube inputs.
        spec: Acquisition settings (type, restarts, raw samples, ...).
        space: The search space (for choices, conditions and snapping).
        train_U: ``n x d`` encodings of completed trials.
        train_Y: ``n x 1`` their values.
        minimize: Whether lower values are better.
        q: Batch size.
        seed: Seed for raw samples, restarts and Thompson draws.
        cancel: Checked at every optimizer iteration.

    Raises:
        AcquisitionCancelled: ``cancel()`` returned True.
    """
    start = time.perf_counter()
    d = space.dim
    dtype = train_U.dtype
    bounds = torch.stack([torch.zeros(d, dtype=dtype), torch.ones(d, dtype=dtype)])

    def callback(*_: object) -> None:
        if cancel is not None and cancel():
            raise AcquisitionCancelled("acquisition optimization cancelled")

    with manual_seed(seed):
        if spec.type == "thompson":
            cand = draw_sobol_samples(bounds, n=spec.thompson_candidates, q=1, seed=seed).squeeze(1)
            cand = torch.as_tensor(space.canonicalize_encoded(cand.numpy()), dtype=dtype)
            objective = LinearMCObjective(torch.tensor([-1.0 if minimize else 1.0], dtype=dtype))
            sampler = MaxPosteriorSampling(model=model, objective=objective, replacement=False)
            with torch.no_grad():
                X = sampler(cand, num_samples=q)
            callback()
            value = float("nan")
            kind = "thompson"
        else:
            acq = build_acquisition(spec, model, train_U, train_Y, minimize, q)
            kind = "qlognei" if q > 1 else spec.type
            options = {"callback": callback}
            fixed = fixed_features_list(space) if space.choice_parameters else []
            if fixed and len(fixed) <= spec.max_choice_combinations:
                X, acq_value = optimize_acqf_mixed(
                    acq, bounds=bounds, q=q, num_restarts=spec.num_restarts, raw_samples=spec.raw_samples,
                    fixed_features_list=fixed, options=options,
                )
            else:
                X, acq_value = optimize_acqf(
                    acq, bounds=bounds, q=q, num_restarts=spec.num_restarts, raw_samples=spec.raw_samples,
                    options=options,
                )
            value = float(acq_value.sum().item()) if acq_value.numel() else float("nan")
    candidates = space.canonicalize_encoded(X.detach().reshape(-1, d).cpu().numpy())
    return Proposal(candidates=candidates, value=value, kind=kind, seconds=time.perf_counter() - start)
