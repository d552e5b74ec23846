"""Metrics for replayed sequential-learning campaigns: Top%, EF, AF, ALMs, best-so-far and regret.

Definitions follow Liang et al. 2021 (npj Comput. Mater. 7, 188, "Benchmarking the performance of
Bayesian optimization across multiple experimental materials science domains": Top%, EF, AF) and
Rohr et al. 2020 (Chem. Sci. 11, 2696, "Benchmarking the acceleration of materials discovery by
sequential learning": the "ALM" metrics, whose reference implementation is CAMD's
``camd/analysis.py::GenericATFAnalyzer``).

Conventions: ``N`` is the pool size, ``B`` the number of experiments of a run (its budget), an
``order`` lists pool row indices in measurement order, and ``n`` counts experiments from 1, the
initial design included.  Every score is a *goodness*: higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np

Direction = Literal["maximize", "minimize", "window"]
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize", "window")

# Slack for comparisons such as Top% >= t, where t·n_top is often meant as an integer.
_TOL = 1e-9


def _finite_1d(a: object, name: str) -> np.ndarray:
    """``a`` as a non-empty 1-D float array without NaN/inf, else a ValueError naming ``name``."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s), first at index {int(np.argmax(bad))}")
    return arr


def _window_bounds(direction: str, window: tuple[float, float] | None) -> tuple[float, float]:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    if direction != "window":
        if window is not None:
            raise ValueError(f"window={window!r} given with direction {direction!r}; use direction='window'")
        return math.nan, math.nan
    if window is None:
        raise ValueError("direction 'window' needs window=(lo, hi)")
    try:
        lo, hi = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be two numbers (lo, hi), got {window!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"window needs finite lo < hi, got ({lo}, {hi})")
    return lo, hi


def _pool_size(pool_size: int) -> int:
    if isinstance(pool_size, bool) or not isinstance(pool_size, (int, np.integer)) or pool_size < 1:
        raise ValueError(f"pool_size must be a positive integer, got {pool_size!r}")
    return int(pool_size)


def _fraction(value: float, name: str) -> float:
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


def _check_n_top(n_top: int, pool_size: int) -> None:
    if isinstance(n_top, bool) or not isinstance(n_top, (int, np.integer)) or not 1 <= n_top <= pool_size:
        raise ValueError(f"n_top must be an integer in [1, {pool_size}], got {n_top!r}")


def _curve(curve: object, pool_size: int | None = None) -> np.ndarray:
    arr = _finite_1d(curve, "curve")
    if arr.min() < 0.0 or arr.max() > 1.0 + _TOL:
        raise ValueError(f"curve values are fractions in [0, 1], got range [{arr.min()}, {arr.max()}]")
    if pool_size is not None and arr.size > pool_size:
        raise ValueError(f"curve has {arr.size} experiments but the pool has only {pool_size} rows")
    return arr


