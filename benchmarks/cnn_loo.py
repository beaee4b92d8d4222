"""Leave-one-out on the 120 real CNN runs: does the hands-on kernel predict held-out runs better?

The hands-on BO write-up's experiment: 120 semi-random (Sobol) training runs of the 19-parameter CNN
space (``resources/sessions/cnn_digits_sobol120.json``, made by ``examples/make_cnn_dataset.py``;
value: log validation cross-entropy), a GP per kernel, leave-one-out predictions of every run from
the others. Models, all fixed before the first run (none added or dropped after seeing numbers):

* ``hands-on``          -- the shipped kernel of ``cnn_digits_hands_on.json``: architecture group and
  training group, each an additive sum of 1-D Matern-5/2 leaves, plus their product, weighted;
* ``hands-on, joint training`` -- the write-up's other stated belief, "momentum and learning rate are
  intertwined": the architecture group stays additive, the training group becomes one Matern-5/2
  ARD over its 16 features (all their interactions), plus the architecture x training product;
  same priors;
* ``hands-on, BoTorch priors`` -- the shipped structure with BoTorch's dimension-scaled lognormal
  lengthscale prior on every leaf (``lognormal(sqrt 2 + log(d) / 2, sqrt 3)``, d = 1 for a 1-D leaf:
  median lengthscale 4.1 instead of the gamma(3, 6)'s 0.45) -- what the priors alone change;
* ``default``           -- Matern-5/2 ARD over the same 21 hands-on features (``cnn_digits_default.json``:
  BoTorch's dimension-scaled lognormal lengthscale prior);
* ``default, raw``      -- the one-size-fits-all baseline: no feature transforms, Matern-5/2 ARD over
  the 19 encoded parameters (log-scaled ones in log coordinates, as the search space encodes them);
* ``LLA (MLP)``         -- the default linearized Laplace surrogate (tanh MLP) on the hands-on features.

Scores: mean log predictive density (MLPD, higher is better), mean predictive density (the
write-up's headline "assigned higher probability density"; higher is better), RMSE of the LOO
means, and the fraction of runs inside the 95 % predictive interval. "closed form": hyperparameters
(and the LLA's network and prior precision) fitted once on the subset, LOO in closed form;
"refit": every fold refitted on the other n - 1 runs.

Subsets: ``--subsets`` random subsets of n = 30, 60 and 90 runs (numpy ``default_rng(0)``, drawn once,
the same for every model) and the full 120; refits on the first ``--refit-subsets`` of each size (the
LLA's only up to n = ``--lla-refit-max-n``: one LLA fit is ~3 s). Median and [min, max] over subsets.

    python benchmarks/cnn_loo.py                            # the README table (~25 min on 2 cores)
    python benchmarks/cnn_loo.py --subsets 1 --refit-subsets 0 --sizes 30   # quick look
"""

from __future__ import annotations

import argparse
import functools
import json
import math
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
DATA = ROOT / "resources" / "sessions" / "cnn_digits_sobol120.json"
ARCHITECTURE = ("width_logmean", "channels_conv1_ratio", "channels_conv2_ratio", "channels_conv3_ratio", "dense_units_ratio")
MODELS = ("hands-on", "hands-on, joint training", "hands-on, BoTorch priors", "default", "default, raw", "LLA (MLP)")
SUBSET_SEED = 0


def _setup() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def joint_training_kernel(names: tuple[str, ...]) -> Any:
    """The ``hands-on, joint training`` variant (see the module docstring)."""
    from lla_studio.core.kernels import parse_kernel

    prior = "lengthscale~gamma(3, 6)"
    training = [n for n in names if n not in ARCHITECTURE]
    arch = " + ".join(f"matern52({f}; {prior})" for f in ARCHITECTURE)
    train = f"matern52({', '.join(training)}; {prior})"
    out = "outputscale~gamma(2, 0.15)"
    graph = parse_kernel(f"scale({arch}; {out}) + scale({train}; {out}) + scale(({arch}) * {train}; {out})")
    graph.validate(names)
    return graph


