"""Tests for aloop.benchmark.metrics: hand-computed cases, Monte-Carlo checks of the random baselines, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from aloop.benchmark import metrics as m

T_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_goodness_directions_and_window() -> None:
    y = np.array([0.0, 1.0, 1.5, 2.0, 3.5])
    np.testing.assert_array_equal(m.goodness(y, "maximize"), y)
    np.testing.assert_array_equal(m.goodness(y, "minimize"), -y)
    np.testing.assert_allclose(m.goodness(y, "window", (1.0, 2.0)), [-1.0, 0.0, 0.0, 0.0, -1.5])


@pytest.mark.parametrize(
    ("y", "direction", "window", "message"),
    [
        ([1.0, np.nan], "maximize", None, "y contains 1 NaN"),
        ([1.0, 2.0], "maximise", None, "unknown direction 'maximise'"),
        ([1.0, 2.0], "window", None, "needs window"),
        ([1.0, 2.0], "window", (2.0, 1.0), "lo < hi"),
        ([1.0, 2.0], "window", (1.0,), "two numbers"),
        ([1.0, 2.0], "maximize", (0.0, 1.0), "use direction='window'"),
        ([], "maximize", None, "y is empty"),
    ],
)
def test_goodness_rejects_bad_input(y: list[float], direction: str, window: tuple | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        m.goodness(y, direction, window)  # type: ignore[arg-type]


def test_top_mask_size_ties_and_float_fractions() -> None:
    score = np.arange(10.0)
    np.testing.assert_array_equal(np.flatnonzero(m.top_mask(score, 0.2)), [8, 9])
    np.testing.assert_array_equal(np.flatnonzero(m.top_mask(score, 0.15)), [8, 9])  # ceil(1.5) = 2
    assert m.top_mask(score, 1.0).all()
    # 0.07·100 is 7.000000000000001 in floating point; the cut must still be 7 rows.
    assert m.top_mask(np.arange(100.0), 0.07).sum() == 7
    assert m.top_mask(np.arange(200.0), 0.05).sum() == 10
    tied = np.array([5.0, 5.0, 5.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.5, 1.5])
    np.testing.assert_array_equal(np.flatnonzero(m.top_mask(tied, 0.1)), [0, 1, 2])


def test_top_mask_window_keeps_every_in_window_row() -> None:
    y = np.array([0.0, 1.2, 1.4, 9.0, 1.9, 5.0, 1.1, 7.0, 3.0, 4.0])
    mask = m.top_mask(m.goodness(y, "window", (1.0, 2.0)), 0.1)
    np.testing.assert_array_equal(np.flatnonzero(mask), [1, 2, 4, 6])


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_top_mask_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction must be in"):
        m.top_mask(np.arange(10.0), fraction)


def test_top_percent_curve_by_hand() -> None:
    mask = np.zeros(10, dtype=bool)
    mask[[2, 5, 7]] = True
    curve = m.top_percent_curve([0, 2, 3, 5, 9, 7], mask)
    np.testing.assert_allclose(curve, np.array([0, 1, 1, 2, 2, 3]) / 3)
    assert m.experiments_to_reach(curve, 0.5) == 4
    assert m.experiments_to_reach(curve, 1.0) == 6
    assert m.experiments_to_reach(curve[:5], 1.0) is None
    np.testing.assert_allclose(m.enhancement_factor(curve, 10), curve * 10 / np.arange(1, 7))


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ([0, 2, 2, 5], "repeated indices"),
        ([0, 10], "outside"),
        ([-1, 3], "outside"),
        ([0.0, 1.0], "integer row indices"),
        ([], "order is empty"),
    ],
)
def test_top_percent_curve_rejects_bad_order(order: list, message: str) -> None:
    mask = np.zeros(10, dtype=bool)
    mask[3] = True
    with pytest.raises(ValueError, match=message):
        m.top_percent_curve(np.asarray(order), mask)


def test_top_percent_curve_rejects_empty_or_non_boolean_mask() -> None:
    with pytest.raises(ValueError, match="mask selects no rows"):
        m.top_percent_curve([0, 1], np.zeros(5, dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        m.top_percent_curve([0, 1], np.ones(5))


@pytest.mark.parametrize("n_top", [1, 4, 15])
def test_random_top_percent_matches_monte_carlo(n_top: int) -> None:
    rng = np.random.default_rng(n_top)
    pool_size, runs = 30, 20_000
    mask = np.zeros(pool_size, dtype=bool)
    mask[rng.choice(pool_size, n_top, replace=False)] = True
    perms = np.argsort(rng.random((runs, pool_size)), axis=1)
    simulated = (np.cumsum(mask[perms], axis=1) / n_top).mean(axis=0)
    n = np.arange(1, pool_size + 1)
    np.testing.assert_allclose(m.random_top_percent(n, pool_size), n / pool_size)
    # Standard error of each mean is at most 0.5/sqrt(20000) ≈ 0.0035.
    np.testing.assert_allclose(simulated, m.random_top_percent(n, pool_size), atol=0.015)
    assert m.random_top_percent(3, pool_size) == pytest.approx(0.1)


def test_af_is_one_for_the_random_expectation_curve() -> None:
    pool_size, n_top = 100, 10
    curve = m.random_top_percent(np.arange(1, pool_size + 1), pool_size)
    for t in T_GRID:
        assert m.acceleration_factor(curve, pool_size, n_top, t) == pytest.approx(1.0)
    np.testing.assert_allclose(m.enhancement_factor(curve, pool_size), 1.0)


def test_af_of_random_runs_averaged_is_one_even_between_steps() -> None:
    """The seed-mean curve of random orders reaches t at about t·N, whether or not t·n_top is whole."""
    rng = np.random.default_rng(0)
    pool_size, n_top = 200, 7
    mask = np.zeros(pool_size, dtype=bool)
    mask[:n_top] = True
    mean_curve = np.mean([m.top_percent_curve(rng.permutation(pool_size), mask) for _ in range(4000)], axis=0)
    for t in (0.25, 0.5, 0.75):  # 1.75, 3.5 and 5.25 of 7 good rows
        assert m.acceleration_factor(mean_curve, pool_size, n_top, t, averaged=True) == pytest.approx(1.0, abs=0.04)
    # read as one run's curve it would need ceil(t·7)/7 of the good rows, and random's count to match
    assert m.acceleration_factor(mean_curve, pool_size, n_top, 0.5) == pytest.approx(8 / 7, abs=0.05)


def test_af_of_a_perfect_oracle() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    mask = m.top_mask(y, 0.05)
    n_top = int(mask.sum())
    assert n_top == 10
    curve = m.top_percent_curve(np.argsort(-y)[:40], mask)
    for t in [*T_GRID, 0.25, 0.55, 1.0]:  # t·n_top not an integer: k = ceil(t·n_top) rows still needed
        # The oracle finds k = ceil(t·n_top) good rows in k experiments; random needs k/n_top·N.
        assert m.acceleration_factor(curve, 200, n_top, t) == pytest.approx(200 / n_top)
        # Expected draws of random until the k-th good row: k·(N+1)/(n_top+1).
        assert m.acceleration_factor(curve, 200, n_top, t, baseline="draws") == pytest.approx(201 / 11)


def test_af_is_none_when_never_reached_and_rejects_bad_input() -> None:
    mask = np.zeros(20, dtype=bool)
    mask[[18, 19]] = True
    curve = m.top_percent_curve([0, 1, 2, 18], mask)
    assert m.acceleration_factor(curve, 20, 2, 0.5) == pytest.approx(10 / 4)
    assert m.acceleration_factor(curve, 20, 2, 0.9) is None
    with pytest.raises(ValueError, match="n_top must be an integer"):
        m.acceleration_factor(curve, 20, 0, 0.5)
    with pytest.raises(ValueError, match="t must be in"):
        m.acceleration_factor(curve, 20, 2, 0.0)
    with pytest.raises(ValueError, match="unknown baseline"):
        m.acceleration_factor(curve, 20, 2, 0.5, baseline="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pool has only 3 rows"):
        m.enhancement_factor(curve, 3)


def test_alm_metrics_on_a_constructed_order() -> None:
    score = np.arange(20.0)
    alms = m.top_mask(score, 0.1)
    np.testing.assert_array_equal(np.flatnonzero(alms), [18, 19])
    order = [3, 18, 0, 5, 19, 1]
    assert m.any_alm(order, alms) == 2
    assert m.all_alm(order, alms) == 5
    np.testing.assert_allclose(m.alm_fraction(order, alms), [0, 0.5, 0.5, 0.5, 1, 1])
    assert m.all_alm(order[:3], alms) is None
    assert m.any_alm([0, 1], alms) is None
    # Remaining candidates M = 19, 18, 17, 16, 15; worse-ranked among them r = 17, 0, 3, 15, 0.
    expected = [2 * 17 / 19 - 1, -1.0, 2 * 3 / 17 - 1, 2 * 15 / 16 - 1, -1.0]
    np.testing.assert_allclose(m.de_alm(order, score, n_init=1), expected)
    assert m.de_alm(order, score).shape == (6,)


def test_de_alm_ties_and_random_expectation() -> None:
    assert m.de_alm([0], np.array([1.0, 1.0, 1.0, 0.0]))[0] == pytest.approx(0.0)
    score = np.random.default_rng(1).normal(size=50)
    first_choices = [m.de_alm([i], score)[0] for i in range(score.size)]
    # Averaging over every possible first pick is the exact expectation of a uniform random pick.
    assert np.mean(first_choices) == pytest.approx(-1 / score.size)
    with pytest.raises(ValueError, match="n_init must be"):
        m.de_alm([0, 1], score, n_init=2)


def test_best_so_far_and_regret() -> None:
    values = np.array([1.0, 3.0, 2.0, 5.0])
    np.testing.assert_array_equal(m.best_so_far(values, "maximize"), [1, 3, 3, 5])
    np.testing.assert_array_equal(m.best_so_far(values, "minimize"), [1, 1, 1, 1])
    win = (2.0, 4.0)
    np.testing.assert_array_equal(m.best_so_far([0.0, 5.0, 4.5, 3.0, 2.5], "window", win), [0, 5, 4.5, 3, 3])
    pool = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    np.testing.assert_allclose(m.simple_regret([1.0, 3.0, 10.0], pool, "maximize"), [9, 7, 0])
    np.testing.assert_allclose(m.simple_regret([3.0, 1.0, 0.0], pool, "minimize"), [3, 1, 0])
    np.testing.assert_allclose(m.simple_regret([0.0, 5.0, 3.0], [0.0, 5.0, 3.0], "window", win), [2, 1, 0])
    with pytest.raises(ValueError, match="values contains 1 NaN"):
        m.best_so_far([1.0, np.nan], "maximize")


def test_random_expected_best_matches_monte_carlo() -> None:
    rng = np.random.default_rng(2)
    score = rng.normal(size=12)
    expected = m.random_expected_best(score, 12)
    perms = np.argsort(rng.random((20_000, 12)), axis=1)
    simulated = np.maximum.accumulate(score[perms], axis=1).mean(axis=0)
    np.testing.assert_allclose(expected, simulated, atol=0.03)
    assert expected[0] == pytest.approx(score.mean())
    assert expected[-1] == pytest.approx(score.max())
    with pytest.raises(ValueError, match="budget must be"):
        m.random_expected_best(score, 13)


def test_band_percentiles_and_validation() -> None:
    curves = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]])
    mean, low, high = m.band(curves, low=0, high=100)
    np.testing.assert_allclose(mean, [1, 3])
    np.testing.assert_allclose(low, [0, 1])
    np.testing.assert_allclose(high, [2, 5])
    _, low10, high90 = m.band(curves)
    np.testing.assert_allclose(low10, [0.2, 1.4])
    np.testing.assert_allclose(high90, [1.8, 4.6])
    with pytest.raises(ValueError, match="NaN"):
        m.band(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="seeds, experiments"):
        m.band(np.array([0.0, 1.0]))


def test_a_find_counts_once_its_whole_batch_is_spent() -> None:
    """A top row third in a batch of 4 is known after the 4th experiment of that batch, not the 3rd."""
    mask = np.zeros(20, dtype=bool)
    mask[[7, 9]] = True
    order = [0, 1, 2, 7, 3, 4, 9, 5, 6]  # initial design of 2, then batches of 4 and 3
    batch = [0, 0, 1, 1, 1, 1, 2, 2, 2]
    np.testing.assert_array_equal(m.batch_ends(batch, 9), [2, 2, 6, 6, 6, 6, 9, 9, 9])
    np.testing.assert_allclose(m.top_percent_curve(order, mask, batch), [0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 1])
    np.testing.assert_allclose(m.top_percent_curve(order, mask), [0, 0, 0, 0.5, 0.5, 0.5, 1, 1, 1])
    assert m.any_alm(order, mask, batch) == 6 and m.any_alm(order, mask) == 4
    assert m.all_alm(order, mask, batch) == 9 and m.all_alm(order, mask) == 7
    assert m.experiments_to_reach(m.top_percent_curve(order, mask, batch), 0.5) == 6
    with pytest.raises(ValueError, match="consecutive runs"):
        m.batch_ends([0, 1, 0], 3)
    with pytest.raises(ValueError, match="label each of the 3 experiments"):
        m.batch_ends([0, 1], 3)


def test_per_run_af_against_random_s_median_gives_random_about_one() -> None:
    """One run's AF must compare with random's median run, not its expected curve, or random scores above 1."""
    rng = np.random.default_rng(0)
    N, n_top = 200, 10
    mask = np.zeros(N, dtype=bool)
    mask[:n_top] = True
    afs = {"curve": [], "median": []}
    for _ in range(2000):
        curve = m.top_percent_curve(rng.permutation(N), mask)
        for baseline in afs:
            afs[baseline].append(m.acceleration_factor(curve, N, n_top, 0.5, baseline=baseline))
    assert np.median(afs["median"]) == pytest.approx(1.0, abs=0.03)
    assert np.median(afs["curve"]) > 1.04  # the old per-seed baseline flattered every strategy, random included


def test_de_alm_s_ceiling_is_below_one_where_the_best_candidates_tie() -> None:
    """A window task: many candidates tie as in-window; picking only them is a perfect campaign, scored below 1."""
    score = np.r_[np.zeros(30), -np.arange(1.0, 71.0)]  # 30 in the window (distance 0), 70 outside
    order = np.arange(10)  # picks only in-window rows
    ceiling = m.de_alm_ceiling(order, score, n_init=2)
    np.testing.assert_allclose(m.de_alm(order, score, n_init=2), ceiling)
    np.testing.assert_allclose(ceiling[0], 1 - (28 + 1) / 98)
    tie_free = np.arange(100.0)
    best_first = np.argsort(-tie_free)[:10]
    np.testing.assert_allclose(m.de_alm(best_first, tie_free, n_init=2), m.de_alm_ceiling(best_first, tie_free, 2))
    assert m.de_alm_ceiling(best_first, tie_free, 2)[0] == pytest.approx(1 - 2 / 98)


def test_af_interval_brackets_the_seed_mean_af_and_narrows_with_seeds() -> None:
    """Random orders on a real-sized pool: the interval holds the AF of the mean curve, and 4× the seeds halve it."""
    rng = np.random.default_rng(1)
    pool_size, n_top = 400, 20
    mask = np.zeros(pool_size, dtype=bool)
    mask[:n_top] = True
    widths = []
    for seeds in (20, 80):
        curves = np.array([m.top_percent_curve(rng.permutation(pool_size)[:300], mask) for _ in range(seeds)])
        af = m.acceleration_factor(curves.mean(axis=0), pool_size, n_top, 0.5, averaged=True)
        lo, hi = m.acceleration_factor_interval(curves, pool_size, n_top, 0.5)
        assert lo < af < hi and lo < 1.0 < hi  # random's AF is 1
        widths.append(hi - lo)
    assert widths[1] < 0.7 * widths[0]
    assert m.acceleration_factor_interval(curves, pool_size, n_top, 0.5) == (lo, hi)  # seeded: reproducible


def test_af_interval_of_identical_seeds_is_a_point_and_unreached_bounds_are_nan() -> None:
    curve = np.r_[np.zeros(9), np.full(5, 0.5), np.ones(6)]  # half of the top set after 10 experiments, all after 15
    lo, hi = m.acceleration_factor_interval(np.tile(curve, (5, 1)), 100, 2, 0.5)
    assert lo == hi == pytest.approx(0.5 * 100 / 10)
    # With 3 of 4 seeds finding nothing, a resample's mean reaches 0.5 only with ≥ 2 copies of `curve` (26%),
    # then at experiment 15 (AF 50/15) unless all 4 are copies (0.4%): no lower bound, the upper one 50/15.
    never = np.zeros(20)
    lo, hi = m.acceleration_factor_interval(np.array([curve, never, never, never]), 100, 2, 0.5)
    assert np.isnan(lo) and hi == pytest.approx(50 / 15)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"curves": np.zeros(20)}, "S × B"),
    ({"curves": np.full((3, 20), 1.5)}, "fractions"),
    ({"n_top": 0}, "n_top"),
    ({"level": 1.0}, "level"),
    ({"n_boot": 0}, "n_boot"),
    ({"t": 0.0}, "t"),
])
def test_af_interval_bad_input(kwargs: dict, match: str) -> None:
    args = {"curves": np.zeros((3, 20)), "pool_size": 100, "n_top": 2, "t": 0.5, **kwargs}
    curves, pool_size, n_top, t = args.pop("curves"), args.pop("pool_size"), args.pop("n_top"), args.pop("t")
    with pytest.raises(ValueError, match=match):
        m.acceleration_factor_interval(curves, pool_size, n_top, t, **args)


def test_a_find_in_the_initial_design_counts_only_once_the_design_is_complete() -> None:
    """The first experiment is a top row, but nothing is known until the initial design of 3 is spent."""
    mask = np.zeros(10, dtype=bool)
    mask[[4, 8]] = True
    order, batch = [4, 0, 1, 8, 2], [0, 0, 0, 1, 1]
    np.testing.assert_allclose(m.top_percent_curve(order, mask, batch), [0, 0, 0.5, 0.5, 1])
    assert m.any_alm(order, mask, batch) == 3


def test_simple_regret_is_measured_against_the_pool_s_best_not_the_run_s() -> None:
    pool = np.array([0.0, 2.0, 4.0, 8.0])
    np.testing.assert_allclose(m.simple_regret([0.0, 2.0, 4.0], pool, "maximize"), [8, 6, 4])  # 8 never measured
    np.testing.assert_allclose(m.simple_regret([4.0, 2.0], pool, "minimize"), [4, 2])
    np.testing.assert_allclose(m.simple_regret([9.0], pool, "window", (1.0, 3.0)), [6])


def test_af_interval_bounds_are_afs_of_actual_resamples() -> None:
    """Percentile bounds of the bootstrap AFs: each is t·N/n for a whole n, never a value between two resamples."""
    rng = np.random.default_rng(3)
    pool_size, n_top = 100, 4
    mask = np.zeros(pool_size, dtype=bool)
    mask[:n_top] = True
    curves = np.array([m.top_percent_curve(rng.permutation(pool_size)[:60], mask) for _ in range(6)])
    lo, hi = m.acceleration_factor_interval(curves, pool_size, n_top, 0.5, level=0.5, n_boot=10, seed=1)
    assert lo < hi
    for bound in (lo, hi):
        n = 0.5 * pool_size / bound
        assert n == pytest.approx(round(n), abs=1e-9), bound
