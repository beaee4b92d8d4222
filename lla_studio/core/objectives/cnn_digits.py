"""CNN hyperparameter tuning on ``load_digits``: the 19-parameter CNN space trained for real.

A configuration of the CNN space (``resources/sessions/cnn_digits_*.json``) is trained as a
LeNet-style network on the 8 x 8 images of ``sklearn.datasets.load_digits`` (1 797 images, shipped
inside scikit-learn: no download)::

    conv1 3x3 (channels_conv1) - ReLU - conv2 3x3 (channels_conv2) - ReLU - max-pool 2   8x8 -> 4x4
    conv3 3x3 (channels_conv3) - ReLU - max-pool 2                                       4x4 -> 2x2
    dense (dense_units) - ReLU - output (10 classes)

Every parameter of the space is used:

* ``optimizer`` ``adam`` or ``sgd``; for ``sgd`` also ``nesterov`` and the momentum cycle
  (``max_momentum``, ``min_momentum_fraction``: momentum cycles between ``min_momentum_fraction *
  max_momentum`` and ``max_momentum``, inverse to the learning rate). Both are ignored for adam
  (they are inactive there: absent from the configuration).
* ``epochs``, ``batch_size`` (capped at the training-set size: one batch is the whole set).
* One weight decay per layer: ``weight_decay_conv1`` .. ``weight_decay_conv3``,
  ``weight_decay_dense`` and ``weight_decay_output``, each on that layer's weights (its own
  parameter group; biases are not decayed). Decoupled for neither optimizer: it is torch's
  ``weight_decay`` (an L2 term in the gradient).
* A one-cycle learning-rate schedule (``torch.optim.lr_scheduler.OneCycleLR``, linear annealing):
  it starts at ``lr_initial_fraction * max_lr``, rises to ``max_lr`` over the first
  ``warmup_fraction`` of the steps and falls to ``lr_final_fraction * max_lr``.
* ``channels_conv1`` .. ``channels_conv3`` and ``dense_units``: the layer widths.

Data: a fixed stratified split of the 1 797 images into train / validation / test (60 / 20 / 20 %:
1 077 / 360 / 360 images, ``split_seed``); pixels scaled to ``[0, 1]``. The study optimizes the
validation metric named by the ``metric`` option (minimized):

* ``"log_val_loss"`` (default): the natural log of the validation cross-entropy (mean over the 360
  images). Why not the error rate: good networks get 0-3 % validation error, i.e. 0-11 of 360
  images, a handful of discrete levels near 0 that a GP models badly; the cross-entropy is
  continuous and its log spreads the good runs out (0.02-0.3 -> -4 .. -1.2) instead of squeezing
  them against 0.
* ``"val_loss"``: the cross-entropy itself; ``"val_error"``: the error rate.

A run whose loss becomes NaN or inf (too large a learning rate: ``max_lr`` reaches 20) is a
*completed* trial with the chance-level value (cross-entropy ``log 10`` of a uniform prediction,
error 0.9): diverging is a property of the configuration the surrogate should learn, not a failure
of the evaluation. Losses worse than chance are also clipped to chance, so one wild run does not
dominate the standardized targets.

Recorded per trial (:attr:`CNNDigitsResult.metrics`): ``train_seconds``, ``val_log_loss``,
``val_error``, ``test_error``, ``diverged`` (0/1).

Determinism: the evaluation sets torch to one intra-op thread (restored afterwards), initializes the
network from ``torch.manual_seed``-free generators seeded by the ``seed`` option and shuffles with
its own generator, so the same configuration and seed give the same value on any machine thread
count (float32 on one thread; tested with two thread counts).

Session form::

    {"type": "benchmark", "name": "cnn-digits", "direction": "minimize",
     "options": {"metric": "log_val_loss", "seed": 0}}
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives.cnn_digits_options import CNN_DIGITS_OPTIONS, METRICS, CNNDigitsOptions, cnn_digits_options

__all__ = [
    "CNN_DIGITS_OPTIONS",
    "CNNDigits",
    "CNNDigitsOptions",
    "CNNDigitsResult",
    "METRICS",
    "PARAMETERS",
    "cnn_digits_options",
]

PARAMETERS = (
    "optimizer", "nesterov", "epochs", "batch_size",
    "weight_decay_conv1", "weight_decay_conv2", "weight_decay_conv3", "weight_decay_dense", "weight_decay_output",
    "lr_initial_fraction", "lr_final_fraction", "warmup_fraction", "max_lr", "max_momentum", "min_momentum_fraction",
    "channels_conv1", "channels_conv2", "channels_conv3", "dense_units",
)
_SGD_ONLY = ("nesterov", "max_momentum", "min_momentum_fraction")
CHANCE_LOSS = math.log(10.0)
CHANCE_ERROR = 0.9
_SPLIT = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class CNNDigitsResult:
    """One training run: the value the study minimizes and the named extra metrics."""

    value: float
    metrics: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=4)
def split(split_seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The fixed stratified ``(X, y)`` train, validation and test sets (X: ``n x 1 x 8 x 8`` in [0, 1])."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (np.asarray(X, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(y, dtype=np.int64)
    test = _SPLIT[2]
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=test, stratify=y, random_state=split_seed)
    val = _SPLIT[1] / (1.0 - test)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=val, stratify=y_rest, random_state=split_seed)
    out = ((X_train, y_train), (X_val, y_val), (X_test, y_test))
    for X_part, y_part in out:
        if len(np.unique(y_part)) != 10:  # pragma: no cover - stratification keeps every class
            raise ObjectiveError("cnn-digits objective: the split left a digit class empty")
        X_part.setflags(write=False)
        y_part.setflags(write=False)
    return out


def _check_config(config: Mapping[str, Any]) -> dict[str, Any]:
    missing = [p for p in PARAMETERS if p not in config and p not in _SGD_ONLY]
    if missing:
        raise ObjectiveError(f"cnn-digits objective: the configuration lacks {', '.join(missing)}")
    unknown = sorted(set(config) - set(PARAMETERS))
    if unknown:
        raise ObjectiveError(f"cnn-digits objective: unknown parameter(s) {unknown}")
    if config["optimizer"] not in ("adam", "sgd"):
        raise ObjectiveError(f"cnn-digits objective: optimizer must be 'adam' or 'sgd', got {config['optimizer']!r}")
    if config["optimizer"] == "sgd":
        absent = [p for p in _SGD_ONLY if p not in config]
        if absent:
            raise ObjectiveError(f"cnn-digits objective: sgd needs {', '.join(absent)}")
    return dict(config)


def build_network(config: Mapping[str, Any], generator: Any) -> Any:
    """The LeNet-style network of a configuration (float32), initialized from ``generator``."""
    import torch
    from torch import nn

    c1, c2, c3, units = (int(config[k]) for k in ("channels_conv1", "channels_conv2", "channels_conv3", "dense_units"))
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(1, c1, 3, padding=1, dtype=torch.float32))
    net.add_module("relu1", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(c1, c2, 3, padding=1, dtype=torch.float32))
    net.add_module("relu2", nn.ReLU())
    net.add_module("pool2", nn.MaxPool2d(2))
    net.add_module("conv3", nn.Conv2d(c2, c3, 3, padding=1, dtype=torch.float32))
    net.add_module("relu3", nn.ReLU())
    net.add_module("pool3", nn.MaxPool2d(2))
    net.add_module("flatten", nn.Flatten())
    net.add_module("dense", nn.Linear(c3 * 2 * 2, units, dtype=torch.float32))
    net.add_module("relu4", nn.ReLU())
    net.add_module("output", nn.Linear(units, 10, dtype=torch.float32))
    # He (Kaiming) uniform weights for ReLU layers, zero biases, drawn from our generator so that
    # the init does not depend on (or advance) the global RNG. (torch's default, bound 1/sqrt(fan_in),
    # shrinks the signal by ~1/sqrt(3) per layer: measured, 13 of 16 Sobol configurations then ended
    # at chance level.)
    with torch.no_grad():
        for layer in (net.conv1, net.conv2, net.conv3, net.dense, net.output):
            fan_in = layer.weight[0].numel()
            gain = 1.0 if layer is net.output else math.sqrt(2.0)
            bound = gain * math.sqrt(3.0 / fan_in)
            layer.weight.uniform_(-bound, bound, generator=generator)
            layer.bias.zero_()
    return net


def parameter_groups(net: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One group per layer's weights with that layer's weight decay; biases undecayed."""
    layers = {"conv1": "weight_decay_conv1", "conv2": "weight_decay_conv2", "conv3": "weight_decay_conv3",
              "dense": "weight_decay_dense", "output": "weight_decay_output"}
    groups = [{"params": [getattr(net, name).weight], "weight_decay": float(config[key]), "name": name}
              for name, key in layers.items()]
    groups.append({"params": [getattr(net, name).bias for name in layers], "weight_decay": 0.0, "name": "biases"})
    return groups


