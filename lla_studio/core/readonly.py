"""Read-only numpy results that survive a pipe: frozen arrays and mappings, pickled and frozen again.

The labs' answers (posterior snapshots, ReLU lab results) are computed in the lab process and drawn
in the GUI process. Two things do not survive ``pickle`` by themselves: ``MappingProxyType`` (the
read-only mapping the results use) does not pickle at all, and numpy arrays come back writeable
(numpy does not pickle the ``WRITEABLE`` flag). `ReadOnlyData` gives a frozen dataclass a
``__reduce__`` that sends its fields as plain dicts and arrays and rebuilds them read-only on the
other side, without running validation again (the values were valid where they were made).

Torch-free and Qt-free: both processes import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["ReadOnlyData", "freeze", "readonly_array"]


def readonly_array(a: Any, dtype: Any = float) -> np.ndarray:
    """A C-contiguous, read-only copy of ``a``."""
    out = np.array(a, dtype=dtype, copy=True, order="C")
    out.setflags(write=False)
    return out


def freeze(value: Any) -> Any:
    """Arrays read-only (in place), mappings as read-only ``MappingProxyType``, tuples element-wise."""
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, tuple):
        return tuple(freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, MappingProxyType):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_thaw(v) for v in value)
    return value


def _rebuild(cls: type, state: dict[str, Any]) -> Any:
    obj = object.__new__(cls)
    for name, value in state.items():
        object.__setattr__(obj, name, freeze(value))
    return obj


class ReadOnlyData:
    """Mixin for frozen dataclasses of read-only arrays and mappings: pickles and stays read-only."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_rebuild, (type(self), {f.name: _thaw(getattr(self, f.name)) for f in fields(self)}))  # type: ignore[arg-type]
