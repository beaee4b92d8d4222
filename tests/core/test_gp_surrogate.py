"""The GP surrogate against a hand-built BoTorch SingleTaskGP, and closed-form LOO against dropping points."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.kernels import MaternKernel, RBFKernel

from lla_studio.core.features import FeatureMap
from lla_studio.core.diagnostics import loo_closed_form, loo_refit
from lla_studio.core.errors import SurrogateFitError
from lla_studio.core.kernels import parse_kernel
from lla_studio.core.objectives import get_benchmark
from lla_studio.core.session import load_session
from lla_studio.core.surrogates.gp import fit_gp

SESSIONS = Path(__file__).resolve().parents[2] / "resources" / "sessions"


def _branin_data(n: int, seed: int = 0):
    session = load_session(SESSIONS / "branin.json")
    configs = session.search_space.sample(n, seed=seed)
    bench = get_benchmark("branin")
    U = torch.as_tensor(session.search_space.encode_many(configs), dtype=torch.float64)
    Y = torch.tensor([[bench(c)] for c in configs], dtype=torch.float64)
    return session, U, Y


def test_fitted_gp_equals_hand_built_botorch_model():
    session, U, Y = _branin_data(12)
    torch.manual_seed(0)
    fit = fit_gp(U, Y, FeatureMap.of(session))
    ours = fit.model
    # Hand-built reference: features are x itself; normalize by hand to the unit cube.
    lo = torch.tensor([-5.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([10.0, 15.0], dtype=torch.float64)
    X = lo + U * (hi - lo)
    covar = MaternKernel(nu=2.5, ard_num_dims=2).to(torch.float64)
    ref = SingleTaskGP((X - lo) / (hi - lo), Y, covar_module=covar, outcome_transform=Standardize(m=1))
    hp = fit.hyperparameters
    assert set(hp) == {"covar_module.lengthscale", "likelihood.noise_covar.noise", "mean_module.constant"}
    ref.covar_module.lengthscale = torch.tensor(hp["covar_module.lengthscale"], dtype=torch.float64)
    ref.likelihood.noise = torch.tensor(hp["likelihood.noise_covar.noise"], dtype=torch.float64)
    ref.mean_module.constant.data.fill_(hp["mean_module.constant"][0])
    ref.eval()
    test_U = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        p_ours = ours.posterior(test_U)
        p_ref = ref.posterior(test_U)  # the reference sees the unit-cube features directly
    torch.testing.assert_close(p_ours.mean, p_ref.mean, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(p_ours.variance, p_ref.variance, rtol=1e-8, atol=1e-8)
    # a 12-point Branin fit interpolates its data closely
    with torch.no_grad():
        resid = ours.posterior(U).mean - Y
    assert resid.abs().max() < 0.05 * Y.std()


def test_closed_form_loo_equals_dropping_each_point():
    session, U, Y = _branin_data(15, seed=3)
    torch.manual_seed(0)
    model = fit_gp(U, Y, FeatureMap.of(session), parse_kernel("scale(matern32(x1) * rbf(x2))")).model
    res = loo_closed_form(model)
    # Reference: condition on the other n - 1 points explicitly, in the model's standardized space.
    with torch.no_grad():
        X = model.train_inputs[0]
        y = model.train_targets
        m = model.mean_module(X)
        K = model.covar_module(X).to_dense()
        s2 = model.likelihood.noise.item()
    tf = model.outcome_transform
    n = X.shape[0]
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        Kk = K[keep][:, keep] + s2 * torch.eye(n - 1, dtype=K.dtype)
        k = K[keep, i]
        sol = torch.linalg.solve(Kk, torch.stack([y[keep] - m[keep], k], dim=1))
        mu = m[i] + k @ sol[:, 0]
        var = K[i, i] + s2 - k @ sol[:, 1]
        mu_user = mu * tf.stdvs.item() + tf.means.item()
        sd_user = math.sqrt(var.item()) * tf.stdvs.item()
        assert res.mean[i] == pytest.approx(mu_user.item(), rel=1e-7, abs=1e-7)
        assert res.sd[i] == pytest.approx(sd_user, rel=1e-7)
    np.testing.assert_allclose(res.observed, Y.reshape(-1).numpy(), rtol=1e-12)
    z = (res.observed - res.mean) / res.sd
    assert res.mlpd == pytest.approx(np.mean(-0.5 * z**2 - np.log(res.sd) - 0.5 * math.log(2 * math.pi)))
    assert 0.0 <= res.coverage95 <= 1.0


@pytest.mark.slow
def test_loo_refit_is_close_to_closed_form_for_a_smooth_function():
    session, U, Y = _branin_data(12, seed=5)
    torch.manual_seed(0)
    closed = loo_closed_form(fit_gp(U, Y, FeatureMap.of(session)).model)
    refit = loo_refit(lambda u, y: fit_gp(u, y, FeatureMap.of(session)).model, U, Y)
    assert np.corrcoef(closed.mean, refit.mean)[0, 1] > 0.75


def test_kernel_graph_reaches_the_model():
    session, U, Y = _branin_data(10)
    fit = fit_gp(U, Y, FeatureMap.of(session), parse_kernel("scale(rbf(x1; lengthscale=0.3)) + scale(rbf(x2))"))
    first = fit.model.covar_module.kernels[0].base_kernel
    assert isinstance(first, RBFKernel)
    assert first.lengthscale.item() == pytest.approx(0.3)
    assert fit.hyperparameters["covar_module.kernels.0.base_kernel.lengthscale"] == pytest.approx([0.3])


def test_fit_refuses_non_finite_data():
    session, U, Y = _branin_data(6)
    Y[2, 0] = float("nan")
    with pytest.raises(SurrogateFitError, match="NaN or inf"):
        fit_gp(U, Y, FeatureMap.of(session))


class _CountingMLL:
    """Counts marginal-likelihood evaluations of the study's fits (each is one loss + gradient)."""

    def __init__(self, monkeypatch):
        from lla_studio.core.surrogates.gp import DenseExactLoss

        self.calls = 0
        call = DenseExactLoss.__call__

        def counted(loss, *args, **kwargs):
            self.calls += 1
            return call(loss, *args, **kwargs)

        monkeypatch.setattr(DenseExactLoss, "__call__", counted)


