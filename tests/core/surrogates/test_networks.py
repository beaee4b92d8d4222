"""Network specs: validation, serialization, and the modules they build."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.surrogates.networks import (
    ACTIVATIONS,
    CNNSpec,
    MLPSpec,
    NetworkSpecError,
    build,
    network_from_dict,
)


def test_mlp_dict_round_trip_and_tag():
    spec = MLPSpec((50, 50), "relu")
    data = spec.to_dict()
    assert data == {"network": "mlp", "widths": [50, 50], "activation": "relu"}
    assert network_from_dict(data) == spec
    assert MLPSpec.uniform(20, 3, "tanh") == MLPSpec((20, 20, 20), "tanh")
    assert MLPSpec.uniform(20, 3).depth == 3


def test_cnn_dict_round_trip():
    spec = CNNSpec(image_shape=(8, 8), channels=(4, 8), dense=(16,), activation="gelu")
    data = spec.to_dict()
    assert data["network"] == "cnn" and data["image_shape"] == [8, 8]
    assert network_from_dict(data) == spec
    assert spec.feature_map_shape() == (8, 2, 2)


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 64), max_size=4),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
)
def test_mlp_round_trip_property(widths, activation):
    spec = MLPSpec(tuple(widths), activation)
    assert network_from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("make", "culprit"),
    [
        (lambda: MLPSpec((50, 0)), "widths[1]: width must be >= 1, got 0"),
        (lambda: MLPSpec((50,), "swish"), "activation: unknown activation 'swish'"),
        (lambda: MLPSpec((2.5,)), "widths[0]"),
        (lambda: MLPSpec.uniform(10, -1), "depth"),
        (lambda: CNNSpec(image_shape=(8,)), "image_shape"),
        (lambda: CNNSpec(image_shape=(8, 0)), "image_shape[1]"),
        (lambda: CNNSpec(channels=(4, 0)), "channels[1]"),
        (lambda: CNNSpec(channels=()), "channels"),
        (lambda: CNNSpec(kernel_size=2), "kernel_size"),
        (lambda: CNNSpec(image_shape=(4, 4), channels=(2, 2, 2)), "channels: stage 2"),
        (lambda: CNNSpec(dense=(0,)), "dense[0]"),
        (lambda: network_from_dict({"network": "rnn"}), "network: unknown network type 'rnn'"),
        (lambda: network_from_dict({"network": "mlp", "widths": [5], "lr": 1}), "lr: unknown field"),
        (lambda: network_from_dict({"network": "mlp"}), "widths: missing field"),
        (lambda: network_from_dict({"network": "cnn", "image_shape": "8x8"}), "image_shape"),
    ],
)
def test_bad_specs_name_the_field(make, culprit):
    with pytest.raises(NetworkSpecError) as info:
        make()
    assert culprit in str(info.value)
    assert isinstance(info.value, LLAStudioError) and isinstance(info.value, ValueError)


def test_cnn_shape_must_match_feature_count():
    with pytest.raises(NetworkSpecError, match=r"image_shape: 8x8 = 64 pixels does not match the 10"):
        build(CNNSpec(image_shape=(8, 8)), n_inputs=10)
    with pytest.raises(NetworkSpecError, match="n_inputs"):
        build(MLPSpec(), n_inputs=0)


def test_mlp_build_shapes_parameter_count_and_dtype():
    net = build(MLPSpec((50, 30), "tanh"), n_inputs=3, seed=1, dtype=torch.float64)
    assert isinstance(net[-1], nn.Linear) and net[-1].out_features == 1
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert sum(p.numel() for p in net.parameters()) == (3 * 50 + 50) + (50 * 30 + 30) + (30 + 1)
    assert sum(isinstance(m, nn.Tanh) for m in net) == 2
    assert net(torch.rand(7, 3, dtype=torch.float64)).shape == (7, 1)


def test_linear_model_is_a_single_linear_layer():
    net = build(MLPSpec((), "identity"), n_inputs=4)
    assert len(net) == 1 and isinstance(net[0], nn.Linear)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    net = build(MLPSpec((5,), activation), n_inputs=2, dtype=torch.float32)
    assert isinstance(net[1], ACTIVATIONS[activation])
    assert net(torch.rand(4, 2)).shape == (4, 1)


def test_build_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build(MLPSpec((8,)), 2, seed=3)
    b = build(MLPSpec((8,)), 2, seed=3)
    c = build(MLPSpec((8,)), 2, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a[0].weight, c[0].weight)


def test_cnn_build_forward_and_reshape():
    spec = CNNSpec(image_shape=(4, 6), channels=(3,), kernel_size=3, dense=(5,), pool=True)
    net = build(spec, n_inputs=24, seed=0)
    x = torch.rand(9, 24, dtype=torch.float64)
    assert net(x).shape == (9, 1)
    # the first stage sees the features as a row-major 4 x 6 image
    conv = net[1]
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 1
    img = x.reshape(9, 1, 4, 6)
    torch.testing.assert_close(net[:2](x), conv(img))
    no_pool = build(CNNSpec(image_shape=(3, 3), channels=(2,), dense=(), pool=False), 9)
    assert no_pool(torch.rand(2, 9, dtype=torch.float64)).shape == (2, 1)
