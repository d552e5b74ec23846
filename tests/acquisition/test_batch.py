"""Batch selection: the shortlist certificate, pending points, exclusions and diversity."""

from __future__ import annotations

import numpy as np
import pytest
from acquisition_models import TableSurrogate, random_table

from aloop.acquisition import (
    UCB,
    LogEI,
    LogPI,
    Maximize,
    MaxVariance,
    Target,
    Window,
    greedy_batch,
    propose,
)


def _run(table: TableSurrogate, policy, objective, best: float, q: int, shortlist: int, pending=None):
    n = table.mean_table.shape[0]
    mean, var = table.predict(TableSurrogate.pool(n))
    eligible = np.ones(n, dtype=bool)
    if pending is not None:
        eligible[pending] = False
    cov = lambda a, b: table.cov_table[np.ix_(a, b)]  # noqa: E731
    return greedy_batch(policy, objective, mean[:, 0], var[:, 0], best, q, eligible, cov, table.noise,
                        pending=pending, shortlist=shortlist)


def test_certificate_grows_the_shortlist_when_the_top_is_one_cluster() -> None:
    # 6 near-identical candidates lead; once one is believed the others' EI collapses below
    # the best candidate outside a shortlist of 3, so the certificate must fail and grow it.
    n = 40
    rng = np.random.default_rng(0)
    mean = np.r_[np.full(6, 1.0), rng.uniform(0.0, 0.9, n - 6)]
    cov = np.eye(n) * 0.25
    cov[:6, :6] = 0.25 * 0.999
    np.fill_diagonal(cov, 0.25)
    table = TableSurrogate(mean, cov, noise=1e-4)
    small = _run(table, LogEI(), Maximize(), 0.5, q=3, shortlist=3)
    full = _run(table, LogEI(), Maximize(), 0.5, q=3, shortlist=n)
    assert small.certified and small.shortlist_size > 3
    np.testing.assert_array_equal(small.indices, full.indices)
    assert (small.indices < 6).sum() == 1  # one from the cluster, then elsewhere
    np.testing.assert_allclose(small.scores, full.scores)


