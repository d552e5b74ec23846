"""Feasibility: a success classifier whose probability multiplies acquisition values."""

from __future__ import annotations

import warnings

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


def test_the_default_classifier_keeps_a_failure_local() -> None:
    """A failure lowers its neighbours, not compositions far from it (logistic regression lowered a whole side)."""
    from aloop.chem import to_fraction_matrix

    def X(formulas: list[str]) -> np.ndarray:
        return to_fraction_matrix(formulas)[0]

    ok = ["Ni1", "Fe1", "Co1", "Ni0.5Fe0.5", "Co0.5Fe0.5", "Ni0.25Fe0.25Co0.25Mn0.25"]
    model = FeasibilityModel.from_records(X(ok), X(["Mn1", "Mn0.8Fe0.2"]))
    assert model.method == "auto" and type(model.classifier_[-1]).__name__ == "GaussianProcessClassifier"
    p = dict(zip(["Mn1", "Mn0.9Ni0.1", "Ni0.5Co0.5", "Fe0.7Co0.3"], model.prob(X(["Mn1", "Mn0.9Ni0.1", "Ni0.5Co0.5",
                                                                                "Fe0.7Co0.3"])), strict=True))
    assert p["Mn1"] < 0.3 and p["Mn0.9Ni0.1"] < 0.3  # the failures and their neighbour
    assert p["Ni0.5Co0.5"] > 0.7 and p["Fe0.7Co0.3"] > 0.7  # far from them
    rng = np.random.default_rng(0)  # many outcomes: a calibrated forest (the GP classifier's cost grows as n³)
    many = FeasibilityModel().fit(rng.uniform(size=(1200, 3)), rng.uniform(size=1200) < 0.7)
    assert type(many.classifier_).__name__ == "CalibratedClassifierCV"


def test_candidates_unlikely_to_be_made_are_not_proposed_while_others_are_left() -> None:
    """An exploring policy went back to the failing region: weighting by P(success) alone did not stop it."""
    n = 30
    table = TableSurrogate(np.r_[np.linspace(0, 1, n - 10), np.full(10, 3.0)], np.eye(n) * 0.5)  # where syntheses fail
    pool = TableSurrogate.pool(n)
    p = np.full(n, 0.9)
    p[-10:] = 0.25
    picks = propose(table, pool, Maximize(), LogEI(), q=5, best_f=0.5, feasibility=p)
    assert all(pick.index < n - 10 for pick in picks)
    loose = propose(table, pool, Maximize(), LogEI(), q=5, best_f=0.5, feasibility=p, min_success=0.0)
    assert any(pick.index >= n - 10 for pick in loose)  # what happened before
    unlikely = np.r_[np.full(n - 10, 0.15), np.full(10, 0.25)]  # none is likely enough: the likeliest are taken
    with pytest.warns(UserWarning, match=r"only 0 candidates are at least 30% likely .* down to P\(success\) 15%"):
        got = propose(table, pool, Maximize(), LogEI(), q=12, best_f=0.5, feasibility=unlikely)
    assert sum(pick.index >= n - 10 for pick in got) == 10
    with pytest.raises(ValueError, match=r"min_success must be a probability in \[0, 1\), got 1.5"):
        propose(table, pool, Maximize(), LogEI(), q=1, best_f=0.5, feasibility=p, min_success=1.5)


