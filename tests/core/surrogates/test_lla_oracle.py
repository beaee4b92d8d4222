"""laplace-torch as an oracle: the same trained network, weight space (p x p) vs our n x n.

laplace-torch's ``CurvlinopsGGN.full`` multiplies its GGN operator with ``torch.eye`` in the
*default* dtype, so a float32 default truncates the float64 GGN to ~1e-7; the oracle runs with
a float64 default dtype.
"""

from __future__ import annotations

import copy

import laplace  # a declared test dependency (pyproject.toml [test]): imported, never skipped
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lla_studio.core.surrogates.lla import LLASettings, fit_lla
from lla_studio.core.surrogates.networks import CNNSpec, MLPSpec

RTOL = 1e-6




@pytest.fixture
def float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _data(n=30, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=g, dtype=torch.float64)
    y = torch.sin(6 * X[:, 0]) * X[:, -1] + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, 3.0 + 2.0 * y.unsqueeze(-1)


def _oracle(model, X, hessian_structure="full", **kwargs):
    """laplace-torch fitted at our MAP, with our tuned hyperparameters, on standardized y."""
    net = copy.deepcopy(model.net).requires_grad_(True)
    ys = model._train_y.unsqueeze(-1)
    loader = DataLoader(TensorDataset(X, ys), batch_size=len(X))
    la = laplace.Laplace(
        net,
        "regression",
        hessian_structure=hessian_structure,
        sigma_noise=model.noise_std,
        prior_precision=model.prior_precision,
        **kwargs,
    )
    la.fit(loader)
    return la


def _compare(model, la, Xt):
    ys, ym = model._y_std, model._y_mean
    mu, var = la(Xt, pred_type="glm")
    mean, ours_var = model.predict(Xt)
    torch.testing.assert_close(mean, mu.squeeze(-1) * ys + ym, rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(ours_var, var.reshape(-1) * ys**2, rtol=RTOL, atol=0)
    # the botorch posterior: marginals (q = 1) and the joint covariance (q = 7)
    post1 = model.posterior(Xt.unsqueeze(-2))
    torch.testing.assert_close(post1.variance.reshape(-1), var.reshape(-1) * ys**2, rtol=RTOL, atol=0)
    mu_j, cov_j = la(Xt, pred_type="glm", joint=True)
    post = model.posterior(Xt)
    torch.testing.assert_close(post.mean.squeeze(-1), mu_j * ys + ym, rtol=RTOL, atol=1e-12)
    cov_ref = cov_j * ys**2
    scale = cov_ref.abs().max()
    assert (post.covariance_matrix - cov_ref).abs().max() <= RTOL * scale


@pytest.mark.parametrize("subset", ["all", "last_layer"])
def test_mlp_matches_laplace_torch(float64_default, subset):
    X, Y = _data()
    spec = MLPSpec((16, 16), "tanh")
    model, report = fit_lla(X, Y, spec, LLASettings(max_epochs=10, subset_of_weights=subset))
    la = _oracle(model, X, subset_of_weights=subset)
    assert la.n_params == report.n_params
    lml = la.log_marginal_likelihood().item()
    assert report.log_marginal_likelihood == pytest.approx(lml, rel=RTOL)
    # the evidence is also right away from the tuned hyperparameters
    d, s = torch.tensor(0.37), torch.tensor(0.21)
    assert model.log_marginal_likelihood(d, s).item() == pytest.approx(
        la.log_marginal_likelihood(d, s).item(), rel=RTOL
    )
    la.prior_precision, la.sigma_noise = model.prior_precision, model.noise_std
    Xt = torch.rand(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    _compare(model, la, Xt)


def test_relu_mlp_with_more_data_than_weights_matches(float64_default):
    """n > p switches to the p x p eigendecomposition; still exact."""
    X, Y = _data(n=60)
    model, report = fit_lla(X, Y, MLPSpec((6,), "relu"), LLASettings(max_epochs=5))
    assert report.n_params == 25 < 60
    la = _oracle(model, X, subset_of_weights="all")
    assert report.log_marginal_likelihood == pytest.approx(la.log_marginal_likelihood().item(), rel=RTOL)
    _compare(model, la, torch.rand(7, 2, dtype=torch.float64))


def test_cnn_matches_laplace_torch(float64_default):
    X, Y = _data(n=20, d=16)
    spec = CNNSpec(image_shape=(4, 4), channels=(2,), dense=(4,), activation="tanh")
    model, report = fit_lla(X, Y, spec, LLASettings(max_epochs=5))
    la = _oracle(model, X, subset_of_weights="all")
    assert report.log_marginal_likelihood == pytest.approx(la.log_marginal_likelihood().item(), rel=RTOL)
    _compare(model, la, torch.rand(5, 16, dtype=torch.float64))


@pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")
def test_function_space_laplace_torch_agrees(float64_default):
    """laplace-torch's own GP form (FunctionalLaplace, subset of data = all data)."""
    X, Y = _data(n=25)
    model, _ = fit_lla(X, Y, MLPSpec((8, 8), "tanh"), LLASettings(max_epochs=5))
    la = _oracle(model, X, hessian_structure="gp", subset_of_weights="all", n_subset=len(X))
    Xt = torch.rand(6, 2, dtype=torch.float64)
    _, var = la(Xt, pred_type="gp")
    torch.testing.assert_close(
        model.marginal_variance(Xt), var.reshape(-1) * model._y_std**2, rtol=1e-5, atol=0
    )
