"""Objective functions: benchmarks, user callables, manual entry.

:func:`make_objective` turns a session's :class:`~lla_studio.core.specs.ObjectiveSpec` into an
:class:`Objective`. Evaluating one either returns a finite float or raises
:class:`~lla_studio.core.errors.ObjectiveError` with the reason (the function raised, timed out, or
returned NaN/inf); the study marks that trial failed and goes on.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing as mp
import numbers
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from lla_studio.core.objectives.pool import CandidatePool
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
    if isinstance(result, bool) or not isinstance(result, numbers.Real):
        try:
            import numpy as np

            arr = np.asarray(result, dtype=float)
            if arr.size != 1:
                raise ObjectiveError(f"objective returned {arr.size} values; expected one number")
            result = float(arr.reshape(()))
        except (TypeError, ValueError):
            raise ObjectiveError(f"objective returned {type(result).__name__} {result!r}; expected a number") from None
    value = float(result)
    if not math.isfinite(value):
        raise ObjectiveError(f"objective returned {value}; expected a finite number")
    return value


def _child(target: str, base_dir: str | None, config: dict[str, Any], queue: Any) -> None:  # pragma: no cover - subprocess
    try:
        fn = load_callable(target, base_dir)
        queue.put(("ok", fn(dict(config))))
    except BaseException as err:  # report everything to the parent
        queue.put(("error", f"{type(err).__name__}: {err}"))


POOL_BENCHMARKS = ("digits",)
"""Benchmarks whose study chooses among a fixed pool of candidates."""


def is_pool_based(spec: ObjectiveSpec) -> bool:
    """Whether a study of this objective chooses among a fixed candidate pool (no box to run off)."""
    return spec.type == "benchmark" and spec.name in POOL_BENCHMARKS


class Objective:
    """A callable objective made from a spec.

    Args:
        spec: The session's objective spec.
        base_dir: Folder of the session file (for relative ``file.py:function`` targets).

    Attributes:
        benchmark: The closed-form benchmark (``forrester``, ``branin``, ...), else ``None``.
        problem: The digit image search problem (benchmark ``digits``), else ``None``.
        pool: Candidates a pool-based study chooses from (``digits``: the 1 797 images), else ``None``.
    """

    def __init__(self, spec: ObjectiveSpec, base_dir: str | Path | None = None) -> None:
        self.spec = spec
        self.base_dir = None if base_dir is None else str(base_dir)
        self.benchmark: Benchmark | None = None
        self.pool: CandidatePool | None = None
        self.problem: Any = None
        self._fn: Callable[[dict[str, Any]], Any] | None = None
        if is_pool_based(spec):
            from lla_studio.core.objectives.digits import DigitsSearch

            self.problem = DigitsSearch.from_options(spec.options)
            self.pool = self.problem.pool  # a pool-based study chooses among these images
            self._fn = self.problem
        elif spec.type == "benchmark":
            self.benchmark = get_benchmark(spec.name or "", spec.options.get("dim"))
            self._fn = self.benchmark
        elif spec.type == "python":
            self._fn = load_callable(spec.target or "", self.base_dir)

    @property
    def is_manual(self) -> bool:
        return self.spec.type == "manual"

    def __call__(self, config: Mapping[str, Any]) -> float:
        """Evaluate; raises :class:`ObjectiveError` for exceptions, time-outs and non-finite values."""
        if self._fn is None:
            raise ObjectiveError("this objective is manual: values come from the user (tell)")
        if self.spec.type == "python" and self.spec.timeout_s is not None:
            return self._call_with_timeout(dict(config), self.spec.timeout_s)
        try:
            result = self._fn(dict(config))
        except ObjectiveError:
            raise
        except Exception as err:
            tb = traceback.extract_tb(sys.exc_info()[2])
            where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
            raise ObjectiveError(f"objective raised {type(err).__name__}: {err}{where}") from None
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
        return value

    def _call_with_timeout(self, config: dict[str, Any], timeout: float) -> float:
        """Run the user's function in a separate process that is killed after ``timeout`` seconds."""
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(self.spec.target, self.base_dir, config, queue), daemon=True)
        proc.start()
        try:
            status, payload = queue.get(timeout=timeout)
        except Exception:
            proc.terminate()
            proc.join(5)
            raise ObjectiveError(f"objective timed out after {timeout:g} s") from None
        finally:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        if status == "error":
            raise ObjectiveError(f"objective raised {payload}")
        return _as_value(payload)


def make_objective(spec: ObjectiveSpec, base_dir: str | Path | None = None) -> Objective:
    """Build the objective a session describes (imports a user function right away)."""
    return Objective(spec, base_dir)
