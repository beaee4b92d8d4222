"""Monte Carlo KL / JSD with standard errors: closed forms, bounds, and the 2-D grid divergences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior import MixtureSpec, js_divergence
from lla_studio.core.posterior.gmm_targets import GaussianMixtureTarget
from lla_studio.core.posterior.mc_divergence import (
    jsd_from_samples,
    kl_from_samples,
    mc_divergences,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)


def _gaussian(mean, cov) -> GaussianMixtureTarget:
    return GaussianMixtureTarget([1.0], np.asarray(mean)[None], np.asarray(cov)[None])


def _kl_gauss(m0, S0, m1, S1) -> float:
    """Closed form KL(N(m0, S0) || N(m1, S1))."""
    d = m0.size
    S1inv = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * (
        np.trace(S1inv @ S0) + dm @ S1inv @ dm - d + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    )


M0, S0 = np.array([0.0, 1.0, -0.5]), np.array([[1.0, 0.3, 0.0], [0.3, 2.0, -0.4], [0.0, -0.4, 0.7]])
M1, S1 = np.array([0.4, 0.5, 0.0]), np.array([[1.5, -0.2, 0.1], [-0.2, 1.0, 0.0], [0.1, 0.0, 1.2]])


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


@pytest.mark.parametrize("d", [3, 8])
def test_kl_both_ways_match_the_closed_form_within_standard_errors(d):
    if d == 3:
        m0, s0, m1, s1 = M0, S0, M1, S1
    else:
        rng = np.random.default_rng(d)
        m0, m1 = rng.normal(0, 0.5, d), rng.normal(0, 0.5, d)
        s0, s1 = _random_spd(rng, d), _random_spd(rng, d)
    est = mc_divergences(_gaussian(m0, s0), _gaussian(m1, s1), n=20_000, seed=0)
    for got, exact in ((est.kl_pq, _kl_gauss(m0, s0, m1, s1)), (est.kl_qp, _kl_gauss(m1, s1, m0, s0))):
        assert abs(got.value - exact) < 4 * got.se
        assert 0 < got.se < 0.05 * exact
    assert 0 < est.jsd.value < min(est.kl_pq.value, est.kl_qp.value)


def test_standard_errors_match_the_spread_over_replicates():
    p, q = _gaussian(M0, S0), _gaussian(M1, S1)
    reps = [mc_divergences(p, q, n=400, seed=s) for s in range(60)]
    for key in ("kl_pq", "kl_qp", "jsd"):
        values = np.array([getattr(r, key).value for r in reps])
        ses = np.array([getattr(r, key).se for r in reps])
        # the spread of 60 replicates has a relative sampling error of ~9 %; allow 30 %
        assert values.std(ddof=1) == pytest.approx(ses.mean(), rel=0.3)


def test_jsd_of_identical_distributions_is_zero_and_jsd_is_bounded_by_log2():
    p = _gaussian(M0, S0)
    same = mc_divergences(p, _gaussian(M0, S0), n=500, seed=1)
    assert same.jsd.value == 0.0 and same.jsd.se == 0.0
    assert same.kl_pq.value == 0.0 and same.kl_qp.value == 0.0
    far = mc_divergences(p, _gaussian(M0 + 40.0, S0), n=500, seed=1)
    assert math.log(2) - 1e-12 <= far.jsd.value <= math.log(2)
    rng = np.random.default_rng(3)
    for _ in range(5):  # every estimate, however noisy, stays in [.., log 2]
        q = _gaussian(rng.normal(0, 3, 3), np.diag(rng.uniform(0.01, 3, 3)))
        assert mc_divergences(p, q, n=50, seed=int(rng.integers(1000))).jsd.value <= math.log(2)


def test_mc_jsd_agrees_with_the_2d_grid_jsd():
    spec = MixtureSpec(separation=3.0, sd=0.8, correlation=0.5, weight=0.35)
    model = spec.build()
    p = GaussianMixtureTarget(*spec.components())
    q = _gaussian(np.array([0.3, 0.1]), np.array([[2.0, 0.2], [0.2, 0.8]]))
    g = np.linspace(-9, 9, 601)
    A, B = np.meshgrid(g, g)
    pts = np.stack([A, B], -1)
    with torch.no_grad():
        log_p = model.log_density(torch.tensor(pts)).numpy()
    grid_jsd = js_divergence(log_p, q.log_pdf(pts))
    est = mc_divergences(p, q, n=20_000, seed=4).jsd
    assert abs(est.value - grid_jsd) < 4 * est.se
    assert est.se < 0.03 * grid_jsd  # the comparison has teeth: the JSD is 0.09, its standard error 0.002


def test_zero_density_and_bad_inputs():
    assert kl_from_samples(np.zeros(3), np.array([0.0, -np.inf, 0.0])).value == math.inf
    # q = 0 at a sample of p: that sample contributes the maximum, log 2, to its half
    est = jsd_from_samples(np.zeros(2), np.array([-np.inf, -np.inf]), np.zeros(2), np.zeros(2))
    assert est.value == pytest.approx(0.5 * math.log(2))
    with pytest.raises(PosteriorError, match="equally long"):
        kl_from_samples(np.zeros(3), np.zeros(2))
    with pytest.raises(PosteriorError, match="NaN"):
        jsd_from_samples(np.zeros(2), np.array([np.nan, 0.0]), np.zeros(2), np.zeros(2))
    with pytest.raises(PosteriorError, match="'n' must be an integer >= 2"):
        mc_divergences(_gaussian(M0, S0), _gaussian(M1, S1), n=1)
