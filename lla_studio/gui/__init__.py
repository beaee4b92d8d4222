"""Widgets and pyqtgraph views. Receives numpy snapshots; never imports torch."""