def make_optimizer(net: Any, config: Mapping[str, Any], steps: int) -> tuple[Any, Any]:
    """The optimizer and its one-cycle schedule for ``steps`` optimizer steps."""
    import torch

    max_lr = float(config["max_lr"])
    initial = float(config["lr_initial_fraction"])
    final = float(config["lr_final_fraction"])
    groups = parameter_groups(net, config)
    sgd = config["optimizer"] == "sgd"
    if sgd:
        top = float(config["max_momentum"])
        bottom = float(config["min_momentum_fraction"]) * top
        nesterov = bool(config["nesterov"]) and top > 0  # torch refuses nesterov without momentum
        opt = torch.optim.SGD(groups, lr=max_lr * initial, momentum=top, nesterov=nesterov)
    else:
        opt = torch.optim.Adam(groups, lr=max_lr * initial)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=max(steps, 2),
        pct_start=float(config["warmup_fraction"]),
        anneal_strategy="linear",
        div_factor=1.0 / initial,
        final_div_factor=initial / final,
        cycle_momentum=sgd and top > 0,
        base_momentum=bottom if sgd else 0.85,
        max_momentum=top if sgd else 0.95,
    )
    return opt, schedule


class CNNDigits:
    """The ``cnn-digits`` objective: ``objective(config) -> value`` and :meth:`evaluate` with metrics."""

    def __init__(self, options: CNNDigitsOptions = CNNDigitsOptions()) -> None:
        self.options = options

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CNNDigits:
        return cls(cnn_digits_options(options))

    def __call__(self, config: Mapping[str, Any]) -> CNNDigitsResult:
        return self.evaluate(config)

    def evaluate(self, config: Mapping[str, Any]) -> CNNDigitsResult:
        """Train one configuration; see the module docstring."""
        import torch

        config = _check_config(config)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._train(config)
        finally:
            torch.set_num_threads(threads)

    def _train(self, config: dict[str, Any]) -> CNNDigitsResult:
        import torch
        import torch.nn.functional as F

        (X_train, y_train), (X_val, y_val), (X_test, y_test) = split(self.options.split_seed)
        Xt, yt = torch.from_numpy(np.array(X_train)), torch.from_numpy(np.array(y_train))
        gen = torch.Generator().manual_seed(self.options.seed)
        net = build_network(config, gen)
        n = Xt.shape[0]
        batch = min(int(config["batch_size"]), n)
        per_epoch = math.ceil(n / batch)
        epochs = int(config["epochs"])
        opt, schedule = make_optimizer(net, config, per_epoch * epochs)
        start = time.perf_counter()
        diverged = False
        net.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for b in range(per_epoch):
                idx = order[b * batch : (b + 1) * batch]
                loss = F.cross_entropy(net(Xt[idx]), yt[idx])
                if not torch.isfinite(loss):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if schedule.last_epoch < schedule.total_steps - 1:
                    schedule.step()
            if diverged:
                break
        seconds = time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            val_logits = net(torch.from_numpy(np.array(X_val)))
            test_logits = net(torch.from_numpy(np.array(X_test)))
        yv, ys = torch.from_numpy(np.array(y_val)), torch.from_numpy(np.array(y_test))
        val_loss = float(F.cross_entropy(val_logits, yv))
        diverged = diverged or not (math.isfinite(val_loss) and torch.isfinite(val_logits).all())
        if diverged:
            val_loss, val_error, test_error = CHANCE_LOSS, CHANCE_ERROR, CHANCE_ERROR
        else:
            val_loss = min(val_loss, CHANCE_LOSS)
            val_error = float((val_logits.argmax(-1) != yv).double().mean())
            test_error = float((test_logits.argmax(-1) != ys).double().mean())
        metric = self.options.metric
        value = {"log_val_loss": math.log(max(val_loss, 1e-12)), "val_loss": val_loss, "val_error": val_error}[metric]
        metrics = {"train_seconds": seconds, "val_log_loss": val_loss, "val_error": val_error,
                   "test_error": test_error, "diverged": float(diverged)}
        return CNNDigitsResult(value=value, metrics=metrics)
