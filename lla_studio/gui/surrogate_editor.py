"""Surrogate settings editor: GP or LLA, and for an LLA its network, training and evidence tuning.

Every edit re-validates the whole options dict with the core's reader
(:func:`~lla_studio.core.surrogates.specs.lla_options`) plus one check the reader cannot make on
its own: a CNN's ``H x W`` image must hold exactly the session's features. A bad field is painted
red with the error as its tooltip, the message is shown under the form and the editor reports itself
invalid (the window disables Run) until it is fixed; a valid state is emitted with
:attr:`SurrogateEditor.spec_changed`.

The editor writes only what it owns: options it does not show (or a future core adds) are kept as
loaded, and a field left at the core's default is not written unless the loaded spec named it, so
``set_spec(s)`` followed by ``spec()`` gives back ``s``.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import MISSING, fields
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lla_studio.core.errors import NetworkSpecError, SessionError
from lla_studio.core.specs import SurrogateSpec, thaw
from lla_studio.core.surrogates.specs import ACTIVATION_NAMES, DEFAULT_NETWORK, CNNSpec, LLASettings, lla_options, network_from_dict
from lla_studio.gui.search_space_editor import report_validity

__all__ = ["SurrogateEditor", "format_ints", "parse_ints"]

_INVALID_STYLE = "background-color: rgb(255, 205, 205);"
TYPING_DELAY_MS = 400  # a typed value reaches the session once typing pauses this long
_SETTINGS_DEFAULTS: dict[str, Any] = {
    f.name: (list(f.default) if isinstance(f.default, tuple) else f.default) for f in fields(LLASettings) if f.default is not MISSING
}
_NETWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    # what the core assumes for a field a network dict leaves out (required fields are absent here)
    "mlp": {"activation": "relu"},
    "cnn": {f.name: thaw(f.default) for f in fields(CNNSpec) if f.name != "image_shape"},
}
_AUTO_MINIMUM = {"max_epochs": 0, "warm_max_epochs": 0, "patience": 1, "online_every": 1}  # None: "auto"


def parse_ints(text: str, label: str) -> list[int]:
    """``"64, 64, 64"`` (commas or spaces, optional brackets) -> ``[64, 64, 64]``; ``""`` -> ``[]``."""
    body = text.strip().removeprefix("[").removesuffix("]")
    out = []
    for token in (t for t in re.split(r"[,\s]+", body) if t):
        try:
            out.append(int(token))
        except ValueError:
            raise ValueError(f"{label}: {token!r} is not an integer (write e.g. 50, 50)") from None
    return out


def format_ints(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(str(v) for v in values)
    return "" if values is None else str(values)


def _format_float(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    return repr(value)


def _overlay(base: dict[str, Any] | None, ui: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the UI's values: a loaded value the UI did not change is kept verbatim, and a
    field the base leaves out is written only when the UI differs from the core's default."""
    out = dict(base or {})
    for key, value in ui.items():
        if key in out:
            if out[key] != value or isinstance(out[key], bool) != isinstance(value, bool):
                out[key] = value
        elif key not in defaults or defaults[key] != value:
            out[key] = value
    return out