def test_certificate_keeps_a_small_shortlist_when_it_can() -> None:
    n = 300
    table = TableSurrogate(np.linspace(0, 1, n), np.eye(n) * 0.04, noise=1e-3)
    res = _run(table, LogEI(), Maximize(), 0.9, q=5, shortlist=8)
    assert res.shortlist_size == 8
    np.testing.assert_array_equal(np.sort(res.indices), np.arange(n - 5, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("policy", "objective", "best"),
    [(LogEI(), Maximize(), 0.5), (UCB(), Maximize(), 0.0), (LogPI(), Maximize(), 0.8),
     (LogEI(), Target(0.3), -0.2), (LogEI(), Window(0.2, 0.6), 0.0), (MaxVariance(), Maximize(), 0.0)],
)
def test_small_shortlist_equals_full_pool_greedy(seed: int, policy, objective, best: float) -> None:
    table = random_table(250, seed)
    pending = np.array([3, 77])
    small = _run(table, policy, objective, best, q=6, shortlist=6, pending=pending)
    full = _run(table, policy, objective, best, q=6, shortlist=250, pending=pending)
    np.testing.assert_array_equal(small.indices, full.indices)
    np.testing.assert_allclose(small.scores, full.scores, rtol=1e-10)


def test_pending_point_steers_the_batch_away() -> None:
    n = 30
    mean = np.r_[1.0, 0.5, np.full(n - 2, 0.4)]
    cov = np.eye(n) * 0.1
    cov[0, 1] = cov[1, 0] = 0.099
    table = TableSurrogate(mean, cov, noise=1e-4)
    pool = TableSurrogate.pool(n)
    assert propose(table, pool, Maximize(), UCB(), q=1)[0].index == 0
    assert propose(table, pool, Maximize(), UCB(), q=1, exclude=[0])[0].index == 1
    # pending instead of excluded: believing 0 removes most of its twin's uncertainty
    assert propose(table, pool, Maximize(), UCB(), q=1, pending=[0])[0].index not in (0, 1)


def test_never_repeats_pending_measured_or_itself(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    keys = np.array([f"c{i % 250}" for i in range(len(pool))])  # rows i and i+250 are one composition
    pending, measured = np.arange(0, 20), np.arange(20, 60)
    for policy in ["log_ei", "ucb", "log_pi", "thompson", "exploit", "max_variance", "random"]:
        props = propose(gp, pool, Maximize(), policy, q=12, y_observed=y, pending=pending, exclude=measured,
                        pool_keys=keys, exclude_keys=["c100"], seed=0)
        idx = np.array([p.index for p in props])
        assert len(set(idx)) == 12, policy
        assert not np.isin(idx, pending).any() and not np.isin(idx, measured).any(), policy
        assert len(set(keys[idx])) == 12, policy  # no composition twice
        assert not np.isin(keys[idx], keys[np.r_[pending, measured]]).any(), policy  # not even via a duplicate row
        assert "c100" not in keys[idx]


def test_min_distance_spreads_the_batch(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    for policy in ["log_ei", "thompson", "random"]:
        props = propose(gp, pool, Maximize(), policy, q=6, y_observed=y, min_distance=0.3, seed=0)
        X = pool[[p.index for p in props]]
        d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
        assert d[np.triu_indices(6, 1)].min() >= 0.3, policy


def test_impossible_min_distance_is_reported(fitted_gp: tuple) -> None:
    gp, _, y, pool = fitted_gp
    with pytest.raises(ValueError, match="min_distance"):
        propose(gp, pool, Maximize(), "log_ei", q=8, y_observed=y, min_distance=5.0)


def test_picks_outside_the_prefetched_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from aloop.acquisition import batch

    table = random_table(200, 7)
    full = _run(table, LogEI(), Maximize(), 0.5, q=8, shortlist=200, pending=np.array([1, 2]))
    monkeypatch.setattr(batch, "PREFETCH_PER_PICK", 0)
    calls = []
    cov = table.cov_table

    def counting(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        calls.append(len(b))
        return cov[np.ix_(a, b)]

    mean, var = table.predict(TableSurrogate.pool(200))
    eligible = np.ones(200, dtype=bool)
    eligible[[1, 2]] = False
    res = greedy_batch(LogEI(), Maximize(), mean[:, 0], var[:, 0], 0.5, 8, eligible, counting, table.noise,
                       pending=np.array([1, 2]), shortlist=200)
    np.testing.assert_array_equal(res.indices, full.indices)
    assert calls == [2] + [1] * 7  # pending together, then one column per conditioned pick


def test_a_longer_excluded_key_never_excludes_the_pool_key_it_starts_with(fitted_gp: tuple) -> None:
    """Cast to the pool keys' width, 'c100x' was cut to 'c100' and excluded that composition."""
    gp, _, y, pool = fitted_gp
    keys = np.array([f"c{i}" for i in range(len(pool))])
    props = propose(gp, pool, Maximize(), "exploit", q=len(pool), y_observed=y, pool_keys=keys,
                    exclude_keys=[f"{k}x" for k in keys])
    assert len(props) == len(pool)


def test_pool_rows_equal_to_pending_features_are_not_proposed_again(fitted_gp: tuple) -> None:
    """X_pending is meant for points outside the pool; a pool row with the same features is that experiment."""
    gp, _, y, pool = fitted_gp
    for policy in ["exploit", "log_ei", "thompson"]:
        first = [p.index for p in propose(gp, pool, Maximize(), policy, q=3, y_observed=y, seed=0)]
        again = [p.index for p in propose(gp, pool, Maximize(), policy, q=3, y_observed=y, seed=0,
                                          X_pending=pool[first])]
        assert not set(first) & set(again), policy
    with pytest.raises(ValueError, match="only 2 of 300 .* equal to X_pending rows"):
        propose(gp, pool, Maximize(), "ucb", q=3, X_pending=pool[2:])


def test_a_pending_point_s_believed_value_raises_the_incumbent() -> None:
    """Believed at its mean of 2.0, the pending experiment is the best so far: EI of the others is measured from it."""
    table = TableSurrogate(np.array([2.0, 0.9, 0.3, 0.2, 0.1]), np.eye(5) * 0.04, noise=1e-4)
    pick = propose(table, TableSurrogate.pool(5), Maximize(), LogEI(), q=1, best_f=0.5, pending=[0])[0]
    assert pick.index == 1
    assert pick.score == pytest.approx(LogEI().score(np.array([0.9]), np.array([0.04]), Maximize(), 2.0)[0])


def test_min_distance_keeps_members_exactly_that_far_apart() -> None:
    """Distances are compared with min_distance itself (not its square), and a member exactly that far away is allowed."""
    table = TableSurrogate(np.arange(10.0), np.eye(10) * 0.01)  # row i has feature i: rows i, j are |i − j| apart
    picks = propose(table, TableSurrogate.pool(10), Maximize(), "exploit", q=3, min_distance=3.0)
    assert [p.index for p in picks] == [9, 6, 3]


def test_thompson_draws_are_conditioned_on_pending_points() -> None:
    """Row 0 moves with the pending row 2 (covariance 1): believed at its mean, row 0 is known to be 0, below row 1's 0.1."""
    cov = np.array([[1.0, 0.0, 1.0], [0.0, 1e-8, 0.0], [1.0, 0.0, 1.0]])
    table = TableSurrogate(np.array([0.0, 0.1, 0.0]), cov, noise=1e-6)
    picks = [propose(table, TableSurrogate.pool(3), Maximize(), "thompson", q=1, pending=[2], seed=s)[0].index
             for s in range(20)]
    assert picks == [1] * 20  # unconditioned, row 0's draw N(0, 1) beats 0.1 in nearly half of them
