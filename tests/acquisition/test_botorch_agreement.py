"""Agreement with BoTorch: analytic LogEI/LogPI/UCB on a fitted SingleTaskGP, and exact Kriging-believer updates."""

from __future__ import annotations

import numpy as np
import torch
from botorch.acquisition.analytic import LogExpectedImprovement, LogProbabilityOfImprovement, UpperConfidenceBound
from acquisition_models import TorchGP

from aloop.acquisition import UCB, LogEI, LogPI, Maximize, MaxVariance, Minimize, propose


def test_log_ei_agrees_with_botorch(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    mean, var = gp.predict(pool)
    X = torch.as_tensor(pool).unsqueeze(-2)
    for objective, maximize in [(Maximize(), True), (Minimize(), False)]:
        best_raw = y.max() if maximize else y.min()
        best = objective.best_utility(y)
        with torch.no_grad():
            want = LogExpectedImprovement(gp.models[0], best_f=best_raw, maximize=maximize)(X).numpy()
        got = LogEI().score(mean[:, 0], var[:, 0], objective, best)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        assert np.isfinite(got).all() and got.min() < -20  # covers the far-below-incumbent branch
    with torch.no_grad():
        pi = LogProbabilityOfImprovement(gp.models[0], best_f=y.max())(X).numpy()
        ucb = UpperConfidenceBound(gp.models[0], beta=2.5)(X).numpy()
    np.testing.assert_allclose(LogPI().score(mean[:, 0], var[:, 0], Maximize(), y.max()), pi, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(UCB(beta=2.5).score(mean[:, 0], var[:, 0], Maximize(), 0.0), ucb, rtol=1e-9)


def test_propose_log_ei_first_pick_is_botorch_argmax(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    with torch.no_grad():
        values = LogExpectedImprovement(gp.models[0], best_f=y.max())(torch.as_tensor(pool).unsqueeze(-2)).numpy()
    first = propose(gp, pool, Maximize(), "log_ei", q=1, y_observed=y)[0]
    assert first.index == int(np.argmax(values))
    assert first.score == np.float64(values.max()).item() or abs(first.score - values.max()) < 1e-9


def test_believer_updates_equal_gp_conditioning() -> None:
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(25, 2))
    y = np.cos(5 * X[:, 0]) * X[:, 1]
    gp = TorchGP(standardize=False, fit_hypers=False).fit(X, y)
    pool = rng.uniform(size=(200, 2))
    pending = [5, 17]
    picks = propose(gp, pool, Maximize(), MaxVariance(), q=3, pending=pending, shortlist=200)
    model = gp.models[0]
    conditioned = list(pending)
    for p in picks:
        Xc = torch.as_tensor(pool[conditioned])
        with torch.no_grad():
            fant = model.condition_on_observations(Xc, model.posterior(Xc).mean)
            var = fant.posterior(torch.as_tensor(pool[[p.index]])).variance.item()
        assert np.log(var) == np.float64(p.score) or abs(np.log(var) - p.score) < 1e-6
        conditioned.append(p.index)
