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

Pending points (asynchronous parallel evaluation): trials that run on a worker while the next
configuration is proposed are passed as ``pending``, a ``m x d`` tensor of their unit-cube
encodings, BoTorch's ``X_pending``. Analytic acquisition functions cannot condition on pending
points, so with pending points each is replaced by its Monte-Carlo form, which integrates over the
pending points' unknown values jointly with the candidate (``logei`` -> ``qLogExpectedImprovement``,
``ei`` -> ``qExpectedImprovement``, ``pi`` -> ``qProbabilityOfImprovement``, ``ucb`` ->
``qUpperConfidenceBound``; ``qlognei`` takes ``X_pending`` itself): a candidate at a pending point
adds nothing to the joint improvement, so the optimizer moves away from the running trials.
Thompson sampling has no ``X_pending``: candidates that equal a pending point are removed from its
candidate set (its random draw spreads the rest). Without pending points nothing changes, so a
sequential loop proposes exactly what it did before.

Pool-based search (an objective with a finite candidate pool, e.g. the digit image search):
:func:`propose_from_pool` evaluates the acquisition function on every remaining candidate, in batches
of ``POOL_BATCH_SIZE`` (``optimize_acqf_discrete``; ``q > 1`` by sequential greedy conditioning),
and Thompson sampling draws one joint posterior sample over the remaining candidates.
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
    qExpectedImprovement,
    qLogExpectedImprovement,
    qLogNoisyExpectedImprovement,
    qProbabilityOfImprovement,
    qUpperConfidenceBound,
)
from botorch.acquisition.objective import LinearMCObjective
from botorch.exceptions.warnings import NumericsWarning
from botorch.generation.sampling import MaxPosteriorSampling
from botorch.models.model import Model
from botorch.optim import optimize_acqf, optimize_acqf_discrete, optimize_acqf_mixed
from botorch.utils.sampling import draw_sobol_samples, manual_seed

from lla_studio.core.errors import AcquisitionCancelled
from lla_studio.core.space import ChoiceParameter, SearchSpace
from lla_studio.core.specs import AcquisitionSpec

__all__ = [
    "POOL_BATCH_SIZE",
    "AcquisitionCancelled",
    "Proposal",
    "acquisition_kind",
    "build_acquisition",
    "fixed_features_list",
    "propose",
    "propose_from_pool",
]

POOL_BATCH_SIZE = 512
"""Pool candidates per acquisition evaluation (bounds memory; the cancel token is checked between)."""


@dataclass(frozen=True)
class Proposal:
    """Where the acquisition function wants to evaluate next.

    Attributes:
        candidates: ``q x d`` unit-cube encodings, snapped to representable configurations.
        value: Acquisition value of the batch (before snapping).
        kind: The acquisition function used.
        seconds: Wall-clock seconds spent optimizing.
        indices: For pool proposals, the row of each candidate in the ``candidates`` given to
            :func:`propose_from_pool`; ``None`` otherwise.
    """

    candidates: np.ndarray
    value: float
    kind: str
    seconds: float
    indices: np.ndarray | None = None


def _cancel_check(cancel: Callable[[], bool] | None) -> Callable[..., None]:
    """A callback (optimizer callback or forward hook) that raises once ``cancel()`` is true."""

    def check(*_: object) -> None:
        if cancel is not None and cancel():
            raise AcquisitionCancelled("acquisition optimization cancelled")

    return check


def _thompson(model: Model, candidates: torch.Tensor, q: int, minimize: bool) -> torch.Tensor:
    """``q`` candidates chosen by Thompson sampling (one joint posterior draw over ``candidates``)."""
    objective = LinearMCObjective(torch.tensor([-1.0 if minimize else 1.0], dtype=candidates.dtype))
    sampler = MaxPosteriorSampling(model=model, objective=objective, replacement=False)
    with torch.no_grad():
        return sampler(candidates, num_samples=q)


_WITH_PENDING = {"logei": "qlogei", "ei": "qei", "pi": "qpi", "ucb": "qucb"}
"""The Monte-Carlo form an analytic acquisition function takes when there are pending points."""


def _pending_or_none(pending: torch.Tensor | None) -> torch.Tensor | None:
    return None if pending is None or pending.shape[0] == 0 else pending


