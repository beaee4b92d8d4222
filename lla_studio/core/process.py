"""Process-wide settings of the study and lab processes (the studio's numerical work runs there).

Two settings no library makes for us, each measured:

* :func:`keep_freed_memory` -- glibc's allocator returns large freed blocks to the system;
* :func:`freeze_imported_objects` -- the cyclic collector walks every imported object;
* :func:`reuse_threadpool_controller` -- BoTorch's scipy wrappers list the loaded libraries at
  every call.

Collector, why by hand: Python's cyclic collector has no notion of "objects that live as long as the
process". Once torch, gpytorch, BoTorch and scipy are imported a process tracks about 215 000
objects, and every full collection walks all of them: 116 ms measured on the 2-core CI machine,
triggered at random by allocation, i.e. inside GP fits that now take 0.07-0.5 s
(``benchmarks/kernel_speed.py``). ``gc.freeze`` moves the objects alive now to a permanent
generation that collections skip (the collector then walks only what the study allocated).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys

__all__ = [
    "freeze_imported_objects",
    "keep_freed_memory",
    "prepare_background_process",
    "prepare_lab_process",
    "prepare_study_process",
    "reuse_threadpool_controller",
]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 2**20
"""Blocks up to this size come from (and return to) the heap instead of fresh mappings."""
TRIM_THRESHOLD = 512 * 2**20
"""Free memory at the top of the heap the process keeps before returning it to the system."""

_kept = False


def keep_freed_memory() -> bool:
    """Let glibc reuse freed large blocks instead of unmapping them (Linux with glibc only).

    Why: torch allocates every intermediate tensor afresh. A kernel block of the 42-leaf CNN
    kernel at n = 120 is 42 x 7 260 doubles (2.4 MB), above glibc's mmap threshold, so each one
    is a new mapping whose pages the kernel faults in and zeroes, and freeing it unmaps it again.
    On this 2-core VM an out-of-place multiply of such a block took 942 us against 47 us into an
    existing buffer (``torch.mul(..., out=)``); with these thresholds 83 us. Bigger blocks (over
    :data:`MMAP_THRESHOLD`) are still mapped; at most :data:`TRIM_THRESHOLD` of freed memory stays
    with the process. Returns whether the thresholds were set (False elsewhere than glibc).
    """
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _kept = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _kept


def reuse_threadpool_controller() -> None:
    """Let BoTorch's scipy wrappers limit BLAS threads through one ``ThreadpoolController``.

    Why: ``botorch.optim.utils.timeout.minimize_with_timeout`` (every hyperparameter fit) and
    ``botorch.generation.gen.gen_candidates_scipy`` (every acquisition optimization) enter
    ``threadpoolctl.threadpool_limits(limits=1, user_api="blas")``, which builds a new controller
    and so walks every loaded shared library (about 190 once torch is imported): 2.7 ms per fit
    measured, 5 % of a hands-on GP fit at n = 60. threadpoolctl's own API for this is a controller
    made once and ``controller.limit(...)``; the libraries it knows are those loaded now (call
    after the imports; torch, numpy and scipy's BLAS are among them).
    """
    import botorch.generation.gen as gen
    import botorch.optim.utils.timeout as timeout
    from threadpoolctl import ThreadpoolController

    if getattr(timeout.threadpool_limits, "__self__", None) is not None:
        return  # already the bound ``limit`` of a controller
    controller = ThreadpoolController()
    timeout.threadpool_limits = controller.limit
    gen.threadpool_limits = controller.limit


def prepare_background_process(threads: int | None = None) -> int:
    """Make this process a background worker of the GUI (the study process, the lab process).

    Lowers its priority by 5 (on a busy machine the GUI process gets the CPU first) and gives torch
    ``threads`` intra-op threads (default ``cpu_count - 1``: the GUI keeps a core). Returns the
    thread count.
    """
    import torch

    if hasattr(os, "nice"):
        try:
            os.nice(5)
        except OSError:  # not permitted here: run at the normal priority
            pass
    n = threads or max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(n)
    return n


def prepare_study_process() -> None:
    """Every setting, for a process that runs studies (the study process, headless runs, workers)."""
    keep_freed_memory()
    freeze_imported_objects()
    reuse_threadpool_controller()


def prepare_lab_process() -> None:
    """Every setting, for the lab process (posterior lab, ReLU lab, prior preview). Call after its
    imports: the objects alive then are frozen out of the collector, as in the study process."""
    keep_freed_memory()
    gc.collect()
    gc.freeze()
    reuse_threadpool_controller()


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
