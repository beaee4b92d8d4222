"""Benchmark functions with their bounds and known optima (all minimized).

Closed forms from Forrester et al. (2008), Dixon & Szegő (1978) and Ackley (1987), as tabulated by
Surjanovic & Bingham's Virtual Library of Simulation Experiments. They are evaluated in numpy on
configurations (dicts), so the study loop can call them like any user objective; tests check them
against :mod:`botorch.test_functions`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from lla_studio.core.errors import BenchmarkOptionError, ObjectiveError
from lla_studio.core.schema import brief
from lla_studio.core.space import RealParameter, SearchSpace

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_OPTIONS",
    "MAX_BENCHMARK_DIM",
    "OWN_OPTIONS",
    "Benchmark",
    "BenchmarkOptionError",
    "benchmark_names",
    "check_benchmark_options",
    "check_noise_std",
    "get_benchmark",
]


def forrester(x: np.ndarray) -> np.ndarray:
    """``(6x - 2)^2 sin(12x - 4)`` on ``[0, 1]``; ``x: n x 1``."""
    x = x[..., 0]
    return (6 * x - 2) ** 2 * np.sin(12 * x - 4)


def branin(x: np.ndarray) -> np.ndarray:
    """Branin-Hoo on ``[-5, 10] x [0, 15]``; ``x: n x 2``."""
    x1, x2 = x[..., 0], x[..., 1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def ackley(x: np.ndarray, a: float = 20.0, b: float = 0.2, c: float = 2 * math.pi) -> np.ndarray:
    """Ackley on ``[-32.768, 32.768]^d``; ``x: n x d``."""
    d = x.shape[-1]
    return (
        -a * np.exp(-b * np.sqrt(np.sum(x**2, axis=-1) / d))
        - np.exp(np.sum(np.cos(c * x), axis=-1) / d)
        + a
        + math.e
    )


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])


def hartmann6(x: np.ndarray) -> np.ndarray:
    """Six-dimensional Hartmann function on ``[0, 1]^6``; ``x: n x 6``."""
    inner = np.sum(_H6_A * (x[..., None, :] - _H6_P) ** 2, axis=-1)
    return -np.sum(_H6_ALPHA * np.exp(-inner), axis=-1)


@dataclass(frozen=True)
class Benchmark:
    """A test function with its box and known optimum.

    Args:
        name: Registry name.
        function: Vectorized ``n x d -> n`` numpy function.
        bounds: ``(low, high)`` per dimension.
        optimum: Known global minimum value.
        optimizers: Known minimizers.
    """

    name: str
    function: Callable[[np.ndarray], np.ndarray]
    bounds: tuple[tuple[float, float], ...]
    optimum: float
    optimizers: tuple[tuple[float, ...], ...]

    @property
    def dim(self) -> int:
        return len(self.bounds)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(f"x{i + 1}" for i in range(self.dim))

    def search_space(self) -> SearchSpace:
        """Real parameters ``x1..xd`` over the benchmark's box."""
        return SearchSpace([RealParameter(n, lo, hi) for n, (lo, hi) in zip(self.parameter_names, self.bounds)])

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """Values at ``n x d`` points."""
        return self.function(np.asarray(X, dtype=np.float64).reshape(-1, self.dim))

    def __call__(self, config: Mapping[str, Any]) -> float:
        """Value at a configuration ``{"x1": ..., ..., "xd": ...}``."""
        try:
            x = np.array([[float(config[n]) for n in self.parameter_names]])
        except KeyError as err:
            raise ObjectiveError(f"benchmark {self.name!r} needs parameters {list(self.parameter_names)}, missing {err}") from None
        return float(self.function(x)[0])

    def regret(self, value: float) -> float:
        return float(value) - self.optimum


def _branin() -> Benchmark:
    return Benchmark(
        "branin", branin, ((-5.0, 10.0), (0.0, 15.0)), 0.39788735772973816,
        ((-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)),
    )


def get_benchmark(name: str, dim: int | None = None) -> Benchmark:
    """Look a benchmark up by name.

    Args:
        name: ``forrester``, ``branin``, ``ackley`` (any ``dim``, default 5) or ``hartmann6``.
        dim: Dimension, for ``ackley`` only.

    Raises:
        ObjectiveError: unknown name or a dimension the function does not have.
    """
    if name == "ackley":
        d = 5 if dim is None else int(dim)
        if d < 1:
            raise ObjectiveError(f"benchmark 'ackley': dim must be >= 1, got {d}")
        return Benchmark("ackley", ackley, ((-32.768, 32.768),) * d, 0.0, ((0.0,) * d,))
    if dim is not None and name in BENCHMARKS and dim != BENCHMARKS[name]().dim:
        raise ObjectiveError(f"benchmark {name!r} is {BENCHMARKS[name]().dim}-dimensional, got dim={dim}")
    if name not in BENCHMARKS:
        raise ObjectiveError(f"unknown benchmark {name!r} (known: {', '.join(sorted(BENCHMARKS))})")
    return BENCHMARKS[name]()


