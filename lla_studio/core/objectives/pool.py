"""A finite set of candidate configurations that a pool-based study chooses from.

Some objectives are searched over a fixed pool rather than a continuous box (the digit image search:
every candidate is one of the 1 797 images of ``sklearn.datasets.load_digits``). Such an objective
exposes a :class:`CandidatePool`; :class:`~lla_studio.core.study.Study` then draws its initial design
from the pool and proposes by evaluating the acquisition function on every pool candidate not yet
tried (:func:`~lla_studio.core.acquisition.propose_from_pool`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lla_studio.core.errors import ObjectiveError

__all__ = ["CandidatePool"]


@dataclass(frozen=True, eq=False)
class CandidatePool:
    """Candidates as rows of parameter values.

    Args:
        names: Parameter names, one per column.
        values: A ``n x d`` float64 array; row ``i`` is candidate ``i`` (stored read-only).
    """

    names: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        names = tuple(self.names)
        values = np.array(self.values, dtype=np.float64, copy=True)
        if values.ndim != 2 or values.shape[0] < 1:
            raise ObjectiveError(f"candidate pool: expected a non-empty n x d array, got shape {values.shape}")
        if values.shape[1] != len(names):
            raise ObjectiveError(f"candidate pool: {len(names)} names for {values.shape[1]} columns")
        if len(set(names)) != len(names):
            raise ObjectiveError("candidate pool: parameter names must be unique")
        if not np.all(np.isfinite(values)):
            raise ObjectiveError("candidate pool: values must be finite")
        values.setflags(write=False)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def config(self, index: int) -> dict[str, Any]:
        """Candidate ``index`` as a configuration ``{name: value}``."""
        row = self.values[int(index)]
        return {n: float(v) for n, v in zip(self.names, row)}

    def columns(self, order: Sequence[str]) -> np.ndarray:
        """The values with columns in ``order`` (e.g. a search space's parameter order).

        Raises:
            ObjectiveError: ``order`` and the pool do not name the same parameters.
        """
        missing = [n for n in order if n not in self.names]
        extra = [n for n in self.names if n not in order]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"the pool has no column for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if extra:
                parts.append(f"the search space lacks {extra[:5]}{' ...' if len(extra) > 5 else ''}")
            raise ObjectiveError("candidate pool and search space disagree: " + "; ".join(parts))
        index = {n: j for j, n in enumerate(self.names)}
        return self.values[:, [index[n] for n in order]]
