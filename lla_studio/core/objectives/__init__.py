"""Objective functions: benchmarks, user callables, manual entry.

:func:`make_objective` turns a session's :class:`~lla_studio.core.specs.ObjectiveSpec` into an
:class:`Objective`. Evaluating one either returns a finite float or raises
:class:`~lla_studio.core.errors.ObjectiveError` with the reason; the study marks that trial failed
and goes on. A failure is any of: the function raised an ``Exception``; it called ``sys.exit``; it
timed out; its child process (objectives with a ``timeout_s`` run in one) died; or it returned
something other than one finite number. Refused results: ``None``, NaN/inf, an int too large for a
float, a ``str`` (``"1.5"`` is not parsed: a string is a bug in the objective, not a measurement), a
``bool`` (a comparison returned by mistake; ``True`` would silently count as 1.0) and arrays of more
than one value or of a non-numeric dtype. Accepted: Python and numpy ints and floats, and one-element
arrays or tensors of them.

``KeyboardInterrupt`` is *not* a failed trial: it propagates, as a Ctrl-C does (in-process, a Ctrl-C
arrives as a ``KeyboardInterrupt`` inside the objective, where a run spends its time; the two cannot
be told apart, and a Ctrl-C must stop the run). ``lla-studio run`` then saves the session with that
trial still proposed, so continuing the run evaluates it again. A child process ignores SIGINT from
the terminal; the parent stops it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing as mp
import numbers
import signal
import threading
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from lla_studio.core.objectives.pool import CandidatePool
from lla_studio.core.objectives.pool_based import POOL_BENCHMARKS, is_pool_based
from lla_studio.core.specs import ObjectiveSpec

__all__ = [
    "BENCHMARKS", "POOL_BENCHMARKS", "Benchmark", "CandidatePool", "Objective", "get_benchmark", "is_pool_based",
    "load_callable", "make_objective",
]


def load_callable(target: str, base_dir: str | Path | None = None) -> Callable[[dict[str, Any]], Any]:
    """Import ``package.module:function`` or ``path/to/file.py:function``.

    Args:
        target: The reference. A relative file path is looked up in ``base_dir`` (the session's
            folder) first, then in the working directory.
        base_dir: Folder of the session file, if any.

    Raises:
        ObjectiveError: naming the target and what went wrong.
    """
    if not isinstance(target, str) or ":" not in target:
        raise ObjectiveError(f"objective target {target!r}: expected 'package.module:function' or 'file.py:function'")
    where, _, name = target.rpartition(":")
    if not where or not name.isidentifier():
        raise ObjectiveError(f"objective target {target!r}: expected 'package.module:function' or 'file.py:function'")
    if where.endswith(".py"):
        candidates = [Path(base_dir) / where] if base_dir is not None else []
        candidates.append(Path(where))
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise ObjectiveError(f"objective target {target!r}: no such file {where!r}")
        mod_name = f"_lla_objective_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the user's module failed to import: say how
            raise ObjectiveError(f"objective target {target!r}: importing {where} raised {type(err).__name__}: {err}") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as err:
            raise ObjectiveError(f"objective target {target!r}: cannot import module {where!r}: {type(err).__name__}: {err}") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise ObjectiveError(f"objective target {target!r}: module {where!r} has no attribute {name!r}")
    if not callable(fn):
        raise ObjectiveError(f"objective target {target!r}: {name!r} is not callable")
    return fn


def _as_value(result: Any) -> float:
    """The objective's result as a finite float, else :class:`ObjectiveError` saying what it was."""
    import numpy as np

    if result is None:
        raise ObjectiveError("objective returned None, expected a number (a missing return?)")
    if isinstance(result, (bool, np.bool_)):
        raise ObjectiveError(f"objective returned a bool, expected a number: {bool(result)}")
    if isinstance(result, (str, bytes)):
        raise ObjectiveError(f"objective returned a {type(result).__name__}, expected a number: {_short(result)}")
    if isinstance(result, numbers.Real):
        try:
            value = float(result)
        except OverflowError:
            digits = len(str(abs(int(result)))) if isinstance(result, numbers.Integral) else None
            what = f"an int too large for a float ({digits} digits)" if digits else f"a {type(result).__name__} too large for a float"
            raise ObjectiveError(f"objective returned {what}") from None
    else:
        detach = getattr(result, "detach", None)  # a torch tensor (that may require grad)
        if callable(detach):
            try:
                result = detach().cpu()
            except Exception:
                pass
        try:
            arr = np.asarray(result)
        except Exception:  # an object numpy cannot read: its own float() may still work
            arr = None
        if arr is None or arr.dtype == object:
            if arr is not None and arr.size == 1 and arr.ndim > 0:
                return _as_value(arr.reshape(-1)[0])
            try:
                value = float(result)  # e.g. a Decimal
            except Exception:
                raise ObjectiveError(f"objective returned a {type(result).__name__}, expected a number") from None
        else:
            if arr.size != 1:
                raise ObjectiveError(f"objective returned {arr.size} values; expected one number")
            kind = {"b": "bool", "U": "str", "S": "bytes", "c": "complex number", "M": "datetime", "m": "timedelta"}
            if arr.dtype.kind not in "iuf":
                name = kind.get(arr.dtype.kind, str(arr.dtype))
                what = f"an array of {name}" if arr.ndim else f"a {type(result).__name__}"
                raise ObjectiveError(f"objective returned {what}, expected a number")
            value = float(arr.reshape(()))
    if not math.isfinite(value):
        raise ObjectiveError(f"objective returned {value}; expected a finite number")
    return value