def acquisition_kind(spec_type: str, q: int = 1, pending: torch.Tensor | None = None) -> str:
    """The acquisition function used: ``qlognei`` whenever ``q > 1``, the Monte-Carlo form of an
    analytic one when there are pending points, else what the spec names."""
    if spec_type == "thompson":
        return "thompson"
    if q > 1:
        return "qlognei"
    if _pending_or_none(pending) is not None:
        return _WITH_PENDING.get(spec_type, spec_type)
    return spec_type


def build_acquisition(
    spec: AcquisitionSpec,
    model: Model,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    q: int = 1,
    pending: torch.Tensor | None = None,
) -> AcquisitionFunction:
    """The acquisition function a spec names (see :func:`acquisition_kind`).

    Args:
        spec: Acquisition settings.
        model: A fitted BoTorch model on unit-cube inputs.
        train_U: ``n x d`` encodings of the completed trials.
        train_Y: ``n x 1`` their values.
        minimize: Whether lower values are better.
        q: Batch size.
        pending: ``m x d`` encodings of trials being evaluated (``X_pending``), or ``None``.
    """
    pending = _pending_or_none(pending)
    best_f = train_Y.min() if minimize else train_Y.max()
    kind = acquisition_kind(spec.type, q, pending)
    maximize = not minimize
    if kind in ("qlogei", "qei", "qpi", "qucb"):
        # Monte-Carlo forms work on objective values, which are maximized: negate for minimization
        objective = LinearMCObjective(torch.tensor([-1.0 if minimize else 1.0], dtype=train_U.dtype))
        best = -train_Y.min() if minimize else train_Y.max()
        if kind == "qlogei":
            return qLogExpectedImprovement(model, best_f=best, objective=objective, X_pending=pending)
        if kind == "qucb":
            return qUpperConfidenceBound(model, beta=spec.beta, objective=objective, X_pending=pending)
        cls = qExpectedImprovement if kind == "qei" else qProbabilityOfImprovement
        with warnings.catch_warnings():  # as for analytic EI/PI below: the user chose them
            warnings.simplefilter("ignore", NumericsWarning)
            return cls(model, best_f=best, objective=objective, X_pending=pending)
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
        return qLogNoisyExpectedImprovement(
            model, X_baseline=train_U, objective=objective, prune_baseline=True, X_pending=pending
        )
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
    pending: torch.Tensor | None = None,
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
        pending: ``m x d`` encodings of the trials being evaluated (see the module docstring).

    Raises:
        AcquisitionCancelled: ``cancel()`` returned True.
    """
    start = time.perf_counter()
    d = space.dim
    dtype = train_U.dtype
    bounds = torch.stack([torch.zeros(d, dtype=dtype), torch.ones(d, dtype=dtype)])

    callback = _cancel_check(cancel)
    pending = _pending_or_none(pending)

    def thompson_candidates() -> torch.Tensor:
        cand = draw_sobol_samples(bounds, n=spec.thompson_candidates, q=1, seed=seed).squeeze(1)
        cand = torch.as_tensor(space.canonicalize_encoded(cand.numpy()), dtype=dtype)
        return cand if pending is None else _without_rows(cand, pending)

    def maximize(acq: AcquisitionFunction) -> tuple[torch.Tensor, torch.Tensor]:
        options = {"callback": callback}
        fixed = fixed_features_list(space) if space.choice_parameters else []
        if fixed and len(fixed) <= spec.max_choice_combinations:
            return optimize_acqf_mixed(
                acq, bounds=bounds, q=q, num_restarts=spec.num_restarts, raw_samples=spec.raw_samples,
                fixed_features_list=fixed, options=options,
            )
        return optimize_acqf(
            acq, bounds=bounds, q=q, num_restarts=spec.num_restarts, raw_samples=spec.raw_samples,
            options=options,
        )

    with manual_seed(seed):
        X, value, kind = _choose(spec, model, train_U, train_Y, minimize, q, pending, callback, thompson_candidates, maximize)
    candidates = space.canonicalize_encoded(X.detach().reshape(-1, d).cpu().numpy())
    return Proposal(candidates=candidates, value=value, kind=kind, seconds=time.perf_counter() - start)


def propose_from_pool(
    model: Model,
    spec: AcquisitionSpec,
    candidates: torch.Tensor,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    q: int = 1,
    seed: int = 0,
    cancel: Callable[[], bool] | None = None,
    max_batch_size: int = POOL_BATCH_SIZE,
    pending: torch.Tensor | None = None,
) -> Proposal:
    """The best ``q`` of a finite set of candidates under the acquisition function.

    Every candidate is scored (``optimize_acqf_discrete`` in batches of ``max_batch_size``; for
    ``q > 1`` greedily, each pick conditioning the next as a pending point, never the same row
    twice). Thompson sampling draws one joint posterior sample over all candidates per pick
    (``MaxPosteriorSampling`` without replacement).

    Args:
        model: Fitted surrogate on unit-cube inputs.
        spec: Acquisition settings (only ``type`` and ``beta`` matter here).
        candidates: A ``m x d`` tensor of unit-cube encodings to choose from (the pool images not
            yet tried).
        train_U: ``n x d`` encodings of completed trials.
        train_Y: ``n x 1`` their values.
        minimize: Whether lower values are better.
        q: Batch size (at most ``m``).
        seed: Seed of Monte-Carlo samplers and Thompson draws.
        cancel: Checked before every batch of acquisition evaluations.
        max_batch_size: Candidates per evaluation.
        pending: ``k x d`` encodings of the trials being evaluated (``X_pending``; the caller
            leaves them out of ``candidates``).

    Returns:
        A :class:`Proposal` whose ``indices`` are rows of ``candidates``.

    Raises:
        ValueError: no candidates, or ``q`` larger than their number.
        AcquisitionCancelled: ``cancel()`` returned True.
    """
    start = time.perf_counter()
    if candidates.ndim != 2 or candidates.shape[0] < 1:
        raise ValueError(f"candidates: expected a non-empty m x d tensor, got shape {tuple(candidates.shape)}")
    m, d = candidates.shape
    if not 1 <= q <= m:
        raise ValueError(f"q must be in 1..{m} (the number of candidates), got {q}")
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    candidates = candidates.to(train_U.dtype)

    check = _cancel_check(cancel)

    def score_all(acq: AcquisitionFunction) -> tuple[torch.Tensor, torch.Tensor]:
        hook = acq.register_forward_pre_hook(lambda *_: check())  # once per batch of candidates
        try:
            return optimize_acqf_discrete(acq, q=q, choices=candidates, max_batch_size=max_batch_size, unique=True)
        finally:
            hook.remove()

    check()
    with manual_seed(seed):
        X, value, kind = _choose(spec, model, train_U, train_Y, minimize, q, pending, check, lambda: candidates, score_all)
    X = X.detach().reshape(-1, d)
    indices = _rows_in(X, candidates)
    return Proposal(
        candidates=candidates[indices].cpu().numpy(), value=value, kind=kind,
        seconds=time.perf_counter() - start, indices=indices,
    )


def _choose(
    spec: AcquisitionSpec,
    model: Model,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    q: int,
    pending: torch.Tensor | None,
    check: Callable[[], None],
    thompson_candidates: Callable[[], torch.Tensor],
    optimize: Callable[[AcquisitionFunction], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, float, str]:
    """``q`` points, the acquisition value and its kind: Thompson draws over ``thompson_candidates()``,
    or the session's acquisition maximized by ``optimize`` (continuous or over a pool)."""
    if spec.type == "thompson":
        X = _thompson(model, thompson_candidates(), q, minimize)
        check()
        return X, float("nan"), "thompson"
    acq = build_acquisition(spec, model, train_U, train_Y, minimize, q, pending)
    X, acq_value = optimize(acq)
    value = float(acq_value.sum().item()) if acq_value.numel() else float("nan")
    return X, value, acquisition_kind(spec.type, q, pending)


def _without_rows(candidates: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``candidates`` less every row equal to a row of ``rows`` (kept when that would leave none)."""
    same = (candidates.unsqueeze(1) == rows.to(candidates.dtype).unsqueeze(0)).all(dim=-1).any(dim=-1)
    return candidates[~same] if bool((~same).any()) else candidates


def _rows_in(X: torch.Tensor, choices: torch.Tensor) -> np.ndarray:
    """Index of each row of ``X`` in ``choices`` (rows copied from it; a repeated row takes the next copy)."""
    out: list[int] = []
    for row in X:
        hits = torch.nonzero((choices == row).all(dim=-1)).reshape(-1).tolist()
        free = [i for i in hits if i not in out]
        if not free:  # pragma: no cover - the optimizers return rows of ``choices``
            raise RuntimeError("a proposed candidate is not in the pool")
        out.append(free[0])
    return np.asarray(out, dtype=np.int64)
