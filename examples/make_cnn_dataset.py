"""The 120-run CNN data set: the hands-on CNN study's own Sobol initial design, trained for real.

A study of ``resources/sessions/cnn_digits_hands_on.json`` with ``initial_design`` = ``budget`` = 120
and the data set's seed proposes 120 Sobol configurations of the 19-parameter CNN space; this script
asks that study for them (in its order), trains each with the session's ``cnn-digits`` objective in
worker processes (one thread each: the objective sets one intra-op thread itself, so values do not
depend on the worker count), tells the study the results in proposal order and writes the session
with those trials to ``resources/sessions/cnn_digits_sobol120.json``.

Reproducible: the configurations depend only on the search space and the seed, the values only on
the configuration and the objective's seed, so rerunning this script, or running the shipped session
with its trials removed through ``lla-studio run``, gives the same configurations and values
(``train_seconds`` is a wall time and differs from run to run). ``--check K`` re-proposes the design and retrains the K quickest shipped
configurations, comparing both with the shipped file, instead of writing it.

Run: ``python examples/make_cnn_dataset.py [--workers 2] [--n 120] [--seed 100] [--out PATH]``
(about 2 minutes with two workers on a 2-core machine).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = ROOT / "resources" / "sessions"
SOURCE = SESSIONS / "cnn_digits_hands_on.json"
DEFAULT_OUT = SESSIONS / "cnn_digits_sobol120.json"
DATASET_SEED = 100  # chosen before the first run; distinct from the tuning benchmark's seeds 0..4


def dataset_session(n: int = 120, seed: int = DATASET_SEED) -> Any:
    """The hands-on session set up as the data set's study (no trials yet)."""
    from lla_studio.core.session import load_session

    base = load_session(SOURCE)
    description = (
        f"{n} Sobol configurations of the 19-parameter CNN space (the initial design of this study: "
        f"initial_design = budget = {n}, seed {seed}), each trained for real by the cnn-digits objective "
        "(examples/make_cnn_dataset.py). The data set of benchmarks/cnn_loo.py; "
        "`lla-studio cv` cross-validates kernels on it. Otherwise as cnn_digits_hands_on.json: "
        + base.description
    )
    return replace(
        base,
        name=f"CNN on digits: {n} Sobol runs (hands-on kernel)",
        description=description,
        loop=replace(base.loop, initial_design=n, budget=n, seed=seed),
        trials=(),
    )


def proposed(session: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A study of ``session`` holding its initial design as proposals, and their configurations in
    its order (as ``lla-studio run`` would propose them)."""
    from lla_studio.core.study import Study, TrialProposed

    study = Study(session)
    events = study.ask(q=session.loop.initial_design)
    return study, [dict(e.trial.config) for e in events if isinstance(e, TrialProposed)]


def _evaluate(objective_spec: Any, config: dict[str, Any]) -> tuple[float, dict[str, float], float]:
    """Worker: one training run through the study's own objective path."""
    from lla_studio.core.objectives import make_objective

    start = time.perf_counter()
    value, metrics = make_objective(objective_spec).evaluate(config)
    return value, metrics, time.perf_counter() - start


def evaluate_all(session: Any, configs: list[dict[str, Any]], workers: int) -> list[tuple[float, dict[str, float], float]]:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_evaluate, session.objective, c) for c in configs]
        results = []
        for i, f in enumerate(futures):
            results.append(f.result())
            print(f"\r{i + 1}/{len(configs)} trained", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=120, help="configurations (default 120)")
    parser.add_argument("--seed", type=int, default=DATASET_SEED, help=f"the study's seed (default {DATASET_SEED})")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="session file to write")
    parser.add_argument("--check", type=int, default=0, metavar="K",
                        help="instead of writing: re-propose the design and retrain K configurations, compare with --out")
    args = parser.parse_args()
    if args.n < 1 or args.workers < 1:
        print("error: --n and --workers must be >= 1", file=sys.stderr)
        return 2

    from lla_studio.core.session import load_session, save_session

    session = dataset_session(args.n, args.seed)
    study, configs = proposed(session)
    if args.check:
        shipped = load_session(args.out)
        done = [t for t in shipped.trials if t.status == "completed"]
        same = [dict(t.config) for t in shipped.trials] == configs
        print(f"configurations: {'identical' if same else 'DIFFERENT'} ({len(configs)} proposed, {len(shipped.trials)} shipped)")
        # the K quickest runs of the shipped file (a check that costs seconds, not minutes)
        quick = sorted(done, key=lambda t: (t.metrics.get("train_seconds", 0.0), t.id))[: min(args.check, len(done))]
        results = evaluate_all(session, [dict(t.config) for t in quick], args.workers)
        bad = [t.id for t, (v, _, _) in zip(quick, results) if v != t.value]
        ids = ", ".join(str(t.id) for t in quick)
        print(f"values of trials {ids} retrained: {'identical' if not bad else f'DIFFERENT for trials {bad}'}")
        return 0 if same and not bad else 1

    start = time.perf_counter()
    results = evaluate_all(session, configs, args.workers)
    for trial, (value, metrics, seconds) in zip(study.trials, results):
        study.tell(trial.id, value, seconds=seconds, metrics=metrics)
    save_session(study.session, args.out)
    values = sorted(v for v, _, _ in results)
    seconds = sorted(s for _, _, s in results)
    chance = sum(1 for _, m, _ in results if m.get("val_log_loss", 0) >= 2.302)
    print(
        f"wrote {args.out}: {len(results)} trials in {time.perf_counter() - start:.0f} s with {args.workers} workers; "
        f"median evaluation {seconds[len(seconds) // 2]:.2f} s (max {seconds[-1]:.1f} s); "
        f"best value {values[0]:.3f}, median {values[len(values) // 2]:.3f}; {chance} at chance level"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
