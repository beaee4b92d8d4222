"""Digit image search: CNN-LLA vs GP-RBF vs random search over the 1 797 images of ``load_digits``.

f(image) = log p(3 | image) under a multinomial logistic regression fitted once on the data set
(:mod:`lla_studio.core.objectives.digits`), maximized over the pool. For each seed, every method starts
from the same ``--initial`` random images (the study's seeded permutation of the pool) and then spends
``--budget`` more evaluations:

* ``lla``    -- :class:`lla_studio.core.study.Study` on ``resources/sessions/digits_search_lla.json``
  (linearized Laplace of a small CNN on the 8x8 image, LogEI scored on every remaining image);
* ``gp``     -- the same loop on ``digits_search_gp.json`` (exact GP, RBF kernel over the 64 pixels);
* ``random`` -- the next ``--budget`` images of the same permutation (the study with an initial design
  as large as the whole budget), so its first ``--initial`` images are the others' initial design.

Reported per method, over seeds: how many seeds reached the top 1 % of f over the pool (the best
``ceil(0.01 * 1797) = 18`` images), the median number of evaluations until the first such image
(counting the initial images; a seed that never gets there counts as ``initial + budget + 1``, and a
median above the total budget prints as ``>N``), the median best f with its IQR, and the median
seconds per BO step (wall time from an evaluation to the next proposal: fit + scoring the pool).
Ratios are against random search measured in the same run. Seeds run in parallel worker processes
with one torch thread each.

    python benchmarks/digits_search.py                         # 10 seeds, 10 + 100 evaluations
    python benchmarks/digits_search.py --seeds 2 --budget 20   # quick look
    python benchmarks/digits_search.py --out results.json      # also write every run as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SESSIONS = {
    "lla": ROOT / "resources" / "sessions" / "digits_search_lla.json",
    "gp": ROOT / "resources" / "sessions" / "digits_search_gp.json",
    "random": ROOT / "resources" / "sessions" / "digits_search_gp.json",  # its loop only; no model is fitted
}
LABELS = {"lla": "CNN-LLA", "gp": "GP-RBF", "random": "random"}
TOP_FRACTION = 0.01


def _setup() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def run_one(method: str, seed: int, initial: int, budget: int, session_path: str) -> dict[str, Any]:
    """One study; returns the values in evaluation order, pool indices and per-step seconds."""
    import numpy as np

    from lla_studio.core.session import load_session
    from lla_studio.core.specs import LoopSettings
    from lla_studio.core.study import AcquisitionOptimized, Study, SurrogateFitted, TrialCompleted, TrialFailed

    session = load_session(session_path)
    total = initial + budget
    n_initial = total if method == "random" else initial
    session = replace(session, loop=LoopSettings(budget=total, initial_design=n_initial, batch_size=1, seed=seed))
    study = Study(session)
    assert study.pool is not None, "the digits objective has a candidate pool"
    pool_index = {row.tobytes(): i for i, row in enumerate(study.pool.columns(session.search_space.names))}
    names = session.search_space.names

    values: list[float] = []
    indices: list[int] = []
    step_seconds: list[float] = []
    fit_seconds: list[float] = []
    failures = 0
    start = t0 = time.perf_counter()
    for event in study.run():
        if isinstance(event, SurrogateFitted):
            fit_seconds.append(event.seconds)
        elif isinstance(event, AcquisitionOptimized):
            step_seconds.append(time.perf_counter() - t0)
        elif isinstance(event, TrialCompleted):
            t = event.trial
            values.append(float(t.value))  # type: ignore[arg-type]
            indices.append(pool_index[np.array([t.config[n] for n in names], dtype=np.float64).tobytes()])
            t0 = time.perf_counter()
        elif isinstance(event, TrialFailed):
            failures += 1
            t0 = time.perf_counter()
    return {
        "method": method,
        "seed": seed,
        "values": values,
        "indices": indices,
        "step_seconds": step_seconds,
        "fit_seconds": fit_seconds,
        "failures": failures,
        "seconds": time.perf_counter() - start,
    }


def _task(args: tuple[str, int, int, int, str]) -> dict[str, Any]:
    _setup()
    return run_one(*args)


def evaluations_to_reach(values: list[float], threshold: float) -> int | None:
    """1-based count of evaluations until the first value >= threshold (None: never)."""
    for i, v in enumerate(values, start=1):
        if v >= threshold:
            return i
    return None


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def summarize(runs: list[dict[str, Any]], threshold: float, total: int) -> dict[str, dict[str, Any]]:
    """Per-method statistics over seeds (``total``: evaluations per run; not reached = total + 1)."""
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        reach = [evaluations_to_reach(r["values"], threshold) for r in rows]
        counted = [float(total + 1 if n is None else n) for n in reach]
        best = [max(r["values"]) for r in rows]
        steps = [s for r in rows for s in r["step_seconds"]]
        out[method] = {
            "seeds": len(rows),
            "reached": sum(n is not None for n in reach),
            "evaluations_to_top": reach,
            "evaluations_quartiles": _quartiles(counted),
            "best": best,
            "best_quartiles": _quartiles(best),
            "seconds_per_step": statistics.median(steps) if steps else None,  # None: no model steps (random)
            "seconds_per_run": statistics.median(r["seconds"] for r in rows),
        }
    return out


def _evals_text(x: float, total: int) -> str:
    return f">{total}" if x > total else f"{x:g}"


def format_table(stats: dict[str, dict[str, Any]], total: int) -> str:
    header = (
        f"{'method':<8} {'reached':>8} {'evals to top-1%':>16} {'IQR':>14} {'best f median':>14} "
        f"{'best f IQR':>22} {'s/step':>7} {'evals/random':>13} {'-f/random':>10}"
    )
    lines = [header, "-" * len(header)]
    ref = stats.get("random")
    for method, s in stats.items():
        q1, med, q3 = s["evaluations_quartiles"]
        b1, bmed, b3 = s["best_quartiles"]
        if ref is not None:
            r_eval = med / ref["evaluations_quartiles"][1]
            rb = ref["best_quartiles"][1]
            r_best = (-bmed) / (-rb) if rb != 0 else float("nan")
        else:
            r_eval = r_best = float("nan")
        step = float("nan") if s["seconds_per_step"] is None else s["seconds_per_step"]
        lines.append(
            f"{LABELS.get(method, method):<8} {s['reached']:>4}/{s['seeds']:<3} {_evals_text(med, total):>16} "
            f"{f'[{_evals_text(q1, total)}, {_evals_text(q3, total)}]':>14} {bmed:>14.3g} "
            f"{f'[{b1:.3g}, {b3:.3g}]':>22} {step:>7.2f} "
            f"{r_eval:>13.2f} {r_best:>10.2g}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--budget", type=int, default=100, help="evaluations after the initial images (default 100)")
    parser.add_argument("--initial", type=int, default=10, help="random initial images (default 10)")
    parser.add_argument("--methods", nargs="+", default=["lla", "gp", "random"], choices=list(SESSIONS))
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one torch thread each (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="write every run and the summary to this JSON file")
    parser.add_argument("--lla-session", type=Path, default=SESSIONS["lla"], help="session for the lla method")
    parser.add_argument("--gp-session", type=Path, default=SESSIONS["gp"], help="session for the gp and random methods")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.budget < 0 or args.initial < 1 or args.workers < 1:
        parser.error("--seeds, --initial and --workers must be >= 1, --budget >= 0")

    os.environ["OMP_NUM_THREADS"] = "1"  # the workers (spawned) inherit it: sklearn/BLAS stay on one thread
    _setup()
    from lla_studio.core.objectives.digits import DigitsSearch
    from lla_studio.core.session import load_session

    paths = {"lla": args.lla_session, "gp": args.gp_session, "random": args.gp_session}
    options = {m: load_session(paths[m]).objective.options for m in args.methods}
    first = options[args.methods[0]]
    if any(dict(o) != dict(first) for o in options.values()):
        parser.error("the sessions optimize different digits objectives")
    problem = DigitsSearch.from_options(first)
    threshold = problem.top_threshold(TOP_FRACTION)
    total = args.initial + args.budget

    order = {"lla": 0, "gp": 1, "random": 2}  # slowest first, for load balance
    tasks = sorted(
        ((m, s, args.initial, args.budget, str(paths[m])) for s in range(args.seeds) for m in args.methods),
        key=lambda t: (order[t[0]], t[1]),
    )
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        runs = pool.map(_task, tasks, chunksize=1)
    wall = time.perf_counter() - start

    for seed in range(args.seeds):  # every method saw the same initial images
        starts = {tuple(r["indices"][: args.initial]) for r in runs if r["seed"] == seed}
        assert len(starts) == 1, f"seed {seed}: methods started from different images"
    stats = summarize(runs, threshold, total)

    print(
        f"# Digit image search (target {problem.target}): {args.seeds} seeds, {args.initial} initial + {args.budget} "
        f"evaluations, top-1% threshold f >= {threshold:.4g} ({math.ceil(TOP_FRACTION * len(problem.pool))} of "
        f"{len(problem.pool)} images), {args.workers} workers x 1 thread, {os.cpu_count()} CPUs, wall {wall:.0f} s"
    )
    print(format_table(stats, total))
    print(
        f"evals to top-1%: median evaluations (initial images included) until the best f reaches the threshold; "
        f"a seed that never reaches it counts as {total + 1} ('>{total}').\n"
        "s/step: median wall seconds from an evaluation to the next proposal (surrogate fit + acquisition on all "
        "remaining images).\n"
        "evals/random: ratio of median evaluations to top-1% (lower is better); -f/random: ratio of the median "
        "-log p(target) of the best image found (lower is better)."
    )
    if args.out is not None:
        doc = {
            "benchmark": "digits_search",
            "target": problem.target,
            "threshold": threshold,
            "seeds": args.seeds,
            "initial": args.initial,
            "budget": args.budget,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "wall_seconds": wall,
            "summary": stats,
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
