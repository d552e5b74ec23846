"""Uncertainty metrics on hand-checkable cases and on perfectly calibrated synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aloop.surrogates.metrics import calibration_curve, uncertainty_report


def test_hand_computed_values() -> None:
    r = uncertainty_report(y_true=[0.0, 2.0], mean=[1.0, 1.0], std=[1.0, 2.0])
    assert r["n"] == 2
    assert r["mae"] == pytest.approx(1.0)
    assert r["rmse"] == pytest.approx(1.0)
    # NLL per point: ½log 2π + log σ + ½ z²  with z = 1 and 0.5
    expected = np.mean([0.5 * math.log(2 * math.pi) + math.log(s) + 0.5 * z**2 for s, z in [(1, 1), (2, 0.5)]])
    assert r["nll"] == pytest.approx(expected)
    assert r["coverage_68"] == pytest.approx(0.5)  # |z| = 1 > 0.9945, |z| = 0.5 inside
    assert r["coverage_95"] == pytest.approx(1.0)
    assert r["sharpness"] == pytest.approx(math.sqrt(2.5))


def test_calibrated_gaussian_data_is_calibrated() -> None:
    rng = np.random.default_rng(0)
    mean = rng.normal(size=40_000)
    std = rng.uniform(0.2, 3.0, size=40_000)
    y = mean + std * rng.normal(size=40_000)
    r = uncertainty_report(y, mean, std)
    assert r["coverage_68"] == pytest.approx(0.68, abs=0.01)
    assert r["coverage_95"] == pytest.approx(0.95, abs=0.005)
    assert r["miscalibration_area"] < 0.01
    assert r["nll"] == pytest.approx(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5), abs=0.02)


def test_over_and_under_confidence_are_penalised() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    mean, std = np.zeros_like(y), np.ones_like(y)
    honest = uncertainty_report(y, mean, std)
    over = uncertainty_report(y, mean, std / 3)  # overconfident
    under = uncertainty_report(y, mean, std * 3)  # underconfident
    assert over["coverage_95"] < 0.5 and under["coverage_68"] > 0.95
    assert over["miscalibration_area"] > 0.2 and under["miscalibration_area"] > 0.2
    assert honest["nll"] < min(over["nll"], under["nll"])
    # The most overconfident model possible has area ≈ 0.5 (every interval misses).
    assert uncertainty_report(y + 100, mean, std)["miscalibration_area"] == pytest.approx(0.5, abs=0.01)


def test_calibration_curve_ends_and_shape() -> None:
    expected, observed = calibration_curve([0.0, 1.0, -1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], num_bins=11)
    assert expected.shape == observed.shape == (11,)
    assert observed[0] == pytest.approx(1 / 3)  # the exact hit lies inside the zero-width interval
    assert observed[-1] == 1.0
    assert np.all(np.diff(observed) >= 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0, 2.0], [1.0], [1.0]), "same shape"),
        (([1.0], [np.nan], [1.0]), "NaN/inf"),
        (([1.0], [1.0], [0.0]), "positive"),
        (([], [], []), "no points"),
    ],
)
def test_bad_inputs(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        uncertainty_report(*args)


def test_calibration_verdict_is_an_exact_test_at_68_and_95_percent() -> None:
    from scipy.stats import binom

    from aloop.surrogates.metrics import calibration_verdict

    rng = np.random.default_rng(0)
    y = rng.normal(size=20)
    # σ five times too wide: 95% coverage cannot show it in 20 values, 68% can (P(20 of 20) = 0.68²⁰ ≈ 4e-4).
    assert calibration_verdict(y, np.zeros(20), np.full(20, 5.0)).startswith("too wide (under-confident): of 20 values")
    assert calibration_verdict(y, np.zeros(20), np.full(20, 0.4)).startswith("too narrow (over-confident)")
    assert calibration_verdict(y, np.zeros(20), np.ones(20)).startswith("no sign of miscalibration that 20 values")
    # Heavy tails: too many points in the 68% interval and too many outside the 95% one.
    t = np.r_[np.zeros(150), np.full(30, 10.0)]
    assert calibration_verdict(t, np.zeros(180), np.ones(180)).startswith("misshapen (too narrow at 95%, too wide at 68%")
    # The printed range is the exact acceptance region: 9 of 20 at 68% is accepted (P(X ≤ 9) ≥ 1.25%), 8 is not.
    assert binom.cdf(9, 20, 0.68) >= 0.0125 > binom.cdf(8, 20, 0.68)
    assert "would hold 9–18 / 16–20" in calibration_verdict(y, np.zeros(20), np.ones(20))


def test_calibration_verdict_counts_compositions_not_replicates() -> None:
    from aloop.surrogates.metrics import calibration_verdict

    # Half of 20 compositions inside the 68% interval is within chance (9–18 of 20); the same half of 100
    # measurements would not be, but five replicates of one composition share one prediction: 20 pieces of evidence.
    y = np.repeat(np.r_[np.full(10, 0.5), np.full(9, 1.5), 2.5], 5)
    assert calibration_verdict(y, np.zeros(100), np.ones(100)).startswith("too narrow")
    verdict = calibration_verdict(y, np.zeros(100), np.ones(100), groups=np.repeat(np.arange(20), 5))
    assert "of 20 compositions" in verdict and verdict.startswith("no sign")
    with pytest.raises(ValueError, match="one label per value"):
        calibration_verdict(y, np.zeros(100), np.ones(100), groups=np.arange(20))

