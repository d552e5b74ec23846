"""Bad inputs fail early with messages that say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from acquisition_models import TableSurrogate

from aloop.acquisition import FeasibilityModel, Maximize, MultiObjective, Target, Window, propose


class NaNSurrogate(TableSurrogate):
    def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        mean, var = super().predict(X, batch_size)
        mean[3] = np.nan
        return mean, var


@pytest.fixture
def table() -> TableSurrogate:
    return TableSurrogate(np.linspace(0, 1, 10), np.eye(10) * 0.1, noise=1e-3)


def test_nan_predictions(table: TableSurrogate) -> None:
    bad = NaNSurrogate(table.mean_table, table.cov_table)
    with pytest.raises(ValueError, match=r"mean on the pool has 1 NaN/inf values \(rows \[3\]"):
        propose(bad, TableSurrogate.pool(10), Maximize(), "ucb", q=2)


def test_nan_features(table: TableSurrogate) -> None:
    pool = TableSurrogate.pool(10)
    pool[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"X_pool has NaN/inf features \(rows \[7\]"):
        propose(table, pool, Maximize(), "ucb", q=2)


def test_nan_targets(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match="y_observed has 1 NaN/inf"):
        propose(table, TableSurrogate.pool(10), Maximize(), "log_ei", q=2, y_observed=np.array([0.1, np.inf]))
    with pytest.raises(ValueError, match="best_f must be finite"):
        propose(table, TableSurrogate.pool(10), Maximize(), "log_ei", q=2, best_f=float("nan"))
    with pytest.raises(ValueError, match="needs the incumbent"):
        propose(table, TableSurrogate.pool(10), Maximize(), "log_ei", q=2)


def test_empty_pool(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match="pool is empty"):
        propose(table, np.zeros((0, 1)), Maximize(), "ucb", q=1)


def test_batch_larger_than_available(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match=r"q=8 .* only 6 of 10 .*2 pending, 2 excluded"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=8, pending=[0, 1], exclude=[2, 3])
    with pytest.raises(ValueError, match="positive integer"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=0)


def test_feature_width_mismatch(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match="X_pool has 3 features but the surrogate was fitted on 1"):
        propose(table, np.zeros((5, 3)), Maximize(), "ucb", q=1)
    with pytest.raises(ValueError, match="X_pending must be P × 1"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, X_pending=np.zeros((2, 4)))


def test_unknown_policy_lists_known_ones(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match="unknown policy 'ei'; known policies: .*log_ei.*ucb"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ei", q=1)


def test_objective_policy_mismatch_and_window(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match="lo < hi, got lo=1.7 > hi=1.1"):
        propose(table, TableSurrogate.pool(10), Window(1.7, 1.1), "log_ei", q=1)
    with pytest.raises(ValueError, match="for several objectives"):
        propose(table, TableSurrogate.pool(10), Target(0.4), "log_nehvi", q=1)
    with pytest.raises(ValueError, match="for one objective"):
        propose(table, TableSurrogate.pool(10), MultiObjective([Maximize(), Target(1.0)]), "ucb", q=1)
    with pytest.raises(ValueError, match="reads output 2"):
        propose(table, TableSurrogate.pool(10), Maximize(output=2), "ucb", q=1)


def test_bad_index_and_key_arguments(table: TableSurrogate) -> None:
    with pytest.raises(ValueError, match=r"exclude indices must lie in \[0, 10\)"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, exclude=[10])
    with pytest.raises(ValueError, match="pending mask must have one entry per pool row"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, pending=np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="exclude looks like a 0/1 mask .* not boolean"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, exclude=[1] * 5 + [0] * 5)
    with pytest.raises(ValueError, match="pending must be a boolean mask or whole-number row indices"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, pending=[0.5, 1.7])
    as_mask = propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=3, exclude=np.r_[np.ones(5), np.zeros(5)] > 0)
    assert {p.index for p in as_mask} <= set(range(5, 10))
    with pytest.raises(ValueError, match=r"X_pending must be P × 1 \(the pool's width\), got shape \(2, 4\)"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, X_pending=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X_success and X_failed must be n × d feature arrays of one width"):
        FeasibilityModel.from_records(np.zeros((3, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="exclude_keys needs pool_keys"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, exclude_keys=["Fe2O3"])


def test_argument_ranges_are_checked(table: TableSurrogate) -> None:
    from aloop.surrogates.metrics import calibration_curve

    with pytest.raises(ValueError, match="Maximize output must be a surrogate output index >= 0, got -1"):
        Maximize(output=-1)
    with pytest.raises(ValueError, match="Target output must be"):
        Target(1.0, output=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        propose(table, TableSurrogate.pool(10), Maximize(), "ucb", q=1, chunk_size=0)
    with pytest.raises(ValueError, match="num_bins must be a whole number >= 2, got -1"):
        calibration_curve(np.zeros(3), np.zeros(3), np.ones(3), num_bins=-1)


def test_a_dataframe_pool_is_read_as_its_values(fitted_gp: tuple) -> None:
    import pandas as pd

    gp, _, y, pool = fitted_gp
    as_frame = propose(gp, pd.DataFrame(pool), Maximize(), "ucb", q=3)
    assert [p.index for p in as_frame] == [p.index for p in propose(gp, pool, Maximize(), "ucb", q=3)]


def test_nehvi_refuses_observed_features_that_do_not_match_the_values(fitted_gp: tuple) -> None:
    from acquisition_models import TorchGP

    _, X, y, pool = fitted_gp
    Y = np.c_[y, -y**2]
    gp2 = TorchGP().fit(X, Y)
    mo = MultiObjective([Maximize(output=0), Maximize(output=1)])
    for bad in (X[:10], X[:, :2]):
        with pytest.raises(ValueError, match=r"X_observed must be n × d .*30 × 3, got shape"):
            propose(gp2, pool, mo, "log_nehvi", q=2, X_observed=bad, y_observed=Y)



def test_a_batch_from_a_surrogate_without_covariance_says_what_is_missing(table: TableSurrogate) -> None:
    """A duck-typed surrogate with only ``predict``: one pick works, a conditioned batch names the missing methods."""

    class PredictOnly:
        def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
            return table.predict(X, batch_size)

        def noise_variance(self) -> np.ndarray:
            return np.array([1e-3])

    pool = TableSurrogate.pool(10)
    assert propose(PredictOnly(), pool, Maximize(), "ucb", q=1)[0].index == 9
    for q, pending in ((2, None), (1, [9])):
        with pytest.raises(ValueError, match="PredictOnly implements neither covariance nor member_predictions"):
            propose(PredictOnly(), pool, Maximize(), "ucb", q=q, pending=pending)