def _split_result(result: Any) -> tuple[Any, dict[str, float]]:
    """``(value part, metrics)`` of a result: an object with ``value`` and ``metrics`` attributes
    (e.g. :class:`~lla_studio.core.objectives.cnn_digits.CNNDigitsResult`) or a mapping
    ``{"value": ..., "metrics": {name: number}}``; anything else is the value itself."""
    if isinstance(result, Mapping):
        if "value" not in result:
            raise ObjectiveError(f"objective returned a mapping without 'value' (keys: {_short(sorted(map(str, result)))})")
        unknown = sorted(set(map(str, result)) - {"value", "metrics"})
        if unknown:
            raise ObjectiveError(f"objective returned unknown key(s) {unknown} beside 'value' (allowed: metrics)")
        value, metrics = result["value"], result.get("metrics") or {}
    elif hasattr(result, "value") and hasattr(result, "metrics"):
        value, metrics = result.value, result.metrics
    else:
        return result, {}
    if not isinstance(metrics, Mapping):
        raise ObjectiveError(f"objective returned metrics as a {type(metrics).__name__}, expected {{name: number}}")
    out: dict[str, float] = {}
    for name, v in metrics.items():
        try:
            out[str(name)] = _as_value(v)
        except ObjectiveError as err:
            raise ObjectiveError(f"metric {name!r}: {err}") from None
    return value, out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exit_message(err: SystemExit) -> str:
    return f"objective called sys.exit({'' if err.code is None else repr(err.code)})"


