"""Jacobian features: the factored MLP path equals torch.func's per-sample Jacobians."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

from lla_studio.core.surrogates.jacobians import (
    JacobianFeatures,
    is_linear_stack,
    network_features,
)
from lla_studio.core.surrogates.networks import ACTIVATIONS, CNNSpec, MLPSpec, build


def network_jacobian(net, theta, x, subset="all"):
    """Outputs and the dense ``m x p`` Jacobian of our features."""
    f, features = network_features(net, theta, x, subset)
    return f, features.dense()


def _reference(net, x):
    """Dense Jacobian by jacrev of the whole batch output (an independent code path)."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    jac = jacrev(lambda p: functional_call(net, p, (x,)).squeeze(-1))(params)
    return torch.cat([jac[k].reshape(x.shape[0], -1) for k in params], dim=1)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_factored_features_match_jacrev(activation):
    net = build(MLPSpec((7, 5), activation), n_inputs=3, seed=1)
    assert is_linear_stack(net)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(6, 3, dtype=torch.float64)
    y = torch.rand(4, 3, dtype=torch.float64)
    f, feats = network_features(net, theta, x)
    assert feats.is_factored and feats.n_params == sum(p.numel() for p in net.parameters())
    J = _reference(net, x)
    torch.testing.assert_close(f, net(x).squeeze(-1))
    torch.testing.assert_close(feats.dense(), J)
    _, other = network_features(net, theta, y)
    torch.testing.assert_close(feats.gram(other), J @ _reference(net, y).T)
    torch.testing.assert_close(feats.sq_norms(), (J * J).sum(-1))
    # batched leading dimensions broadcast like matmul
    torch.testing.assert_close(feats.reshape(2, 3).gram(other)[1], (J @ _reference(net, y).T)[3:])
    both = JacobianFeatures.cat([feats, other])
    torch.testing.assert_close(both.dense(), torch.cat([J, _reference(net, y)]))


def test_cnn_uses_the_generic_path():
    net = build(CNNSpec(image_shape=(4, 4), channels=(2,), dense=(3,)), n_inputs=16, seed=0)
    assert not is_linear_stack(net)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(5, 16, dtype=torch.float64)
    f, J = network_jacobian(net, theta, x)
    torch.testing.assert_close(J, _reference(net, x))
    torch.testing.assert_close(f, net(x).squeeze(-1))


def test_last_layer_features_are_penultimate_activations():
    net = build(MLPSpec((6,), "tanh"), n_inputs=2, seed=0)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(4, 2, dtype=torch.float64)
    _, J = network_jacobian(net, theta, x, "last_layer")
    torch.testing.assert_close(J, _reference(net, x)[:, -7:])


def test_features_are_differentiable_in_x():
    net = build(MLPSpec((5,), "tanh"), n_inputs=2, seed=0)
    theta = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: network_jacobian(net, theta, z)[1], (x,))
    assert torch.autograd.gradcheck(lambda z: network_features(net, theta, z)[1].sq_norms(), (x,))
