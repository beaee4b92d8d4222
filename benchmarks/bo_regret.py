"""Simple regret of our BO loop vs a plain BoTorch loop vs Sobol random search.

For each problem (Branin, Hartmann-6, Ackley-5) and seed, three methods get the same budget and the
same Sobol initial design:

* ``ours``    -- :class:`lla_studio.core.study.Study` on the shipped session (GP + LogEI);
* ``botorch`` -- a reference loop written here with BoTorch's defaults: ``SingleTaskGP`` on the unit
  cube with its default kernel and outcome standardization, ``fit_gpytorch_mll``, ``LogExpectedImprovement``,
  ``optimize_acqf`` with the same restarts (10) and raw samples (512);
* ``sobol``   -- the first ``budget`` points of the same scrambled Sobol sequence.

Prints the median and IQR of the final simple regret and the median seconds per model-based
iteration (fit + acquisition), with ours/BoTorch ratios. Runs are spread over worker processes with
one torch thread each, so timings of the two loops are taken under the same conditions.

    python benchmarks/bo_regret.py                       # 10 seeds, budget 50
    python benchmarks/bo_regret.py --seeds 2 --budget 15 # quick look
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBLEMS = {"branin": "branin.json", "hartmann6": "hartmann6.json", "ackley5": "ackley5.json"}


def _setup() -> None:
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)


def run_ours(problem: str, seed: int, budget: int) -> tuple[float, list[float]]:
    from lla_studio.core.session import load_session
    from lla_studio.core.specs import LoopSettings
    from lla_studio.core.study import AcquisitionOptimized, Study, TrialCompleted, TrialFailed

    session = load_session(ROOT / "resources" / "sessions" / PROBLEMS[problem])
    session = replace(session, loop=LoopSettings(budget=budget, initial_design=session.loop.initial_design, seed=seed))
    study = Study(session)
    per_iter: list[float] = []
    t0 = time.perf_counter()
    for event in study.run():
        # wall time from the last evaluation to the next proposal: fit + acquisition + overhead
        if isinstance(event, AcquisitionOptimized):
            per_iter.append(time.perf_counter() - t0)
        elif isinstance(event, (TrialCompleted, TrialFailed)):
            t0 = time.perf_counter()
    bench = study.objective.benchmark
    assert bench is not None
    return bench.regret(study.best_value()), per_iter


def _initial_design(problem: str, seed: int):
    from lla_studio.core.session import load_session

    session = load_session(ROOT / "resources" / "sessions" / PROBLEMS[problem])
    return session, session.search_space


def run_botorch(problem: str, seed: int, budget: int) -> tuple[float, list[float]]:
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from lla_studio.core.objectives import make_objective

    session, space = _initial_design(problem, seed)
    objective = make_objective(session.objective)
    bench = objective.benchmark
    assert bench is not None
    n_init = session.loop.initial_design
    U = torch.as_tensor(space.sample_encoded(n_init, seed=seed), dtype=torch.float64)
    lo = torch.tensor([b[0] for b in bench.bounds], dtype=torch.float64)
    hi = torch.tensor([b[1] for b in bench.bounds], dtype=torch.float64)

    def f(u: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(bench.evaluate((lo + u * (hi - lo)).numpy()), dtype=torch.float64)

    Y = -f(U).unsqueeze(-1)  # maximize the negative
    bounds = torch.stack([torch.zeros(bench.dim), torch.ones(bench.dim)]).to(torch.float64)
    per_iter: list[float] = []
    torch.manual_seed(seed)
    while U.shape[0] < budget:
        t0 = time.perf_counter()
        model = SingleTaskGP(U, Y)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acq = LogExpectedImprovement(model, best_f=Y.max())
        x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
        per_iter.append(time.perf_counter() - t0)
        U = torch.cat([U, x.detach()])
        Y = torch.cat([Y, -f(x.detach()).unsqueeze(-1)])
    return bench.regret(float(-Y.max())), per_iter


def run_sobol(problem: str, seed: int, budget: int) -> tuple[float, list[float]]:
    from lla_studio.core.objectives import make_objective

    session, space = _initial_design(problem, seed)
    objective = make_objective(session.objective)
    bench = objective.benchmark
    assert bench is not None
    values = [objective(c) for c in space.sample(budget, seed=seed)]
    return bench.regret(min(values)), []


METHODS = {"ours": run_ours, "botorch": run_botorch, "sobol": run_sobol}


def _task(args: tuple[str, str, int, int]) -> tuple[str, str, int, float, float]:
    _setup()
    problem, method, seed, budget = args
    regret, per_iter = METHODS[method](problem, seed, budget)
    return problem, method, seed, regret, statistics.median(per_iter) if per_iter else float("nan")


def _quantiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    args = parser.parse_args()

    tasks = [(p, m, s, args.budget) for s in range(args.seeds) for p in args.problems for m in METHODS]
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.workers) as pool:
        results = pool.map(_task, tasks, chunksize=1)
    wall = time.perf_counter() - start

    print(f"# BO regret benchmark: budget {args.budget}, {args.seeds} seeds, {args.workers} workers x 1 thread, "
          f"{os.cpu_count()} CPUs, wall {wall:.0f} s")
    header = f"{'problem':<10} {'method':<8} {'regret median':>14} {'IQR':>23} {'s/iter':>8} {'regret ratio':>13} {'time ratio':>11}"
    print(header)
    print("-" * len(header))
    for p in args.problems:
        stats = {}
        for m in METHODS:
            rows = [r for r in results if r[0] == p and r[1] == m]
            q1, med, q3 = _quantiles([r[3] for r in rows])
            t = statistics.median([r[4] for r in rows]) if m != "sobol" else float("nan")
            stats[m] = (q1, med, q3, t)
        for m in METHODS:
            q1, med, q3, t = stats[m]
            rr = med / stats["botorch"][1] if stats["botorch"][1] > 0 else float("nan")
            tr = t / stats["botorch"][3] if m != "sobol" else float("nan")
            print(f"{p:<10} {m:<8} {med:>14.4g} {f'[{q1:.4g}, {q3:.4g}]':>23} {t:>8.3f} {rr:>13.2f} {tr:>11.2f}")
    print("ratios are ours/BoTorch (regret: lower is better; time per model-based iteration: fit + acquisition)")


if __name__ == "__main__":
    main()
