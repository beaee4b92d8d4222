"""Full-batch MAP training of a network under a Gaussian likelihood and an isotropic prior.

The objective is the negative log joint (up to constants) divided by the number of points,

    L(theta) = [ 1/2 ||y - f(X; theta)||^2 / sigma^2 + 1/2 delta ||theta||^2 ] / n,

minimized with full-batch Adam or L-BFGS, with early stopping on a loss plateau, a cancel
callable checked every step, and optional online hyperparameter updates every ``k`` epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lla_studio.core.errors import FitCancelled, SurrogateFitError
from lla_studio.core.surrogates.specs import OPTIMIZERS

__all__ = ["FitCancelled", "MAPTrainingResult", "OPTIMIZERS", "train_map"]

LBFGS_ITERATIONS_PER_EPOCH = 20


@dataclass(frozen=True)
class MAPTrainingResult:
    """Outcome of ``train_map``.

    Attributes:
        epochs: Optimizer steps taken (Adam steps or L-BFGS iterations).
        final_loss: ``L(theta*)`` (see module docstring) at the returned weights.
        converged: True when training stopped on a loss plateau before ``max_epochs``.
        loss_history: ``L`` at every step (before the step's update).
        prior_precision: ``delta`` at the end (changed only by online tuning).
        noise_std: ``sigma`` at the end (changed only by online tuning).
        tuning_rounds: Number of online hyperparameter updates.
    """

    epochs: int
    final_loss: float
    converged: bool
    loss_history: tuple[float, ...]
    prior_precision: float
    noise_std: float
    tuning_rounds: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs: must be >= 0, got {self.epochs}")
        if not (self.prior_precision > 0 and self.noise_std > 0):
            raise ValueError(
                f"prior_precision/noise_std: must be > 0, got "
                f"{self.prior_precision}/{self.noise_std}"
            )


def _check_cancel(cancel: Callable[[], bool] | None, where: str) -> None:
    if cancel is not None and cancel():
        raise FitCancelled(f"fit cancelled during {where}")


def train_map(
    net: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    prior_precision: float,
    noise_std: float,
    optimizer: str = "adam",
    learning_rate: float = 1e-2,
    max_epochs: int = 2000,
    patience: int = 100,
    rel_tol: float = 1e-4,
    warmup: int = 0,
    cancel: Callable[[], bool] | None = None,
    tune: Callable[[], tuple[float, float]] | None = None,
    tune_every: int = 0,
) -> MAPTrainingResult:
    """Train ``net`` in place to the MAP of the Gaussian model.

    Args:
        net: Network mapping ``n x d`` to ``n x 1``; trained in place.
        X: A ``n x d`` tensor of (normalized) inputs.
        y: A ``n`` tensor of (standardized) targets.
        prior_precision: ``delta`` of the isotropic Gaussian prior on all weights.
        noise_std: ``sigma`` of the Gaussian likelihood.
        optimizer: ``"adam"`` (one full-batch step per epoch) or ``"lbfgs"`` (up to
            ``LBFGS_ITERATIONS_PER_EPOCH`` strong-Wolfe L-BFGS iterations per epoch; the
            cancel callable is also checked at every function evaluation).
        learning_rate: Adam step size (L-BFGS uses unit steps with a line search).
        max_epochs: Maximum number of steps.
        patience: Stop after this many steps without a relative improvement of the best
            loss by more than ``rel_tol``.
        rel_tol: Relative improvement that resets the patience counter.
        warmup: Adam only: the step size ramps up linearly over this many steps. Adam's
            first steps move every weight by about ``learning_rate`` whatever its gradient,
            which throws a warm-started network far from its optimum; the ramp lets the
            moment estimates settle first.
        cancel: Called every step; a true return raises ``FitCancelled``.
        tune: Optional online hyperparameter update, called every ``tune_every`` steps with
            the network at its current weights; returns new ``(delta, sigma)``.
        tune_every: Period of ``tune`` in steps (0: never).

    Returns:
        A ``MAPTrainingResult``; ``net`` holds the lowest-loss weights evaluated since the
        last hyperparameter update.

    Raises:
        SurrogateFitError: The loss became NaN or infinite.
        FitCancelled: ``cancel()`` returned True.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {optimizer!r}")
    n = X.shape[0]
    params = [p for p in net.parameters() if p.requires_grad]
    delta, sigma = float(prior_precision), float(noise_std)

    def objective() -> torch.Tensor:
        f = net(X).squeeze(-1)
        sq = torch.stack([(p * p).sum() for p in params]).sum()
        return (0.5 * ((y - f) ** 2).sum() / sigma**2 + 0.5 * delta * sq) / n

    def make_optimizer() -> torch.optim.Optimizer:
        if optimizer == "adam":
            try:  # the fused kernel is ~30% faster per step for small networks on CPU
                return torch.optim.Adam(params, lr=learning_rate, fused=True)
            except (RuntimeError, ValueError):
                return torch.optim.Adam(params, lr=learning_rate)
        return torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=LBFGS_ITERATIONS_PER_EPOCH,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )

    opt = make_optimizer()
    schedule = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warmup))
        if optimizer == "adam" and warmup > 0
        else None
    )
    history: list[float] = []
    best = math.inf  # lowest loss evaluated (at the weights in best_state)
    reference = math.inf  # best loss at the last step that counted as progress
    best_state = [p.detach().clone() for p in params]
    stall = 0
    converged = False
    rounds = 0
    epoch = 0
    net.train()

    def closure() -> torch.Tensor:
        nonlocal best
        if optimizer == "lbfgs":
            _check_cancel(cancel, f"MAP training (L-BFGS step {epoch + 1})")
        opt.zero_grad(set_to_none=True)
        loss = objective()
        value = loss.item()
        if not math.isfinite(value):
            raise SurrogateFitError(
                f"MAP training: loss became {value} at step {epoch + 1} "
                f"(learning_rate={learning_rate}, prior_precision={delta:g}, "
                f"noise_std={sigma:g}); lower the learning rate or check the data"
            )
        if value < best:  # the weights that produced it are the current ones
            best = value
            with torch.no_grad():
                for b, p in zip(best_state, params):
                    b.copy_(p)
        loss.backward()
        return loss

    def restore_best() -> None:
        with torch.no_grad():
            for b, p in zip(best_state, params):
                p.copy_(b)

    for epoch in range(max_epochs):
        _check_cancel(cancel, f"MAP training (step {epoch + 1})")
        history.append(float(opt.step(closure).detach()))
        if schedule is not None:
            schedule.step()
        if best < reference - rel_tol * abs(reference) or not math.isfinite(reference):
            reference, stall = best, 0
        else:
            stall += 1
        if tune is not None and tune_every > 0 and (epoch + 1) % tune_every == 0:
            restore_best()
            net.eval()
            delta, sigma = tune()
            net.train()
            rounds += 1
            with torch.no_grad():
                best = reference = objective().item()
            stall = 0
            opt = make_optimizer()
            if schedule is not None:
                schedule = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda k: min(1.0, (k + 1) / warmup)
                )
            continue
        if stall >= patience:
            converged = True
            break

    restore_best()
    with torch.no_grad():
        final = objective().item()
    net.eval()
    if not math.isfinite(final):
        raise SurrogateFitError(f"MAP training: final loss is {final}")
    return MAPTrainingResult(
        epochs=len(history),
        final_loss=final,
        converged=converged,
        loss_history=tuple(history),
        prior_precision=delta,
        noise_std=sigma,
        tuning_rounds=rounds,
    )
