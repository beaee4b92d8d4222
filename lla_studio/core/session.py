"""Versioned JSON sessions: everything a study needs, loaded into frozen objects, saved atomically.

Format (version 1)::

    {
      "format": "lla-studio-session", "version": 1,
      "name": "...", "description": "...",
      "search_space": {"parameters": [...]},
      "transforms": [{"step": "log", "features": ["lr"]}, ...],
      "kernel": null | {kernel graph},
      "surrogate": {"type": "gp"},
      "acquisition": {"type": "logei", ...},
      "objective": {"type": "benchmark", "name": "branin", "direction": "minimize"},
      "loop": {"budget": 30, "initial_design": 8, "batch_size": 1, "seed": 0},
      "trials": [{"id": 0, "status": "completed", "config": {...}, "value": 1.2, "source": "initial"}]
    }

Readers check every field and raise :class:`~lla_studio.core.errors.SessionError` whose message
starts with the JSON path of the culprit (``search_space.parameters[2].low: expected a finite number``).
Files are written to a temporary file beside the target and moved over it with ``os.replace``, so a
failed save leaves the previous file intact. Sessions are never pickled and hold no import paths of
our classes (a user objective's ``module:function`` is the user's data).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from lla_studio.core.errors import KernelGraphError, SearchSpaceError, SessionError
from lla_studio.core.kernels import KernelGraph
from lla_studio.core.schema import check_keys, expect_list, expect_object, get
from lla_studio.core.space import SearchSpace, search_space_from_dict
from lla_studio.core.specs import (
    AcquisitionSpec,
    LoopSettings,
    ObjectiveSpec,
    SurrogateSpec,
    Trial,
    acquisition_from_dict,
    loop_from_dict,
    objective_from_dict,
    surrogate_from_dict,
    trial_from_dict,
)
from lla_studio.core.transforms import FeatureMap, TransformChain, compile_chain, transform_chain_from_dict

__all__ = [
    "FORMAT",
    "VERSION",
    "Session",
    "dumps_session",
    "load_session",
    "loads_session",
    "save_session",
    "session_from_dict",
    "session_to_dict",
]

FORMAT = "lla-studio-session"
VERSION = 1

# version -> function that upgrades a document of that version to version + 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_TOP_KEYS = {
    "format", "version", "name", "description", "search_space", "transforms", "kernel",
    "surrogate", "acquisition", "objective", "loop", "trials",
}


@dataclass(frozen=True)
class Session:
    """A whole study: search space, features, model, acquisition, objective, loop and trials.

    Constructing one checks consistency across sections (the transforms fit the space, every trial's
    configuration is valid, trial ids are unique).
    """

    search_space: SearchSpace
    transforms: TransformChain = field(default_factory=TransformChain)
    kernel: Any = None
    surrogate: SurrogateSpec = field(default_factory=SurrogateSpec)
    acquisition: AcquisitionSpec = field(default_factory=AcquisitionSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    loop: LoopSettings = field(default_factory=LoopSettings)
    trials: tuple[Trial, ...] = ()
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "trials", tuple(self.trials))
        compile_chain(self.search_space, self.transforms)
        seen: set[int] = set()
        for i, t in enumerate(self.trials):
            if t.id in seen:
                raise SessionError(f"duplicate trial id {t.id}", f"trials[{i}].id")
            seen.add(t.id)
            try:
                self.search_space.validate(t.config)
            except SearchSpaceError as err:
                raise SessionError(str(err), f"trials[{i}].config") from None
        if self.kernel is not None:
            if not isinstance(self.kernel, KernelGraph):
                raise SessionError(f"expected a KernelGraph, got {type(self.kernel).__name__}", "kernel")
            try:
                self.kernel.validate(self.feature_map.feature_names)
            except KernelGraphError as err:
                raise SessionError(_strip_path(str(err), "kernel"), _error_path(str(err), "kernel")) from None

    @cached_property
    def feature_map(self) -> FeatureMap:
        """The transform chain compiled for the search space."""
        return self.transforms.compile(self.search_space)

    def with_trials(self, trials: tuple[Trial, ...]) -> Session:
        return replace(self, trials=tuple(trials))

    def summary(self) -> str:
        """One line: name, parameters, features, objective, trials."""
        space = self.search_space
        n_cond = sum(1 for p in space.parameters if p.conditions)
        done = sum(1 for t in self.trials if t.status == "completed")
        failed = sum(1 for t in self.trials if t.status == "failed")
        obj = self.objective
        what = obj.name or obj.target or obj.type
        return (
            f"{self.name or 'session'}: {len(space)} parameters ({n_cond} conditional), "
            f"{self.feature_map.num_features} features, {self.surrogate.type} surrogate, "
            f"{self.acquisition.type}, objective {what} ({obj.direction}), "
            f"budget {self.loop.budget}, {done} completed / {failed} failed trials"
        )


def _error_path(message: str, default: str) -> str:
    """The JSON path a kernel-graph message starts with (``kernel.children[0].nu: ...``)."""
    head = message.split(":", 1)[0]
    return head if head.startswith(default) and " " not in head else default


def _strip_path(message: str, default: str) -> str:
    head, _, rest = message.partition(":")
    return rest.strip() if head.startswith(default) and " " not in head and rest else message


# --------------------------------------------------------------------------- dict <-> Session
def session_to_dict(session: Session) -> dict[str, Any]:
    """Plain JSON-ready dict of a session."""
    kernel = session.kernel.to_dict() if session.kernel is not None else None
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": session.name,
        "description": session.description,
        "search_space": session.search_space.to_dict(),
        "transforms": session.transforms.to_list(),
        "kernel": kernel,
        "surrogate": session.surrogate.to_dict(),
        "acquisition": session.acquisition.to_dict(),
        "objective": session.objective.to_dict(),
        "loop": session.loop.to_dict(),
        "trials": [t.to_dict() for t in session.trials],
    }


def _upgrade(doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SessionError(f"expected an integer version, got {version!r}", "version")
    if version > VERSION:
        raise SessionError(
            f"session version {version} is newer than this LLA Studio understands (up to {VERSION}); "
            "upgrade LLA Studio to open it",
            "version",
        )
    if version < 1:
        raise SessionError(f"unknown session version {version}", "version")
    while version < VERSION:
        doc = MIGRATIONS[version](doc)
        version += 1
        doc["version"] = version
    return doc


def session_from_dict(d: Any) -> Session:
    """Read and validate a session document (a parsed JSON object)."""
    doc = dict(expect_object(d, "$"))
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise SessionError(f"not an LLA Studio session (expected {FORMAT!r}, got {fmt!r})", "format")
    doc = _upgrade(doc)
    check_keys(doc, _TOP_KEYS, "$")
    space = search_space_from_dict(get(doc, "search_space", "object", ""), "search_space")
    chain = transform_chain_from_dict(doc.get("transforms", []), "transforms")
    compile_chain(space, chain, "transforms")
    kernel = None
    if doc.get("kernel") is not None:
        try:
            kernel = KernelGraph.from_dict(doc["kernel"], "kernel")
        except KernelGraphError as err:
            raise SessionError(_strip_path(str(err), "kernel"), _error_path(str(err), "kernel")) from None
    trials_raw = expect_list(doc.get("trials", []), "trials")
    trials = []
    for i, t in enumerate(trials_raw):
        trial = trial_from_dict(t, f"trials[{i}]")
        try:
            config = space.validate(trial.config)
        except SearchSpaceError as err:
            raise SessionError(str(err), f"trials[{i}].config") from None
        trials.append(replace(trial, config=config))
    surrogate = surrogate_from_dict(doc.get("surrogate", {}), "surrogate")
    if surrogate.type == "lla":
        from lla_studio.core.surrogates.lla_fit import lla_options

        lla_options(surrogate.options, "surrogate")
    return Session(
        search_space=space,
        transforms=chain,
        kernel=kernel,
        surrogate=surrogate,
        acquisition=acquisition_from_dict(doc.get("acquisition", {}), "acquisition"),
        objective=objective_from_dict(doc.get("objective", {}), "objective"),
        loop=loop_from_dict(doc.get("loop", {}), "loop"),
        trials=tuple(trials),
        name=get(doc, "name", "str", "", ""),
        description=get(doc, "description", "str", "", ""),
    )


# --------------------------------------------------------------------------- text and files
def _reject_constant(name: str) -> float:
    raise SessionError(f"{name} is not valid JSON; use null or a finite number")


def loads_session(text: str) -> Session:
    """Parse a session from JSON text."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise SessionError(f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    return session_from_dict(doc)


def dumps_session(session: Session) -> str:
    """JSON text of a session (pretty, stable key order, no NaN)."""
    try:
        return json.dumps(session_to_dict(session), indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise SessionError(f"session cannot be written as JSON: {err}") from None


def load_session(path: str | os.PathLike[str]) -> Session:
    """Read a session file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SessionError(f"no such file: {p}") from None
    except UnicodeDecodeError:
        raise SessionError(f"{p} is not a UTF-8 text file") from None
    except OSError as err:
        raise SessionError(f"cannot read {p}: {err.strerror}") from None
    return loads_session(text)


def save_session(session: Session, path: str | os.PathLike[str]) -> Path:
    """Write a session atomically: temporary file in the same folder, fsync, then ``os.replace``.

    The JSON is produced before any file is touched, so an unwritable session raises and the previous
    file stays as it was.
    """
    return write_text_atomic(path, dumps_session(session))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target
