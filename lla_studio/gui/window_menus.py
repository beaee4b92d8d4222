"""The studio window's menus and toolbar (File, Edit, View, Run; the study toolbar)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox

if TYPE_CHECKING:
    from lla_studio.gui.main_window import MainWindow

__all__ = ["build_actions", "fill_view_menu"]


def build_actions(window: MainWindow) -> None:
    """File, Edit and Run menus and the study toolbar (surrogate, budget, seed) of ``window``."""
    tb = window.addToolBar("Study")
    tb.setObjectName("toolbar-study")
    menu = window.menuBar().addMenu("&File")

    def action(text: str, slot: Any, shortcut: Any = None, where: Any = (menu,)) -> QAction:
        a = QAction(text, window)
        if shortcut is not None:
            a.setShortcut(shortcut)
        a.triggered.connect(slot)
        for w in where:
            w.addAction(a)
        return a

    action("&New", window.new_session, QKeySequence.StandardKey.New)
    action("&Open…", window._open_dialog, QKeySequence.StandardKey.Open, (menu, tb))
    window.recent_menu = menu.addMenu("Open &Recent")
    window._fill_recent()
    action("&Save", window.save, QKeySequence.StandardKey.Save, (menu, tb))
    action("Save &As…", window._save_as_dialog, QKeySequence.StandardKey.SaveAs)
    action("&Export session…", window._export_session_dialog)
    menu.addSeparator()
    action("Export &plots…", window._export_plots_dialog)
    action("&Import trials CSV…", window._import_trials_dialog)
    action("Export &trials CSV…", window._export_trials_dialog)
    menu.addSeparator()
    window.quit_action = action("&Quit", window.close, QKeySequence.StandardKey.Quit)
    edit_menu = window.menuBar().addMenu("&Edit")
    window.undo_action = window.undo_stack.createUndoAction(window, "&Undo")
    window.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
    window.redo_action = window.undo_stack.createRedoAction(window, "&Redo")
    window.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence(QKeySequence.StandardKey.Redo)])
    edit_menu.addAction(window.undo_action)
    edit_menu.addAction(window.redo_action)
    window.view_menu = window.menuBar().addMenu("&View")  # filled once every panel exists
    run_menu = window.menuBar().addMenu("&Run")
    window.run_action = action("Run", window.run, "F5", (run_menu, tb))
    window.pause_action = action("Pause", window.pause, "F6", (run_menu, tb))
    window.step_action = action("Step", window.step, "F10", (run_menu, tb))
    window.stop_action = action("Stop", window.pause, "Shift+F5", (run_menu, tb))
    tb.addWidget(QLabel(" surrogate "))
    window.surrogate_combo = QComboBox()
    window.surrogate_combo.addItems(["gp", "lla"])
    window.surrogate_combo.setToolTip("exact GP with the kernel graph, or a linearized Laplace approximation of an MLP")
    # a quick switch that drives the Surrogate panel (which owns the network and its settings)
    window.surrogate_combo.currentTextChanged.connect(
        lambda kind: window.surrogate_editor.type_combo.setCurrentIndex(window.surrogate_editor.type_combo.findData(kind))
    )
    tb.addWidget(window.surrogate_combo)
    tb.addWidget(QLabel(" budget "))
    window.budget = QSpinBox()
    window.budget.setRange(1, 100000)
    window.budget.setToolTip("trials in all (initial design included); saved with the session")
    window.budget.setKeyboardTracking(False)  # one command per edit, not one per digit typed
    window.budget.valueChanged.connect(window._budget_changed)
    tb.addWidget(window.budget)
    tb.addWidget(QLabel(" seed "))
    window.seed = QSpinBox()
    window.seed.setRange(0, 2**31 - 1)
    window.seed.setKeyboardTracking(False)
    window.seed.valueChanged.connect(window._seed_changed)
    tb.addWidget(window.seed)


def fill_view_menu(window: MainWindow) -> None:
    """One checkable View entry per panel (labs included) to show or hide it, and Reset layout."""
    for title, dock in window.docks.items():
        toggle = dock.toggleViewAction()
        toggle.setText(title)
        window.view_menu.addAction(toggle)
    window.view_menu.addSeparator()
    reset = QAction("&Reset layout", window)
    reset.triggered.connect(window.reset_layout)
    window.view_menu.addAction(reset)