def check_order(order: object, pool_size: int) -> np.ndarray:
    """Validate a measurement order: (B,) distinct integer pool row indices in [0, pool_size)."""
    pool_size = _pool_size(pool_size)
    arr = np.asarray(order)
    if arr.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("order is empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"order must hold integer row indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= pool_size:
        raise ValueError(f"order has indices outside [0, {pool_size}): min {arr.min()}, max {arr.max()}")
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        raise ValueError(f"order has repeated indices, e.g. {uniq[counts > 1][:5].tolist()}")
    return arr


def _mask(mask: object) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 1 or arr.dtype != np.bool_:
        raise ValueError(f"mask must be a 1-D boolean array, got dtype {arr.dtype} shape {arr.shape}")
    if not arr.any():
        raise ValueError("mask selects no rows")
    return arr


def goodness(y: object, direction: Direction, window: tuple[float, float] | None = None) -> np.ndarray:
    """Score objective values so that higher is better; (N,) -> (N,) float, in the objective's units.

    ``maximize``: y; ``minimize``: -y; ``window``: minus the distance to ``[lo, hi]`` (0 inside),
    the same utility as :class:`aloop.acquisition.Window`.
    """
    lo, hi = _window_bounds(direction, window)
    arr = _finite_1d(y, "y")
    if direction == "maximize":
        return arr.copy()
    if direction == "minimize":
        return -arr
    return -(np.maximum(lo - arr, 0.0) + np.maximum(arr - hi, 0.0))


def top_mask(score: object, fraction: float) -> np.ndarray:
    """Mark the ceil(fraction·N) best rows by ``score`` (N,) -> (N,) bool; ties at the cut are all kept.

    Keeping ties means the mask can be larger than ceil(fraction·N): a window task whose in-window
    rows (all scored 0) outnumber the cut marks every in-window row.
    """
    arr = _finite_1d(score, "score")
    fraction = _fraction(fraction, "fraction")
    k = max(1, math.ceil(fraction * arr.size - _TOL))
    cut = np.partition(arr, arr.size - k)[arr.size - k]
    return arr >= cut


def batch_ends(batch: object, size: int) -> np.ndarray:
    """For each experiment, how many had been made once its batch was complete: (B,) batch labels -> (B,) counts.

    A batch's experiments are run together, so a find in the third place of a batch of 8 is known only
    when all 8 were spent. ``batch`` labels each experiment's batch (the initial design is one); a
    batch's experiments are consecutive.
    """
    labels = np.asarray(batch)
    if labels.ndim != 1 or labels.size != size:
        raise ValueError(f"batch must label each of the {size} experiments, got shape {labels.shape}")
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    if np.unique(labels[starts]).size != starts.size:
        raise ValueError("batch labels must be consecutive runs (a batch's experiments are made together)")
    ends = np.r_[starts[1:], size]
    return np.repeat(ends, np.diff(np.r_[starts, size]))


def top_percent_curve(order: object, mask: object, batch: object | None = None) -> np.ndarray:
    """Top%(n): the fraction of the ``mask`` rows found after each experiment n = 1..B; returns (B,).

    ``order`` (B,) are distinct pool row indices in measurement order, ``mask`` (N,) bool. With
    ``batch`` (B,) labels, a find counts from the end of its batch (:func:`batch_ends`): after n
    experiments only the batches completed by then are known.
    """
    mask = _mask(mask)
    order = check_order(order, mask.size)
    found = np.cumsum(mask[order]) / float(mask.sum())
    if batch is None:
        return found
    n = np.arange(1, order.size + 1)
    last_done = np.maximum.accumulate(np.where(batch_ends(batch, order.size) == n, n, 0))
    return np.where(last_done > 0, found[np.maximum(last_done, 1) - 1], 0.0)


def random_top_percent(n: int | np.ndarray, pool_size: int) -> float | np.ndarray:
    """Expected Top%(n) of uniform random sampling without replacement: exactly n / N.

    Exact for any mask size K: each pool row is among the first n draws of a uniformly random
    permutation with probability n/N, so by linearity the expected number of mask rows found is
    K·n/N and the expected found fraction is n/N.  ``n`` may be a scalar or an array of counts.
    """
    pool_size = _pool_size(pool_size)
    arr = np.asarray(n, dtype=np.float64)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > pool_size):
        raise ValueError(f"n must be experiment counts in [0, {pool_size}]")
    out = arr / pool_size
    return float(out) if out.ndim == 0 else out


def enhancement_factor(curve: object, pool_size: int) -> np.ndarray:
    """EF(n) = Top%_strategy(n) / Top%_random(n) = Top%(n)·N/n for n = 1..B; (B,) -> (B,)."""
    pool_size = _pool_size(pool_size)
    arr = _curve(curve, pool_size)
    n = np.arange(1, arr.size + 1, dtype=np.float64)
    return arr * pool_size / n


def experiments_to_reach(curve: object, t: float) -> int | None:
    """First n (1-based) with Top%(n) >= t for a (B,) curve, or None if the curve never gets there."""
    arr = _curve(curve)
    t = _fraction(t, "t")
    hits = np.flatnonzero(arr >= t - _TOL)
    return int(hits[0]) + 1 if hits.size else None


