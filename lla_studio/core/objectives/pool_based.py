"""Which objectives are pool-based: torch-free, so the GUI process can ask (trial views mark no
box boundary for a study that chooses among fixed candidates)."""

from __future__ import annotations

from lla_studio.core.specs import ObjectiveSpec

__all__ = ["POOL_BENCHMARKS", "is_pool_based"]

POOL_BENCHMARKS = ("digits",)
"""Benchmarks whose study chooses among a fixed pool of candidates."""


def is_pool_based(spec: ObjectiveSpec) -> bool:
    """Whether a study of this objective chooses among a fixed candidate pool (no box to run off)."""
    return spec.type == "benchmark" and spec.name in POOL_BENCHMARKS
