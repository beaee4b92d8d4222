"""Linearized Laplace approximation (LLA): a trained network turned into a GP-like botorch Model.

Mathematics (all on standardized targets ``y``; ``J = df/dtheta`` at the MAP ``theta*``):

* prior kernel (empirical NTK): ``k(x, x') = J(x) J(x')^T / delta``;
* predictive: mean ``f(x; theta*)``, covariance
  ``k(X*, X*) - k(X*, X) (K + sigma^2 I)^{-1} k(X, X*)`` (the GGN/"glm" predictive);
* evidence (laplace-torch's ``log_marginal_likelihood``):
  ``log p(y | theta*) - 1/2 [log det(I + J J^T / (sigma^2 delta)) + delta ||theta*||^2]``.

At fit time one symmetric eigendecomposition of the smaller Gram matrix (``J J^T``, ``n x n``,
or ``J^T J``, ``p x p``) is cached as ``(lam, B)`` with ``B^T B = J^T J`` and ``lam`` the
eigenvalues. The weight-space posterior covariance is then
``Sigma = I / delta - W^T W`` with ``W = diag(1 / sqrt(delta (sigma^2 delta + lam))) B``, and
the log-determinant is ``sum log(1 + lam / (sigma^2 delta))``: changing ``(delta, sigma)``
(tuning, or a slider in the GUI) costs ``O(r p)`` instead of a new ``O(n^3)`` factorization.
This is exact (no Kronecker or diagonal approximation): ``O(n^2 p + n^3)`` at fit time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.optimize
import torch
from botorch.models.model import Model
from botorch.models.transforms.input import InputTransform, Normalize
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DenseLinearOperator
from torch import Tensor, nn

from lla_studio.core.errors import SurrogateFitError
from lla_studio.core.surrogates.jacobians import JacobianFeatures, network_features
from lla_studio.core.surrogates.map_training import (
    FitCancelled,
    MAPTrainingResult,
    train_map,
)
from lla_studio.core.surrogates.networks import build
from lla_studio.core.surrogates.specs import LLASettings, LLASettingsError, NetworkSpec, _positive

__all__ = [
    "FitCancelled",
    "LLAFitReport",
    "LLASettings",
    "LLASettingsError",
    "LinearizedLaplaceModel",
    "fit_lla",
    "laplace_log_evidence",
]

_MIN_VARIANCE = 1e-12  # floor of predictive variances on the standardized scale
# Nugget added to joint (q > 1) covariances on the standardized scale: the joint LLA
# covariance of many points can be singular (a ReLU network's Jacobian is affine in x on each
# linear region), and this keeps a Cholesky (botorch's sampler) from needing jitter.
_JOINT_NUGGET = {torch.float64: 1e-10, torch.float32: 1e-6}


@dataclass(frozen=True)
class LLAFitReport:
    """What a fit did and found.

    Attributes:
        prior_precision: Final ``delta``.
        noise_std: Final ``sigma`` on the standardized-target scale.
        noise_std_original: ``sigma`` on the original target scale.
        log_marginal_likelihood: Laplace evidence of the standardized targets, as defined
            by laplace-torch's ``log_marginal_likelihood``.
        log_marginal_likelihood_original: The same evidence of the original targets
            (``- n log(y_std)``).
        n_train: Number of training points.
        n_params: Number of weights in the Laplace approximation.
        subset_of_weights: ``"all"`` or ``"last_layer"``.
        epochs: MAP optimizer steps.
        final_loss: MAP loss per point at ``theta*`` with the training hyperparameters.
        converged: MAP training stopped on a plateau.
        warm_started: Training started from previous weights.
        tuning: Tuning mode used.
        tuning_rounds: Number of hyperparameter optimizations run.
        loss_history: MAP loss after every step.
        seconds_training: Wall time of MAP training (incl. online tuning).
        seconds_laplace: Wall time of Jacobian + eigendecomposition.
        seconds_tuning: Wall time of post-hoc tuning.
        warnings: Human-readable warnings (bounds hit, incompatible warm start, ...).
    """

    prior_precision: float
    noise_std: float
    noise_std_original: float
    log_marginal_likelihood: float
    log_marginal_likelihood_original: float
    n_train: int
    n_params: int
    subset_of_weights: str
    epochs: int
    final_loss: float
    converged: bool
    warm_started: bool
    tuning: str
    tuning_rounds: int = 0
    loss_history: tuple[float, ...] = ()
    seconds_training: float = 0.0
    seconds_laplace: float = 0.0
    seconds_tuning: float = 0.0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("prior_precision", "noise_std", "noise_std_original"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be finite and > 0, got {value}")
        if not math.isfinite(self.log_marginal_likelihood):
            raise ValueError(
                f"log_marginal_likelihood: must be finite, got {self.log_marginal_likelihood}"
            )
        if self.n_train < 1 or self.n_params < 1:
            raise ValueError(f"n_train/n_params: must be >= 1, got {self.n_train}/{self.n_params}")
        object.__setattr__(self, "loss_history", tuple(self.loss_history))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["loss_history"] = list(self.loss_history)
        out["warnings"] = list(self.warnings)
        return out


def laplace_log_evidence(
    log_prior_precision: Tensor,
    log_noise_std: Tensor,
    eigenvalues: Tensor,
    rss: Tensor | float,
    theta_sq: Tensor | float,
    n: int,
) -> Tensor:
    """Laplace evidence of a linearized network, differentiable in the hyperparameters.

    Equals laplace-torch's ``log_likelihood - 1/2 (log_det_ratio + scatter)`` with the
    GGN ``J^T J / sigma^2`` and temperature 1.

    Args:
        log_prior_precision: ``log delta`` (scalar tensor).
        log_noise_std: ``log sigma`` (scalar tensor).
        eigenvalues: A ``r`` tensor, the eigenvalues of ``J J^T`` (or ``J^T J``).
        rss: ``||y - f(X; theta*)||^2``.
        theta_sq: ``||theta*||^2`` over the Laplace weights.
        n: Number of observations.

    Returns:
        The scalar log evidence.
    """
    delta = log_prior_precision.exp()
    s2 = (2 * log_noise_std).exp()
    log_lik = -0.5 * rss / s2 - n * log_noise_std - 0.5 * n * math.log(2 * math.pi)
    log_det_ratio = torch.log1p(eigenvalues / (s2 * delta)).sum()
    return log_lik - 0.5 * (log_det_ratio + delta * theta_sq)


def _check_finite(name: str, t: Tensor) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise SurrogateFitError(f"{name}{list(idx)} is {t[idx].item()}; values must be finite")


class LinearizedLaplaceModel(Model):
    """A neural network turned into a GP by the linearized Laplace approximation.

    Construct with a network spec and settings, then call ``fit``; ``posterior`` follows
    botorch's ``Model`` contract so every botorch acquisition function works unchanged.

    Example:
        >>> model = LinearizedLaplaceModel(MLPSpec((50, 50)), LLASettings())
        >>> report = model.fit(train_X, train_Y)
        >>> post = model.posterior(X)  # X: batch x q x d
    """

    def __init__(
        self,
        spec: NetworkSpec,
        settings: LLASettings | None = None,
        input_bounds: Tensor | None = None,
        input_transform: InputTransform | None = None,
    ) -> None:
        """Create an unfitted model.

        Args:
            spec: Network architecture.
            settings: Fit settings (defaults: ``LLASettings()``).
            input_bounds: Optional ``2 x d`` tensor; inputs are mapped to the unit cube by
                ``(X - lower) / (upper - lower)`` before the network sees them (BoTorch's
                ``Normalize``). None: inputs are used as given.
            input_transform: A BoTorch ``InputTransform`` applied to every input, the training
                inputs at :meth:`fit` and the inputs of :meth:`posterior` / :meth:`predict`, as a
                ``SingleTaskGP`` applies its own (e.g. the session's features,
                :func:`~lla_studio.core.surrogates.feature_transform.feature_input_transform`).
                ``train_X`` stays in the untransformed inputs. Not with ``input_bounds``.
        """
        super().__init__()
        self.spec = spec
        self.settings = settings if settings is not None else LLASettings()
        if input_bounds is not None:
            input_bounds = torch.as_tensor(input_bounds)
            if input_bounds.dim() != 2 or input_bounds.shape[0] != 2:
                raise LLASettingsError(
                    f"input_bounds: expected a 2 x d tensor, got shape {tuple(input_bounds.shape)}"
                )
            if not bool((input_bounds[1] > input_bounds[0]).all()):
                raise LLASettingsError("input_bounds: needs upper > lower in every dimension")
            if input_transform is not None:
                raise LLASettingsError("input_bounds and input_transform: give one of them")
            input_transform = Normalize(d=input_bounds.shape[1], bounds=input_bounds)
        self._input_bounds = input_bounds
        if input_transform is not None:
            self.input_transform = input_transform
        self.net: nn.Sequential | None = None
        self.report: LLAFitReport | None = None
        self._fitted = False

    # ------------------------------------------------------------------ botorch contract
    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    @property
    def prior_precision(self) -> float:
        self._require_fit()
        return self._delta

    @property
    def noise_std(self) -> float:
        """``sigma`` on the standardized-target scale."""
        self._require_fit()
        return self._sigma

    @property
    def noise_std_original(self) -> float:
        """``sigma`` on the original target scale."""
        self._require_fit()
        return self._sigma * float(self._y_std)

    @property
    def train_X(self) -> Tensor:
        """The ``n x d`` training inputs (original scale)."""
        self._require_fit()
        return self._train_X

    @property
    def train_Y(self) -> Tensor:
        """The ``n x 1`` training targets (original scale)."""
        self._require_fit()
        return (self._train_y * self._y_std + self._y_mean).unsqueeze(-1)

    @property
    def n_params(self) -> int:
        self._require_fit()
        return self._n_params

    def _require_fit(self) -> None:
        if not self._fitted:
            raise SurrogateFitError("LinearizedLaplaceModel: call fit() first")

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        train_X: Tensor,
        train_Y: Tensor,
        previous: LinearizedLaplaceModel | Mapping[str, Tensor] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> LLAFitReport:
        """Train the MAP network, build the Laplace approximation and tune ``(delta, sigma)``.

        Args:
            train_X: A ``n x d`` tensor of inputs (its dtype/device are the model's).
            train_Y: A ``n x 1`` (or ``n``) tensor of targets.
            previous: Warm start: a previous ``LinearizedLaplaceModel`` (weights and its
                tuned hyperparameters as starting values) or a network ``state_dict``.
                Ignored when ``settings.warm_start`` is False; an incompatible one is
                ignored with a warning in the report.
            cancel: Called at every step; returning True raises ``FitCancelled`` (the
                model keeps its previous fit, if any).

        Returns:
            The ``LLAFitReport`` (also stored as ``self.report``).

        Raises:
            SurrogateFitError: Non-finite data, NaN loss or a failed factorization.
            FitCancelled: ``cancel()`` returned True.
        """
        s = self.settings
        X, y = self._validate_data(train_X, train_Y)
        n, d = X.shape
        dtype, device = X.dtype, X.device
        warnings: list[str] = []

        y_mean = y.mean()
        y_std = y.std() if n > 1 else torch.ones((), dtype=dtype, device=device)
        if not (y_std > 1e-12 * (1 + y_mean.abs())):
            y_std = torch.ones((), dtype=dtype, device=device)
            if n > 1:
                warnings.append("train_Y: all targets are equal; targets were only centered")
        ys = (y - y_mean) / y_std
        with torch.no_grad():
            Xn = self.transform_inputs(X)
        d = Xn.shape[-1]  # the network's inputs: the transformed ones (e.g. the session's features)

        net = build(self.spec, d, seed=s.seed, dtype=dtype).to(device)
        delta, sigma = s.prior_precision, s.noise_std
        warm = False
        if previous is not None and s.warm_start:
            state = previous
            if isinstance(previous, LinearizedLaplaceModel):
                state = previous.net.state_dict() if previous.net is not None else None
                if previous._fitted:
                    if s.tune_prior_precision:
                        delta = previous._delta
                    if s.tune_noise:
                        sigma = previous._sigma
            if state is not None:
                try:
                    net.load_state_dict(state)
                    warm = True
                except (RuntimeError, KeyError, TypeError) as exc:
                    first = str(exc).strip().splitlines()[0]
                    warnings.append(
                        f"previous: weights do not fit this network ({first}); "
                        "trained from scratch"
                    )
                    net = build(self.spec, d, seed=s.seed, dtype=dtype).to(device)
        delta = float(np.clip(delta, *s.prior_precision_bounds))
        sigma = float(np.clip(sigma, *s.noise_std_bounds))

        rounds = 0
        tune_online = None
        if s.tuning == "online" and (s.tune_prior_precision or s.tune_noise):
            state_hp = {"delta": delta, "sigma": sigma}

            def tune_online() -> tuple[float, float]:
                stats = self._laplace_statistics(net, Xn, ys, cancel)
                dl, sg, _, _ = self._tune(stats, state_hp["delta"], state_hp["sigma"], cancel)
                state_hp.update(delta=dl, sigma=sg)
                return dl, sg

        t0 = time.perf_counter()
        result: MAPTrainingResult = train_map(
            net,
            Xn,
            ys,
            prior_precision=delta,
            noise_std=sigma,
            optimizer=s.optimizer,
            learning_rate=s.learning_rate,
            max_epochs=s.budget("warm_max_epochs" if warm else "max_epochs"),
            patience=s.budget("patience"),
            rel_tol=s.rel_tol,
            warmup=s.warmup,
            cancel=cancel,
            tune=tune_online,
            tune_every=s.budget("online_every") if tune_online is not None else 0,
        )
        delta, sigma, rounds = result.prior_precision, result.noise_std, result.tuning_rounds
        t1 = time.perf_counter()
        for p in net.parameters():
            p.requires_grad_(False)
        stats = self._laplace_statistics(net, Xn, ys, cancel)
        t2 = time.perf_counter()
        if s.tuning == "posthoc" and (s.tune_prior_precision or s.tune_noise):
            delta, sigma, _, tune_warnings = self._tune(stats, delta, sigma, cancel)
            warnings += tune_warnings
            rounds += 1
        elif s.tuning == "online" and rounds:
            warnings += self._bound_warnings(delta, sigma)
        t3 = time.perf_counter()

        # commit (only now: a cancelled or failed fit leaves a previous fit intact)
        self.net = net
        self._theta = {k: v.detach() for k, v in net.named_parameters()}
        self._train_X, self._Xn, self._train_y = X, Xn, ys
        self._y_mean, self._y_std = y_mean, y_std
        self._lam, self._basis, self._mode = stats["lam"], stats["basis"], stats["mode"]
        self._train_features, self._n_params = stats["features"], stats["n_params"]
        self._rss, self._theta_sq = stats["rss"], stats["theta_sq"]
        self._fitted = True
        self.set_hyperparameters(delta, sigma)
        lml = self.log_marginal_likelihood().item()
        self.report = LLAFitReport(
            prior_precision=delta,
            noise_std=sigma,
            noise_std_original=sigma * float(y_std),
            log_marginal_likelihood=lml,
            log_marginal_likelihood_original=lml - n * math.log(float(y_std)),
            n_train=n,
            n_params=self._n_params,
            subset_of_weights=s.subset_of_weights,
            epochs=result.epochs,
            final_loss=result.final_loss,
            converged=result.converged,
            warm_started=warm,
            tuning=s.tuning,
            tuning_rounds=rounds,
            loss_history=result.loss_history,
            seconds_training=t1 - t0,
            seconds_laplace=t2 - t1,
            seconds_tuning=t3 - t2,
            warnings=tuple(warnings),
        )
        return self.report

    def _validate_data(self, train_X: Tensor, train_Y: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(train_X, Tensor) or train_X.dim() != 2 or train_X.shape[0] < 1:
            raise SurrogateFitError(
                f"train_X: expected a n x d tensor with n >= 1, got "
                f"{getattr(train_X, 'shape', type(train_X).__name__)}"
            )
        if not train_X.is_floating_point():
            raise SurrogateFitError(
                f"train_X: expected a floating-point tensor, got {train_X.dtype}"
            )
        Y = torch.as_tensor(train_Y)
        if Y.dim() == 2 and Y.shape[1] == 1:
            Y = Y[:, 0]
        if Y.dim() != 1 or Y.shape[0] != train_X.shape[0]:
            raise SurrogateFitError(
                f"train_Y: expected shape ({train_X.shape[0]}, 1), got {tuple(train_Y.shape)}"
            )
        Y = Y.to(train_X)
        if self._input_bounds is not None and self._input_bounds.shape[1] != train_X.shape[1]:
            raise SurrogateFitError(
                f"input_bounds: {self._input_bounds.shape[1]} dimensions, but train_X has "
                f"{train_X.shape[1]}"
            )
        _check_finite("train_X", train_X)
        _check_finite("train_Y", Y)
        return train_X.detach(), Y.detach()

    # The model keeps its transformed training inputs itself (it has no gpytorch ``train_inputs``),
    # so BoTorch's train()/eval() swap of transformed training inputs does not apply here.
    def _set_transformed_inputs(self) -> None: ...

    def _revert_to_original_inputs(self) -> None: ...

    # ------------------------------------------------------------------ Jacobians
    def _f_and_jacobian(
        self, net: nn.Module, theta: dict[str, Tensor], x: Tensor
    ) -> tuple[Tensor, Tensor]:
        """MAP outputs ``f`` (``m``) and dense Jacobians ``J`` (``m x p``) at ``x`` (``m x d``)."""
        f, features = network_features(net, theta, x, self.settings.subset_of_weights)
        return f, features.dense()

    def _features(
        self, x: Tensor, net: nn.Module | None = None, theta: dict[str, Tensor] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> tuple[Tensor, JacobianFeatures]:
        """MAP outputs and Jacobian features of ``m x d`` normalized inputs, in chunks."""
        net = self.net if net is None else net
        theta = self._theta if theta is None else theta
        fs, parts = [], []
        for start in range(0, x.shape[0], self.settings.chunk_size):
            if cancel is not None and cancel():
                raise FitCancelled("fit cancelled while computing Jacobians")
            f, feats = network_features(
                net,
                theta,
                x[start : start + self.settings.chunk_size],
                self.settings.subset_of_weights,
            )
            fs.append(f)
            parts.append(feats)
        return torch.cat(fs), JacobianFeatures.cat(parts)

    def _laplace_statistics(
        self, net: nn.Module, Xn: Tensor, ys: Tensor, cancel: Callable[[], bool] | None
    ) -> dict[str, Any]:
        """Training Jacobian features and the eigendecomposition of the smaller Gram matrix.

        ``n <= p`` ("function" mode): ``J J^T = U diag(lam) U^T`` (the empirical NTK of the
        training inputs, computed from factored features without forming ``J`` for MLPs).
        ``n > p`` ("weight" mode): ``J^T J = V diag(lam) V^T``.
        """
        theta = {k: v.detach() for k, v in net.named_parameters()}
        with torch.no_grad():
            f, feats = self._features(Xn, net, theta, cancel)
            n, p = Xn.shape[0], feats.n_params
            try:
                if n <= p:
                    mode, gram = "function", feats.gram(feats)
                else:
                    J = feats.dense()
                    mode, gram = "weight", J.T @ J
                lam, basis = torch.linalg.eigh(gram)
            except RuntimeError as exc:  # torch.linalg.LinAlgError is a RuntimeError
                raise SurrogateFitError(
                    f"Laplace: eigendecomposition of the {n}x{n if n <= p else p} Gram matrix "
                    f"failed: {exc}"
                ) from exc
            lam = lam.clamp_min(0)
            if not (torch.isfinite(lam).all() and torch.isfinite(f).all()):
                raise SurrogateFitError(
                    "Laplace: non-finite network outputs or Jacobians at the MAP"
                )
            if self.settings.subset_of_weights == "last_layer":
                theta_vec = torch.cat([q.reshape(-1) for q in net[-1].parameters()])
            else:
                theta_vec = torch.cat([q.reshape(-1) for q in theta.values()])
        return {
            "lam": lam,
            "basis": basis,
            "mode": mode,
            "features": feats if mode == "function" else None,
            "n_params": p,
            "rss": ((ys - f) ** 2).sum(),
            "theta_sq": (theta_vec**2).sum(),
            "n": n,
        }

    # ------------------------------------------------------------------ evidence / tuning
    def _bound_warnings(self, delta: float, sigma: float) -> list[str]:
        out = []
        s = self.settings
        for name, value, (lo, hi), active in (
            ("prior_precision", delta, s.prior_precision_bounds, s.tune_prior_precision),
            ("noise_std", sigma, s.noise_std_bounds, s.tune_noise),
        ):
            if not active:
                continue
            if math.log(value) - math.log(lo) < 1e-3:
                out.append(
                    f"{name}: tuning ran to the lower bound {lo:g}; the evidence wants it "
                    f"smaller (widen {name}_bounds or check the data)"
                )
            elif math.log(hi) - math.log(value) < 1e-3:
                out.append(
                    f"{name}: tuning ran to the upper bound {hi:g}; the evidence wants it "
                    f"larger (widen {name}_bounds or check the data)"
                )
        return out

    def _tune(
        self,
        stats: Mapping[str, Tensor],
        delta: float,
        sigma: float,
        cancel: Callable[[], bool] | None,
    ) -> tuple[float, float, float, list[str]]:
        """Maximize the evidence over ``(log delta, log sigma)`` with L-BFGS-B in a box."""
        s = self.settings
        if cancel is not None and cancel():
            raise FitCancelled("fit cancelled before hyperparameter tuning")
        lam, rss, tsq, n = stats["lam"], stats["rss"], stats["theta_sq"], stats["n"]
        free = [s.tune_prior_precision, s.tune_noise]
        z0 = np.log([delta, sigma])
        log_bounds = [tuple(np.log(s.prior_precision_bounds)), tuple(np.log(s.noise_std_bounds))]
        idx = [i for i in range(2) if free[i]]

        def negative(zf: np.ndarray) -> tuple[float, np.ndarray]:
            z = torch.tensor(z0, dtype=lam.dtype, device=lam.device)
            zf_t = torch.tensor(zf, dtype=lam.dtype, device=lam.device, requires_grad=True)
            z = z.index_put((torch.tensor(idx, device=lam.device),), zf_t)
            value = -laplace_log_evidence(z[0], z[1], lam, rss, tsq, n) / n
            (g,) = torch.autograd.grad(value, zf_t)
            return value.item(), g.cpu().numpy()

        def callback(_: np.ndarray) -> None:
            if cancel is not None and cancel():
                raise FitCancelled("fit cancelled during hyperparameter tuning")

        start = np.clip(z0[idx], [log_bounds[i][0] for i in idx], [log_bounds[i][1] for i in idx])
        res = scipy.optimize.minimize(
            negative,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[log_bounds[i] for i in idx],
            callback=callback,
            options={"maxiter": s.max_tuning_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )
        z = z0.copy()
        z[idx] = res.x
        if not np.all(np.isfinite(z)) or not np.isfinite(res.fun):
            raise SurrogateFitError(f"hyperparameter tuning: evidence became {-res.fun * n}")
        new_delta, new_sigma = float(np.exp(z[0])), float(np.exp(z[1]))
        return new_delta, new_sigma, float(-res.fun * n), self._bound_warnings(new_delta, new_sigma)

    def log_marginal_likelihood(
        self,
        prior_precision: Tensor | float | None = None,
        noise_std: Tensor | float | None = None,
    ) -> Tensor:
        """Laplace evidence of the standardized targets (laplace-torch's definition).

        Differentiable in ``prior_precision`` and ``noise_std`` when they are tensors.

        Args:
            prior_precision: ``delta`` (default: the model's).
            noise_std: ``sigma`` on the standardized scale (default: the model's).

        Returns:
            A scalar tensor.
        """
        self._require_fit()
        dt = self._lam.dtype
        delta = self._delta if prior_precision is None else prior_precision
        sigma = self._sigma if noise_std is None else noise_std
        delta, sigma = torch.as_tensor(delta, dtype=dt), torch.as_tensor(sigma, dtype=dt)
        return laplace_log_evidence(
            delta.log(), sigma.log(), self._lam, self._rss, self._theta_sq, self._train_y.shape[0]
        )

    def set_hyperparameters(self, prior_precision: float, noise_std: float) -> None:
        """Change ``(delta, sigma)`` of the fitted model without refitting (``O(r p)``).

        The MAP weights stay as trained; this is the post-hoc setting of the GUI sliders.
        """
        self._require_fit()
        delta = _positive("prior_precision", prior_precision)
        sigma = _positive("noise_std", noise_std)
        self._delta, self._sigma = delta, sigma
        scale = torch.rsqrt(delta * (sigma**2 * delta + self._lam))
        if self._mode == "function":  # A = (J* J^T) U diag(scale)
            self._M = self._basis * scale
        else:  # A = J* V diag(sqrt(lam) scale)
            self._M = self._basis * (self._lam.sqrt() * scale)

    def _explained(self, feats: JacobianFeatures) -> Tensor:
        """``A`` with ``J* Sigma J*^T = J* J*^T / delta - A A^T``: ``... x m x r``."""
        if self._mode == "function":
            return feats.gram(self._train_features) @ self._M
        return feats.dense() @ self._M

    # ------------------------------------------------------------------ prediction
    def _standardized_mean_cov(self, Xn: Tensor) -> tuple[Tensor, Tensor]:
        """Joint predictive on the standardized scale.

        Args:
            Xn: A ``batch x q x d`` tensor of normalized inputs.

        Returns:
            Mean ``batch x q`` and covariance ``batch x q x q``.
        """
        *batch, q, d = Xn.shape
        nb = int(np.prod(batch)) if batch else 1
        Xf = Xn.reshape(nb, q, d)
        delta = self._delta
        # Rows shared by every batch element (botorch's qNEI prepends X_baseline) are
        # computed once; they must not carry per-batch gradients (X_baseline does not).
        k = 0
        if nb > 1 and q > 2:
            with torch.no_grad():
                same = (Xf == Xf[:1]).all(dim=-1).all(dim=0)
                k = int(torch.cumprod(same.to(torch.int64), 0).sum())
            k = min(k, q - 1)
            if k < 2:
                k = 0
        f_r, F_r = self._features(Xf[:, k:].reshape(-1, d))
        F_r = F_r.reshape(nb, q - k)
        f_r = f_r.reshape(nb, q - k)
        A_r = self._explained(F_r)  # nb x (q-k) x r
        C_rr = F_r.gram(F_r) / delta - A_r @ A_r.transpose(-1, -2)
        if k == 0:
            mean, cov = f_r, C_rr
        else:
            f_s, F_s = self._features(Xf[0, :k])
            A_s = self._explained(F_s)  # k x r
            C_ss = F_s.gram(F_s) / delta - A_s @ A_s.T
            C_sr = F_s.gram(F_r) / delta - A_s @ A_r.transpose(-1, -2)  # nb x k x (q-k)
            top = torch.cat([C_ss.expand(nb, k, k), C_sr], dim=-1)
            bottom = torch.cat([C_sr.transpose(-1, -2), C_rr], dim=-1)
            cov = torch.cat([top, bottom], dim=-2)
            mean = torch.cat([f_s.expand(nb, k), f_r], dim=-1)
        cov = 0.5 * (cov + cov.transpose(-1, -2))
        diag = torch.diagonal(cov, dim1=-2, dim2=-1)
        floor = _MIN_VARIANCE if q == 1 else _JOINT_NUGGET.get(cov.dtype, 1e-6)
        cov = cov + torch.diag_embed(torch.clamp(floor - diag, min=0) + (floor if q > 1 else 0))
        return mean.reshape(*batch, q), cov.reshape(*batch, q, q)

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> GPyTorchPosterior:
        """Joint LLA posterior over the q-batch, on the original target scale.

        Args:
            X: A ``batch_shape x q x d`` tensor of inputs (differentiable).
            output_indices: Must be None or ``[0]`` (single output).
            observation_noise: If True, add ``sigma^2`` (original scale) to the diagonal;
                a ``batch_shape x q x 1`` tensor adds those variances instead.
            posterior_transform: Optional botorch ``PosteriorTransform``.

        Returns:
            A ``GPyTorchPosterior`` over a ``MultivariateNormal`` with mean
            ``batch_shape x q`` and covariance ``batch_shape x q x q``.
        """
        self._require_fit()
        if output_indices is not None and list(output_indices) != [0]:
            raise ValueError(f"output_indices: the LLA model has one output, got {output_indices}")
        if X.dim() < 2:
            raise ValueError(f"X: expected batch_shape x q x d, got shape {tuple(X.shape)}")
        X = X.to(dtype=self._train_X.dtype, device=self._train_X.device)
        mean, cov = self._standardized_mean_cov(self.transform_inputs(X))
        ys, ym = self._y_std, self._y_mean
        mean = mean * ys + ym
        cov = cov * ys**2
        if isinstance(observation_noise, Tensor):
            noise = observation_noise.to(cov).squeeze(-1).expand(cov.shape[:-1])
            cov = cov + torch.diag_embed(noise)
        elif observation_noise:
            noise = (self._sigma * ys) ** 2
            cov = cov + noise * torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        post = GPyTorchPosterior(MultivariateNormal(mean, DenseLinearOperator(cov)))
        if posterior_transform is not None:
            post = posterior_transform(post)
        return post

    @torch.no_grad()
    def predict(self, X: Tensor, observation_noise: bool = False) -> tuple[Tensor, Tensor]:
        """Marginal predictive mean and variance for many points (no joint covariance).

        Args:
            X: A ``... x d`` tensor of inputs (e.g. a ``10000 x d`` plotting grid).
            observation_noise: Add ``sigma^2`` to the variance.

        Returns:
            Mean and variance, each of shape ``...``, on the original target scale.
        """
        self._require_fit()
        shape = X.shape[:-1]
        Xn = self.transform_inputs(X.to(self._train_X).reshape(-1, X.shape[-1]))
        means, variances = [], []
        for start in range(0, Xn.shape[0], self.settings.chunk_size):
            f, feats = network_features(
                self.net, self._theta, Xn[start : start + self.settings.chunk_size],
                self.settings.subset_of_weights,
            )
            A = self._explained(feats)
            var = feats.sq_norms() / self._delta - (A * A).sum(-1)
            means.append(f)
            variances.append(var.clamp_min(_MIN_VARIANCE))
        mean = torch.cat(means) * self._y_std + self._y_mean
        var = torch.cat(variances) * self._y_std**2
        if observation_noise:
            var = var + (self._sigma * self._y_std) ** 2
        return mean.reshape(shape), var.reshape(shape)

    def marginal_variance(self, X: Tensor, observation_noise: bool = False) -> Tensor:
        """Predictive variance only (diagonal), chunked, for big plotting grids.

        Args:
            X: A ``... x d`` tensor of inputs.
            observation_noise: Add ``sigma^2``.

        Returns:
            A ``...`` tensor of variances on the original target scale.
        """
        return self.predict(X, observation_noise=observation_noise)[1]


def fit_lla(
    train_X: Tensor,
    train_Y: Tensor,
    spec: NetworkSpec,
    settings: LLASettings | None = None,
    previous: LinearizedLaplaceModel | Mapping[str, Tensor] | None = None,
    cancel: Callable[[], bool] | None = None,
    input_bounds: Tensor | None = None,
    input_transform: InputTransform | None = None,
) -> tuple[LinearizedLaplaceModel, LLAFitReport]:
    """Fit an LLA surrogate in one call (the study loop's entry point).

    Args:
        train_X: A ``n x d`` tensor of (unit-cube) inputs.
        train_Y: A ``n x 1`` tensor of targets.
        spec: Network architecture.
        settings: Fit settings.
        previous: The previous step's model (or a network ``state_dict``) to warm start from.
        cancel: Cancel callable checked at every step (raises ``FitCancelled``).
        input_bounds: Optional ``2 x d`` bounds used to normalize inputs.
        input_transform: Optional BoTorch input transform (see :class:`LinearizedLaplaceModel`).

    Returns:
        The fitted model (a botorch ``Model``) and its ``LLAFitReport``.
    """
    model = LinearizedLaplaceModel(spec, settings, input_bounds=input_bounds, input_transform=input_transform)
    report = model.fit(train_X, train_Y, previous=previous, cancel=cancel)
    return model, report
