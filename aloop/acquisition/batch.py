"""Batch selection over a discrete pool: greedy Kriging believer on a certified shortlist, Thompson, random.

The pool is predicted once (``mean``, ``var``: ``N`` values of one scalar output). Believing
a pending or selected point ``p`` at its posterior mean leaves every mean unchanged and
lowers variances by a rank-1 update ``var_i ← var_i − cov(i, p)² / (var_p + noise)``, with
``cov`` itself conditioned on the earlier points (an incremental Cholesky of the
conditioning set). Those updates run only on a shortlist of the ``M`` candidates with the
largest score *bound* (the score's supremum under any conditioning, see
:meth:`Policy.bound`). If a greedy pick's conditioned score is at least the largest bound
outside the shortlist, that pick is the greedy pick over the whole pool; otherwise the
shortlist grows fourfold and selection restarts. The returned ``certified`` flag says the
batch equals full-pool greedy.

Points are addressed by integer ids into an *extended* set: ``0 … N−1`` are pool rows,
``N …`` are external pending experiments; ``cov(ids_a, ids_b) → na × nb`` gives their
posterior covariance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aloop.acquisition.objectives import Objective
from aloop.acquisition.policies import Policy, Random, Thompson

CovFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Covariance columns fetched up front per batch slot (candidates ranked best before conditioning).
PREFETCH_PER_PICK = 64


@dataclass(frozen=True)
class BatchResult:
    """A selected batch: pool ``indices`` (``q``) in pick order and the score of each when picked."""

    indices: np.ndarray
    scores: np.ndarray
    shortlist_size: int
    certified: bool


@dataclass
class Exclusions:
    """What removes candidates once a batch member is picked: same composition key, too close in feature space."""

    X_pool: np.ndarray | None = None
    min_distance: float | None = None
    key_codes: np.ndarray | None = None

    def apply(self, ids: np.ndarray, elig: np.ndarray, picked: int) -> None:
        """Mark entries of ``elig`` (aligned with pool ``ids``) that clash with pool row ``picked``."""
        elig[ids == picked] = False
        if self.key_codes is not None:
            elig &= self.key_codes[ids] != self.key_codes[picked]
        if self.min_distance and self.X_pool is not None:
            diff = self.X_pool[ids] - self.X_pool[picked]
            elig &= np.einsum("ij,ij->i", diff, diff) >= self.min_distance**2


def feasibility_transform(
    scores: np.ndarray, log_feas: np.ndarray | None, log_scale: bool, floor: float
) -> np.ndarray:
    """Multiply an acquisition value by the success probability (in log space).

    Log-scale scores get ``+ log p``. Signed scores (UCB, exploit, Thompson) are read as
    "a failed synthesis is worth ``floor``" (the worst value measured so far): the expected value
    ``p·s + (1−p)·floor`` ranks like ``log(s − floor) + log p``; scores at or below the floor rank last.
    """
    if log_feas is None:
        return scores
    if log_scale:
        return scores + log_feas
    return np.log(np.maximum(scores - floor, 1e-300)) + log_feas


def _floor(values: np.ndarray, scale: float) -> float:
    """Just below the smallest of ``values``; ``scale`` is the objective's typical spread (raw units)."""
    return float(np.min(values)) - 1e-6 * scale


