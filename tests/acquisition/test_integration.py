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


def test_pareto_batches_from_every_surrogate_kind() -> None:
    """log-NEHVI on two objectives with a forest (its members are the samples) and the GP + forest mixture (its
    moment-matched normal at the measured points and candidates must factorise), as with the GP."""
    import pytest

    from aloop.acquisition import MultiObjective, Minimize
    from aloop.datasets import DatasetError, load
    from aloop.surrogates import GPForestMixture

    try:
        frame = load("oer-plate-3496").sample(400, random_state=0)
    except DatasetError as exc:
        pytest.skip(f"needs the OER plate: {exc}")
    F = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(float)
    measured = np.arange(20)
    # overpotential (minimise) and the Ni fraction as a stand-in second property (maximise), as a lab would record
    Y = np.c_[frame["overpotential_V"].to_numpy()[measured], F[measured, 0] + 0.02 * np.sin(np.arange(20))]
    mo = MultiObjective([Minimize(output=0, name="eta", units="V"), Maximize(output=1, name="ni")])
    for model in (TreeEnsembleSurrogate(n_estimators=40), GPForestMixture(), GPSurrogate(projection=None)):
        model.fit(F[measured], Y)
        picks = propose(model, F, mo, "log_nehvi", q=2, X_observed=F[measured], y_observed=Y, exclude=measured,
                        seed=0)
        idx = [p.index for p in picks]
        assert len(set(idx)) == 2 and not set(idx) & set(measured), type(model).__name__
        assert picks[0].reason.startswith("grows the Pareto front: eta ")
