"""Frozen settings objects that a session holds: surrogate, acquisition, objective, loop, trials.

Each has ``to_dict()`` and a ``*_from_dict(d, path)`` reader whose errors are
:class:`~lla_studio.core.errors.SessionError` naming the JSON path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from lla_studio.core.errors import SessionError
from lla_studio.core.schema import brief, check_keys, expect_object, finite_float, get, plain_json

__all__ = [
    "ACQUISITIONS",
    "AcquisitionSpec",
    "EXECUTORS",
    "ExecutorSpec",
    "LoopSettings",
    "ObjectiveSpec",
    "SurrogateSpec",
    "TRIAL_STATUSES",
    "Trial",
]


MAX_COUNT = 10**7
"""Largest budget, design size, batch size or optimizer count a session may ask for: far beyond
any study that finishes, so a larger number is a typo (and would fail only at run time)."""


def _freeze(obj: Any) -> Any:
    """Deep-freeze plain JSON (dict -> read-only mapping, list -> tuple)."""
    if isinstance(obj, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(v) for v in obj)
    return obj


def _frozen_options(options: Any, path: str, level: int) -> Mapping[str, Any]:
    """Free-form options checked as JSON (:func:`~lla_studio.core.schema.plain_json`: depth, finite
    numbers, text, JSON types) and deep-frozen, so a spec always holds a value a session can save.

    Args:
        options: The options mapping.
        path: Its JSON path in a session (``"surrogate"``: its keys sit beside ``type``).
        level: Its nesting level in a session document (the document is level 1).
    """
    return _freeze(plain_json(dict(expect_object(options, path)), path, level))


def thaw(obj: Any) -> Any:
    """Inverse of :func:`_freeze`: plain dicts and lists again, ready for ``json.dumps``."""
    if isinstance(obj, Mapping):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [thaw(v) for v in obj]
    return obj


class _PicklableSpec:
    """Pickling for frozen specs that hold read-only mappings: ``MappingProxyType`` cannot be
    pickled, so a spec travels (to a worker process, a Dask worker) as its thawed fields and is
    rebuilt, and checked again, by its constructor."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), tuple(thaw(getattr(self, f.name)) for f in fields(self)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- surrogate
SURROGATES = ("gp", "lla")


@dataclass(frozen=True)
class SurrogateSpec(_PicklableSpec):
    """Which surrogate models the objective.

    Args:
        type: ``"gp"`` (exact GP with the session's kernel graph) or ``"lla"`` (linearized Laplace).
        options: Type-specific settings (e.g. the network of an LLA), plain JSON.
    """

    type: str = "gp"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.type not in SURROGATES:
            raise SessionError(f"unknown surrogate {self.type!r} (use {', '.join(SURROGATES)})", "surrogate.type")
        object.__setattr__(self, "options", _frozen_options(self.options, "surrogate", 2))
        if self.type == "gp" and self.options:  # the reader refuses them too: a spec it could not read back
            raise SessionError(
                f"a GP surrogate takes no options (its kernel is the session's 'kernel'), got {sorted(self.options)}",
                "surrogate",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **thaw(self.options)}


def surrogate_from_dict(d: Any, path: str = "surrogate") -> SurrogateSpec:
    """Read the surrogate section. A GP takes no options (its kernel is the session's ``kernel``), so
    any other field is a typo such as ``"kernal"``; an LLA's options are checked by
    :func:`~lla_studio.core.surrogates.lla_fit.lla_options` when the session is read."""
    obj = expect_object(d, path)
    kind = get(obj, "type", "str", path, "gp")
    if kind not in SURROGATES:
        raise SessionError(f"unknown surrogate {kind!r} (use {', '.join(SURROGATES)})", f"{path}.type")
    if kind == "gp":
        check_keys(obj, {"type"}, path)
    return SurrogateSpec(kind, {k: v for k, v in obj.items() if k != "type"})


# --------------------------------------------------------------------------- acquisition
ACQUISITIONS = ("logei", "ei", "ucb", "pi", "thompson", "qlognei")