class _Believer:
    """Rank-1 Kriging-believer updates of the variances of ``ids`` (an incremental Cholesky)."""

    def __init__(self, ids: np.ndarray, var: np.ndarray, cov: CovFn, noise: float, capacity: int) -> None:
        self.ids, self.var, self.cov, self.noise = ids, var.astype(np.float64, copy=True), cov, noise
        self.V = np.zeros((ids.size, capacity))
        self.k = 0
        self.columns: dict[int, np.ndarray] = {}

    def prefetch(self, rows: np.ndarray) -> None:
        """Fetch the covariance columns of ``rows`` in one ``cov`` call.

        A call's cost is dominated by the rows of ``ids`` (every call recomputes their
        cross-covariances with the training data), so likely picks are fetched together.
        """
        rows = np.array([r for r in np.atleast_1d(rows).astype(np.int64) if int(r) not in self.columns], dtype=np.int64)
        if rows.size:
            C = np.asarray(self.cov(self.ids, self.ids[rows]), dtype=np.float64)
            self.columns.update({int(r): C[:, j] for j, r in enumerate(rows)})

    def condition(self, rows: np.ndarray | int) -> None:
        """Believe the points ``self.ids[rows]`` in turn (observed with noise at their posterior means)."""
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        self.prefetch(rows)
        for row in rows:
            self._rank1(int(row), self.columns[int(row)])

    def _rank1(self, row: int, c: np.ndarray) -> None:
        r = c - self.V[:, : self.k] @ self.V[row, : self.k]
        denom = r[row] + self.noise
        if denom <= 1e-12 * max(abs(c[row]), 1e-300):
            return  # already known exactly: believing it again changes nothing
        v = r / np.sqrt(denom)
        self.V[:, self.k] = v
        self.k += 1
        self.var = np.maximum(self.var - v * v, 0.0)


