"""Accuracy and uncertainty-quality metrics of Gaussian predictions (error, NLL, coverage, calibration, sharpness)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm


def _validate(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(a, dtype=np.float64) for a in (y_true, mean, std)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"y_true, mean and std must have the same shape, got {[a.shape for a in arrays]}")
    y, mu, sd = (a.reshape(-1) for a in arrays)
    if y.size == 0:
        raise ValueError("no points to score")
    for name, a in (("y_true", y), ("mean", mu), ("std", sd)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/inf values")
    if (sd <= 0).any():
        raise ValueError(f"std must be positive; {int((sd <= 0).sum())} values are ≤ 0")
    return y, mu, sd


def calibration_curve(
    y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, num_bins: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Expected vs observed proportions of points inside central intervals.

    For each expected proportion ``p`` on ``linspace(0, 1, num_bins)`` the observed
    proportion is the fraction of points with ``|y − μ| ≤ σ·Φ⁻¹((1 + p)/2)`` (the
    Uncertainty Toolbox's ``prop_type="interval"``). A calibrated model lies on the diagonal.

    Returns:
        ``(expected, observed)``, each of length ``num_bins``.
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int | np.integer) or num_bins < 2:
        raise ValueError(f"num_bins must be a whole number >= 2, got {num_bins!r}")
    y, mu, sd = _validate(y_true, mean, std)
    expected = np.linspace(0.0, 1.0, num_bins)
    z = np.sort(np.abs(y - mu) / sd)
    with np.errstate(divide="ignore"):
        bounds = norm.ppf(0.5 + expected / 2.0)  # inf at p = 1
    observed = np.searchsorted(z, bounds, side="right") / z.size
    return expected, observed


def uncertainty_report(
    y_true: np.ndarray, mean: np.ndarray, std: np.ndarray, num_bins: int = 100
) -> dict[str, float]:
    """Score Gaussian predictions ``N(mean, std²)`` of ``y_true`` (any shape, flattened).

    Keys:
        ``n``; ``mae``; ``rmse``; ``nll``: mean Gaussian negative log-likelihood per point
        (nats); ``coverage_68`` / ``coverage_95``: fraction of points inside the central
        68% / 95% intervals (ideal 0.68 / 0.95); ``miscalibration_area``: area between the
        observed and expected proportion curves of ``calibration_curve`` (Uncertainty
        Toolbox definition; 0 is perfect, 0.5 the worst); ``sharpness``: root mean
        predicted variance ``√mean(σ²)`` (smaller is sharper, meaningful only when calibrated).

    Example:
        >>> r = uncertainty_report([0.0, 1.0], [0.0, 0.0], [1.0, 1.0])
        >>> r["mae"], r["coverage_95"]
        (0.5, 1.0)
    """
    y, mu, sd = _validate(y_true, mean, std)
    err = y - mu
    z = np.abs(err) / sd
    expected, observed = calibration_curve(y, mu, sd, num_bins)
    return {
        "n": int(y.size),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "nll": float(np.mean(0.5 * math.log(2 * math.pi) + np.log(sd) + 0.5 * z**2)),
        "coverage_68": float(np.mean(z <= norm.ppf(0.84))),
        "coverage_95": float(np.mean(z <= norm.ppf(0.975))),
        "miscalibration_area": float(np.trapezoid(np.abs(observed - expected), expected)),
        "sharpness": float(np.sqrt(np.mean(sd**2))),
    }


def coverage_verdict(coverage: float, n: int, level: float = 0.95) -> str:
    """Whether central-``level`` intervals that held ``coverage`` of ``n`` held-out values are calibrated, as far
    as ``n`` values can tell (two binomial standard errors around ``level``).

    Example:
        >>> coverage_verdict(0.80, 100)
        'too narrow (over-confident): calibrated 95% intervals would hold 91%–99% of 100 values'
    """
    se = math.sqrt(level * (1 - level) / n)
    lo, hi = level - 2 * se, min(level + 2 * se, 1.0)
    span = f"calibrated {level:.0%} intervals would hold {lo:.0%}–{hi:.0%} of {n} values"
    if coverage < lo:
        return f"too narrow (over-confident): {span}"
    if coverage > hi:
        return f"too wide (under-confident): {span}"
    return f"calibrated as far as {n} values tell ({span.removeprefix('calibrated ')})"