@dataclass(frozen=True)
class AcquisitionSpec:
    """Acquisition function and how it is optimized.

    Args:
        type: One of :data:`ACQUISITIONS`; ``logei`` is the default, ``qlognei`` is used for q > 1.
        beta: UCB exploration weight (``mean + sqrt(beta) * sd``).
        num_restarts: ``optimize_acqf`` restarts.
        raw_samples: ``optimize_acqf`` raw samples for the initial heuristic.
        thompson_candidates: Size of the Sobol candidate set for Thompson sampling.
        max_choice_combinations: Above this many combinations of choice values, the choices are
            optimized by a relaxation (rounded afterwards) instead of enumeration.
    """

    type: str = "logei"
    beta: float = 2.0
    num_restarts: int = 10
    raw_samples: int = 512
    thompson_candidates: int = 2048
    max_choice_combinations: int = 32

    def __post_init__(self) -> None:
        if self.type not in ACQUISITIONS:
            raise SessionError(f"unknown acquisition {self.type!r} (use {', '.join(ACQUISITIONS)})", "acquisition.type")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise SessionError(f"beta must be >= 0, got {self.beta}", "acquisition.beta")
        for name in ("num_restarts", "raw_samples", "thompson_candidates", "max_choice_combinations"):
            if getattr(self, name) < 1:
                raise SessionError(f"must be >= 1, got {brief(getattr(self, name))}", f"acquisition.{name}")
            if getattr(self, name) > MAX_COUNT:
                raise SessionError(f"must be at most {MAX_COUNT}, got {brief(getattr(self, name))}", f"acquisition.{name}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "beta": self.beta,
            "num_restarts": self.num_restarts,
            "raw_samples": self.raw_samples,
            "thompson_candidates": self.thompson_candidates,
            "max_choice_combinations": self.max_choice_combinations,
        }


def acquisition_from_dict(d: Any, path: str = "acquisition") -> AcquisitionSpec:
    obj = expect_object(d, path)
    check_keys(obj, {"type", "beta", "num_restarts", "raw_samples", "thompson_candidates", "max_choice_combinations"}, path)
    kind = get(obj, "type", "str", path, "logei")
    if kind not in ACQUISITIONS:
        raise SessionError(f"unknown acquisition {kind!r} (use {', '.join(ACQUISITIONS)})", f"{path}.type")
    values = {"type": kind, "beta": get(obj, "beta", "number", path, 2.0)}
    for name, default in (("num_restarts", 10), ("raw_samples", 512), ("thompson_candidates", 2048), ("max_choice_combinations", 32)):
        values[name] = get(obj, name, "int", path, default)
    try:
        return AcquisitionSpec(**values)
    except SessionError as err:
        raise SessionError(err.reason, f"{path}.{err.path.split('.', 1)[1]}") from None


# --------------------------------------------------------------------------- objective
OBJECTIVES = ("benchmark", "python", "manual")


@dataclass(frozen=True)
class ObjectiveSpec(_PicklableSpec):
    """What is being optimized.

    Args:
        type: ``"benchmark"`` (a named test function), ``"python"`` (a user function given as
            ``package.module:function`` or ``path/to/file.py:function``, called with a configuration
            dict) or ``"manual"`` (values come from the user).
        name: Benchmark name for ``benchmark`` (``forrester``, ``branin``, ``ackley``, ``hartmann6``).
        target: The function reference for ``python``.
        direction: ``"minimize"`` or ``"maximize"``.
        timeout_s: Evaluations that take longer fail (``None``: no limit).
        options: Type-specific options (e.g. ``{"noise_std": 0.1}``), plain JSON.
    """

    type: str = "manual"
    name: str | None = None
    target: str | None = None
    direction: str = "minimize"
    timeout_s: float | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.type not in OBJECTIVES:
            raise SessionError(f"unknown objective type {self.type!r} (use {', '.join(OBJECTIVES)})", "objective.type")
        if self.direction not in ("minimize", "maximize"):
            raise SessionError(f"must be 'minimize' or 'maximize', got {self.direction!r}", "objective.direction")
        if self.type == "benchmark" and not self.name:
            raise SessionError("a benchmark objective needs a name", "objective.name")
        if self.type == "python" and not self.target:
            raise SessionError("a python objective needs a target like 'package.module:function'", "objective.target")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise SessionError(f"must be > 0, got {self.timeout_s}", "objective.timeout_s")
        object.__setattr__(self, "options", _frozen_options(self.options, "objective.options", 3))
        # options are checked when a session is read, not when a run first evaluates
        from lla_studio.core.objectives.benchmarks import (
            BenchmarkOptionError,
            check_benchmark_options,
            check_noise_std,
        )

        try:
            if self.type == "benchmark":
                check_benchmark_options(self.name, self.options)
            else:  # free-form options, but the noise every objective adds must be a number
                check_noise_std(self.options.get("noise_std"))
        except BenchmarkOptionError as err:
            raise SessionError(err.reason, f"objective.{err.field}") from None

    @property
    def sign(self) -> float:
        """+1 for minimize, -1 for maximize: ``sign * value`` is always minimized."""
        return 1.0 if self.direction == "minimize" else -1.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        if self.name is not None:
            d["name"] = self.name
        if self.target is not None:
            d["target"] = self.target
        d["direction"] = self.direction
        if self.timeout_s is not None:
            d["timeout_s"] = self.timeout_s
        if self.options:
            d["options"] = thaw(self.options)
        return d