def acceleration_factor(
    curve: object, pool_size: int, n_top: int, t: float, *, baseline: Literal["curve", "draws", "median"] = "curve",
    averaged: bool = False,
) -> float | None:
    """AF(t) = n_random(t) / n_strategy(t) for a (B,) Top% curve; None if it never reaches t.

    One run's curve moves in steps of 1/n_top, so reaching Top% = t means finding
    k = ceil(t·n_top) of the n_top good rows, the level v = k/n_top.  A curve averaged over
    runs (``averaged=True``) takes any value, and reaching t means reaching v = t itself.
    ``baseline``:

    - ``"curve"`` (default, Liang et al.'s convention): n_random is where random's expected Top%
      curve n/N reaches v, i.e. v·N.  A curve equal to n/N then has AF ≈ 1 and a
      perfect oracle has AF = N/n_top.
    - ``"draws"``: n_random is the expected number of random draws until the v·n_top-th good row,
      v·n_top·(N+1)/(n_top+1) (negative hypergeometric), which is smaller than the inverted curve
      for small n_top (for n_top = 1 it is (N+1)/2, not N).
    - ``"median"``: n_random is random's median number of draws to that row, the like-for-like
      baseline for one run's curve (the median of per-run AFs then gives random about 1).
    """
    pool_size = _pool_size(pool_size)
    _check_n_top(n_top, pool_size)
    arr = _curve(curve, pool_size)
    t = _fraction(t, "t")
    if baseline not in ("curve", "draws", "median"):
        raise ValueError(f"unknown baseline {baseline!r}; expected 'curve', 'draws' or 'median'")
    n_strategy = experiments_to_reach(arr, t)
    if n_strategy is None:
        return None
    level = t if averaged else math.ceil(t * n_top - _TOL) / n_top
    if baseline == "curve":
        n_random = level * pool_size
    elif baseline == "draws":
        n_random = level * n_top * (pool_size + 1) / (n_top + 1)
    else:  # the median draw at which random finds its k-th top row (negative hypergeometric: misses before k hits)
        from scipy.stats import nhypergeom

        k = max(1, math.ceil(level * n_top - _TOL))
        n_random = float(nhypergeom(pool_size, pool_size - n_top, k).median()) + k
    return n_random / n_strategy


