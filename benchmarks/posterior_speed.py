"""Posterior-lab speed: Laplace + grid, batched shear-frame grid vs a scipy expm loop, multi-start.

Run: ``python benchmarks/posterior_speed.py [--threads N] [--repeats R]``. Threads default to
``cpu_count - 1`` (what the engine sets at start); on a busy machine more threads than free cores make
tiny BLAS/OpenMP calls spin, which slows both sides by 10-100x. Prints one table; every
ratio is against a goal or a reference measured in the same run. The per-point ``scipy.linalg.expm``
reference is timed on a random subset of points and extrapolated to the full grid (the table says so).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time

import numpy as np
import scipy.linalg
import torch

from lla_studio.core.posterior import fit_laplace, fit_laplace_mixture, grid_posterior, make_model
from lla_studio.core.posterior.shear_frame import CHUNK, shear_frame_state_matrix


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


_A_TEMPLATE = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [-3.0, 1.0, 0.0, 0.0], [1.0, -1.0, 0.0, 0.0]])


def _scipy_state_matrix(c: np.ndarray) -> np.ndarray:
    A = _A_TEMPLATE.copy()
    A[2, 2], A[2, 3], A[3, 2], A[3, 3] = -(c[0] + c[1]), c[1], c[1], -c[1]
    return A


def _scipy_shear_log_density(c: np.ndarray, obs: np.ndarray, sigma: float, const: float) -> float:
    """Reference: one scipy expm per point, then 40 mat-vecs, then the Gaussian log likelihood."""
    E = scipy.linalg.expm(_scipy_state_matrix(c) * 0.5)
    s = np.array([0.0, 1.0, 0.0, 0.0])
    y = np.empty(obs.size)
    for k in range(obs.size):
        s = E @ s
        y[k] = s[0]
    return const - 0.5 * float(np.sum(((y - obs) / sigma) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="torch and BLAS threads; default cpu_count - 1, as the engine sets at start (0: leave as is)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=2000, help="points for the scipy expm loop")
    args = parser.parse_args()

    limits = contextlib.nullcontext()
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    rows: list[tuple[str, str, str, str]] = []
    with limits:
        # warm-up (imports, first autograd call)
        fit_laplace(make_model("bioassay"))

        # 1. bioassay Laplace + 400 x 400 grid
        model = make_model("bioassay")

        def bioassay_run():
            fit = fit_laplace(model)
            return grid_posterior(model, 400, components=[fit])

        t1, _ = _median_time(bioassay_run, args.repeats)
        rows.append(
            (
                "bioassay: Laplace + 400x400 grid (auto box)",
                f"{t1:.3f} s",
                "goal 0.3 s",
                f"{0.3 / t1:.1f}x under goal" if t1 < 0.3 else f"{t1 / 0.3:.1f}x over goal",
            )
        )

        # 2. shear frame 1401 x 701 grid, batched matrix_exp vs per-point scipy expm
        sf = make_model("shear-frame")
        shape = (1401, 701)
        n_points = shape[0] * shape[1]
        t2, g = _median_time(lambda: grid_posterior(sf, shape, box=sf.support), max(1, args.repeats - 1))
        a, b = np.meshgrid(g.a, g.b, indexing="xy")
        grid_c = torch.tensor(np.stack([a, b], -1).reshape(-1, 2))

        def batched_expm_only():
            with torch.no_grad():
                A = shear_frame_state_matrix(grid_c) * 0.5
                for s in range(0, n_points, CHUNK):
                    torch.linalg.matrix_exp(A[s : s + CHUNK])

        t2e, _ = _median_time(batched_expm_only, max(1, args.repeats - 1))
        rng = np.random.default_rng(0)
        subset = np.column_stack([rng.uniform(0, 1.4, args.subset), rng.uniform(0, 0.7, args.subset)])
        obs = sf.observations.numpy()
        spec = sf.spec
        const = -spec.n_obs * (math.log(spec.sigma) + 0.5 * math.log(2 * math.pi)) - math.log(1.4 * 0.7)
        t0 = time.perf_counter()
        ref = np.array([_scipy_shear_log_density(c, obs, spec.sigma, const) for c in subset])
        t_loop = time.perf_counter() - t0
        mats = [_scipy_state_matrix(c) * 0.5 for c in subset]
        t0 = time.perf_counter()
        for M in mats:
            scipy.linalg.expm(M)
        t_expm = time.perf_counter() - t0
        with torch.no_grad():
            ours = sf.log_density(torch.tensor(subset)).numpy()
        err = float(np.max(np.abs(ours - ref)))
        t_ref = t_loop / args.subset * n_points
        t_ref_e = t_expm / args.subset * n_points
        note = f"{args.subset} random points timed, extrapolated to {n_points}"
        rows.append(
            (
                f"shear frame 1401x701: full log-density grid, batched (max |diff| vs scipy {err:.1e})",
                f"{t2:.2f} s",
                "",
                "",
            )
        )
        rows.append(
            (
                f"  reference: per-point scipy expm + 40 mat-vecs loop ({note})",
                f"{t_ref:.1f} s",
                "goal >= 20x",
                f"{t_ref / t2:.1f}x faster",
            )
        )
        rows.append(
            ("shear frame 1401x701: matrix exponentials only, batched torch.linalg.matrix_exp", f"{t2e:.2f} s", "", "")
        )
        rows.append(
            (
                f"  reference: scipy.linalg.expm per point ({note})",
                f"{t_ref_e:.1f} s",
                "",
                f"{t_ref_e / t2e:.1f}x faster",
            )
        )

        # 3. multi-start + Laplace mixture
        for name, starts in (("shear-frame", 16), ("bioassay", 16), ("mixture", 16)):
            m = make_model(name)
            t3, mix = _median_time(lambda m=m, starts=starts: fit_laplace_mixture(m, starts, seed=0), args.repeats)
            rows.append(
                (
                    f"{name}: {starts}-start Laplace mixture ({len(mix.components)} modes) + NNLS",
                    f"{t3:.2f} s",
                    "goal 3 s",
                    f"{3 / t3:.1f}x under goal" if t3 < 3 else f"{t3 / 3:.1f}x over goal",
                )
            )

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"posterior_speed: torch {torch.__version__}, torch threads {torch.get_num_threads()}, "
        f"BLAS threads {'limited to ' + str(args.threads) if args.threads else 'default'}, "
        f"{os.cpu_count()} CPUs, 1-min load {load:.1f}, median of {args.repeats} runs"
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'case'.ljust(w)} | {'time':>9} | {'reference':>11} | ratio")
    print("-" * (w + 40))
    for case, t, reference, ratio in rows:
        print(f"{case.ljust(w)} | {t:>9} | {reference:>11} | {ratio}")


if __name__ == "__main__":
    main()
