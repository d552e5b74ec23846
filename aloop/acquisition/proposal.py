"""The front door of acquisition: ``propose`` a batch of pool candidates, each with its reason.

One ``predict`` over the pool (chunked by the surrogate), vectorised scores, then batch
selection (:mod:`aloop.acquisition.batch`, :mod:`aloop.acquisition.multi`). The campaign
hands in arrays only: features of the pool, what is pending, what to exclude.

>>> # proposals = propose(gp, X_pool, Maximize(name="zT"), "log_ei", q=8,
>>> #                     y_observed=y, pending=pending_rows, exclude=measured_rows)
>>> # proposals[0].reason  →  'high EI: mean 0.41 ± 0.08, 12% above best 0.37'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np

from aloop.acquisition.batch import BatchResult, Exclusions, greedy_batch, random_batch, thompson_batch
from aloop.acquisition.covariance import covariance_fn, noise_variance
from aloop.acquisition.feasibility import MIN_SUCCESS, FeasibilityModel
from aloop.acquisition.multi import SCALARIZED, LogNEHVI, ScalarizedLogEI, nehvi_batch
from aloop.acquisition.objectives import MultiObjective, Objective
from aloop.acquisition.policies import Policy, Random, Thompson, get_policy


@dataclass(frozen=True)
class Proposal:
    """One proposed experiment.

    ``mean``/``std`` are the posterior of the objective's output before any batch
    conditioning: a tuple per objective with ``log_nehvi``, and one number, that of the
    weighted sum of the objectives, with ``scalarized_log_ei``; ``score`` is the acquisition value
    when it was picked (after conditioning on pending and earlier picks; log scale for
    ``log_*`` policies, including ``+ log p_feasible``).
    """

    index: int
    mean: float | tuple[float, ...]
    std: float | tuple[float, ...]
    score: float
    policy: str
    reason: str
    p_feasible: float | None = None


def _mask(arg: np.ndarray | Sequence[int] | None, n: int, what: str) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if arg is None:
        return mask
    arr = np.asarray(arg)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"{what} mask must have one entry per pool row ({n}), got shape {arr.shape}")
        return arr.copy()
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise ValueError(f"{what} must be a boolean mask or whole-number row indices, got {arr.dtype} values "
                             f"such as {arr.ravel()[:3].tolist()}")
    if n > 2 and arr.shape == (n,) and np.isin(arr, (0, 1)).all():
        raise ValueError(f"{what} looks like a 0/1 mask (one entry per pool row) but is not boolean, so it would be "
                         f"read as row indices 0 and 1: pass it as a boolean array (.astype(bool)) or as row indices")
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{what} indices must lie in [0, {n}), got range [{arr.min()}, {arr.max()}]")
    mask[arr] = True
    return mask


def _check_finite(name: str, a: np.ndarray) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))[:10].tolist()
        raise ValueError(f"{name} has {int(bad.sum())} NaN/inf values (rows {rows}…)")


def _predict(surrogate: object, X: np.ndarray, chunk_size: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    mean, var = surrogate.predict(X, batch_size=chunk_size)  # type: ignore[attr-defined]
    mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if mean.ndim == 1:
        mean, var = mean[:, None], var[:, None]
    _check_finite(f"surrogate mean on the {what}", mean)
    _check_finite(f"surrogate variance on the {what}", var)
    return mean, var


def _rows(X_pool: np.ndarray, X_ext: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    n = X_pool.shape[0]

    def rows(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        in_pool = ids < n
        if in_pool.all():
            return np.asarray(X_pool[ids])
        out = np.empty((ids.size, X_pool.shape[1]))
        out[in_pool] = X_pool[ids[in_pool]]
        out[~in_pool] = X_ext[ids[~in_pool] - n]
        return out

    return rows


def _rows_equal_to(X_pool: np.ndarray, X_other: np.ndarray, chunk_size: int) -> np.ndarray:
    """``N`` mask of the pool rows equal to some row of ``X_other`` (``P × d``), by a random-projection hash
    checked exactly, so a million-row pool costs one matrix-vector product per chunk."""
    out = np.zeros(X_pool.shape[0], dtype=bool)
    if X_other.shape[0] == 0:
        return out
    r = np.random.default_rng(0).normal(size=X_pool.shape[1])
    targets = X_other @ r
    for a in range(0, X_pool.shape[0], chunk_size):
        block = np.asarray(X_pool[a : a + chunk_size], dtype=np.float64)
        for i in np.flatnonzero(np.isin(block @ r, targets)):
            out[a + i] = bool((X_other == block[i]).all(axis=1).any())
    return out


def propose(
    surrogate: object,
    X_pool: np.ndarray,
    objective: Objective | MultiObjective,
    policy: str | Policy = "log_ei",
    q: int = 8,
    *,
    y_observed: np.ndarray | None = None,
    best_f: float | None = None,
    X_observed: np.ndarray | None = None,
    pending: np.ndarray | Sequence[int] | None = None,
    X_pending: np.ndarray | None = None,
    exclude: np.ndarray | Sequence[int] | None = None,
    pool_keys: Sequence[str] | np.ndarray | None = None,
    exclude_keys: Sequence[str] | None = None,
    feasibility: FeasibilityModel | np.ndarray | None = None,
    min_success: float = MIN_SUCCESS,
    min_distance: float | None = None,
    shortlist: int = 2048,
    chunk_size: int = 65536,
    seed: int | None = None,
) -> list[Proposal]:
    """Propose ``q`` distinct pool candidates to make next.

    Args:
        surrogate: a fitted aloop surrogate (``predict``, ``covariance``, ``noise_variance()``;
            ensembles may offer ``member_predictions`` instead of ``covariance``).
        X_pool: ``N × d`` candidate features (precomputed; may be a memory map).
        objective: one :class:`Objective` or a :class:`MultiObjective`.
        policy: a name (see :func:`aloop.acquisition.known_policies`) or a policy instance.
        y_observed: ``n × m`` (or ``n``) measured outputs; gives the incumbent and, for
            several objectives, the reference point.
        best_f: the best measured value of the objective's output (raw units), instead of ``y_observed``.
        X_observed: ``n × d`` measured features (``log_nehvi`` only).
        pending: pool rows proposed but not yet measured: never proposed again, conditioned on first.
        X_pending: ``P × d`` features of pending experiments outside the pool (conditioned on).
        exclude: pool rows never to propose (measured, vetoed), as a mask or indices.
        pool_keys, exclude_keys: composition keys per pool row, and keys never to propose;
            with ``pool_keys`` a batch also never holds two rows of one composition.
        feasibility: a fitted :class:`FeasibilityModel` or ``N`` success probabilities.
        min_success: candidates less likely than this to be made (by ``feasibility``) are not proposed
            while ``q`` others are left; weighting by P(success) alone lets an exploring policy return to a
            failing region, where failures teach the surrogate nothing and its uncertainty stays high.
        min_distance: smallest feature-space (Euclidean) distance between two batch members.
        shortlist: starting shortlist size of the certified greedy (grown when needed).
        chunk_size: rows per ``predict`` chunk.
        seed: seed for the stochastic policies.
    """
    pol = get_policy(policy)
    multi = isinstance(objective, MultiObjective)
    if not isinstance(objective, Objective | MultiObjective):
        raise TypeError(f"objective must be an Objective or MultiObjective, got {type(objective).__name__}")
    if pol.multi_objective != multi:
        raise ValueError(
            f"policy {pol.name!r} is for {'several objectives' if pol.multi_objective else 'one objective'}, "
            f"got {type(objective).__name__}"
        )
    if isinstance(q, bool) or not isinstance(q, int | np.integer) or q < 1:
        raise ValueError(f"q must be a positive integer, got {q!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(X_pool, np.ndarray):  # a DataFrame or tensor (a memory map is an ndarray and stays one)
        X_pool = np.asarray(X_pool, dtype=np.float64)
    if X_pool.ndim != 2:
        raise ValueError(f"X_pool must be an N × d array, got shape {X_pool.shape}")
    n = X_pool.shape[0]
    if n == 0:
        raise ValueError("the candidate pool is empty")
    for a in range(0, n, chunk_size):
        bad = ~np.isfinite(np.asarray(X_pool[a : a + chunk_size]))
        if bad.any():
            rows = (a + np.flatnonzero(bad.any(axis=1)))[:10].tolist()
            raise ValueError(f"X_pool has NaN/inf features (rows {rows}…)")
    width = getattr(surrogate, "n_features", None)
    if width is not None and X_pool.shape[1] != width:
        raise ValueError(f"X_pool has {X_pool.shape[1]} features but the surrogate was fitted on {width}")

    pend = _mask(pending, n, "pending")
    blocked = _mask(exclude, n, "exclude") | pend
    key_codes = None
    if pool_keys is not None:
        keys = np.asarray(pool_keys)
        if keys.shape != (n,):
            raise ValueError(f"pool_keys must hold one key per pool row ({n}), got shape {keys.shape}")
        uniq, key_codes = np.unique(keys, return_inverse=True)
        if exclude_keys is not None and len(exclude_keys):
            # As str of their own width: cast to the pool keys' dtype, a longer key would be cut to a pool key.
            blocked |= np.isin(keys.astype(str), np.asarray([str(k) for k in exclude_keys]))
        blocked |= np.isin(key_codes, key_codes[blocked])
    elif exclude_keys is not None:
        raise ValueError("exclude_keys needs pool_keys (one composition key per pool row)")
    eligible = ~blocked
    n_elig = int(eligible.sum())
    if q > n_elig:
        raise ValueError(
            f"asked for q={q} proposals but only {n_elig} of {n} pool candidates are available "
            f"({int(pend.sum())} pending, {int(blocked.sum() - pend.sum())} excluded)"
        )

    mean, var = _predict(surrogate, X_pool, chunk_size, "pool")
    m = mean.shape[1]
    outputs = objective.outputs if multi else (objective.output,)
    if max(outputs) >= m:
        raise ValueError(f"objective reads output {max(outputs)} but the surrogate has {m} outputs")
    X_ext = np.zeros((0, X_pool.shape[1]))
    if X_pending is not None:
        if np.size(X_pending) and (np.ndim(X_pending) != 2 or np.shape(X_pending)[1] != X_pool.shape[1]):
            raise ValueError(f"X_pending must be P × {X_pool.shape[1]} (the pool's width), got shape {np.shape(X_pending)}")
        X_ext = np.asarray(X_pending, dtype=np.float64).reshape(-1, X_pool.shape[1]) if np.size(X_pending) else X_ext
        _check_finite("X_pending", X_ext)
        # Pool rows with a pending row's very features are that pending experiment: never proposed again.
        same = _rows_equal_to(X_pool, X_ext, chunk_size)
        if same.any():
            blocked, eligible = blocked | same, eligible & ~same
            if q > (n_elig := int(eligible.sum())):
                raise ValueError(f"asked for q={q} proposals but only {n_elig} of {n} pool candidates are available "
                                 f"once the pool rows equal to X_pending rows are left out")
    mean_ext, var_ext = _predict(surrogate, X_ext, chunk_size, "pending points") if X_ext.shape[0] else (
        np.zeros((0, m)), np.zeros((0, m)))
    y_obs = None
    if y_observed is not None:
        y_obs = np.asarray(y_observed, dtype=np.float64)
        y_obs = y_obs[:, None] if y_obs.ndim == 1 else y_obs
        if y_obs.ndim != 2 or y_obs.shape[1] != m:
            raise ValueError(f"y_observed must be n × {m} (one column per surrogate output), got shape {y_obs.shape}")
        _check_finite("y_observed", y_obs)

    log_feas = p_feas = None
    if feasibility is not None:
        if isinstance(feasibility, FeasibilityModel):
            p_feas = feasibility.prob(X_pool, chunk_size)
        else:
            p_feas = np.asarray(feasibility, dtype=np.float64)
            if p_feas.shape != (n,) or not np.isfinite(p_feas).all() or (p_feas < 0).any() or (p_feas > 1).any():
                raise ValueError(f"feasibility probabilities must be {n} numbers in [0, 1]")
        log_feas = np.log(np.maximum(p_feas, 1e-300))
    check_batch_options(min_success=min_success, min_distance=min_distance, shortlist=shortlist)
    if p_feas is not None and min_success > 0:  # the probabilities as given: exp(log p) can land just below p
        eligible = likely_enough(eligible, p_feas, min_success, q)
    rng = np.random.default_rng(seed)
    exclusions = Exclusions(X_pool if min_distance else None, min_distance, key_codes)
    pend_ids = np.concatenate([np.flatnonzero(pend), n + np.arange(X_ext.shape[0])])
    rows = _rows(X_pool, X_ext)

    if isinstance(pol, LogNEHVI):
        if X_observed is None or y_obs is None:
            raise ValueError("log_nehvi needs X_observed and y_observed (the baseline of the hypervolume)")
        if np.shape(X_observed) != (len(y_obs), X_pool.shape[1]):
            raise ValueError(f"X_observed must be n × d with a row per y_observed row and the pool's width: "
                             f"{len(y_obs)} × {X_pool.shape[1]}, got shape {np.shape(X_observed)}")
        X_pend_all = rows(pend_ids) if pend_ids.size else None
        res = nehvi_batch(pol, surrogate, objective, X_pool, mean, var, q, eligible,  # type: ignore[arg-type]
                          np.asarray(X_observed, dtype=np.float64), y_obs, X_pend_all, log_feas, exclusions,
                          seed=0 if seed is None else seed)
        return _proposals(res, pol, objective, mean, var, log_feas, None)

    coef = np.zeros(m)
    if isinstance(pol, ScalarizedLogEI):
        coef = pol.coefficients(objective, m, y_obs)  # type: ignore[arg-type]
        single: Objective = SCALARIZED
    else:
        single = objective  # type: ignore[assignment]
        coef[single.output] = 1.0
    mean_e = np.concatenate([mean, mean_ext]) @ coef
    var_e = np.concatenate([var, var_ext]) @ coef**2
    scalarized = np.count_nonzero(coef) > 1 and hasattr(surrogate, "scalarized_predict")
    if scalarized and pol.uses_variance:  # correlated outputs: the variance of the sum is not the sum of variances
        var_e = np.concatenate([_scalarized(surrogate, Z, coef, chunk_size) for Z in (X_pool, X_ext)])
    noise_e = float(noise_variance(surrogate, m) @ coef**2) if pol.uses_variance else 0.0

    best = 0.0
    if pol.needs_best(single):
        if isinstance(pol, ScalarizedLogEI):
            if y_obs is None:
                raise ValueError("scalarized_log_ei needs y_observed")
            best = float((y_obs @ coef).max())
        elif best_f is not None:
            if not math.isfinite(float(best_f)):
                raise ValueError(f"best_f must be finite, got {best_f}")
            best = float(single.utility(np.array(best_f)))
        elif y_obs is not None:
            best = single.best_utility(y_obs[:, single.output])
        else:
            raise ValueError(f"policy {pol.name!r} needs the incumbent: pass y_observed or best_f")

    cov = covariance_fn(surrogate, pol, rows, coef, X_pool, X_ext, scalarized)
    if pol.needs_members:
        mean_e, var_e = cov.mean, cov.var  # type: ignore[attr-defined]
    y_e = None if y_obs is None or not y_obs.shape[0] else y_obs @ coef
    single = replace(single, scale=_spread(y_e, var_e))
    # A failed synthesis is worth the worst measured value (signed policies weighted by P(success)).
    floor = None if y_e is None else float(single.exploit(y_e).min())
    if isinstance(pol, Random):
        res = random_batch(pol, q, eligible, rng, log_feas, exclusions)
    elif isinstance(pol, Thompson):
        res = thompson_batch(pol, single, mean_e, var_e, q, eligible, cov, noise_e, rng, pend_ids, log_feas, exclusions,
                             floor=floor)
    else:
        res = greedy_batch(pol, single, mean_e, var_e, best, q, eligible, cov, noise_e, pend_ids, log_feas,
                           exclusions, shortlist, floor=floor)
    return _proposals(res, pol, single, mean_e[:, None], var_e[:, None], log_feas, best if pol.needs_best(single) else None)


def check_batch_options(min_success: float = MIN_SUCCESS, min_distance: float | None = None,
                        shortlist: int = 2048) -> None:
    """Refuse a bad value of :func:`propose`'s batch options with a ``ValueError`` that starts with the option's name."""
    if isinstance(min_success, bool) or not (isinstance(min_success, Real) and 0.0 <= min_success < 1.0):
        raise ValueError(f"min_success must be a probability in [0, 1), got {min_success!r}")
    if min_distance is not None and (isinstance(min_distance, bool) or not isinstance(min_distance, Real)
                                     or not math.isfinite(min_distance) or min_distance < 0):
        raise ValueError(f"min_distance must be a feature-space distance ≥ 0 (or none), got {min_distance!r}")
    if isinstance(shortlist, bool) or not isinstance(shortlist, Integral) or shortlist < 1:
        raise ValueError(f"shortlist must be a whole number ≥ 1, got {shortlist!r}")


def likely_enough(eligible: np.ndarray, p: np.ndarray, min_success: float, q: int) -> np.ndarray:
    """The eligible candidates with P(success) ≥ ``min_success``, or the ``q`` most likely if fewer (with a warning)."""
    likely = eligible & (p >= min_success)
    if int(likely.sum()) >= q:
        return likely
    cut = float(np.sort(p[eligible])[-q])
    warnings.warn(f"only {int(likely.sum())} candidates are at least {min_success:.0%} likely to be made (by the "
                  f"feasibility model of the failures so far); the batch also takes less likely ones, down to "
                  f"P(success) {cut:.0%}", stacklevel=3)
    return eligible & (p >= cut)


def _spread(y: np.ndarray | None, var: np.ndarray) -> float:
    """The objective's typical spread in raw units: of the measured values, else of the posterior, else 1."""
    spreads = (float(np.std(y)) if y is not None and y.size > 1 else 0.0,
               math.sqrt(max(float(np.median(var)), 0.0)) if var.size else 0.0)
    return next((v for v in spreads if v > 0 and math.isfinite(v)), 1.0)


