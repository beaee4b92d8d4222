"""The labs in their own process: the posterior lab, the ReLU lab and the kernel editor's prior preview.

Why a process: the labs' fits (Newton, L-BFGS, VI with Adam, LLA and GP fits, BoTorch's acquisition
optimizer) are Python-heavy. On a thread of the GUI process they hold the interpreter for most of
every millisecond and every repaint waits for it (the reason the study left the GUI process, see
:mod:`lla_studio.engine.study_server`); and they would load torch into the GUI.

:func:`serve` runs in the child, started with the ``spawn`` method by
:class:`lla_studio.engine.lab_process.LabProcess` (by name: the GUI never imports this module). It
answers the messages of :mod:`lla_studio.engine.messages`:

* a reader thread reads requests as they come: a :class:`~lla_studio.engine.messages.Compute`
  goes to its *lane*, a :class:`~lla_studio.engine.messages.Cancel` sets the cancel flag of the
  request it names at once, so a fit in progress stops within about a second (the core polls the
  flag inside its loops);
* one thread per lane computes, newest request wins: a new request cancels the running one and
  replaces one still waiting (reported as ``"skipped"``); a lane keeps its own state (the ReLU
  lab's :class:`~lla_studio.core.relu_lab.FitCache` of torch models lives on its lane's thread);
* the main thread imports the numerical stack (seconds) while the reader already drains the pipe,
  then lets the lanes start, pays torch's one-time optimizer import, and waits for
  :class:`~lla_studio.engine.messages.Exit` or the end of the pipe (an :class:`Exit` that arrives
  while the stack still imports ends the process at once: nothing has run yet).

Every request ends with exactly one :class:`~lla_studio.engine.messages.LabEnded`; answers are
numpy-only snapshots of torch-free modules. Errors are answers too
(:class:`~lla_studio.engine.messages.LabFailed`, one line; a traceback only in ``detail``).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Any

from lla_studio.core.posterior.snapshot import PosteriorRequest
from lla_studio.engine.lab_jobs import (
    LAB,
    RATE,
    BoundaryRateAnswer,
    BoundaryRateProgress,
    PriorPreviewRequest,
    PriorPreviewResult,
    ReluLabAnswer,
    ReluLabRequest,
)
from lla_studio.engine import messages as msg_types

__all__ = ["serve"]


class _Job:
    """A request on its lane: the job, its cancel flag and the stage it reached (for errors)."""

    def __init__(self, request_id: int, job: Any) -> None:
        self.request_id = request_id
        self.job = job
        self.cancel = threading.Event()
        self.stage = "queued"

    def cancelled(self) -> bool:
        return self.cancel.is_set()


class _Lane:
    """One stream of requests where only the newest matters, computed on its own thread."""

    def __init__(self, server: _Server, name: str) -> None:
        self.server = server
        self.name = name
        self.cv = threading.Condition()
        self.waiting: _Job | None = None
        self.running: _Job | None = None
        self.closed = False
        self.state: dict[str, Any] = {}  # used on this lane's thread only (e.g. the ReLU lab's fits)
        self.thread = threading.Thread(target=self._loop, name=f"lla-lab-{name}", daemon=True)
        self.thread.start()

    def submit(self, request_id: int, job: Any) -> None:
        with self.cv:
            skipped, self.waiting = self.waiting, _Job(request_id, job)
            if self.running is not None:
                self.running.cancel.set()
            self.cv.notify()
        if skipped is not None:
            self.server.send(msg_types.LabEnded(self.name, skipped.request_id, "skipped"))

    def cancel(self, request_id: int) -> None:
        skipped = None
        with self.cv:
            if self.waiting is not None and self.waiting.request_id == request_id:
                skipped, self.waiting = self.waiting, None
            if self.running is not None and self.running.request_id == request_id:
                self.running.cancel.set()
        if skipped is not None:
            self.server.send(msg_types.LabEnded(self.name, skipped.request_id, "skipped"))

    def close(self) -> None:
        with self.cv:
            self.closed = True
            skipped, self.waiting = self.waiting, None
            if self.running is not None:
                self.running.cancel.set()
            self.cv.notify()
        if skipped is not None:
            self.server.send(msg_types.LabEnded(self.name, skipped.request_id, "skipped"))

    def _loop(self) -> None:
        self.server.ready.wait()
        while True:
            with self.cv:
                while self.waiting is None and not self.closed:
                    self.cv.wait()
                if self.waiting is None:
                    return
                job, self.waiting = self.waiting, None
                self.running = job
            try:
                outcome = self.server.run(self, job)
            finally:
                with self.cv:
                    self.running = None
            self.server.send(msg_types.LabEnded(self.name, job.request_id, outcome))


class _Server:
    """Owns the lanes of the lab process."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.lanes_lock = threading.Lock()
        self.lanes: dict[str, _Lane] = {}
        self.ready = threading.Event()  # the numerical stack is imported: lanes may compute
        self.start_lock = threading.Lock()  # ready and an early exit do not cross
        self.closing = threading.Event()

    # ------------------------------------------------------------------ plumbing
    def send(self, msg: Any) -> None:
        """Send one message; one that cannot be pickled is reported (for its request) instead of lost."""
        with self.send_lock:
            try:
                self.conn.send(msg)
            except (OSError, EOFError):
                self.closing.set()  # the GUI is gone
            except Exception as err:  # pickling: a bug; the send itself wrote nothing
                reason = f"lab process: could not send a {type(msg).__name__} ({type(err).__name__}: {err})"
                lane, request_id = getattr(msg, "lane", None), getattr(msg, "request_id", None)
                reply: Any = msg_types.Failed(reason) if lane is None else msg_types.LabFailed(lane, request_id, reason, type(err).__name__)
                try:
                    self.conn.send(reply)
                except Exception:
                    self.closing.set()

    def lane(self, name: str) -> _Lane:
        with self.lanes_lock:
            lane = self.lanes.get(name)
            if lane is None:
                lane = self.lanes[name] = _Lane(self, name)
            return lane

    def read_commands(self) -> None:
        """Reader thread: requests to their lanes, cancels at once."""
        while not self.closing.is_set():
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            except Exception as err:  # a request that cannot be unpickled: report, keep reading
                self.send(msg_types.Failed(f"lab process: a request could not be read ({type(err).__name__}: {err})"))
                continue
            match msg:
                case msg_types.Compute(lane=lane, request_id=request_id, job=job):
                    self.lane(lane).submit(request_id, job)
                case msg_types.Cancel(lane=lane, request_id=request_id):
                    with self.lanes_lock:
                        target = self.lanes.get(lane)
                    if target is not None:
                        target.cancel(request_id)
                case msg_types.Exit():
                    break
                case _:
                    self.send(msg_types.Failed(f"lab process: unknown message {type(msg).__name__}"))
        with self.start_lock:
            if not self.ready.is_set():
                self._quit_while_starting()
            self.closing.set()

    def _quit_while_starting(self) -> None:
        """Asked to end while the stack still imports (seconds): nothing has run, so nothing needs
        to unwind. Waiting for the imports would keep the GUI's close (and every test's teardown)
        waiting for them; report the waiting requests as skipped and end the process now."""
        with self.lanes_lock:
            lanes = list(self.lanes.values())
        for lane in lanes:
            lane.close()
        with self.send_lock:
            try:
                self.conn.close()
            except OSError:
                pass
        os._exit(0)

    # ------------------------------------------------------------------ work
    def run(self, lane: _Lane, job: _Job) -> str:
        """Compute one request on its lane's thread; returns how it ended."""
        from lla_studio.core.errors import Cancelled, LabProcessError, LLAStudioError

        if job.cancelled():
            return "skipped"
        self.send(msg_types.LabStarted(lane.name, job.request_id))
        try:
            match job.job:
                case PosteriorRequest():
                    self._posterior(lane, job)
                case ReluLabRequest(kind=kind) if kind == LAB:
                    self._relu_lab(lane, job)
                case ReluLabRequest(kind=kind) if kind == RATE:
                    self._boundary_rate(lane, job)
                case PriorPreviewRequest():
                    self._preview(lane, job)
                case other:
                    raise LabProcessError(f"lab process: no computation for a {type(other).__name__}")
        except Cancelled:
            return "cancelled"
        except (LLAStudioError, ValueError, ArithmeticError, RuntimeError) as err:
            # our own errors name the culprit; numpy's LinAlgError is a ValueError, torch's errors
            # are RuntimeErrors (e.g. a Cholesky factor of a matrix that is not positive definite)
            self.send(msg_types.LabFailed(lane.name, job.request_id, str(err) or type(err).__name__, type(err).__name__, job.stage))
            return "failed"
        except Exception as err:  # a bug: one line for the panel, the traceback for the log
            message = f"internal error ({type(err).__name__}): {str(err).splitlines()[0] if str(err) else ''}"
            self.send(msg_types.LabFailed(lane.name, job.request_id, message, type(err).__name__, job.stage, traceback.format_exc()))
            return "failed"
        return "completed"

    def _answer(self, lane: _Lane, job: _Job, answer: Any) -> None:
        if not job.cancelled():  # a superseded request's answer would be dropped by the GUI anyway
            self.send(msg_types.LabAnswer(lane.name, job.request_id, answer))

    def _posterior(self, lane: _Lane, job: _Job) -> None:
        from lla_studio.core.posterior.view import compute_posterior

        def stage(name: str) -> None:
            job.stage = name

        compute_posterior(job.job, lambda snap: self._answer(lane, job, snap), stage, cancel=job.cancelled)

    def _relu_lab(self, lane: _Lane, job: _Job) -> None:
        from lla_studio.core.relu_lab import FitCache, compute_relu_lab

        job.stage = LAB
        request: ReluLabRequest = job.job
        cache = lane.state.setdefault("fits", FitCache())
        t0 = time.perf_counter()
        hits = cache.hits
        result = compute_relu_lab(request.settings, cancel=job.cancelled, cache=cache)
        answer = ReluLabAnswer(request.request_id, result, cache.hits - hits, time.perf_counter() - t0)
        self._answer(lane, job, answer)

    def _boundary_rate(self, lane: _Lane, job: _Job) -> None:
        from lla_studio.core.relu_lab import boundary_rate

        job.stage = RATE
        request: ReluLabRequest = job.job
        models = request.settings.models

        def progress(model: str, step: int) -> None:
            info = BoundaryRateProgress(request.request_id, model, step, request.steps, models.index(model), len(models))
            if not job.cancelled():
                self.send(msg_types.LabProgress(lane.name, job.request_id, info))

        result = boundary_rate(request.settings, request.steps, cancel=job.cancelled, progress=progress)
        self._answer(lane, job, BoundaryRateAnswer(request.request_id, result))

    def _preview(self, lane: _Lane, job: _Job) -> None:
        from lla_studio.core.kernels.preview import SliceSpec, prior_samples
        from lla_studio.core.readonly import readonly_array

        job.stage = "preview"
        request: PriorPreviewRequest = job.job
        t0 = time.perf_counter()
        spec = SliceSpec(request.x, request.y, resolution=request.resolution)
        out = prior_samples(request.graph, request.feature_names, spec, request.n_samples, request.seed)
        y = None if out.y is None else readonly_array(out.y)
        result = PriorPreviewResult(
            request.request_id, request, readonly_array(out.x), y, readonly_array(out.samples), time.perf_counter() - t0
        )
        self._answer(lane, job, result)


