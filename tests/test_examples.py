"""Every example script runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["search_space_tour.py"]


@pytest.mark.parametrize("name", FAST)
def test_example_runs(name, tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / name), "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(tmp_path.iterdir()), "the example writes its output"