def test_cancel_check_adds_no_loss_evaluations(monkeypatch):
    """A cancellable fit evaluates the loss exactly as often as one without a cancel check, and
    ends at the same hyperparameters. (Through scipy's callback BoTorch evaluates the loss once
    more per iteration: on these data 61 evaluations instead of 33.)"""
    session, U, Y = _branin_data(15)
    counter = _CountingMLL(monkeypatch)
    torch.manual_seed(0)
    plain = fit_gp(U, Y, FeatureMap.of(session))
    n_plain, counter.calls = counter.calls, 0
    checks = []
    torch.manual_seed(0)
    cancellable = fit_gp(U, Y, FeatureMap.of(session), cancel=lambda: checks.append(1) is not None)
    n_cancellable = counter.calls - 1  # after the optimizer, fit_gp evaluates the final mll once
    assert n_plain > 10
    assert counter.calls == n_plain
    assert len(checks) == n_cancellable  # one check per evaluation of the optimizer, none added
    assert cancellable.hyperparameters == plain.hyperparameters


def test_cancel_stops_the_fit_at_the_next_evaluation(monkeypatch):
    from lla_studio.core.surrogates.gp import FitCancelled

    session, U, Y = _branin_data(15)
    counter = _CountingMLL(monkeypatch)
    budget = iter(range(5))
    with pytest.raises(FitCancelled):
        fit_gp(U, Y, FeatureMap.of(session), cancel=lambda: next(budget, None) is None)
    assert counter.calls == 5


