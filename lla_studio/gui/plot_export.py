"""Export plots for papers: PNG at a chosen width and DPI, or SVG, one panel or all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PLOT_PANELS", "export_plots"]

PLOT_PANELS = ("convergence", "slice", "slice_acquisition", "hyperparameters", "leave_one_out", "maps")
"""What Export plots can write, one file each."""


def export_plots(
    items: Mapping[str, Any],
    folder: Path | str,
    fmt: str = "png",
    width: int | None = None,
    dpi: int = 96,
    panels: Sequence[str] | None = None,
) -> list[Path]:
    """Write plots as PNG (pyqtgraph's ``ImageExporter``) or SVG (Qt's ``QSvgGenerator``), for papers.

    Args:
        items: Panel name -> its ``PlotItem`` (or ``GraphicsScene``).
        folder: Created if missing; one file per panel, ``<panel>.<fmt>``.
        fmt: ``"png"`` or ``"svg"``.
        width: Width in pixels of each PNG (the height keeps the panel's aspect); ``None``: the
            panel's size on screen. For an SVG, the width of its canvas.
        dpi: Resolution written into each PNG and SVG (``width / dpi`` inches wide in print).
        panels: Names from :data:`PLOT_PANELS` (``None``: all of them).
    """
    import pyqtgraph.exporters as exporters

    if fmt not in ("png", "svg"):
        raise ValueError(f"export format must be 'png' or 'svg', got {fmt!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chosen = list(PLOT_PANELS if panels is None else panels)
    unknown = [n for n in chosen if n not in items]
    if unknown:
        raise ValueError(f"no plot panel {unknown[0]!r} (panels: {', '.join(PLOT_PANELS)})")
    written = []
    for name in chosen:
        item = items[name]
        target = folder / f"{name}.{fmt}"
        if fmt == "svg":
            _export_svg(item, target, width, dpi)
        else:
            exporter = exporters.ImageExporter(item)
            if width is not None:
                exporter.parameters()["width"] = int(width)  # the height follows the aspect ratio
            image = exporter.export(toBytes=True)
            per_metre = round(dpi / 0.0254)
            image.setDotsPerMeterX(per_metre)
            image.setDotsPerMeterY(per_metre)
            if not image.save(str(target)):
                raise OSError(f"could not write {target}")
        written.append(target)
    return written


def _export_svg(item: Any, target: Path, width: int | None, dpi: int) -> None:
    """Render a plot item (or a whole graphics scene) into an SVG file with Qt's ``QSvgGenerator``.

    Why not pyqtgraph's ``SVGExporter``: with pyqtgraph 0.14 and the PySide6 we pin, it fails on
    every panel of the window while rewriting the path data Qt wrote ("not enough values to
    unpack" in its coordinate parser), so Export plots as SVG wrote nothing. Qt's own generator
    draws what the screen shows, as vectors.
    """
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    scene = item if hasattr(item, "sceneRect") and not hasattr(item, "sceneBoundingRect") else item.scene()
    source = scene.sceneRect() if scene is item else item.sceneBoundingRect()
    w = float(width) if width is not None else source.width()
    h = w * source.height() / max(source.width(), 1.0)
    generator = QSvgGenerator()
    generator.setFileName(str(target))
    generator.setSize(QSize(round(w), round(h)))
    generator.setViewBox(QRectF(0.0, 0.0, w, h))
    generator.setTitle(target.stem)
    generator.setResolution(int(dpi))  # its physical size: width / dpi inches
    painter = QPainter(generator)
    try:
        scene.render(painter, QRectF(0.0, 0.0, w, h), source)
    finally:
        painter.end()
    if not target.is_file():
        raise OSError(f"could not write {target}")
