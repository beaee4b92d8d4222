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

Optional fields of version 1, written only when they are set (so a session without them reads and
writes back unchanged): ``loop.workers`` (trials at once, default 1), ``loop.executor``
(``{"type": "dask", "address": "tcp://host:8786"}``; without an address a local cluster is
started), ``loop.retries`` (re-evaluations of a trial whose worker was lost, default 0), and per
trial ``worker``, ``started_at``, ``finished_at`` (seconds since the epoch) and ``completed_order``
(its place among the finished trials, recorded by parallel runs).

Readers check every field and raise :class:`~lla_studio.core.errors.SessionError` whose message
starts with the JSON path of the culprit (``search_space.parameters[2].low: expected a finite number``).
Nothing else escapes the reader, whatever the input (``tests/core/test_session_fuzz.py`` checks it):
before any section is read, the text is refused when nested deeper than
:data:`~lla_studio.core.schema.MAX_DEPTH` levels (so the JSON parser never recurses that far), and
the parsed document, or one built in Python, passes :func:`~lla_studio.core.schema.plain_json`, which
refuses numbers no float64 holds, NaN and infinities, strings UTF-8 cannot encode (lone surrogates),
non-string keys and non-JSON objects such as numpy arrays (numpy scalars are converted). A UTF-8
byte-order mark before the text is ignored.
Files are written to a temporary file beside the target and moved over it with ``os.replace``, so a
failed save leaves the previous file intact. Sessions are never pickled and hold no import paths of
our classes (a user objective's ``module:function`` is the user's data).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lla_studio.core.errors import KernelGraphError, SearchSpaceError, SessionError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.schema import (
    MAX_DEPTH,
    Unreadable,
    check_keys,
    child_path,
    expect_list,
    expect_object,
    get,
    plain_json,
)
from lla_studio.core.space import SearchSpace
from lla_studio.core.space_reader import search_space_from_dict
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
from lla_studio.core.transforms import FeaturePlan, TransformChain, check_chain, transform_chain_from_dict

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
        object.__setattr__(self, "_features", check_chain(self.search_space, self.transforms))
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
                self.kernel.validate(self.features.feature_names)
            except KernelGraphError as err:
                raise SessionError(_strip_path(str(err), "kernel"), _error_path(str(err), "kernel")) from None

    @property
    def features(self) -> FeaturePlan:
        """The features the transform chain makes of the search space: names and bounds (no torch)."""
        return self._features  # type: ignore[attr-defined,no-any-return]

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
            f"{self.features.num_features} features, {self.surrogate.type} surrogate, "
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
    """Read and validate a session document (a parsed JSON object, or the same built in Python).

    The whole document is first checked and copied by :func:`~lla_studio.core.schema.plain_json`
    (depth, numbers, strings, JSON types; numpy scalars become Python scalars), then read section
    by section.

    Raises:
        SessionError: The first problem, its message starting with the JSON path of the culprit.
    """
    doc = dict(expect_object(plain_json(d), "$"))
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise SessionError(f"not an LLA Studio session (expected {FORMAT!r}, got {fmt!r})", "format")
    doc = _upgrade(doc)
    check_keys(doc, _TOP_KEYS, "$")
    space = search_space_from_dict(get(doc, "search_space", "object", ""), "search_space")
    chain = transform_chain_from_dict(doc.get("transforms", []), "transforms")
    check_chain(space, chain, "transforms")
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
        from lla_studio.core.surrogates.specs import lla_options

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
# Literals json would turn into values no session may hold become Unreadable placeholders, which
# plain_json then refuses naming their path. 400 digits is beyond any float64 (309 digits) and far
# below the 4300 digits above which int() itself refuses a literal.
_MAX_INT_DIGITS = 400


def _constant(name: str) -> Unreadable:
    return Unreadable(f"{name} is not valid JSON; use null or a finite number")


