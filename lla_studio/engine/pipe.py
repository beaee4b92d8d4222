"""Reading a child process's pipe on a ``QThread`` and handing the messages to the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from lla_studio.engine.messages import Failed

__all__ = ["EndOfPipe", "PipeReader"]


class EndOfPipe:
    """The pipe closed (the child process ended); ``generation`` says which process it was."""

    def __init__(self, generation: int) -> None:
        self.generation = generation


class PipeReader(QThread):
    """Receives a child process's messages and emits them (queued to the GUI thread).

    Args:
        conn: The parent's end of the pipe.
        generation: Which process of its owner this is (an :class:`EndOfPipe` carries it).
        name: Thread name, for debuggers and the tests' leftover-thread check.
        child: The child process as a failure message names it.
        observe: Called on this thread with every message before it is emitted (the lab client
            records how requests ended here, so a shutdown can wait for that without the GUI
            thread's event loop).
        parent: The object that receives the messages. Why a parent: its queued signals may still
            wait in the GUI thread's event queue when the owner drops the reader (a close emits the
            last ones while the GUI thread waits for the child); as the receiver's child, the reader
            (the sender) lives as long as the receiver, whose pending events Qt discards with it.
    """

    received = Signal(object)

    def __init__(
        self,
        conn: Any,
        generation: int,
        name: str = "lla-study-pipe",
        child: str = "the study process",
        observe: Callable[[Any], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.conn = conn
        self.generation = generation
        self.observe = observe
        self.child_name = child

    def run(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = EndOfPipe(self.generation)
            except Exception as err:  # an object that cannot be unpickled: report, keep reading
                msg = Failed(f"engine: a message from {self.child_name} could not be read: {type(err).__name__}: {err}")
            if self.observe is not None:
                self.observe(msg)
            self.received.emit(msg)
            if isinstance(msg, EndOfPipe):
                return
