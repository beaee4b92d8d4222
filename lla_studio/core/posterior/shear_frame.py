"""Two-story shear frame: damping identification from the free vibration of the first floor.

State ``s = (x1, x2, v1, v2)`` obeys ``ds/dt = A(c) s`` with
``A = [[0, I], [-M^-1 K, -M^-1 C(c)]]``, ``K = [[k1 + k2, -k2], [-k2, k2]]`` and
``C = [[c1 + c2, -c2], [-c2, c2]]``. From ``s(0) = (0, 1, 0, 0)`` the exact solution at
``t = k dt`` is ``expm(A dt)^k s(0)``: one batched ``torch.linalg.matrix_exp`` per point, then
``n_obs`` batched mat-vecs. The first-floor displacement is observed with Gaussian noise.

With the defaults the likelihood has two exactly equivalent maxima: the truth ``c = (1.0, 0.1)``
and its mirror ``c = (0.2, 0.5)``, which produce the identical first-floor response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.models import DTYPE, ModelSpec, PosteriorModel, as_points

__all__ = ["ShearFrameSpec", "ShearFrameModel", "shear_frame_state_matrix", "shear_frame_response"]

CHUNK = 16384  # points per batched matrix_exp: keeps the working set in cache


def shear_frame_state_matrix(
    c: Tensor, masses: tuple[float, float] = (1.0, 1.0), stiffnesses: tuple[float, float] = (2.0, 1.0)
) -> Tensor:
    """State matrices of the two-story shear frame.

    Args:
        c: A `... x 2` tensor of damping coefficients (c1, c2).
        masses: Floor masses (m1, m2).
        stiffnesses: Story stiffnesses (k1, k2).

    Returns:
        A `... x 4 x 4` tensor ``A(c)``.
    """
    c = as_points(c)
    m1, m2 = masses
    k1, k2 = stiffnesses
    minv = torch.tensor([[1.0 / m1], [1.0 / m2]], dtype=DTYPE)
    K = torch.tensor([[k1 + k2, -k2], [-k2, k2]], dtype=DTYPE)
    c1, c2 = c[..., 0], c[..., 1]
    C = torch.stack([torch.stack([c1 + c2, -c2], -1), torch.stack([-c2, c2], -1)], -2)
    batch = c.shape[:-1]
    top = torch.cat([torch.zeros(2, 2, dtype=DTYPE), torch.eye(2, dtype=DTYPE)], -1).expand(*batch, 2, 4)
    bottom = torch.cat([(-minv * K).expand(*batch, 2, 2), -minv * C], -1)
    return torch.cat([top, bottom], -2)


def shear_frame_response(
    c: Tensor,
    n_obs: int = 40,
    dt: float = 0.5,
    masses: tuple[float, float] = (1.0, 1.0),
    stiffnesses: tuple[float, float] = (2.0, 1.0),
    x0: tuple[float, float] = (0.0, 1.0),
    chunk: int = CHUNK,
) -> Tensor:
    """First-floor displacement at ``t = dt, 2 dt, ..., n_obs dt`` (exact, via matrix exponentials).

    One ``torch.linalg.matrix_exp(A dt)`` per point (batched over all points, in chunks of ``chunk``),
    then ``n_obs`` batched mat-vecs ``s_k = E s_{k-1}``. Differentiable.

    Args:
        c: A `... x 2` tensor of damping coefficients.
        n_obs: Number of observation times.
        dt: Time step.
        masses: Floor masses.
        stiffnesses: Story stiffnesses.
        x0: Initial displacements (velocities start at zero).
        chunk: Points per batched call.

    Returns:
        A `... x n_obs` tensor.
    """
    c = as_points(c)
    batch = c.shape[:-1]
    flat = c.reshape(-1, 2)
    s0 = torch.tensor([x0[0], x0[1], 0.0, 0.0], dtype=DTYPE)
    outs = []
    for start in range(0, max(flat.shape[0], 1), chunk):
        part = flat[start : start + chunk]
        E = torch.linalg.matrix_exp(shear_frame_state_matrix(part, masses, stiffnesses) * dt)
        # states s_k = E s_{k-1}: n_obs batched mat-vecs (faster than doubling, which copies more)
        s = s0.expand(part.shape[0], 4).unsqueeze(-1)
        ys = []
        for _ in range(n_obs):
            s = E @ s
            ys.append(s[:, 0, 0])
        outs.append(torch.stack(ys, -1))
    out = torch.cat(outs, 0) if len(outs) > 1 else outs[0]
    return out.reshape(*batch, n_obs)


@dataclass(frozen=True)
class ShearFrameSpec(ModelSpec):
    """Shear-frame damping identification (see the module docstring).

    Attributes:
        true_c: Damping used to generate the data.
        sigma: Observation noise standard deviation.
        noise_seed: ``None`` for noise-free data, else the seed of the added N(0, sigma^2) noise.
        c_max: Upper ends of the uniform prior box ``[0, c_max[0]] x [0, c_max[1]]``.
        n_obs: Number of observations (at ``t = dt k``, ``k = 1..n_obs``).
        dt: Sampling interval.
        masses: Floor masses (m1, m2).
        stiffnesses: Story stiffnesses (k1, k2).
    """

    TYPE: ClassVar[str] = "shear-frame"
    true_c: tuple[float, float] = (1.0, 0.1)
    sigma: float = 0.015
    noise_seed: int | None = None
    c_max: tuple[float, float] = (1.4, 0.7)
    n_obs: int = 40
    dt: float = 0.5
    masses: tuple[float, float] = (1.0, 1.0)
    stiffnesses: tuple[float, float] = (2.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("true_c", "c_max", "masses", "stiffnesses"):
            value = getattr(self, name)
            try:
                pair = tuple(float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise PosteriorError(f"shear-frame: '{name}' must be two numbers, got {value!r}") from exc
            if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
                raise PosteriorError(f"shear-frame: '{name}' must be two finite numbers, got {value!r}")
            if name != "true_c" and min(pair) <= 0:
                raise PosteriorError(f"shear-frame: '{name}' must be positive, got {pair}")
            object.__setattr__(self, name, pair)
        if not (math.isfinite(float(self.sigma)) and float(self.sigma) > 0):
            raise PosteriorError(f"shear-frame: 'sigma' must be positive, got {self.sigma!r}")
        object.__setattr__(self, "sigma", float(self.sigma))
        if not (math.isfinite(float(self.dt)) and float(self.dt) > 0):
            raise PosteriorError(f"shear-frame: 'dt' must be positive, got {self.dt!r}")
        object.__setattr__(self, "dt", float(self.dt))
        if isinstance(self.n_obs, bool) or not isinstance(self.n_obs, int) or self.n_obs < 1:
            raise PosteriorError(f"shear-frame: 'n_obs' must be a positive integer, got {self.n_obs!r}")
        if self.noise_seed is not None and (isinstance(self.noise_seed, bool) or not isinstance(self.noise_seed, int)):
            raise PosteriorError(f"shear-frame: 'noise_seed' must be None or an integer, got {self.noise_seed!r}")

    def build(self) -> ShearFrameModel:
        return ShearFrameModel(self)


class ShearFrameModel(PosteriorModel):
    """Posterior of the damping coefficients (c1, c2) under a uniform prior; see `ShearFrameSpec`."""

    def __init__(self, spec: ShearFrameSpec) -> None:
        names = ("c1", "c2")
        box = Box((0.0, 0.0), spec.c_max, names)
        super().__init__(spec, "two-story shear frame", names, box, box)
        self.times = spec.dt * np.arange(1, spec.n_obs + 1)
        clean = self.response(torch.tensor(spec.true_c, dtype=DTYPE))
        if spec.noise_seed is not None:
            noise = np.random.default_rng(spec.noise_seed).normal(0.0, spec.sigma, spec.n_obs)
            clean = clean + torch.tensor(noise, dtype=DTYPE)
        self.observations = clean.detach()
        self._const = -spec.n_obs * (math.log(spec.sigma) + 0.5 * math.log(2 * math.pi)) - math.log(
            spec.c_max[0] * spec.c_max[1]
        )

    def response(self, c: Tensor) -> Tensor:
        """Noise-free first-floor displacement at the observation times (`... x 2` -> `... x n_obs`)."""
        s: ShearFrameSpec = self.spec  # type: ignore[assignment]
        return shear_frame_response(c, s.n_obs, s.dt, s.masses, s.stiffnesses)

    def _log_density(self, theta: Tensor) -> Tensor:
        s: ShearFrameSpec = self.spec  # type: ignore[assignment]
        r = (self.response(theta) - self.observations) / s.sigma
        return self._const - 0.5 * (r * r).sum(-1)