def test_log_coordinates_reach_the_linear_optimum_in_fewer_evaluations(monkeypatch):
    """Lengthscales, output scales and noise are optimized in log coordinates
    (``compile.lower_bounded``). Against BoTorch's linear coordinates (``GreaterThan(lower,
    transform=None)``) on the CNN session's hands-on kernel (42 leaves, n = 40): the same optimum
    (marginal likelihood to 1e-6, the same priors and bounds) in well under half the evaluations
    (measured: 24 vs 224)."""
    from gpytorch.constraints import GreaterThan

    import lla_studio.core.kernels.batched as batched_module
    import lla_studio.core.kernels.compile as compile_module
    import lla_studio.core.surrogates.gp as gp_module

    session = load_session(SESSIONS / "cnn_hyperparameters.json")
    U = torch.as_tensor(session.search_space.sample_encoded(40, seed=3), dtype=torch.float64)
    F = FeatureMap.of(session)(U)
    lo, hi = (torch.as_tensor(b, dtype=torch.float64) for b in session.features.feature_bounds())
    Fn = (F - lo) / (hi - lo)
    Y = (torch.sin(3.0 * Fn).sum(-1) + 0.3 * Fn[:, 0] * Fn[:, 5]).unsqueeze(-1)
    counter = _CountingMLL(monkeypatch)
    results = {}
    for coordinates in ("log", "linear"):
        if coordinates == "linear":
            def linear(lower, initial_value, fixed=False):
                return GreaterThan(lower, transform=None, initial_value=initial_value)

            for module in (compile_module, batched_module, gp_module):
                monkeypatch.setattr(module, "lower_bounded", linear)
        torch.manual_seed(0)
        counter.calls = 0
        fit = fit_gp(U, Y, FeatureMap.of(session), session.kernel)
        constraint = fit.model.likelihood.noise_covar.raw_noise_constraint
        assert (constraint._transform is None) == (coordinates == "linear")
        results[coordinates] = (fit.mll, counter.calls)
    (mll_log, evals_log), (mll_linear, evals_linear) = results["log"], results["linear"]
    assert mll_log == pytest.approx(mll_linear, abs=1e-6)
    assert evals_log < 0.5 * evals_linear, results


@pytest.mark.parametrize(
    ("session_file", "kernel", "batched"),
    [
        ("branin.json", None, True),
        ("cnn_hyperparameters.json", "session", True),
        ("cnn_hyperparameters.json", "session", False),
        ("cnn_hyperparameters.json", None, True),
        ("branin.json", "scale(rbf(x1; lengthscale=0.3)) * scale(matern52(x2)) + scale(matern12(x1, x2; ard=false))", True),
    ],
)
def test_dense_loss_equals_botorchs_loss_closure(session_file, kernel, batched):
    """The loss the study's fit minimizes (``DenseExactLoss``) against BoTorch's own loss closure for
    gpytorch's ``ExactMarginalLogLikelihood`` on the same model, at its initial values and at
    perturbed ones: value and gradient with respect to every hyperparameter."""
    from botorch.optim.closures import get_loss_closure_with_grads
    from botorch.optim.closures.core import ForwardBackwardClosure
    from botorch.optim.utils import get_parameters_and_bounds
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from lla_studio.core.surrogates.gp import DenseExactLoss, build_gp

    session = load_session(SESSIONS / session_file)
    n = 25
    U = torch.as_tensor(session.search_space.sample_encoded(n, seed=3), dtype=torch.float64)
    Y = torch.sin(7.0 * U).sum(-1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    graph = session.kernel if kernel == "session" else (parse_kernel(kernel) if kernel else None)
    model = build_gp(U, Y, FeatureMap.of(session), graph, batched)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    mll.train()
    parameters = {k: p for k, p in get_parameters_and_bounds(mll)[0].items() if p.requires_grad}
    assert len(parameters) >= 3
    reference = get_loss_closure_with_grads(mll, parameters=parameters)
    ours = ForwardBackwardClosure(forward=DenseExactLoss(mll), parameters=parameters)
    gen = torch.Generator().manual_seed(5)
    for step in range(3):
        if step:
            with torch.no_grad():
                for p in parameters.values():
                    p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        ref_loss, ref_grads = reference()
        ref_grads = [g.detach().clone().numpy() for g in ref_grads]
        loss, grads = ours()
        assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-12, abs=1e-12)
        for g, r in zip(grads, ref_grads):
            np.testing.assert_allclose(g.numpy(), r, rtol=1e-9, atol=1e-11)
