"""The ask/tell study loop, as a generator of frozen events.

:class:`Study` owns the trials of one session. ``ask`` proposes configurations (a Sobol initial design,
then model-based proposals), ``tell`` records a measured value, ``tell_failed`` a failure, ``reject``
drops a proposal, and ``add`` records a value for any configuration the user chose (human in the
loop). :meth:`Study.run` strings these together until the budget is spent, yielding events the CLI
prints, tests inspect and the GUI worker forwards as snapshots. It checks a cancel token between
steps and inside fits and acquisition optimization, so a cancel is honoured within about a second
(an objective evaluation in progress is waited for, or killed after its ``timeout_s``).

Reproducibility: every random choice is seeded from ``loop.seed`` and the number of trials so far, so
the same session and seed give identical trials. A proposal depends on nothing but the session:
the GP is fitted from its compiled initial values each time, and the LLA's warm start (the previous
network and its tuned hyperparameters) is defined by the trials alone -- the fit on all but the
newest completed trial, with a cold start every ``WARM_RESTART_EVERY`` trials --, which
:class:`~lla_studio.core.surrogates.lla_fit.LLAFitter` keeps as a cache and refits when it is missing
(after a restart). So a run that was stopped and continued from its saved session proposes what the
uninterrupted run proposes.

Parallel, asynchronous evaluation (``loop.workers > 1`` or a ``loop.executor``): the same loop
keeps ``workers`` trials running on Dask workers (:mod:`lla_studio.core.executors`) and proposes the
next configuration whenever a worker is free -- with the running trials as pending points
(BoTorch's ``X_pending``, their unit-cube encodings; see :mod:`lla_studio.core.acquisition`), so a
proposal never repeats a running configuration. The initial design is handed out one point per free
worker (its points are known up front). A trial is ``running`` from the moment it is sent (with its
``worker`` and ``started_at``, event :class:`TrialStarted`) until its result arrives. The trial list
stays in proposal (id) order; the order in which evaluations ended is each finished trial's
``completed_order``. Proposals are made one free worker at a time, after each finished trial, so a
run's proposals are a function of the seed and that completion order: the same seed and the same
completion order give the same trials, and with one worker the trials of the sequential loop. A
worker that disappears mid-evaluation fails its trial with ``worker lost`` (after ``loop.retries``
re-evaluations); ``objective.timeout_s`` cancels the trial's future (``objective timed out after
N s``); a session saved with ``running`` trials (a killed run) evaluates them again when continued
(same id, same configuration).

Pool-based studies: when the objective has a candidate pool (``Objective.pool``, e.g. the 1 797 images
of the digit image search), the initial design is ``initial_design`` distinct pool candidates in the
order of a permutation seeded by ``loop.seed``, and model-based proposals score the acquisition
function on every pool candidate that no trial holds yet (:func:`~lla_studio.core.acquisition.propose_from_pool`).
A configuration the user adds by hand may lie outside the pool; it is used for fitting like any other.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lla_studio.core.executors import NO_WORKERS_GRACE_S, Flight, cores_left_to, free_workers
from lla_studio.core.features import FeatureMap
from lla_studio.core.errors import (
    Cancelled,
    ExecutorError,
    ObjectiveError,
    SearchSpaceError,
    SessionError,
    StudyError,
    SurrogateFitError,
)
from lla_studio.core.objectives import Objective, make_objective
from lla_studio.core.session import Session
from lla_studio.core.space import RealParameter
from lla_studio.core.specs import AcquisitionSpec, Trial


POLL_S = 0.2
"""How often the asynchronous loop looks at the cancel token, the time-outs and the cluster's
workers while it waits for a result (a result itself ends the wait at once)."""


class CancelToken:
    """Thread-safe cancel flag; call it to ask whether cancellation was requested."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


from lla_studio.core import study_events  # noqa: E402
from lla_studio.core.study_events import (  # noqa: E402  (re-exported: the loop's events)
    AcquisitionOptimized,
    Event,
    StudyFinished,
    SurrogateFitFailed,
    SurrogateFitted,
    TrialCompleted,
    TrialFailed,
    TrialProposed,
    TrialStarted,
)

__all__ = ["CancelToken", "Study", *study_events.__all__]  # the loop's events are re-exported


