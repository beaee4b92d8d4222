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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lla_studio.core.features import FeatureMap
from lla_studio.core.errors import Cancelled, ObjectiveError, SearchSpaceError, SessionError, StudyError, SurrogateFitError
from lla_studio.core.objectives import Objective, make_objective
from lla_studio.core.session import Session
from lla_studio.core.space import RealParameter
from lla_studio.core.specs import AcquisitionSpec, Trial

__all__ = [
    "AcquisitionOptimized",
    "CancelToken",
    "Event",
    "Study",
    "StudyFinished",
    "SurrogateFitFailed",
    "SurrogateFitted",
    "TrialCompleted",
    "TrialFailed",
    "TrialProposed",
]


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


# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    """Base of all study events."""


@dataclass(frozen=True)
class TrialProposed(Event):
    trial: Trial


@dataclass(frozen=True)
class TrialCompleted(Event):
    trial: Trial
    best_value: float


@dataclass(frozen=True)
class TrialFailed(Event):
    trial: Trial


@dataclass(frozen=True)
class SurrogateFitted(Event):
    """A surrogate was fitted on ``n_train`` completed trials.

    Attributes:
        iteration: Number of trials when the fit started.
        kind: ``"gp"`` or ``"lla"``.
        n_train: Training points.
        hyperparameters: Named hyperparameter values.
        mll: Marginal log likelihood (per point for GPs; the Laplace evidence for LLA).
        seconds: Fit time.
        model: The fitted BoTorch model (read-only by convention; the engine samples it).
        warnings: Notes of the fit (e.g. a hyperparameter at its bound).
    """

    iteration: int
    kind: str
    n_train: int
    hyperparameters: Mapping[str, Sequence[float]]
    mll: float
    seconds: float
    model: Any = field(default=None, repr=False, compare=False)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurrogateFitFailed(Event):
    iteration: int
    reason: str


@dataclass(frozen=True)
class AcquisitionOptimized(Event):
    iteration: int
    kind: str
    candidates: np.ndarray = field(compare=False)
    value: float
    seconds: float


@dataclass(frozen=True)
class StudyFinished(Event):
    """The loop stopped.

    Attributes:
        reason: ``"budget"`` (spent), ``"cancelled"``, or ``"waiting"`` (a manual objective waits for
            the user's values of the proposed trials).
        best: The best completed trial, if any.
        n_completed: Completed trials.
        n_failed: Failed trials.
    """

    reason: str
    best: Trial | None
    n_completed: int
    n_failed: int


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
    """

    def __init__(
        self,
        session: Session,
        objective: Objective | Callable[[dict[str, Any]], Any] | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        self._session = session
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
        if self._pool_U is not None:
            remaining = self.pool_remaining()
            if remaining.size == 0:
                raise StudyError(f"the candidate pool is exhausted: all {self._pool_U.shape[0]} candidates were tried")
            proposal = propose_from_pool(
                fitted.model, self._session.acquisition, torch.as_tensor(self._pool_U[remaining], dtype=U.dtype),
                U, Y, self.minimize, q=min(q, remaining.size), seed=self._seed(1), cancel=cancel,
            )
            yield AcquisitionOptimized(iteration, proposal.kind, proposal.candidates, proposal.value, proposal.seconds)
            assert proposal.indices is not None
            for i in proposal.indices:
                yield self._new_trial(self._pool_config(int(remaining[i])), "model")
            return
        proposal = propose(
            fitted.model, self._session.acquisition, self.space, U, Y, self.minimize, q=q,
            seed=self._seed(1), cancel=cancel,
        )
        yield AcquisitionOptimized(iteration, proposal.kind, proposal.candidates, proposal.value, proposal.seconds)
        for row in proposal.candidates:
            yield self._new_trial(self.space.decode(row), "model")

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
        """
        budget = self.budget if budget is None else int(budget)
        if budget < 1:
            raise StudyError(f"budget must be >= 1, got {budget}")
        is_cancelled = cancel if cancel is not None else (lambda: False)
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

    def _n_failed(self) -> int:
        return sum(1 for t in self._trials if t.status == "failed")


def _row_key(u: np.ndarray) -> bytes:
    """Hashable key of an encoded row (rounded, so a decoded-and-re-encoded candidate still matches)."""
    return (np.round(np.asarray(u, dtype=np.float64), 9) + 0.0).tobytes()  # + 0.0 turns -0.0 into 0.0
