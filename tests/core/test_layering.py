"""The architecture's arrows: core never imports Qt, gui never imports torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lla_studio"


def test_importing_core_pulls_in_no_qt():
    code = (
        "import sys, importlib, pkgutil, lla_studio.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'lla_studio.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "import lla_studio.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', 'PyQt5', 'PyQt6'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("lla_studio.core"):
                roots.add("lla_studio.core")
    return roots


def test_gui_never_imports_torch_and_core_never_imports_qt():
    for path in (PACKAGE / "gui").rglob("*.py"):
        roots = _imported_roots(path)
        assert not roots & {"torch", "gpytorch", "botorch"}, f"{path} imports {roots & {'torch', 'gpytorch', 'botorch'}}"
    for path in (PACKAGE / "core").rglob("*.py"):
        roots = _imported_roots(path)
        assert not roots & {"PySide6", "pyqtgraph", "shiboken6"}, f"{path} imports Qt"