def acceleration_factor_interval(
    curves: object, pool_size: int, n_top: int, t: float, *, level: float = 0.9, n_boot: int = 1000, seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the seed-mean AF(t) over seeds (``curves``: ``S × B`` Top% curves).

    Resamples the ``S`` seeds with replacement ``n_boot`` times and takes the ``level`` central interval of the
    AF of each resample's mean curve (:func:`acceleration_factor` with ``averaged=True``). A resample whose mean
    never reaches ``t`` ranks below every AF; a bound set by such resamples is NaN (the AF may not exist).
    """
    pool_size = _pool_size(pool_size)
    arr = np.asarray(curves, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"curves must be a non-empty S × B array (one Top% curve per seed), got shape {arr.shape}")
    for row in arr:
        _curve(row, pool_size)
    _check_n_top(n_top, pool_size)
    t = _fraction(t, "t")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a whole number ≥ 1, got {n_boot!r}")
    picks = np.random.default_rng(seed).integers(0, arr.shape[0], size=(n_boot, arr.shape[0]))
    af = np.empty(n_boot)
    for a in range(0, n_boot, 256):  # chunks keep the resampled means at 256 × B
        reached = arr[picks[a : a + 256]].mean(axis=1) >= t - _TOL
        first = reached.argmax(axis=1) + 1.0
        af[a : a + 256] = np.where(reached.any(axis=1), t * pool_size / first, -1.0)  # −1: below every AF
    lo, hi = np.quantile(af, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], method="inverted_cdf")
    return (float(lo) if lo > 0 else math.nan, float(hi) if hi > 0 else math.nan)


def any_alm(order: object, mask: object, batch: object | None = None) -> int | None:
    """anyALM: experiments until the first ``mask`` row (an ALM, Rohr's top-1%) is measured, or None.

    Rohr et al. report anyALM as a per-iteration 0/1 indicator averaged over runs; its first 1 is
    this number.  The initial design counts: an ALM measured there gives a small anyALM.  With
    ``batch`` labels the count runs to the end of the ALM's batch.
    """
    curve = top_percent_curve(order, mask, batch)
    hits = np.flatnonzero(curve > 0)
    return int(hits[0]) + 1 if hits.size else None


def all_alm(order: object, mask: object, batch: object | None = None) -> int | None:
    """Experiments until every ``mask`` row has been measured (to the end of that batch), or None if not within the run."""
    curve = top_percent_curve(order, mask, batch)
    hits = np.flatnonzero(curve >= 1.0 - _TOL)
    return int(hits[0]) + 1 if hits.size else None


def alm_fraction(order: object, mask: object) -> np.ndarray:
    """allALM curve (Rohr et al.): fraction of the ALMs found after each experiment; (B,)."""
    return top_percent_curve(order, mask)


def de_alm(order: object, score: object, n_init: int = 0) -> np.ndarray:
    """deALM (Rohr et al. 2020): decision efficiency of each choice after the initial design; (B - n_init,).

    As in CAMD's ``GenericATFAnalyzer.gather_deALM``: the candidates still available at a decision
    are the pool minus everything measured before it (the initial design and earlier choices,
    including earlier members of the same batch); with M of them, r of which score worse than the
    chosen one, the decision scores 2·r/M - 1.  Picking the worst remaining candidate gives -1, the
    best 1 - 2/M; a uniformly random pick has expectation -1/M ≈ 0.  CAMD ranks ties by sort
    position; here tied candidates count half (mid-rank), which leaves tie-free pools unchanged and
    keeps random's expectation at -1/M.  With ties the ceiling is lower: a pick from T tied best
    candidates scores 1 - (T+1)/M (:func:`de_alm_ceiling`), about 0.93 on a window task where every
    in-window composition ties.  ``score`` (N,) is the goodness of every pool row.
    """
    out = []
    for chosen, remaining in _decisions(order, score, n_init):
        worse = np.count_nonzero(remaining < chosen)
        ties = np.count_nonzero(remaining == chosen) - 1
        out.append(2.0 * (worse + 0.5 * ties) / remaining.size - 1.0)
    return np.asarray(out, dtype=np.float64)


def de_alm_ceiling(order: object, score: object, n_init: int = 0) -> np.ndarray:
    """What :func:`de_alm` would give each decision had it picked from the best remaining candidates; (B - n_init,).

    1 - (T+1)/M with T of the M remaining candidates tied best: the scale a run's deALM is read against
    (about 1 without ties; lower where many candidates tie, as the in-window ones of a window task do).
    """
    return np.asarray([1.0 - (np.count_nonzero(remaining == remaining.max()) + 1) / remaining.size
                       for _, remaining in _decisions(order, score, n_init)], dtype=np.float64)


def _decisions(order: object, score: object, n_init: int) -> Iterator[tuple[float, np.ndarray]]:
    """Each decision after the initial design: the chosen row's score and the scores still available to it."""
    score = _finite_1d(score, "score")
    order = check_order(order, score.size)
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or not 0 <= n_init < order.size:
        raise ValueError(f"n_init must be an integer in [0, {order.size}), got {n_init!r}")
    available = np.ones(score.size, dtype=bool)
    available[order[:n_init]] = False
    for row in order[n_init:]:
        yield float(score[row]), score[available]
        available[row] = False


def best_so_far(values: object, direction: Direction, window: tuple[float, float] | None = None) -> np.ndarray:
    """The best measured value after each experiment, in the objective's units; (B,) -> (B,).

    Running max (maximize) or min (minimize).  For a window it is the measured value closest to
    the window so far (the earliest one among equally close values, so once a value inside the
    window is found it stays); its distance to the window is ``-goodness(best, "window", window)``.
    """
    arr = _finite_1d(values, "values")
    g = goodness(arr, direction, window)
    previous_best = np.concatenate(([-np.inf], np.maximum.accumulate(g)[:-1]))
    record_at = np.where(g > previous_best, np.arange(arr.size), 0)
    return arr[np.maximum.accumulate(record_at)]


def simple_regret(
    values: object, y: object, direction: Direction, window: tuple[float, float] | None = None
) -> np.ndarray:
    """|best goodness in the pool y (N,) - best goodness measured so far| after each of values (B,); (B,).

    In the objective's units; 0 once the pool's optimum (any in-window value for a window) is found.
    """
    best_pool = goodness(y, direction, window).max()
    return np.abs(best_pool - np.maximum.accumulate(goodness(values, direction, window)))


def random_expected_best(score: object, budget: int) -> np.ndarray:
    """Exact expected best goodness after n = 1..budget uniform random draws without replacement; (budget,).

    With the pool's goodness sorted ascending as s_1..s_N, the best of n draws is s_j with
    probability C(j-1, n-1)/C(N, n).
    """
    s = np.sort(_finite_1d(score, "score"))
    pool_size = s.size
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= pool_size:
        raise ValueError(f"budget must be an integer in [1, {pool_size}], got {budget!r}")
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, pool_size + 1)))))

    def log_comb(a: np.ndarray | int, b: int) -> np.ndarray:
        return log_fact[a] - log_fact[b] - log_fact[np.asarray(a) - b]

    j = np.arange(1, pool_size + 1)
    out = np.empty(budget)
    for n in range(1, budget + 1):
        weights = np.exp(log_comb(j[n - 1 :] - 1, n - 1) - log_comb(pool_size, n))
        out[n - 1] = weights @ s[n - 1 :]
    return out


def band(curves: object, low: float = 10.0, high: float = 90.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the low/high percentiles across seeds of (S, B) curves; returns three (B,) arrays."""
    arr = np.asarray(curves, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"curves must be a non-empty (seeds, experiments) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("curves contain NaN/inf values")
    if not 0.0 <= low <= high <= 100.0:
        raise ValueError(f"need 0 <= low <= high <= 100, got low={low}, high={high}")
    return arr.mean(axis=0), np.percentile(arr, low, axis=0), np.percentile(arr, high, axis=0)
