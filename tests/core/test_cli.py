"""Headless CLI: validate and sample, run as real subprocesses like a user would."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lla_studio.core.session import load_session

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = ROOT / "resources" / "sessions"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lla_studio", *args], capture_output=True, text=True, timeout=300)


def test_validate_ok_prints_one_line():
    r = run_cli("validate", str(SESSIONS / "cnn_hyperparameters.json"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "19 parameters (3 conditional)" in lines[0] and "21 features" in lines[0]


def test_validate_malformed_exits_2_without_traceback(tmp_path):
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["search_space"]["parameters"][0]["low"] = 20
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    r = run_cli("validate", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        "lla-studio: error: search_space.parameters[0]: parameter 'x1': needs low < high, got low=20, high=10"
    )
    (tmp_path / "junk.json").write_text("{")
    r = run_cli("validate", str(tmp_path / "junk.json"))
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "Traceback" not in r.stderr


def test_sample_prints_valid_csv_with_empty_inactive_cells():
    r = run_cli("sample", str(SESSIONS / "cnn_hyperparameters.json"), "-n", "16", "--seed", "4")
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    space = load_session(SESSIONS / "cnn_hyperparameters.json").search_space
    assert rows[0] == list(space.names)
    assert len(rows) == 17
    expected = space.sample(16, seed=4)
    for row, config in zip(rows[1:], expected):
        cells = dict(zip(rows[0], row))
        for name in space.names:
            if name not in config:
                assert cells[name] == "", name
            elif isinstance(config[name], bool):
                assert cells[name] == ("true" if config[name] else "false")
            elif isinstance(config[name], float):
                assert float(cells[name]) == config[name]
            else:
                assert cells[name] == str(config[name])
        assert (cells["nesterov"] == "") == (cells["optimizer"] == "adam")
    again = run_cli("sample", str(SESSIONS / "cnn_hyperparameters.json"), "-n", "16", "--seed", "4")
    assert again.stdout == r.stdout


def test_bare_command_prints_help_and_exits_0():
    r = run_cli("--help")
    assert r.returncode == 0 and "validate" in r.stdout and "sample" in r.stdout


@pytest.mark.parametrize("args", [["sample", "missing.json"], ["sample", str(SESSIONS / "branin.json"), "-n", "-3"]])
def test_sample_bad_input(args):
    r = run_cli(*args)
    assert r.returncode == 2 and "lla-studio: error:" in r.stderr and "Traceback" not in r.stderr


def test_posterior_command_writes_summary_and_overlay(tmp_path):
    r = run_cli("posterior", "mixture", "--grid", "64", "--starts", "8", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["laplace"]) == 2
    assert sum(c["weight"] for c in summary["laplace"]) == pytest.approx(1.0, abs=0.05)
    assert set(summary["grid"]) >= {"mean", "cov", "quantiles", "log_evidence"}
    assert summary["jsd"]["mixture"] < summary["jsd"]["laplace"]
    assert (tmp_path / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_cli("posterior", "rosenbrock", "--out", str(tmp_path))
    assert r.returncode == 2 and "valid names: bioassay" in r.stderr
