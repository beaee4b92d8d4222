"""Numerics and domain model of LLA Studio. Never imports Qt."""

from lla_studio.core.errors import (
    KernelGraphError,
    LLAStudioError,
    ObjectiveError,
    PosteriorError,
    SearchSpaceError,
    SessionError,
    StudyError,
    SurrogateFitError,
    TransformError,
)

__all__ = [
    "KernelGraphError",
    "LLAStudioError",
    "ObjectiveError",
    "PosteriorError",
    "SearchSpaceError",
    "SessionError",
    "StudyError",
    "SurrogateFitError",
    "TransformError",
]
