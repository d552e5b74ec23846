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


def test_coverage_verdict_says_calibrated_only_within_what_n_values_resolve() -> None:
    from aloop.surrogates.metrics import coverage_verdict

    assert coverage_verdict(0.80, 100).startswith("too narrow (over-confident)")
    assert coverage_verdict(0.995, 2000).startswith("too wide (under-confident)")
    assert coverage_verdict(0.90, 30).startswith("calibrated as far as 30 values tell")  # 3 misses of 30: noise
    assert coverage_verdict(0.90, 1000).startswith("too narrow")  # the same share of 1,000 is not
