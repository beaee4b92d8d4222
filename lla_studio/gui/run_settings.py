"""Run settings in the window: the loop (initial design, batch size, ...) and the acquisition with
its options, as a pyqtgraph ``ParameterTree`` form.

The form is made from the spec dataclasses' own fields (``LoopSettings``, ``AcquisitionSpec``):
a scalar field the core adds appears here without a change to this file. An edit builds the new
spec, whose constructor checks it; a refused value is shown under the form, in red, with the
session's JSON path, and nothing is sent. A valid one is announced with :attr:`RunSettingsPanel.edited`
(``"loop"`` or ``"acquisition"`` and the new spec); the window makes it one undoable command of the
session document. The budget and the seed live in the toolbar and are not repeated here.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from pyqtgraph.parametertree import Parameter, ParameterTree

from lla_studio.core.errors import LLAStudioError
from lla_studio.core.specs import ACQUISITIONS, AcquisitionSpec, LoopSettings

__all__ = ["RunSettingsPanel"]

_IN_TOOLBAR = {"budget", "seed"}
_TITLES = {
    "initial_design": "initial design (Sobol trials)",
    "batch_size": "batch size (proposals per round)",
    "type": "acquisition",
    "beta": "UCB beta",
    "num_restarts": "optimizer restarts",
    "raw_samples": "raw samples",
    "thompson_candidates": "Thompson candidates",
    "max_choice_combinations": "max choice combinations",
}
_TIPS = {
    "workers": "trials evaluated at once (worker processes; 1: one at a time in the study process)",
    "retries": "times a trial lost with its worker is evaluated again",
}


def _scalar_fields(cls: type) -> list[tuple[str, str]]:
    """``(name, kind)`` of the int / float / bool / str fields of a spec dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in _IN_TOOLBAR:
            continue
        kind = {int: "int", float: "float", bool: "bool", str: "str"}.get(hints.get(f.name))
        if kind is not None:
            out.append((f.name, kind))
    return out


class RunSettingsPanel(QWidget):
    """The loop and acquisition settings of the session; emits ``edited(section, spec)``."""

    edited = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._specs: dict[str, Any] = {"loop": LoopSettings(), "acquisition": AcquisitionSpec()}
        self._classes = {"loop": LoopSettings, "acquisition": AcquisitionSpec}
        groups = []
        for section, cls in self._classes.items():
            children = []
            for name, kind in _scalar_fields(cls):
                child: dict[str, Any] = {"name": name, "title": _TITLES.get(name, name.replace("_", " ")), "type": kind,
                                         "value": getattr(self._specs[section], name)}
                if section == "acquisition" and name == "type":
                    child.update(type="list", limits=list(ACQUISITIONS))
                if kind == "int":
                    child["limits"] = (0, None)
                if name in _TIPS:
                    child["tip"] = _TIPS[name]
                children.append(child)
            groups.append({"name": section, "title": section, "type": "group", "children": children})
        self.params = Parameter.create(name="run", type="group", children=groups)
        self.tree = ParameterTree(showHeader=False)
        self.tree.setParameters(self.params, showTop=False)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.error)
        self._loading = False
        self.params.sigTreeStateChanged.connect(self._changed)

    def set_specs(self, loop: LoopSettings, acquisition: AcquisitionSpec) -> None:
        """Show a session's settings (no signal)."""
        self._specs = {"loop": loop, "acquisition": acquisition}
        self._loading = True
        try:
            for section, spec in self._specs.items():
                group = self.params.child(section)
                for child in group.children():
                    child.setValue(getattr(spec, child.name()))
        finally:
            self._loading = False
        self.error.setText("")

    def value(self, section: str, name: str) -> Any:
        return self.params.child(section, name).value()

    def set_value(self, section: str, name: str, value: Any) -> None:
        """Type a value into the form, as a person does (for tests)."""
        self.params.child(section, name).setValue(value)

    def _changed(self, _root: Any, changes: list[tuple[Any, str, Any]]) -> None:
        if self._loading:
            return
        for param, change, _data in changes:
            if change != "value":
                continue
            section = param.parent().name()
            spec = self._specs[section]
            try:
                new = dataclasses.replace(spec, **{param.name(): param.value()})
            except LLAStudioError as err:
                path = getattr(err, "path", None) or f"{section}.{param.name()}"
                self.error.setText(f"{path}: {getattr(err, 'reason', err)}")
                continue
            except (TypeError, ValueError) as err:
                self.error.setText(f"{section}.{param.name()}: {err}")
                continue
            self.error.setText("")
            if new != spec:
                self._specs[section] = new
                self.edited.emit(section, new)