def objective_from_dict(d: Any, path: str = "objective") -> ObjectiveSpec:
    obj = expect_object(d, path)
    check_keys(obj, {"type", "name", "target", "direction", "timeout_s", "options"}, path)
    kind = get(obj, "type", "str", path, "manual")
    if kind not in OBJECTIVES:
        raise SessionError(f"unknown objective type {kind!r} (use {', '.join(OBJECTIVES)})", f"{path}.type")
    direction = get(obj, "direction", "str", path, "minimize")
    try:
        return ObjectiveSpec(
            type=kind,
            name=get(obj, "name", "str?", path, None),
            target=get(obj, "target", "str?", path, None),
            direction=direction,
            timeout_s=get(obj, "timeout_s", "number?", path, None),
            options=get(obj, "options", "object", path, {}),
        )
    except SessionError as err:
        raise SessionError(err.reason, f"{path}.{err.path.split('.', 1)[1]}") from None


# --------------------------------------------------------------------------- loop
EXECUTORS = ("dask",)

_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
"""The address schemes of Dask's comm layer (``distributed.comm.registry``)."""


@dataclass(frozen=True)
class ExecutorSpec(_PicklableSpec):
    """Where trials are evaluated when they run in parallel.

    Args:
        type: ``"dask"`` (Dask distributed), the only executor.
        address: A running Dask scheduler, e.g. ``"tcp://10.0.0.5:8786"``; ``None`` starts a
            ``LocalCluster`` of ``loop.workers`` worker processes on loopback for the run.
    """

    type: str = "dask"
    address: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EXECUTORS:
            raise SessionError(f"unknown executor {self.type!r} (use {', '.join(EXECUTORS)})", "loop.executor.type")
        if self.address is not None:
            if not isinstance(self.address, str):
                raise SessionError(f"expected a string, got {brief(self.address)}", "loop.executor.address")
            # Only the form is checked here (the model layer opens no sockets); whether a Dask
            # scheduler answers there is checked when a run starts (lla_studio.core.executors).
            scheme, sep, rest = self.address.partition("://")
            if not sep or scheme not in _SCHEMES or not rest or any(c.isspace() for c in self.address):
                raise SessionError(
                    f"expected a Dask scheduler address like 'tcp://127.0.0.1:8786' "
                    f"(scheme {', '.join(_SCHEMES)}), got {brief(self.address)}",
                    "loop.executor.address",
                )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type}
        if self.address is not None:
            d["address"] = self.address
        return d


def executor_from_dict(d: Any, path: str = "loop.executor") -> ExecutorSpec | None:
    if d is None:
        return None
    obj = expect_object(d, path)
    check_keys(obj, {"type", "address"}, path)
    kind = get(obj, "type", "str", path, "dask")
    if kind not in EXECUTORS:
        raise SessionError(f"unknown executor {kind!r} (use {', '.join(EXECUTORS)})", f"{path}.type")
    try:
        return ExecutorSpec(kind, get(obj, "address", "str?", path, None))
    except SessionError as err:
        raise SessionError(err.reason, f"{path}.{err.path.rsplit('.', 1)[1]}") from None


