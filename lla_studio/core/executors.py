"""Where trials run when they run in parallel: Dask distributed.

:func:`open_executor` gives a :class:`DaskExecutor` on

* an embedded ``distributed.LocalCluster`` on loopback (``host="127.0.0.1"``, one worker process per
  trial at once, one thread each, no dashboard), started when a parallel run starts and closed with
  it -- the default for ``loop.workers > 1``;
* an existing cluster, ``loop.executor.address`` (``lla-studio run --scheduler ADDRESS``), which is
  only connected to: checked first with a short deadline (:data:`CONNECT_TIMEOUT_S`), so an address
  where nothing listens, or something that is not a Dask scheduler answers, is one line naming the
  address rather than a hang (Dask's own handshake waits without a limit for a server that accepts
  the connection and says nothing, e.g. a web server).

The asynchronous loop (:meth:`~lla_studio.core.study.Study.run`) sends each trial to one free worker
(``workers=[address]``, no other allowed): a worker then runs one trial at a time per thread, so the
loop knows where every trial runs (a trial's ``worker``), sees at once when that worker disappears
(a killed process, a lost machine: the trial failed with ``worker lost``) and never has Dask quietly
re-run an evaluation on another worker. The objective travels as its
:class:`~lla_studio.core.specs.ObjectiveSpec` and the session's folder -- both pickle, user code
never does -- and is rebuilt on the worker by :func:`~lla_studio.core.objectives.make_objective`
(once per worker process: :func:`evaluate_on_worker` keeps the objectives it built). What comes back
is plain data (a dict of floats and strings), so nothing of the user's is unpickled by the study.

Time-outs are the loop's: ``objective.timeout_s`` after a trial was sent, its future is cancelled
(``Client.cancel``) and the trial fails. Dask cannot stop a running task, so the worker is then
restarted by its nanny (``Client.restart_workers``) once no other trial of ours runs on it; a worker
that cannot be restarted (no nanny) is not used again in this run.

This module imports ``distributed`` only inside its functions: the session model and the GUI never
load Dask; a study process loads it when a parallel run starts.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from lla_studio.core.errors import ExecutorError, ObjectiveError
from lla_studio.core.specs import ExecutorSpec, ObjectiveSpec

__all__ = ["CONNECT_TIMEOUT_S", "DaskExecutor", "evaluate_on_worker", "open_executor", "prepare_on_worker"]

CONNECT_TIMEOUT_S = 5.0
"""Deadline for a scheduler to answer, and for an existing cluster to show its first worker."""

HANDSHAKE_GRACE_S = 2.0
"""How much longer than the connect deadline a server that accepted the connection may take to
answer Dask's handshake."""

RESTART_TIMEOUT_S = 30.0
"""How long a nanny may take to restart a worker after a timed-out trial."""


# --------------------------------------------------------------------------- on the worker
def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run as each worker process of the local cluster starts: ignore SIGINT.

    Why: those processes are in the terminal's process group, so a Ctrl-C reaches them too. The
    study process handles it (saves, cancels, closes the cluster); a worker would only print a
    ``KeyboardInterrupt`` traceback per process.
    """
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_OBJECTIVES: dict[str, Any] = {}
_OBJECTIVES_LOCK = threading.Lock()


def evaluate_on_worker(spec: ObjectiveSpec, base_dir: str | None, config: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one configuration on a Dask worker (the task the loop submits).

    The objective is built from ``spec`` and ``base_dir`` the first time this worker process sees
    them and kept (a digit search loads its images, a file objective executes its module: once per
    worker, not once per trial). The spec's ``timeout_s`` is dropped here: the loop enforces it by
    cancelling the future, and an objective with a time-out would otherwise start a child process,
    which a daemonic Dask worker may not.

    Returns:
        ``{"status": "completed", "value", "metrics", "seconds"}``, ``{"status": "failed",
        "message", "seconds"}`` (the objective raised, returned a non-number, ...), or
        ``{"status": "unavailable", "message"}`` (the objective cannot be built on this worker).
    """
    objective = _objective(spec, base_dir)
    if isinstance(objective, dict):
        return objective
    start = time.perf_counter()
    try:
        value, metrics = objective.evaluate(dict(config))
    except ObjectiveError as err:
        return {"status": "failed", "message": str(err), "seconds": time.perf_counter() - start}
    except KeyboardInterrupt:  # no Ctrl-C reaches a worker thread: this is the objective's own raise
        return {"status": "failed", "message": "objective raised KeyboardInterrupt", "seconds": time.perf_counter() - start}
    return {"status": "completed", "value": float(value), "metrics": dict(metrics), "seconds": time.perf_counter() - start}


