"""The LLA fitter against an LLA fitted by hand on the session's features.

The fitter gives the model the session's features as a BoTorch input transform (as the GP's
``SingleTaskGP`` takes them); the reference computes the normalized features itself (numpy bounds,
no BoTorch transform) and fits a plain :class:`LinearizedLaplaceModel` on them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from botorch.acquisition import LogExpectedImprovement

from lla_studio.core.features import FeatureMap
from lla_studio.core.session import load_session
from lla_studio.core.specs import SurrogateSpec
from lla_studio.core.study import Study
from lla_studio.core.surrogates.lla import fit_lla
from lla_studio.core.surrogates.lla_fit import LLAFitter, fit_lla_once, lla_options

SESSIONS = Path(__file__).resolve().parents[3] / "resources" / "sessions"
TINY = {"network": {"network": "mlp", "widths": [16, 16], "activation": "tanh"}, "settings": {"max_epochs": 30}}


@pytest.fixture(scope="module")
def cnn_session():
    """The 19-parameter CNN space: logs, products, ratios and drops between encodings and features."""
    s = load_session(SESSIONS / "cnn_hyperparameters.json")
    return replace(s, surrogate=SurrogateSpec("lla", TINY), trials=())


def _data(session, n, seed):
    fmap = FeatureMap.of(session)
    g = torch.Generator().manual_seed(seed)
    U = torch.rand(n, len(session.search_space.names), generator=g, dtype=torch.float64)
    F = fmap(U)
    Y = (F[:, :3].sin().sum(-1) + 0.1 * F[:, 3:].sum(-1)).unsqueeze(-1)
    return fmap, U, Y


def _by_hand(fmap, U):
    lo, hi = fmap.feature_bounds()
    return (fmap(U).numpy() - lo) / np.clip(hi - lo, 1e-12, None)


def test_an_lla_fitted_through_the_fitter_equals_one_fitted_directly_on_the_features(cnn_session):
    torch.manual_seed(0)
    fmap, U, Y = _data(cnn_session, 14, seed=3)
    assert not fmap.is_identity_on_unit_cube and len(fmap.feature_names) != U.shape[1]
    spec, settings = lla_options(cnn_session.surrogate.options)

    through = fit_lla_once(cnn_session, U, Y)
    direct, _ = fit_lla(torch.as_tensor(_by_hand(fmap, U)), Y, spec, settings)

    # BoTorch's contract: the model keeps the untransformed training inputs and has the transform
    assert torch.equal(through.train_X, U) and hasattr(through, "input_transform")
    assert through.n_params == direct.n_params
    # Normalize divides where the hand-made features subtract and divide in numpy: ulps, which
    # L-BFGS amplifies to ~1e-7 in the weights; compare at that scale
    assert through.prior_precision == pytest.approx(direct.prior_precision, rel=1e-5)
    assert through.noise_std == pytest.approx(direct.noise_std, rel=1e-5)
    assert through.report.log_marginal_likelihood == pytest.approx(direct.report.log_marginal_likelihood, rel=1e-6)
    Ut = torch.rand(50, U.shape[1], generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    Ft = torch.as_tensor(_by_hand(fmap, Ut))
    for a, b in zip(through.predict(Ut), direct.predict(Ft)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # the joint posterior BoTorch's acquisitions see, with input gradients through the transform
    Xq = Ut[:4].unsqueeze(1).clone().requires_grad_(True)
    pa = through.posterior(Xq)
    pb = direct.posterior(Ft[:4].unsqueeze(1))
    torch.testing.assert_close(pa.mean.detach(), pb.mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(pa.variance.detach(), pb.variance, rtol=1e-5, atol=1e-7)
    LogExpectedImprovement(through, best_f=Y.max())(Xq).sum().backward()
    assert Xq.grad is not None and torch.isfinite(Xq.grad).all() and Xq.grad.abs().sum() > 0


def test_the_study_fits_its_lla_through_the_fitter(cnn_session):
    """The study's first model-based fit (a cold start of the chain) is the fitter's cold fit, bit
    for bit, and the fitter's chain is the study's own (no state read from outside)."""
    fmap, U, Y = _data(cnn_session, 6, seed=5)
    session = replace(cnn_session, loop=replace(cnn_session.loop, initial_design=6, budget=8))
    study = Study(session, objective=lambda config: 0.0)
    for u, y in zip(U, Y):
        study.add(session.search_space.decode(u.numpy()), float(y))
    Us, Ys = study.training_data()
    event = study.fit_surrogate()
    alone = LLAFitter.for_session(session).fit_cold(Us, Ys)
    assert event.kind == "lla" and event.n_train == 6
    assert event.hyperparameters["prior_precision"] == [alone.report.prior_precision]
    Ut = torch.rand(20, U.shape[1], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for a, b in zip(event.model.predict(Ut), alone.predict(Ut)):
        assert torch.equal(a, b)