def _scalarized(surrogate: object, X: np.ndarray, coef: np.ndarray, chunk_size: int) -> np.ndarray:
    """``N`` latent variances of ``coefᵀf`` (the surrogate's own, counting correlated outputs)."""
    if not X.shape[0]:
        return np.zeros(0)
    var = np.asarray(surrogate.scalarized_predict(X, coef, chunk_size)[1], dtype=np.float64)  # type: ignore[attr-defined]
    _check_finite("surrogate variance of the scalarised objectives", var)
    return var


def _proposals(res: BatchResult, pol: Policy, objective: Objective | MultiObjective, mean: np.ndarray,
               var: np.ndarray, log_feas: np.ndarray | None, best: float | None) -> list[Proposal]:
    out = []
    for idx, score in zip(res.indices, res.scores, strict=True):
        p = None if log_feas is None else float(np.exp(log_feas[idx]))
        if isinstance(objective, MultiObjective):
            mu = tuple(float(mean[idx, o.output]) for o in objective.objectives)
            sd = tuple(math.sqrt(max(float(var[idx, o.output]), 0.0)) for o in objective.objectives)
            parts = ", ".join(f"{o.name} {a:.3g} ± {b:.2g} {o.units}".rstrip()
                              for o, a, b in zip(objective.objectives, mu, sd, strict=True))
            reason = f"{pol.reason(objective.objectives[0], mu[0], sd[0], None).split(':')[0]}: {parts}"
            mean_out: float | tuple[float, ...] = mu
            std_out: float | tuple[float, ...] = sd
        else:
            col = 0 if mean.shape[1] == 1 else objective.output
            mean_out, std_out = float(mean[idx, col]), math.sqrt(max(float(var[idx, col]), 0.0))
            reason = pol.reason(objective, mean_out, std_out, best)
        if p is not None:
            reason += f"; P(success) {p:.0%}" if p >= 0.005 else "; P(success) < 1%"
        out.append(Proposal(int(idx), mean_out, std_out, float(score), pol.name, reason, p))
    return out
