"""Process-wide settings of the study process (the studio's numerical work runs there).

Why by hand: Python's cyclic collector has no notion of "objects that live as long as the
process". Once torch, gpytorch, BoTorch and scipy are imported a process tracks about 215 000
objects, and every full collection walks all of them: 116 ms measured on the 2-core CI machine,
triggered at random by allocation, i.e. inside GP fits that now take 0.07-0.5 s
(``benchmarks/kernel_speed.py``). ``gc.freeze`` moves the objects alive now to a permanent
generation that collections skip (the collector then walks only what the study allocated).
"""

from __future__ import annotations

import gc

__all__ = ["freeze_imported_objects"]


def freeze_imported_objects() -> None:
    """Import the numerical stack, collect once, and freeze every surviving object.

    Call once, early, in a process that will run studies (after its own imports). Objects created
    later are collected as usual.
    """
    import botorch  # noqa: F401  (the imports whose objects live as long as the process)
    import gpytorch  # noqa: F401
    import scipy.optimize  # noqa: F401
    import torch  # noqa: F401

    import lla_studio.core.study  # noqa: F401

    gc.collect()
    gc.freeze()
