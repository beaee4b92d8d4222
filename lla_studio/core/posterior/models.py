"""2-D log densities for the posterior lab, and the frozen, serializable specs that build them.

Every model is a `PosteriorModel`: a name, two parameter names, a default box (where multi-start
optimisation and cold-started VI look), a support (a possibly half-infinite box outside which the
density is zero) and an unnormalised, differentiable ``log_density(theta)`` over ``... x 2`` float64
tensors. Models are built from specs (`BioassaySpec`, `BananaSpec`, `MixtureSpec`, and
`ShearFrameSpec` / `ExpressionSpec` in their own modules); a spec is what a session stores.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box

__all__ = [
    "DTYPE",
    "ModelSpec",
    "PosteriorModel",
    "BioassaySpec",
    "BioassayModel",
    "BananaSpec",
    "BananaModel",
    "MixtureSpec",
    "GaussianMixtureModel",
    "BIOASSAY_DOSE",
    "BIOASSAY_N",
    "BIOASSAY_DEATHS",
]

DTYPE = torch.float64

BIOASSAY_DOSE = (-0.86, -0.30, -0.05, 0.73)
BIOASSAY_N = (5, 5, 5, 5)
BIOASSAY_DEATHS = (0, 1, 3, 5)

Derived = Callable[[Tensor], Tensor]


def as_points(theta: Any) -> Tensor:
    """Return ``theta`` as a float64 tensor of shape ``... x 2`` (raises a `PosteriorError` otherwise)."""
    t = torch.as_tensor(theta, dtype=DTYPE)
    if t.ndim == 0 or t.shape[-1] != 2:
        raise PosteriorError(f"points must have a trailing dimension of size 2, got shape {tuple(t.shape)}")
    return t


class PosteriorModel(abc.ABC):
    """An unnormalised 2-D log density with its metadata.

    Subclasses implement `_log_density` on points inside the support; `log_density` takes care of
    the support (``-inf`` outside, gradients kept finite by evaluating a safe interior point there).

    Attributes:
        spec: The frozen spec that built the model.
        name: Human-readable name.
        param_names: The two parameter names.
        box: Default finite box (multi-start, cold VI, fallback grid).
        support: Box outside which the density is zero (bounds may be infinite).
        derived: Derived quantities ``name -> f(theta)`` (``... x 2 -> ...``), e.g. LD50.
    """

    def __init__(
        self,
        spec: ModelSpec,
        name: str,
        param_names: tuple[str, str],
        box: Box,
        support: Box,
        derived: Mapping[str, Derived] | None = None,
    ) -> None:
        box.require_finite(f"default box of model '{name}'")
        self.spec = spec
        self.name = name
        self.param_names = tuple(param_names)
        self.box = box
        self.support = support
        self.derived: dict[str, Derived] = dict(derived or {})
        inner = box.intersect(support)
        self._safe_point = torch.tensor(inner.center, dtype=DTYPE)
        self._low = torch.tensor(support.low, dtype=DTYPE)
        self._high = torch.tensor(support.high, dtype=DTYPE)

    def in_support(self, theta: Tensor) -> Tensor:
        """Inclusive support test.

        Args:
            theta: A `... x 2` tensor of points.

        Returns:
            A `...` bool tensor.
        """
        theta = as_points(theta)
        return ((theta >= self._low) & (theta <= self._high)).all(dim=-1)

    def log_density(self, theta: Tensor) -> Tensor:
        """Unnormalised log density, ``-inf`` outside the support.

        Args:
            theta: A `... x 2` float64 tensor (may require grad).

        Returns:
            A `...` tensor of log densities.
        """
        theta = as_points(theta)
        inside = self.in_support(theta)
        safe = torch.where(inside.unsqueeze(-1), theta, self._safe_point)
        value = self._log_density(safe)
        return torch.where(inside, value, torch.full_like(value, -math.inf))

    @abc.abstractmethod
    def _log_density(self, theta: Tensor) -> Tensor:
        """Log density at points inside the support (`... x 2` -> `...`)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


