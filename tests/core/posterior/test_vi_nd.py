"""d-dimensional VI: the mixture family against scipy, warm vs cold starts, JSD traces, cancellation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import Cancelled
from lla_studio.core.posterior.gmm_targets import GaussianMixtureTarget, GMMTargetSpec
from lla_studio.core.posterior.mc_divergence import mc_divergences
from lla_studio.core.posterior.mixture_nd import fit_laplace_mixture_nd
from lla_studio.core.posterior.vi_init import compare_vi_init, time_to_threshold
from lla_studio.core.posterior.vi_nd import GaussianMixtureQ, refine_vi_nd


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _kl_gauss(m0, S0, m1, S1) -> float:
    d = m0.size
    S1inv = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * (np.trace(S1inv @ S0) + dm @ S1inv @ dm - d + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


def test_mixture_family_log_density_and_samples_against_scipy():
    target = GMMTargetSpec(dim=4, components=3, separation=2.0, correlation=0.5, seed=7).build()
    q = GaussianMixtureQ(np.log(target.weights) + 0.3, target.means, target.covs)
    lw, mu, cov = q.export()
    np.testing.assert_allclose(np.exp(lw), target.weights, rtol=1e-12)
    np.testing.assert_allclose(cov, target.covs, atol=1e-12)
    x = np.random.default_rng(0).normal(0, 2, (25, 4))
    comps = zip(target.weights, target.means, target.covs)
    parts = [np.log(w) + stats.multivariate_normal(m, c).logpdf(x) for w, m, c in comps]
    ref = np.logaddexp.reduce(parts, axis=0)
    with torch.no_grad():
        np.testing.assert_allclose(q.log_q(torch.tensor(x)).numpy(), ref, atol=1e-10)
        eps = torch.randn(3, 20_000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        z = q.sample(eps).numpy()
    for k in range(3):
        np.testing.assert_allclose(np.cov(z[k].T), target.covs[k], atol=0.06)


def test_cold_vi_on_a_gaussian_converges_to_it():
    target = GMMTargetSpec(dim=3, components=1, correlation=0.6, seed=1).build()
    res = refine_vi_nd(target, start="cold", n_components=1, steps=600, lr=0.05, seed=0, eval_every=100, n_eval=1000)
    kl = _kl_gauss(res.means[0], res.covs[0], target.means[0], target.covs[0])
    assert kl < 5e-3
    assert res.trace[0, 1] > 0.3 and res.final_jsd < 3e-3  # from far away to close
    assert res.trace.shape == (7, 3) and list(res.trace_steps) == [0, 100, 200, 300, 400, 500, 600]
    assert res.trace[0, 0] == 0.0 and np.all(np.diff(res.trace[:, 0]) >= 0)


def test_warm_vi_keeps_every_mode_and_cold_vi_loses_one():
    # four separated, unequal components in 5-D: Sobol multi-start finds all four; a cold start from
    # four random means converges to a local optimum of the ELBO that covers fewer modes
    target = GMMTargetSpec(dim=5, components=4, separation=6.0, weight_decay=1.5, seed=3).build()
    mix = fit_laplace_mixture_nd(target, 64, seed=0)
    assert len(mix.components) == 4
    warm = refine_vi_nd(target, mix, start="warm", steps=200, seed=0, eval_every=50, n_eval=1000)
    cold = refine_vi_nd(target, mix, start="cold", steps=200, seed=0, eval_every=50, n_eval=1000)
    assert cold.means.shape == (4, 5)
    w_final = mc_divergences(target, warm, n=5000, seed=1).jsd
    c_final = mc_divergences(target, cold, n=5000, seed=1).jsd
    assert w_final.value < 1e-3
    assert c_final.value > 0.05 and c_final.value > w_final.value + 10 * (w_final.se + c_final.se)
    # the last trace point (common random numbers) agrees with independent samples
    assert abs(cold.final_jsd - c_final.value) < 4 * (cold.trace[-1, 2] + c_final.se)


def test_vi_is_seeded_and_cancellable():
    target = GMMTargetSpec(dim=3, components=2, seed=0).build()
    a = refine_vi_nd(target, start="cold", steps=15, seed=4, eval_every=None)
    b = refine_vi_nd(target, start="cold", steps=15, seed=4, eval_every=None)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.elbo, b.elbo)
    assert a.trace.shape == (0, 3)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled, match="VI"):
        refine_vi_nd(target, start="cold", steps=1000, eval_every=None, cancel=cancel)
    assert len(calls) == 4


def test_vi_bad_inputs():
    target = GMMTargetSpec(dim=3, components=2, seed=0).build()
    with pytest.raises(PosteriorError, match="warm start needs the Laplace mixture"):
        refine_vi_nd(target, None, start="warm")
    with pytest.raises(PosteriorError, match="'start' must be 'warm' or 'cold'"):
        refine_vi_nd(target, start="hot")
    with pytest.raises(PosteriorError, match="'steps' must be a positive integer"):
        refine_vi_nd(target, start="cold", steps=0)
    mix2 = fit_laplace_mixture_nd(GMMTargetSpec(dim=2, components=1).build(), 4)
    with pytest.raises(PosteriorError, match="dimension 2, the target 3"):
        refine_vi_nd(target, mix2, start="warm")


def test_time_to_threshold_and_the_comparison():
    trace = np.array([[0.0, 0.5, 0.01], [1.0, 0.2, 0.01], [2.0, 0.05, 0.01], [3.0, 0.04, 0.01]])
    assert time_to_threshold(trace, 0.05) == 2.0
    assert time_to_threshold(trace, 0.05, offset=0.5) == 2.5
    assert time_to_threshold(trace, 0.01) is None
    target = GaussianMixtureTarget([0.7, 0.3], [[-3.0, 0.0], [3.0, 0.5]], [np.eye(2), [[0.5, 0.1], [0.1, 0.4]]])
    res = compare_vi_init(target, n_starts=16, steps=60, eval_every=20, n_eval=500, n_final=2000)
    assert len(res.mixture.components) == 2
    assert res.mixture_final.jsd.value < 1e-3 and res.warm_final.jsd.value < 1e-3
    assert res.warm.trace.shape == (4, 3) and res.cold.trace.shape == (4, 3)
    ttt = res.warm_time_to_threshold  # the Laplace mixture is already below the threshold
    assert ttt is not None and ttt == pytest.approx(res.mixture.seconds)
    summary = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert summary["dim"] == 2 and len(summary["traces"]["cold"]) == 4
    assert summary["divergences"]["warm"]["jsd"]["value"] == pytest.approx(res.warm_final.jsd.value)
