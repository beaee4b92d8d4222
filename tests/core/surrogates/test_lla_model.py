"""LinearizedLaplaceModel: botorch contract, input gradients, training behaviour, errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from botorch.acquisition import LogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.optim import optimize_acqf
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.sampling import SobolQMCNormalSampler

from lla_studio.core.errors import LLAStudioError, SurrogateFitError
from lla_studio.core.surrogates.lla import (
    FitCancelled,
    LinearizedLaplaceModel,
    LLAFitReport,
    LLASettings,
    LLASettingsError,
    fit_lla,
)
from lla_studio.core.surrogates.networks import MLPSpec




def _data(n=15, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y.unsqueeze(-1)


FAST = LLASettings(max_epochs=5)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    X, Y = _data()
    return fit_lla(X, Y, MLPSpec((12, 12), "tanh"), FAST)


# ---------------------------------------------------------------------------- posterior
def test_posterior_shapes_and_consistency(fitted):
    model, report = fitted
    assert isinstance(report, LLAFitReport) and report.n_train == 15
    assert model.num_outputs == 1 and model.batch_shape == torch.Size([])
    X = torch.rand(4, 5, 2, dtype=torch.float64)
    post = model.posterior(X)
    assert isinstance(post, GPyTorchPosterior)
    assert post.mean.shape == (4, 5, 1) and post.variance.shape == (4, 5, 1)
    assert post.covariance_matrix.shape == (4, 5, 5)
    # the diagonal of the joint posterior is the fast marginal variance (minus the nugget)
    var = model.marginal_variance(X)
    nugget = 1e-10 * model._y_std**2
    torch.testing.assert_close(post.variance.squeeze(-1) - nugget, var, rtol=1e-9, atol=1e-14)
    mean, var2 = model.predict(X)
    torch.testing.assert_close(mean, post.mean.squeeze(-1))
    torch.testing.assert_close(var2, var)
    # a 2-D input is one joint q-batch; chunking does not change results
    post2 = model.posterior(X[0])
    torch.testing.assert_close(post2.covariance_matrix, post.covariance_matrix[0])
    with pytest.raises(dataclasses.FrozenInstanceError):  # settings are frozen; chunking is a setting
        model.settings.chunk_size = 3  # type: ignore[misc]
    small = LinearizedLaplaceModel(model.spec, LLASettings(max_epochs=5, chunk_size=3))
    small.fit(*_data())
    torch.testing.assert_close(small.marginal_variance(X), var)
    # samples have botorch's shape
    samples = post.rsample(torch.Size([3]))
    assert samples.shape == (3, 4, 5, 1)


def test_observation_noise_is_added_on_the_original_scale(fitted):
    model, report = fitted
    X = torch.rand(6, 1, 2, dtype=torch.float64)
    plain = model.posterior(X).variance
    noisy = model.posterior(X, observation_noise=True).variance
    torch.testing.assert_close(noisy - plain, torch.full_like(plain, report.noise_std_original**2))
    given = torch.full((6, 1, 1), 0.123, dtype=torch.float64)
    torch.testing.assert_close(model.posterior(X, observation_noise=given).variance - plain, given)
    torch.testing.assert_close(
        model.marginal_variance(X.squeeze(1), observation_noise=True), noisy.reshape(-1)
    )


def test_targets_scale_and_shift_equivariance():
    X, Y = _data()
    spec = MLPSpec((8,), "tanh")
    settings = LLASettings(optimizer="adam", max_epochs=100)  # no line-search branching
    m1, r1 = fit_lla(X, Y, spec, settings)
    m2, r2 = fit_lla(X, 10.0 * Y - 3.0, spec, settings)
    Xt = torch.rand(7, 2, dtype=torch.float64)
    mean1, var1 = m1.predict(Xt)
    mean2, var2 = m2.predict(Xt)
    # identical standardized problems up to the rounding of the standardization
    torch.testing.assert_close(mean2, 10.0 * mean1 - 3.0, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(var2, 100.0 * var1, rtol=1e-5, atol=0)
    assert r2.log_marginal_likelihood == pytest.approx(r1.log_marginal_likelihood, rel=1e-5)
    assert r2.log_marginal_likelihood_original == pytest.approx(
        r1.log_marginal_likelihood_original - 15 * math.log(10.0), rel=1e-5
    )
    torch.testing.assert_close(m2.train_Y, 10.0 * Y - 3.0)


def test_input_bounds_normalize_inputs():
    X, Y = _data()
    lo, hi = torch.tensor([-5.0, 0.0]), torch.tensor([10.0, 15.0])
    raw = lo + X * (hi - lo)
    m_unit, _ = fit_lla(X, Y, MLPSpec((8,)), FAST)
    m_raw, _ = fit_lla(raw, Y, MLPSpec((8,)), FAST, input_bounds=torch.stack([lo, hi]).double())
    Xt = torch.rand(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # (raw - lo) / (hi - lo) differs from X by a few ulps, and L-BFGS with a strong-Wolfe line
    # search amplifies that to ~1e-6 in the weights: compare at that scale, not at round-off.
    for a, b in zip(m_unit.predict(Xt), m_raw.predict(lo + Xt * (hi - lo))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-5)
    # Without the bounds the same raw inputs give a different surrogate (the check above can fail).
    m_plain, _ = fit_lla(raw, Y, MLPSpec((8,)), FAST)
    mean_plain, _ = m_plain.predict(lo + Xt * (hi - lo))
    assert (mean_plain - m_unit.predict(Xt)[0]).abs().max() > 1e-2


def test_shared_baseline_rows_match_separate_batches(fitted):
    """qNEI prepends X_baseline to every batch; those rows are computed once."""
    model, _ = fitted
    base = torch.rand(6, 2, dtype=torch.float64)
    Xq = torch.rand(3, 2, 2, dtype=torch.float64)
    X = torch.cat([base.expand(3, 6, 2), Xq], dim=-2)
    post = model.posterior(X)
    for b in range(3):
        ref = model.posterior(X[b : b + 1])
        torch.testing.assert_close(post.covariance_matrix[b], ref.covariance_matrix[0])
        torch.testing.assert_close(post.mean[b], ref.mean[0])


@pytest.mark.parametrize("subset", ["all", "last_layer"])
def test_input_gradients_match_finite_differences(subset):
    X, Y = _data()
    model, _ = fit_lla(X, Y, MLPSpec((10, 10), "tanh"), LLASettings(max_epochs=5, subset_of_weights=subset))
    Xt = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)

    def mean_and_cov(x):
        post = model.posterior(x)
        return post.mean, post.covariance_matrix

    assert torch.autograd.gradcheck(mean_and_cov, (Xt,), eps=1e-6, atol=1e-7, rtol=1e-5)
    # and one explicit central difference of the marginal variance
    x0 = torch.tensor([[[0.3, 0.6]]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(model.posterior(x0).variance.sum(), x0)
    h = 1e-5
    for j in range(2):
        e = torch.zeros_like(x0)
        e[..., j] = h
        fd = (model.marginal_variance((x0 + e).detach()[0]) - model.marginal_variance((x0 - e).detach()[0])) / (2 * h)
        assert g[0, 0, j].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-10)


# ---------------------------------------------------------------------------- botorch
def test_log_ei_with_optimize_acqf():
    X, Y = _data(n=12)
    model, _ = fit_lla(X, Y, MLPSpec((16, 16), "tanh"), FAST)
    _check_log_ei(model, Y)


# A ReLU network's Jacobian jumps where a unit switches, so the LLA variance (and LogEI) is
# discontinuous in x and scipy's line search may end ABNORMAL; botorch then warns and retries.
@pytest.mark.filterwarnings("ignore:Optimization failed:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:Optimization failed within `scipy.optimize.minimize`")
def test_log_ei_with_optimize_acqf_relu():
    X, Y = _data(n=12)
    model, _ = fit_lla(X, Y, MLPSpec((16, 16), "relu"), FAST)
    _check_log_ei(model, Y, beats_random=False)


def _check_log_ei(model, Y, beats_random=True):
    acqf = LogExpectedImprovement(model, best_f=Y.max())
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    torch.manual_seed(0)
    cand, value = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=4, raw_samples=64)
    assert cand.shape == (1, 2)
    assert torch.isfinite(cand).all() and torch.isfinite(value).all()
    assert ((cand >= 0) & (cand <= 1)).all()
    if beats_random:  # smooth network: the optimum beats random points
        raw = torch.rand(64, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        assert value >= acqf(raw).max() - 1e-6


def test_q_log_nei_with_q_2():
    X, Y = _data(n=10)
    model, _ = fit_lla(X, Y, MLPSpec((8, 8), "tanh"), FAST)
    acqf = qLogNoisyExpectedImprovement(
        model,
        X_baseline=X,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([64]), seed=0),
        prune_baseline=False,
    )
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    cand, value = optimize_acqf(acqf, bounds=bounds, q=2, num_restarts=2, raw_samples=16)
    assert cand.shape == (2, 2) and torch.isfinite(cand).all() and torch.isfinite(value)
    assert ((cand >= 0) & (cand <= 1)).all()


# ---------------------------------------------------------------------------- training
def test_fit_is_seeded_and_deterministic():
    X, Y = _data()
    Xt = torch.rand(5, 2, dtype=torch.float64)
    a, _ = fit_lla(X, Y, MLPSpec((8,)), LLASettings(max_epochs=3, seed=3))
    b, _ = fit_lla(X, Y, MLPSpec((8,)), LLASettings(max_epochs=3, seed=3))
    c, _ = fit_lla(X, Y, MLPSpec((8,)), LLASettings(max_epochs=3, seed=4))
    torch.testing.assert_close(a.predict(Xt), b.predict(Xt), rtol=0, atol=0)
    assert not torch.allclose(a.predict(Xt)[0], c.predict(Xt)[0])


def test_warm_start_and_retrain_from_scratch():
    X, Y = _data(n=20)
    spec = MLPSpec((12,), "tanh")
    settings = LLASettings(max_epochs=20)
    first, r1 = fit_lla(X[:19], Y[:19], spec, settings)
    assert not r1.warm_started and r1.epochs <= 20
    warm, r2 = fit_lla(X, Y, spec, settings, previous=first)
    # starts near the optimum (the loss of random weights is far higher) on its smaller budget
    assert r2.warm_started and r2.loss_history[0] < 0.2 * r1.loss_history[0]
    assert r2.epochs <= settings.budget("warm_max_epochs") == 10
    assert r2.final_loss < 2 * r1.final_loss
    # warm start from a plain state dict works too
    _, r3 = fit_lla(X, Y, spec, settings, previous=first.net.state_dict())
    assert r3.warm_started
    # "retrain from scratch" ignores previous and equals a fresh fit
    scratch_settings = LLASettings(max_epochs=20, warm_start=False)
    scratch, r4 = fit_lla(X, Y, spec, scratch_settings, previous=first)
    fresh, _ = fit_lla(X, Y, spec, scratch_settings)
    assert not r4.warm_started
    Xt = torch.rand(4, 2, dtype=torch.float64)
    torch.testing.assert_close(scratch.predict(Xt), fresh.predict(Xt), rtol=0, atol=0)
    # an incompatible previous network is ignored with a warning
    _, r5 = fit_lla(X, Y, MLPSpec((5,)), LLASettings(max_epochs=2), previous=first)
    assert not r5.warm_started
    assert any(w.startswith("previous: weights do not fit") for w in r5.warnings)


def test_early_stopping_on_plateau():
    X, Y = _data()
    _, report = fit_lla(X, Y, MLPSpec((8,)), LLASettings(max_epochs=100_000, patience=3, rel_tol=1e-3))
    assert report.converged and report.epochs < 100_000
    assert len(report.loss_history) == report.epochs
    assert report.final_loss <= min(report.loss_history) + 1e-12


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_training_lowers_the_map_loss(optimizer):
    X, Y = _data()
    _, report = fit_lla(X, Y, MLPSpec((8,)), LLASettings(optimizer=optimizer, max_epochs=100 if optimizer == "adam" else 5))
    assert report.loss_history[-1] < 0.5 * report.loss_history[0]


def test_online_tuning():
    X, Y = _data()
    settings = LLASettings(
        optimizer="adam", max_epochs=120, patience=1000, tuning="online", online_every=40
    )
    model, report = fit_lla(X, Y, MLPSpec((8,), "tanh"), settings)
    assert report.tuning == "online" and report.tuning_rounds == 3
    assert report.prior_precision != settings.prior_precision
    assert report.noise_std != settings.noise_std
    assert report.log_marginal_likelihood == pytest.approx(model.log_marginal_likelihood().item())


def test_tuning_at_a_bound_warns():
    X, Y = _data()
    settings = LLASettings(max_epochs=5, noise_std_bounds=(1.0, 2.0), prior_precision_bounds=(1.0, 1.5))
    _, report = fit_lla(X, Y, MLPSpec((8,), "tanh"), settings)
    assert report.noise_std == pytest.approx(1.0)
    assert any(w.startswith("noise_std: tuning ran to the lower bound 1") for w in report.warnings)


@pytest.mark.parametrize("n", [15, 40])  # function-space (n < p) and weight-space (n > p) factors
def test_fixed_hyperparameters_and_sliders(n):
    X, Y = _data(n=n)
    model, report = fit_lla(X, Y, MLPSpec((8,)), LLASettings(max_epochs=5, tune_noise=False, noise_std=0.2))
    assert model.noise_std == 0.2 and report.noise_std == 0.2
    # changing (delta, sigma) without refitting equals the explicit p x p weight-space posterior
    delta, sigma = 3.7, 0.05
    model.set_hyperparameters(delta, sigma)
    Xt = torch.rand(5, 2, dtype=torch.float64)
    with torch.no_grad():
        _, J = model._f_and_jacobian(model.net, model._theta, X)
        _, Jt = model._f_and_jacobian(model.net, model._theta, Xt)
    precision = J.T @ J / sigma**2 + delta * torch.eye(J.shape[1], dtype=J.dtype)
    ref = torch.diagonal(Jt @ torch.linalg.solve(precision, Jt.T)) * model._y_std**2
    torch.testing.assert_close(model.marginal_variance(Xt), ref, rtol=1e-9, atol=0)
    sign, logdet = torch.linalg.slogdet(precision)
    resid = ((model._train_y - model.net(X).squeeze(-1)) ** 2).sum()
    theta_sq = sum((p**2).sum() for p in model.net.parameters())
    lml = (
        -0.5 * resid / sigma**2 - n * math.log(sigma * math.sqrt(2 * math.pi))
        - 0.5 * (logdet - J.shape[1] * math.log(delta) + delta * theta_sq)
    )
    assert model.log_marginal_likelihood().item() == pytest.approx(lml.item(), rel=1e-10)
    with pytest.raises(LLASettingsError, match="noise_std"):
        model.set_hyperparameters(1.0, 0.0)


def test_nan_training_raises_surrogate_fit_error():
    X, Y = _data()
    with pytest.raises(SurrogateFitError, match="MAP training: loss became"):
        fit_lla(X, Y, MLPSpec((8,)), LLASettings(optimizer="adam", learning_rate=1e200, max_epochs=20, tuning="none"))


def test_non_finite_data_names_the_row():
    X, Y = _data()
    Y[3, 0] = float("nan")
    with pytest.raises(SurrogateFitError, match=r"train_Y\[3\] is nan"):
        fit_lla(X, Y, MLPSpec((8,)), FAST)
    X, Y = _data()
    X[2, 1] = float("inf")
    with pytest.raises(SurrogateFitError, match=r"train_X\[2, 1\] is inf"):
        fit_lla(X, Y, MLPSpec((8,)), FAST)
    with pytest.raises(SurrogateFitError, match="train_Y: expected shape"):
        fit_lla(X, Y[:4], MLPSpec((8,)), FAST)


def test_cancel_raises_and_keeps_the_previous_fit(fitted):
    X, Y = _data()
    model = LinearizedLaplaceModel(MLPSpec((8,)), LLASettings(max_epochs=1000))
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(FitCancelled, match="MAP training"):
        model.fit(X, Y, cancel=cancel)
    assert isinstance(FitCancelled("x"), LLAStudioError)
    with pytest.raises(SurrogateFitError, match="call fit"):
        model.posterior(X)
    model.fit(X, Y)
    Xt = torch.rand(3, 2, dtype=torch.float64)
    before = model.predict(Xt)
    with pytest.raises(FitCancelled):
        model.fit(X, 2 * Y, cancel=lambda: True)
    torch.testing.assert_close(model.predict(Xt), before, rtol=0, atol=0)


def test_constant_targets_do_not_divide_by_zero():
    X, _ = _data()
    model, report = fit_lla(X, torch.full((15, 1), 2.5, dtype=torch.float64), MLPSpec((4,)), FAST)
    assert any("all targets are equal" in w for w in report.warnings)
    assert torch.isfinite(model.marginal_variance(X)).all()


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"tuning": "sometimes"}, "tuning"),
        ({"subset_of_weights": "first_layer"}, "subset_of_weights"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"prior_precision": 0.0}, "prior_precision"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"max_epochs": -1}, "max_epochs"),
        ({"noise_std_bounds": (2.0, 1.0)}, "noise_std_bounds"),
        ({"prior_precision_bounds": (0.0, 1.0)}, "prior_precision_bounds[0]"),
        ({"warm_start": "yes"}, "warm_start"),
    ],
)
def test_bad_settings_name_the_field(kwargs, culprit):
    with pytest.raises(LLASettingsError, match=r"^" + culprit.replace("[", r"\[").replace("]", r"\]")):
        LLASettings(**kwargs)


def test_settings_and_report_round_trip(fitted):
    _, report = fitted
    s = LLASettings(tuning="online", noise_std_bounds=(1e-2, 1.0))
    assert LLASettings.from_dict(s.to_dict()) == s
    with pytest.raises(LLASettingsError, match="lrate: unknown LLA setting"):
        LLASettings.from_dict({"lrate": 1})
    data = report.to_dict()
    assert data["n_train"] == 15 and isinstance(data["loss_history"], list)
    assert LLAFitReport(**{**data, "loss_history": tuple(data["loss_history"])}) == report