def _plate_outcomes(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """Metal fractions of real OER-plate compositions; a lab where every Mn-rich one (Mn ≥ 0.4) fails to form."""
    from aloop.datasets import load

    plate = load("oer-plate-3496").sample(n, random_state=0)
    X = plate[[c for c in plate.columns if c.endswith("_load")]].to_numpy(float)
    return X, X[:, list(plate.columns).index("mn_load")] < 0.4


def test_past_gp_fit_rows_the_kernel_is_tuned_on_a_subset_and_conditioned_on_every_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hundreds of outcomes made the GP classifier's fit cubic (a campaign's status took minutes): its hyperparameters
    come from a proportional subset of each class, and the classifier still conditions on all outcomes."""
    from aloop.acquisition import feasibility

    monkeypatch.setattr(feasibility, "GP_FIT_ROWS", 40)
    X, made = _plate_outcomes(200)
    model = FeasibilityModel("gp").fit(X[:150], made[:150])
    final = model.classifier_[-1]
    assert final.optimizer is None and final.base_estimator_.X_train_.shape[0] == 150
    sub = model._fit_rows(made[:150])
    n_fail = int((~made[:150]).sum())
    assert len(sub) == len(np.unique(sub)) and int((~made[:150][sub]).sum()) == max(2, round(40 * n_fail / 150))
    p, truth = model.prob(X[150:]), made[150:]
    assert np.mean((p - truth) ** 2) < np.mean((made[:150].mean() - truth) ** 2) / 4  # far below the base rate's


def test_cross_validation_says_whether_p_success_beats_the_base_rate() -> None:
    from aloop.acquisition import cross_validate_feasibility

    X, made = _plate_outcomes()
    cv = cross_validate_feasibility(X, made)
    assert cv is not None and cv["outcomes"] == 120 and cv["failures"] == int((~made).sum()) and cv["folds"] == 5
    assert cv["brier"] < cv["brier_base_rate"] / 2 and cv["verdict"] == "better than the base rate"
    assert cv["success_rate"] == pytest.approx(made.mean()) and abs(cv["mean_p_success"] - made.mean()) < 0.1
    shuffled = np.random.default_rng(0).permutation(made)  # outcomes unrelated to composition: nothing to learn
    noise = cross_validate_feasibility(X, shuffled)
    assert noise is not None and noise["brier"] > cv["brier"] + 0.05 and noise["verdict"].startswith("no better")
    # a composition on both sides of a split would leak: groups keep each composition in one fold
    twice = cross_validate_feasibility(np.vstack([X, X[:10]]), np.r_[made, ~made[:10]], np.r_[np.arange(120), np.arange(10)])
    assert twice is not None and twice["outcomes"] == 130


def test_cross_validation_needs_two_of_each_outcome_and_refuses_bad_shapes() -> None:
    from aloop.acquisition import cross_validate_feasibility

    X, made = _plate_outcomes(20)
    one_failure = made.copy()
    one_failure[~made] = True
    one_failure[0] = False
    assert cross_validate_feasibility(X, one_failure) is None
    with pytest.raises(ValueError, match="one outcome per row"):
        cross_validate_feasibility(X, made[:-1])
    with pytest.raises(ValueError, match="groups must label each of the 20 outcomes"):
        cross_validate_feasibility(X, made, np.arange(3))


def test_the_classifier_learns_on_a_campaigns_default_elemnet_features() -> None:
    """1,024 ElemNet activations per composition (most constant on a small grid): failures still lower P(success)."""
    from itertools import product

    from aloop.features import ElemNetFeatures

    metals = ("Ni", "Fe", "Co", "Mn")
    grid = [c for c in product(range(5), repeat=4) if sum(c) == 4 and sum(v > 0 for v in c) <= 3]
    formulas = ["".join(f"{m}{v / 10:g}" for m, v in zip(metals, c) if v) + "O0.6" for c in grid]
    X = ElemNetFeatures(source="oqmd-formation-enthalpy", layer=2).transform(formulas)
    mn_rich = np.array([c[3] >= 2 for c in grid])  # Mn ≥ 0.2 fails
    made = np.random.default_rng(0).choice(len(grid), 15, replace=False)
    assert 0 < mn_rich[made].sum() < len(made)
    p = FeasibilityModel().fit(X[made], ~mn_rich[made]).prob(X)
    assert p[made][mn_rich[made]].max() < 0.45  # was 1/2 everywhere: the kernel's fit never left its start
    assert p[mn_rich].mean() < 0.35 and p[~mn_rich].mean() > 0.7


@pytest.mark.parametrize("min_success", [0.3, 0.35])
def test_a_candidate_exactly_min_success_likely_is_still_proposed(min_success: float) -> None:
    # 0.35: exp(log 0.35) is 0.34999999999999992, so comparing after the log round trip dropped the candidate
    n = 4
    table = TableSurrogate(np.array([0.0, 0.1, 0.2, 3.0]), np.eye(n) * 0.04)
    p = np.array([0.9, 0.9, 0.9, min_success])  # the best candidate sits exactly at min_success
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        got = propose(table, TableSurrogate.pool(n), Maximize(), LogEI(), q=1, best_f=0.5, feasibility=p,
                      min_success=min_success)[0]
    assert got.index == 3


def test_when_too_few_are_likely_enough_exactly_the_q_likeliest_are_taken() -> None:
    n = 5
    table = TableSurrogate(np.array([0.0, 0.0, 5.0, 0.0, 0.0]), np.eye(n) * 0.04)
    p = np.array([0.29, 0.28, 0.27, 0.1, 0.1])  # none reaches 0.3; row 2, the best by far, is only the third likeliest
    with pytest.warns(UserWarning, match=r"only 0 candidates .* down to P\(success\) 28%"):
        got = propose(table, TableSurrogate.pool(n), Maximize(), LogEI(), q=2, best_f=0.5, feasibility=p)
    assert sorted(pick.index for pick in got) == [0, 1]


def test_random_picks_are_drawn_in_proportion_to_p_success() -> None:
    table = TableSurrogate(np.zeros(2), np.eye(2) * 0.04)
    picks = [propose(table, TableSurrogate.pool(2), Maximize(), "random", q=1, feasibility=np.array([0.9, 0.3]),
                     seed=s)[0].index for s in range(400)]
    assert 0.65 < picks.count(0) / 400 < 0.85  # 0.9 / (0.9 + 0.3) = 0.75; unweighted it would be 0.5
