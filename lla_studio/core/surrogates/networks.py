"""Networks of the linearized Laplace surrogate, built from their specs.

A spec is a frozen, validated description of an architecture (``MLPSpec`` or ``CNNSpec``, in the
torch-free :mod:`~lla_studio.core.surrogates.specs`) that round-trips through plain dicts with a
``"network"`` type tag, e.g. ``{"network": "mlp", "widths": [50, 50], "activation": "relu"}``. ``build`` turns a spec
into a seeded ``torch.nn.Sequential`` with a scalar output whose last module is an
``nn.Linear`` (the "last layer" of the last-layer Laplace variant).
"""

from __future__ import annotations

import torch
from torch import nn

from lla_studio.core.surrogates.specs import (
    ACTIVATION_NAMES,
    CNNSpec,
    MLPSpec,
    NetworkSpec,
    NetworkSpecError,
    network_from_dict,
)

__all__ = [
    "ACTIVATIONS",
    "CNNSpec",
    "MLPSpec",
    "NetworkSpec",
    "NetworkSpecError",
    "build",
    "network_from_dict",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {  # keys: ACTIVATION_NAMES
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


def build(
    spec: NetworkSpec,
    n_inputs: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> nn.Sequential:
    """Build a freshly initialized network for a spec.

    The global torch RNG is left untouched (initialization runs under ``fork_rng``).

    Args:
        spec: An ``MLPSpec`` or ``CNNSpec``.
        n_inputs: Number of input features ``d``.
        seed: Seed of the weight initialization.
        dtype: Parameter dtype.

    Returns:
        An ``nn.Sequential`` mapping a ``n x d`` tensor to a ``n x 1`` tensor whose last
        module is an ``nn.Linear(h, 1)``.
    """
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise NetworkSpecError(f"n_inputs: must be an integer >= 1, got {n_inputs!r}")
    act = ACTIVATIONS[spec.activation]
    layers: list[nn.Module] = []
    factory = {"dtype": dtype}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if isinstance(spec, MLPSpec):
            fan_in = n_inputs
            for width in spec.widths:
                layers += [nn.Linear(fan_in, width, **factory), act()]
                fan_in = width
        elif isinstance(spec, CNNSpec):
            if spec.n_pixels != n_inputs:
                h, w = spec.image_shape
                raise NetworkSpecError(
                    f"image_shape: {h}x{w} = {spec.n_pixels} pixels does not match the "
                    f"{n_inputs} input features"
                )
            layers.append(nn.Unflatten(-1, (1, *spec.image_shape)))
            in_ch = 1
            for ch in spec.channels:
                layers += [nn.Conv2d(in_ch, ch, spec.kernel_size, padding="same", **factory), act()]
                if spec.pool:
                    layers.append(nn.AvgPool2d(2))
                in_ch = ch
            layers.append(nn.Flatten(-3))
            c, h, w = spec.feature_map_shape()
            fan_in = c * h * w
            for width in spec.dense:
                layers += [nn.Linear(fan_in, width, **factory), act()]
                fan_in = width
        else:
            raise NetworkSpecError(f"network: unsupported spec type {type(spec).__name__}")
        layers.append(nn.Linear(fan_in, 1, **factory))
    return nn.Sequential(*layers)
