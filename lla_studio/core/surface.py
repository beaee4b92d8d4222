"""What the live views show: surrogate mean, sd and acquisition on 1-D slices and 2-D maps.

Everything is computed on unit-cube encodings and returned as plain numpy arrays (float64) in a
frozen :class:`SurfaceSnapshot` (defined, with :class:`SurfaceRequest`, in the torch-free
:mod:`lla_studio.core.surface_types`), ready to cross to the GUI process. Axes are in parameter units
(choice parameters: the choice index, labelled by the GUI).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lla_studio.core.space import ChoiceParameter, IntegerParameter, SearchSpace
from lla_studio.core.specs import AcquisitionSpec
from lla_studio.core.surface_types import SHOWN_ACQUISITION as _SHOWN
from lla_studio.core.surface_types import SurfaceRequest, SurfaceSnapshot, acquisition_label

__all__ = ["SurfaceRequest", "SurfaceSnapshot", "acquisition_label", "compute_surface", "axis_values"]

def axis_values(space: SearchSpace, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-cube coordinates and parameter values along one parameter's axis."""
    p = space[name]
    if isinstance(p, ChoiceParameter):
        k = len(p.choices)
        u = np.array([0.0]) if k == 1 else np.arange(k) / (k - 1)
        return u, np.arange(k, dtype=np.float64)
    u = np.linspace(0.0, 1.0, n)
    values = np.array([p.from_unit(x) for x in u], dtype=np.float64)
    if isinstance(p, IntegerParameter):
        values = values.astype(np.float64)
    return u, values


def compute_surface(
    model: Any,
    space: SearchSpace,
    train_U: torch.Tensor,
    train_Y: torch.Tensor,
    minimize: bool,
    request: SurfaceRequest,
    acquisition: AcquisitionSpec | None = None,
) -> SurfaceSnapshot:
    """Evaluate the model on the requested slice/map (no gradients, float64).

    ``acquisition``: the study's acquisition settings; the surface shows that function for one
    point (LogEI for Thompson sampling and ``None``)."""
    from dataclasses import replace

    from lla_studio.core.acquisition import build_acquisition

    spec = acquisition or AcquisitionSpec()
    spec = replace(spec, type=_SHOWN[spec.type])
    d = space.dim
    y = train_Y.reshape(-1)
    best = int(torch.argmin(y) if minimize else torch.argmax(y)) if y.numel() else -1
    base = train_U[best].clone() if best >= 0 else torch.full((d,), 0.5, dtype=torch.float64)
    for name, value in request.fixed.items():
        if name in space:
            base[space.index(name)] = float(value)
    axes_u, axes_v = zip(*(axis_values(space, p, request.n) for p in request.params))
    cols = [space.index(p) for p in request.params]
    if len(cols) == 1:
        X = base.repeat(len(axes_u[0]), 1)
        X[:, cols[0]] = torch.as_tensor(axes_u[0])
        shape: tuple[int, ...] = (len(axes_u[0]),)
    else:
        ua, ub = np.meshgrid(axes_u[0], axes_u[1])  # rows follow the second parameter
        X = base.repeat(ua.size, 1)
        X[:, cols[0]] = torch.as_tensor(ua.reshape(-1))
        X[:, cols[1]] = torch.as_tensor(ub.reshape(-1))
        shape = ua.shape
    with torch.no_grad():
        post = model.posterior(X.unsqueeze(-2))
        mean = post.mean.reshape(shape).numpy().copy()
        sd = post.variance.clamp_min(0).sqrt().reshape(shape).numpy().copy()
        if y.numel():
            acqf = build_acquisition(spec, model, train_U, train_Y.reshape(-1, 1), minimize, q=1)
            acq_np = acqf(X.unsqueeze(-2)).reshape(shape).numpy().copy()
        else:
            acq_np = np.zeros(shape)
    other = [j for j in range(d) if j not in cols]
    U = train_U.numpy()
    dist = np.linalg.norm(U[:, other] - base.numpy()[other], axis=1) if other else np.zeros(len(U))
    return SurfaceSnapshot(
        request_id=request.request_id,
        params=tuple(request.params),
        axes=tuple(np.asarray(v) for v in axes_v),
        mean=np.nan_to_num(mean),
        sd=np.nan_to_num(sd),
        acquisition=np.nan_to_num(acq_np, nan=-50.0, neginf=-50.0, posinf=50.0),
        observed_u=U.copy(),
        observed_y=y.numpy().copy(),
        distance=dist,
        incumbent_u=base.numpy().copy() if best >= 0 else np.zeros(0),
        acquisition_label=acquisition_label(spec),
    )
