"""compile_kernel against hand-built gpytorch kernels and numpy closed forms (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gpytorch.kernels import (
    AdditiveKernel,
    LinearKernel,
    MaternKernel,
    PeriodicKernel,
    ProductKernel,
    RBFKernel,
    RQKernel,
    ScaleKernel,
)
from gpytorch.priors import GammaPrior, LogNormalPrior

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import (
    Gamma,
    KernelGraph,
    LinearNode,
    LogNormal,
    MaternNode,
    PeriodicNode,
    ProductNode,
    RBFNode,
    RQNode,
    ScaleNode,
    SumNode,
    parse_kernel,
)
from lla_studio.core.kernels.compile import compile_kernel

# A non-trivial feature order: leaves pick columns out of order.
FEATURES = ["log_lr", "momentum", "log_batch", "dropout", "log_wd"]
COL = {f: i for i, f in enumerate(FEATURES)}


@pytest.fixture
def X() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(9, len(FEATURES), generator=g, dtype=torch.float64) * 2.0 - 0.5


def ck(graph, feature_names, **kw):
    kw.setdefault("dtype", torch.float64)
    return compile_kernel(graph, feature_names, **kw)


def close(t: torch.Tensor, value) -> bool:
    return np.allclose(t.detach().numpy(), value, rtol=1e-12, atol=0)


def dense(kernel, X):
    return kernel(X).to_dense()


def set_(module, **values):
    """Cast a kernel to float64 and set hyperparameters through gpytorch's own setters."""
    module.to(torch.float64)
    for name, value in values.items():
        setattr(module, name, torch.as_tensor(value, dtype=torch.float64))
    return module


# -- numpy closed forms (independent of gpytorch) ----------------------------------------------
def _scaled_sqdist(X, cols, ls):
    Z = X.numpy()[:, cols] / np.asarray(ls)
    d = Z[:, None, :] - Z[None, :, :]
    return (d**2).sum(-1)