def prepare_on_worker(spec: ObjectiveSpec, base_dir: str | None) -> dict[str, Any]:
    """Build (and keep) the objective on this worker: ``{"status": "ready"}`` or, as
    :func:`evaluate_on_worker` says it, ``{"status": "unavailable", "message"}``."""
    objective = _objective(spec, base_dir)
    return objective if isinstance(objective, dict) else {"status": "ready"}


def _objective(spec: ObjectiveSpec, base_dir: str | None) -> Any:
    """This worker's objective for ``spec`` (built once), or the ``unavailable`` dict."""
    from lla_studio.core.objectives import make_objective
    from lla_studio.core.process import keep_freed_memory

    key = json.dumps([spec.to_dict(), base_dir], sort_keys=True)
    with _OBJECTIVES_LOCK:  # a worker with several threads builds each objective once
        objective = _OBJECTIVES.get(key)
        if objective is None:
            # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc hands every
            # freed block back to the system and torch faults fresh pages in for each tensor: a
            # cnn-digits evaluation took 0.82-2.7 s on a worker against 0.40-1.26 s with the study
            # process's thresholds (4 configurations, same worker)
            keep_freed_memory()
            try:
                objective = make_objective(replace(spec, timeout_s=None), base_dir)
            except ObjectiveError as err:
                return {"status": "unavailable", "message": str(err)}
            except Exception as err:  # e.g. a data set the worker cannot load
                return {"status": "unavailable", "message": f"{type(err).__name__}: {err}"}
            _OBJECTIVES[key] = objective
    return objective


# --------------------------------------------------------------------------- on the study's side
def _probe(address: str, timeout: float) -> Mapping[str, Any]:
    """The ``identity`` of whatever Dask server answers at ``address``, within ``timeout`` seconds.

    Dask's connect has a deadline for the TCP connection but none for the handshake after it, so the
    whole exchange runs under ``asyncio.wait_for``; in a thread of its own, so it works whether or not
    the caller runs an event loop (a notebook does).
    """
    import asyncio

    from distributed.core import rpc

    async def identity() -> Mapping[str, Any]:
        async with rpc(address, timeout=timeout) as server:
            return await server.identity()  # type: ignore[no-any-return]

    result: dict[str, Any] = {}

    # Dask's connect gives up after ``timeout`` (a refused or unreachable address); the outer
    # deadline is later, so reaching it means a connection was made and no handshake followed
    deadline = timeout + HANDSHAKE_GRACE_S

    def body() -> None:
        try:
            result["identity"] = asyncio.run(asyncio.wait_for(identity(), deadline))
        except BaseException as err:  # reported below, in the caller's thread
            result["error"] = err

    thread = threading.Thread(target=body, name="lla-dask-probe", daemon=True)
    thread.start()
    thread.join(deadline + 5.0)  # asyncio.wait_for ends the probe by then
    if "identity" in result:
        return result["identity"]  # type: ignore[no-any-return]
    err = result.get("error")
    if err is None or isinstance(err, (TimeoutError, asyncio.TimeoutError)):
        raise ExecutorError(
            f"Dask scheduler {address!r}: the server there accepted the connection but no Dask scheduler "
            f"answered within {deadline:g} s"
        )
    if isinstance(err, OSError):
        raise ExecutorError(
            f"Dask scheduler {address!r}: cannot connect within {timeout:g} s (is a scheduler running there?)"
        )
    # garbage from a server that speaks another protocol: its bytes read as a Dask frame header
    raise ExecutorError(f"Dask scheduler {address!r}: the server there is not a Dask scheduler ({_reason(err)})")


