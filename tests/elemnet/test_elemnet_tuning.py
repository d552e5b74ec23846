"""Choosing a network's learning rate, batch size and weight decay on validation (optuna), on tiny networks."""

from __future__ import annotations

import pytest

from aloop.elemnet.tuning import BATCH_SIZES, LR_RANGE, WEIGHT_DECAY_RANGE, tune

TINY = {"source": None, "mode": "scratch", "hidden_widths": (16, 8), "max_epochs": 30, "patience": 6}


def test_the_chosen_recipe_is_the_best_trial_and_refits_to_the_same_network(band_gap) -> None:
    X, y = band_gap
    result = tune(X, y, n_trials=6, seed=3, **TINY)
    assert len(result.trials) == 6
    finished = [t for t in result.trials if t["state"] == "complete"]
    assert result.val_mae == min(t["val_mae"] for t in finished)
    assert LR_RANGE[0] <= result.params["lr"] <= LR_RANGE[1]
    assert WEIGHT_DECAY_RANGE[0] <= result.params["weight_decay"] <= WEIGHT_DECAY_RANGE[1]
    assert result.params["batch_size"] in BATCH_SIZES
    assert {k: result.params[k] for k in TINY} == TINY and result.params["seed"] == 3
    model = result.regressor().fit(X, y)  # same seed, same held-out rows: the chosen trial again
    assert min(h["val_mae"] for h in model.history_) == pytest.approx(result.val_mae, rel=1e-5)
    assert len({(t["lr"], t["batch_size"]) for t in result.trials}) > 1  # the trials really differ


def test_a_search_is_reproducible_and_pruning_stops_trials_early(band_gap) -> None:
    X, y = band_gap
    first = tune(X, y, n_trials=8, seed=0, **TINY)
    again = tune(X, y, n_trials=8, seed=0, **TINY)
    assert first.trials == again.trials
    unpruned = tune(X, y, n_trials=8, seed=0, prune=False, **TINY)
    assert all(t["state"] == "complete" for t in unpruned.trials)
    # The sampler's first 10 trials are independent draws, so both searches tried the same recipes.
    assert [(t["lr"], t["batch_size"]) for t in first.trials] == [(u["lr"], u["batch_size"]) for u in unpruned.trials]
    pruned = [(t, u) for t, u in zip(first.trials, unpruned.trials, strict=True) if t["state"] == "pruned"]
    assert pruned  # the median rule stops some trials here
    for t, u in pruned:  # stopped early, and each would have finished behind the recipe chosen
        assert t["val_mae"] is None and t["epochs"] < u["epochs"] and u["val_mae"] > first.val_mae


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_trials": 0}, r"n_trials must be a whole number ≥ 1, got 0"),
    ({"n_trials": 2.5}, r"n_trials must be a whole number ≥ 1, got 2.5"),
    ({"timeout": -1}, r"timeout must be a number of seconds > 0 or None, got -1"),
    ({"lr": 1e-3}, r"lr is chosen by the search; leave it out of the fixed settings"),
    ({"batch_size": 8, "weight_decay": 0.0}, r"batch_size, weight_decay are chosen by the search"),
    ({"epochs": 5}, r"unknown ElemNetRegressor setting 'epochs'; settings: .*max_epochs"),
    ({"patience": None}, r"patience=None gives it nothing to score"),
])
def test_bad_search_settings_are_refused_before_training(band_gap, kwargs: dict, message: str) -> None:
    X, y = band_gap
    with pytest.raises(ValueError, match=message):
        tune(X, y, **{"n_trials": 1, **TINY, **kwargs})
