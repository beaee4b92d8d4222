"""BO for CNN hyperparameters, trained for real: hands-on GP vs default GP vs Sobol vs the manual default.

The CNN hyperparameter paper's experiment on the ``cnn-digits`` objective (the 19-parameter CNN
space, a LeNet-style CNN trained on ``load_digits``; value: log validation cross-entropy, minimized).
Per seed every method starts from the same 10 Sobol configurations (the studies' own initial design
for that loop seed), evaluated once and shared:

* ``hands-on`` -- :class:`~lla_studio.core.study.Study` on ``cnn_digits_hands_on.json`` (the hands-on
  feature space and 42-leaf kernel, GP + LogEI), 30 model-based proposals;
* ``default``  -- the same on ``cnn_digits_default.json`` (same features, default Matern-5/2 ARD);
* ``sobol``    -- random search: the next 30 points of the same scrambled Sobol sequence;
* ``manual``   -- the space's default configuration (one training run: the objective is
  deterministic), the "tuned by hand" baseline.

Prints median [IQR] over seeds of the best value after 10, 20 and 40 evaluations, the validation and
test error of each method's final incumbent (the trial with the best value), the evaluations each BO
method needs to reach random search's final best (per seed; "> 40" when it never does, counted as 41
in the median), the improvement over the manual baseline in test-error points, and median seconds
per evaluation and per BO step (fit + acquisition). Jobs run in worker processes with one torch
thread each. Seeds are 0 .. seeds-1, fixed before any run.

    python benchmarks/cnn_tuning.py                 # 5 seeds, 10 + 30 evaluations (~40 min on 2 cores)
    python benchmarks/cnn_tuning.py --seeds 1 --bo 3  # quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SESSIONS = ROOT / "resources" / "sessions"
BO_METHODS = {"hands-on": "cnn_digits_hands_on.json", "default": "cnn_digits_default.json"}
N_INITIAL = 10


def _setup() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def _session(name: str, seed: int, budget: int) -> Any:
    from lla_studio.core.session import load_session

    s = load_session(SESSIONS / name)
    return replace(s, loop=replace(s.loop, seed=seed, budget=budget, initial_design=N_INITIAL))


def _record(trial: Any, seconds: float) -> dict[str, Any]:
    return {"config": dict(trial.config), "value": trial.value, "metrics": dict(trial.metrics), "seconds": seconds}


def _evaluate_configs(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from lla_studio.core.objectives import make_objective

    objective = make_objective(_session(BO_METHODS["hands-on"], 0, N_INITIAL).objective)
    out = []
    for c in configs:
        t = time.perf_counter()
        value, metrics = objective.evaluate(c)
        out.append({"config": c, "value": value, "metrics": metrics, "seconds": time.perf_counter() - t})
    return out


def job_initial(seed: int) -> dict[str, Any]:
    """The 10 shared initial evaluations of one seed (the studies' own initial design)."""
    from lla_studio.core.study import Study, TrialProposed

    study = Study(_session(BO_METHODS["hands-on"], seed, N_INITIAL))
    configs = [dict(e.trial.config) for e in study.ask(q=N_INITIAL) if isinstance(e, TrialProposed)]
    return {"kind": "initial", "seed": seed, "runs": _evaluate_configs(configs)}


def job_sobol(seed: int, budget: int) -> dict[str, Any]:
    """Random search: Sobol points N_INITIAL .. budget-1 of the same sequence."""
    space = _session(BO_METHODS["hands-on"], seed, budget).search_space
    configs = space.sample(budget, seed=seed)[N_INITIAL:]
    return {"kind": "sobol", "seed": seed, "runs": _evaluate_configs(configs)}


def job_bo(method: str, seed: int, budget: int, initial: list[dict[str, Any]]) -> dict[str, Any]:
    """A BO study started from the shared initial evaluations."""
    from lla_studio.core.specs import Trial
    from lla_studio.core.study import AcquisitionOptimized, Study, TrialCompleted, TrialFailed

    session = _session(BO_METHODS[method], seed, budget)
    trials = tuple(
        Trial(i, r["config"], "completed", r["value"], source="initial", seconds=r["seconds"], metrics=r["metrics"])
        for i, r in enumerate(initial)
    )
    study = Study(session.with_trials(trials))
    runs, steps, failed = [], [], 0
    t0 = time.perf_counter()
    for event in study.run():
        if isinstance(event, AcquisitionOptimized):
            steps.append(time.perf_counter() - t0)
        elif isinstance(event, TrialCompleted):
            runs.append(_record(event.trial, float(event.trial.seconds or 0.0)))
            t0 = time.perf_counter()
        elif isinstance(event, TrialFailed):
            failed += 1
            t0 = time.perf_counter()
    return {"kind": method, "seed": seed, "runs": runs, "steps": steps, "failed": failed,
            "sources": [t.source for t in study.trials]}


def _run_job(spec: tuple[Any, ...]) -> dict[str, Any]:
    _setup()
    kind = spec[0]
    if kind == "initial":
        return job_initial(spec[1])
    if kind == "sobol":
        return job_sobol(spec[1], spec[2])
    if kind == "manual":
        space = _session(BO_METHODS["hands-on"], 0, N_INITIAL).search_space
        return {"kind": "manual", "seed": None, "runs": _evaluate_configs([space.default_config()])}
    return job_bo(kind, spec[1], spec[2], spec[3])


# --------------------------------------------------------------------------- statistics
def _q(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def _fmt(xs: list[float], digits: int = 3) -> str:
    lo, med, hi = _q(xs)
    return f"{med:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def summarize(results: dict[str, Any], seeds: int, budget: int) -> str:
    initial = {r["seed"]: r["runs"] for r in results["jobs"] if r["kind"] == "initial"}
    manual = next(r for r in results["jobs"] if r["kind"] == "manual")["runs"][0]
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
    extra: dict[str, dict[int, dict[str, Any]]] = {}
    for r in results["jobs"]:
        if r["kind"] in ("initial", "manual"):
            continue
        runs.setdefault(r["kind"], {})[r["seed"]] = initial[r["seed"]] + r["runs"]
        extra.setdefault(r["kind"], {})[r["seed"]] = r
    methods = [m for m in ("hands-on", "default", "sobol") if m in runs]

    def best_after(seq: list[dict[str, Any]], k: int) -> float:
        return min(x["value"] for x in seq[:k])

    def incumbent(seq: list[dict[str, Any]]) -> dict[str, Any]:
        return min(seq, key=lambda x: x["value"])

    checkpoints = [k for k in (N_INITIAL, 20, budget) if k <= budget]
    lines = [
        f"# CNN tuning on digits: {seeds} seeds, {N_INITIAL} Sobol + {budget - N_INITIAL} model-based evaluations, "
        f"{results['workers']} workers x 1 thread, {os.cpu_count()} CPUs, wall {results['wall']:.0f} s",
        "value: log validation cross-entropy (lower is better; chance level log(log 10) = 0.834); median [IQR] over seeds",
        "",
    ]
    head = ["method"] + [f"best after {k}" for k in checkpoints] + ["val err % (final)", "test err % (final)",
            "evals to Sobol's best", "test-err pts vs manual", "s / eval", "s / BO step"]
    rows = []
    for m in methods:
        per_seed = [runs[m][s] for s in sorted(runs[m])]
        cells = [m] + [_fmt([best_after(seq, k) for seq in per_seed]) for k in checkpoints]
        inc = [incumbent(seq) for seq in per_seed]
        cells.append(_fmt([100 * x["metrics"]["val_error"] for x in inc], 1))
        cells.append(_fmt([100 * x["metrics"]["test_error"] for x in inc], 1))
        if m == "sobol":
            cells.append("-")
        else:
            need = []
            for s in sorted(runs[m]):
                target = best_after(runs["sobol"][s], budget)
                k = next((i + 1 for i in range(len(runs[m][s])) if best_after(runs[m][s], i + 1) <= target), budget + 1)
                need.append(k)
            med = statistics.median(need)
            cells.append(f"{med:.0f} ({', '.join(str(k) if k <= budget else f'>{budget}' for k in need)})")
        cells.append(_fmt([100 * (manual["metrics"]["test_error"] - x["metrics"]["test_error"]) for x in inc], 1))
        evals = [x["seconds"] for seq in per_seed for x in seq]
        cells.append(f"{statistics.median(evals):.2f}")
        steps = [t for s in extra[m].values() for t in s.get("steps", [])]
        cells.append(f"{statistics.median(steps):.2f}" if steps else "-")
        rows.append(cells)
    rows.append(["manual (default config)"] + [f"{manual['value']:.3f}"] * len(checkpoints)
                + [f"{100 * manual['metrics']['val_error']:.1f}", f"{100 * manual['metrics']['test_error']:.1f}", "-", "0",
                   f"{manual['seconds']:.2f}", "-"])
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("-|-".join("-" * w for w in widths))
    for r in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    failed = {m: sum(e.get("failed", 0) for e in extra[m].values()) for m in methods}
    model = {m: sum(e.get("sources", []).count("model") for e in extra[m].values()) for m in methods}
    lines.append("")
    lines.append(f"failed evaluations: {failed}; model-based proposals: {model}; "
                 "evals to Sobol's best: the first evaluation at which the method's best <= Sobol's best after "
                 f"{budget} (per seed in brackets)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bo", type=int, default=30, help="model-based evaluations after the 10 Sobol ones")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(BO_METHODS), choices=list(BO_METHODS))
    parser.add_argument("--out", type=Path, default=None, help="write the raw results (JSON) here")
    args = parser.parse_args()
    budget = N_INITIAL + args.bo
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    jobs: list[dict[str, Any]] = []
    with ctx.Pool(args.workers) as pool:
        first = [("manual",)] + [("initial", s) for s in range(args.seeds)]
        jobs += pool.map(_run_job, first, chunksize=1)
        initial = {r["seed"]: r["runs"] for r in jobs if r["kind"] == "initial"}
        second = [(m, s, budget, initial[s]) for s in range(args.seeds) for m in args.methods]
        second += [("sobol", s, budget) for s in range(args.seeds)]
        for i, r in enumerate(pool.imap_unordered(_run_job, second)):
            jobs.append(r)
            print(f"\r{i + 1}/{len(second)} jobs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    results = {"jobs": jobs, "wall": time.perf_counter() - start, "workers": args.workers}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results) + "\n")
    print(summarize(results, args.seeds, budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