class _FieldError(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _row(*widgets: QWidget | str, stretch: bool = True) -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        lay.addWidget(QLabel(w) if isinstance(w, str) else w)
    if stretch:
        lay.addStretch(1)
    return box


def _form(parent: QWidget) -> QFormLayout:
    form = QFormLayout(parent)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
    return form


def _combo(items: list[tuple[str, str]], tip: str = "") -> QComboBox:
    combo = QComboBox()
    for text, data in items:
        combo.addItem(text, data)
    combo.setToolTip(tip)
    return combo


class SurrogateEditor(QWidget):
    """Edits a :class:`SurrogateSpec`; emits ``spec_changed(SurrogateSpec)`` for every new valid state.

    Signals:
        spec_changed(object): A new, valid :class:`SurrogateSpec` after a user edit (never on
            :meth:`set_spec`, never twice in a row for the same spec). Typing in a text field is
            validated at every keystroke but announced once the typing pauses
            (:data:`TYPING_DELAY_MS`), on Enter or focus-out, or at :meth:`flush`; other widgets
            announce at once.
        validity_changed(bool): The editor turned valid or invalid (also after :meth:`set_spec`
            or :meth:`set_feature_count` when that flips it).
    """

    spec_changed = Signal(object)
    validity_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._loading = True
        self._bases: dict[str, dict[str, Any]] = {"gp": {}, "lla": {"network": dict(DEFAULT_NETWORK)}}
        self._current: SurrogateSpec | None = None
        self._typed: SurrogateSpec | None = None  # valid spec typed but not announced yet
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_DELAY_MS)
        self._typing.timeout.connect(self.flush)
        self.n_features: int | None = None
        self.valid = True
        self.error = ""
        self.field_errors: dict[str, str] = {}
        self._fields: dict[str, list[QWidget]] = {}

        outer = QVBoxLayout(self)
        self.type_combo = _combo(
            [("GP", "gp"), ("LLA", "lla")],
            "GP: exact Gaussian process with the kernel graph\nLLA: linearized Laplace approximation of a neural network",
        )
        self.type_caption = QLabel()
        self.type_caption.setStyleSheet("color: #555;")
        outer.addWidget(_row("Surrogate", self.type_combo, self.type_caption))

        self.pages = QStackedWidget()
        self.pages.addWidget(self._build_gp_page())
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._build_lla_page())
        self.pages.addWidget(scroll)
        outer.addWidget(self.pages, 1)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.status)

        self._wire()
        self._load_lla(self._bases["lla"])
        self._show_type("gp")
        self._loading = False
        self._current = self._evaluate()[0]

    # ------------------------------------------------------------------ building
    def _build_gp_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        note = QLabel(
            "The exact GP is defined by the <b>kernel graph</b> (Kernel graph panel): its kernels, the "
            "features each kernel sees, priors and fixed hyperparameters. Its hyperparameters and the "
            "noise are fitted by maximizing the marginal likelihood after every evaluation; there is "
            "nothing else to set here."
        )
        note.setWordWrap(True)
        note.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(note)
        lay.addStretch(1)
        return page

    def _register(self, key: str, *widgets: QWidget) -> None:
        self._fields[key] = list(widgets)
        for w in widgets:
            w.setProperty("help", w.toolTip())

    def _build_lla_page(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)

        # ---------------------------------------------------------------- network
        net = QGroupBox("Network")
        form = _form(net)
        self.network_kind = _combo([("MLP", "mlp"), ("CNN", "cnn")], "fully connected network, or a small CNN over the features read as an H × W image")
        form.addRow("kind", self.network_kind)
        pages = QWidget()
        pages_layout = QVBoxLayout(pages)
        pages_layout.setContentsMargins(0, 0, 0, 0)

        mlp = QWidget()
        mform = _form(mlp)
        mform.setContentsMargins(0, 0, 0, 0)
        self.widths = QLineEdit()
        self.widths.setMinimumWidth(180)
        self.widths.setPlaceholderText("empty: a linear model")
        self.widths.setToolTip("hidden layer widths, input to output, e.g. 50, 50")
        self.mlp_activation = _combo([(a, a) for a in ACTIVATION_NAMES], "activation after every hidden layer")
        mform.addRow("hidden widths", self.widths)
        mform.addRow("activation", self.mlp_activation)
        pages_layout.addWidget(mlp)

        cnn = QWidget()
        cform = _form(cnn)
        cform.setContentsMargins(0, 0, 0, 0)
        self.image_h, self.image_w = QSpinBox(), QSpinBox()
        for s in (self.image_h, self.image_w):
            s.setRange(1, 4096)
            s.setToolTip("the features are read as a one-channel H × W image: H·W must equal the number of features")
        self.channels = QLineEdit()
        self.channels.setMinimumWidth(180)
        self.channels.setToolTip("output channels of each convolution stage, e.g. 8, 16")
        self.kernel_size = QSpinBox()
        self.kernel_size.setRange(1, 99)
        self.kernel_size.setSingleStep(2)
        self.kernel_size.setToolTip("odd convolution kernel size (padding 'same')")
        self.dense = QLineEdit()
        self.dense.setMinimumWidth(180)
        self.dense.setPlaceholderText("empty: linear read-out")
        self.dense.setToolTip("hidden widths of the dense head after the convolutions, e.g. 32")
        self.cnn_activation = _combo([(a, a) for a in ACTIVATION_NAMES], "activation after every convolution and hidden dense layer")
        self.pool = QCheckBox("average-pool by 2 after every stage")
        cform.addRow("image H × W", _row(self.image_h, "×", self.image_w))
        cform.addRow("channels", self.channels)
        cform.addRow("kernel size", self.kernel_size)
        cform.addRow("dense widths", self.dense)
        cform.addRow("activation", self.cnn_activation)
        cform.addRow("", self.pool)
        pages_layout.addWidget(cnn)
        self.network_pages = {"mlp": mlp, "cnn": cnn}  # only the chosen kind's page is shown
        form.addRow(pages)
        self.weights_label = QLabel()
        self.weights_label.setStyleSheet("color: #555;")
        form.addRow(self.weights_label)
        lay.addWidget(net)

        # ---------------------------------------------------------------- training
        train = QGroupBox("MAP training")
        form = _form(train)
        self.subset = _combo(
            [("all weights", "all"), ("last layer", "last_layer")],
            "weights in the Laplace approximation: all (full LLA) or only the last linear layer",
        )
        form.addRow("Laplace over", self.subset)
        self.optimizer = _combo([("L-BFGS", "lbfgs"), ("Adam", "adam")], "full-batch optimizer of the MAP (one L-BFGS epoch: up to 20 line-search iterations; one Adam epoch: one step)")
        form.addRow("optimizer", self.optimizer)
        self.max_epochs, self.warm_max_epochs = QSpinBox(), QSpinBox()
        self.max_epochs.setToolTip("epoch budget when training from scratch")
        self.warm_max_epochs.setToolTip("epoch budget when starting from the previous step's weights")
        form.addRow("epochs", _row("from scratch", self.max_epochs, "  warm", self.warm_max_epochs))
        self.retrain = QCheckBox("retrain from scratch at every step")
        self.retrain.setToolTip("off: start from the previous fit's weights (warm start)")
        form.addRow("", self.retrain)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("seed of the weight initialization when training from scratch")
        form.addRow("init seed", self.seed)
        lay.addWidget(train)

        # ---------------------------------------------------------------- evidence
        tune = QGroupBox("Prior and noise (standardized targets)")
        form = _form(tune)
        self.tuning = _combo(
            [("post hoc", "posthoc"), ("online", "online"), ("none", "none")],
            "maximize the Laplace evidence over δ and σ: after training, every few epochs during training, or never",
        )
        self.online_every = QSpinBox()
        self.online_every.setToolTip("period of online tuning, in epochs")
        form.addRow("tuning", _row(self.tuning, "  every", self.online_every, "epochs"))
        self.prior_precision = QLineEdit()
        self.prior_precision.setToolTip("initial prior precision δ (the weight decay of MAP training)")
        self.tune_prior = QCheckBox("tune")
        self.tune_prior.setToolTip("tune δ on the evidence")
        self.noise_std = QLineEdit()
        self.noise_std.setToolTip("initial noise standard deviation σ, on the standardized-target scale")
        self.tune_noise = QCheckBox("tune")
        self.tune_noise.setToolTip("tune σ on the evidence")
        for e in (self.prior_precision, self.noise_std):
            e.setMaximumWidth(110)
        form.addRow("prior precision δ", _row(self.prior_precision, self.tune_prior))
        form.addRow("noise σ", _row(self.noise_std, self.tune_noise))
        lay.addWidget(tune)

        # ---------------------------------------------------------------- advanced
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setAutoRaise(True)
        lay.addWidget(self.advanced_toggle)
        self.advanced = QGroupBox()
        form = _form(self.advanced)
        self.learning_rate = QLineEdit()
        self.learning_rate.setToolTip("Adam peak step size (reached after the warm-up)")
        self.warmup = QSpinBox()
        self.warmup.setRange(0, 10**6)
        self.warmup.setToolTip("Adam linear step-size warm-up, in steps")
        form.addRow("Adam step size", _row(self.learning_rate, "  warm-up", self.warmup, "steps"))
        self.patience = QSpinBox()
        self.patience.setToolTip("early stopping: epochs without a relative improvement of the best loss")
        self.rel_tol = QLineEdit()
        self.rel_tol.setToolTip("relative loss improvement that counts as progress")
        form.addRow("patience", _row(self.patience, "  rel. tolerance", self.rel_tol))
        self.delta_lo, self.delta_hi, self.sigma_lo, self.sigma_hi = (QLineEdit() for _ in range(4))
        self.delta_lo.setToolTip("box for the tuned δ")
        self.delta_hi.setToolTip("box for the tuned δ")
        self.sigma_lo.setToolTip("box for the tuned σ")
        self.sigma_hi.setToolTip("box for the tuned σ")
        form.addRow("δ bounds", _row(self.delta_lo, "…", self.delta_hi))
        form.addRow("σ bounds", _row(self.sigma_lo, "…", self.sigma_hi))
        self.max_tuning_iterations = QSpinBox()
        self.max_tuning_iterations.setRange(1, 10**6)
        self.max_tuning_iterations.setToolTip("L-BFGS-B iterations per tuning round")
        form.addRow("tuning iterations", self.max_tuning_iterations)
        self.chunk_size = QSpinBox()
        self.chunk_size.setRange(1, 10**7)
        self.chunk_size.setToolTip("points per Jacobian chunk in prediction (memory vs speed)")
        form.addRow("Jacobian chunk", self.chunk_size)
        for e in (self.learning_rate, self.rel_tol, self.delta_lo, self.delta_hi, self.sigma_lo, self.sigma_hi):
            e.setMaximumWidth(90)
        for s in (self.max_epochs, self.warm_max_epochs, self.patience, self.online_every):
            s.setMaximum(10**6)
        self.advanced.setVisible(False)
        lay.addWidget(self.advanced)
        lay.addStretch(1)

        for key, ws in {
            "mlp.widths": (self.widths,), "mlp.activation": (self.mlp_activation,),
            "cnn.image_shape": (self.image_h, self.image_w), "cnn.channels": (self.channels,),
            "cnn.kernel_size": (self.kernel_size,), "cnn.dense": (self.dense,),
            "cnn.activation": (self.cnn_activation,), "cnn.pool": (self.pool,),
            "network.network": (self.network_kind,),
            "settings.subset_of_weights": (self.subset,), "settings.optimizer": (self.optimizer,),
            "settings.max_epochs": (self.max_epochs,), "settings.warm_max_epochs": (self.warm_max_epochs,),
            "settings.warm_start": (self.retrain,), "settings.seed": (self.seed,),
            "settings.tuning": (self.tuning,), "settings.online_every": (self.online_every,),
            "settings.prior_precision": (self.prior_precision,), "settings.tune_prior_precision": (self.tune_prior,),
            "settings.noise_std": (self.noise_std,), "settings.tune_noise": (self.tune_noise,),
            "settings.learning_rate": (self.learning_rate,), "settings.warmup": (self.warmup,),
            "settings.patience": (self.patience,), "settings.rel_tol": (self.rel_tol,),
            "settings.prior_precision_bounds": (self.delta_lo, self.delta_hi),
            "settings.noise_std_bounds": (self.sigma_lo, self.sigma_hi),
            "settings.max_tuning_iterations": (self.max_tuning_iterations,), "settings.chunk_size": (self.chunk_size,),
        }.items():
            self._register(key, *ws)
        return page

    def _wire(self) -> None:
        self.type_combo.currentIndexChanged.connect(lambda _i: self._type_changed())
        self.network_kind.currentIndexChanged.connect(lambda _i: self._kind_changed())
        self.optimizer.currentIndexChanged.connect(lambda _i: self._optimizer_changed())
        self.advanced_toggle.toggled.connect(self._toggle_advanced)
        for w in self._all_inputs():
            if isinstance(w, QLineEdit):
                w.textChanged.connect(self._typed_edit)
                w.editingFinished.connect(self.flush)
            elif isinstance(w, QComboBox):
                w.currentIndexChanged.connect(self._edited)
            elif isinstance(w, QSpinBox):
                w.valueChanged.connect(self._edited)
            elif isinstance(w, QCheckBox):
                w.toggled.connect(self._edited)

    def _all_inputs(self) -> list[QWidget]:
        return [w for ws in self._fields.values() for w in ws]

    # ------------------------------------------------------------------ public API
    def set_spec(self, spec: SurrogateSpec, n_features: int | None = None) -> None:
        """Show ``spec`` (without emitting :attr:`spec_changed`); ``n_features``: the number of
        features the surrogate sees (checks a CNN's image shape and counts the network's weights)."""
        self._loading = True
        self.n_features = n_features
        options = thaw(spec.options)
        self._bases = {"gp": {}, "lla": {"network": dict(DEFAULT_NETWORK)}}
        self._bases[spec.type] = copy.deepcopy(options)
        self._load_lla(self._bases["lla"])
        self.type_combo.setCurrentIndex(self.type_combo.findData(spec.type))
        self._show_type(spec.type)
        self._loading = False
        self._current = spec
        self._refresh(emit=False)

    def set_feature_count(self, n_features: int | None) -> None:
        """The search space changed: re-check the CNN image shape and the weight count (no spec
        is emitted, the spec did not change; :attr:`validity_changed` may fire)."""
        self.n_features = n_features
        if self.network_kind.currentData() != "cnn" and n_features:
            self._loading = True
            self._set_image_shape(_square_shape(n_features))
            self._loading = False
        self._refresh(emit=False)

    def spec(self) -> SurrogateSpec | None:
        """The edited spec, or None while a field is invalid (see :attr:`error`)."""
        return self._evaluate()[0]

    # ------------------------------------------------------------------ loading
    def _load_lla(self, options: dict[str, Any]) -> None:
        network = options.get("network", DEFAULT_NETWORK)
        network = network if isinstance(network, dict) else {}
        kind = network.get("network", "mlp")
        kind = kind if kind in ("mlp", "cnn") else "mlp"
        self.network_kind.setCurrentIndex(self.network_kind.findData(kind))
        mlp = network if kind == "mlp" else DEFAULT_NETWORK
        self.widths.setText(format_ints(mlp.get("widths", [])))
        self._set_combo(self.mlp_activation, mlp.get("activation", _NETWORK_DEFAULTS["mlp"]["activation"]))
        cnn = {**_NETWORK_DEFAULTS["cnn"], **(network if kind == "cnn" else {})}
        shape = cnn.get("image_shape") if kind == "cnn" else _square_shape(self.n_features)
        self._set_image_shape(shape)
        self.channels.setText(format_ints(cnn["channels"]))
        self.kernel_size.setValue(cnn["kernel_size"] if isinstance(cnn["kernel_size"], int) else 3)
        self.dense.setText(format_ints(cnn["dense"]))
        self._set_combo(self.cnn_activation, cnn["activation"])
        self.pool.setChecked(bool(cnn["pool"]))

        s = {**_SETTINGS_DEFAULTS, **(options.get("settings") or {})}
        self._set_combo(self.subset, s["subset_of_weights"])
        self._set_combo(self.optimizer, s["optimizer"])
        self._set_combo(self.tuning, s["tuning"])
        self._update_auto_texts()
        for name in ("max_epochs", "warm_max_epochs", "patience", "online_every"):
            spin: QSpinBox = getattr(self, name)
            value = s[name]
            spin.setValue(spin.minimum() if value is None else value if isinstance(value, int) else spin.minimum())
        for name in ("seed", "warmup", "max_tuning_iterations", "chunk_size"):
            if isinstance(s[name], int):
                getattr(self, name).setValue(s[name])
        self.retrain.setChecked(s["warm_start"] is False)
        self.tune_prior.setChecked(bool(s["tune_prior_precision"]))
        self.tune_noise.setChecked(bool(s["tune_noise"]))
        for name in ("prior_precision", "noise_std", "learning_rate", "rel_tol"):
            getattr(self, name).setText(_format_float(s[name]))
        for name, (lo, hi) in (("prior_precision_bounds", (self.delta_lo, self.delta_hi)), ("noise_std_bounds", (self.sigma_lo, self.sigma_hi))):
            pair = s[name] if isinstance(s[name], list) and len(s[name]) == 2 else ["", ""]
            lo.setText(_format_float(pair[0]))
            hi.setText(_format_float(pair[1]))
        self._update_enabled()

    def _set_image_shape(self, shape: Any) -> None:
        if isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape):
            self.image_h.setValue(shape[0])
            self.image_w.setValue(shape[1])

    @staticmethod
    def _set_combo(combo: QComboBox, data: Any) -> None:
        i = combo.findData(data)
        if i >= 0:
            combo.setCurrentIndex(i)

    # ------------------------------------------------------------------ reading
    def _ints(self, edit: QLineEdit, key: str, label: str) -> list[int]:
        try:
            return parse_ints(edit.text(), label)
        except ValueError as err:
            raise _FieldError(key, str(err)) from None

    def _float(self, edit: QLineEdit, key: str, label: str) -> float:
        text = edit.text().strip()
        try:
            value = float(text)
        except ValueError:
            raise _FieldError(key, f"{label}: {text!r} is not a number") from None
        return value

    def _network_ui(self) -> dict[str, Any]:
        if self.network_kind.currentData() == "mlp":
            return {"widths": self._ints(self.widths, "mlp.widths", "hidden widths"), "activation": self.mlp_activation.currentData()}
        return {
            "image_shape": [self.image_h.value(), self.image_w.value()],
            "channels": self._ints(self.channels, "cnn.channels", "channels"),
            "kernel_size": self.kernel_size.value(),
            "dense": self._ints(self.dense, "cnn.dense", "dense widths"),
            "activation": self.cnn_activation.currentData(),
            "pool": self.pool.isChecked(),
        }

    def _settings_ui(self) -> dict[str, Any]:
        def auto(name: str) -> int | None:
            spin: QSpinBox = getattr(self, name)
            return None if spin.value() == spin.minimum() else spin.value()

        return {
            "subset_of_weights": self.subset.currentData(),
            "optimizer": self.optimizer.currentData(),
            "max_epochs": auto("max_epochs"),
            "warm_max_epochs": auto("warm_max_epochs"),
            "warm_start": not self.retrain.isChecked(),
            "seed": self.seed.value(),
            "tuning": self.tuning.currentData(),
            "online_every": auto("online_every"),
            "prior_precision": self._float(self.prior_precision, "settings.prior_precision", "prior precision δ"),
            "tune_prior_precision": self.tune_prior.isChecked(),
            "noise_std": self._float(self.noise_std, "settings.noise_std", "noise σ"),
            "tune_noise": self.tune_noise.isChecked(),
            "learning_rate": self._float(self.learning_rate, "settings.learning_rate", "Adam step size"),
            "warmup": self.warmup.value(),
            "patience": auto("patience"),
            "rel_tol": self._float(self.rel_tol, "settings.rel_tol", "relative tolerance"),
            "prior_precision_bounds": [
                self._float(self.delta_lo, "settings.prior_precision_bounds", "δ bounds"),
                self._float(self.delta_hi, "settings.prior_precision_bounds", "δ bounds"),
            ],
            "noise_std_bounds": [
                self._float(self.sigma_lo, "settings.noise_std_bounds", "σ bounds"),
                self._float(self.sigma_hi, "settings.noise_std_bounds", "σ bounds"),
            ],
            "max_tuning_iterations": self.max_tuning_iterations.value(),
            "chunk_size": self.chunk_size.value(),
        }

    def _lla_options_ui(self) -> dict[str, Any]:
        """The base LLA options with the UI's values laid over (raises _FieldError on unparsable text)."""
        base = copy.deepcopy(self._bases["lla"])
        kind = self.network_kind.currentData()
        ui = self._network_ui()
        base_net = base.get("network")
        if base_net is None and kind == DEFAULT_NETWORK["network"] and all(DEFAULT_NETWORK.get(k) == v for k, v in ui.items()):
            pass  # still the implicit default network: leave it implicit
        elif isinstance(base_net, dict) and base_net.get("network") == kind:
            base["network"] = _overlay(base_net, ui, _NETWORK_DEFAULTS[kind])
        else:
            base["network"] = {"network": kind, **ui}
        settings = _overlay(base.get("settings"), self._settings_ui(), _SETTINGS_DEFAULTS)
        if settings or "settings" in base:
            base["settings"] = settings
        return base

    def _evaluate(self) -> tuple[SurrogateSpec | None, dict[str, str], str]:
        """(spec or None, {field key: message}, message)."""
        kind = self.type_combo.currentData()
        if kind == "gp":
            return SurrogateSpec("gp", copy.deepcopy(self._bases["gp"])), {}, ""
        try:
            options = self._lla_options_ui()
        except _FieldError as err:
            return None, {err.key: str(err)}, str(err)
        try:
            lla_options(options, "surrogate")
        except SessionError as err:
            key = self._culprit(err)
            return None, ({key: str(err)} if key else {}), str(err)
        network = options.get("network", DEFAULT_NETWORK)
        if network.get("network") == "cnn" and self.n_features is not None:
            h, w = network["image_shape"]
            if h * w != self.n_features:
                msg = (
                    f"surrogate.network: image_shape: {h}×{w} = {h * w} pixels, but the surrogate sees "
                    f"{self.n_features} features (H·W must equal the number of features)"
                )
                return None, {"cnn.image_shape": msg}, msg
        return SurrogateSpec("lla", options), {}, ""

    def _culprit(self, err: SessionError) -> str | None:
        section = err.path.rsplit(".", 1)[-1]
        name = re.split(r"[\[:]", err.reason, maxsplit=1)[0].strip()
        if section == "network":
            key = "network.network" if name == "network" else f"{self.network_kind.currentData()}.{name}"
        elif section == "settings":
            key = f"settings.{name}"
        else:
            return None
        return key if key in self._fields else None

    # ------------------------------------------------------------------ reacting
    def _edited(self, *_args: Any) -> None:
        if self._loading:
            return
        self._update_enabled()
        self._refresh(emit=True)

    def _typed_edit(self, *_args: Any) -> None:
        if self._loading:
            return
        self._update_enabled()
        self._refresh(emit=True, defer=True)

    def flush(self) -> None:
        """Announce a typed spec that waits for the typing pause now (no-op when none waits)."""
        self._typing.stop()
        spec, self._typed = self._typed, None
        if spec is not None and spec != self._current:
            self._current = spec
            self.spec_changed.emit(spec)

    def _type_changed(self) -> None:
        if self._loading:
            return
        self._show_type(self.type_combo.currentData())
        self._refresh(emit=True)

    def _kind_changed(self) -> None:
        for kind, page in self.network_pages.items():
            page.setVisible(kind == self.network_kind.currentData())

    def _optimizer_changed(self) -> None:
        self._update_auto_texts()

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _show_type(self, kind: str) -> None:
        self.pages.setCurrentIndex(0 if kind == "gp" else 1)
        self._kind_changed()
        self.type_caption.setText(
            "exact Gaussian process (kernel graph)" if kind == "gp" else "linearized Laplace approximation of a network"
        )

    def _update_auto_texts(self) -> None:
        defaults = LLASettings(optimizer=self.optimizer.currentData() or "lbfgs")
        for name, minimum in _AUTO_MINIMUM.items():
            spin: QSpinBox = getattr(self, name)
            spin.setMinimum(minimum - 1)  # one below the smallest valid value means "auto" (None)
            spin.setSpecialValueText(f"auto ({defaults.budget(name)})")

    def _update_enabled(self) -> None:
        adam = self.optimizer.currentData() == "adam"
        self.learning_rate.setEnabled(adam)
        self.warmup.setEnabled(adam)
        self.warm_max_epochs.setEnabled(not self.retrain.isChecked())
        tuning = self.tuning.currentData()
        self.online_every.setEnabled(tuning == "online")
        for w in (self.tune_prior, self.tune_noise, self.delta_lo, self.delta_hi, self.sigma_lo, self.sigma_hi, self.max_tuning_iterations):
            w.setEnabled(tuning != "none")

    def _refresh(self, emit: bool, defer: bool = False) -> None:
        spec, errors, message = self._evaluate()
        self._paint(errors, message)
        self._update_weights()
        if defer and emit:
            # the newest valid typed state waits for the pause; an invalid or unchanged one cancels it
            self._typed = spec if spec is not None and spec != self._current else None
            if self._typed is None:
                self._typing.stop()
            else:
                self._typing.start()
            return
        self._typing.stop()
        self._typed = None
        if spec is not None and spec != self._current:
            self._current = spec
            if emit:
                self.spec_changed.emit(spec)

    def _update_weights(self) -> None:
        if self.type_combo.currentData() != "lla":
            return
        try:
            ui = self._network_ui()
        except _FieldError:
            self.weights_label.setText("")
            return
        kind = self.network_kind.currentData()
        if kind == "mlp":
            if self.n_features is None:
                self.weights_label.setText("")
                return
            d = self.n_features
        else:
            d = ui["image_shape"][0] * ui["image_shape"][1]
        if any(v < 1 for v in ui.get("widths", []) + ui.get("channels", []) + ui.get("dense", [])) or (
            kind == "cnn" and not ui["channels"]
        ):
            self.weights_label.setText("")
            return
        try:
            total, last = network_from_dict({"network": kind, **ui}).n_weights(d)
        except NetworkSpecError:  # a field the form marks invalid
            self.weights_label.setText("")
            return
        which = "features" if kind == "mlp" or self.n_features == d else "pixels"
        self.weights_label.setText(f"{d} {which} → {total:,} weights ({last:,} in the last layer)".replace(",", " "))

    def _paint(self, errors: dict[str, str], message: str) -> None:
        self.field_errors = errors
        for key, widgets in self._fields.items():
            for w in widgets:
                bad = key in errors
                w.setStyleSheet(_INVALID_STYLE if bad else "")
                w.setToolTip(errors[key] if bad else w.property("help") or "")
        report_validity(self, message)


def _square_shape(n: int | None) -> list[int]:
    """The most square ``[h, w]`` with ``h * w == n`` (``h <= w``); ``[8, 8]`` when n is unknown."""
    if not n or n < 1:
        return [8, 8]
    h = math.isqrt(n)
    while n % h:
        h -= 1
    return [h, n // h]