def botorch_prior_kernel(graph: Any) -> Any:
    """The ``hands-on, BoTorch priors`` variant: the same graph, each leaf's lengthscale prior
    replaced by BoTorch's dimension-scaled lognormal one for that leaf's dimension."""
    from lla_studio.core.kernels import format_kernel, parse_kernel

    text = format_kernel(graph)
    loc = math.sqrt(2.0)  # + log(1) / 2: every leaf of the shipped kernel is one-dimensional
    new = text.replace("lengthscale~gamma(3, 6)", f"lengthscale~lognormal({loc!r}, {math.sqrt(3.0)!r})")
    assert new != text
    return parse_kernel(new)


@functools.lru_cache(maxsize=1)
def _data() -> Any:
    """The data set's session, read once per worker process."""
    from lla_studio.core.session import load_session

    return load_session(DATA)


def model_setup(model: str) -> tuple[Any, Any]:
    """``(session, kernel graph or None for the LLA)`` of one model on the data set."""
    from lla_studio.core.kernels import default_kernel
    from lla_studio.core.specs import SurrogateSpec
    from lla_studio.core.transforms import TransformChain

    session = _data()
    if model == "hands-on":
        return session, session.kernel
    if model == "hands-on, joint training":
        return session, joint_training_kernel(session.features.feature_names)
    if model == "hands-on, BoTorch priors":
        g = botorch_prior_kernel(session.kernel)
        g.validate(session.features.feature_names)
        return session, g
    if model == "default":
        return session, default_kernel(session.features.feature_names)
    if model == "default, raw":
        raw = replace(session, transforms=TransformChain(()), kernel=None)
        return raw, default_kernel(raw.features.feature_names)
    if model == "LLA (MLP)":
        return replace(session, surrogate=SurrogateSpec("lla", {})), None
    raise ValueError(model)


def subsets(n_total: int, sizes: list[int], count: int) -> dict[int, list[list[int]]]:
    import numpy as np

    rng = np.random.default_rng(SUBSET_SEED)
    out: dict[int, list[list[int]]] = {}
    for n in sizes:
        if n >= n_total:
            out[n] = [list(range(n_total))]
        else:
            out[n] = [sorted(rng.choice(n_total, size=n, replace=False).tolist()) for _ in range(count)]
    return out


def _scores(res: Any) -> dict[str, float]:
    import numpy as np

    z = (res.observed - res.mean) / res.sd
    density = np.exp(-0.5 * z**2) / (res.sd * math.sqrt(2 * math.pi))
    return {"mlpd": res.mlpd, "mpd": float(density.mean()), "rmse": res.rmse, "cover": res.coverage95}


def run_task(task: tuple[str, int, int, list[int], bool]) -> dict[str, Any]:
    """One model on one subset: closed-form LOO, and the refitted LOO when asked."""
    _setup()
    import torch

    from lla_studio.core.diagnostics import loo_closed_form, loo_linearized, loo_refit
    from lla_studio.core.runner import _offline_study
    from lla_studio.core.surrogates.gp import fit_gp

    model, n, k, index, refit = task
    session, graph = model_setup(model)
    study = _offline_study(session)
    U_all, Y_all = study.training_data()
    idx = torch.tensor(index)
    U, Y = U_all[idx], Y_all[idx]
    out: dict[str, Any] = {"model": model, "n": n, "subset": k}
    t = time.perf_counter()
    if graph is None:
        from lla_studio.core.surrogates.lla_fit import fit_lla_once

        def fit(u: Any, y: Any) -> Any:
            torch.manual_seed(session.loop.seed)
            return fit_lla_once(session, u, y)

        out["closed"] = _scores(loo_linearized(fit(U, Y)))
    else:
        def fit(u: Any, y: Any) -> Any:
            torch.manual_seed(session.loop.seed)
            return fit_gp(u, y, study.feature_map, graph).model

        out["closed"] = _scores(loo_closed_form(fit(U, Y)))
    out["fit_seconds"] = time.perf_counter() - t
    if refit:
        out["refit"] = _scores(loo_refit(fit, U, Y))
    return out