def np_matern(X, cols, ls, nu):
    r = np.sqrt(_scaled_sqdist(X, cols, ls))
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        return (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    return (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def np_rbf(X, cols, ls):
    return np.exp(-0.5 * _scaled_sqdist(X, cols, ls))


def np_rq(X, cols, ls, alpha):
    return (1 + _scaled_sqdist(X, cols, ls) / (2 * alpha)) ** (-alpha)


def np_periodic(X, cols, ls, period):
    Z = X.numpy()[:, cols]
    d = np.abs(Z[:, None, :] - Z[None, :, :])
    s = np.sin(math.pi * d / np.asarray(period)) ** 2 / np.asarray(ls)
    return np.exp(-2.0 * s.sum(-1))


def np_linear(X, cols, variance):
    Z = X.numpy()[:, cols]
    return (Z * np.asarray(variance)) @ Z.T


def cols(*names):
    return [COL[n] for n in names]


# -- leaves ------------------------------------------------------------------------------------
@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
@pytest.mark.parametrize("ard", [True, False])
def test_matern_leaf_matches_gpytorch_and_closed_form(X, nu, ard):
    feats = ("log_wd", "log_lr", "dropout")
    ls = [0.3, 0.7, 1.9] if ard else [0.45]
    k = set_(ck(MaternNode(feats, nu=nu, ard=ard), FEATURES), lengthscale=[ls])
    ref = set_(
        MaternKernel(nu=nu, ard_num_dims=3 if ard else None, active_dims=torch.tensor([4, 0, 3])), lengthscale=[ls]
    )
    assert isinstance(k, MaternKernel) and k.nu == nu
    assert k.lengthscale.shape == (1, 3 if ard else 1)
    assert torch.equal(k.active_dims, torch.tensor([4, 0, 3]))
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    np.testing.assert_allclose(dense(k, X).detach().numpy(), np_matern(X, cols(*feats), ls, nu), atol=1e-10)


@pytest.mark.parametrize("ard", [True, False])
def test_rbf_leaf(X, ard):
    feats = ("momentum", "log_batch")
    ls = [0.4, 1.3] if ard else [0.8]
    k = set_(ck(RBFNode(feats, ard=ard), FEATURES), lengthscale=[ls])
    ref = set_(RBFKernel(ard_num_dims=2 if ard else None, active_dims=torch.tensor([1, 2])), lengthscale=[ls])
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    np.testing.assert_allclose(dense(k, X).detach().numpy(), np_rbf(X, cols(*feats), ls), atol=1e-10)


@pytest.mark.parametrize("ard", [True, False])
def test_rq_leaf(X, ard):
    feats = ("dropout", "momentum")
    ls = [0.5, 0.9] if ard else [0.6]
    k = ck(RQNode(feats, ard=ard, alpha=0.7), FEATURES)
    set_(k, lengthscale=[ls])
    ref = set_(RQKernel(ard_num_dims=2 if ard else None, active_dims=torch.tensor([3, 1])), lengthscale=[ls], alpha=0.7)
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    np.testing.assert_allclose(dense(k, X).detach().numpy(), np_rq(X, cols(*feats), ls, 0.7), atol=1e-10)


@pytest.mark.parametrize("ard", [True, False])
def test_periodic_leaf(X, ard):
    feats = ("log_batch", "log_lr")
    ls = [0.5, 1.1] if ard else [0.7]
    per = [0.8, 1.7] if ard else [1.2]
    k = set_(ck(PeriodicNode(feats, ard=ard), FEATURES), lengthscale=[ls], period_length=[per])
    ref = set_(
        PeriodicKernel(active_dims=torch.tensor([2, 0]), **({"ard_num_dims": 2} if ard else {})),
        lengthscale=[ls],
        period_length=[per],
    )
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    np.testing.assert_allclose(dense(k, X).detach().numpy(), np_periodic(X, cols(*feats), ls, per), atol=1e-10)


@pytest.mark.parametrize("ard", [True, False])
def test_linear_leaf(X, ard):
    feats = ("log_wd", "momentum", "log_lr")
    var = [0.5, 2.0, 1.5] if ard else [0.9]
    k = set_(ck(LinearNode(feats, ard=ard), FEATURES), variance=[var])
    ref = set_(LinearKernel(ard_num_dims=3 if ard else None, active_dims=torch.tensor([4, 1, 0])), variance=[var])
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    np.testing.assert_allclose(dense(k, X).detach().numpy(), np_linear(X, cols(*feats), var), atol=1e-10)


# -- structure -------------------------------------------------------------------------------
def test_nested_sum_product_scale_matches_hand_built(X):
    graph = parse_kernel(
        "scale(matern52(log_lr, momentum; lengthscale=0.6) * rbf(log_wd; lengthscale=0.9); outputscale=1.7)"
        " + scale(matern32(log_batch; lengthscale=0.4) + linear(dropout, log_lr; variance=0.3); outputscale=0.5)"
        " + sum(rq(momentum; lengthscale=1.3, alpha=2.5))"
    )
    k = ck(graph, FEATURES)
    ref = AdditiveKernel(
        set_(
            ScaleKernel(
                ProductKernel(
                    set_(MaternKernel(nu=2.5, ard_num_dims=2, active_dims=torch.tensor([0, 1])), lengthscale=0.6),
                    set_(RBFKernel(ard_num_dims=1, active_dims=torch.tensor([4])), lengthscale=0.9),
                )
            ),
            outputscale=1.7,
        ),
        set_(
            ScaleKernel(
                AdditiveKernel(
                    set_(MaternKernel(nu=1.5, ard_num_dims=1, active_dims=torch.tensor([2])), lengthscale=0.4),
                    set_(LinearKernel(ard_num_dims=2, active_dims=torch.tensor([3, 0])), variance=0.3),
                )
            ),
            outputscale=0.5,
        ),
        AdditiveKernel(set_(RQKernel(ard_num_dims=1, active_dims=torch.tensor([1])), lengthscale=1.3, alpha=2.5)),
    )
    assert isinstance(k, AdditiveKernel) and len(k.kernels) == 3
    assert isinstance(k.kernels[0], ScaleKernel) and isinstance(k.kernels[0].base_kernel, ProductKernel)
    assert torch.allclose(dense(k, X), dense(ref, X), atol=1e-12)
    # Independent closed form for the same graph.
    c = cols
    expected = (
        1.7 * np_matern(X, c("log_lr", "momentum"), [0.6], 2.5) * np_rbf(X, c("log_wd"), [0.9])
        + 0.5 * (np_matern(X, c("log_batch"), [0.4], 1.5) + np_linear(X, c("dropout", "log_lr"), [0.3]))
        + np_rq(X, c("momentum"), [1.3], 2.5)
    )
    np.testing.assert_allclose(dense(k, X).detach().numpy(), expected, atol=1e-10)


def test_singleton_product_and_cross_covariance(X):
    k = ck(parse_kernel("product(matern12(dropout; lengthscale=0.5))"), FEATURES)
    assert isinstance(k, ProductKernel)
    X2 = X[:4] + 0.1
    cross = k(X, X2).to_dense().detach().numpy()
    a, b = X[:, 3].numpy(), X2[:, 3].numpy()
    np.testing.assert_allclose(cross, np.exp(-np.abs(a[:, None] - b[None, :]) / 0.5), atol=1e-12)


# -- priors and fixed values -------------------------------------------------------------------
def test_priors_land_on_compiled_modules():
    graph = KernelGraph(
        ScaleNode(
            SumNode(
                (
                    MaternNode(("log_lr",), lengthscale_prior=Gamma(3.0, 6.0)),
                    RQNode(("momentum",), lengthscale_prior=LogNormal(-0.5, 0.8), alpha_prior=Gamma(2.0, 1.0)),
                    PeriodicNode(("dropout",), period_prior=LogNormal(0.0, 0.5)),
                    LinearNode(("log_wd",), variance_prior=Gamma(1.5, 2.5)),
                )
            ),
            outputscale_prior=Gamma(2.0, 0.15),
        )
    )
    k = ck(graph, FEATURES, dtype=torch.float64)
    priors = {name: (module, prior, closure) for name, module, prior, closure, _ in k.named_priors()}
    assert set(priors) == {
        "outputscale_prior",
        "base_kernel.kernels.0.lengthscale_prior",
        "base_kernel.kernels.1.lengthscale_prior",
        "base_kernel.kernels.1.alpha_prior",
        "base_kernel.kernels.2.period_length_prior",
        "base_kernel.kernels.3.variance_prior",
    }
    expected = {
        "outputscale_prior": (GammaPrior, ("concentration", 2.0), ("rate", 0.15)),
        "base_kernel.kernels.0.lengthscale_prior": (GammaPrior, ("concentration", 3.0), ("rate", 6.0)),
        "base_kernel.kernels.1.lengthscale_prior": (LogNormalPrior, ("loc", -0.5), ("scale", 0.8)),
        "base_kernel.kernels.1.alpha_prior": (GammaPrior, ("concentration", 2.0), ("rate", 1.0)),
        "base_kernel.kernels.2.period_length_prior": (LogNormalPrior, ("loc", 0.0), ("scale", 0.5)),
        "base_kernel.kernels.3.variance_prior": (GammaPrior, ("concentration", 1.5), ("rate", 2.5)),
    }
    for name, (cls, (pa, va), (pb, vb)) in expected.items():
        module, prior, closure = priors[name]
        assert type(prior) is cls
        assert float(getattr(prior, pa)) == pytest.approx(va) and float(getattr(prior, pb)) == pytest.approx(vb)
    # The closures read the right hyperparameter: log-density against torch.distributions.
    module, prior, closure = priors["base_kernel.kernels.1.alpha_prior"]
    module.alpha = 1.3
    ref = torch.distributions.Gamma(torch.tensor(2.0), torch.tensor(1.0)).log_prob(torch.tensor(1.3))
    assert prior.log_prob(closure(module)).sum().item() == pytest.approx(ref.item())
    module, prior, closure = priors["base_kernel.kernels.0.lengthscale_prior"]
    module.lengthscale = 0.4
    ref = torch.distributions.Gamma(torch.tensor(3.0), torch.tensor(6.0)).log_prob(torch.tensor(0.4))
    assert prior.log_prob(closure(module)).sum().item() == pytest.approx(ref.item())


def test_fixed_values_are_set_and_frozen():
    graph = parse_kernel(
        "scale(matern52(log_lr, momentum; lengthscale=0.25) + periodic(dropout; period=1.5)"
        " + rq(log_wd; alpha=3) + linear(log_batch; variance=0.2); outputscale=2)"
    )
    k = ck(graph, FEATURES)
    mat, per, rq, lin = k.base_kernel.kernels
    assert close(k.outputscale, 2.0) and not k.raw_outputscale.requires_grad
    assert close(mat.lengthscale, [[0.25, 0.25]]) and not mat.raw_lengthscale.requires_grad
    assert close(per.period_length, 1.5) and not per.raw_period_length.requires_grad
    assert per.raw_lengthscale.requires_grad  # only the fixed one is frozen
    assert close(rq.alpha, 3.0) and not rq.raw_alpha.requires_grad
    assert rq.raw_lengthscale.requires_grad
    assert close(lin.variance, 0.2) and not lin.raw_variance.requires_grad
    trainable = {n for n, p in k.named_parameters() if p.requires_grad}
    assert trainable == {"base_kernel.kernels.1.raw_lengthscale", "base_kernel.kernels.2.raw_lengthscale"}


def test_batch_shape_and_dtype():
    k = ck(parse_kernel("scale(matern52(log_lr, dropout))"), FEATURES, batch_shape=torch.Size([3]),
                       dtype=torch.float64)
    assert k.outputscale.shape == (3,)
    assert k.base_kernel.lengthscale.shape == (3, 1, 2)
    assert k.base_kernel.lengthscale.dtype == torch.float64


def test_compile_rejects_unknown_feature_and_gives_fresh_modules():
    graph = parse_kernel("rbf(log_lr) + rbf(lrate; id=bad)")
    with pytest.raises(KernelGraphError, match=r"kernel\.children\[1\]\.features: unknown feature 'lrate'") as info:
        ck(graph, FEATURES)
    assert info.value.node_id == "bad"
    g = parse_kernel("rbf(log_lr)")
    a, b = ck(g, FEATURES), ck(g, FEATURES)
    a.lengthscale = 3.0
    assert not torch.allclose(a.lengthscale, b.lengthscale)


def test_botorch_fit_leaves_fixed_values_alone():
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    graph = parse_kernel(
        "scale(matern52(a; lengthscale=0.3) + matern52(b; lengthscale~gamma(3, 6)); outputscale~gamma(2, 0.15))"
    )
    k = ck(graph, ["a", "b"])
    X = torch.rand(12, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    Y = X.sin().sum(-1, keepdim=True)
    model = SingleTaskGP(X, Y, covar_module=k, outcome_transform=Standardize(1))
    start = k.base_kernel.kernels[1].lengthscale.item()
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    fixed, free = model.covar_module.base_kernel.kernels
    assert fixed.lengthscale.item() == pytest.approx(0.3, rel=1e-12)
    assert abs(free.lengthscale.item() - start) > 1e-3