class _Cancelled(Exception):
    pass


# --------------------------------------------------------------------------- the study
class Study:
    """Trials of one session and the loop that adds to them.

    Args:
        session: The session (its trials are the starting point).
        objective: The objective to call: an :class:`Objective`, or a plain function of a
            configuration dict (:meth:`Objective.from_function`, with the session's direction).
            Default: built from the session; manual sessions have none to call and wait for
            :meth:`tell`.
        base_dir: Folder of the session file, for relative user-objective paths.
        executor: A :class:`~lla_studio.core.executors.DaskExecutor` to evaluate on in parallel
            (kept open: whoever opened it closes it). Default: when the session's loop asks for
            parallel evaluation, :meth:`run` opens one (a local cluster, or the session's scheduler
            address) and closes it when it returns.
    """

    def __init__(
        self,
        session: Session,
        objective: Objective | Callable[[dict[str, Any]], Any] | None = None,
        base_dir: str | Path | None = None,
        executor: Any = None,
    ) -> None:
        self._session = session
        self._base_dir = None if base_dir is None else str(Path(base_dir).resolve())
        self._executor = executor
        # parallel runs send the session's objective spec, so only an objective built from a spec
        # can travel: a Python function or an Objective subclass would be replaced by the spec's
        self._objective_is_spec = objective is None or (
            type(objective) is Objective and not getattr(objective, "from_callable", False)
        )
        self.space = session.search_space
        self.feature_map = FeatureMap.of(session)
        if objective is None:
            objective = make_objective(session.objective, base_dir)
        elif not isinstance(objective, Objective):
            try:
                objective = Objective.from_function(objective, session.objective)
            except ObjectiveError as err:
                raise StudyError(str(err)) from None
        self.objective = objective
        self._trials: list[Trial] = list(session.trials)
        self._lla_fitter: Any = None  # an LLAFitter, made at the first LLA fit
        self.last_fit: SurrogateFitted | None = None
        self._pool_U: np.ndarray | None = None
        self._pool_rows: dict[bytes, list[int]] = {}
        if self.pool is not None:
            try:
                columns = self.pool.columns(self.space.names)
            except ObjectiveError as err:
                raise StudyError(str(err)) from None
            params = self.space.parameters
            if not all(isinstance(p, RealParameter) and not p.log and not p.conditions for p in params):
                raise StudyError("a candidate pool needs a search space of real, linear, unconditional parameters")
            lo = np.array([p.low for p in params])  # type: ignore[union-attr]
            hi = np.array([p.high for p in params])  # type: ignore[union-attr]
            if np.any(columns < lo) or np.any(columns > hi):
                raise StudyError("candidate pool: some candidates lie outside the search space's bounds")
            self._pool_U = (columns - lo) / (hi - lo)
            for i, row in enumerate(self._pool_U):
                self._pool_rows.setdefault(_row_key(row), []).append(i)


    def use_executor(self, executor: Any) -> None:
        """Evaluate parallel runs on ``executor`` (kept open across runs; its opener closes it), or
        on one opened per run (None)."""
        self._executor = executor

    def reconfigure(self, session: Session) -> frozenset[str] | None:
        """Take ``session``'s sections where this study can keep its state, and say what changed.

        A new search space or objective is another study (None: build a new one). Otherwise the
        study adopts the session (its trials included) and drops only what the change invalidates:
        the fitted model after a change of transforms, kernel, surrogate or completed trials, the
        LLA's warm-start chain after a change of the network, the transforms or the initial design.
        A seed, budget or acquisition change keeps the fitted model. Proposals stay a function of
        the session alone (the GP is fitted cold, the LLA chain is defined by the trials).

        Returns:
            The names of the changed sections (``"trials"`` among them when the trials differ).
        """
        old = self._session
        if session.search_space != old.search_space or session.objective != old.objective:
            return None
        fields = ("transforms", "kernel", "surrogate", "acquisition", "loop", "name", "description")
        changed = {f for f in fields if getattr(session, f) != getattr(old, f)}
        if tuple(session.trials) != tuple(self._trials):
            changed.add("trials")
        done = [t for t in session.trials if t.status == "completed"]
        data_changed = [(t.config, t.value) for t in done] != [(t.config, t.value) for t in self.completed()]
        self._session = session
        self._trials = list(session.trials)
        if "transforms" in changed:
            self.feature_map = FeatureMap.of(session)
        if changed & {"transforms", "kernel", "surrogate"} or data_changed:
            self.last_fit = None
        if changed & {"transforms", "surrogate"} or session.loop.initial_design != old.loop.initial_design:
            self._lla_fitter = None
        return frozenset(changed)
    # ------------------------------------------------------------------ state
    @property
    def session(self) -> Session:
        """The session with the current trials."""
        return self._session.with_trials(tuple(self._trials))

    @property
    def acquisition(self) -> AcquisitionSpec:
        """The session's acquisition settings."""
        return self._session.acquisition

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(self._trials)

    @property
    def pool(self) -> Any:
        """The objective's candidate pool (a :class:`~lla_studio.core.objectives.pool.CandidatePool`) or None."""
        return getattr(self.objective, "pool", None)

    def pool_order(self) -> np.ndarray:
        """The seeded permutation of the pool that the initial design (and fallbacks) walk through."""
        if self._pool_U is None:
            raise StudyError("this study's objective has no candidate pool")
        return np.random.default_rng(self._session.loop.seed).permutation(self._pool_U.shape[0])

    def pool_remaining(self) -> np.ndarray:
        """Indices of the pool candidates that no trial holds (any status, rejected included)."""
        if self._pool_U is None:
            raise StudyError("this study's objective has no candidate pool")
        used = np.zeros(self._pool_U.shape[0], dtype=bool)
        for t in self._trials:
            try:
                key = _row_key(self.space.encode(t.config))
            except SearchSpaceError:
                continue
            used[self._pool_rows.get(key, [])] = True
        return np.flatnonzero(~used)

    @property
    def minimize(self) -> bool:
        return self._session.objective.direction == "minimize"

    @property
    def budget(self) -> int:
        return self._session.loop.budget

    def completed(self) -> list[Trial]:
        return [t for t in self._trials if t.status == "completed"]

    def pending(self) -> list[Trial]:
        return [t for t in self._trials if t.status in ("proposed", "running")]

    def n_evaluated(self) -> int:
        """Completed plus failed trials: what counts against the budget."""
        return sum(1 for t in self._trials if t.status in ("completed", "failed"))

    def best(self) -> Trial | None:
        done = self.completed()
        if not done:
            return None
        key = (lambda t: t.value) if self.minimize else (lambda t: -t.value)  # type: ignore[operator]
        return min(done, key=key)

    def best_value(self) -> float:
        b = self.best()
        return float("nan") if b is None else float(b.value)  # type: ignore[arg-type]

    def trial(self, trial_id: int) -> Trial:
        for t in self._trials:
            if t.id == trial_id:
                return t
        raise StudyError(f"no trial with id {trial_id}")

    def _next_id(self) -> int:
        return max((t.id for t in self._trials), default=-1) + 1

    def running(self) -> list[Trial]:
        """Trials being evaluated (on a worker): the pending points of the next proposal."""
        return [t for t in self._trials if t.status == "running"]

    def _replace_trial(self, new: Trial) -> Trial:
        for i, t in enumerate(self._trials):
            if t.id == new.id:
                self._trials[i] = new
                return new
        raise StudyError(f"no trial with id {new.id}")

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``n x d`` encodings and ``n x 1`` values of the completed trials (float64)."""
        done = self.completed()
        U = torch.as_tensor(self.space.encode_many([t.config for t in done]), dtype=torch.float64)
        Y = torch.tensor([[float(t.value)] for t in done], dtype=torch.float64).reshape(-1, 1)  # type: ignore[arg-type]
        return U, Y

    # ------------------------------------------------------------------ tell / reject / add
    def tell(self, trial_id: int, value: float, seconds: float | None = None, metrics: Mapping[str, float] | None = None) -> Trial:
        """Record the measured value of a proposed or running trial.

        Raises:
            StudyError: unknown id, a trial that is not pending, or a non-finite value.
        """
        t = self.trial(trial_id)
        if t.status not in ("proposed", "running"):
            raise StudyError(f"trial {trial_id} is {t.status}; only proposed or running trials take a value")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise StudyError(f"trial {trial_id}: value {value!r} is not a number") from None
        if not math.isfinite(v):
            raise StudyError(f"trial {trial_id}: value {v} is not finite; use tell_failed for a failed evaluation")
        try:
            return self._replace_trial(replace(t, status="completed", value=v, seconds=seconds, message=None, metrics=metrics or {}))
        except SessionError as err:
            raise StudyError(f"trial {trial_id}: {err}") from None

    def start(self, trial_id: int, worker: str | None = None, started_at: float | None = None) -> Trial:
        """Mark a proposed (or re-queued running) trial as ``running``: its evaluation has begun.

        Running trials are the pending points of later proposals (``ask`` conditions on them).
        """
        t = self.trial(trial_id)
        if t.status not in ("proposed", "running"):
            raise StudyError(f"trial {trial_id} is {t.status}; only proposed or running trials can start")
        return self._replace_trial(replace(
            t, status="running", worker=worker, started_at=time.time() if started_at is None else started_at,
            finished_at=None,
        ))

    def tell_failed(self, trial_id: int, message: str, seconds: float | None = None) -> Trial:
        t = self.trial(trial_id)
        if t.status not in ("proposed", "running"):
            raise StudyError(f"trial {trial_id} is {t.status}; only proposed or running trials can fail")
        return self._replace_trial(replace(t, status="failed", message=str(message), seconds=seconds))

    def reject(self, trial_id: int, reason: str = "rejected by the user") -> Trial:
        """Drop a proposal (it does not count against the budget)."""
        t = self.trial(trial_id)
        if t.status not in ("proposed", "running"):
            raise StudyError(f"trial {trial_id} is {t.status}; only proposed or running trials can be rejected")
        return self._replace_trial(replace(t, status="rejected", message=reason))

    def add(self, config: Mapping[str, Any], value: float | None = None) -> Trial:
        """Record a configuration the user chose, with its value (or as a pending proposal).

        Raises:
            StudyError: the configuration is invalid for the search space (the message lists the
                bad fields), or the value is not finite.
        """
        try:
            cfg = self.space.validate(config)
        except SearchSpaceError as err:
            raise StudyError(f"cannot add trial: {err}") from None
        trial = Trial(self._next_id(), cfg, "proposed", source="manual")
        self._trials.append(trial)
        if value is not None:
            try:
                return self.tell(trial.id, value)
            except StudyError:
                self._trials.pop()
                raise
        return trial

    # ------------------------------------------------------------------ ask
    def _seed(self, salt: int = 0) -> int:
        return (self._session.loop.seed * 1_000_003 + len(self._trials) * 7919 + salt) % (2**31 - 1)

    def _initial_configs(self, count: int) -> list[dict[str, Any]]:
        if self._pool_U is not None:
            remaining = set(self.pool_remaining().tolist())
            order = [int(i) for i in self.pool_order() if int(i) in remaining][:count]
            if not order:
                raise StudyError(f"the candidate pool is exhausted: all {self._pool_U.shape[0]} candidates were tried")
            return [self._pool_config(i) for i in order]
        n_initial = sum(1 for t in self._trials if t.source in ("initial", "fallback"))
        total = n_initial + count
        pool = self.space.sample(total, seed=self._session.loop.seed)
        return pool[n_initial:total]

    def ask(self, q: int | None = None, cancel: Callable[[], bool] | None = None) -> list[Event]:
        """Propose the next ``q`` configurations (default: the loop's batch size).

        Returns the events of the proposal (fit, acquisition, proposed trials); the new trials are
        in state ``proposed``.
        """
        return list(self._ask_events(q, cancel))

    def suggest(self, q: int | None = None, cancel: Callable[[], bool] | None = None) -> list[Trial]:
        """Propose the next ``q`` configurations and return the new trials (``proposed``): the
        notebook form of :meth:`ask`. Evaluate each trial's ``config`` and :meth:`tell` its value."""
        return [event.trial for event in self.ask(q, cancel) if isinstance(event, TrialProposed)]

    def _ask_events(self, q: int | None, cancel: Callable[[], bool] | None) -> Iterator[Event]:
        loop = self._session.loop
        q = loop.batch_size if q is None else int(q)
        if q < 1:
            raise StudyError(f"q must be >= 1, got {q}")
        n_initial = sum(1 for t in self._trials if t.source == "initial" and t.status != "rejected")
        done = self.completed()
        if n_initial < loop.initial_design or len(done) < 2:
            count = min(q, max(1, loop.initial_design - n_initial)) if n_initial < loop.initial_design else q
            for config in self._initial_configs(count):
                yield self._new_trial(config, "initial")
            return
        iteration = len(self._trials)
        try:
            fitted = self._fit(iteration, cancel)
        except SurrogateFitError as err:
            yield SurrogateFitFailed(iteration, str(err))
            for config in self._initial_configs(q):
                yield self._new_trial(config, "fallback")
            return
        yield fitted
        from lla_studio.core.acquisition import propose, propose_from_pool

        U, Y = self.training_data()
        pending = self._pending_U(U.dtype)
        if self._pool_U is not None:
            remaining = self.pool_remaining()
            if remaining.size == 0:
                raise StudyError(f"the candidate pool is exhausted: all {self._pool_U.shape[0]} candidates were tried")
            proposal = propose_from_pool(
                fitted.model, self._session.acquisition, torch.as_tensor(self._pool_U[remaining], dtype=U.dtype),
                U, Y, self.minimize, q=min(q, remaining.size), seed=self._seed(1), cancel=cancel, pending=pending,
            )
            yield AcquisitionOptimized(iteration, proposal.kind, proposal.candidates, proposal.value, proposal.seconds)
            assert proposal.indices is not None
            for i in proposal.indices:
                yield self._new_trial(self._pool_config(int(remaining[i])), "model")
            return
        proposal = propose(
            fitted.model, self._session.acquisition, self.space, U, Y, self.minimize, q=q,
            seed=self._seed(1), cancel=cancel, pending=pending,
        )
        yield AcquisitionOptimized(iteration, proposal.kind, proposal.candidates, proposal.value, proposal.seconds)
        for row in proposal.candidates:
            yield self._new_trial(self.space.decode(row), "model")

    def _pending_U(self, dtype: torch.dtype) -> torch.Tensor | None:
        """``m x d`` unit-cube encodings of the running trials (the model's inputs), or None."""
        running = self.running()
        if not running:
            return None
        return torch.as_tensor(self.space.encode_many([t.config for t in running]), dtype=dtype)

    def _pool_config(self, index: int) -> dict[str, Any]:
        return self.space.validate(self.pool.config(index))

    def _new_trial(self, config: Mapping[str, Any], source: str) -> TrialProposed:
        trial = Trial(self._next_id(), dict(config), "proposed", source=source)
        self._trials.append(trial)
        return TrialProposed(trial)

    def fit_surrogate(self, cancel: Callable[[], bool] | None = None) -> SurrogateFitted:
        """Fit the session's surrogate to the completed trials (without proposing)."""
        return self._fit(len(self._trials), cancel)

    def _fit(self, iteration: int, cancel: Callable[[], bool] | None) -> SurrogateFitted:
        U, Y = self.training_data()
        if U.shape[0] == 0:
            raise SurrogateFitError("no completed trials to fit a surrogate to")
        kind = self._session.surrogate.type
        if kind == "lla":
            from lla_studio.core.surrogates.lla_fit import LLAFitter

            if self._lla_fitter is None:
                self._lla_fitter = LLAFitter.for_session(self._session)
            step = self._lla_fitter.fit(U, Y, cancel)
            event = SurrogateFitted(iteration=iteration, kind="lla", n_train=U.shape[0], **step.fields)
        else:
            from lla_studio.core.surrogates.gp import fit_gp

            # From the kernel's compiled initial values every time, not warm-started from the
            # previous fit: a warm start is state that a resumed run does not have (its proposals
            # differed by 1e-5 in x, then more), and it bought nothing here (median fit on Branin,
            # n = 9..29: 0.053 s warm, 0.049 s cold; Hartmann-6, n = 13..39: 0.074 s vs 0.075 s).
            with torch.random.fork_rng():
                torch.manual_seed(self._seed(2))
                fit = fit_gp(U, Y, self.feature_map, self._session.kernel, cancel=cancel)
            event = SurrogateFitted(
                iteration=iteration, kind="gp", n_train=U.shape[0], hyperparameters=fit.hyperparameters,
                mll=fit.mll, seconds=fit.seconds, model=fit.model,
            )
        self.last_fit = event
        return event

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, trial_id: int) -> Event:
        """Call the objective on a pending trial; returns TrialCompleted or TrialFailed."""
        t = self.trial(trial_id)
        start = time.perf_counter()
        try:
            value, metrics = self.objective.evaluate(t.config)
        except ObjectiveError as err:
            return TrialFailed(self.tell_failed(trial_id, str(err), seconds=time.perf_counter() - start))
        done = self.tell(trial_id, value, seconds=time.perf_counter() - start, metrics=metrics)
        return TrialCompleted(done, self.best_value())

    # ------------------------------------------------------------------ run
    def run(
        self,
        cancel: Callable[[], bool] | None = None,
        budget: int | None = None,
        max_iterations: int | None = None,
    ) -> Iterator[Event]:
        """Run until the budget is spent, yielding events.

        Args:
            cancel: Polled between steps and inside fits/optimization; True stops the loop with
                ``StudyFinished(reason="cancelled")``.
            budget: Override the session's budget (completed + failed evaluations).
            max_iterations: Stop after this many ask/evaluate rounds (e.g. 1 for the GUI's Step).
                In a parallel run, after this many proposals (``ask`` calls); the trials then
                running are waited for.

        Parallel runs (``loop.workers > 1``, a ``loop.executor``, or an executor given to the
        study; not for manual objectives) evaluate asynchronously on Dask workers: see the module
        docstring. A cancel there cancels the running trials' futures and leaves them ``proposed``.

        Raises:
            StudyError: a budget < 1, an exhausted candidate pool.
            ExecutorError: parallel evaluation that cannot start or go on (no scheduler at the
                address, no workers, an objective that cannot be sent or built on a worker).
        """
        budget = self.budget if budget is None else int(budget)
        if budget < 1:
            raise StudyError(f"budget must be >= 1, got {budget}")
        is_cancelled = cancel if cancel is not None else (lambda: False)
        if (self._session.loop.parallel or self._executor is not None) and not self.objective.is_manual:
            yield from self._run_parallel(budget, is_cancelled, max_iterations)
            return
        rounds = 0
        try:
            while self.n_evaluated() < budget:
                if is_cancelled():
                    raise _Cancelled
                if max_iterations is not None and rounds >= max_iterations:
                    break
                pending = self.pending()
                if not pending:
                    room = budget - self.n_evaluated()
                    q = min(self._session.loop.batch_size, room)
                    try:
                        for event in self._ask_events(q, is_cancelled):
                            yield event
                    except Cancelled:
                        raise _Cancelled from None
                    pending = self.pending()
                if self.objective.is_manual:
                    yield StudyFinished("waiting", self.best(), len(self.completed()), self._n_failed())
                    return
                for t in pending:
                    if self.n_evaluated() >= budget:
                        break
                    if is_cancelled():
                        raise _Cancelled
                    yield self.evaluate(t.id)
                rounds += 1
        except _Cancelled:
            yield StudyFinished("cancelled", self.best(), len(self.completed()), self._n_failed())
            return
        reason = "budget" if self.n_evaluated() >= budget else "paused"
        yield StudyFinished(reason, self.best(), len(self.completed()), self._n_failed())

    # ------------------------------------------------------------------ run in parallel
    def _run_parallel(self, budget: int, is_cancelled: Callable[[], bool], max_iterations: int | None) -> Iterator[Event]:
        """The asynchronous form of :meth:`run` (see the module docstring); opens an executor if
        the study was given none, and closes what it opened."""
        if not self._objective_is_spec:
            raise ExecutorError(
                "parallel evaluation sends the session's objective spec to the Dask workers, so an objective "
                "given as a Python function or object cannot be sent; name it in the session instead "
                "(objective type 'python', target 'package.module:function' or 'file.py:function')"
            )
        if self.n_evaluated() >= budget:  # nothing to evaluate: no cluster to start
            yield StudyFinished("budget", self.best(), len(self.completed()), self._n_failed())
            return
        executor = self._executor
        owned = None
        if executor is None:
            from lla_studio.core.executors import open_executor

            loop = self._session.loop
            executor = owned = open_executor(loop.executor, loop.workers)
        try:
            with cores_left_to(getattr(executor, "local_workers", 0)):
                yield from self._dispatch(executor, budget, is_cancelled, max_iterations)
        finally:
            if owned is not None:
                owned.close()

    def _dispatch(self, executor: Any, budget: int, is_cancelled: Callable[[], bool], max_iterations: int | None) -> Iterator[Event]:
        loop = self._session.loop
        timeout = self.objective.spec.timeout_s
        flights: dict[str, Flight] = {}  # by future key: the trials sent and not yet back
        # a continued run first evaluates what was proposed or running when its session was saved
        queue = [t.id for t in self._trials if t.status in ("proposed", "running")]
        lost: dict[int, int] = {}  # trial id -> times its worker was lost
        to_restart: set[str] = set()  # workers that may still run a timed-out evaluation
        unusable: set[str] = set()  # workers that could not be restarted
        executor.prepare(self.objective.spec, self._objective_dir())
        state = {"rounds": 0, "workers": executor.workers(), "idle_since": None}
        finished = False

        def fill() -> Iterator[Event]:
            """Send queued trials, then new proposals, to free workers (one ``ask`` per batch)."""
            while len(flights) < loop.workers and self.n_evaluated() + len(flights) < budget:
                free = free_workers(state["workers"], flights, to_restart | unusable)
                if not free:
                    return
                if queue:
                    yield self._send(executor, queue.pop(0), free[0], flights)
                    continue
                if max_iterations is not None and state["rounds"] >= max_iterations:
                    return
                q = min(loop.batch_size, budget - self.n_evaluated() - len(flights))
                if min(len(free), loop.workers - len(flights)) < q:
                    return  # a batch waits until that many workers are free
                try:
                    for event in self._ask_events(q, is_cancelled):
                        yield event
                        if isinstance(event, TrialProposed):
                            queue.append(event.trial.id)
                except Cancelled:
                    raise _Cancelled from None
                state["rounds"] += 1

        def work_remains() -> bool:
            return self.n_evaluated() + len(flights) < budget and bool(
                queue or max_iterations is None or state["rounds"] < max_iterations
            )

        def landed(flight: Flight, outcome: Mapping[str, Any]) -> Iterator[Event]:
            status = outcome["status"]
            if status == "lost":
                yield from worker_lost(flight)
                return
            if status == "completed":
                done = self.tell(flight.trial_id, outcome["value"], seconds=outcome["seconds"], metrics=outcome["metrics"])
                yield TrialCompleted(self._finish(done), self.best_value())
                return
            if status == "failed":
                yield TrialFailed(self._finish(self.tell_failed(flight.trial_id, outcome["message"], seconds=outcome["seconds"])))
                return
            # "unavailable" (the objective cannot be built there) or "error" (the worker could not
            # run our task at all): every later trial would fail the same way, so the run stops
            message = (
                f"worker {flight.worker}: the objective cannot be built there: {outcome['message']}"
                if status == "unavailable"
                else f"worker {flight.worker} could not run the evaluation (is lla_studio installed there?): {outcome['message']}"
            )
            yield TrialFailed(self._finish(self.tell_failed(flight.trial_id, message)))
            raise ExecutorError(message)

        def worker_lost(flight: Flight) -> Iterator[Event]:
            lost[flight.trial_id] = lost.get(flight.trial_id, 0) + 1
            if lost[flight.trial_id] <= loop.retries:
                self._requeue(flight.trial_id)
                queue.insert(0, flight.trial_id)  # same id, same configuration, next free worker
                return
            yield TrialFailed(self._finish(self.tell_failed(flight.trial_id, "worker lost")))

        try:
            yield from fill()
            while flights or work_remains():
                if is_cancelled():
                    raise _Cancelled
                state["workers"] = workers = executor.workers()
                for key, flight in list(flights.items()):
                    if flight.future.done():
                        continue  # its result is on the way (as_completed fetches it)
                    if flight.worker not in workers:
                        del flights[key]
                        executor.cancel([flight.future])
                        yield from worker_lost(flight)
                    elif timeout is not None and time.perf_counter() - flight.sent > timeout:
                        del flights[key]
                        executor.cancel([flight.future])
                        to_restart.add(flight.worker)
                        yield TrialFailed(self._finish(self.tell_failed(
                            flight.trial_id, f"objective timed out after {timeout:g} s", seconds=time.perf_counter() - flight.sent,
                        )))
                for worker in sorted(to_restart):
                    # Dask cannot stop a running task: the worker's process is restarted once no
                    # other trial of ours runs there, so a runaway evaluation does not hold it
                    if worker not in workers:
                        to_restart.discard(worker)
                    elif not any(f.worker == worker for f in flights.values()):
                        to_restart.discard(worker)
                        if not executor.restart(worker):
                            unusable.add(worker)
                        state["workers"] = executor.workers()
                yield from fill()
                if not flights:
                    if not work_remains():
                        break
                    # nothing runs and nothing could be sent: no usable worker (a killed worker's
                    # nanny restarts it within seconds; an external cluster may be scaling up)
                    state["idle_since"] = state["idle_since"] or time.perf_counter()
                    if time.perf_counter() - state["idle_since"] > NO_WORKERS_GRACE_S:
                        raise ExecutorError(
                            f"Dask scheduler {executor.address!r}: no usable workers for {NO_WORKERS_GRACE_S:g} s"
                        )
                else:
                    state["idle_since"] = None
                for future, outcome in executor.wait([f.future for f in flights.values()], POLL_S):
                    flight = flights.pop(future.key, None)
                    if flight is None:
                        continue  # cancelled here (timed out, worker lost): already accounted for
                    yield from landed(flight, outcome)
                    yield from fill()  # after each finished trial: proposals follow the completion order
            finished = True
        except _Cancelled:
            self._abandon(executor, flights)
            yield StudyFinished("cancelled", self.best(), len(self.completed()), self._n_failed())
            return
        finally:
            if not finished:  # an error, Ctrl-C or the consumer closing the generator
                self._abandon(executor, flights)
        reason = "budget" if self.n_evaluated() >= budget else "paused"
        yield StudyFinished(reason, self.best(), len(self.completed()), self._n_failed())

    def _send(self, executor: Any, trial_id: int, worker: str, flights: dict[str, Flight]) -> TrialStarted:
        """Submit a trial to ``worker`` and mark it running."""
        t = self.trial(trial_id)
        key = f"lla-trial-{trial_id}-{uuid.uuid4().hex[:12]}"  # unique: a re-sent trial gets a new key
        future = executor.submit(self.objective.spec, self._objective_dir(), dict(t.config), worker, key)
        started = self.start(trial_id, worker=worker)
        flights[future.key] = Flight(trial_id, worker, future, time.perf_counter())
        return TrialStarted(started, worker, float(started.started_at))  # type: ignore[arg-type]

    def _objective_dir(self) -> str | None:
        """The objective's folder for relative ``file.py`` targets, absolute (a worker's working
        directory need not be ours)."""
        base_dir = getattr(self.objective, "base_dir", None)
        return None if base_dir is None else str(Path(base_dir).resolve())

    def _finish(self, trial: Trial) -> Trial:
        """Stamp a trial that just finished with its arrival time and place in the completion order."""
        order = sum(1 for t in self._trials if t.status in ("completed", "failed") and t.id != trial.id)
        return self._replace_trial(replace(trial, finished_at=time.time(), completed_order=order))

    def _requeue(self, trial_id: int) -> None:
        t = self.trial(trial_id)
        self._replace_trial(replace(t, status="proposed", worker=None, started_at=None, finished_at=None))

    def _abandon(self, executor: Any, flights: dict[str, Flight]) -> None:
        """Cancel what is in flight; those trials are proposed again (a continued run evaluates them)."""
        executor.cancel([f.future for f in flights.values()])
        for flight in flights.values():
            self._requeue(flight.trial_id)
        flights.clear()

    def _n_failed(self) -> int:
        return sum(1 for t in self._trials if t.status == "failed")


def _row_key(u: np.ndarray) -> bytes:
    """Hashable key of an encoded row (rounded, so a decoded-and-re-encoded candidate still matches)."""
    return (np.round(np.asarray(u, dtype=np.float64), 9) + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0