def _raised_message(err: BaseException) -> str:
    """``objective raised TYPE: MESSAGE (file.py:LINE)``, the line being the innermost frame."""
    tb = traceback.extract_tb(err.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"objective raised {type(err).__name__}: {err}{where}"


def _child(target: str, base_dir: str | None, config: dict[str, Any], conn: Any) -> None:  # pragma: no cover - subprocess
    """Body of the objective's child process: one ``(kind, payload)`` message back to the parent.

    Kinds: ``ok`` (the value as a float, checked here by :func:`_as_value` like an in-process result,
    so no user type is ever unpickled by the parent), ``error`` (the message of an
    :class:`ObjectiveError`), ``interrupted`` (the objective raised KeyboardInterrupt).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops this process
    try:
        fn = load_callable(target, base_dir)
        message: tuple[str, Any] = ("ok", _as_value(fn(dict(config))))
    except ObjectiveError as err:
        message = ("error", str(err))
    except SystemExit as err:
        message = ("error", _exit_message(err))
    except KeyboardInterrupt:
        message = ("interrupted", None)
    except BaseException as err:
        message = ("error", _raised_message(err))
    try:
        conn.send(message)
    finally:
        conn.close()




class Objective:
    """A callable objective made from a spec.

    Args:
        spec: The session's objective spec.
        base_dir: Folder of the session file (for relative ``file.py:function`` targets).

    Attributes:
        benchmark: The closed-form benchmark (``forrester``, ``branin``, ...), else ``None``.
        problem: The digit image search problem (benchmark ``digits``), else ``None``.
        pool: Candidates a pool-based study chooses from (``digits``: the 1 797 images), else ``None``.
        from_callable: Made by :meth:`from_function` (a Python callable, which cannot be rebuilt from
            the spec on a Dask worker).
    """

    def __init__(self, spec: ObjectiveSpec, base_dir: str | Path | None = None) -> None:
        self.spec = spec
        self.base_dir = None if base_dir is None else str(base_dir)
        self.benchmark: Benchmark | None = None
        self.pool: CandidatePool | None = None
        self.problem: Any = None
        self._fn: Callable[[dict[str, Any]], Any] | None = None
        self.from_callable = False
        if spec.type == "benchmark" and spec.name == "cnn-digits":
            from lla_studio.core.objectives.cnn_digits import CNNDigits

            self.problem = CNNDigits.from_options(spec.options)
            self._fn = self.problem
        elif is_pool_based(spec):
            from lla_studio.core.objectives.digits import DigitsSearch

            self.problem = DigitsSearch.from_options(spec.options)
            self.pool = self.problem.pool  # a pool-based study chooses among these images
            self._fn = self.problem
        elif spec.type == "benchmark":
            self.benchmark = get_benchmark(spec.name or "", spec.options.get("dim"))
            self._fn = self.benchmark
        elif spec.type == "python":
            self._fn = load_callable(spec.target or "", self.base_dir)

    @classmethod
    def from_function(cls, fn: Callable[[dict[str, Any]], Any], spec: ObjectiveSpec | None = None) -> Objective:
        """An objective that calls ``fn(config)`` in this process (the Python API's way).

        Args:
            fn: Called with a configuration dict; returns a number, or ``(value, {metric: number})``
                as a file-based ``python`` objective does (NaN, raising and ``sys.exit`` fail the
                trial with a message).
            spec: The session's objective spec, for its direction and ``noise_std`` (default:
                minimize). Its type becomes ``python`` with the function's name as the target;
                a ``timeout_s`` is refused (a time-out runs the target in a child process, which
                a function defined in a notebook cannot be sent to).
        """
        if not callable(fn):
            raise ObjectiveError(f"the objective must be callable, got {type(fn).__name__}")
        base = spec if spec is not None else ObjectiveSpec()
        if base.timeout_s is not None:
            raise ObjectiveError("timeout_s needs an objective given as 'module:function' (it runs in a child process)")
        name = f"{getattr(fn, '__module__', None) or '__main__'}:{getattr(fn, '__qualname__', type(fn).__name__)}"
        own = ObjectiveSpec(type="python", target=name, direction=base.direction, options=dict(base.options))
        objective = cls(ObjectiveSpec(type="manual", direction=base.direction))
        objective.spec = own
        objective._fn = fn
        objective.from_callable = True
        return objective

    @property
    def is_manual(self) -> bool:
        return self.spec.type == "manual"

    def __call__(self, config: Mapping[str, Any]) -> float:
        """Evaluate; raises :class:`ObjectiveError` for exceptions, time-outs and non-finite values."""
        return self.evaluate(config)[0]

    def evaluate(self, config: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """The value and the named extra metrics of one evaluation (see :func:`_split_result`; an
        objective with a ``timeout_s`` runs in a child process that sends back the value only)."""
        if self._fn is None:
            raise ObjectiveError("this objective is manual: values come from the user (tell)")
        if self.spec.type == "python" and self.spec.timeout_s is not None:
            return self._call_with_timeout(dict(config), self.spec.timeout_s), {}
        try:
            result = self._fn(dict(config))
        except ObjectiveError:
            raise
        except SystemExit as err:  # the user's sys.exit ends this trial, not the run
            raise ObjectiveError(_exit_message(err)) from None
        except Exception as err:
            raise ObjectiveError(_raised_message(err)) from None
        result, metrics = _split_result(result)
        value = _as_value(result)
        noise = float(self.spec.options.get("noise_std", 0.0) or 0.0)
        if noise > 0:
            import hashlib
            import json

            import numpy as np

            # noise is a function of the configuration, so reruns with the same seed agree
            key = json.dumps(dict(config), sort_keys=True, default=str).encode()
            seed = int(hashlib.sha256(key).hexdigest()[:8], 16)
            value += noise * float(np.random.default_rng(seed).standard_normal())
            if not math.isfinite(value):
                raise ObjectiveError(f"objective returned {value} after adding noise; expected a finite number")
        return value, metrics

    def _call_with_timeout(self, config: dict[str, Any], timeout: float) -> float:
        """Run the user's function in a child process that is killed after ``timeout`` seconds.

        The parent waits on the result pipe *and* the process sentinel, so a child that dies
        (``os._exit``, a crash, the OOM killer) is reported at once with its exit code or signal.
        """
        from multiprocessing.connection import wait

        ctx = mp.get_context("spawn")
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(self.spec.target, self.base_dir, config, sender), daemon=True)
        _start_ignoring_sigint(proc)
        sender.close()  # the child holds the only sending end: EOF once it is gone
        try:
            ready = wait([receiver, proc.sentinel], timeout=timeout)
            if not ready:
                raise ObjectiveError(f"objective timed out after {timeout:g} s")
            try:
                kind, payload = receiver.recv() if receiver in ready or receiver.poll() else (None, None)
            except (EOFError, OSError):  # the child died before it sent anything
                kind, payload = None, None
            if kind is None:
                proc.join(5)
                raise ObjectiveError(_death_message(proc.exitcode))
        finally:
            receiver.close()
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
            proc.join(5)
        if kind == "interrupted":
            raise KeyboardInterrupt
        if kind == "error":
            raise ObjectiveError(str(payload))
        return float(payload)


def _start_ignoring_sigint(proc: Any) -> None:
    """Start ``proc`` with SIGINT ignored from its first instruction (a disposition of SIG_IGN
    survives exec), so a Ctrl-C while the child imports does not print the child's traceback.

    The parent ignores SIGINT only for the few milliseconds of ``start`` (a Ctrl-C in that window is
    lost; press again). Off the main thread signal handlers cannot change: the child then ignores
    SIGINT from its first line of our code on.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        proc.start()  # None: a handler installed outside Python, which signal.signal could not restore
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc.start()
    finally:
        signal.signal(signal.SIGINT, previous)


def _death_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"objective process was killed by signal {name}"
    if code == 0:
        return "objective process exited with code 0 without sending a result"
    return f"objective process exited with code {code}"


def make_objective(spec: ObjectiveSpec, base_dir: str | Path | None = None) -> Objective:
    """Build the objective a session describes (imports a user function right away)."""
    return Objective(spec, base_dir)
