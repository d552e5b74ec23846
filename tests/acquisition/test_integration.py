"""``propose`` on the project's own surrogates: the GP fast path and a tree ensemble (query by committee)."""

from __future__ import annotations

import numpy as np

from aloop.acquisition import Maximize, Window, propose
from aloop.surrogates import GPSurrogate, TreeEnsembleSurrogate


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = rng.uniform(size=(40, 4))
    y = np.sin(5 * X[:, 0]) + X[:, 1] + 0.05 * rng.standard_normal(40)
    return X, y, rng.uniform(size=(2000, 4))


def test_gp_surrogate_batch_with_pending() -> None:
    X, y, pool = _data()
    gp = GPSurrogate(projection=None).fit(X, y)
    picks = propose(gp, pool, Maximize(), "log_ei", q=5, y_observed=y, pending=[0, 1, 2], shortlist=64)
    idx = [p.index for p in picks]
    assert len(set(idx)) == 5 and not {0, 1, 2} & set(idx)
    window = propose(gp, pool, Window(0.8, 1.2), "log_ei", q=3, pending=idx)
    assert not set(idx) & {p.index for p in window}


def test_tree_ensemble_qbc_and_ucb() -> None:
    X, y, pool = _data()
    rf = TreeEnsembleSurrogate(n_estimators=30).fit(X, y)
    qbc = propose(rf, pool, Maximize(), "qbc", q=4)
    ucb = propose(rf, pool, Maximize(), "ucb", q=4, pending=[5])
    assert len({p.index for p in qbc}) == 4 and len({p.index for p in ucb}) == 4
