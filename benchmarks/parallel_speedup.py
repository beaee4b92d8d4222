"""Parallel, asynchronous evaluation on Dask against the sequential loop, measured in the same run.

Three tables; the reference of every ratio is measured in the same run:

* ``speedup`` -- wall time of ``--evals`` (24) evaluations of Branin that sleeps ``--sleep`` (2) s per
  call, with 1 worker (the sequential loop, in this process: the reference), 2 and 4 workers (a local
  cluster, started before the clock starts). Speedup = reference / wall; the goal is >= 0.85 x
  workers. ``s/proposal`` is the median of fit + acquisition seconds of the model-based proposals
  (with the running trials as pending points: Monte-Carlo acquisition with ``X_pending``); ``budget``
  is what a proposal may take for the workers never to wait, ``sleep / workers``.
* ``regret`` -- simple regret after ``--regret-evals`` (40) evaluations, asynchronous with 4 workers
  (each evaluation sleeps ``--regret-sleep`` s, so about three trials are pending at every proposal)
  vs the sequential loop, on Branin and Hartmann-6, seeds 0..4 (fixed before the run): median and
  IQR, and the median of the per-seed ratio async / sequential.
* ``cnn-digits`` -- wall time of ``--cnn-evals`` (20) evaluations of the ``cnn-digits`` benchmark
  objective (a small CNN trained on one thread per evaluation): 2 workers x 1 thread vs the
  sequential loop (1 worker, in this process, the reference).

The study's own proposals run in this process while the workers evaluate; on a machine with fewer
cores than workers + 1 they compete for the CPU (a sleeping objective does not).

    python benchmarks/parallel_speedup.py                 # everything (about 10 minutes on 2 cores)
    python benchmarks/parallel_speedup.py --parts speedup --evals 12
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = (0, 1, 2, 3, 4)
"""Seeds of the regret table, fixed before the run."""

SPEEDUP_SEED = 0
CNN_SEED = 0

OBJECTIVES = '''
import time
from lla_studio.core.objectives.benchmarks import get_benchmark

SLEEP_S = {sleep!r}
REGRET_SLEEP_S = {regret_sleep!r}
_BRANIN = get_benchmark("branin")
_HARTMANN6 = get_benchmark("hartmann6")

def branin(config):
    time.sleep(SLEEP_S)
    return _BRANIN(config)

def branin_regret(config):
    time.sleep(REGRET_SLEEP_S)
    return _BRANIN(config)

def hartmann6_regret(config):
    time.sleep(REGRET_SLEEP_S)
    return _HARTMANN6(config)
'''


def _session(name: str, budget: int, seed: int, workers: int = 1, target: str | None = None):
    """A shipped session with its loop set (and its objective replaced by a sleeping file objective)."""
    from lla_studio.core.session import session_from_dict

    doc = json.loads((ROOT / "resources" / "sessions" / f"{name}.json").read_text())
    if target is not None:
        doc["objective"] = {"type": "python", "target": target, "direction": "minimize"}
    doc["loop"] = {**doc["loop"], "budget": budget, "seed": seed, "workers": workers}
    doc["loop"]["initial_design"] = min(doc["loop"]["initial_design"], budget)
    return session_from_dict(doc)


def _run(session, base_dir: Path | None, executor=None) -> dict:
    """Run a study; its wall time, proposal times (fit + acquisition), best value and trials."""
    from lla_studio.core.study import AcquisitionOptimized, Study, SurrogateFitted

    study = Study(session, base_dir=base_dir, executor=executor)
    fit = 0.0
    proposal_seconds = []
    start = time.perf_counter()
    for event in study.run():
        if isinstance(event, SurrogateFitted):
            fit = event.seconds
        elif isinstance(event, AcquisitionOptimized):
            proposal_seconds.append(fit + event.seconds)
    wall = time.perf_counter() - start
    return {"wall": wall, "proposals": proposal_seconds, "best": study.best_value(), "study": study}


def _open(workers: int):
    from lla_studio.core.executors import open_executor

    start = time.perf_counter()
    executor = open_executor(None, workers)
    return executor, time.perf_counter() - start


def part_speedup(args, folder: Path) -> None:
    print(f"## speedup: {args.evals} evaluations of Branin sleeping {args.sleep:g} s, seed {SPEEDUP_SEED}")
    header = (f"{'workers':>7} {'wall s':>8} {'speedup':>8} {'goal':>6} {'s/proposal':>11} {'max s':>6} {'budget s':>9} "
              f"{'proposals':>10} {'startup s':>10}")
    print(header)
    print("-" * len(header))
    reference = None
    for workers in (1, 2, 4):
        session = _session("branin", args.evals, SPEEDUP_SEED, workers=workers, target="objectives.py:branin")
        if workers == 1:  # the sequential loop, in this process
            result, startup = _run(session, folder), 0.0
        else:
            executor, startup = _open(workers)
            try:
                result = _run(session, folder, executor)
            finally:
                executor.close()
        reference = result["wall"] if reference is None else reference
        speedup = reference / result["wall"]
        med = statistics.median(result["proposals"]) if result["proposals"] else float("nan")
        top = max(result["proposals"], default=float("nan"))
        note = f"  ({os.cpu_count()} CPUs: more workers than cores)" if workers > (os.cpu_count() or 1) else ""
        print(f"{workers:>7} {result['wall']:>8.1f} {speedup:>8.2f} {0.85 * workers:>6.2f} {med:>11.3f} {top:>6.2f} "
              f"{args.sleep / workers:>9.2f} {len(result['proposals']):>10} {startup:>10.1f}{note}")
    print("speedup = wall(1 worker, sequential loop) / wall; goal = 0.85 x workers; s/proposal: median fit + "
          "acquisition seconds of the model-based proposals (max: the slowest); budget = sleep / workers")
    print()


def part_regret(args, folder: Path) -> None:
    problems = {"branin": "objectives.py:branin_regret", "hartmann6": "objectives.py:hartmann6_regret"}
    print(f"## regret after {args.regret_evals} evaluations, seeds {list(SEEDS)}: asynchronous (4 workers, "
          f"evaluations sleep {args.regret_sleep:g} s) vs sequential")
    header = f"{'problem':<10} {'loop':<12} {'regret median':>14} {'IQR':>24} {'ratio median':>13} {'s/proposal':>11}"
    print(header)
    print("-" * len(header))
    executor, _ = _open(4)
    try:
        for problem, target in problems.items():
            rows = {}
            for loop in ("sequential", "async x4"):
                regrets, times = [], []
                for seed in SEEDS:
                    if loop == "sequential":
                        session = _session(problem, args.regret_evals, seed)
                        result = _run(session, None)
                    else:
                        session = _session(problem, args.regret_evals, seed, workers=4, target=target)
                        result = _run(session, folder, executor)
                    bench = _benchmark(problem)
                    regrets.append(bench.regret(result["best"]))
                    times.extend(result["proposals"])
                rows[loop] = (regrets, statistics.median(times))
            for loop, (regrets, t) in rows.items():
                q1, med, q3 = _quantiles(regrets)
                ratios = [a / s if s > 0 else float("nan") for a, s in zip(regrets, rows["sequential"][0])]
                ratio = statistics.median(ratios)
                print(f"{problem:<10} {loop:<12} {med:>14.4g} {f'[{q1:.4g}, {q3:.4g}]':>24} {ratio:>13.2f} {t:>11.3f}")
    finally:
        executor.close()
    print("ratio = per-seed regret async / sequential (median over seeds; lower is better)")
    print()


def part_cnn(args) -> None:
    print(f"## cnn-digits: {args.cnn_evals} evaluations (the hands-on session's GP + LogEI), seed {CNN_SEED}")
    header = f"{'workers':>7} {'wall s':>8} {'speedup':>8} {'s/eval':>8} {'best':>10} {'startup s':>10}"
    print(header)
    print("-" * len(header))
    reference = None
    for workers in (1, 2):
        session = _session("cnn_digits_hands_on", args.cnn_evals, CNN_SEED, workers=workers)
        if workers == 1:
            result, startup = _run(session, None), 0.0
        else:
            executor, startup = _open(workers)
            try:
                result = _run(session, None, executor)
            finally:
                executor.close()
        reference = result["wall"] if reference is None else reference
        per_eval = statistics.median(t.seconds for t in result["study"].trials if t.seconds is not None)
        print(f"{workers:>7} {result['wall']:>8.1f} {reference / result['wall']:>8.2f} {per_eval:>8.2f} "
              f"{result['best']:>10.4g} {startup:>10.1f}")
    print("1 worker = the sequential loop in this process; an evaluation trains on one torch thread either way")
    print()


def _benchmark(name: str):
    from lla_studio.core.objectives.benchmarks import get_benchmark

    return get_benchmark(name)


def _quantiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["speedup", "regret", "cnn"], choices=["speedup", "regret", "cnn"])
    parser.add_argument("--evals", type=int, default=24)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--regret-evals", type=int, default=40)
    parser.add_argument("--regret-sleep", type=float, default=1.0)
    parser.add_argument("--cnn-evals", type=int, default=20)
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script in laplace-torch's imports
    import torch

    from lla_studio.core.process import keep_freed_memory

    keep_freed_memory()  # as `lla-studio run` does (the workers do it themselves)
    start = time.perf_counter()
    print(f"# parallel evaluation benchmark: {os.cpu_count()} CPUs, torch {torch.__version__}")
    print()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "objectives.py").write_text(OBJECTIVES.format(sleep=args.sleep, regret_sleep=args.regret_sleep))
        if "speedup" in args.parts:
            part_speedup(args, folder)
        if "regret" in args.parts:
            part_regret(args, folder)
        if "cnn" in args.parts:
            part_cnn(args)
    print(f"# wall {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
