"""Headless posterior report: ``summary.json`` and ``overlay.png`` for ``lla-studio posterior``."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.analysis import PosteriorAnalysis, analyze, finite_or_none
from lla_studio.core.posterior.gaussian import covariance_ellipse
from lla_studio.core.posterior.registry import default_spec
from lla_studio.core.session import write_text_atomic

__all__ = ["run_posterior_report", "summary_dict", "plot_overlay"]


def summary_dict(analysis: PosteriorAnalysis) -> dict[str, Any]:
    """The JSON-able summary of an analysis (schema documented in `run_posterior_report`)."""
    g = analysis.grid
    names = analysis.param_names
    out: dict[str, Any] = {
        "model": analysis.model_name,
        "spec": analysis.spec,
        "param_names": list(names),
        "laplace": analysis.mixture.component_dicts(),
        "laplace_single": analysis.laplace.to_dict(1.0),
        "grid": {
            "n": [int(g.a.size), int(g.b.size)],
            "box": {"low": list(g.box.low), "high": list(g.box.high)},
            "mean": g.mean.tolist(),
            "cov": g.cov.tolist(),
            "quantile_levels": list(analysis.quantile_levels),
            "quantiles": {n: analysis.quantiles[n].tolist() for n in names},
            "derived_quantiles": {k: v.tolist() for k, v in analysis.quantiles.items() if k not in names},
            "log_evidence": g.log_evidence,
        },
        "jsd": {k: finite_or_none(analysis.jsd[k]) for k in ("laplace", "mixture", "vi")},
        "kl_grid_to": {k: finite_or_none(v) for k, v in analysis.kl.items()},
        "log_evidence": {k: finite_or_none(v) for k, v in analysis.log_evidence.items()},
        "mixture_weights_laplace": analysis.mixture.laplace_weights.tolist(),
        "laplace_mass_outside_support": analysis.laplace_mass_outside_support,
        "mixture_mass_outside_support": analysis.mixture_mass_outside_support,
        "vi": None,
        "seconds": dict(analysis.seconds),
        "notes": list(analysis.notes),
    }
    if analysis.vi_warm is not None and analysis.vi_cold is not None:
        out["vi"] = {
            "coordinates": analysis.vi_warm.coordinates,
            "jsd_cold": finite_or_none(analysis.jsd.get("vi_cold")),
            "trace_warm": analysis.vi_warm.trace.tolist(),
            "trace_cold": analysis.vi_cold.trace.tolist(),
        }
    return out


def plot_overlay(analysis: PosteriorAnalysis, path: pathlib.Path) -> None:
    """Heatmap and contours of the grid density with 1- and 2-sigma ellipses of each Laplace component.

    Uses matplotlib's object-oriented Agg canvas (no pyplot, no global backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    g = analysis.grid
    dens = g.density
    fig = Figure(figsize=(7.0, 5.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    extent = (g.box.low[0], g.box.high[0], g.box.low[1], g.box.high[1])
    im = ax.imshow(dens, origin="lower", extent=extent, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="posterior density (grid)")
    peak = float(dens.max())
    if peak > 0:
        levels = peak * np.array([0.01, 0.1, 0.3, 0.6, 0.9])
        ax.contour(g.a, g.b, dens, levels=levels, colors="white", linewidths=0.7)
    for k, (w, comp) in enumerate(zip(analysis.mixture.weights, analysis.mixture.components)):
        for n_sd, style in ((1.0, "-"), (2.0, "--")):
            e = covariance_ellipse(comp.mode, comp.cov, n_sd)
            ax.plot(
                e[:, 0],
                e[:, 1],
                style,
                color="tab:red",
                linewidth=1.2,
                label=f"Laplace {n_sd:g}\u03c3" if k == 0 else None,
            )
        ax.plot(*comp.mode, "x", color="tab:red")
        ax.annotate(f"w={w:.2f}", comp.mode, textcoords="offset points", xytext=(5, 5), color="tab:red", fontsize=8)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(analysis.param_names[0])
    ax.set_ylabel(analysis.param_names[1])
    jsd = analysis.jsd
    ax.set_title(
        f"{analysis.model_name}\nJSD to grid: Laplace {jsd['laplace']:.3g}, mixture {jsd['mixture']:.3g}"
        + (f", VI {jsd['vi']:.3g}" if jsd.get("vi") is not None else ""),
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.savefig(str(path), format="png")


def run_posterior_report(
    model: str,
    grid: int = 201,
    starts: int = 16,
    vi: bool = False,
    seed: int = 0,
    *,
    out_dir: pathlib.Path,
) -> dict[str, Any]:
    """Analyse a named model and write ``out_dir/summary.json`` and ``out_dir/overlay.png``.

    ``summary.json`` holds ``laplace`` (list of ``{"weight", "mean", "cov"}``, the Laplace-mixture
    components with normalised NNLS weights), ``grid`` (``mean``, ``cov``,
    ``quantiles: {param: [q2.5, q25, q50, q75, q97.5]}``, ``log_evidence``, plus ``n``, ``box``,
    ``derived_quantiles``), ``jsd`` (``{"laplace", "mixture", "vi"}``, ``vi`` null without VI),
    ``seconds`` per stage, and extras (``laplace_single``, ``log_evidence``, ``vi`` traces, ...).

    Args:
        model: One of `MODEL_NAMES`.
        grid: Grid points per axis.
        starts: Multi-start count.
        vi: Also run VI (warm and cold).
        seed: Random seed.
        out_dir: Output directory (created if missing).

    Returns:
        The summary dict written to ``summary.json``.

    Raises:
        PosteriorError: for an unknown model name (the message lists `MODEL_NAMES`) or bad settings.
    """
    spec = default_spec(model)
    out_dir = pathlib.Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PosteriorError(f"output directory {str(out_dir)!r} cannot be created: {exc}") from exc
    analysis = analyze(spec, grid_n=grid, starts=starts, vi=vi, seed=seed)
    summary = summary_dict(analysis)
    text = json.dumps(summary, indent=2, allow_nan=False)
    write_text_atomic(out_dir / "summary.json", text + "\n")  # the umask and an existing mode kept
    plot_overlay(analysis, out_dir / "overlay.png")
    return summary
