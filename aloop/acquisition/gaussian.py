"""Numerically stable log-scores of a Gaussian posterior: log-EI, log-PI, window probabilities and their bounds.

Every function takes float64 numpy arrays of equal length ``N`` (posterior means and
standard deviations of one scalar quantity) and returns an ``N`` array. The heavy lifting
is BoTorch's (``_log_ei_helper``, ``log_ndtr``, ``log_prob_normal_in``), so the values agree
with ``botorch.acquisition.analytic.LogExpectedImprovement`` to machine precision; numpy
arrays are shared with torch without copies.

The ``*_bound`` functions give the supremum of a score over every smaller standard
deviation ``0 ≤ σ' ≤ σ``: conditioning a Gaussian posterior on more data can only shrink
``σ``, so these bounds let batch selection certify that a shortlist is exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from botorch.acquisition.analytic import _log_ei_helper
from botorch.utils.probability.utils import log_ndtr, log_phi, log_prob_normal_in

#: Standard deviations are clamped here, as BoTorch's analytic acquisition functions do (1e-12 variance on
#: standardised outputs); callers pass ``min_std = MIN_STD × the output's scale`` for raw units.
MIN_STD = 1e-6


def _t(a: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def _n(t: torch.Tensor) -> np.ndarray:
    return t.numpy()


def log_ei(mean: np.ndarray, std: np.ndarray, best: float, min_std: float = MIN_STD) -> np.ndarray:
    """``log E[max(f - best, 0)]`` for ``f ~ N(mean, std²)`` (maximisation)."""
    s = _t(std).clamp_min(min_std)
    u = (_t(mean) - best) / s
    return _n(_log_ei_helper(u) + s.log())


def log_pi(mean: np.ndarray, std: np.ndarray, best: float, min_std: float = MIN_STD) -> np.ndarray:
    """``log P(f > best)`` for ``f ~ N(mean, std²)``."""
    s = _t(std).clamp_min(min_std)
    return _n(log_ndtr((_t(mean) - best) / s))


def log_pi_bound(mean: np.ndarray, std: np.ndarray, best: float, min_std: float = MIN_STD) -> np.ndarray:
    """Supremum of :func:`log_pi` over ``σ' ≤ σ``: 0 where ``mean > best`` (σ' → 0), else the value at σ."""
    out = log_pi(mean, std, best, min_std)
    out[np.asarray(mean) > best] = 0.0
    return out


def log_window_prob(mean: np.ndarray, std: np.ndarray, lo: float, hi: float, min_std: float = MIN_STD) -> np.ndarray:
    """``log P(lo ≤ f ≤ hi)`` for ``f ~ N(mean, std²)``; needs ``lo < hi``."""
    m, s = _t(mean), _t(std).clamp_min(min_std)
    a, b = (lo - m) / s, (hi - m) / s
    # a == b can only happen through rounding when std is huge relative to hi - lo.
    b = torch.maximum(b, torch.nextafter(a, torch.full_like(a, math.inf)))
    return _n(log_prob_normal_in(a, b))


def log_window_prob_bound(
    mean: np.ndarray, std: np.ndarray, lo: float, hi: float, min_std: float = MIN_STD
) -> np.ndarray:
    """Supremum of :func:`log_window_prob` over ``σ' ≤ σ``.

    Inside the window the supremum is 1 (σ' → 0). Outside, with ``a``/``c`` the distances to
    the near/far edge, ``P(σ') = Φ(c/σ') − Φ(a/σ')`` is unimodal with its maximum at
    ``σ* = sqrt((c² − a²) / (2 ln(c/a)))``, so the supremum is ``P(min(σ, σ*))``.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.maximum(np.asarray(std, dtype=np.float64), min_std)
    inside = (mean >= lo) & (mean <= hi)
    a = np.where(mean < lo, lo - mean, mean - hi)
    c = np.where(mean < lo, hi - mean, mean - lo)
    a_safe = np.where(inside, 1.0, a)
    c_safe = np.where(inside, 2.0, c)
    s_star = np.sqrt((c_safe**2 - a_safe**2) / (2.0 * np.log(c_safe / a_safe)))
    out = log_window_prob(mean, np.minimum(std, s_star), lo, hi, min_std)
    out[inside] = 0.0
    return out


def log_target_ei(
    mean: np.ndarray, std: np.ndarray, target: float, dist: float, min_std: float = MIN_STD
) -> np.ndarray:
    """``log E[max(dist − |f − target|, 0)]``: expected improvement of the closeness to a target value.

    ``dist > 0`` is the best distance to the target observed so far. The hat function is a
    second difference of ramps, ``(d−|f−t|)⁺ = (f−t+d)⁺ − 2(f−t)⁺ + (f−t−d)⁺``, and each ramp's
    expectation is ``σ·exp(log_ei_helper)``. Reflecting the mean to the left of the target
    (the hat is symmetric) makes the first ramp dominant, so the difference is evaluated as
    ``log ψ₁ + log1p(−2ψ₂/ψ₁ + ψ₃/ψ₁)`` without overflow. When ``d ≪ σ`` that difference
    cancels; there the value is ``d²·p(target)`` to relative accuracy ``O(d²/σ²)``.
    """
    s = _t(std).clamp_min(min_std)
    m = target - (_t(mean) - target).abs()
    l1 = _log_ei_helper((m - (target - dist)) / s)
    l2 = _log_ei_helper((m - target) / s)
    l3 = _log_ei_helper((m - (target + dist)) / s)
    x = -2.0 * torch.exp(l2 - l1) + torch.exp(l3 - l1)
    exact = s.log() + l1 + torch.log1p(x.clamp_min(-1.0 + 1e-300))
    small = 2.0 * math.log(dist) - s.log() + log_phi((m - target) / s)
    return _n(torch.where(x > -1.0 + 1e-6, exact, small))


def log_target_ei_bound(
    mean: np.ndarray, std: np.ndarray, target: float, dist: float, min_std: float = MIN_STD
) -> np.ndarray:
    """An upper bound of :func:`log_target_ei` over ``σ' ≤ σ``: the hat is at most ``dist`` on ``|f−t| < dist``."""
    return math.log(dist) + log_window_prob_bound(mean, std, target - dist, target + dist, min_std)