@dataclass(frozen=True)
class LoopSettings:
    """Budget and design of a study, and how many trials run at once.

    Args:
        budget: Total number of evaluations (completed + failed).
        initial_design: Number of Sobol configurations before the first model-based proposal.
        batch_size: Proposals per iteration (q). When trials run in parallel, a batch is proposed
            once that many workers are free, so it can be at most ``workers``.
        seed: Seed of everything random in the study.
        workers: Trials evaluated at once. 1 (and no ``executor``): one after the other in this
            process, the sequential loop. More, or an ``executor``: asynchronously on Dask workers
            (:mod:`lla_studio.core.executors`).
        executor: Where parallel trials run (``None``: a local Dask cluster when ``workers > 1``).
        retries: How often a trial whose worker was lost is evaluated again before it fails.
    """

    budget: int = 30
    initial_design: int = 8
    batch_size: int = 1
    seed: int = 0
    workers: int = 1
    executor: ExecutorSpec | None = None
    retries: int = 0

    def __post_init__(self) -> None:
        for name in ("budget", "initial_design", "batch_size", "workers"):
            value = getattr(self, name)
            if value < 1:
                raise SessionError(f"must be >= 1, got {brief(value)}", f"loop.{name}")
            if value > MAX_COUNT:
                raise SessionError(f"must be at most {MAX_COUNT}, got {brief(value)}", f"loop.{name}")
        if self.budget < self.initial_design:
            raise SessionError(
                f"budget {self.budget} is smaller than the initial design {self.initial_design}", "loop.budget"
            )
        if not 0 <= self.seed < 2**63:
            raise SessionError(f"must be >= 0 and < 2**63 (a seed torch takes), got {brief(self.seed)}", "loop.seed")
        if not 0 <= self.retries <= MAX_COUNT:
            raise SessionError(f"must be >= 0 and at most {MAX_COUNT}, got {brief(self.retries)}", "loop.retries")
        if self.executor is not None and not isinstance(self.executor, ExecutorSpec):
            raise SessionError(f"expected an ExecutorSpec, got {type(self.executor).__name__}", "loop.executor")
        if self.parallel and self.batch_size > self.workers:
            # the asynchronous loop proposes a batch when batch_size workers are free: with fewer
            # workers that never happens
            raise SessionError(
                f"must be at most loop.workers ({self.workers}) when trials run in parallel "
                f"(a batch is proposed once that many workers are free), got {self.batch_size}",
                "loop.batch_size",
            )

    @property
    def parallel(self) -> bool:
        """Whether trials run asynchronously on Dask workers (``workers > 1`` or an executor)."""
        return self.workers > 1 or self.executor is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"budget": self.budget, "initial_design": self.initial_design, "batch_size": self.batch_size, "seed": self.seed}
        # written only when set, so a sequential session reads and writes back unchanged
        if self.workers != 1:
            d["workers"] = self.workers
        if self.executor is not None:
            d["executor"] = self.executor.to_dict()
        if self.retries:
            d["retries"] = self.retries
        return d


def loop_from_dict(d: Any, path: str = "loop") -> LoopSettings:
    obj = expect_object(d, path)
    check_keys(obj, {"budget", "initial_design", "batch_size", "seed", "workers", "executor", "retries"}, path)
    values = {
        "budget": get(obj, "budget", "int", path, 30),
        "initial_design": get(obj, "initial_design", "int", path, 8),
        "batch_size": get(obj, "batch_size", "int", path, 1),
        "seed": get(obj, "seed", "int", path, 0),
        "workers": get(obj, "workers", "int", path, 1),
        "executor": executor_from_dict(get(obj, "executor", "object?", path, None), f"{path}.executor"),
        "retries": get(obj, "retries", "int", path, 0),
    }
    try:
        return LoopSettings(**values)
    except SessionError as err:
        raise SessionError(err.reason, f"{path}.{err.path.split('.', 1)[1]}") from None


# --------------------------------------------------------------------------- trials
TRIAL_STATUSES = ("proposed", "running", "completed", "failed", "rejected")


