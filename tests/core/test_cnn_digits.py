"""The cnn-digits objective: every parameter of the CNN space reaches what is trained; deterministic."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from lla_studio.core.errors import ObjectiveError
from lla_studio.core.objectives.cnn_digits import (
    CHANCE_LOSS,
    CNNDigits,
    build_network,
    cnn_digits_options,
    make_optimizer,
    parameter_groups,
    split,
)

BASE = {
    "optimizer": "sgd", "nesterov": True, "epochs": 3, "batch_size": 64,
    "weight_decay_conv1": 1e-3, "weight_decay_conv2": 2e-3, "weight_decay_conv3": 3e-3,
    "weight_decay_dense": 4e-3, "weight_decay_output": 5e-3,
    "lr_initial_fraction": 0.04, "lr_final_fraction": 0.001, "warmup_fraction": 0.3, "max_lr": 0.1,
    "max_momentum": 0.9, "min_momentum_fraction": 0.8,
    "channels_conv1": 8, "channels_conv2": 16, "channels_conv3": 16, "dense_units": 32,
}
ADAM = {k: v for k, v in BASE.items() if k not in ("nesterov", "max_momentum", "min_momentum_fraction")} | {
    "optimizer": "adam", "max_lr": 0.01}


def test_split_is_stratified_fixed_and_disjoint():
    (Xa, ya), (Xv, yv), (Xt, yt) = split(0)
    assert (len(ya), len(yv), len(yt)) == (1077, 360, 360)
    for y in (ya, yv, yt):
        counts = np.bincount(y, minlength=10)
        assert counts.min() >= 0.09 * len(y) and counts.max() <= 0.11 * len(y)
    rows = {row.tobytes() for row in Xa.reshape(len(Xa), -1)}
    assert not any(row.tobytes() in rows for row in Xt.reshape(len(Xt), -1)[:50])
    assert split(0)[0][0] is Xa  # cached, read-only
    assert not Xa.flags.writeable


def test_training_learns_and_records_metrics():
    r = CNNDigits()(BASE)
    m = r.metrics
    assert set(m) == {"train_seconds", "val_log_loss", "val_error", "test_error", "diverged"}
    assert m["diverged"] == 0.0 and m["val_error"] < 0.5 and m["val_log_loss"] < CHANCE_LOSS
    assert r.value == pytest.approx(math.log(m["val_log_loss"]))
    r_err = CNNDigits.from_options({"metric": "val_error"})(BASE)
    assert r_err.value == m["val_error"]  # the same training: only the reported value differs


def test_same_configuration_and_seed_same_value_on_any_thread_count():
    """In this process with 1 and 2 torch threads, and in a fresh process with 2 OpenMP threads:
    the same value to the last bit (the evaluation pins one intra-op thread and seeds its own
    generators)."""
    import json
    import os

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = CNNDigits()(ADAM)
        torch.set_num_threads(2)
        b = CNNDigits()(ADAM)
    finally:
        torch.set_num_threads(threads)
    assert a.value == b.value and a.metrics["test_error"] == b.metrics["test_error"]
    code = (
        "import json, sys, torch; torch.set_num_threads(2); torch.manual_seed(123); "
        "from lla_studio.core.objectives.cnn_digits import CNNDigits; print(repr(CNNDigits()(json.loads(sys.argv[1])).value))"
    )
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(ADAM)], capture_output=True, text=True, check=True, env=env)
    assert float(out.stdout.split()[-1]) == a.value
    assert CNNDigits.from_options({"seed": 1})(ADAM).value != a.value  # the seed matters


def test_weight_decay_reaches_each_layers_group_and_biases_are_not_decayed():
    net = build_network(BASE, torch.Generator().manual_seed(0))
    groups = {g["name"]: g for g in parameter_groups(net, BASE)}
    for i, layer in enumerate(("conv1", "conv2", "conv3", "dense", "output"), start=1):
        assert groups[layer]["weight_decay"] == pytest.approx(i * 1e-3)
        assert groups[layer]["params"] == [getattr(net, layer).weight]
    assert groups["biases"]["weight_decay"] == 0.0 and len(groups["biases"]["params"]) == 5


def test_widths_change_the_network():
    def count(config):
        return sum(p.numel() for p in build_network(config, torch.Generator().manual_seed(0)).parameters())

    base = count(BASE)
    for key in ("channels_conv1", "channels_conv2", "channels_conv3", "dense_units"):
        assert count(BASE | {key: BASE[key] * 2}) > base, key
    net = build_network(BASE, torch.Generator().manual_seed(0))
    assert (net.conv1.out_channels, net.conv2.out_channels, net.conv3.out_channels, net.dense.out_features) == (8, 16, 16, 32)


def test_one_cycle_schedule_and_momentum_follow_the_configuration():
    net = build_network(BASE, torch.Generator().manual_seed(0))
    steps = 100
    opt, schedule = make_optimizer(net, BASE, steps)
    lrs, moms = [], []
    for _ in range(steps - 1):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        schedule.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.04 * 0.1)  # initial fraction x max_lr
    assert max(lrs) == pytest.approx(0.1)
    assert lrs.index(max(lrs)) == pytest.approx(0.3 * steps, abs=1.5)  # warm-up fraction
    assert lrs[-1] == pytest.approx(0.001 * 0.1, rel=1e-6)  # final fraction x max_lr
    assert max(moms) == pytest.approx(0.9) and min(moms) == pytest.approx(0.8 * 0.9)  # cycled, inverse to lr
    assert opt.param_groups[0]["nesterov"] is True
    assert isinstance(opt, torch.optim.SGD)
    opt_adam, _ = make_optimizer(build_network(ADAM, torch.Generator().manual_seed(0)), ADAM, steps)
    assert isinstance(opt_adam, torch.optim.Adam)


def test_every_parameter_changes_the_result():
    """Each of the 19 parameters changes the trained network's validation loss (sgd for the three
    sgd-only ones); for adam the sgd-only parameters are inactive: absent from the configuration."""
    obj = CNNDigits()
    base = obj(BASE).metrics["val_log_loss"]
    changed = {
        "optimizer": None, "nesterov": False, "epochs": 4, "batch_size": 48,
        "weight_decay_conv1": 0.3, "weight_decay_conv2": 0.3, "weight_decay_conv3": 0.3,
        "weight_decay_dense": 0.3, "weight_decay_output": 0.3,
        "lr_initial_fraction": 0.3, "lr_final_fraction": 0.01, "warmup_fraction": 0.05, "max_lr": 0.2,
        "max_momentum": 0.5, "min_momentum_fraction": 0.2,
        "channels_conv1": 12, "channels_conv2": 24, "channels_conv3": 24, "dense_units": 48,
    }
    assert len(changed) == 19
    for key, value in changed.items():
        config = ADAM if key == "optimizer" else BASE | {key: value}
        assert obj(config).metrics["val_log_loss"] != base, key
    with pytest.raises(ObjectiveError, match="unknown parameter"):
        obj(ADAM | {"momentum": 0.9})


def test_a_diverging_run_is_chance_level_not_a_failure():
    r = CNNDigits()(ADAM | {"max_lr": 20.0, "lr_initial_fraction": 0.5, "epochs": 3})
    assert r.metrics["val_log_loss"] == pytest.approx(CHANCE_LOSS, abs=0.05)
    assert r.metrics["val_error"] >= 0.8
    assert r.value == pytest.approx(math.log(r.metrics["val_log_loss"]))


def test_bad_options_and_configurations_name_the_culprit():
    with pytest.raises(ObjectiveError, match=r"unknown option\(s\) \['metrc'\]"):
        cnn_digits_options({"metrc": "val_error"})
    with pytest.raises(ObjectiveError, match="option 'metric' must be one of"):
        cnn_digits_options({"metric": "accuracy"})
    with pytest.raises(ObjectiveError, match="option 'seed' must be an integer >= 0"):
        cnn_digits_options({"seed": -1})
    with pytest.raises(ObjectiveError, match="lacks epochs"):
        CNNDigits()({k: v for k, v in ADAM.items() if k != "epochs"})
    with pytest.raises(ObjectiveError, match="sgd needs max_momentum"):
        CNNDigits()({k: v for k, v in BASE.items() if k != "max_momentum"})


def test_the_cnn_digits_sessions_run_and_record_metrics(tmp_path):
    """Both shipped digits sessions read; the study records the objective's metrics per trial."""
    from dataclasses import replace
    from pathlib import Path

    from lla_studio.core.session import load_session
    from lla_studio.core.study import Study

    sessions = Path(__file__).resolve().parents[2] / "resources" / "sessions"
    hands_on = load_session(sessions / "cnn_digits_hands_on.json")
    default = load_session(sessions / "cnn_digits_default.json")
    assert hands_on.search_space == default.search_space and default.kernel is None
    assert len(hands_on.kernel.leaves()) == 42 and hands_on.search_space.dim == 19
    small = replace(hands_on, loop=replace(hands_on.loop, initial_design=2, budget=2))
    study = Study(small)
    list(study.run())
    done = [t for t in study.session.trials if t.status == "completed"]
    assert len(done) == 2
    for t in done:
        assert set(t.metrics) == {"train_seconds", "val_log_loss", "val_error", "test_error", "diverged"}
        assert t.value == pytest.approx(math.log(t.metrics["val_log_loss"]))
