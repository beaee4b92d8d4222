"""hands_on_kernel and default_kernel: structure, compiled values against hand-built references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gpytorch.kernels import AdditiveKernel, MaternKernel, ProductKernel, ScaleKernel
from gpytorch.priors import GammaPrior

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels import (
    Gamma,
    KernelGraph,
    MaternNode,
    ProductNode,
    ScaleNode,
    SumNode,
    default_kernel,
    format_kernel,
    hands_on_kernel,
    parse_kernel,
)
from lla_studio.core.kernels.compile import compile_kernel

FEATURES = ["momentum", "log_width", "log_lr", "dropout"]


def m(feature: str, nu: float = 2.5) -> MaternNode:
    return MaternNode((feature,), nu=nu, lengthscale_prior=Gamma(3.0, 6.0))


def s(child, id=None) -> ScaleNode:
    return ScaleNode(child, outputscale_prior=Gamma(2.0, 0.15), id=id)


def test_hands_on_structure_with_named_groups():
    g = hands_on_kernel({"opt": ["log_lr", "momentum"], "arch": ["log_width"]})
    expected = KernelGraph(
        SumNode(
            (
                s(SumNode((m("log_lr"), m("momentum"))), id="opt"),
                s(m("log_width"), id="arch"),
                s(ProductNode((SumNode((m("log_lr"), m("momentum"))), m("log_width"))), id="joint"),
            )
        )
    )
    assert g == expected
    assert format_kernel(g).startswith(
        "scale(matern52(log_lr; lengthscale~gamma(3, 6)) + matern52(momentum; lengthscale~gamma(3, 6));"
        " outputscale~gamma(2, 0.15), id=opt)"
    )
    assert parse_kernel(format_kernel(g)) == g


def test_hands_on_variants():
    plain = hands_on_kernel([["a"], ["b", "c"]], joint=False, nu=1.5, lengthscale_prior=None, outputscale_prior=None)
    assert format_kernel(plain) == "scale(matern32(a)) + scale(matern32(b) + matern32(c))"
    one = hands_on_kernel([["a", "b"]])  # one group: no joint term (it would repeat the group term)
    assert one == KernelGraph(s(SumNode((m("a"), m("b")))))
    with pytest.raises(KernelGraphError, match="needs at least one feature group"):
        hands_on_kernel([])
    with pytest.raises(KernelGraphError, match="feature group 'opt' is empty"):
        hands_on_kernel({"opt": [], "arch": ["a"]})
    with pytest.raises(KernelGraphError, match="nu must be one of"):
        hands_on_kernel([["a"]], nu=2.0)
    with pytest.raises(KernelGraphError, match="named 'joint'") as info:
        hands_on_kernel({"joint": ["a"], "b": ["b"]})
    assert info.value.node_id == "joint"


def test_hands_on_compiles_to_the_formula():
    groups = [["log_lr", "momentum"], ["log_width", "dropout"]]
    g = hands_on_kernel(groups)
    k = compile_kernel(g, FEATURES, dtype=torch.float64, batched=False)  # walks the naive module tree
    col = {f: i for i, f in enumerate(FEATURES)}
    gen = torch.Generator().manual_seed(1)
    X = torch.rand(8, 4, generator=gen, dtype=torch.float64)

    # Distinct hyperparameters everywhere, set in pre-order through both kernels.
    ls = iter([0.3, 0.5, 0.7, 0.9, 1.1, 0.4, 0.6, 0.8])
    scales = iter([1.5, 0.7, 2.2])

    def hand_sum(feats, lss):
        return AdditiveKernel(*(hand_matern(f, next(lss)) for f in feats))

    def hand_matern(f, ell):
        k1 = MaternKernel(nu=2.5, ard_num_dims=1, active_dims=torch.tensor([col[f]])).double()
        k1.lengthscale = torch.tensor(ell, dtype=torch.float64)
        return k1

    def hand_scale(base, out):
        sk = ScaleKernel(base).double()
        sk.outputscale = torch.tensor(out, dtype=torch.float64)
        return sk

    hand = AdditiveKernel(
        hand_scale(hand_sum(groups[0], ls), next(scales)),
        hand_scale(hand_sum(groups[1], ls), next(scales)),
        hand_scale(ProductKernel(hand_sum(groups[0], ls), hand_sum(groups[1], ls)), next(scales)),
    )
    # Copy the same values into the compiled kernel by walking both module trees in order.
    # (constrained values: the compiled kernel optimizes lengthscales without a softplus)
    pairs = zip(k.named_parameters_and_constraints(), hand.named_parameters_and_constraints(), strict=True)
    for (n1, p1, c1), (n2, p2, c2) in pairs:
        assert n1 == n2
        p1.data.copy_(c1.inverse_transform(c2.transform(p2.data)))
    K = k(X).to_dense().detach()
    assert torch.allclose(K, hand(X).to_dense().detach(), atol=1e-12)

    # Closed form: sum_g s_g sum_f k(x_f) + s_J prod_g sum_f k'(x_f).
    def mat52(f, ell):
        x = X[:, col[f]].numpy()
        r = np.abs(x[:, None] - x[None, :]) / ell
        return (1 + math.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-math.sqrt(5) * r)

    S1 = mat52("log_lr", 0.3) + mat52("momentum", 0.5)
    S2 = mat52("log_width", 0.7) + mat52("dropout", 0.9)
    S1j = mat52("log_lr", 1.1) + mat52("momentum", 0.4)
    S2j = mat52("log_width", 0.6) + mat52("dropout", 0.8)
    expected = 1.5 * S1 + 0.7 * S2 + 2.2 * S1j * S2j
    np.testing.assert_allclose(K.numpy(), expected, atol=1e-10)


def test_default_kernel_is_botorch_default_with_matern():
    g = default_kernel(FEATURES)
    loc = math.sqrt(2) + 0.5 * math.log(4)
    assert format_kernel(g) == f"matern52(momentum, log_width, log_lr, dropout; lengthscale~lognormal({loc!r}, {math.sqrt(3)!r}))"
    k = compile_kernel(g, FEATURES, dtype=torch.float64)
    # botorch's own default covariance module, with Matérn-5/2 instead of RBF, is the reference
    from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior

    ref = get_covar_module_with_dim_scaled_prior(ard_num_dims=4, use_rbf_kernel=False).double()
    torch.testing.assert_close(k.lengthscale, ref.lengthscale)  # both start at the prior's mode
    ls = torch.tensor([[0.2, 0.5, 0.9, 1.4]], dtype=torch.float64)
    k.lengthscale = ls
    ref.lengthscale = ls
    X = torch.rand(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(k(X).to_dense(), ref(X).to_dense(), atol=1e-12)
    total = sum(p.log_prob(c(mod)).sum() for _, mod, p, c, _ in k.named_priors())
    total_ref = sum(p.log_prob(c(mod)).sum() for _, mod, p, c, _ in ref.named_priors())
    assert total.item() == pytest.approx(total_ref.item())