@dataclass(frozen=True)
class Trial(_PicklableSpec):
    """One configuration and what became of it.

    Args:
        id: Sequential id, unique within a study.
        config: The (validated) configuration.
        status: One of :data:`TRIAL_STATUSES`.
        value: The objective value (finite; only for completed trials).
        message: Why it failed or was rejected.
        source: ``"initial"`` (space-filling design), ``"model"`` (acquisition), ``"manual"`` (the user),
            ``"fallback"`` (space-filling after a failed fit).
        seconds: Wall-clock seconds of the evaluation.
        metrics: Named extra measurements of the evaluation (finite numbers, e.g. a training run's
            ``test_error``), recorded beside the value the study optimizes.
        worker: The Dask worker (its address) that evaluated it, or evaluates it now.
        started_at: When it was sent to its worker (seconds since the epoch, this machine's clock).
        finished_at: When its result (or failure) arrived.
        completed_order: Its place (0, 1, ...) among the study's finished (completed or failed)
            trials, in the order their evaluations ended: what a parallel run's proposals depend
            on beside the seed. Set by the asynchronous loop only; in a sequential run the order is
            the order of the trials.
    """

    id: int
    config: Mapping[str, Any]
    status: str = "proposed"
    value: float | None = None
    message: str | None = None
    source: str = "initial"
    seconds: float | None = None
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    completed_order: int | None = None

    def __post_init__(self) -> None:
        if self.status not in TRIAL_STATUSES:
            raise SessionError(f"unknown status {self.status!r} (use {', '.join(TRIAL_STATUSES)})", "status")
        if self.status == "completed":
            if self.value is None or not math.isfinite(self.value):
                raise SessionError(f"a completed trial needs a finite value, got {self.value!r}", "value")
        elif self.value is not None:
            raise SessionError(f"only completed trials have a value, this one is {self.status}", "value")
        if self.source not in ("initial", "model", "manual", "fallback"):
            raise SessionError(f"unknown source {self.source!r}", "source")
        if self.completed_order is not None:
            if self.status not in ("completed", "failed"):
                raise SessionError(f"only finished trials have a completion order, this one is {self.status}", "completed_order")
            if self.completed_order < 0:
                raise SessionError(f"must be >= 0, got {brief(self.completed_order)}", "completed_order")
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "metrics", MappingProxyType(_metrics(self.metrics, "metrics")))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "status": self.status, "config": dict(self.config)}
        if self.value is not None:
            d["value"] = self.value
        if self.message is not None:
            d["message"] = self.message
        d["source"] = self.source
        if self.seconds is not None:
            d["seconds"] = self.seconds
        if self.metrics:
            d["metrics"] = dict(self.metrics)
        for name in ("worker", "started_at", "finished_at", "completed_order"):  # only when set
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        return d


def _metrics(values: Any, path: str) -> dict[str, float]:
    """Named finite numbers (a bool is not a measurement), in their given order."""
    if not isinstance(values, Mapping):
        raise SessionError(f"expected an object of named numbers, got {brief(values)}", path)
    out: dict[str, float] = {}
    for name, v in values.items():
        if not isinstance(name, str) or not name.strip():
            raise SessionError(f"a metric needs a non-empty name, got {name!r}", path)
        number = None if isinstance(v, bool) else finite_float(v)
        if number is None:
            raise SessionError(f"must be a finite number, got {brief(v)}", f"{path}.{name}")
        out[name] = number
    return out


def trial_from_dict(d: Any, path: str) -> Trial:
    obj = expect_object(d, path)
    check_keys(
        obj,
        {"id", "status", "config", "value", "message", "source", "seconds", "metrics", "worker", "started_at",
         "finished_at", "completed_order"},
        path,
    )
    try:
        return Trial(
            id=get(obj, "id", "int", path),
            config=get(obj, "config", "object", path),
            status=get(obj, "status", "str", path),
            value=get(obj, "value", "number?", path, None),
            message=get(obj, "message", "str?", path, None),
            source=get(obj, "source", "str", path, "initial"),
            seconds=get(obj, "seconds", "number?", path, None),
            metrics=_metrics(get(obj, "metrics", "object", path, {}), f"{path}.metrics"),
            worker=get(obj, "worker", "str?", path, None),
            started_at=get(obj, "started_at", "number?", path, None),
            finished_at=get(obj, "finished_at", "number?", path, None),
            completed_order=get(obj, "completed_order", "int?", path, None),
        )
    except SessionError as err:
        if err.path.startswith(path):
            raise
        raise SessionError(err.reason, f"{path}.{err.path}") from None
