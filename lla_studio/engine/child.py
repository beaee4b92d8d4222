"""Starting a child process by the *name* of its entry point (no Qt, no torch here).

The study process and the lab process run code that imports torch. Their entry functions are named
by string (``"lla_studio.engine.study_server:serve"``) and imported by :func:`run_child` in the
child only, so neither the GUI's interpreter nor the import graph that ``tests/core/test_layering.py``
checks has an arrow from the GUI into the numerical stack: the GUI process imports this module and
the message types, never the server modules.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
from typing import Any

__all__ = ["end_child", "run_child", "start_child"]


def run_child(entry: str, *args: Any) -> None:
    """In the child: import ``"package.module:function"`` and call it with ``args``."""
    module, _, name = entry.partition(":")
    getattr(importlib.import_module(module), name)(*args)


def start_child(entry: str, *args: Any, name: str) -> tuple[Any, Any]:
    """Start ``entry(child_conn, *args)`` in a fresh ``spawn`` process; returns ``(process, conn)``.

    Why ``spawn``: a forked child would inherit the GUI's Qt state and threads (undefined after
    ``fork``), and spawn is what macOS and Windows do anyway.
    """
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=True)
    proc = ctx.Process(
        target=run_child,
        args=(entry, child_conn, *args),
        name=name,
        daemon=False,  # a user objective with a time-out starts its own process
    )
    proc.start()
    child_conn.close()
    return proc, parent_conn


def end_child(proc: Any, conn: Any, reader: Any, what: str, log: Any = None) -> None:
    """After the child was asked to exit: wait for it (10 s, then terminate it), close the pipe and
    wait for the thread that reads it. Any of the three may be ``None`` (never started)."""
    if proc is not None:
        proc.join(10)
        if proc.is_alive():
            if log is not None:
                log.error(f"{what} did not exit within 10 s; terminating it")
            proc.terminate()
            proc.join(5)
    if conn is not None:
        conn.close()
    if reader is not None:
        reader.wait(5000)

