"""The posterior lab's model form: one editor per field of the model (numbers, integers, flags,
text, pairs, optional integers), made from the torch-free field metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from lla_studio.engine.posterior_worker import FieldInfo


class _Editor:
    """One spec field: a widget, ``get``/``set`` and a change callback (all edits go through widgets)."""

    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        self.info = info
        self.widget = QWidget()
        self.widget.setToolTip(info.hint)
        self._changed = changed

    def get(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def set(self, value: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _double_spin(value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(4)
    spin.setRange(-1e6, 1e6)
    spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
    spin.setValue(float(value))
    spin.setMinimumWidth(70)
    return spin


class _FloatEditor(_Editor):
    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        super().__init__(info, changed)
        self.spin = _double_spin(info.value)
        self.spin.setObjectName(f"field_{info.name}")
        self.spin.setToolTip(info.hint)
        self.widget = self.spin
        self.spin.valueChanged.connect(lambda _v: changed())

    def get(self) -> float:
        return float(self.spin.value())

    def set(self, value: Any) -> None:
        self.spin.setValue(float(value))


class _IntEditor(_Editor):
    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        super().__init__(info, changed)
        self.spin = QSpinBox()
        self.spin.setRange(-1_000_000, 1_000_000)
        self.spin.setValue(int(info.value))
        self.spin.setObjectName(f"field_{info.name}")
        self.widget = self.spin
        self.spin.valueChanged.connect(lambda _v: changed())

    def get(self) -> int:
        return int(self.spin.value())

    def set(self, value: Any) -> None:
        self.spin.setValue(int(value))


class _BoolEditor(_Editor):
    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        super().__init__(info, changed)
        self.box = QCheckBox()
        self.box.setChecked(bool(info.value))
        self.box.setObjectName(f"field_{info.name}")
        self.widget = self.box
        self.box.toggled.connect(lambda _v: changed())

    def get(self) -> bool:
        return bool(self.box.isChecked())

    def set(self, value: Any) -> None:
        self.box.setChecked(bool(value))


class _TextEditor(_Editor):
    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        super().__init__(info, changed)
        self.line = QLineEdit(str(info.value))
        self.line.setObjectName(f"field_{info.name}")
        self.line.setToolTip(info.hint)
        self.line.setPlaceholderText("log density in a and b")
        self.widget = self.line
        self.line.textChanged.connect(lambda _t: changed())

    def get(self) -> str:
        return self.line.text()

    def set(self, value: Any) -> None:
        self.line.setText(str(value))


class _PairEditor(_Editor):
    """Two floats; with ``optional`` a check box switches the pair between a value and ``None``."""

    def __init__(self, info: FieldInfo, changed: Callable[[], None], optional: bool = False) -> None:
        super().__init__(info, changed)
        layout = QHBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        start = info.value if info.value is not None else info.enabled_value
        self.check: QCheckBox | None = None
        if optional:
            self.check = QCheckBox("on")
            self.check.setObjectName(f"field_{info.name}_on")
            self.check.setChecked(info.value is not None)
            layout.addWidget(self.check)
        self.spins = []
        for part, v in zip(info.parts, start):
            label = QLabel(part)
            label.setStyleSheet("color: #555;")
            spin = _double_spin(v)
            spin.setObjectName(f"field_{info.name}_{part}")
            layout.addWidget(label)
            layout.addWidget(spin, 1)
            self.spins.append(spin)
            spin.valueChanged.connect(lambda _v: changed())
        if self.check is not None:
            self.check.toggled.connect(self._toggled)
            self._enable(self.check.isChecked())

    def _enable(self, on: bool) -> None:
        for spin in self.spins:
            spin.setEnabled(on)

    def _toggled(self, on: bool) -> None:
        self._enable(on)
        self._changed()

    def get(self) -> tuple[float, float] | None:
        if self.check is not None and not self.check.isChecked():
            return None
        return (float(self.spins[0].value()), float(self.spins[1].value()))

    def set(self, value: Any) -> None:
        if value is None:
            if self.check is None:
                raise ValueError(f"parameter '{self.info.name}' cannot be switched off")
            self.check.setChecked(False)
            return
        v0, v1 = (float(v) for v in value)
        for spin, v in zip(self.spins, (v0, v1)):
            spin.blockSignals(True)
            spin.setValue(v)
            spin.blockSignals(False)
        if self.check is not None and not self.check.isChecked():
            self.check.setChecked(True)  # emits the change
        else:
            self._changed()


class _OptionalIntEditor(_Editor):
    def __init__(self, info: FieldInfo, changed: Callable[[], None]) -> None:
        super().__init__(info, changed)
        layout = QHBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("on")
        self.check.setObjectName(f"field_{info.name}_on")
        self.check.setChecked(info.value is not None)
        self.spin = QSpinBox()
        self.spin.setRange(0, 2**31 - 1)
        self.spin.setValue(int(info.value if info.value is not None else info.enabled_value))
        self.spin.setObjectName(f"field_{info.name}")
        self.spin.setEnabled(self.check.isChecked())
        layout.addWidget(self.check)
        layout.addWidget(self.spin, 1)
        self.check.toggled.connect(self._toggled)
        self.spin.valueChanged.connect(lambda _v: changed())

    def _toggled(self, on: bool) -> None:
        self.spin.setEnabled(on)
        self._changed()

    def get(self) -> int | None:
        return int(self.spin.value()) if self.check.isChecked() else None

    def set(self, value: Any) -> None:
        if value is None:
            self.check.setChecked(False)
            return
        self.spin.blockSignals(True)
        self.spin.setValue(int(value))
        self.spin.blockSignals(False)
        if not self.check.isChecked():
            self.check.setChecked(True)
        else:
            self._changed()


def _make_editor(info: FieldInfo, changed: Callable[[], None]) -> _Editor:
    if info.kind == "float":
        return _FloatEditor(info, changed)
    if info.kind == "int":
        return _IntEditor(info, changed)
    if info.kind == "bool":
        return _BoolEditor(info, changed)
    if info.kind == "str":
        return _TextEditor(info, changed)
    if info.kind == "pair":
        return _PairEditor(info, changed)
    if info.kind == "optional-pair":
        return _PairEditor(info, changed, optional=True)
    if info.kind == "optional-int":
        return _OptionalIntEditor(info, changed)
    raise ValueError(f"no editor for field '{info.name}' of kind {info.kind!r}")


# ----------------------------------------------------------------------------------- panel
