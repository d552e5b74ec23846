"""Feasibility: a success classifier whose probability multiplies acquisition values."""

from __future__ import annotations

import numpy as np
import pytest
from acquisition_models import TableSurrogate

from aloop.acquisition import UCB, FeasibilityModel, LogEI, Maximize, propose


def test_log_probability_adds_to_log_scores() -> None:
    n = 50
    table = TableSurrogate(np.linspace(0, 1, n), np.eye(n) * 0.04)
    pool = TableSurrogate.pool(n)
    p = np.full(n, 0.9)
    p[-1] = 0.01  # the best candidate almost surely fails to synthesise
    plain = propose(table, pool, Maximize(), LogEI(), q=1, best_f=0.8)[0]
    weighted = propose(table, pool, Maximize(), LogEI(), q=1, best_f=0.8, feasibility=p)[0]
    assert plain.index == n - 1 and weighted.index == n - 2
    unweighted = LogEI().score(np.array([table.mean_table[n - 2, 0]]), np.array([0.04]), Maximize(), 0.8)[0]
    assert weighted.score == pytest.approx(unweighted + np.log(0.9))
    assert weighted.p_feasible == pytest.approx(0.9) and "P(success) 90%" in weighted.reason


def test_signed_scores_are_weighted_too() -> None:
    n = 20
    table = TableSurrogate(np.linspace(0, 1, n), np.eye(n) * 0.01)
    p = np.ones(n)
    p[-3:] = 0.05
    got = propose(table, TableSurrogate.pool(n), Maximize(), UCB(), q=1, feasibility=p)[0]
    assert got.index == n - 4


def test_classifier_learns_where_syntheses_fail() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 3))
    ok = X[:, 0] < 0.3  # high x0 fails
    for method in ("logistic", "random_forest", "gp"):
        model = FeasibilityModel(method).fit(X[:80] if method == "gp" else X, ok[:80] if method == "gp" else ok)
        prob = model.prob(np.array([[-0.8, 0, 0], [0.9, 0, 0]]))
        assert prob[0] > 0.7 and prob[1] < 0.3, method
        assert np.all(model.log_prob(X[:5]) <= 0)


def test_one_class_gives_a_constant() -> None:
    X = np.random.default_rng(1).normal(size=(6, 2))
    only_ok = FeasibilityModel().fit(X, np.ones(6, dtype=bool))
    only_failed = FeasibilityModel.from_records(X[:0], X)
    np.testing.assert_allclose(only_ok.prob(X), 7 / 8)
    np.testing.assert_allclose(only_failed.prob(X), 1 / 8)


def test_feasibility_model_in_propose_and_bad_inputs() -> None:
    n = 30
    table = TableSurrogate(np.linspace(0, 1, n), np.eye(n) * 0.04)
    pool = TableSurrogate.pool(n)
    # failures recorded at high ids: the classifier steers the batch to low ids
    model = FeasibilityModel().fit(np.arange(40.0)[:, None] * 0.75, np.arange(40) < 30)
    picks = propose(table, pool, Maximize(), LogEI(), q=3, best_f=0.5, feasibility=model)
    assert all(p.p_feasible is not None for p in picks)
    with pytest.raises(ValueError, match="fitted on 1 features"):
        model.prob(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unknown feasibility method"):
        FeasibilityModel("svm")
    with pytest.raises(ValueError, match="NaN"):
        FeasibilityModel().fit(np.array([[np.nan], [1.0]]), np.array([True, False]))
    with pytest.raises(ValueError, match="numbers in"):
        propose(table, pool, Maximize(), LogEI(), q=1, best_f=0.5, feasibility=np.full(n, 1.5))
