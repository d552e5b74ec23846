"""Accuracy and uncertainty-quality metrics of Gaussian predictions (error, NLL, coverage, calibration, sharpness)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom, norm


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


#: Central-interval levels the verdict tests; each is tested two-sided, Bonferroni-corrected to 5% overall.
VERDICT_LEVELS = (0.68, 0.95)
VERDICT_ALPHA = 0.05


def calibration_verdict(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray,
                        groups: np.ndarray | None = None) -> str:
    """Whether held-out Gaussian predictions have calibrated uncertainty, as far as the data can tell.

    The central 68% and 95% intervals are each tested against their nominal share with an exact
    binomial test (two-sided, Bonferroni over both levels and tails, 5% overall), so over-wide
    intervals are caught by the 68% level where 95% cannot tell. Replicates of one composition
    (``groups``: ``n`` labels) share one prediction, so the test counts compositions: each contributes
    the share of its replicates inside the interval.

    Example:
        >>> rng = np.random.default_rng(0); y = rng.normal(size=30)
        >>> calibration_verdict(y, np.zeros(30), np.full(30, 5.0))
        'too wide (under-confident): of 30 values the central 68% / 95% intervals held 30 / 30; calibrated ones would hold 15–26 / 25–30'
    """
    y, mu, sd = _validate(y_true, mean, std)
    z = np.abs(y - mu) / sd
    codes = np.unique(np.arange(y.size) if groups is None else np.asarray(groups).ravel(), return_inverse=True)[1]
    if codes.size != y.size:
        raise ValueError(f"groups must give one label per value ({y.size}), got {codes.size}")
    n, unit = int(codes.max()) + 1, "values" if groups is None else "compositions"
    a = VERDICT_ALPHA / (2 * len(VERDICT_LEVELS))
    held, narrow, wide, spans = [], [], [], []
    for level in VERDICT_LEVELS:
        inside = (z <= norm.ppf(0.5 + level / 2)).astype(float)
        k = int(round(float((np.bincount(codes, inside) / np.bincount(codes)).sum())))
        lo, hi = int(binom.ppf(a, n, level)), int(binom.isf(a, n, level))
        # ppf/isf give the quantiles; the acceptance region is the counts whose tail probability is ≥ a.
        lo = lo if binom.cdf(lo, n, level) >= a else lo + 1
        hi = hi if binom.sf(hi - 1, n, level) >= a else hi - 1
        held.append(f"{k}")
        spans.append(f"{lo}–{hi}")
        (narrow if k < lo else wide if k > hi else []).append(f"{level:.0%}")
    counts = (f"of {n} {unit} the central {' / '.join(f'{v:.0%}' for v in VERDICT_LEVELS)} intervals held "
              f"{' / '.join(held)}; calibrated ones would hold {' / '.join(spans)}")
    if narrow and wide:
        return (f"misshapen (too narrow at {', '.join(narrow)}, too wide at {', '.join(wide)}: the errors are not "
                f"Gaussian): {counts}")
    if narrow:
        return f"too narrow (over-confident): {counts}"
    if wide:
        return f"too wide (under-confident): {counts}"
    return f"no sign of miscalibration that {n} {unit} can show: {counts}"