BENCHMARKS: dict[str, Callable[[], Benchmark]] = {
    "forrester": lambda: Benchmark("forrester", forrester, ((0.0, 1.0),), -6.020740055767083, ((0.7572487144081974,),)),
    "branin": _branin,
    "ackley": lambda: get_benchmark("ackley", 5),
    "hartmann6": lambda: Benchmark(
        "hartmann6", hartmann6, ((0.0, 1.0),) * 6, -3.322368011391339,
        ((0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054),),
    ),
}


def _digits_options(options: Mapping[str, Any]) -> Any:
    from lla_studio.core.objectives.digits import digits_options  # sklearn-backed: imported on use

    return digits_options(options)


def _cnn_digits_options(options: Mapping[str, Any]) -> Any:
    from lla_studio.core.objectives.cnn_digits_options import cnn_digits_options

    return cnn_digits_options(options)


OWN_OPTIONS: dict[str, Callable[[Mapping[str, Any]], Any]] = {"digits": _digits_options, "cnn-digits": _cnn_digits_options}
"""Benchmarks outside :data:`BENCHMARKS` (searches with their own options, such as the pool-based
``digits``), each with the function that checks its options and raises
:class:`~lla_studio.core.errors.ObjectiveError`. A new such benchmark is registered here, so that
sessions naming it are read."""

BENCHMARK_OPTIONS: dict[str, str] = {
    "dim": "the dimension: any integer >= 1 for ackley, else the benchmark's own (or leave it out)",
    "noise_std": "standard deviation of Gaussian noise added to each value (a number >= 0; null or 0: none)",
}
"""The options a closed-form benchmark takes: what :class:`~lla_studio.core.objectives.Objective`
reads (``dim`` goes to :func:`get_benchmark`, ``noise_std`` to the noise it adds)."""

MAX_BENCHMARK_DIM = 10_000
"""Largest ``dim`` of ackley (a search space of that many parameters is already beyond a GP)."""


def benchmark_names() -> Sequence[str]:
    """Every name an objective of type ``benchmark`` may use, sorted."""
    return sorted((*BENCHMARKS, *OWN_OPTIONS))


def check_noise_std(value: Any, field: str = "options.noise_std") -> None:
    """``noise_std`` must be null or a finite number >= 0 (an int beyond float64 is not finite).

    Raises:
        BenchmarkOptionError: naming ``field``.
    """
    if value is None:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        try:
            ok = math.isfinite(float(value)) and value >= 0
        except OverflowError:
            ok = False
    if not ok:
        raise BenchmarkOptionError(f"noise_std must be null or a finite number >= 0, got {brief(value)}", field)


def check_benchmark_options(name: Any, options: Mapping[str, Any]) -> None:
    """Check, when a session is read, that a benchmark objective can run: its name is known and its
    options are the ones it takes (:data:`BENCHMARK_OPTIONS`, or its own: :data:`OWN_OPTIONS`), well typed.

    Args:
        name: The objective's ``name``.
        options: The objective's ``options``.

    Raises:
        BenchmarkOptionError: naming the field (``name``, ``options``, ``options.dim``, ...).
    """
    if not isinstance(name, str) or name not in benchmark_names():
        raise BenchmarkOptionError(
            f"unknown benchmark {name!r} (known: {', '.join(benchmark_names())})", "name"
        )
    if name in OWN_OPTIONS:
        try:
            OWN_OPTIONS[name](options)
        except ObjectiveError as err:
            raise BenchmarkOptionError(str(err), "options") from None
        return
    for key in options:
        if key not in BENCHMARK_OPTIONS:
            raise BenchmarkOptionError(
                f"unknown option {key!r} of benchmark {name!r} (allowed: {', '.join(BENCHMARK_OPTIONS)})", "options"
            )
    check_noise_std(options.get("noise_std"))
    dim = options.get("dim")
    if dim is None:
        return
    # JSON has one number type: 5.0 is 5, 5.5 is not an integer
    integral = isinstance(dim, numbers.Integral) or (isinstance(dim, float) and dim.is_integer())
    if isinstance(dim, bool) or not integral:
        raise BenchmarkOptionError(f"dim must be an integer, got {brief(dim)}", "options.dim")
    d = int(dim)
    if name == "ackley":
        if d < 1:
            raise BenchmarkOptionError(f"dim must be >= 1, got {brief(d)}", "options.dim")
        if d > MAX_BENCHMARK_DIM:
            raise BenchmarkOptionError(f"dim must be at most {MAX_BENCHMARK_DIM}, got {brief(d)}", "options.dim")
        return
    own = BENCHMARKS[name]().dim
    if d != own:
        raise BenchmarkOptionError(
            f"{name} is {own}-dimensional; dim must be {own} or left out, got {brief(d)}", "options.dim"
        )

