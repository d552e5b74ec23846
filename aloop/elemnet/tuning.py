"""Choosing a network's training recipe on its own validation rows with optuna (learning rate, batch size, weight decay).

Gupta et al. 2021 fine-tuned with one fixed recipe; on a new dataset a user rarely knows which learning
rate or batch size suits it. ``tune`` searches them with optuna's TPE sampler, scoring each trial by the
early-stopping validation MAE of an ``ElemNetRegressor`` (the same seeded rows for every trial, never a
test set) and pruning trials whose validation curve falls behind the median. The MAE of the chosen
recipe is optimistic, since the search chose on those rows; score the model on a test set.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from aloop.elemnet.transfer import ElemNetRegressor
from aloop.training import training_progress

#: The searched ranges: learning rate and weight decay log-uniform, batch size among these values.
LR_RANGE = (1e-5, 3e-3)
WEIGHT_DECAY_RANGE = (1e-8, 1e-2)
BATCH_SIZES = (16, 32, 64, 128, 256)
#: Recipe settings the search chooses, which ``fixed`` may not also set.
TUNED = ("lr", "batch_size", "weight_decay")


@dataclass(frozen=True)
class TuneResult:
    """The chosen recipe and the search behind it.

    ``params``: the ``ElemNetRegressor`` settings to fit with (``fixed`` plus the chosen ``lr``,
    ``batch_size``, ``weight_decay``); ``val_mae``: the chosen trial's validation MAE (optimistic);
    ``trials``: one dict per trial (number, state ``complete``/``pruned``, the three settings, ``val_mae``,
    epochs trained); ``study``: the optuna study.
    """

    params: dict[str, Any]
    val_mae: float
    trials: list[dict[str, Any]]
    study: Any

    def regressor(self) -> ElemNetRegressor:
        """An unfitted ``ElemNetRegressor`` with the chosen recipe."""
        return ElemNetRegressor(**self.params)


def tune(X: np.ndarray, y: np.ndarray, n_trials: int = 20, timeout: float | None = None, seed: int = 0,
         prune: bool = True, **fixed: Any) -> TuneResult:
    """Search the learning rate, batch size and weight decay of an ``ElemNetRegressor`` on ``X`` (``n × 86``
    fractions) and ``y`` (``n``).

    ``fixed``: the other ``ElemNetRegressor`` settings (``source``, ``mode``, ``max_epochs``, ``patience``,
    ``val_fraction``, ``refit``, …), the same in every trial; ``seed`` seeds the sampler and every
    trial's network and validation rows. ``timeout`` (seconds) stops the search after the running trial.
    Trials are trained without ``refit``; fit ``result.regressor()`` to get the model (with ``refit`` if asked).
    """
    import optuna

    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"n_trials must be a whole number ≥ 1, got {n_trials!r}")
    if timeout is not None and not (isinstance(timeout, numbers.Real) and timeout > 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")
    if clash := sorted(set(fixed) & set(TUNED)):
        raise ValueError(f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} chosen by the search; "
                         f"leave {'it' if len(clash) == 1 else 'them'} out of the fixed settings")
    known = ElemNetRegressor().get_params()
    if unknown := sorted(set(fixed) - set(known)):
        raise ValueError(f"unknown ElemNetRegressor setting {unknown[0]!r}; settings: "
                         f"{', '.join(k for k in known if k not in TUNED)}")
    if fixed.get("patience", known["patience"]) is None:
        raise ValueError("tuning scores each trial by early stopping; patience=None gives it nothing to score")
    base = {**fixed, "seed": seed, "refit": False}
    epochs: dict[int, int] = {}  # per trial, how many it trained

    def objective(trial: optuna.Trial) -> float:
        params = {"lr": trial.suggest_float("lr", *LR_RANGE, log=True),
                  "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
                  "weight_decay": trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE, log=True)}
        best = [math.inf]

        def report(epoch: int, val: float, _best: float) -> None:
            best[0] = min(best[0], val)
            epochs[trial.number] = epoch
            if prune:
                trial.report(best[0], epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        with training_progress(report):
            model = ElemNetRegressor(**base, **params).fit(X, y)
        epochs[trial.number] = len(model.history_)
        return float(min(h["val_mae"] for h in model.history_))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10) if prune else optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=int(n_trials), timeout=timeout, catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError("no trial finished (every one was pruned or stopped by the timeout); raise timeout")
    trials = [{"number": t.number, "state": t.state.name.lower(), **t.params,
               "val_mae": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
               "epochs": epochs.get(t.number, 0)} for t in study.trials]
    chosen = study.best_trial
    params = {**fixed, "seed": seed, **chosen.params}
    return TuneResult(params=params, val_mae=float(chosen.value), trials=trials, study=study)
