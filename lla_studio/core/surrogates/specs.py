"""What an LLA surrogate is, as data: its network and its fit settings (torch-free).

A session's ``surrogate`` of type ``lla`` holds ``{"network": {...}, "settings": {...}}``;
:func:`lla_options` reads both once into a :data:`NetworkSpec` (:class:`MLPSpec` or
:class:`CNNSpec`) and :class:`LLASettings`, with errors naming the JSON path. Reading and checking
a session therefore needs no torch; :mod:`~lla_studio.core.surrogates.networks` builds the network
and :mod:`~lla_studio.core.surrogates.lla` fits it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Union

from lla_studio.core.errors import LLASettingsError, LLAStudioError, NetworkSpecError, SessionError
from lla_studio.core.schema import brief

__all__ = [
    "ACTIVATION_NAMES",
    "CNNSpec",
    "DEFAULT_NETWORK",
    "LLASettings",
    "LLASettingsError",
    "MLPSpec",
    "NetworkSpec",
    "NetworkSpecError",
    "OPTIMIZERS",
    "SUBSETS",
    "TUNINGS",
    "lla_options",
    "network_from_dict",
]

ACTIVATION_NAMES = ("relu", "tanh", "gelu", "softplus", "identity")
"""Activations a network may use (:data:`~lla_studio.core.surrogates.networks.ACTIVATIONS` maps them to modules)."""
OPTIMIZERS = ("adam", "lbfgs")
"""MAP training optimizers."""

MAX_SIZE = 2**20
"""Largest layer width, channel count, image side or kernel size: far beyond a network whose
Jacobian an LLA can hold, so a larger number is a typo that would otherwise fail only when built."""


def _check_activation(activation: Any) -> None:
    if not isinstance(activation, str) or activation not in ACTIVATION_NAMES:
        raise NetworkSpecError(
            f"activation: unknown activation {brief(activation)}, expected one of "
            f"{sorted(ACTIVATION_NAMES)}"
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

    def n_weights(self, n_inputs: int) -> tuple[int, int]:
        """``(all, last layer)`` weight counts of the network on ``n_inputs`` features (biases
        included), by formula: what ``networks.build(spec, n_inputs)`` holds."""
        return _dense_weights(n_inputs, self.widths)

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

    def n_weights(self, n_inputs: int | None = None) -> tuple[int, int]:
        """``(all, last layer)`` weight counts (biases included), by formula: what
        ``networks.build(spec, n_pixels)`` holds. ``n_inputs`` is ignored: the image is the input."""
        total, in_ch = 0, 1
        for ch in self.channels:
            total += in_ch * ch * self.kernel_size**2 + ch
            in_ch = ch
        c, h, w = self.feature_map_shape()
        dense, last = _dense_weights(c * h * w, self.dense)
        return total + dense, last

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


def _dense_weights(fan_in: int, widths: Sequence[int]) -> tuple[int, int]:
    """Weights of dense layers ``fan_in -> widths... -> 1``: ``(all, the output layer's)``."""
    total = 0
    for width in widths:
        total += fan_in * width + width
        fan_in = width
    return total + fan_in + 1, fan_in + 1


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



SUBSETS = ("all", "last_layer")
TUNINGS = ("posthoc", "online", "none")
_BUDGETS = {
    "lbfgs": {"max_epochs": 50, "warm_max_epochs": 10, "patience": 3, "online_every": 5},
    "adam": {"max_epochs": 2000, "warm_max_epochs": 300, "patience": 50, "online_every": 200},
}

def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise LLASettingsError(f"{name}: must be a number > 0, got {brief(value)}")
    try:
        x = float(value)
    except OverflowError:  # an int beyond float64
        x = math.inf
    if not math.isfinite(x):
        raise LLASettingsError(f"{name}: must be finite, got {brief(value)}")
    return x


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LLASettingsError(f"{name}: must be an integer >= {minimum}, got {brief(value)}")
    return value


@dataclass(frozen=True)
class LLASettings:
    """Settings of an LLA fit. ``delta``/``sigma`` live on the standardized-target scale.

    Attributes:
        subset_of_weights: ``"all"`` (full LLA) or ``"last_layer"`` (J over the last layer).
        prior_precision: Initial ``delta`` (the weight decay of MAP training).
        noise_std: Initial ``sigma`` (standardized targets).
        optimizer: ``"lbfgs"`` (default; one epoch = up to 20 strong-Wolfe iterations) or
            ``"adam"`` (one epoch = one step), both full batch.
        learning_rate: Adam peak step size (reached after ``warmup`` steps).
        warmup: Adam linear step-size warm-up, in steps.
        max_epochs: Epoch budget from scratch (None: 50 for L-BFGS, 2000 for Adam).
        warm_max_epochs: Epoch budget when warm-started (None: 10 for L-BFGS, 300 for Adam).
        patience: Early stopping: epochs without relative improvement ``rel_tol`` of the
            best loss (None: 3 for L-BFGS, 50 for Adam).
        rel_tol: Relative loss improvement that counts as progress.
        warm_start: Start from ``previous`` weights when given (False: retrain from scratch).
        seed: Seed of the initialization when training from scratch.
        tuning: ``"posthoc"`` (after training, default), ``"online"`` (every
            ``online_every`` steps during training) or ``"none"``.
        tune_prior_precision: Tune ``delta`` on the evidence.
        tune_noise: Tune ``sigma`` on the evidence.
        online_every: Period of online tuning, in epochs (None: 5 for L-BFGS, 200 for Adam).
        prior_precision_bounds: Box for tuned ``delta``.
        noise_std_bounds: Box for tuned ``sigma``.
        max_tuning_iterations: L-BFGS-B iterations per tuning round.
        chunk_size: Points per Jacobian chunk in prediction.
    """

    subset_of_weights: str = "all"
    prior_precision: float = 1.0
    noise_std: float = 0.1
    optimizer: str = "lbfgs"
    learning_rate: float = 1e-2
    warmup: int = 50
    max_epochs: int | None = None
    warm_max_epochs: int | None = None
    patience: int | None = None
    rel_tol: float = 1e-4
    warm_start: bool = True
    seed: int = 0
    tuning: str = "posthoc"
    tune_prior_precision: bool = True
    tune_noise: bool = True
    online_every: int | None = None
    prior_precision_bounds: tuple[float, float] = (1e-4, 1e4)
    noise_std_bounds: tuple[float, float] = (1e-3, 2.0)
    max_tuning_iterations: int = 200
    chunk_size: int = 2048

    def __post_init__(self) -> None:
        if self.subset_of_weights not in SUBSETS:
            raise LLASettingsError(
                f"subset_of_weights: expected one of {SUBSETS}, got {brief(self.subset_of_weights)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise LLASettingsError(
                f"optimizer: expected one of {OPTIMIZERS}, got {brief(self.optimizer)}"
            )
        if self.tuning not in TUNINGS:
            raise LLASettingsError(f"tuning: expected one of {TUNINGS}, got {brief(self.tuning)}")
        for name in ("prior_precision", "noise_std", "learning_rate", "rel_tol"):
            object.__setattr__(self, name, _positive(name, getattr(self, name)))
        for name, minimum in (
            ("max_epochs", 0), ("warm_max_epochs", 0), ("patience", 1), ("online_every", 1)
        ):
            if getattr(self, name) is not None:
                _count(name, getattr(self, name), minimum)
        _count("warmup", self.warmup, 0)
        _count("seed", self.seed, 0)
        _count("max_tuning_iterations", self.max_tuning_iterations, 1)
        _count("chunk_size", self.chunk_size, 1)
        for name in ("warm_start", "tune_prior_precision", "tune_noise"):
            if not isinstance(getattr(self, name), bool):
                raise LLASettingsError(
                    f"{name}: must be true or false, got {brief(getattr(self, name))}"
                )
        for name in ("prior_precision_bounds", "noise_std_bounds"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or len(value) != 2:
                raise LLASettingsError(f"{name}: expected [low, high], got {brief(value)}")
            lo, hi = value
            lo, hi = _positive(f"{name}[0]", lo), _positive(f"{name}[1]", hi)
            if not lo < hi:
                raise LLASettingsError(f"{name}: needs low < high, got [{lo}, {hi}]")
            object.__setattr__(self, name, (lo, hi))

    def budget(self, name: str) -> int:
        """``max_epochs``, ``warm_max_epochs``, ``patience`` or ``online_every``, with None
        resolved to the optimizer's default."""
        value = getattr(self, name)
        return _BUDGETS[self.optimizer][name] if value is None else value

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["prior_precision_bounds"] = list(self.prior_precision_bounds)
        out["noise_std_bounds"] = list(self.noise_std_bounds)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLASettings:
        if not isinstance(data, Mapping):
            raise LLASettingsError(f"settings: expected an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise LLASettingsError(f"{key}: unknown LLA setting")
        kwargs = dict(data)
        for name in ("prior_precision_bounds", "noise_std_bounds"):
            if name in kwargs and isinstance(kwargs[name], list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)



DEFAULT_NETWORK: dict[str, Any] = {"network": "mlp", "widths": [50, 50], "activation": "tanh"}


def lla_options(options: Mapping[str, Any], path: str = "surrogate") -> tuple[Any, LLASettings]:
    """Validate a session's LLA options into a network spec and settings.

    ``network`` and ``settings`` must be objects (each optional). Errors are
    :class:`SessionError` at ``<path>.network`` / ``<path>.settings`` whose reason starts with the
    field (``activation: unknown activation 'swish', ...``).
    """
    from lla_studio.core.schema import type_name
    from lla_studio.core.specs import thaw

    if not isinstance(options, Mapping):
        raise SessionError(f"expected an object, got {type_name(options)}", path)
    unknown = set(options) - {"network", "settings"}
    if unknown:
        raise SessionError(f"unknown LLA option(s) {sorted(unknown, key=str)} (allowed: network, settings)", path)
    sections = {}
    for key, default in (("network", DEFAULT_NETWORK), ("settings", {})):
        value = options.get(key, default)
        if not isinstance(value, Mapping):
            raise SessionError(f"expected an object, got {type_name(value)}", f"{path}.{key}")
        sections[key] = thaw(value)  # plain dicts and lists, as in the JSON
    try:
        spec = network_from_dict(sections["network"])
    except LLAStudioError as err:
        raise SessionError(str(err), f"{path}.network") from None
    try:
        settings = LLASettings.from_dict(sections["settings"])
    except LLAStudioError as err:
        raise SessionError(str(err), f"{path}.settings") from None
    return spec, settings