def _outcome(result: Any) -> dict[str, Any]:
    """What ``as_completed(with_results=True, raise_errors=False)`` gives, as the loop reads it."""
    from distributed import KilledWorker

    if isinstance(result, dict):
        return result
    if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
        if isinstance(result[1], KilledWorker):
            return {"status": "lost"}
        return {"status": "error", "message": _reason(result[1])}
    return {"status": "lost"}  # a CancelledError: the cluster dropped the task (e.g. a restarted scheduler)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def open_executor(
    spec: ExecutorSpec | None, workers: int, connect_timeout: float = CONNECT_TIMEOUT_S
) -> DaskExecutor:
    """Start a local cluster or connect to an existing one (see the module docstring).

    Args:
        spec: ``loop.executor``; ``None`` or one without an address starts a ``LocalCluster``.
        workers: ``loop.workers``: the local cluster's worker processes (one thread each).
        connect_timeout: Seconds for a scheduler to answer and for a cluster to show a worker.

    Raises:
        ExecutorError: ``workers < 1``; an address where no Dask scheduler answers (named); a
            cluster without workers; a local cluster that cannot start.
    """
    if workers < 1:
        raise ExecutorError(f"workers must be >= 1, got {workers}")
    address = spec.address if spec is not None else None
    import distributed

    if address is None:
        try:
            cluster = distributed.LocalCluster(
                host="127.0.0.1", processes=True, n_workers=workers, threads_per_worker=1, dashboard_address=None,
                preload=[__name__],  # dask_setup below, in every worker process (restarted ones too)
            )
        except Exception as err:
            raise ExecutorError(f"cannot start a local Dask cluster of {workers} workers: {_reason(err)}") from None
        try:
            client = distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        return DaskExecutor(client, cluster, cluster.scheduler_address, local_workers=workers)
    info = _probe(address, connect_timeout)
    kind = info.get("type") if isinstance(info, Mapping) else None
    if kind != "Scheduler":
        raise ExecutorError(
            f"Dask scheduler {address!r}: the server there is a Dask {kind or 'server'}, not a scheduler"
            + (" (give the scheduler's address, not a worker's)" if kind == "Worker" else "")
        )
    try:
        client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
    except Exception as err:
        raise ExecutorError(f"Dask scheduler {address!r}: cannot connect ({_reason(err)})") from None
    try:
        client.wait_for_workers(1, timeout=connect_timeout)
    except Exception:  # TimeoutError: still no worker; anything else: the same for us
        client.close()
        raise ExecutorError(
            f"Dask scheduler {address!r}: the cluster has no workers (none joined within {connect_timeout:g} s)"
        ) from None
    return DaskExecutor(client, None, address)


