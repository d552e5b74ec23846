"""Proposals do not depend on the objective's units, and what a failed synthesis is worth is fixed by the data.

The same posterior written in volts, in 1e-9 S/cm or in 1e6 Pa must give the same picks: the
numerical floors (the smallest σ, a target's smallest distance, the worth of a failure) are
relative to the objective's spread, not absolute numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from acquisition_models import TableSurrogate, random_table

from aloop.acquisition import UCB, Maximize, Minimize, MultiObjective, ScalarizedLogEI, Target, Window, propose

N = 120
MEASURED = np.arange(10)


def _objective(kind: str, s: float) -> Maximize | Minimize | Target | Window:
    return {"max": Maximize(), "min": Minimize(), "target": Target(0.3 * s), "window": Window(0.1 * s, 0.5 * s)}[kind]


@pytest.mark.parametrize("feasible", [False, True])
@pytest.mark.parametrize("kind", ["max", "min", "target", "window"])
@pytest.mark.parametrize("policy", ["log_ei", "log_pi", "ucb", "exploit", "thompson"])
def test_picks_do_not_depend_on_units(policy: str, kind: str, feasible: bool) -> None:
    base = random_table(N, seed=3)
    y_obs = base.mean_table[MEASURED, 0] + np.random.default_rng(1).normal(0, 0.05, MEASURED.size)
    p = np.random.default_rng(2).uniform(0.3, 0.9, N) if feasible else None
    picks = {}
    for s in (1.0, 1e-9, 1e6):
        table = TableSurrogate(base.mean_table * s, base.cov_table * s**2, noise=base.noise * s**2)
        got = propose(table, TableSurrogate.pool(N), _objective(kind, s), policy, q=3, y_observed=y_obs * s,
                      exclude=MEASURED, feasibility=p, seed=0)
        picks[s] = [g.index for g in got]
    assert picks[1e-9] == picks[1.0] == picks[1e6]


def test_a_failure_is_worth_the_worst_measured_value_not_the_worst_candidate() -> None:
    # A: bound 1.0 at P(success) 0.6; B: 0.5 at 0.7. Measured so far: 0.0 and 0.2, so a failure is worth 0.0
    # and A's expected value (0.6) beats B's (0.35) — whatever else the pool holds.
    for worst in (-0.5, -5.0):
        table = TableSurrogate(np.array([1.0, 0.5, worst]), np.zeros((3, 3)))
        got = propose(table, TableSurrogate.pool(3), Maximize(), UCB(), q=1, y_observed=np.array([0.0, 0.2]),
                      feasibility=np.array([0.6, 0.7, 0.5]))
        assert got[0].index == 0


def test_a_constant_objective_does_not_take_all_the_weight() -> None:
    mo = MultiObjective([Maximize(output=0), Maximize(output=1)])
    Y = np.c_[np.linspace(0, 1, 10), np.full(10, 3.0)]
    flat = ScalarizedLogEI().coefficients(mo, 2, Y)
    Y[0, 1] += 1e-9  # a rounding difference is not a spread
    wobble = ScalarizedLogEI().coefficients(mo, 2, Y)
    np.testing.assert_allclose(wobble, flat)
    assert flat[1] == pytest.approx(0.5 / 3.0) and flat[0] == pytest.approx(0.5 / np.linspace(0, 1, 10).std())


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_scale_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="scale must be a finite number > 0"):
        Maximize(scale=bad)


def test_a_failure_is_worth_the_worst_measured_value_not_the_best() -> None:
    # A: 1.0 at P(success) 0.35; B: 0.8 at 0.5. A failure is worth the worst measured value, 0.0: A's expected value
    # is 0.35, B's 0.4, so B. (Worth the best measured 0.6, A would win: 0.6 + 0.35·0.4 against 0.6 + 0.5·0.2.)
    table = TableSurrogate(np.array([1.0, 0.8, -5.0]), np.zeros((3, 3)))
    got = propose(table, TableSurrogate.pool(3), Maximize(), UCB(), q=1, y_observed=np.array([0.0, 0.6]),
                  feasibility=np.array([0.35, 0.5, 0.9]))
    assert got[0].index == 1
