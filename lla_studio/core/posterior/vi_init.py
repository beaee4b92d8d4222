"""Warm vs cold VI initialisation on a d-dimensional target: the paper's comparison in one call.

`compare_vi_init` runs the pipeline of Bridgman, Jones & Khalil (2022) on a `TargetND`:
multi-start optimisation -> a Laplace Gaussian per distinct mode -> NNLS weights
(`fit_laplace_mixture_nd`), then VI (`refine_vi_nd`) warm-started from that mixture and cold-started
from random means with the same number of components, recording JSD-vs-time for both. Final
divergences (KL both ways, JSD) of the Laplace mixture and both VI fits are estimated by Monte Carlo
with ``n_final`` fresh samples of each side (`mc_divergences`), independent of the trace samples.

`time_to_threshold` reads the first time a trace's JSD estimate is at or below a threshold; the warm
start's time-to-threshold counts the Laplace-mixture seconds too (its global optimisation is the
price of the warm start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.cancel import CancelCallback, check_cancel
from lla_studio.core.posterior.gmm_targets import TargetND
from lla_studio.core.posterior.mc_divergence import MCDivergences, mc_divergences
from lla_studio.core.posterior.mixture_nd import LaplaceMixtureND, fit_laplace_mixture_nd
from lla_studio.core.posterior.vi_nd import VIResultND, refine_vi_nd

__all__ = ["JSD_THRESHOLD", "VIInitComparison", "compare_vi_init", "time_to_threshold"]

# 0.01 nats = 1.4 % of the largest possible JSD (log 2). Two Gaussians at this JSD differ in mean by
# about 0.28 sd (JSD ~ delta^2 / 8 for a small shift delta in sd units), while dropping a component of
# weight w costs about w log 2 / 2 on a separated mixture, so 0.01 separates "every mode found, shapes
# about right" (w < ~3 % missing) from "a mode missed". It is also ~5 standard errors above the noise
# of a 2 000-sample trace estimate near zero.
JSD_THRESHOLD = 0.01


def time_to_threshold(trace: np.ndarray, threshold: float, offset: float = 0.0) -> float | None:
    """First time (plus ``offset``) at which a `T x 3` trace's JSD estimate is ``<= threshold``.

    Returns:
        Seconds, or ``None`` when the trace never gets there.
    """
    trace = np.asarray(trace, dtype=float).reshape(-1, 3)
    hit = np.flatnonzero(trace[:, 1] <= threshold)
    return None if hit.size == 0 else float(trace[hit[0], 0] + offset)


@dataclass(frozen=True)
class VIInitComparison:
    """Result of `compare_vi_init`.

    Attributes:
        target_name: The target's name.
        dim: ``d``.
        mixture: The `LaplaceMixtureND` (its ``seconds`` is the warm start's set-up cost).
        warm: VI from the Laplace mixture.
        cold: VI from random means.
        mixture_final: Monte Carlo divergences of the Laplace mixture to the target.
        warm_final: Same for the warm VI fit.
        cold_final: Same for the cold VI fit.
        threshold: The JSD threshold of the time-to-threshold columns.
        settings: The settings used (plain dict).
    """

    target_name: str
    dim: int
    mixture: LaplaceMixtureND
    warm: VIResultND
    cold: VIResultND
    mixture_final: MCDivergences
    warm_final: MCDivergences
    cold_final: MCDivergences
    threshold: float
    settings: dict[str, Any]

    @property
    def warm_time_to_threshold(self) -> float | None:
        """Seconds from the start of the multi-start optimisation until warm VI's JSD <= threshold."""
        return time_to_threshold(self.warm.trace, self.threshold, offset=self.mixture.seconds)

    @property
    def cold_time_to_threshold(self) -> float | None:
        """Seconds of cold VI until its JSD <= threshold."""
        return time_to_threshold(self.cold.trace, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (``allow_nan=False`` safe: non-finite numbers become ``None``).

        Keys: ``target``, ``dim``, ``threshold``, ``settings``, ``laplace`` (``weights``, ``means``,
        ``seconds``, ``failures``), ``divergences`` (``{"laplace" | "warm" | "cold": {"kl_pq" |
        "kl_qp" | "jsd": {"value", "se"}}}``), ``traces`` (``{"warm" | "cold": [[seconds, jsd, se],
        ...]}``), ``time_to_threshold`` (``{"warm", "cold"}``, seconds or ``None``).
        """

        def num(x: float | None) -> float | None:
            return None if x is None or not np.isfinite(x) else float(x)

        def div(d: MCDivergences) -> dict[str, dict[str, float | None]]:
            pairs = (("kl_pq", d.kl_pq), ("kl_qp", d.kl_qp), ("jsd", d.jsd))
            return {k: {"value": num(e.value), "se": num(e.se)} for k, e in pairs}

        return {
            "target": self.target_name,
            "dim": self.dim,
            "threshold": self.threshold,
            "settings": {k: num(v) if isinstance(v, float) else v for k, v in self.settings.items()},
            "laplace": {
                "weights": self.mixture.weights.tolist(),
                "means": self.mixture.means.tolist(),
                "seconds": self.mixture.seconds,
                "failures": list(self.mixture.failures),
            },
            "divergences": {
                "laplace": div(self.mixture_final),
                "warm": div(self.warm_final),
                "cold": div(self.cold_final),
            },
            "traces": {"warm": self.warm.trace.tolist(), "cold": self.cold.trace.tolist()},
            "time_to_threshold": {"warm": self.warm_time_to_threshold, "cold": self.cold_time_to_threshold},
        }


def compare_vi_init(
    target: TargetND,
    *,
    n_starts: int = 64,
    seed: int = 0,
    steps: int = 1000,
    samples: int = 64,
    lr: float = 0.05,
    eval_every: int = 50,
    n_eval: int = 2000,
    n_final: int = 20_000,
    threshold: float = JSD_THRESHOLD,
    n_components: int | None = None,
    cancel: CancelCallback = None,
) -> VIInitComparison:
    """Laplace mixture, then warm- and cold-started VI on ``target`` (see the module docstring).

    Args:
        target: A `TargetND` (exact log density and sampling).
        n_starts: Sobol starts of the multi-start optimisation.
        seed: Seeds the starts, NNLS points, VI (both runs) and the Monte Carlo estimates.
        steps: Adam steps per VI run.
        samples: ELBO samples per component and step.
        lr: Initial Adam learning rate.
        eval_every: Steps between JSD evaluations of the traces.
        n_eval: Samples per side per trace evaluation.
        n_final: Samples per side of the final divergences.
        threshold: JSD threshold for the time-to-threshold properties.
        n_components: Components of the cold start (default: as many as the Laplace mixture has).
        cancel: Checked in every long loop (see `fit_laplace_mixture_nd`, `refine_vi_nd`); returning
            True raises `Cancelled`.

    Returns:
        The `VIInitComparison`.
    """
    if not (isinstance(threshold, (int, float)) and 0 < threshold < np.log(2)):
        raise PosteriorError(f"VI comparison: 'threshold' must lie in (0, log 2), got {threshold!r}")
    t0 = time.perf_counter()
    check_cancel(cancel, "the start of the VI comparison")
    mixture = fit_laplace_mixture_nd(target, n_starts, seed, cancel=cancel)
    common = dict(steps=steps, samples=samples, lr=lr, seed=seed, eval_every=eval_every, n_eval=n_eval, cancel=cancel)
    warm = refine_vi_nd(target, mixture, start="warm", **common)  # type: ignore[arg-type]
    cold = refine_vi_nd(target, mixture, start="cold", n_components=n_components, **common)  # type: ignore[arg-type]
    check_cancel(cancel, "the final divergences")
    # fresh samples for each approximation, independent of the trace samples
    finals = [
        mc_divergences(target, q, n_final, seed=seed + 7919 * (i + 1)) for i, q in enumerate((mixture, warm, cold))
    ]
    settings = dict(
        n_starts=n_starts,
        seed=seed,
        steps=steps,
        samples=samples,
        lr=lr,
        eval_every=eval_every,
        n_eval=n_eval,
        n_final=n_final,
        n_components_cold=cold.means.shape[0],
        total_seconds=time.perf_counter() - t0,
    )
    return VIInitComparison(
        target_name=target.name,
        dim=target.dim,
        mixture=mixture,
        warm=warm,
        cold=cold,
        mixture_final=finals[0],
        warm_final=finals[1],
        cold_final=finals[2],
        threshold=float(threshold),
        settings=settings,
    )
