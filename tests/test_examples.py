"""Every example script runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = [["search_space_tour.py"], ["posterior_lab_screenshot.py", "--model", "mixture"], ["relu_lab_screenshot.py", "--box", "100"]]


@pytest.mark.parametrize("args", FAST, ids=[a[0] for a in FAST])
def test_example_runs(args, tmp_path):
    cmd = [sys.executable, str(EXAMPLES / args[0]), *args[1:], "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(tmp_path.iterdir()), "the example writes its output"