# ----------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class ModelSpec:
    """Base class of the frozen model specs: a type tag plus plain fields, JSON round-trippable."""

    TYPE: ClassVar[str] = ""

    def build(self) -> PosteriorModel:  # pragma: no cover - abstract
        """Construct the model."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a ``"type"`` tag; tuples become lists."""
        out: dict[str, Any] = {"type": self.TYPE}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`; unknown keys raise a `PosteriorError` naming them."""
        if not isinstance(data, Mapping):
            raise PosteriorError(f"model spec must be a dict, got {type(data).__name__}")
        tag = data.get("type", cls.TYPE)
        if tag != cls.TYPE:
            raise PosteriorError(f"model spec type {tag!r} does not match {cls.TYPE!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"type"})
        if unknown:
            raise PosteriorError(
                f"model spec '{cls.TYPE}': unknown key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys are {', '.join(sorted(names))}"
            )
        kwargs = {k: _from_json(v) for k, v in data.items() if k != "type"}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise PosteriorError(f"model spec '{cls.TYPE}': {exc}") from exc


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def _from_json(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_from_json(x) for x in v)
    return v


def _positive(spec: str, name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise PosteriorError(f"{spec}: '{name}' must be a positive finite number, got {value!r}")
    return value


def _finite(spec: str, name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise PosteriorError(f"{spec}: '{name}' must be finite, got {value!r}")
    return value


def _normal_prior(spec: str, name: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        mean, sd = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise PosteriorError(f"{spec}: '{name}' must be None or (mean, sd), got {value!r}") from exc
    _finite(spec, f"{name} mean", mean)
    _positive(spec, f"{name} sd", sd)
    return (mean, sd)


def _normal_logpdf(x: Tensor, mean: float, sd: float) -> Tensor:
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


# -------------------------------------------------------------------------------------- bioassay
@dataclass(frozen=True)
class BioassaySpec(ModelSpec):
    """Bioassay logistic regression (Gelman et al., BDA3 §3.7).

    ``y_i ~ Binomial(n_i, logit^-1(alpha + beta x_i))`` with doses x = (-0.86, -0.30, -0.05, 0.73),
    n_i = 5 and deaths y = (0, 1, 3, 5). The support is ``beta > 0`` (dose increases risk; it is where
    LD50 = -alpha/beta means something); the density includes the binomial coefficients.

    Attributes:
        log_beta: Parametrise by (alpha, log beta); the density then carries the Jacobian ``+log beta``.
        prior_alpha: ``None`` (flat) or ``(mean, sd)`` of a normal prior on alpha.
        prior_beta: ``None`` (flat) or ``(mean, sd)`` of a normal prior on beta (always on beta itself).
    """

    TYPE: ClassVar[str] = "bioassay"
    log_beta: bool = False
    prior_alpha: tuple[float, float] | None = None
    prior_beta: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.log_beta, bool):
            raise PosteriorError(f"bioassay: 'log_beta' must be a bool, got {self.log_beta!r}")
        object.__setattr__(self, "prior_alpha", _normal_prior("bioassay", "prior_alpha", self.prior_alpha))
        object.__setattr__(self, "prior_beta", _normal_prior("bioassay", "prior_beta", self.prior_beta))

    def build(self) -> BioassayModel:
        return BioassayModel(self)


class BioassayModel(PosteriorModel):
    """Bioassay posterior in (alpha, beta) or (alpha, log beta); see `BioassaySpec`."""

    def __init__(self, spec: BioassaySpec) -> None:
        if spec.log_beta:
            names = ("alpha", "log_beta")
            box = Box((-4.0, -1.0), (10.0, 4.5), names)
            support = Box((-math.inf, -math.inf), (math.inf, math.inf), names)
        else:
            names = ("alpha", "beta")
            box = Box((-4.0, 0.0), (10.0, 40.0), names)
            support = Box((-math.inf, 0.0), (math.inf, math.inf), names)
        super().__init__(
            spec,
            "bioassay (alpha, log beta)" if spec.log_beta else "bioassay (alpha, beta)",
            names,
            box,
            support,
            {"LD50": self.ld50},
        )
        self._x = torch.tensor(BIOASSAY_DOSE, dtype=DTYPE)
        self._n = torch.tensor(BIOASSAY_N, dtype=DTYPE)
        self._y = torch.tensor(BIOASSAY_DEATHS, dtype=DTYPE)
        self._log_binom = float(sum(math.log(math.comb(n, y)) for n, y in zip(BIOASSAY_N, BIOASSAY_DEATHS)))

    def beta(self, theta: Tensor) -> Tensor:
        """beta from a `... x 2` tensor of points in this model's coordinates."""
        theta = as_points(theta)
        return torch.exp(theta[..., 1]) if self.spec.log_beta else theta[..., 1]

    def ld50(self, theta: Tensor) -> Tensor:
        """LD50 = -alpha / beta, the dose with 50 % death probability (`... x 2` -> `...`)."""
        theta = as_points(theta)
        return -theta[..., 0] / self.beta(theta)

    def _log_density(self, theta: Tensor) -> Tensor:
        alpha = theta[..., 0]
        beta = self.beta(theta)
        eta = alpha.unsqueeze(-1) + beta.unsqueeze(-1) * self._x
        # log sigmoid(eta) = -softplus(-eta); F.logsigmoid is ~1000x slower on CPU in torch 2.14
        softplus = torch.nn.functional.softplus
        ll = -self._y * softplus(-eta) - (self._n - self._y) * softplus(eta)
        out = ll.sum(dim=-1) + self._log_binom
        spec: BioassaySpec = self.spec  # type: ignore[assignment]
        if spec.prior_alpha is not None:
            out = out + _normal_logpdf(alpha, *spec.prior_alpha)
        if spec.prior_beta is not None:
            out = out + _normal_logpdf(beta, *spec.prior_beta)
        if spec.log_beta:
            out = out + theta[..., 1]  # Jacobian |d beta / d log beta| = beta
        return out


# ---------------------------------------------------------------------------------------- banana
@dataclass(frozen=True)
class BananaSpec(ModelSpec):
    """Banana: ``x1 ~ N(mu, s1^2)``, ``x2 | x1 ~ N(c x1^2 + d, s2^2)`` (normalised density).

    Its mode is ``(mu, c mu^2 + d)``; the Laplace covariance there is
    ``[[s1^2, 2 c mu s1^2], [2 c mu s1^2, s2^2 + 4 c^2 mu^2 s1^2]]``.
    """

    TYPE: ClassVar[str] = "banana"
    mu: float = 0.0
    s1: float = 1.0
    c: float = 1.0
    d: float = 0.0
    s2: float = 0.5

    def __post_init__(self) -> None:
        for name in ("mu", "c", "d"):
            object.__setattr__(self, name, _finite("banana", name, getattr(self, name)))
        for name in ("s1", "s2"):
            object.__setattr__(self, name, _positive("banana", name, getattr(self, name)))

    def build(self) -> BananaModel:
        return BananaModel(self)


class BananaModel(PosteriorModel):
    """Banana density; see `BananaSpec`."""

    def __init__(self, spec: BananaSpec) -> None:
        lo1, hi1 = spec.mu - 4 * spec.s1, spec.mu + 4 * spec.s1
        sq = [lo1**2, hi1**2] + ([0.0] if lo1 < 0 < hi1 else [])
        m = [spec.c * v for v in sq]
        names = ("x1", "x2")
        box = Box((lo1, spec.d + min(m) - 4 * spec.s2), (hi1, spec.d + max(m) + 4 * spec.s2), names)
        inf = math.inf
        super().__init__(spec, "banana", names, box, Box((-inf, -inf), (inf, inf), names))

    def _log_density(self, theta: Tensor) -> Tensor:
        s: BananaSpec = self.spec  # type: ignore[assignment]
        x1, x2 = theta[..., 0], theta[..., 1]
        return _normal_logpdf(x1, s.mu, s.s1) + _normal_logpdf(x2, s.c * x1**2 + s.d, s.s2)


# --------------------------------------------------------------------------------------- mixture
@dataclass(frozen=True)
class MixtureSpec(ModelSpec):
    """Two-component Gaussian mixture (normalised, so its evidence is exactly 1).

    Components sit at ``(-separation/2, 0)`` and ``(+separation/2, 0)``, both with standard
    deviation ``sd`` per axis; the first has correlation ``+correlation``, the second
    ``-correlation``; weights ``(weight, 1 - weight)``.
    """

    TYPE: ClassVar[str] = "mixture"
    separation: float = 4.0
    sd: float = 1.0
    correlation: float = 0.0
    weight: float = 0.5

    def __post_init__(self) -> None:
        sep = _finite("mixture", "separation", self.separation)
        if sep < 0:
            raise PosteriorError(f"mixture: 'separation' must be >= 0, got {sep:g}")
        object.__setattr__(self, "separation", sep)
        object.__setattr__(self, "sd", _positive("mixture", "sd", self.sd))
        rho = _finite("mixture", "correlation", self.correlation)
        if not -1 < rho < 1:
            raise PosteriorError(f"mixture: 'correlation' must lie in (-1, 1), got {rho:g}")
        object.__setattr__(self, "correlation", rho)
        w = _finite("mixture", "weight", self.weight)
        if not 0 < w < 1:
            raise PosteriorError(f"mixture: 'weight' must lie in (0, 1), got {w:g}")
        object.__setattr__(self, "weight", w)

    def build(self) -> GaussianMixtureModel:
        return GaussianMixtureModel(self)

    def components(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights `2`, means `2 x 2` and covariances `2 x 2 x 2` of the two components."""
        h, s2 = self.separation / 2, self.sd**2
        rho = self.correlation
        means = np.array([[-h, 0.0], [h, 0.0]])
        covs = np.array([[[s2, rho * s2], [rho * s2, s2]], [[s2, -rho * s2], [-rho * s2, s2]]])
        return np.array([self.weight, 1 - self.weight]), means, covs


class GaussianMixtureModel(PosteriorModel):
    """Two-component Gaussian mixture; see `MixtureSpec`."""

    def __init__(self, spec: MixtureSpec) -> None:
        h, r = spec.separation / 2, 5 * spec.sd
        names = ("x1", "x2")
        inf = math.inf
        super().__init__(
            spec, "Gaussian mixture", names, Box((-h - r, -r), (h + r, r), names), Box((-inf, -inf), (inf, inf), names)
        )
        w, means, covs = spec.components()
        self._log_w = torch.tensor(np.log(w), dtype=DTYPE)
        self._means = torch.tensor(means, dtype=DTYPE)
        self._prec = torch.tensor(np.linalg.inv(covs), dtype=DTYPE)
        self._log_norm = torch.tensor(-np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(covs)), dtype=DTYPE)

    def _log_density(self, theta: Tensor) -> Tensor:
        u = theta.unsqueeze(-2) - self._means  # ... x 2 x 2
        quad = torch.einsum("...ki,kij,...kj->...k", u, self._prec, u)
        return torch.logsumexp(self._log_w + self._log_norm - 0.5 * quad, dim=-1)