def _cell(xs: list[float], digits: int) -> str:
    if not xs:
        return "-"
    med = statistics.median(xs)
    if len(xs) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(xs):.{digits}f}, {max(xs):.{digits}f}]"


def summarize(results: dict[str, Any]) -> str:
    rows = results["rows"]
    sizes = sorted({r["n"] for r in rows})
    lines = [
        f"# LOO on {DATA.name}: {results['n_total']} runs; {results['subsets']} subsets of each n < {results['n_total']} "
        f"(seed {SUBSET_SEED}), refits on {results['refit_subsets']}; {results['workers']} workers x 1 thread, "
        f"{os.cpu_count()} CPUs, wall {results['wall']:.0f} s",
        "median [min, max] over subsets; MLPD and mean density: higher is better; RMSE in log-loss units",
        "",
    ]
    head = ["n", "model", "MLPD", "mean density", "RMSE", "95% cover", "refit MLPD", "refit RMSE", "refit cover", "fit s"]
    table = []
    for n in sizes:
        for m in MODELS:
            rs = [r for r in rows if r["n"] == n and r["model"] == m]
            if not rs:
                continue
            rf = [r["refit"] for r in rs if "refit" in r]
            table.append([
                str(n), m,
                _cell([r["closed"]["mlpd"] for r in rs], 3), _cell([r["closed"]["mpd"] for r in rs], 3),
                _cell([r["closed"]["rmse"] for r in rs], 3), _cell([r["closed"]["cover"] for r in rs], 2),
                _cell([x["mlpd"] for x in rf], 3), _cell([x["rmse"] for x in rf], 3), _cell([x["cover"] for x in rf], 2),
                f"{statistics.median(r['fit_seconds'] for r in rs):.2f}",
            ])
    widths = [max(len(h), *(len(r[j]) for r in table)) for j, h in enumerate(head)]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table]
    lines.append("")
    wins = []
    for n in sizes:
        per = {}
        for m in MODELS:
            per[m] = {r["subset"]: r["closed"]["mlpd"] for r in rows if r["n"] == n and r["model"] == m}
        ks = sorted(per["hands-on"])
        if "default" in per and per["default"]:
            won = sum(1 for k in ks if per["hands-on"][k] > per["default"].get(k, math.inf))
            wins.append(f"n={n}: {won}/{len(ks)}")
    lines.append("closed-form MLPD, hands-on > default on " + ", ".join(wins) + " subsets")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 60, 90, 120])
    parser.add_argument("--subsets", type=int, default=5, help="random subsets per n < 120 (default 5)")
    parser.add_argument("--refit-subsets", type=int, default=2, help="subsets per n with refitted LOO (default 2)")
    parser.add_argument("--lla-refit-max-n", type=int, default=60)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the raw results (JSON) here")
    args = parser.parse_args()

    from lla_studio.core.session import load_session

    n_total = sum(1 for t in load_session(DATA).trials if t.status == "completed")
    chosen = subsets(n_total, args.sizes, args.subsets)
    tasks = []
    for n, subs in chosen.items():
        for k, index in enumerate(subs):
            for m in args.models:
                refit = k < args.refit_subsets and (m != "LLA (MLP)" or n <= args.lla_refit_max_n)
                tasks.append((m, n, k, index, refit))
    tasks.sort(key=lambda t: -(t[1] * (3 if t[0] == "LLA (MLP)" else 1) * (t[4] + 0.02)))  # long ones first
    start = time.perf_counter()
    rows = []
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for i, r in enumerate(pool.imap_unordered(run_task, tasks)):
            rows.append(r)
            print(f"\r{i + 1}/{len(tasks)} tasks", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    results = {"rows": rows, "n_total": n_total, "subsets": args.subsets, "refit_subsets": args.refit_subsets,
               "workers": args.workers, "wall": time.perf_counter() - start}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results) + "\n")
    print(summarize(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
