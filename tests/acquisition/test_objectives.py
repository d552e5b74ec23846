"""Closed-form checks of the Gaussian scores behind every objective, and the Pareto utilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from aloop.acquisition import gaussian as g
from aloop.acquisition.objectives import Maximize, Minimize, MultiObjective, Target, Window
from aloop.acquisition.policies import UCB, LogEI, LogPI


def ei_closed_form(mu: float, sigma: float, best: float) -> float:
    z = (mu - best) / sigma
    return sigma * stats.norm.pdf(z) + (mu - best) * stats.norm.cdf(z)


@pytest.mark.parametrize(("mu", "sigma", "best"), [(0.5, 0.2, 0.4), (0.0, 1.0, 0.0), (-1.0, 0.3, 0.2), (2.0, 0.1, 1.0)])
def test_log_ei_matches_closed_form(mu: float, sigma: float, best: float) -> None:
    got = LogEI().score(np.array([mu]), np.array([sigma**2]), Maximize(), best)[0]
    assert math.exp(got) == pytest.approx(ei_closed_form(mu, sigma, best), rel=1e-10)


def test_ei_hand_computed_value() -> None:
    # mean 1, std 1, best 0: EI = φ(1) + Φ(1) = 0.241971 + 0.841345
    got = math.exp(LogEI().score(np.array([1.0]), np.array([1.0]), Maximize(), 0.0)[0])
    assert got == pytest.approx(1.0833154705876864, rel=1e-12)


def test_minimize_mirrors_maximize() -> None:
    mean, var = np.array([0.3, -0.2]), np.array([0.04, 0.09])
    best_min = Minimize().best_utility(np.array([0.1, 0.5]))  # utility of 0.1
    assert best_min == -0.1
    a = LogEI().score(mean, var, Minimize(), best_min)
    b = LogEI().score(-mean, var, Maximize(), -0.1)
    np.testing.assert_allclose(a, b)


def test_log_ei_is_finite_far_below_the_incumbent() -> None:
    got = LogEI().score(np.array([-50.0, -1e4]), np.array([1.0, 1.0]), Maximize(), 0.0)
    assert np.isfinite(got).all() and got[0] > got[1]
    # leading asymptotics: log EI ≈ log φ(u) − 2 log|u| for u → −∞
    assert got[0] == pytest.approx(stats.norm.logpdf(-50.0) - 2 * math.log(50.0), abs=1e-2)


def test_pi_and_ucb_hand_computed() -> None:
    mean, var = np.array([0.5]), np.array([0.25])
    assert math.exp(LogPI().score(mean, var, Maximize(), 0.0)[0]) == pytest.approx(stats.norm.cdf(1.0), rel=1e-12)
    assert math.exp(LogPI().score(mean, var, Minimize(), -1.0)[0]) == pytest.approx(stats.norm.cdf(1.0), rel=1e-12)
    assert UCB().score(mean, var, Maximize(), 0.0)[0] == pytest.approx(0.5 + 2 * 0.5)  # default β = 4
    assert UCB(beta=1.0).score(mean, var, Maximize(), 0.0)[0] == pytest.approx(0.5 + 0.5)
    assert UCB(beta=4.0).score(mean, var, Minimize(), 0.0)[0] == pytest.approx(-0.5 + 2 * 0.5)


def test_window_probability_hand_computed() -> None:
    w = Window(1.1, 1.7, name="band gap", units="eV")
    mean, std = np.array([1.4, 2.0, 0.0]), np.array([0.2, 0.3, 0.1])
    want = stats.norm.cdf((1.7 - mean) / std) - stats.norm.cdf((1.1 - mean) / std)
    got = np.exp(LogEI().score(mean, std**2, w, best=0.0))
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-12)
    # 11 standard deviations away: naive difference underflows to 0, the log form does not
    assert np.isfinite(np.log(got[2]) if got[2] > 0 else LogEI().score(mean, std**2, w, 0.0)[2])
    assert LogEI().score(mean, std**2, w, 0.0)[2] == pytest.approx(stats.norm.logsf(11.0), rel=1e-3)


def test_window_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        Window(1.7, 1.1)
    with pytest.raises(ValueError, match="Target"):
        Window(1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        Window(float("nan"), 1.0)


@pytest.mark.parametrize(
    ("mu", "sigma", "dist"), [(1.4, 0.2, 0.1), (2.5, 0.2, 0.1), (1.45, 3.0, 0.05), (1.4, 5.0, 1e-4), (0.3, 0.05, 0.2)]
)
def test_target_ei_matches_quadrature(mu: float, sigma: float, dist: float) -> None:
    t = 1.4
    f = lambda y: max(dist - abs(y - t), 0.0) * stats.norm.pdf(y, mu, sigma)  # noqa: E731
    want, _ = integrate.quad(f, t - dist, t + dist, points=[t], epsabs=0, epsrel=1e-12, limit=200)
    got = Target(t).log_ei(np.array([mu]), np.array([sigma]), best=-dist)[0]
    assert got == pytest.approx(math.log(want), rel=1e-6, abs=1e-8)


def test_bounds_dominate_scores_for_every_smaller_std() -> None:
    rng = np.random.default_rng(1)
    mean = rng.normal(size=400)
    std = rng.uniform(0.05, 2.0, size=400)
    for obj, best in [(Maximize(), 0.3), (Target(0.2), -0.4), (Window(-0.5, 0.5), 0.0)]:
        for policy in (LogEI(), LogPI()):
            bound = policy.bound(mean, std**2, obj, best)
            for frac in (1.0, 0.7, 0.3, 0.05, 1e-3):
                for better in (0.0, 0.2):
                    score = policy.score(mean, (frac * std) ** 2, obj, best + better)
                    assert (score <= bound + 1e-9).all(), (obj, policy, frac)


def test_pareto_and_hypervolume() -> None:
    mo = MultiObjective([Maximize(output=0), Minimize(output=1)], ref_point=[0.0, -10.0])
    Y = np.array([[1.0, 1.0], [2.0, 3.0], [0.5, 2.0], [2.0, 1.0]])
    np.testing.assert_array_equal(mo.pareto_mask(Y), [False, False, False, True])
    # one point at utility (2, −1) over reference (0, −10): 2 × 9
    assert mo.hypervolume(Y) == pytest.approx(18.0)
    Y2 = np.array([[1.0, 0.0], [2.0, 5.0]])  # utilities (1, 0) and (2, −5)
    assert mo.hypervolume(Y2) == pytest.approx(1 * 10 + 1 * 5)
    assert MultiObjective([Maximize(output=0), Minimize(output=1)]).reference_point(Y).shape == (2,)


def test_reference_point_leaves_room_below_a_dominating_observation() -> None:
    # One observation dominates the rest, and it sits at utility (0, 0) (a target hit exactly): the reference point
    # is 10 % of each objective's observed range below it, not a hair's breadth (BoTorch's front-only inference).
    mo = MultiObjective([Target(1.4, output=0), Maximize(output=1)])
    Y = np.array([[1.4, 0.0], [1.9, -2.0], [0.4, -1.0]])  # utilities (0, 0), (−0.5, −2), (−1, −1)
    np.testing.assert_allclose(mo.reference_point(Y), [-0.1, -0.2])
    assert mo.hypervolume(Y) == pytest.approx(0.02)
    with pytest.raises(ValueError, match="pass ref_point"):
        mo.reference_point(np.zeros((0, 2)))


def test_gaussian_window_bound_is_attained() -> None:
    # outside the window the supremum sits at σ* from the closed form
    lo, hi, mu = 1.0, 2.0, 0.0
    s = np.linspace(1e-3, 5, 20001)
    p = stats.norm.cdf((hi - mu) / s) - stats.norm.cdf((lo - mu) / s)
    bound = g.log_window_prob_bound(np.array([mu]), np.array([5.0]), lo, hi)[0]
    assert bound == pytest.approx(math.log(p.max()), rel=1e-6)


def test_window_exploit_ranks_by_distance_to_the_centre() -> None:
    w = Window(1.0, 2.0)
    np.testing.assert_allclose(w.exploit(np.array([1.5, 1.1, 2.0, 2.3, 0.6])), [0.0, -0.4, -0.5, -0.8, -0.9])
