"""`lla-studio run` and `lla-studio cv` as a user runs them."""

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


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lla_studio", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_branin_run_reaches_small_regret_and_is_reproducible(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}"
        r = run_cli("run", str(SESSIONS / "branin.json"), "--budget", "30", "--seed", "0", "--out", str(out))
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(out)
    summary = json.loads((outs[0] / "summary.json").read_text())
    assert summary["n_completed"] == 30 and summary["n_failed"] == 0
    assert summary["best_value"] - 0.397887 < 0.05
    assert set(summary) >= {"best_value", "best_config", "n_completed", "n_failed", "seconds"}
    assert (outs[0] / "trials.csv").read_text() == (outs[1] / "trials.csv").read_text()
    rows = list(csv.reader(io.StringIO((outs[0] / "trials.csv").read_text())))
    assert rows[0] == ["trial", "status", "x1", "x2", "value"] and len(rows) == 31
    best_row = min(rows[1:], key=lambda r: float(r[4]))
    assert float(best_row[4]) == summary["best_value"]
    session = load_session(outs[0] / "session.json")
    assert len(session.trials) == 30
    # the progress bar went to stderr
    assert "30/30" in r.stderr


def test_run_continues_where_it_stopped(tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", str(SESSIONS / "branin.json"), "--budget", "9", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    first = list(csv.reader(io.StringIO((out / "trials.csv").read_text())))
    r = run_cli("run", str(out / "session.json"), "--budget", "11", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    second = list(csv.reader(io.StringIO((out / "trials.csv").read_text())))
    assert len(first) == 10 and len(second) == 12
    assert second[:10] == first


def test_cv_compares_kernels(tmp_path):
    out = tmp_path / "out"
    assert run_cli("run", str(SESSIONS / "branin.json"), "--budget", "10", "--out", str(out), "--quiet").returncode == 0
    r = run_cli("cv", str(out / "session.json"), "--kernel", "scale(rbf(x1) + rbf(x2))", "--kernel", "scale(matern12(x1, x2))")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("10 completed trials, 2 features")
    assert lines[1].split()[:4] == ["kernel", "LOO", "MLPD", "LOO"]
    table = [l.split() for l in lines[2:5]]
    assert [row[0] for row in table] == ["session", "--kernel", "--kernel"]
    for row in table:
        float(row[-4])  # MLPD parses
        assert 0.0 <= float(row[-2]) <= 1.0  # coverage
    # the LLA on the same trials: the session's default network, LOO in closed form
    r = run_cli("cv", str(out / "session.json"), "--lla")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    rows = {l.split()[0]: l.split() for l in lines[2:4]}
    assert set(rows) == {"session", "LLA"}
    mlpd, rmse, cover, lml = (float(v) for v in rows["LLA"][1:])
    assert rmse > 0 and 0.0 <= cover <= 1.0
    assert any(l.startswith("LLA: MLPSpec(widths=(50, 50), activation='tanh')") for l in lines)
    # ... and with a refit per fold (ten MAP trainings: a small network keeps the test short)
    doc = json.loads((out / "session.json").read_text())
    doc["surrogate"] = {"type": "lla", "network": {"network": "mlp", "widths": [16, 16], "activation": "tanh"},
                        "settings": {"max_epochs": 5}}
    small = tmp_path / "small_lla.json"
    small.write_text(json.dumps(doc))
    r = run_cli("cv", str(small), "--lla", "--refit")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    rows = {l.split()[0]: l.split() for l in lines[2:4]}
    mlpd, rmse, cover, lml, refit_mlpd, refit_rmse, refit_cover = (float(v) for v in rows["LLA"][1:])
    assert rmse > 0 and refit_rmse > 0 and 0.0 <= cover <= 1.0 and 0.0 <= refit_cover <= 1.0
    assert any(l.startswith("LLA: MLPSpec(widths=(16, 16), activation='tanh')") for l in lines)


@pytest.mark.parametrize(
    "args, match",
    [
        (["run", str(SESSIONS / "branin.json"), "--budget", "3", "--out", "OUT"], "loop.budget: budget 3 is smaller than the initial design 8"),
        (["run", str(SESSIONS / "cnn_hyperparameters.json"), "--out", "OUT"], "objective is manual"),
        (["cv", str(SESSIONS / "branin.json")], "needs at least 3 completed trials"),
        (["cv", str(ROOT / "tests" / "data" / "sessions" / "v1.json"), "--kernel", "rbf(x9)"], r"--kernel #1: .*unknown feature 'x9'"),
        (["cv", str(ROOT / "tests" / "data" / "sessions" / "v1.json"), "--kernel", "(" * 3000 + "rbf(x1)" + ")" * 3000],
         r"^lla-studio: error: --kernel #1: "),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, args, match):
    import re

    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    r = run_cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one line, no warnings of imports
    assert re.search(match, r.stderr), r.stderr


def test_unimportable_objective_is_reported(tmp_path):
    doc = json.loads((SESSIONS / "branin.json").read_text())
    doc["objective"] = {"type": "python", "target": "no_such_module_abc:f"}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    r = run_cli("run", str(path), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "cannot import module 'no_such_module_abc'" in r.stderr
