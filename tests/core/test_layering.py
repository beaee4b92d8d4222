"""The architecture's arrows: core never imports Qt, gui never imports torch."""

from __future__ import annotations

import ast
import os
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


ROOT = PACKAGE.parent
MODEL_LAYER = (
    "errors", "schema", "space", "space_reader", "specs", "transforms", "session", "trials_io",
    "kernels", "kernels.graph", "kernels.nodes", "kernels.priors", "kernels.text", "kernels.builders", "kernels.draft",
    "surrogates.specs", "objectives.cnn_digits_options", "document",
)


def test_import_linter_contracts_hold():
    # pyproject.toml's contracts: the model layer imports no torch/gpytorch/botorch and no Qt, the
    # core no Qt, the gui no torch/gpytorch/botorch/linear_operator -- transitively, and imports
    # inside functions count
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_the_model_layer_reads_and_checks_sessions_without_torch():
    # at run time too: every model module imported, every shipped session read and checked
    code = (
        "import sys, glob\n"
        + "".join(f"import lla_studio.core.{m}\n" for m in MODEL_LAYER)
        + "from lla_studio.core.session import load_session\n"
        "for p in sorted(glob.glob(sys.argv[1] + '/*.json')):\n"
        "    s = load_session(p); s.summary(); s.features.feature_bounds()\n"
        "heavy = sorted(m for m in ('torch', 'gpytorch', 'botorch', 'PySide6') if m in sys.modules)\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "resources" / "sessions")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_importing_every_gui_module_loads_no_torch():
    # at run time too: import-linter follows the imports a module makes, but importing a submodule
    # also runs its packages' __init__ (lla_studio.core.posterior's is lazy for this reason)
    code = (
        "import sys, importlib, pkgutil, lla_studio.gui as gui\n"
        "for m in pkgutil.walk_packages(gui.__path__, 'lla_studio.gui.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = sorted(m for m in ('torch', 'gpytorch', 'botorch', 'linear_operator') if m in sys.modules)\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
