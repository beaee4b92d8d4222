"""Speed of the exact LLA surrogate against laplace-torch and laplace-bayesopt, in one run.

Problem: Branin (``botorch.test_functions.Branin``, negated, on the unit square), a
2 -> 50 -> 50 -> 1 ReLU MLP, n training points. Columns:

* BO step: fit (training + Laplace + evidence tuning) + ``optimize_acqf(LogEI, q=1,
  num_restarts=10, raw_samples=512)``. Ours warm-starts from the model of the previous step
  (n - 1 points, the study loop's default) and, separately, from scratch. The reference is
  ``laplace_bayesopt.botorch.LaplaceBoTorch`` with its published defaults (retrain from scratch,
  1000 epochs of minibatch-10 Adam(lr=0.1, wd=1e-3) with cosine annealing, KFAC Laplace over all
  weights, 100 Adam steps of post-hoc marginal-likelihood tuning); when that package is not
  importable, a faithful re-implementation of the same procedure below is used (stated in the
  output).
* 512-point joint posterior (``512 x 512`` covariance) and the marginal variance on a
  ``100 x 100`` grid, against laplace-torch's exact options at the same MAP and hyperparameters:
  ``Laplace(..., subset_of_weights="all", hessian_structure="full")`` (weight space) and
  ``FunctionalLaplace`` (``hessian_structure="gp"`` with ``n_subset = n``, function space).
  The ratio is against the faster of the two.

Run: ``python benchmarks/lla_speed.py [--quick] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from botorch.acquisition import LogExpectedImprovement
from botorch.optim import optimize_acqf
from botorch.test_functions import Branin
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lla_studio.core.surrogates.lla import LLASettings, fit_lla  # noqa: E402
from lla_studio.core.surrogates.networks import MLPSpec  # noqa: E402

SPEC = MLPSpec((50, 50), "relu")
BOUNDS = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)


def branin_unit(X: torch.Tensor) -> torch.Tensor:
    f = Branin(negate=True)
    lo, hi = f.bounds.to(X)
    return f(lo + X * (hi - lo)).unsqueeze(-1)


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def optimize_log_ei(model, best_f: float, dtype=torch.float64):
    acqf = LogExpectedImprovement(model, best_f=best_f)
    cand, _ = optimize_acqf(
        acqf, bounds=BOUNDS.to(dtype), q=1, num_restarts=10, raw_samples=512
    )
    return cand


# ----------------------------------------------------------------------------- reference
def make_net() -> nn.Module:
    """laplace-bayesopt's README network for this problem (float32, torch's default)."""
    return nn.Sequential(
        nn.Linear(2, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 1)
    )


def laplace_botorch_class():
    try:
        from laplace_bayesopt.botorch import LaplaceBoTorch

        return LaplaceBoTorch, "laplace_bayesopt.botorch.LaplaceBoTorch (installed package)"
    except ImportError:
        return LaplaceBoTorchDefaults, (
            "re-implementation of LaplaceBoTorch defaults (laplace-bayesopt not importable)"
        )


class LaplaceBoTorchDefaults:
    """Faithful re-implementation of ``LaplaceBoTorch(get_net, X, Y)`` with default arguments.

    laplace-bayesopt 0.1.7: posthoc marglik mode, batch_size=10, n_epochs=1000, lr=0.1,
    wd=1e-3, CosineAnnealingLR(T_max=n_epochs * len(loader)), MSELoss, KFAC ("kron") Laplace
    over all weights with CurvlinopsGGN and enable_backprop=True, then 100 Adam(lr=0.1) steps
    on log prior precision and log sigma (both initialized at 1), and a joint GLM predictive.
    """

    def __new__(cls, get_net, train_X, train_Y):
        from botorch.models.model import Model
        from botorch.posteriors.gpytorch import GPyTorchPosterior
        from gpytorch.distributions import MultivariateNormal
        from laplace import Laplace
        from laplace.curvature import CurvlinopsGGN

        net = get_net()
        loader = DataLoader(TensorDataset(train_X, train_Y), batch_size=10, shuffle=True)
        opt = torch.optim.Adam(net.parameters(), lr=1e-1, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 1000 * len(loader))
        loss_fn = nn.MSELoss()
        for _ in range(1000):
            for x, y in loader:
                opt.zero_grad()
                loss_fn(net(x), y).backward()
                opt.step()
                sched.step()
        net.eval()
        la = Laplace(
            net,
            "regression",
            subset_of_weights="all",
            hessian_structure="kron",
            backend=CurvlinopsGGN,
            enable_backprop=True,
        )
        la.fit(loader)
        log_prior = torch.ones(1, requires_grad=True)
        log_sigma = torch.ones(1, requires_grad=True)
        hyper = torch.optim.Adam([log_prior, log_sigma], lr=1e-1)
        for _ in range(100):
            hyper.zero_grad()
            (-la.log_marginal_likelihood(log_prior.exp(), log_sigma.exp())).backward()
            hyper.step()

        class _Model(Model):
            num_outputs = 1

            def posterior(self, X, output_indices=None, observation_noise=False, posterior_transform=None, **kw):
                if X.dim() == 2:
                    X = X.unsqueeze(1)
                B, Q, D = X.shape
                mean, cov = la(X.reshape(B * Q, D), joint=True)
                cov = cov + la.sigma_noise**2 * torch.eye(B * Q)
                cov = torch.einsum("bqbr->bqr", cov.reshape(B, Q, B, Q))
                return GPyTorchPosterior(MultivariateNormal(mean.reshape(B, Q), cov))

        return _Model()


def batched(la, X: torch.Tensor, pred_type: str, batch: int = 512) -> torch.Tensor:
    return torch.cat([la(x, pred_type=pred_type)[1].reshape(-1) for x in X.split(batch)])


# ----------------------------------------------------------------------------- one size
def run_size(n: int, repeats: int, reference_cls) -> dict[str, float]:
    g = torch.Generator().manual_seed(n)
    X = torch.rand(n, 2, generator=g, dtype=torch.float64)
    Y = branin_unit(X)
    settings = LLASettings()
    row: dict[str, float] = {"n": n}

    # ours: warm start from the previous step's model (as the study loop does)
    previous, _ = fit_lla(X[:-1], Y[:-1], SPEC, settings)

    def ours_step(prev):
        model, report = fit_lla(X, Y, SPEC, settings, previous=prev)
        optimize_log_ei(model, Y.max().item())
        return model, report

    row["ours_warm"], (model, report) = timed(lambda: ours_step(previous))
    row["ours_scratch"], _ = timed(lambda: ours_step(None))
    row["epochs_warm"] = report.epochs

    # reference BO step (float32, its default dtype; standardized targets)
    Xf = X.float()
    Yf = ((Y - Y.mean()) / Y.std()).float()

    def ref_step():
        ref = reference_cls(make_net, Xf, Yf)
        optimize_log_ei(ref, Yf.max().item(), dtype=torch.float32)

    row["ref_step"], _ = timed(ref_step)

    # laplace-torch exact options at our MAP and hyperparameters (float64 everywhere)
    old_default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # CurvlinopsGGN.full builds torch.eye in the default dtype
    try:
        from laplace import Laplace

        ys = model._train_y.unsqueeze(-1)
        loader = DataLoader(TensorDataset(model._train_X, ys), batch_size=n)
        kw = dict(sigma_noise=model.noise_std, prior_precision=model.prior_precision)
        la_full = Laplace(
            copy.deepcopy(model.net).requires_grad_(True), "regression",
            subset_of_weights="all", hessian_structure="full", **kw,
        )
        row["fit_full"], _ = timed(lambda: la_full.fit(loader))
        la_gp = Laplace(
            copy.deepcopy(model.net).requires_grad_(True), "regression",
            subset_of_weights="all", hessian_structure="gp", n_subset=n, **kw,
        )
        row["fit_gp"], _ = timed(lambda: la_gp.fit(loader))

        gx = torch.linspace(0, 1, 100, dtype=torch.float64)
        grid = torch.cartesian_prod(gx, gx)
        X512 = torch.rand(512, 2, generator=g, dtype=torch.float64)

        row["joint_ours"], cov = timed(lambda: model.posterior(X512).covariance_matrix, repeats)
        row["joint_full"], (_, cov_full) = timed(
            lambda: la_full(X512, pred_type="glm", joint=True), 1
        )
        row["joint_gp"], _ = timed(lambda: la_gp(X512, pred_type="gp", joint=True), repeats)

        row["grid_ours"], var = timed(lambda: model.marginal_variance(grid), repeats)
        # laplace-torch's jacrev Jacobians of a whole batch need O(batch^2) memory (the
        # 10k grid at once asks for 40 GB), so the grid goes in batches of 512; FullLaplace
        # also rebuilds its p x p covariance at every call, so it is timed once
        row["grid_full"], var_full = timed(lambda: batched(la_full, grid, "glm"), 1)
        row["grid_gp"], _ = timed(lambda: batched(la_gp, grid, "gp"), repeats)
    finally:
        torch.set_default_dtype(old_default)
    ys2 = model._y_std**2
    row["rel_diff_grid"] = ((var - var_full * ys2).abs() / (var_full * ys2)).max().item()
    scale = (cov_full * ys2).abs().max()
    row["rel_diff_joint"] = ((cov - cov_full * ys2).abs().max() / scale).item()
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 50, 200 only")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the prediction timings")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # ReLU LLA: scipy line searches end ABNORMAL; botorch warns
    ns = [50, 200] if args.quick else [50, 100, 200, 500]
    reference_cls, reference_name = laplace_botorch_class()
    print(f"torch {torch.__version__}, {args.threads} thread(s); reference BO step: {reference_name}")
    print("network: 2 -> 50 -> 50 -> 1 ReLU; ours float64 with default LLASettings(); Branin")
    print("(LaplaceBoTorch in float32, its default; laplace-torch exact options in float64)\n")
    rows = []
    for n in ns:
        row = run_size(n, args.repeats, reference_cls)
        rows.append(row)
        print(f"  n={n} done", file=sys.stderr, flush=True)

    print("BO step = fit + tuning + optimize_acqf(LogEI, 10 restarts, 512 raw samples), seconds")
    print("| n | ours warm | (epochs) | ours scratch | LaplaceBoTorch defaults | speedup warm | speedup scratch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['ours_warm']:.2f} | {r['epochs_warm']} | {r['ours_scratch']:.2f} | "
            f"{r['ref_step']:.2f} | {r['ref_step'] / r['ours_warm']:.1f}x | "
            f"{r['ref_step'] / r['ours_scratch']:.1f}x |"
        )
    print("\n512-point joint posterior covariance, milliseconds (same MAP and hyperparameters)")
    print("| n | ours | laplace-torch full | laplace-torch gp | speedup vs fastest | max rel. diff vs full |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        best = min(r["joint_full"], r["joint_gp"])
        print(
            f"| {r['n']} | {1e3 * r['joint_ours']:.1f} | {1e3 * r['joint_full']:.1f} | "
            f"{1e3 * r['joint_gp']:.1f} | {best / r['joint_ours']:.1f}x | {r['rel_diff_joint']:.1e} |"
        )
    print("\n100 x 100 grid marginal variance, seconds")
    print("| n | ours | laplace-torch full | laplace-torch gp | speedup vs fastest | max rel. diff vs full |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        best = min(r["grid_full"], r["grid_gp"])
        print(
            f"| {r['n']} | {r['grid_ours']:.3f} | {r['grid_full']:.3f} | {r['grid_gp']:.3f} | "
            f"{best / r['grid_ours']:.1f}x | {r['rel_diff_grid']:.1e} |"
        )
    print("\n(laplace-torch fit times at the same MAP, not in the columns above: " + ", ".join(
        f"n={r['n']}: full {r['fit_full']:.2f}s, gp {r['fit_gp']:.2f}s" for r in rows) + ")")


if __name__ == "__main__":
    main()