class DaskExecutor:
    """A Dask client (and the local cluster it owns, if any) as the asynchronous loop uses it.

    Attributes:
        client: The ``distributed.Client``.
        address: The scheduler's address.
        embedded: Whether the cluster was started here (and is closed by :meth:`close`).
        local_workers: Worker processes of the embedded cluster, on this machine's cores (0 for a
            cluster elsewhere).
    """

    def __init__(self, client: Any, cluster: Any, address: str, local_workers: int = 0) -> None:
        self.client = client
        self._cluster = cluster
        self.address = address
        self.embedded = cluster is not None
        self.local_workers = local_workers
        self._completed: Any = None  # a distributed.as_completed, made at the first submit
        self.closed = False

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def workers(self) -> dict[str, int]:
        """Threads of every worker now in the cluster, by worker address.

        Raises:
            ExecutorError: the scheduler does not answer.
        """
        try:
            return {str(k): int(v) for k, v in self.client.nthreads().items()}
        except Exception as err:
            raise ExecutorError(f"Dask scheduler {self.address!r}: lost the connection ({_reason(err)})") from None

    def prepare(self, spec: ObjectiveSpec, base_dir: str | None) -> None:
        """Build the objective on every worker now (a task per worker), before any trial is sent.

        So an objective that cannot be imported on the workers (a file or module that only this
        machine has) stops the run at its start with the worker's reason, and the first trial's
        time-out does not include the import.

        Raises:
            ExecutorError: a worker cannot build the objective, or cannot run our task at all.
        """
        workers = sorted(self.workers())
        try:
            futures = {
                w: self.client.submit(prepare_on_worker, spec, base_dir, key=f"lla-prepare-{uuid.uuid4().hex[:12]}",
                                      workers=[w], allow_other_workers=False, pure=False)
                for w in workers
            }
        except Exception as err:
            raise ExecutorError(f"cannot send the objective to the Dask workers: {_reason(err)}") from None
        for worker, future in futures.items():
            try:
                answer = future.result()
            except Exception as err:  # e.g. lla_studio does not import on that worker
                raise ExecutorError(
                    f"worker {worker} could not run the evaluation (is lla_studio installed there?): {_reason(err)}"
                ) from None
            if answer.get("status") != "ready":
                raise ExecutorError(f"worker {worker}: the objective cannot be built there: {answer.get('message')}")

    def submit(self, spec: ObjectiveSpec, base_dir: str | None, config: Mapping[str, Any], worker: str, key: str) -> Any:
        """Send one evaluation to ``worker`` (and only there); returns its future.

        Raises:
            ExecutorError: the objective could not be sent (serialized) to the cluster.
        """
        from distributed import as_completed

        try:
            future = self.client.submit(
                evaluate_on_worker, spec, base_dir, dict(config), key=key, workers=[worker],
                allow_other_workers=False, pure=False, retries=0,
            )
        except Exception as err:
            raise ExecutorError(f"cannot send the objective to the Dask workers: {_reason(err)}") from None
        if self._completed is None:
            self._completed = as_completed([], loop=self.client.loop, with_results=True, raise_errors=False)
        self._completed.add(future)
        return future

    def wait(self, futures: Iterable[Any], timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        """Wait up to ``timeout`` seconds for one of ``futures``; return every ``(future, outcome)``
        that ended since the last call, in the order they ended (``distributed.as_completed``).

        ``outcome`` is the worker's dict (:func:`evaluate_on_worker`), or ``{"status": "lost"}``
        for a task whose worker died (``KilledWorker``) or that the cluster cancelled, or
        ``{"status": "error", "message"}`` for a task that could not run at all (e.g. a worker
        where ``lla_studio`` does not import).
        """
        from distributed import wait

        futures = list(futures)
        undelivered = [f for f in futures if not f.done()]
        if self._completed is not None and self._completed.has_ready():
            pass
        elif undelivered:
            try:
                with self.client.as_current():  # wait() asks for the current client; ours is not the default
                    wait(undelivered, timeout=timeout, return_when="FIRST_COMPLETED")
            except TimeoutError:
                pass
        elif futures:  # all done, and as_completed is fetching their results: they arrive within milliseconds
            time.sleep(min(timeout, 0.01))
        else:  # nothing in flight: the caller waits for a worker
            time.sleep(timeout)
        if self._completed is None:
            return []
        return [(future, _outcome(result)) for future, result in self._completed.next_batch(block=False)]

    def cancel(self, futures: Iterable[Any]) -> None:
        """Cancel futures (``Client.cancel``); a running task goes on until it returns."""
        futures = list(futures)
        if futures:
            try:
                self.client.cancel(futures)
            except Exception:  # a scheduler that is gone has nothing left to cancel
                pass

    def restart(self, worker: str) -> bool:
        """Restart a worker process (its nanny starts a fresh one); False if it cannot be."""
        try:
            status = self.client.restart_workers([worker], timeout=RESTART_TIMEOUT_S, raise_for_error=False)
        except Exception:
            return False
        return bool(status) and status.get(worker) == "OK"

    def close(self) -> None:
        """Close the client and, if it was started here, the cluster (its worker processes end)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._completed is not None:
                self._completed.clear()
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


# ---------------------------------------------------------------- the asynchronous loop's helpers
@contextmanager
def cores_left_to(local_workers: int) -> Iterator[None]:
    """Give torch in this process only the cores that ``local_workers`` worker processes leave.

    Why: the study proposes while the workers evaluate. With the local cluster's workers busy on
    this machine's cores, torch's default intra-op threads (one per core) wait on each other:
    on 2 cores with 2 workers training ``cnn-digits``, the qLogEI proposals took 1.6-14 s with two
    threads and 1.0-3.6 s with one (14 evaluations: 51 s against 25 s of wall time). The setting is
    process-wide; the run restores it when it ends.
    """
    import torch  # here: the session model imports this module, and it stays torch-free

    if local_workers < 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - local_workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


NO_WORKERS_GRACE_S = 30.0
"""How long a parallel run waits for a usable worker when none is left before it gives up."""


@dataclass
class Flight:
    """A trial on its way: sent to ``worker`` at ``sent`` (``perf_counter``), ``future`` its result."""

    trial_id: int
    worker: str
    future: Any
    sent: float


def free_workers(workers: Mapping[str, int], flights: Mapping[str, Flight], unusable: set[str]) -> list[str]:
    """Workers with a free thread, least busy first, then by address (so the choice is repeatable)."""
    busy: dict[str, int] = {}
    for f in flights.values():
        busy[f.worker] = busy.get(f.worker, 0) + 1
    free = [w for w, n in workers.items() if w not in unusable and n > busy.get(w, 0)]
    return sorted(free, key=lambda w: (busy.get(w, 0), w))