def _integer(literal: str) -> int | Unreadable:
    digits = len(literal.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        return Unreadable(
            f"integer of {digits} digits is out of range (a number must fit a float64, at most about 1.8e308)"
        )
    return int(literal)


def _number(literal: str) -> float | Unreadable:
    x = float(literal)
    if x in (float("inf"), float("-inf")):
        shown = literal if len(literal) <= 40 else literal[:37] + "..."
        return Unreadable(f"number {shown} is out of range (a number must fit a float64, at most about 1.8e308)")
    return x


# A JSON string (escapes included; an unterminated one runs to the end of the text, in one match, so
# the scan stays linear whatever the text) or a character that opens, separates or closes containers.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{},]')


def _check_nesting(text: str) -> None:
    """Refuse text nested deeper than :data:`MAX_DEPTH` before ``json.loads`` recurses into it.

    A linear scan that skips strings and follows keys and list indices, so the error names the JSON
    path where the limit is passed. On valid JSON it agrees with the parser; on invalid JSON it may
    report the depth where the parser would report a syntax error, never the other way round.
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    stack: list[list[Any]] = []  # per open container: [is_object, key or index, expecting a key]
    for m in _TOKENS.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == '"':
            top = stack[-1] if stack else None
            if top is not None and top[0] and top[2]:
                try:
                    top[1] = json.loads(tok)
                except json.JSONDecodeError:
                    top[1] = tok[1:-1]
                top[2] = False
        elif c in "[{":
            if len(stack) >= MAX_DEPTH:
                path = ""
                for is_object, key, _ in stack:
                    path = child_path(path, "?" if key is None else key) if is_object else child_path(path, key)
                line = text.count("\n", 0, m.start()) + 1
                col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
                raise SessionError(f"nested more than {MAX_DEPTH} levels deep (line {line} column {col})", path or "$")
            stack.append([c == "{", None if c == "{" else 0, c == "{"])
        elif c in "]}":
            if stack:
                stack.pop()
        elif stack:  # ","
            if stack[-1][0]:
                stack[-1][2] = True
            else:
                stack[-1][1] += 1


def loads_session(text: str | bytes) -> Session:
    """Parse a session from JSON text (a leading byte-order mark is ignored)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise SessionError("not a UTF-8 text") from None
    if not isinstance(text, str):
        raise SessionError(f"expected JSON text, got {type(text).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    _check_nesting(text)
    try:
        doc = json.loads(text, parse_constant=_constant, parse_int=_integer, parse_float=_number)
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
    """Read a session file (UTF-8, with or without a byte-order mark)."""
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


_LOADED_AT = time.time()
"""When this module was imported, about when the process started: a temporary file that
:func:`write_text_atomic` finds last written before then belongs to no writer of this process."""


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file beside it, fsync, then ``os.replace``.

    Modes: a new file gets ``0o666`` less the umask, an existing file keeps its mode. The temporary is
    created with ``os.open(..., 0o666)``, so the kernel applies the umask (and a folder's default ACL)
    exactly as for a plain ``open``; the umask is never read, since ``os.umask`` can only be read by
    setting it, process-wide and racy with other threads.

    Stale temporaries: a writer killed mid-save leaves ``.NAME.XXXX.tmp``. After a successful save
    of ``NAME`` the temporaries of that same target last modified before this process started are
    removed: a live writer (a thread of ours, or another process that is saving right now) has a newer
    one, so it is never disturbed. A stale one left after this process started (by another process
    killed since) is removed by the next process that saves the target.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        mode: int | None = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temporary(folder, target.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if mode is not None:
                if hasattr(os, "fchmod"):
                    os.fchmod(fh.fileno(), mode)
                else:  # pragma: no cover - Windows
                    os.chmod(tmp, mode)
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
    _remove_stale_temporaries(folder, target.name)
    return target


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """Create ``folder/.NAME.XXXXXXXX.tmp`` exclusively with mode ``0o666`` (the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {name!r} in {str(folder)!r}")  # pragma: no cover


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Remove ``folder/.NAME.*.tmp`` (``*`` without dots) last modified before this process started."""
    import re

    pattern = re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < _LOADED_AT:
                os.unlink(entry.path)
        except OSError:  # gone already, or not ours to remove: the save itself succeeded
            pass
