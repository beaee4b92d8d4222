"""GP fit time of composite kernels: the hands-on CNN kernel naive vs batched, beside the default kernel.

On the 19-parameter conditional CNN space of ``resources/sessions/cnn_hyperparameters.json`` (its
feature map and its hands-on kernel), at n = 12, 60 and 120 Sobol configurations, one torch thread,
this times one GP fit as the study does it (:func:`lla_studio.core.surrogates.gp.fit_gp`: the
session's feature map inside the model, priors, BoTorch's ``fit_gpytorch_mll``) for

* ``hands-on naive``   -- the kernel graph compiled to gpytorch's nested Additive/Product/Scale tree;
* ``hands-on batched`` -- the same graph compiled to batched leaves and tensor reductions;
* ``default``          -- our default kernel (one Matérn-5/2 ARD over all features);
* ``botorch``          -- a plain BoTorch ``SingleTaskGP`` (its default kernel and priors) on the same
  features, min-max normalized by their bounds, fitted with ``fit_gpytorch_mll``: the reference.

Every method sees the same data (fixed seeds, chosen before the run: configurations ``sample(n,
seed=0)``, a made-up smooth objective of the normalized features plus seeded noise) and starts from
its compiled initial values after ``torch.manual_seed(0)``. The methods run in ``--repeats``
interleaved rounds (each once per round, so that a slow spell of the shared machine hits them all);
printed are the median seconds, the number of loss evaluations and the final marginal log
likelihood per point (naive and batched reach the same optimum: the same numbers), and the ratios as
medians of the per-round ratios. Ratios: naive / batched (goal >= 8 at n = 60), hands-on batched /
default (goal <= 2) and default / botorch (goal <= 1.2).

    python benchmarks/kernel_speed.py
    python benchmarks/kernel_speed.py --sizes 12 60 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lla_studio.core.features import FeatureMap  # noqa: E402
from lla_studio.core.process import prepare_study_process  # noqa: E402

SESSION = ROOT / "resources" / "sessions" / "cnn_hyperparameters.json"
METHODS = ("hands-on naive", "hands-on batched", "default", "botorch")


def make_data(n: int):
    """Sobol configurations of the CNN space and a smooth objective of their normalized features."""
    from lla_studio.core.session import load_session

    session = load_session(SESSION)
    U = torch.as_tensor(session.search_space.sample_encoded(n, seed=0), dtype=torch.float64)
    F = FeatureMap.of(session)(U)
    bounds = torch.as_tensor(session.features.feature_bounds(), dtype=torch.float64)
    Fn = (F - bounds[0]) / (bounds[1] - bounds[0])
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(Fn.shape[-1], generator=gen, dtype=torch.float64)
    Y = torch.sin(3.0 * Fn) @ w + 0.5 * ((Fn - 0.5) ** 2).sum(-1) + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    return session, U, Fn, Y.unsqueeze(-1)


class _Counter:
    """Counts marginal-likelihood evaluations (loss + gradient) of a fit: gpytorch's
    ``ExactMarginalLogLikelihood`` (the plain BoTorch fit) and the study's ``DenseExactLoss``."""

    def __init__(self) -> None:
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from lla_studio.core.surrogates.gp import DenseExactLoss

        self.calls = 0
        for cls, name in ((ExactMarginalLogLikelihood, "forward"), (DenseExactLoss, "__call__")):
            setattr(cls, name, self._counted(getattr(cls, name)))  # this process only runs this benchmark

    def _counted(self, method):
        def counted(obj, *args, **kwargs):
            self.calls += 1
            return method(obj, *args, **kwargs)

        return counted


def fit_once(method: str, session, U, Fn, Y, counter: _Counter) -> tuple[float, int, float]:
    """Seconds, loss evaluations and final mll per point of one fit."""
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from lla_studio.core.surrogates.gp import fit_gp

    torch.manual_seed(0)
    counter.calls = 0
    start = time.perf_counter()
    if method == "botorch":
        model = SingleTaskGP(Fn, Y, outcome_transform=Standardize(m=1))
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        fit_gpytorch_mll(mll)
        seconds = time.perf_counter() - start
        model.train()
        mll.train()
        with torch.no_grad():
            value = float(mll(model(*model.train_inputs), model.train_targets))
    else:
        kernel = None if method == "default" else session.kernel
        fit = fit_gp(U, Y, FeatureMap.of(session), kernel, batched=method != "hands-on naive", cancel=lambda: False)
        seconds, value = time.perf_counter() - start, fit.mll
    return seconds, counter.calls, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 60, 120])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (every method once per round)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    counter = _Counter()
    session, U, Fn, Y = make_data(8)
    fit_once("default", session, U, Fn, Y, counter)  # imports and first-call costs out of the way
    prepare_study_process()  # as the study process and headless runs do

    leaves = len(session.kernel.leaves())
    print(f"# GP fit time on the CNN space ({session.search_space.dim} parameters, {Fn.shape[-1]} features; "
          f"hands-on kernel of {leaves} leaves), 1 torch thread, {args.repeats} interleaved rounds")
    header = f"{'n':>4} {'method':<17} {'seconds':>8} {'evals':>6} {'s/eval':>8} {'mll/n':>9}"
    print(header)
    print("-" * len(header))
    ratios: dict[int, dict[str, float]] = {}
    for n in args.sizes:
        session, U, Fn, Y = make_data(n)
        # Rounds: every method once per round, so a slow spell of the machine hits all of them; the
        # ratios are medians of the per-round (paired) ratios.
        runs = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method in METHODS:
                runs[method].append(fit_once(method, session, U, Fn, Y, counter))
        for method in METHODS:
            seconds = statistics.median(r[0] for r in runs[method])
            evals, value = runs[method][0][1], runs[method][0][2]
            print(f"{n:>4} {method:<17} {seconds:>8.3f} {evals:>6} {seconds / max(evals, 1) * 1e3:>6.1f}ms {value:>9.4f}",
                  flush=True)
        t = {m: [r[0] for r in runs[m]] for m in METHODS}

        def paired(a: str, b: str) -> float:
            return statistics.median(x / y for x, y in zip(t[a], t[b]))

        ratios[n] = {"nb": paired("hands-on naive", "hands-on batched"), "bd": paired("hands-on batched", "default"),
                     "db": paired("default", "botorch")}
    print()
    print(f"{'n':>4} {'naive/batched':>14} {'batched/default':>16} {'default/botorch':>16}   (medians of per-round ratios)")
    for n in args.sizes:
        r = ratios[n]
        print(f"{n:>4} {r['nb']:>14.2f} {r['bd']:>16.2f} {r['db']:>16.2f}")
    print("goals: naive/batched >= 8 at n = 60; batched/default <= 2; default/botorch <= 1.2")


if __name__ == "__main__":
    main()
