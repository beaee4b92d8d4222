"""analyze() and the headless report: schema, numbers, cancellation, errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import MODEL_NAMES, Cancelled, ExpressionSpec, analyze
from lla_studio.core.posterior.report import run_posterior_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _check_summary_schema(summary: dict, param_names: list[str]) -> None:
    assert isinstance(summary["laplace"], list) and summary["laplace"]
    total = 0.0
    for comp in summary["laplace"]:
        assert set(comp) == {"weight", "mean", "cov"}
        assert len(comp["mean"]) == 2 and np.array(comp["cov"]).shape == (2, 2)
        assert np.all(np.linalg.eigvalsh(np.array(comp["cov"])) > 0)
        total += comp["weight"]
    assert total == pytest.approx(1.0)
    grid = summary["grid"]
    assert len(grid["mean"]) == 2 and np.array(grid["cov"]).shape == (2, 2)
    assert set(grid["quantiles"]) == set(param_names)
    for q in grid["quantiles"].values():
        assert len(q) == 5 and np.all(np.diff(q) >= 0)
    assert math.isfinite(grid["log_evidence"])
    assert set(summary["jsd"]) == {"laplace", "mixture", "vi"}
    assert 0 <= summary["jsd"]["laplace"] <= math.log(2) and 0 <= summary["jsd"]["mixture"] <= math.log(2)
    assert {"laplace", "mixture", "grid"} <= set(summary["seconds"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_report_writes_valid_summary_and_png(name, tmp_path):
    summary = run_posterior_report(name, grid=48, starts=6, out_dir=tmp_path / name)
    on_disk = json.loads((tmp_path / name / "summary.json").read_text())
    assert on_disk == summary
    _check_summary_schema(on_disk, on_disk["param_names"])
    assert on_disk["jsd"]["vi"] is None
    png = (tmp_path / name / "overlay.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5000
    if name == "bioassay":
        assert set(on_disk["grid"]["derived_quantiles"]) == {"LD50"}
        # Laplace mass at beta < 0 is the normal tail of the Laplace beta marginal
        from scipy.stats import norm

        single = on_disk["laplace_single"]
        expected = norm.cdf(-single["mean"][1] / math.sqrt(single["cov"][1][1]))
        assert on_disk["laplace_mass_outside_support"] == pytest.approx(expected, rel=1e-10)
        assert 0.03 < expected < 0.08


@pytest.mark.slow
def test_report_with_vi(tmp_path):
    summary = run_posterior_report("bioassay-logbeta", grid=64, starts=4, vi=True, seed=1, out_dir=tmp_path)
    assert summary["jsd"]["vi"] is not None and summary["jsd"]["vi"] < summary["jsd"]["laplace"]
    assert {"vi_warm", "vi_cold"} <= set(summary["seconds"])
    assert len(summary["vi"]["trace_warm"]) > 2
    assert "z_log_beta = log_beta" in summary["vi"]["coordinates"]


def test_report_unknown_model_lists_valid_names(tmp_path):
    with pytest.raises(
        PosteriorError,
        match="unknown posterior model 'nope'; valid names: bioassay, bioassay-logbeta, shear-frame, banana, mixture",
    ):
        run_posterior_report("nope", out_dir=tmp_path)
    assert not (tmp_path / "summary.json").exists()


def _walk(value, path="analysis"):
    if isinstance(value, torch.Tensor):
        raise AssertionError(f"{path} is a torch tensor")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _walk(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]")


def test_analyze_returns_plain_numpy_and_consistent_numbers():
    spec = ExpressionSpec("-(a**2 + b**2)/2 - 0.5*a*b", (-6, -6), (6, 6))
    result = analyze(spec, grid_n=121, starts=4, seed=0)
    _walk(result)
    # a Gaussian target: Laplace exact, mixture = one component, JSD ~ 0, evidence 2 pi / sqrt(det P)
    P = np.array([[1.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(result.laplace.cov, np.linalg.inv(P), rtol=1e-10)
    assert result.jsd["laplace"] < 1e-6 and result.jsd["mixture"] < 1e-6
    assert result.log_evidence["grid"] == pytest.approx(math.log(2 * math.pi / math.sqrt(np.linalg.det(P))), abs=1e-6)
    assert result.log_evidence["laplace"] == pytest.approx(result.log_evidence["grid"], abs=1e-6)
    assert result.grid.log_density.shape == (121, 121)
    assert result.laplace_log_density.shape == (121, 121)
    assert set(result.quantiles) == {"a", "b"}
    # outside [-6, 6]^2: four normal tails at 6/sd (the corners' overlap is ~1e-14)
    from scipy.stats import norm

    sd = math.sqrt(np.linalg.inv(P)[0, 0])
    assert result.laplace_mass_outside_support == pytest.approx(4 * norm.cdf(-6 / sd), abs=2e-9)


def test_analyze_rejects_bad_settings_before_working():
    with pytest.raises(PosteriorError, match="too coarse"):
        analyze("shear-frame", grid_n=4)
    with pytest.raises(PosteriorError, match="'starts' must be a positive integer, got 0"):
        analyze("shear-frame", grid_n=32, starts=0)


def test_analyze_cancel_raises_cancelled():
    with pytest.raises(Cancelled):
        analyze("banana", grid_n=32, starts=4, cancel=lambda: True)
    calls = []

    def late_cancel():
        calls.append(1)
        return len(calls) > 6  # lets the first stages through, then stops inside the pipeline

    with pytest.raises(Cancelled):
        analyze("mixture", grid_n=32, starts=4, vi=True, vi_steps=500, cancel=late_cancel)


def test_summary_keeps_the_umask(tmp_path):
    """``summary.json`` is written like every file of ours (``write_text_atomic``): the umask's mode,
    not mkstemp's 0600."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        run_posterior_report("bioassay-logbeta", grid=32, starts=2, out_dir=tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644