def _import_stack(threads: int | None) -> None:
    """Import everything the lanes use and set the process up, before the first request runs
    (about 3 s here: torch 2.1 s, the posterior lab 1.0 s, BoTorch and gpytorch 0.2 s)."""
    from lla_studio.core.process import prepare_background_process, prepare_lab_process

    prepare_background_process(threads)  # nice 5, torch threads = cpu_count - 1 (the GUI keeps a core)
    import lla_studio.core.kernels.preview  # noqa: F401
    import lla_studio.core.posterior.view  # noqa: F401
    import lla_studio.core.relu_lab  # noqa: F401

    prepare_lab_process()  # freed tensors stay mapped; full collections skip the imported stack


def _warm_up_optimizers() -> None:
    """Pay torch's lazy one-time import of ``torch._dynamo`` (1.5 s here, not cancellable) that the
    first ``torch.optim`` optimizer triggers, so a request cancelled later stops within a fraction
    of a second. Done while the lanes already run: the first Laplace answer needs no optimizer."""
    import torch

    torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])


def serve(conn: Any, threads: int | None = None) -> None:
    """Entry point of the lab process: serve requests from ``conn`` until :class:`~lla_studio.engine.messages.Exit` or EOF.

    Args:
        conn: The child's end of a duplex ``multiprocessing.Pipe``.
        threads: torch intra-op threads (default: ``cpu_count - 1``).
    """
    server = _Server(conn)
    reader = threading.Thread(target=server.read_commands, name="lla-lab-requests", daemon=True)
    reader.start()  # drains the pipe while the stack imports: the GUI's sends never block
    try:
        _import_stack(threads)
    except Exception as err:  # e.g. a broken installation: say so in one line, then exit
        server.send(msg_types.Failed(f"lab process: could not start ({type(err).__name__}: {err})", traceback.format_exc()))
        conn.close()
        raise SystemExit(1) from err
    with server.start_lock:
        server.ready.set()
    _warm_up_optimizers()
    server.closing.wait()
    with server.lanes_lock:
        lanes = list(server.lanes.values())
    for lane in lanes:
        lane.close()
    for lane in lanes:
        lane.thread.join(10)  # let a cancelled fit unwind: torch aborts if its threads die mid-op
    try:
        conn.close()
    except OSError:
        pass
