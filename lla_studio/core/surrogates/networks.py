"""Serializable network specifications for the linearized Laplace surrogate.

A spec is a frozen, validated description of an architecture (``MLPSpec`` or ``CNNSpec``)
that round-trips through plain dicts with a ``"network"`` type tag, e.g.
``{"network": "mlp", "widths": [50, 50], "activation": "relu"}``. ``build`` turns a spec
into a seeded ``torch.nn.Sequential`` with a scalar output whose last module is an
``nn.Linear`` (the "last layer" of the last-layer Laplace variant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import nn

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.schema import brief

__all__ = [
    "ACTIVATIONS",
    "CNNSpec",
    "MLPSpec",
    "NetworkSpec",
    "NetworkSpecError",
    "build",
    "network_from_dict",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


class NetworkSpecError(LLAStudioError, ValueError):
    """An invalid network specification; the message names the offending field."""


MAX_SIZE = 2**20
"""Largest layer width, channel count, image side or kernel size: far beyond a network whose
Jacobian an LLA can hold, so a larger number is a typo that would otherwise fail only when built."""


def _check_activation(activation: Any) -> None:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise NetworkSpecError(
            f"activation: unknown activation {brief(activation)}, expected one of "
            f"{sorted(ACTIVATIONS)}"
        )


def _int_tuple(values: Any, field: str, what: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise NetworkSpecError(f"{field}: expected a list of integers, got {brief(values)}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int):
            raise NetworkSpecError(f"{field}[{i}]: {what} must be an integer, got {brief(v)}")
        if v < 1:
            raise NetworkSpecError(f"{field}[{i}]: {what} must be >= 1, got {brief(v)}")
        if v > MAX_SIZE:
            raise NetworkSpecError(f"{field}[{i}]: {what} must be at most {MAX_SIZE}, got {brief(v)}")
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected network ``d -> widths[0] -> ... -> widths[-1] -> 1``.

    Attributes:
        widths: Hidden layer widths; empty for a linear model ``f(x) = w^T x + b``.
        activation: One of ``relu``, ``tanh``, ``gelu``, ``softplus``, ``identity``.
    """

    widths: tuple[int, ...] = (50, 50)
    activation: str = "relu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _int_tuple(self.widths, "widths", "width"))
        _check_activation(self.activation)

    @classmethod
    def uniform(cls, width: int, depth: int, activation: str = "relu") -> MLPSpec:
        """An MLP with ``depth`` hidden layers of equal ``width``."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise NetworkSpecError(f"depth: must be an integer >= 0, got {depth!r}")
        return cls(widths=(width,) * depth, activation=activation)

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {"network": "mlp", "widths": list(self.widths), "activation": self.activation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MLPSpec:
        _check_keys(data, "mlp", {"widths", "activation"})
        return cls(
            widths=tuple(_require(data, "widths")),
            activation=data.get("activation", "relu"),
        )


@dataclass(frozen=True)
class CNNSpec:
    """A small convolutional network for image-like features.

    The ``H*W`` input features are reshaped to a one-channel ``H x W`` image, passed through
    ``len(channels)`` stages of ``Conv2d(kernel_size, padding="same") -> activation
    [-> AvgPool2d(2)]``, flattened, and passed through dense layers ``dense`` to one output.

    Attributes:
        image_shape: ``(H, W)``; ``H * W`` must equal the number of input features.
        channels: Output channels of each convolution stage.
        kernel_size: Odd convolution kernel size.
        dense: Hidden widths of the dense head.
        activation: Activation after every convolution and hidden dense layer.
        pool: Average-pool by 2 after every convolution stage.
    """

    image_shape: tuple[int, int] = (8, 8)
    channels: tuple[int, ...] = (8, 16)
    kernel_size: int = 3
    dense: tuple[int, ...] = (32,)
    activation: str = "relu"
    pool: bool = True

    def __post_init__(self) -> None:
        shape = self.image_shape
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) != 2:
            raise NetworkSpecError(f"image_shape: expected [height, width], got {brief(shape)}")
        object.__setattr__(
            self, "image_shape", _int_tuple(shape, "image_shape", "image size")
        )
        object.__setattr__(
            self, "channels", _int_tuple(self.channels, "channels", "channel count")
        )
        if not self.channels:
            raise NetworkSpecError("channels: a CNN needs at least one convolution stage")
        object.__setattr__(self, "dense", _int_tuple(self.dense, "dense", "width"))
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SIZE or k % 2 == 0:
            raise NetworkSpecError(f"kernel_size: must be an odd integer in [1, {MAX_SIZE}], got {brief(k)}")
        _check_activation(self.activation)
        if not isinstance(self.pool, bool):
            raise NetworkSpecError(f"pool: must be true or false, got {brief(self.pool)}")
        h, w = self.image_shape
        for stage in range(len(self.channels)):
            if self.pool:
                h, w = h // 2, w // 2
                if h < 1 or w < 1:
                    raise NetworkSpecError(
                        f"channels: stage {stage} pools a "
                        f"{self.image_shape[0]}x{self.image_shape[1]} image below 1x1; "
                        "use fewer stages, a larger image or pool=false"
                    )

    @property
    def n_pixels(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    def feature_map_shape(self) -> tuple[int, int, int]:
        """``(channels, h, w)`` after the convolution stages."""
        h, w = self.image_shape
        if self.pool:
            h, w = h >> len(self.channels), w >> len(self.channels)
        return self.channels[-1], h, w

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": "cnn",
            "image_shape": list(self.image_shape),
            "channels": list(self.channels),
            "kernel_size": self.kernel_size,
            "dense": list(self.dense),
            "activation": self.activation,
            "pool": self.pool,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CNNSpec:
        _check_keys(
            data, "cnn", {"image_shape", "channels", "kernel_size", "dense", "activation", "pool"}
        )
        return cls(  # lists are checked (and made tuples) by the constructor, whatever they are
            image_shape=_require(data, "image_shape"),
            channels=data.get("channels", (8, 16)),
            kernel_size=data.get("kernel_size", 3),
            dense=data.get("dense", (32,)),
            activation=data.get("activation", "relu"),
            pool=data.get("pool", True),
        )


NetworkSpec = Union[MLPSpec, CNNSpec]

_SPEC_TYPES: dict[str, type] = {"mlp": MLPSpec, "cnn": CNNSpec}


def _check_keys(data: Mapping[str, Any], tag: str, allowed: set[str]) -> None:
    if not isinstance(data, Mapping):
        raise NetworkSpecError(f"network: expected a mapping, got {type(data).__name__}")
    if data.get("network") != tag:
        raise NetworkSpecError(f"network: expected {tag!r}, got {brief(data.get('network'))}")
    for key in data:
        if key != "network" and key not in allowed:
            raise NetworkSpecError(f"{key}: unknown field of a {tag!r} network")


def _require(data: Mapping[str, Any], key: str) -> Any:
    if key not in data:
        raise NetworkSpecError(f"{key}: missing field")
    value = data[key]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise NetworkSpecError(f"{key}: expected a list, got {brief(value)}")
    return value


def network_from_dict(data: Mapping[str, Any]) -> NetworkSpec:
    """Validate a plain dict (its ``"network"`` tag picks the type) into a spec."""
    if not isinstance(data, Mapping):
        raise NetworkSpecError(f"network: expected a mapping, got {type(data).__name__}")
    tag = data.get("network")
    if not isinstance(tag, str) or tag not in _SPEC_TYPES:
        raise NetworkSpecError(
            f"network: unknown network type {brief(tag)}, expected one of {sorted(_SPEC_TYPES)}"
        )
    return _SPEC_TYPES[tag].from_dict(data)


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
