"""Axis-aligned rectangles in the 2-D parameter plane: default boxes, supports and grid boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lla_studio.core.errors import PosteriorError

__all__ = ["Box"]


@dataclass(frozen=True)
class Box:
    """A rectangle ``[low[0], high[0]] x [low[1], high[1]]``; bounds may be infinite (a support).

    Attributes:
        low: Lower bound per parameter (``-inf`` allowed).
        high: Upper bound per parameter (``+inf`` allowed).
        names: Parameter names, used in error messages only.
    """

    low: tuple[float, float]
    high: tuple[float, float]
    names: tuple[str, str] = ("x1", "x2")

    def __post_init__(self) -> None:
        low = _pair(self.low, "low", self.names)
        high = _pair(self.high, "high", self.names)
        for i, name in enumerate(self.names):
            if math.isnan(low[i]) or math.isnan(high[i]):
                raise PosteriorError(f"box: parameter '{name}' has a NaN bound")
            if not low[i] < high[i]:
                raise PosteriorError(f"box: parameter '{name}' needs low < high, got low={low[i]:g}, high={high[i]:g}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))

    @property
    def is_finite(self) -> bool:
        """Whether all four bounds are finite."""
        return all(math.isfinite(v) for v in self.low + self.high)

    @property
    def width(self) -> np.ndarray:
        """A `2` array of ``high - low`` (may be infinite)."""
        return np.asarray(self.high) - np.asarray(self.low)

    @property
    def center(self) -> np.ndarray:
        """A `2` array: the centre of a finite box."""
        self.require_finite("box centre")
        return 0.5 * (np.asarray(self.low) + np.asarray(self.high))

    def require_finite(self, what: str) -> None:
        """Raise a `PosteriorError` naming the first infinite bound."""
        for i, name in enumerate(self.names):
            if not (math.isfinite(self.low[i]) and math.isfinite(self.high[i])):
                raise PosteriorError(
                    f"{what} needs a finite box; parameter '{name}' has low={self.low[i]:g}, high={self.high[i]:g}"
                )

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Inclusive membership test for a `... x 2` array; returns a `...` bool array."""
        p = np.asarray(points, dtype=float)
        return np.all((p >= np.asarray(self.low)) & (p <= np.asarray(self.high)), axis=-1)

    def intersect(self, other: Box) -> Box:
        """The intersection; raises a `PosteriorError` when it is empty."""
        low = tuple(max(a, b) for a, b in zip(self.low, other.low))
        high = tuple(min(a, b) for a, b in zip(self.high, other.high))
        return Box(low, high, self.names)  # type: ignore[arg-type]

    def union(self, other: Box) -> Box:
        """The smallest box containing both."""
        low = tuple(min(a, b) for a, b in zip(self.low, other.low))
        high = tuple(max(a, b) for a, b in zip(self.high, other.high))
        return Box(low, high, self.names)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (infinite bounds as strings ``"inf"``/``"-inf"``)."""
        return {"low": [_num(v) for v in self.low], "high": [_num(v) for v in self.high]}

    @classmethod
    def from_dict(cls, data: Any, names: tuple[str, str] = ("x1", "x2")) -> Box:
        """Inverse of `to_dict`."""
        if not isinstance(data, dict) or set(data) != {"low", "high"}:
            raise PosteriorError(f"box: expected a dict with keys 'low' and 'high', got {data!r}")
        return cls(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]), names)


def _num(v: float) -> float | str:
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def _pair(value: Sequence[float], what: str, names: Sequence[str]) -> tuple[float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise PosteriorError(f"box: {what} must be two numbers, got {value!r}") from exc
    if len(out) != 2:
        raise PosteriorError(f"box: {what} must have 2 entries ({', '.join(names)}), got {len(out)}")
    return out  # type: ignore[return-value]
