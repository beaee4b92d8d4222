"""The studio's main window: docked panels around live views, driven by the study engine.

A panel is one class plugged in with :meth:`MainWindow.add_panel` (a dock with a title). The window
keeps the current session as a frozen document; the engine owns the running study and sends
snapshots, which a ~30 Hz timer drains into the views (only the newest snapshot is drawn).
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QDockWidget,
    QSizePolicy,
    QTabBar,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from lla_studio.core.document import Command, SessionDocument
from lla_studio.core.errors import LLAStudioError
from lla_studio.core.kernels import default_kernel, format_kernel
from lla_studio.core.session import Session, load_session, save_session
from lla_studio.engine.gui_gc import freeze_long_lived, thaw_long_lived
from lla_studio.engine.study_worker import StudyEngine, StudySnapshot
from lla_studio.gui.kernel_editor import KernelGraphEditor
from lla_studio.gui.plot_export import PLOT_PANELS, export_plots
from lla_studio.gui.window_menus import build_actions, fill_view_menu
from lla_studio.gui.posterior_lab import PosteriorLab
from lla_studio.gui.relu_lab_panel import ReluLabPanel
from lla_studio.gui.run_settings import RunSettingsPanel
from lla_studio.gui.search_space_editor import SearchSpaceEditor
from lla_studio.gui.surrogate_editor import SurrogateEditor
from lla_studio.gui.trials_table import TrialsTable, _cell  # noqa: F401 (re-exported)
from lla_studio.gui.views import ConvergenceView, HyperparameterView, LOOView, MapsView, SliceView

_log = logging.getLogger(__name__)

__all__ = ["MainWindow", "TrialsTable", "default_session_path"]

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def default_session_path() -> Path:
    """The embedded default session (Branin)."""
    return RESOURCES / "sessions" / "branin.json"


def boundary_text(counts: tuple[int, int, int, int]) -> str:
    """The status-bar note on model proposals at the box boundary ("" when there are none)."""
    hits, total, recent_hits, recent = counts
    if not hits:
        return ""
    text = f"   on the boundary: {hits} of {total} model proposals"
    if total > recent:
        text += f" ({recent_hits} of the last {recent})"
    return text


class _DocumentEdit(QUndoCommand):
    """A session-document command on the window's one undo stack (next to the editors' own
    commands: a wire drawn on the kernel canvas, a cell typed in the search-space table)."""

    def __init__(self, window: MainWindow, command: Command) -> None:
        super().__init__(command.label)
        self._window = window
        self.command = command
        self._done = True  # pushed after the document applied it: the first redo does nothing

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self._window._document_step(self._window.document.redo)

    def undo(self) -> None:
        self._window._document_step(self._window.document.undo)


class MainWindow(QMainWindow):
    """The studio window.

    Args:
        session_path: Session to open (default: the embedded Branin session).
        recovery_path: Where the engine autosaves after every completed trial (None: no autosave).
        settings: QSettings for layout and recent files (None: the app's default settings).
    """

    def __init__(self, session_path: Path | None = None, recovery_path: Path | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QSettings("LLA Studio", "LLA Studio")
        self.engine = StudyEngine(recovery_path)
        self.engine.snapshot.connect(self._on_snapshot)
        self.engine.surface.connect(self._on_surface)
        self.engine.failed.connect(self.show_error)
        self.document: SessionDocument | None = None  # the session the window edits (set_session)
        self.undo_stack = QUndoStack(self)  # one command stack for the window and every editor
        self.session_path: Path | None = None
        self.dirty = False
        self.latest: StudySnapshot | None = None
        self._pending_snapshot: StudySnapshot | None = None
        self._pending_surfaces: dict[str, Any] = {}
        self._surface_ids = {"slice": 0, "maps": 0}
        self.errors: list[str] = []
        self._drawn: dict[str, Any] = {}
        self._redraws: dict[str, Any] = {}  # view -> its newest update, drawn one per tick

        self.slice_view = SliceView()
        self.setCentralWidget(self.slice_view)
        self.convergence = ConvergenceView()
        self.maps = MapsView()
        self.hyper = HyperparameterView()
        self.loo = LOOView()
        self.trials = TrialsTable(self)
        self.docks: dict[str, QDockWidget] = {}
        self.add_panel("Trials", self.trials, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.add_panel("Convergence", self.convergence, Qt.DockWidgetArea.RightDockWidgetArea)
        self.add_panel("2-D maps", self.maps, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.add_panel("Hyperparameters", self.hyper, Qt.DockWidgetArea.RightDockWidgetArea)
        self.add_panel("Leave-one-out", self.loo, Qt.DockWidgetArea.RightDockWidgetArea)
        # The posterior lab computes as soon as it exists: build it the first time its tab is shown,
        # so it does not compete with a running study for the CPU unless the user asks for it.
        self.posterior_lab: PosteriorLab | None = None
        lab = self.add_panel("Posterior lab", QLabel("the posterior lab opens when this tab is shown"), Qt.DockWidgetArea.BottomDockWidgetArea)
        lab.visibilityChanged.connect(self._posterior_lab_shown)
        # the ReLU extrapolation lab, lazy for the same reason
        self.relu_lab: ReluLabPanel | None = None
        relu = self.add_panel("ReLU lab", QLabel("the ReLU extrapolation lab opens when this tab is shown"), Qt.DockWidgetArea.BottomDockWidgetArea)
        relu.visibilityChanged.connect(self._relu_lab_shown)
        self.tabifyDockWidget(self.docks["2-D maps"], lab)
        self.tabifyDockWidget(self.docks["2-D maps"], relu)
        self.docks["2-D maps"].raise_()
        self.space_editor = SearchSpaceEditor(undo_stack=self.undo_stack)
        self.space_editor.space_changed.connect(self._space_edited)
        self.space_editor.validity_changed.connect(lambda _ok: self._refresh_runnable())
        self.add_panel("Search space", self.space_editor, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.kernel_editor = KernelGraphEditor(undo_stack=self.undo_stack)
        self.kernel_editor.graph_changed.connect(self._kernel_edited)
        self.add_panel("Kernel graph", self.kernel_editor, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.surrogate_editor = SurrogateEditor()
        self.surrogate_editor.spec_changed.connect(self._surrogate_edited)
        self.surrogate_editor.validity_changed.connect(lambda _ok: self._refresh_runnable())
        self.add_panel("Surrogate", self.surrogate_editor, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.run_settings = RunSettingsPanel()
        self.run_settings.edited.connect(self._run_settings_edited)
        self.add_panel("Run settings", self.run_settings, Qt.DockWidgetArea.LeftDockWidgetArea)
        # tabify once all three exist: growing a tab group one dock at a time leaves a stale tab bar
        self.tabifyDockWidget(self.docks["Search space"], self.docks["Kernel graph"])
        self.tabifyDockWidget(self.docks["Search space"], self.docks["Surrogate"])
        self.tabifyDockWidget(self.docks["Search space"], self.docks["Run settings"])
        self.docks["Search space"].raise_()
        self.slice_view.param_changed.connect(lambda _: self.request_surfaces())
        self.maps.params_changed.connect(lambda *_: self.request_surfaces())

        build_actions(self)
        self.status_label = QLabel("idle")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # no relayout per update
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)

        self.redraw = QTimer(self)
        self.redraw.setInterval(33)  # ~30 Hz: draw only the newest snapshot
        self.redraw.timeout.connect(self._drain)
        self.redraw.start()

        self._default_state = self.saveState()  # what View > Reset layout goes back to
        fill_view_menu(self)
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        self._layout_pending = state is None  # first run: proportions set when first shown
        self._frozen = False  # long-lived objects frozen out of the GC after the first show
        if state is not None:
            self.restoreState(state)
        if session_path is not None and self._is_recovery(session_path):
            opened = self.open_recovered(session_path)
        else:
            opened = self.open_session(session_path or default_session_path())
        if not opened:  # the message is in the status bar; the window starts on the default session
            self.open_session(default_session_path())
            if self.errors:
                self.statusBar().showMessage(self.errors[-1].splitlines()[0])  # until the next message

    @property
    def session(self) -> Session | None:
        """The session the window edits (the document's)."""
        return self.document.session if self.document is not None else None

    def _document_step(self, step: Any) -> None:
        """Undo or redo a document command; a refusal (e.g. trials the undo would invalidate) goes
        to the status bar and the session stays."""
        try:
            command = step()
        except LLAStudioError as err:
            self.show_error(f"cannot undo/redo: {err}")
            return
        if command is not None:
            self._document_changed(command.sections)

    def _document_changed(self, sections: tuple[str, ...]) -> None:
        """After an undo/redo of a window-level edit (seed, budget): the toolbar and the engine."""
        session = self.session
        assert session is not None
        for box, value in ((self.seed, session.loop.seed), (self.budget, session.loop.budget)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.run_settings.set_specs(session.loop, session.acquisition)
        self.dirty = True
        if "loop" in sections or "acquisition" in sections:
            self.engine.load(session)
        self._update_title()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        QTimer.singleShot(0, self._hide_stale_tab_bars)
        if not self._frozen:
            self._frozen = True
            QTimer.singleShot(0, freeze_long_lived)  # after the first paint: see gui_gc
        if self._layout_pending:
            self._layout_pending = False
            QTimer.singleShot(0, self.default_layout)  # once the docks have their first geometry

    def _hide_stale_tab_bars(self) -> None:
        """Qt leaves the tab bar of a dock group that grew before the first show visible (offscreen
        and on X11): hide a tab bar whose tabs are a strict subset of another one's."""
        bars = [b for b in self.findChildren(QTabBar) if b.parent() is self and b.isVisible()]
        tabs = [{b.tabText(i) for i in range(b.count())} for b in bars]
        for bar, mine in zip(bars, tabs):
            if any(mine < other for other in tabs):
                bar.hide()

    def default_layout(self) -> None:
        """Proportions of the first run: editors left (28 %), the slice in the middle, small views
        right (24 %), trials and maps below (40 % of the height)."""
        w, h = max(self.width(), 800), max(self.height(), 600)
        self.resizeDocks([self.docks["Search space"], self.docks["Convergence"]], [int(0.28 * w), int(0.24 * w)], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Trials"]], [int(0.40 * h)], Qt.Orientation.Vertical)

    def reset_layout(self) -> None:
        """Every panel back where a first run puts it (closed ones shown again)."""
        self.restoreState(self._default_state)
        for dock in self.docks.values():
            dock.show()
        for group in (("2-D maps", "Posterior lab", "ReLU lab"), ("Search space", "Kernel graph", "Surrogate")):
            self.docks[group[0]].raise_()
        self.default_layout()

    # ------------------------------------------------------------------ panels and actions
    def add_panel(self, title: str, widget: QWidget, area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Dock one panel (any QWidget) under ``title``; the layout is remembered between runs."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks[title] = dock
        return dock

    # ------------------------------------------------------------------ documents
    def open_session(self, path: Path) -> bool:
        """Open a session file; a malformed or newer file is refused and the current one kept."""
        if self._is_recovery(path):
            return self.open_recovered(path)
        session = self._read(path)
        if session is None:
            return False
        self.set_session(session, Path(path))
        self._remember(Path(path))
        return True

    def open_recovered(self, path: Path) -> bool:
        """Open the autosave of a run that did not close cleanly: an unsaved session without a path
        (Save asks where), never listed in Open Recent, so the autosave file is never overwritten by
        a Save nor deleted with the user's work in it."""
        session = self._read(path)
        if session is None:
            return False
        self.set_session(session, None)
        self.dirty = True
        self._update_title()
        self.statusBar().showMessage(f"recovered {len(session.trials)} trials from the autosave; Save to keep them", 10000)
        return True

    def _read(self, path: Path) -> Session | None:
        """The session in ``path``, or None with the reason in the status bar (whatever went wrong)."""
        try:
            return load_session(path)
        except LLAStudioError as err:
            self.show_error(f"cannot open {path}: {err}")
        except Exception as err:  # noqa: BLE001 - a bug in the reader must not take the window down
            _log.exception("reading %s failed", path)
            self.show_error(f"cannot open {path}: {type(err).__name__}: {err}")
        return None

    def _is_recovery(self, path: Path | str) -> bool:
        recovery = self.engine.recovery_path
        return recovery is not None and Path(path).resolve() == Path(recovery).resolve()

    def set_session(self, session: Session, path: Path | None = None) -> None:
        """Open a whole session (open, new, recover): every view and editor reloads, and the undo
        history starts empty."""
        if self.document is None:
            self.document = SessionDocument(session)
        else:
            self.document.load(session)
        self.undo_stack.clear()
        self.session_path = path
        self.dirty = False
        self._redraws.clear()  # nothing of the previous session is drawn any more
        self._pending_surfaces.clear()
        self.reset_views()
        names = list(session.search_space.names)
        self.slice_view.set_parameters(names, session.search_space)
        self.maps.set_parameters(names)
        self.budget.blockSignals(True)
        self.budget.setMinimum(max(1, session.loop.initial_design))
        self.budget.setValue(session.loop.budget)
        self.budget.blockSignals(False)
        self.surrogate_combo.blockSignals(True)
        self.surrogate_combo.setCurrentText(session.surrogate.type)
        self.surrogate_combo.blockSignals(False)
        self.seed.blockSignals(True)
        self.seed.setValue(session.loop.seed)
        self.seed.blockSignals(False)
        self.engine.load(session)
        features = list(session.features.feature_names)
        self.space_editor.set_space(session.search_space, features)
        self.surrogate_editor.set_spec(session.surrogate, len(features))
        self.run_settings.set_specs(session.loop, session.acquisition)
        self._refresh_runnable()
        self.kernel_editor.set_features(features)
        self.kernel_editor.set_graph(session.kernel if session.kernel is not None else default_kernel(features))
        self._update_title()

    def reset_views(self) -> None:
        """Every view empty: nothing of a previous session or surrogate stays drawn."""
        self._drawn.clear()
        self._redraws.clear()
        for view in (self.convergence, self.slice_view, self.maps, self.hyper, self.loo):
            view.reset()

    def _surrogate_edited(self, spec: Any) -> None:
        """A valid surrogate from the Surrogate panel becomes the session's (trials kept)."""
        self.surrogate_combo.blockSignals(True)
        self.surrogate_combo.setCurrentText(spec.type)
        self.surrogate_combo.blockSignals(False)
        session = self.current_session()
        if session is not None and spec != session.surrogate:
            switched = spec.type != session.surrogate.type
            if self._adopt(session, surrogate=spec) is not None and switched:
                self._drawn.clear()  # the trials are redrawn at the next snapshot
                for view in (self.slice_view, self.maps, self.hyper, self.loo):
                    view.reset()  # another model: its curves, maps and scores are not the old one's

    def _adopt(self, session: Session, report: Any = None, **changes: Any) -> Session | None:
        """``session`` with ``changes`` (trials kept) becomes the window's and the engine's; on a
        refusal the error goes to ``report`` (default: the status bar), the current session stays
        and None is returned."""
        from dataclasses import replace

        try:
            new = replace(session, **changes)
        except LLAStudioError as err:
            (report or self.show_error)(str(err))
            return None
        assert self.document is not None
        self.document.set_sections(**{k: getattr(new, k) for k in changes})  # the editor's command is the undo
        self.latest = None
        self.dirty = True
        self.engine.load(new)
        self._update_title()
        return new

    def _relu_lab_shown(self, visible: bool) -> None:
        if visible and self.relu_lab is None:
            self.relu_lab = ReluLabPanel()
            self.docks["ReLU lab"].setWidget(self.relu_lab)
            freeze_long_lived()  # the panel's widgets live as long as the window

    def _posterior_lab_shown(self, visible: bool) -> None:
        if visible and self.posterior_lab is None:
            self.posterior_lab = PosteriorLab()
            self.docks["Posterior lab"].setWidget(self.posterior_lab)
            freeze_long_lived()

    def _refresh_runnable(self) -> None:
        self._set_runnable(self.space_editor.valid and self.surrogate_editor.valid)

    def _set_runnable(self, ok: bool) -> None:
        """Run and Step stay disabled while an editor holds an invalid value."""
        for a in (self.run_action, self.step_action):
            a.setEnabled(bool(ok))
            a.setToolTip("" if ok else "fix the highlighted errors first")

    def _space_edited(self, space: Any) -> None:
        """A valid space from the table: re-derive the features and reload the study, trials kept."""
        session = self.current_session()
        if session is None or space == session.search_space:
            return
        try:
            features = list(session.transforms.plan(space).feature_names)
        except LLAStudioError as err:
            self.space_editor.set_features([], f"transforms: {err}")
            self._set_runnable(False)
            return
        self.space_editor.set_features(features)
        self.kernel_editor.set_features(features)  # leaves over features that are gone get flagged
        self.surrogate_editor.set_feature_count(len(features))
        def refused(message: str) -> None:  # e.g. a kernel leaf over a deleted parameter
            self.space_editor.status.setText(message)
            self.space_editor.status.setStyleSheet("color: #b00020;")
            self._set_runnable(False)

        if self._adopt(session, refused, search_space=space) is None:
            return
        self._refresh_runnable()
        names = list(space.names)
        self.slice_view.set_parameters(names, space)
        self.maps.set_parameters(names)

    def _kernel_edited(self, graph: Any) -> None:
        """A valid graph from the editor becomes the session's kernel (trials kept)."""
        session = self.current_session()
        if session is not None and graph != session.kernel:
            self._adopt(session, kernel=graph)

    def kernel_text(self) -> str:
        """Text form of the session's kernel (the default when the session names none)."""
        if self.session is None:
            return ""
        graph = self.session.kernel or default_kernel(list(self.session.features.feature_names))
        return format_kernel(graph)

    def new_session(self) -> None:
        """A fresh session from the default template (no trials, not yet saved)."""
        if not self._confirm_discard():
            return
        session = load_session(default_session_path())
        self.set_session(session.with_trials(()), None)

    def _remember(self, path: Path) -> None:
        if self._is_recovery(path):
            return
        recent = [str(Path(path).resolve())] + [p for p in self._recent() if p != str(Path(path).resolve())]
        self.settings.setValue("recent", recent[:10])
        self._fill_recent()

    def _recent(self) -> list[str]:
        value = self.settings.value("recent") or []
        paths = [value] if isinstance(value, str) else list(value)
        return [p for p in paths if not self._is_recovery(p)]

    def _fill_recent(self) -> None:
        if not hasattr(self, "recent_menu"):
            return
        self.recent_menu.clear()
        for p in self._recent():
            act = self.recent_menu.addAction(p)
            act.triggered.connect(lambda _=False, p=p: self._confirm_discard() and self.open_session(Path(p)))
        self.recent_menu.setEnabled(bool(self._recent()))

    def export_trials(self, path: Path) -> bool:
        from lla_studio.core.session import write_text_atomic
        from lla_studio.core.trials_io import trials_csv

        session = self.current_session()
        if session is None:
            return False
        try:
            write_text_atomic(path, trials_csv(session))
        except OSError as err:
            self.show_error(f"cannot write {path}: {err}")
            return False
        return True

    def import_trials(self, path: Path) -> int:
        """Add the rows of a trials CSV to the study (measured rows completed, others pending)."""
        from lla_studio.core.trials_io import parse_trials_csv

        if self.session is None:
            return 0
        try:
            rows = parse_trials_csv(Path(path).read_text(encoding="utf-8"), self.session.search_space)
        except (OSError, UnicodeDecodeError, LLAStudioError) as err:
            self.show_error(f"cannot import {path}: {err}")
            return 0
        for config, value in rows:
            self.engine.add(config, value)
        return len(rows)

    PLOT_PANELS = PLOT_PANELS

    def _plot_items(self) -> dict[str, Any]:
        return {
            "convergence": self.convergence.getPlotItem(),
            "slice": self.slice_view.plot.getPlotItem(),
            "slice_acquisition": self.slice_view.acq_plot.getPlotItem(),
            "hyperparameters": self.hyper.getPlotItem(),
            "leave_one_out": self.loo.plot.getPlotItem(),
            "maps": self.maps.glw.scene(),
        }

    def export_plots(self, folder: Path, fmt: str = "png", width: int | None = None, dpi: int = 96, panels: Any = None) -> list[Path]:
        """Write plots as PNG or SVG for papers (see :func:`lla_studio.gui.plot_export.export_plots`)."""
        return export_plots(self._plot_items(), folder, fmt, width, dpi, panels)

    def _export_session_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export session", "", "LLA Studio sessions (*.json)")
        session = self.current_session()
        if name and session is not None:
            try:
                save_session(session, Path(name))
            except (OSError, LLAStudioError) as err:
                self.show_error(f"cannot export {name}: {err}")

    def _export_plots_dialog(self) -> None:
        from lla_studio.gui.export_dialog import ExportPlotsDialog

        dialog = ExportPlotsDialog(self.PLOT_PANELS, self)
        if dialog.exec():
            try:
                written = self.export_plots(**dialog.options())
            except (OSError, ValueError) as err:
                self.show_error(f"export plots: {err}")
                return
            self.statusBar().showMessage(f"exported {len(written)} plot(s) to {written[0].parent}", 5000)

    def _import_trials_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Import trials", "", "CSV (*.csv)")
        if name:
            self.import_trials(Path(name))

    def _export_trials_dialog(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export trials", "", "CSV (*.csv)")
        if name:
            self.export_trials(Path(name))

    def _seed_changed(self, value: int) -> None:
        """The seed is the loop section's: one undoable command; editors, canvas and trials stay."""
        self._edit_loop(f"Seed {value}", seed=value)

    def _budget_changed(self, value: int) -> None:
        """The toolbar's budget is the session's ``loop.budget``: one undoable command (the study is
        not reloaded: the budget is an argument of Run)."""
        self._edit_loop(f"Budget {value}", reload=False, budget=value)

    def _run_settings_edited(self, section: str, spec: Any) -> None:
        """A valid loop or acquisition from the Run settings form: one undoable command."""
        changed = [f.name for f in fields(spec) if getattr(spec, f.name) != getattr(getattr(self.session, section), f.name)]
        label = f"{section.capitalize()}: {', '.join(n.replace('_', ' ') for n in changed) or 'settings'}"
        if not self._edit_sections(label, **{section: spec}) and self.session is not None:
            self.run_settings.set_specs(self.session.loop, self.session.acquisition)  # refused: show what holds
            self.run_settings.error.setText(self.errors[-1] if self.errors else "")

    def _edit_sections(self, label: str, reload: bool = True, **sections: Any) -> bool:
        """Change session sections as one undoable command on the window's stack; returns False
        when the session refused the change (the message is in the status bar)."""
        session = self.current_session()
        if self.document is None or session is None:
            return False
        if session.trials != self.document.session.trials:
            self.document.set_trials(session.trials)  # the study's newest trials first (not undoable)
        try:
            command = self.document.edit(label, **sections)
        except LLAStudioError as err:
            self.show_error(str(err))
            return False
        if command is None:
            return True
        self.undo_stack.push(_DocumentEdit(self, command))
        self.dirty = True
        if reload:
            self.engine.load(self.document.session)
        self._update_title()
        return True

    def _edit_loop(self, label: str, reload: bool = True, **changes: Any) -> None:
        from dataclasses import replace

        if self.document is not None:
            self._edit_sections(label, reload, loop=replace(self.document.session.loop, **changes))

    def current_session(self) -> Session | None:
        """The session with the engine's newest trials, the toolbar's budget (and the surrogate
        being typed, if any)."""
        from dataclasses import replace

        self.surrogate_editor.flush()
        session = self.engine.session if self.engine.session is not None else self.session
        if session is not None and self.budget.value() != session.loop.budget:
            try:
                session = replace(session, loop=replace(session.loop, budget=self.budget.value()))
            except LLAStudioError:  # below the initial design: the spin box's minimum prevents it
                pass
        return session

    def save(self) -> bool:
        if self.session_path is None or self.session_path.resolve().is_relative_to(RESOURCES.resolve()):
            return self._save_as_dialog()
        return self.save_to(self.session_path)

    def save_to(self, path: Path) -> bool:
        session = self.current_session()
        if session is None:
            return False
        if self._is_recovery(path):
            self.show_error(f"cannot save to {path}: that is the autosave file; choose another name")
            return False
        try:
            save_session(session, path)
        except (OSError, LLAStudioError) as err:
            self.show_error(f"cannot save {path}: {err}")
            return False
        self.session_path = Path(path)
        self.dirty = False
        self._remember(Path(path))
        self._update_title()
        return True

    def _open_dialog(self) -> None:
        if not self._confirm_discard():
            return
        name, _ = QFileDialog.getOpenFileName(self, "Open session", "", "LLA Studio sessions (*.json)")
        if name:
            self.open_session(Path(name))

    def _save_as_dialog(self) -> bool:
        name, _ = QFileDialog.getSaveFileName(self, "Save session", "", "LLA Studio sessions (*.json)")
        return self.save_to(Path(name)) if name else False

    def _confirm_discard(self) -> bool:
        if not self.dirty:
            return True
        return self.ask_discard()

    def ask_discard(self) -> bool:
        """Ask whether unsaved changes may go (Save / Discard / Cancel). Tests replace this."""
        answer = QMessageBox.question(
            self, "Unsaved changes", "The session has unsaved changes. Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def _update_title(self) -> None:
        name = self.session.name if self.session is not None else ""
        where = f" — {self.session_path.name}" if self.session_path else ""
        self.setWindowTitle(f"LLA Studio — {name}{where}{' *' if self.dirty else ''}")

    # ------------------------------------------------------------------ engine commands
    def run(self) -> None:
        self.surrogate_editor.flush()  # a value typed a moment ago is part of the run
        self.engine.run(self.budget.value())

    def step(self) -> None:
        self.surrogate_editor.flush()
        self.engine.step()

    def pause(self) -> None:
        self.engine.pause()

    def tell(self, trial_id: int, value: float) -> None:
        self.engine.tell(trial_id, value)

    def show_error(self, message: str) -> None:
        self.errors.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)

    # ------------------------------------------------------------------ snapshots
    def _on_snapshot(self, snap: StudySnapshot) -> None:
        self._pending_snapshot = snap

    def _on_surface(self, snap: Any) -> None:
        kind = "slice" if len(snap.params) == 1 else "maps"
        if snap.request_id >= self._surface_ids[kind]:  # drop answers older than the newest request
            self._pending_surfaces[kind] = snap

    def request_surfaces(self) -> None:
        if self.session is None:
            return
        fixed = self.slice_view.fixed.values()  # {} = at the incumbent
        p = self.slice_view.combo.currentText()
        if p:
            self._surface_ids["slice"] = self.engine.request_surface((p,), fixed, n=120)
        a, b = self.maps.combo_a.currentText(), self.maps.combo_b.currentText()
        if a and b and a != b:
            self._surface_ids["maps"] = self.engine.request_surface((a, b), fixed, n=60)

    def _drain(self) -> None:
        """Take the newest snapshot and surfaces, then redraw at most one view.

        Qt repaints every dirty widget of the window in one go, and one pyqtgraph view costs
        5-20 ms to update and repaint; all of them at once stalled the event loop > 100 ms. So the
        changed views are queued (newest data per view) and drawn one per timer tick (~30 Hz).
        """
        snap, self._pending_snapshot = self._pending_snapshot, None
        if snap is not None:
            had_fit = self.latest is not None and len(self.latest.hyperparameters)
            self.latest = snap
            newest = self.engine.session
            if newest is not None and self.session is not None and newest.trials != self.session.trials:
                self.dirty = True
                self._update_title()
            minimize = self.session is None or self.session.objective.direction == "minimize"
            names = list(self.session.search_space.names) if self.session else []
            if snap.trials != self._drawn.get("trials"):
                trials = snap.trials
                self._redraws["trials"] = lambda: self.trials.update_trials(trials, names, minimize)
                self._redraws["convergence"] = lambda: self.convergence.update_trials(trials, minimize)
                self._drawn["trials"] = snap.trials
            n_fits = len(snap.hyperparameters)
            if n_fits != self._drawn.get("n_fits"):
                timeline = snap.hyperparameters
                self._redraws["hyper"] = lambda: self.hyper.update_timeline(timeline)
                self._drawn["n_fits"] = n_fits
            if snap.loo is not None and n_fits != self._drawn.get("loo_fit"):
                loo = snap.loo
                self._redraws["loo"] = lambda: self.loo.update_loo(loo)
                self._drawn["loo_fit"] = n_fits
            self.progress.setRange(0, max(snap.budget, 1))
            self.progress.setValue(min(snap.n_evaluated, snap.budget))
            best = "—" if math.isnan(snap.best_value) else f"{snap.best_value:.6g}"
            self.status_label.setText(
                f"trial {snap.n_evaluated}/{snap.budget}   best {best}   engine: {snap.status}{boundary_text(snap.boundary)}"
            )
            if n_fits and n_fits != had_fit:
                self.request_surfaces()
        space = self.session.search_space if self.session else None
        s = self._pending_surfaces.pop("slice", None)
        if s is not None and space is not None:
            index = space.index(s.params[0])
            self._redraws["slice"] = lambda: self.slice_view.update_surface(s, index, space)
        m = self._pending_surfaces.pop("maps", None)
        if m is not None and space is not None:
            proposal = self.latest.next_proposal if self.latest is not None else None
            pair = (space.index(m.params[0]), space.index(m.params[1]))
            for key in self.maps.MAPS:  # one map per tick: each repaint of the three costs ~15 ms
                self._redraws[f"maps:{key}"] = lambda key=key: self.maps.update_surface(m, pair, proposal, (key,), space)
        if self._redraws:
            key = next(iter(self._redraws))
            self._redraws.pop(key)()

    def pending_redraws(self) -> int:
        """How many views still wait for their newest data (drawn one per ~33 ms tick)."""
        return len(self._redraws) + (self._pending_snapshot is not None) + len(self._pending_surfaces)

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt name
        if not self._confirm_discard():
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        self.shutdown()
        if self.engine.recovery_path is not None:  # a clean close: nothing to recover
            self.engine.recovery_path.unlink(missing_ok=True)
        event.accept()

    def shutdown(self) -> None:
        thaw_long_lived()
        self.redraw.stop()
        self.kernel_editor.shutdown()
        if self.posterior_lab is not None:
            self.posterior_lab.shutdown()
        if self.relu_lab is not None:
            self.relu_lab.shutdown()
        self.engine.shutdown()

