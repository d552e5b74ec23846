"""The cold start of a campaign: which candidates to make before a model can be fitted."""

from __future__ import annotations

import numpy as np

from aloop.campaigns.pool import CampaignError

__all__ = ["initial_design"]


def initial_design(kind: str, features: np.ndarray, eligible: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``n`` eligible pool rows for a cold start and a reason for each.

    ``random``: uniformly at random. ``diverse``: k-means with ``n`` clusters on the
    standardised features of (a sample of) the eligible rows; each pick is the eligible
    row nearest to one cluster centre, so the first batch spreads over feature space.
    """
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(eligible)
    if n > len(idx):
        raise CampaignError(f"asked for {n} proposals but only {len(idx)} candidates are still available")
    if kind == "random" or n == len(idx):
        pick = np.sort(rng.choice(idx, n, replace=False))
        return pick, ["initial design: random pick"] * n
    from sklearn.cluster import KMeans

    sample = idx if len(idx) <= 20_000 else np.sort(rng.choice(idx, 20_000, replace=False))
    Z = np.asarray(features[sample], dtype=np.float64)
    mu, sd = Z.mean(axis=0), Z.std(axis=0)
    Z = (Z - mu) / np.where(sd > 0, sd, 1.0)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # k-means' threaded sums differ in the last bits from one thread count to another
        km = KMeans(n_clusters=n, n_init=3, random_state=seed).fit(Z)
    d2 = ((Z[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(-1) if len(Z) * n <= 4_000_000 else None
    chosen: list[int] = []
    for c in range(n):
        dist = d2[:, c] if d2 is not None else ((Z - km.cluster_centers_[c]) ** 2).sum(-1)
        # A symmetric grid has many rows equally near a centre: rounding-level differences must not pick among them.
        for j in np.argsort(np.round(dist, 9), kind="stable"):
            if j not in chosen:
                chosen.append(int(j))
                break
    sizes = np.bincount(km.labels_, minlength=n)
    reasons = [f"initial design: diverse — nearest to k-means centre {c + 1} of {n} ({sizes[c]} candidates)"
               for c in range(n)]
    return sample[chosen], reasons
