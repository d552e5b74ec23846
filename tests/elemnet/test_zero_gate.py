"""The zero gate for targets with exact zeros, on real measured band gaps, including bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import NotFittedError

from aloop.chem import to_fraction_matrix
from aloop.elemnet.transfer import make_regressor
from aloop.elemnet.zero_gate import GATE_THRESHOLDS, ZeroGatedRegressor, check_zero_share, choose_threshold, gate


@pytest.fixture(scope="module")
def band_gaps() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not (Path(os.environ.get("ALOOP_DATA_DIR", "/nonexistent")) / "experimental").is_dir():
        pytest.skip("ALOOP_DATA_DIR does not hold the shared datasets (set ALOOP_DATA_DIR=../shared/data)")
    from aloop.datasets import load

    frame = load("expt-bandgap")
    train, test = frame[frame["split"] == "train"].head(600), frame[frame["split"] == "test"].head(200)
    X, _ = to_fraction_matrix(list(train["formula"]))
    Xt, _ = to_fraction_matrix(list(test["formula"]))
    return X, train["gap expt"].to_numpy(), Xt, test["gap expt"].to_numpy()


def test_choose_threshold_and_gate() -> None:
    y, pred, p = np.array([0.0, 0.0, 1.0]), np.array([0.3, 0.2, 1.0]), np.array([0.9, 0.4, 0.1])
    assert choose_threshold(p, pred, y) == (0.5, pytest.approx(0.2 / 3))  # the first of the best thresholds
    np.testing.assert_allclose(gate(pred, p, 0.5), [0.0, 0.2, 1.0])
    np.testing.assert_allclose(gate(pred, p, None), pred)
    assert choose_threshold(np.full(3, 0.97), np.array([0.0, 0.0, 1.0]), y) == (None, 0.0)  # every gate hurts
    assert GATE_THRESHOLDS[0] == 0.5 and GATE_THRESHOLDS[-1] == 0.95 and len(GATE_THRESHOLDS) == 10


def test_the_gate_lowers_the_error_on_measured_band_gaps(band_gaps) -> None:
    X, y, Xt, yt = band_gaps
    assert 0.3 < np.mean(y == 0) < 0.7  # about half the measured gaps are metals' 0 eV
    plain = make_regressor("sc-magpie").fit(X, y)
    gated = ZeroGatedRegressor(make_regressor("sc-magpie")).fit(X, y)
    assert gated.threshold_ in GATE_THRESHOLDS
    p, pred = gated.zero_probability(Xt), gated.predict(Xt)
    assert p.shape == pred.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    assert (pred[p > gated.threshold_] == 0).all()
    np.testing.assert_allclose(pred[p <= gated.threshold_], plain.predict(Xt)[p <= gated.threshold_])
    assert np.mean(np.abs(pred - yt)) < np.mean(np.abs(plain.predict(Xt) - yt))
    fixed = ZeroGatedRegressor(DummyRegressor(), threshold=0.6).fit(X, y)
    assert fixed.threshold_ == 0.6 and (fixed.predict(Xt)[fixed.zero_probability(Xt) > 0.6] == 0).all()
    column = ZeroGatedRegressor(DummyRegressor(), threshold=0.6).fit(X, y[:, None])  # y as a column, as elsewhere
    np.testing.assert_array_equal(column.predict(Xt), fixed.predict(Xt))


@pytest.mark.parametrize("kwargs, y_edit, needle", [
    ({}, lambda y: y + 1.0, "exact zeros in 5–95% of the training rows; the target has 0.0%"),
    ({}, lambda y: y * 0.0, "the target has 100.0%"),
    ({}, lambda y: np.where(np.arange(len(y)) == 3, np.nan, y), "NaN or infinite"),
    ({}, lambda y: y[:-1], "one value per row of X"),
    ({"threshold": 1.0}, lambda y: y, "threshold must be 'auto' or a probability strictly between 0 and 1"),
    ({"threshold": "high"}, lambda y: y, "got 'high'"),
    ({"threshold": None}, lambda y: y, "got None (for no gate, use the regressor alone)"),
    ({"validation_fraction": 0.0}, lambda y: y, "validation_fraction must lie strictly between 0 and 1"),
    ({"validation_fraction": 0.01}, lambda y: y, "on 6 held-out row(s) (0.01 of 600); it needs at least 20"),
])
def test_zero_gate_bad_inputs(band_gaps, kwargs: dict, y_edit, needle: str) -> None:
    X, y, _, _ = band_gaps
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        ZeroGatedRegressor(DummyRegressor(), **kwargs).fit(X, y_edit(y))


def test_check_zero_share_names_the_target() -> None:
    with pytest.raises(ValueError, match="'delta_e' has 2.0%"):
        check_zero_share(np.r_[np.zeros(2), np.ones(98)], "'delta_e'")
    check_zero_share(np.r_[np.zeros(5), np.ones(95)])


def test_formulas_instead_of_fractions_are_refused_clearly(band_gaps) -> None:
    X, y, _, _ = band_gaps
    with pytest.raises(ValueError, match=r"ZeroGatedRegressor takes an n × 86 matrix .*got 'NaCl'"):
        ZeroGatedRegressor(DummyRegressor()).fit(["NaCl"] * len(y), y)


def test_an_unfitted_gate_says_so() -> None:
    for call in ("predict", "zero_probability"):
        with pytest.raises(NotFittedError, match=r"ZeroGatedRegressor is not fitted; call fit\(X, y\) first"):
            getattr(ZeroGatedRegressor(DummyRegressor()), call)(np.eye(86, dtype=np.float32)[:2])


def test_the_gate_zeroes_only_probabilities_above_the_threshold() -> None:
    np.testing.assert_array_equal(gate([1.0, 2.0, 3.0], [0.5, 0.50001, 0.49999], 0.5), [1.0, 0.0, 3.0])


def test_auto_threshold_is_chosen_on_rows_the_models_were_not_fitted_on(band_gaps) -> None:
    """Zero labels unrelated to the composition: a classifier that had seen the held-out rows would know their
    zeros by heart and make the lowest threshold look best."""
    from sklearn.base import clone

    from aloop.elemnet.zero_gate import zero_classifier, zero_probability

    X = band_gaps[0][:200]
    y = np.where(np.random.default_rng(2).random(200) < 0.25, 0.0, 5.0)
    regressor = DummyRegressor(strategy="median")
    gated = ZeroGatedRegressor(regressor, validation_fraction=0.15, seed=0).fit(X, y)
    rows = np.random.default_rng(0).permutation(200)
    val, fit = rows[:30], rows[30:]
    p_zero = zero_probability(zero_classifier(0).fit(X[fit], y[fit] == 0), X[val])
    expected, _ = choose_threshold(p_zero, clone(regressor).fit(X[fit], y[fit]).predict(X[val]), y[val])
    assert gated.threshold_ == expected != 0.5