def greedy_batch(
    policy: Policy,
    objective: Objective,
    mean: np.ndarray,
    var: np.ndarray,
    best: float,
    q: int,
    eligible: np.ndarray,
    cov: CovFn,
    noise: float,
    pending: np.ndarray | None = None,
    log_feas: np.ndarray | None = None,
    exclusions: Exclusions | None = None,
    shortlist: int = 2048,
    floor: float | None = None,
) -> BatchResult:
    """Sequential greedy (Kriging believer) batch of ``q`` for a deterministic policy.

    Args:
        mean, var: extended-set posterior (``N + P_ext``); the first ``N`` are the pool.
        best: incumbent utility (ignored by policies that do not use it).
        eligible: ``N`` booleans, the candidates that may be proposed.
        cov: posterior covariance between extended-set ids (``na × nb``).
        noise: observation-noise variance of a believed point.
        pending: extended-set ids conditioned on first (believed at their means).
        log_feas: ``N`` log success probabilities added to the scores (see :func:`feasibility_transform`).
        shortlist: initial shortlist size ``M``.
        floor: what a failed synthesis is worth on the score's scale (signed policies with ``log_feas``): the
            worst utility measured so far; ``None`` takes the worst candidate's predicted utility.
    """
    pending = np.zeros(0, dtype=np.int64) if pending is None else np.asarray(pending, dtype=np.int64)
    exclusions = exclusions or Exclusions()
    cand = np.flatnonzero(eligible)
    if policy.log_scale or log_feas is None:
        floor = 0.0
    else:
        floor = _floor(objective.exploit(mean[cand]) if floor is None else np.array([floor]), objective.scale)

    def total(s: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return feasibility_transform(s, None if log_feas is None else log_feas[ids], policy.log_scale, floor)

    bound = total(policy.bound(mean[cand], var[cand], objective, best), cand)
    order = np.argsort(-bound, kind="stable") if cand.size <= 4 * shortlist else None
    m = min(max(shortlist, q), cand.size)
    while True:
        if order is not None:
            top = order[:m]
        else:
            top = np.argpartition(-bound, m - 1)[:m] if m < cand.size else np.arange(cand.size)
        inside = np.zeros(cand.size, dtype=bool)
        inside[top] = True
        outside = cand[~inside]
        stale = float(bound[~inside].max()) if m < cand.size else -np.inf

        def out_max(b: float, outside: np.ndarray = outside, stale: float = stale) -> float:
            if b == best or outside.size == 0:
                return stale
            # The incumbent rose (a believed point beat it): every outside bound is lower now.
            return float(total(policy.bound(mean[outside], var[outside], objective, b), outside).max())

        result = _greedy_on(policy, objective, mean, var, best, q, cand[top], cov, noise, pending,
                            total, exclusions, out_max)
        if result is not None:
            return BatchResult(result[0], result[1], m, True)
        if m == cand.size:  # nothing outside, so only exclusions can have stopped the greedy
            raise ValueError(
                f"fewer than q={q} candidates remain after the diversity/duplicate exclusions; lower min_distance or q"
            )
        m = min(4 * m, cand.size)
        if order is None and cand.size <= 4 * m:
            order = np.argsort(-bound, kind="stable")


def _greedy_on(
    policy: Policy, objective: Objective, mean: np.ndarray, var: np.ndarray, best: float, q: int,
    S: np.ndarray, cov: CovFn, noise: float, pending: np.ndarray,
    total: Callable[[np.ndarray, np.ndarray], np.ndarray], exclusions: Exclusions,
    out_max: Callable[[float], float],
) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy on shortlist ``S`` (pool ids); ``None`` if the certificate fails or ``S`` runs out.

    ``out_max(best)`` is the largest score bound outside ``S`` for incumbent ``best``; it is
    evaluated lazily, only when the bound for the starting incumbent does not certify a pick.
    """
    best0 = best
    cache: dict[float, float] = {}
    ids = np.concatenate([S, pending])
    # One pick with nothing pending never conditions, so it needs no covariances.
    needs_believer = policy.uses_variance and (q > 1 or pending.size > 0)
    believer = _Believer(ids, var[ids], cov, noise, capacity=pending.size + q) if needs_believer else None
    uses_best = policy.needs_best(objective)
    if believer is not None:
        # Pending points and the likely picks in one call; a pick outside costs one more call.
        ranked = np.argsort(-total(policy.score(mean[S], var[S], objective, best), S))
        believer.prefetch(np.concatenate([S.size + np.arange(pending.size), ranked[: PREFETCH_PER_PICK * q]]))
        believer.condition(S.size + np.arange(pending.size))
    for j in range(pending.size):
        if uses_best:
            best = max(best, float(objective.utility(mean[pending[j]])))
    elig = np.ones(S.size, dtype=bool)
    picks, scores = [], []
    mean_S = mean[S]
    for t in range(q):
        var_S = believer.var[: S.size] if believer is not None else var[S]
        s = total(policy.score(mean_S, var_S, objective, best), S)
        s[~elig] = -np.inf
        i = int(np.argmax(s))
        if s[i] == -np.inf:
            return None
        if s[i] < out_max(best0):
            if best != best0 and best not in cache:
                cache[best] = out_max(best)
            if best == best0 or s[i] < cache[best]:
                return None
        picks.append(int(S[i]))
        scores.append(float(s[i]))
        exclusions.apply(S, elig, int(S[i]))
        if t < q - 1:
            if believer is not None:
                believer.condition(i)
            if uses_best:
                best = max(best, float(objective.utility(mean_S[i])))
    return np.array(picks, dtype=np.int64), np.array(scores)


def thompson_batch(
    policy: Thompson,
    objective: Objective,
    mean: np.ndarray,
    var: np.ndarray,
    q: int,
    eligible: np.ndarray,
    cov: CovFn | None,
    noise: float,
    rng: np.random.Generator,
    pending: np.ndarray | None = None,
    log_feas: np.ndarray | None = None,
    exclusions: Exclusions | None = None,
    chunk_size: int = 1 << 18,
    floor: float | None = None,
) -> BatchResult:
    """``q`` Thompson draws; joint over a screened shortlist when ``cov`` is given (see :class:`Thompson`).

    ``floor`` is what a failed synthesis is worth (as in :func:`greedy_batch`); ``None`` takes each draw's worst value.
    """
    exclusions = exclusions or Exclusions()
    cand = np.flatnonzero(eligible)
    std = np.sqrt(np.maximum(var[cand], 0.0))
    pending = np.zeros(0, dtype=np.int64) if pending is None else np.asarray(pending, dtype=np.int64)

    def _worth(s: np.ndarray) -> float:
        return _floor(s if floor is None else np.array([floor]), objective.scale)

    def sample_scores(f: np.ndarray, ids: np.ndarray) -> np.ndarray:
        s = objective.exploit(f)
        return feasibility_transform(s, None if log_feas is None else log_feas[ids], False, _worth(s))

    def independent_draw() -> np.ndarray:
        out = np.empty(cand.size)
        for a in range(0, cand.size, chunk_size):
            b = min(a + chunk_size, cand.size)
            f = mean[cand[a:b]] + std[a:b] * rng.standard_normal(b - a)
            out[a:b] = objective.exploit(f)
        return feasibility_transform(out, None if log_feas is None else log_feas[cand], False, _worth(out))

    joint = policy.joint and cov is not None and cand.size > 0
    if joint and cand.size > policy.shortlist:
        per = max(1, policy.shortlist // policy.screen_draws)
        keep = np.unique(np.concatenate([np.argpartition(-independent_draw(), per)[:per] for _ in range(policy.screen_draws)]))
        S = cand[keep]
    else:
        S = cand
    if joint:
        ids = np.concatenate([S, pending])
        K = np.asarray(cov(ids, ids), dtype=np.float64)
        Kss = K[: S.size, : S.size]
        if pending.size:
            Kpp = K[S.size :, S.size :] + noise * np.eye(pending.size)
            Ksp = K[: S.size, S.size :]
            Kss = Kss - Ksp @ np.linalg.solve(Kpp, Ksp.T)
        L = _psd_cholesky(Kss)
        F = mean[S][:, None] + L @ rng.standard_normal((S.size, q))
    elig = np.ones(S.size if joint else cand.size, dtype=bool)
    picks, scores = [], []
    for t in range(q):
        s = sample_scores(F[:, t], S) if joint else independent_draw()
        s[~elig] = -np.inf
        i = int(np.argmax(s))
        if s[i] == -np.inf:
            raise ValueError(f"only {t} of q={q} candidates remain after the diversity/duplicate exclusions")
        pool_id = int(S[i]) if joint else int(cand[i])
        picks.append(pool_id)
        scores.append(float(s[i]))
        exclusions.apply(S if joint else cand, elig, pool_id)
    return BatchResult(np.array(picks, dtype=np.int64), np.array(scores), int(S.size) if joint else 0, False)


def _psd_cholesky(K: np.ndarray) -> np.ndarray:
    K = 0.5 * (K + K.T)
    jitter = 1e-10 * max(float(np.mean(np.diag(K))), 1e-300)
    for _ in range(8):
        try:
            return np.linalg.cholesky(K + jitter * np.eye(K.shape[0]))
        except np.linalg.LinAlgError:
            jitter *= 10.0
    w, U = np.linalg.eigh(K)
    return U * np.sqrt(np.maximum(w, 0.0))


def random_batch(
    policy: Random, q: int, eligible: np.ndarray, rng: np.random.Generator,
    log_feas: np.ndarray | None = None, exclusions: Exclusions | None = None,
) -> BatchResult:
    """``q`` distinct random candidates; with feasibility, drawn ∝ ``p`` (Gumbel top-k)."""
    exclusions = exclusions or Exclusions()
    cand = np.flatnonzero(eligible)
    keys = rng.gumbel(size=cand.size) + (0.0 if log_feas is None else log_feas[cand])
    order = np.argsort(-keys)
    elig = np.ones(cand.size, dtype=bool)
    picks: list[int] = []
    for j in order:
        if elig[j]:
            picks.append(int(cand[j]))
            if len(picks) == q:
                break
            exclusions.apply(cand, elig, int(cand[j]))
    if len(picks) < q:
        raise ValueError(f"only {len(picks)} of q={q} candidates remain after the diversity/duplicate exclusions")
    return BatchResult(np.array(picks, dtype=np.int64), keys[np.searchsorted(cand, picks)], 0, False)
