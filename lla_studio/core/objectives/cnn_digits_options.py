"""Options of the ``cnn-digits`` objective, checked when a session is read (torch-free).

:mod:`~lla_studio.core.objectives.cnn_digits` trains the network; this module only says which
options exist and what values they take, so that reading a session needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lla_studio.core.errors import ObjectiveError

__all__ = ["CNN_DIGITS_OPTIONS", "CNNDigitsOptions", "METRICS", "cnn_digits_options"]

CNN_DIGITS_OPTIONS = ("metric", "seed", "split_seed")
METRICS = ("log_val_loss", "val_loss", "val_error")


@dataclass(frozen=True)
class CNNDigitsOptions:
    """Options of the ``cnn-digits`` objective.

    Args:
        metric: What the study minimizes (:data:`METRICS`).
        seed: Seed of the network's initialization and of the shuffling.
        split_seed: Seed of the stratified train / validation / test split.
    """

    metric: str = "log_val_loss"
    seed: int = 0
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ObjectiveError(f"cnn-digits objective: option 'metric' must be one of {', '.join(METRICS)}, got {self.metric!r}")
        for name in ("seed", "split_seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ObjectiveError(f"cnn-digits objective: option {name!r} must be an integer >= 0, got {v!r}")


def cnn_digits_options(options: Mapping[str, Any]) -> CNNDigitsOptions:
    """Validate a session's objective options (unknown keys refused, naming them)."""
    unknown = sorted(set(options) - set(CNN_DIGITS_OPTIONS))
    if unknown:
        raise ObjectiveError(f"cnn-digits objective: unknown option(s) {unknown} (allowed: {', '.join(CNN_DIGITS_OPTIONS)})")
    values = {k: options[k] for k in CNN_DIGITS_OPTIONS if k in options}
    for key, v in list(values.items()):
        if isinstance(v, float) and v.is_integer():
            values[key] = int(v)
    return CNNDigitsOptions(**values)


