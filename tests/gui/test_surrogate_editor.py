"""SurrogateEditor: round trips, GP <-> LLA, network and settings edits through the real child widgets,
inline validation (red field, tooltip, status, validity signal) and preservation of what it does not show."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from lla_studio.core.session import load_session
from lla_studio.core.specs import SurrogateSpec, thaw
from lla_studio.core.surrogates.lla import LLASettings
from lla_studio.core.surrogates.lla_fit import DEFAULT_NETWORK, lla_options
from lla_studio.core.surrogates.networks import MLPSpec, build, network_from_dict
from lla_studio.gui import surrogate_editor as module
from lla_studio.gui.surrogate_editor import SurrogateEditor


def _type(line_edit, text: str) -> None:
    """Type ``text`` and press Enter (a typed value is announced on Enter or after a pause)."""
    line_edit.setText(text)
    line_edit.editingFinished.emit()


ROOT = Path(__file__).resolve().parents[2]
SESSIONS = sorted(
    [*(ROOT / "resources" / "sessions").glob("*.json"), *(ROOT / "lla_studio" / "resources" / "sessions").glob("*.json"),
     *(ROOT / "tests" / "data" / "sessions").glob("*.json")]
)
RED = "255, 205, 205"

LLA_SPECS = [
    SurrogateSpec("lla", {}),  # network and settings implicit
    SurrogateSpec("lla", {"network": dict(DEFAULT_NETWORK)}),
    SurrogateSpec("lla", {"network": {"network": "mlp", "widths": [16]}}),  # activation left to the core
    SurrogateSpec("lla", {"network": {"network": "mlp", "widths": [], "activation": "identity"}}),
    SurrogateSpec(
        "lla",
        {
            "network": {"network": "mlp", "widths": [50, 50], "activation": "tanh"},
            "settings": {
                "subset_of_weights": "last_layer", "optimizer": "adam", "learning_rate": 0.003, "max_epochs": None,
                "warm_max_epochs": 25, "warm_start": False, "seed": 7, "tuning": "online", "online_every": 10,
                "prior_precision": 1, "noise_std": 0.05, "tune_noise": False, "patience": 40, "rel_tol": 1e-4,
                "prior_precision_bounds": [1e-3, 1e3], "noise_std_bounds": [0.001, 2.0],
                "max_tuning_iterations": 50, "chunk_size": 512, "warmup": 10,
            },
        },
    ),
    SurrogateSpec("lla", {"network": {"network": "cnn", "image_shape": [8, 8]}, "settings": {"tuning": "none"}}),
    SurrogateSpec(
        "lla",
        {"network": {"network": "cnn", "image_shape": [8, 8], "channels": [4], "kernel_size": 5, "dense": [],
                     "activation": "gelu", "pool": False}},
    ),
]


@pytest.fixture
def editor(qtbot):
    ed = SurrogateEditor()
    qtbot.addWidget(ed)
    ed.emitted = []
    ed.validity = []
    ed.spec_changed.connect(ed.emitted.append)
    ed.validity_changed.connect(ed.validity.append)
    return ed


def _lla(editor: SurrogateEditor, n_features: int = 2) -> None:
    editor.set_spec(SurrogateSpec("gp"), n_features=n_features)
    editor.type_combo.setCurrentText("LLA")


# ---------------------------------------------------------------------- round trips
def test_the_shipped_sessions_are_found():
    assert len(SESSIONS) >= 5


@pytest.mark.parametrize("path", SESSIONS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_round_trip_of_each_shipped_session(editor, path):
    session = load_session(path)
    editor.set_spec(session.surrogate, session.features.num_features)
    assert editor.valid and editor.error == ""
    assert editor.spec() == session.surrogate
    assert editor.emitted == [] and editor.validity == []


@pytest.mark.parametrize("spec", LLA_SPECS, ids=range(len(LLA_SPECS)))
def test_round_trip_of_lla_specs(editor, spec):
    editor.set_spec(spec, n_features=64)
    assert editor.valid, editor.error
    assert editor.type_combo.currentText() == "LLA"
    out = editor.spec()
    assert out == spec
    assert thaw(out.options) == thaw(spec.options)  # nothing added, nothing dropped
    assert editor.emitted == []


def test_loaded_values_are_shown(editor):
    editor.set_spec(LLA_SPECS[4], n_features=3)
    assert editor.widths.text() == "50, 50"
    assert editor.mlp_activation.currentText() == "tanh"
    assert editor.subset.currentData() == "last_layer"
    assert editor.optimizer.currentText() == "Adam"
    assert editor.retrain.isChecked() and not editor.warm_max_epochs.isEnabled()
    assert editor.max_epochs.text() == "auto (2000)"  # None: the optimizer's default
    assert editor.warm_max_epochs.value() == 25
    assert editor.tuning.currentData() == "online" and editor.online_every.value() == 10
    assert editor.tune_prior.isChecked() and not editor.tune_noise.isChecked()
    assert float(editor.prior_precision.text()) == 1.0 and float(editor.noise_std.text()) == 0.05
    assert editor.seed.value() == 7


# ---------------------------------------------------------------------- GP <-> LLA
def test_gp_shows_only_a_note_about_the_kernel_graph(editor):
    editor.set_spec(SurrogateSpec("gp"), n_features=2)
    assert editor.pages.currentIndex() == 0
    assert "kernel graph" in editor.pages.currentWidget().findChildren(QLabel)[0].text()


def test_switching_gp_to_lla_yields_the_default_network(editor, qtbot):
    editor.set_spec(SurrogateSpec("gp"), n_features=2)
    with qtbot.waitSignal(editor.spec_changed, timeout=1000) as blocker:
        editor.type_combo.setCurrentText("LLA")
    spec = blocker.args[0]
    assert spec.type == "lla"
    assert thaw(spec.options) == {"network": DEFAULT_NETWORK}
    net, settings = lla_options(spec.options)
    assert net == MLPSpec((50, 50), "tanh") and settings == LLASettings()
    assert editor.weights_label.text() == "2 features → 2 751 weights (51 in the last layer)"
    assert editor.emitted == [spec] and editor.validity == []


def test_lla_to_gp_and_back_keeps_the_edits(editor):
    editor.set_spec(SurrogateSpec("gp"), n_features=2)
    editor.type_combo.setCurrentText("LLA")
    _type(editor.widths, "8")
    editor.type_combo.setCurrentText("GP")
    assert editor.emitted[-1] == SurrogateSpec("gp")  # a GP takes no options (the reader refuses any)
    editor.type_combo.setCurrentText("LLA")
    assert thaw(editor.emitted[-1].options)["network"]["widths"] == [8]


def test_a_gp_spec_with_options_is_refused_like_the_reader_refuses_it():
    from lla_studio.core.errors import SessionError

    with pytest.raises(SessionError, match=r"surrogate: a GP surrogate takes no options .*\['kernal'\]"):
        SurrogateSpec("gp", {"kernal": "rbf"})


# ---------------------------------------------------------------------- network edits
def test_edit_widths_and_activation(editor, qtbot):
    _lla(editor)
    _type(editor.widths, "64, 64, 64")
    with qtbot.waitSignal(editor.spec_changed, timeout=1000) as blocker:
        editor.mlp_activation.setCurrentText("relu")
    spec = blocker.args[0]
    assert thaw(spec.options["network"]) == {"network": "mlp", "widths": [64, 64, 64], "activation": "relu"}
    net, _ = lla_options(spec.options)
    assert net == MLPSpec((64, 64, 64), "relu")
    assert editor.spec() == spec and editor.valid


def test_zero_width_is_flagged_inline_and_not_emitted(editor):
    _lla(editor)
    before = list(editor.emitted)
    _type(editor.widths, "0, 50")
    assert editor.emitted == before
    assert editor.validity == [False]
    assert not editor.valid and editor.spec() is None
    assert RED in editor.widths.styleSheet()
    assert "width" in editor.widths.toolTip() and "got 0" in editor.widths.toolTip()
    assert "widths[0]" in editor.status.text()
    assert editor.mlp_activation.styleSheet() == ""  # only the culprit is red
    _type(editor.widths, "20, 50")
    assert editor.validity == [False, True]
    assert editor.widths.styleSheet() == "" and editor.widths.toolTip().startswith("hidden layer widths")
    assert thaw(editor.emitted[-1].options["network"])["widths"] == [20, 50]
    assert editor.status.text() == ""


def test_unparsable_widths_and_numbers_name_the_field(editor):
    _lla(editor)
    _type(editor.widths, "50, fifty")
    assert not editor.valid and "'fifty' is not an integer" in editor.widths.toolTip()
    _type(editor.widths, "[32 32]")  # brackets and spaces are fine
    assert editor.valid and thaw(editor.emitted[-1].options["network"])["widths"] == [32, 32]
    _type(editor.noise_std, "abc")
    assert not editor.valid and RED in editor.noise_std.styleSheet() and "noise σ" in editor.noise_std.toolTip()
    _type(editor.noise_std, "-1")
    assert "noise_std: must be a number > 0" in editor.noise_std.toolTip()
    _type(editor.noise_std, "0.2")
    assert editor.valid and thaw(editor.emitted[-1].options["settings"]) == {"noise_std": 0.2}


def test_empty_widths_is_a_linear_model(editor):
    _lla(editor)
    _type(editor.widths, "")
    assert editor.valid
    assert network_from_dict(thaw(editor.emitted[-1].options["network"])) == MLPSpec((), "tanh")
    assert editor.weights_label.text() == "2 features → 3 weights (3 in the last layer)"


def test_cnn_image_must_match_the_feature_count(editor):
    _lla(editor, n_features=2)
    before = list(editor.emitted)
    editor.network_kind.setCurrentText("CNN")  # 1x2, pooled twice: invalid from the start
    editor.image_h.setValue(8)
    editor.image_w.setValue(8)
    editor.pool.setChecked(False)
    assert not editor.valid and editor.emitted == before
    tip = editor.image_h.toolTip()
    assert "64" in tip and "2 features" in tip and tip == editor.image_w.toolTip()
    assert RED in editor.image_h.styleSheet() and RED in editor.image_w.styleSheet()
    assert "64" in editor.status.text() and "2" in editor.status.text()
    editor.set_feature_count(64)  # the search space grew: now it fits, nothing is emitted
    assert editor.valid and editor.validity[-1] is True and editor.emitted == before
    editor.kernel_size.setValue(5)
    spec = editor.emitted[-1]
    net = network_from_dict(thaw(spec.options["network"]))
    assert net.image_shape == (8, 8) and net.kernel_size == 5 and not net.pool


def test_cnn_core_errors_land_on_their_fields(editor):
    _lla(editor, n_features=4)
    editor.network_kind.setCurrentText("CNN")
    assert (editor.image_h.value(), editor.image_w.value()) == (2, 2)  # the most square image of 4 features
    assert not editor.valid and "pools a 2x2 image below 1x1" in editor.channels.toolTip()  # 2 stages of pooling
    _type(editor.channels, "3")
    assert editor.valid
    editor.kernel_size.setValue(4)
    assert not editor.valid and "odd" in editor.kernel_size.toolTip()


@pytest.mark.parametrize(
    "network, n",
    [({"network": "mlp", "widths": [7, 5], "activation": "relu"}, 3),
     ({"network": "cnn", "image_shape": [8, 6], "channels": [3, 4], "kernel_size": 3, "dense": [9], "pool": True}, 48),
     ({"network": "cnn", "image_shape": [5, 5], "channels": [2], "kernel_size": 5, "dense": [], "pool": False}, 25)],
)
def test_weight_count_matches_the_built_network(network, n):
    net = build(network_from_dict(network), n)
    assert network_from_dict(network).n_weights(n) == (sum(p.numel() for p in net.parameters()), sum(p.numel() for p in net[-1].parameters()))


# ---------------------------------------------------------------------- settings
def test_retrain_from_scratch_sets_warm_start_false(editor, qtbot):
    _lla(editor)
    with qtbot.waitSignal(editor.spec_changed, timeout=1000) as blocker:
        editor.retrain.setChecked(True)
    assert thaw(blocker.args[0].options["settings"]) == {"warm_start": False}
    assert lla_options(blocker.args[0].options)[1].warm_start is False
    assert not editor.warm_max_epochs.isEnabled()
    editor.retrain.setChecked(False)
    assert "settings" not in editor.emitted[-1].options  # back to the default: nothing written


def test_training_and_tuning_fields(editor):
    _lla(editor)
    editor.subset.setCurrentText("last layer")
    editor.optimizer.setCurrentText("Adam")
    assert editor.learning_rate.isEnabled() and editor.max_epochs.text() == "auto (2000)"
    editor.max_epochs.setValue(500)
    editor.warm_max_epochs.setValue(0)  # zero warm epochs is a legal budget, distinct from auto
    editor.tuning.setCurrentText("online")
    editor.online_every.setValue(25)
    editor.tune_prior.setChecked(False)
    _type(editor.prior_precision, "3.5")
    editor.seed.setValue(11)
    editor.advanced_toggle.setChecked(True)
    assert editor.advanced.isVisibleTo(editor)
    _type(editor.delta_hi, "100")
    editor.chunk_size.setValue(256)
    settings = thaw(editor.emitted[-1].options["settings"])
    assert settings == {
        "subset_of_weights": "last_layer", "optimizer": "adam", "max_epochs": 500, "warm_max_epochs": 0,
        "tuning": "online", "online_every": 25, "tune_prior_precision": False, "prior_precision": 3.5, "seed": 11,
        "prior_precision_bounds": [0.0001, 100.0], "chunk_size": 256,
    }
    parsed = lla_options(editor.emitted[-1].options)[1]
    assert parsed.budget("max_epochs") == 500 and parsed.budget("patience") == 50
    editor.max_epochs.setValue(editor.max_epochs.minimum())  # back to auto
    assert "max_epochs" not in editor.emitted[-1].options["settings"]
    editor.tuning.setCurrentText("none")
    assert not editor.tune_noise.isEnabled() and not editor.online_every.isEnabled()


def test_bounds_errors_mark_both_ends(editor):
    _lla(editor)
    editor.advanced_toggle.setChecked(True)
    _type(editor.sigma_lo, "3")
    assert not editor.valid
    assert "noise_std_bounds: needs low < high" in editor.sigma_lo.toolTip()
    assert RED in editor.sigma_lo.styleSheet() and RED in editor.sigma_hi.styleSheet()


# ---------------------------------------------------------------------- preservation
def test_explicit_defaults_are_kept_and_no_defaults_are_added(editor):
    spec = SurrogateSpec("lla", {"network": {"network": "mlp", "widths": [10], "activation": "relu"},
                                 "settings": {"seed": 0, "rel_tol": 0.0001, "chunk_size": 2048}})
    editor.set_spec(spec, n_features=2)
    _type(editor.widths, "12")
    options = thaw(editor.emitted[-1].options)
    assert options == {"network": {"network": "mlp", "widths": [12], "activation": "relu"},
                       "settings": {"seed": 0, "rel_tol": 0.0001, "chunk_size": 2048}}


def test_fields_unknown_to_the_editor_are_preserved(editor, monkeypatch):
    """A newer core may accept options this editor does not show: they ride along through edits."""
    monkeypatch.setattr(module, "lla_options", lambda options, path="surrogate": (None, None))
    spec = SurrogateSpec("lla", {"network": {"network": "mlp", "widths": [10], "dropout": 0.1},
                                 "settings": {"future_knob": [1, 2]}, "ensemble": 3})
    editor.set_spec(spec, n_features=2)
    assert editor.spec() == spec
    _type(editor.widths, "11")
    editor.seed.setValue(4)
    assert thaw(editor.emitted[-1].options) == {
        "network": {"network": "mlp", "widths": [11], "dropout": 0.1},
        "settings": {"future_knob": [1, 2], "seed": 4},
        "ensemble": 3,
    }


def test_an_unknown_setting_is_reported_not_dropped(editor):
    spec = SurrogateSpec("lla", {"settings": {"future_knob": 1}})
    editor.set_spec(spec, n_features=2)
    assert not editor.valid and "future_knob: unknown LLA setting" in editor.status.text()
    assert editor.validity == [False]
    editor.seed.setValue(3)
    assert editor.emitted == [] and "future_knob" in editor.status.text()


def test_set_spec_does_not_emit_and_resets_validity(editor):
    _lla(editor)
    _type(editor.widths, "0")
    assert editor.validity == [False]
    n = len(editor.emitted)
    editor.set_spec(SurrogateSpec("lla", {"network": {"network": "mlp", "widths": [5]}}), n_features=2)
    assert editor.valid and editor.validity == [False, True] and len(editor.emitted) == n
    assert editor.widths.styleSheet() == "" and editor.status.text() == ""


# ---------------------------------------------------------------------- typing
def test_typing_is_checked_at_once_and_announced_when_it_pauses(editor, qtbot):
    _lla(editor)
    before = len(editor.emitted)
    editor.widths.setText("6")  # keystrokes, no Enter
    editor.widths.setText("64")
    assert editor.valid and len(editor.emitted) == before  # checked, not announced yet
    editor.widths.setText("64, 0")  # invalid: red at once, nothing waits to be announced
    assert not editor.valid and RED in editor.widths.styleSheet()
    qtbot.wait(module.TYPING_DELAY_MS + 200)
    assert len(editor.emitted) == before
    editor.widths.setText("64, 6")
    editor.widths.setText("64, 64")
    qtbot.waitUntil(lambda: len(editor.emitted) == before + 1, timeout=3000)
    assert thaw(editor.emitted[-1].options)["network"]["widths"] == [64, 64]  # the last state only
    qtbot.wait(module.TYPING_DELAY_MS + 200)
    assert len(editor.emitted) == before + 1


def test_flush_and_other_widgets_announce_a_typed_value_at_once(editor):
    _lla(editor)
    before = len(editor.emitted)
    editor.widths.setText("12")
    editor.flush()
    assert thaw(editor.emitted[-1].options)["network"]["widths"] == [12] and len(editor.emitted) == before + 1
    editor.flush()  # nothing waits
    assert len(editor.emitted) == before + 1
    editor.widths.setText("7")
    editor.mlp_activation.setCurrentIndex(editor.mlp_activation.findData("gelu"))  # carries the typed 7 along
    net = thaw(editor.emitted[-1].options)["network"]
    assert (net["widths"], net["activation"]) == ([7], "gelu") and len(editor.emitted) == before + 2
