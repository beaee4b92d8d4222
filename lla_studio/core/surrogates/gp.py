"""Exact GP surrogate: BoTorch's ``SingleTaskGP`` with the session's kernel graph over named features.

The model's inputs are unit-cube encodings of configurations (``n x d``). Two input transforms turn
them into what the kernel sees: :class:`FeatureInputTransform` (the session's transform chain,
differentiable) and BoTorch's ``Normalize`` of the features to the unit cube by their known bounds.
Outcomes are standardized by ``Standardize``. Hyperparameters are fitted by maximizing the marginal
likelihood with ``botorch.fit.fit_gpytorch_mll``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import MIN_INFERRED_NOISE_LEVEL
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.priors import LogNormalPrior
import gpytorch
from botorch.optim.closures import ForwardBackwardClosure
from botorch.optim.utils import get_parameters_and_bounds
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.cholesky import psd_safe_cholesky
from linear_operator.utils.errors import NanError, NotPSDError

from lla_studio.core.errors import FitCancelled, SurrogateFitError
from lla_studio.core.kernels import KernelGraph, default_kernel
from lla_studio.core.kernels.compile import compile_kernel, lower_bounded
from lla_studio.core.features import FeatureMap
from lla_studio.core.surrogates.feature_transform import FeatureInputTransform, feature_input_transform

__all__ = ["DenseExactLoss", "FeatureInputTransform", "FitCancelled", "GPFit", "fit_gp", "gp_hyperparameters"]


@dataclass(frozen=True)
class GPFit:
    """A fitted GP and what the fit found.

    Attributes:
        model: The fitted ``SingleTaskGP`` (eval mode).
        hyperparameters: Named hyperparameter values (lengthscales per leaf, output scales, noise).
        mll: Final marginal log likelihood per data point (BoTorch's normalization).
        seconds: Wall-clock seconds of the fit.
    """

    model: SingleTaskGP
    hyperparameters: dict[str, list[float]] = field(default_factory=dict)
    mll: float = float("nan")
    seconds: float = 0.0


LBFGS_OPTIONS = {"maxcor": 60}
"""L-BFGS-B options of the hyperparameter fit. A longer memory than scipy's default (10 pairs)
reaches the same optimum in fewer loss evaluations once there are more than a handful of
hyperparameters. Measured on the CNN space (``benchmarks/kernel_speed.py``' data), in log
coordinates: the 42-leaf hands-on kernel 26 -> 23 iterations at n = 60 and 82 -> 49 at n = 120, the
default Matérn ARD kernel 54 -> 45 at n = 120; the same loss to 1e-7. (In linear coordinates it
was 893 -> 302 for the hands-on kernel at n = 60.)"""


def build_gp(
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    feature_map: FeatureMap,
    kernel: KernelGraph | None = None,
    batched: bool = True,
) -> SingleTaskGP:
    """Build (not fit) the GP.

    Args:
        train_U: ``n x d`` unit-cube encodings (float64).
        train_Y: ``n x 1`` observed values.
        feature_map: The session's compiled transform chain.
        kernel: The kernel graph (``None``: :func:`default_kernel` over all features).
        batched: Compile composite kernels to batched leaves (``False``: the naive gpytorch tree,
            the reference; same values).
    """
    names = feature_map.feature_names
    graph = kernel if kernel is not None else default_kernel(names)
    covar = compile_kernel(graph, names, dtype=train_U.dtype, batched=batched)
    return SingleTaskGP(
        train_X=train_U,
        train_Y=train_Y,
        likelihood=_likelihood(),
        covar_module=covar,
        input_transform=feature_input_transform(feature_map, train_U.dtype),
        outcome_transform=Standardize(m=1),
    )


def _likelihood() -> GaussianLikelihood:
    """BoTorch's default likelihood (``LogNormal(-4, 1)`` noise prior, noise >= 1e-4, starting at the
    prior's mode) with the noise optimized in log coordinates (see
    :func:`~lla_studio.core.kernels.compile.lower_bounded`: 282 -> 23 L-BFGS iterations with the
    kernels' own log coordinates on the CNN session's hands-on kernel at n = 60)."""
    prior = LogNormalPrior(loc=-4.0, scale=1.0)
    return GaussianLikelihood(
        noise_prior=prior, noise_constraint=lower_bounded(MIN_INFERRED_NOISE_LEVEL, float(prior.mode))
    )


def gp_hyperparameters(model: torch.nn.Module) -> dict[str, list[float]]:
    """Constrained hyperparameter values by name (``covar_module.base_kernel.lengthscale`` ...).

    A kernel that stores its hyperparameters batched (one with ``naive_hyperparameters()``, e.g.
    :class:`~lla_studio.core.kernels.batched.BatchedGraphKernel`) reports them under the names and
    in the order of the naive kernel tree, so the keys do not depend on how the graph was compiled.
    """
    batched = {
        f"{name}." if name else "": module
        for name, module in model.named_modules()
        if callable(getattr(module, "naive_hyperparameters", None))
    }
    reported: set[str] = set()
    out: dict[str, list[float]] = {}
    for name, param, constraint in model.named_parameters_and_constraints():
        if name.startswith("input_transform") or name.startswith("outcome_transform"):
            continue
        prefix = next((p for p in batched if name.startswith(p)), None)
        if prefix is not None:  # a batched kernel's parameter: at its first, all of its values
            if prefix not in reported:
                reported.add(prefix)
                for key, value in batched[prefix].naive_hyperparameters().items():
                    out[prefix + key] = value.detach().reshape(-1).cpu().tolist()
            continue
        value = constraint.transform(param) if constraint is not None else param
        key = name.replace("raw_", "")
        out[key] = value.detach().reshape(-1).cpu().tolist()
    return out


def fit_gp(
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    feature_map: FeatureMap,
    kernel: KernelGraph | None = None,
    cancel: Callable[[], bool] | None = None,
    warm_start: dict[str, torch.Tensor] | None = None,
    batched: bool = True,
) -> GPFit:
    """Fit the GP's hyperparameters by marginal likelihood.

    Args:
        train_U: ``n x d`` unit-cube encodings (float64).
        train_Y: ``n x 1`` observed values (finite).
        feature_map: The session's compiled transform chain.
        kernel: Kernel graph (``None``: the default).
        cancel: Checked at every optimizer iteration; when it returns True the fit stops with
            :class:`FitCancelled`.
        warm_start: A previous fit's ``state_dict`` to start the optimizer from (used when the
            shapes agree; the training data are replaced).
        batched: Compile composite kernels to batched leaves (see :func:`build_gp`).

    Raises:
        SurrogateFitError: the fit failed numerically (non-PD matrix after jitter, NaN).
        FitCancelled: ``cancel()`` returned True.
    """
    if train_U.ndim != 2 or train_Y.shape != (train_U.shape[0], 1):
        raise SurrogateFitError(f"expected n x d inputs and n x 1 outputs, got {tuple(train_U.shape)} and {tuple(train_Y.shape)}")
    if train_U.shape[0] < 1:
        raise SurrogateFitError("no completed trials to fit a surrogate to")
    if not torch.isfinite(train_Y).all():
        raise SurrogateFitError("training values contain NaN or inf")
    train_Y = train_Y.to(train_U)
    start = time.perf_counter()
    model = build_gp(train_U, train_Y, feature_map, kernel, batched)
    if warm_start is not None:
        _load_compatible(model, warm_start)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    loss = DenseExactLoss(mll)
    parameters = {n: p for n, p in get_parameters_and_bounds(mll)[0].items() if p.requires_grad}
    closure = ForwardBackwardClosure(forward=loss if cancel is None else _checked(loss, cancel), parameters=parameters)
    fit_kwargs: dict[str, Any] = {
        "closure": closure,
        "optimizer_kwargs": {"options": dict(LBFGS_OPTIONS), "parameters": parameters},
    }
    try:
        fit_gpytorch_mll(mll, **fit_kwargs)
        model.eval()
        with torch.no_grad():
            mll.train()
            value = -float(loss())
            mll.eval()
    except FitCancelled:
        raise
    except (ModelFittingError, NotPSDError, NanError, RuntimeError, ValueError) as err:
        raise SurrogateFitError(f"GP fit failed: {type(err).__name__}: {err}") from None
    model.eval()
    if not np.isfinite(value):
        raise SurrogateFitError(f"GP fit ended with a non-finite marginal likelihood ({value})")
    return GPFit(model=model, hyperparameters=gp_hyperparameters(model), mll=value, seconds=time.perf_counter() - start)


class DenseExactLoss:
    """The negative exact marginal log likelihood per data point of a ``SingleTaskGP``, with its
    priors: the value of BoTorch's loss closure for ``ExactMarginalLogLikelihood`` (same value and
    gradient to round-off, ``tests/core/test_gp_surrogate.py``), computed on the dense ``n x n``
    covariance.

    Why by hand: gpytorch's ``ExactMarginalLogLikelihood`` evaluates the kernel lazily
    (``LazyEvaluatedKernelTensor`` -> ``AddedDiagLinearOperator`` -> ``MultivariateNormal.log_prob``)
    and walks the module tree for priors at every evaluation. For the exact fits of this product
    (n of a few hundred at most) that bookkeeping cost more than the kernel: on the CNN space at
    n = 60 one loss + gradient took 2.05 ms (batched hands-on kernel) and 15.1 ms (naive tree) through
    gpytorch, 1.41 and 10.6 ms here. The pieces are still gpytorch's and linear_operator's: the
    kernel module, the likelihood's noise, the priors and their closures (listed once), and
    ``psd_safe_cholesky`` with its jitter; BoTorch's ``ForwardBackwardClosure`` and
    ``fit_gpytorch_mll`` drive it.
    """

    def __init__(self, mll: ExactMarginalLogLikelihood) -> None:
        self.model = mll.model
        self.likelihood = mll.likelihood
        # As gpytorch's ExactMarginalLogLikelihood: the priors of the model (the likelihood is in it).
        self.priors = [(module, prior, closure) for _, module, prior, closure, _ in self.model.named_priors()]
        transform = getattr(self.model, "input_transform", None)
        # Transforms without trained parameters (ours: the feature map and Normalize by known
        # bounds) give the same features at every evaluation of a fit: transformed once.
        self._fixed_inputs = transform is None or not any(p.requires_grad for p in transform.parameters())
        self._inputs: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def _features(self) -> torch.Tensor:
        model = self.model
        X = model.train_inputs[0]
        cached = self._inputs
        if self._fixed_inputs and cached is not None and cached[0] is X and cached[1] == X._version and model.training:
            return cached[2]
        x = model.transform_inputs(X)  # BoTorch transforms train inputs in forward
        if self._fixed_inputs and model.training:
            self._inputs = (X, X._version, x)
        return x

    def __call__(self, **_: Any) -> torch.Tensor:
        model = self.model
        y = model.train_targets
        n = y.shape[-1]
        x = self._features()
        with gpytorch.settings.lazily_evaluate_kernels(False):
            K = model.covar_module(x).to_dense()
        r = (y - model.mean_module(x)).unsqueeze(-1)
        K = K + torch.diag_embed(self.likelihood.noise.expand(*K.shape[:-1]))
        L = psd_safe_cholesky(K)
        a = torch.linalg.solve_triangular(L, r, upper=False)
        log_p = -0.5 * a.square().sum() - L.diagonal(dim1=-2, dim2=-1).log().sum() - 0.5 * n * math.log(2.0 * math.pi)
        for module, prior, closure in self.priors:
            log_p = log_p + prior.log_prob(closure(module)).sum()
        return -log_p / n


def _checked(loss: Callable[..., torch.Tensor], cancel: Callable[[], bool]) -> Callable[..., torch.Tensor]:
    """``loss`` checking ``cancel`` before every evaluation.

    Why not scipy's ``callback``: BoTorch's callback wrapper evaluates the loss once more at every
    iteration to report it (measured: +20 % of a fit). This check costs nothing.
    """

    def checked(**kwargs: Any) -> torch.Tensor:
        if cancel():
            raise FitCancelled("fit cancelled")
        return loss(**kwargs)

    return checked


def _load_compatible(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy hyperparameters whose names and shapes agree (skips data and transforms)."""
    own = model.state_dict()
    usable = {
        k: v
        for k, v in state.items()
        if k in own and own[k].shape == v.shape and "transform" not in k and not k.startswith("train")
    }
    model.load_state_dict({**own, **usable})
