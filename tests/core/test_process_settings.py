"""Process-wide settings of study processes: glibc keeps freed large blocks in the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = r"""
import ctypes, ctypes.util, sys
import torch
from lla_studio.core.process import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2

def mapped_and_heap():
    info = libc.mallinfo2()
    return info.hblkhd, info.arena

if sys.argv[1] == "tuned":
    assert keep_freed_memory()
before = mapped_and_heap()
blocks = [torch.empty(42 * 7260, dtype=torch.float64) for _ in range(4)]  # 4 x 2.4 MB
during = mapped_and_heap()
print(during[0] - before[0], during[1] - before[1])
"""


def _grown(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", CHECK, mode], capture_output=True, text=True, timeout=120, check=True)
    mapped, heap = out.stdout.split()
    return int(mapped), int(heap)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_tensors_come_from_the_heap_once_freed_memory_is_kept():
    size = 4 * 42 * 7260 * 8
    mapped, heap = _grown("default")
    assert mapped >= size  # glibc's default: every 2.4 MB block its own mapping
    mapped, heap = _grown("tuned")
    assert mapped < size // 4 and heap >= 0.9 * size  # tuned: from the heap, reusable without page faults


THREADS = r"""
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from botorch.optim.utils.timeout import minimize_with_timeout
from lla_studio.core.process import reuse_threadpool_controller

threadpool_limits(2, user_api="blas")
reuse_threadpool_controller()
reuse_threadpool_controller()  # twice is once
seen = []

def f(x):
    seen.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
    return float((x ** 2).sum()), 2 * x

minimize_with_timeout(f, np.ones(3), jac=True, method="L-BFGS-B")
after = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
print(set(seen), after)
"""


def test_botorchs_scipy_wrapper_still_limits_blas_to_one_thread_with_one_controller():
    out = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["{1}", "2"]  # one BLAS thread inside the fit, the limit restored after
