"""The predictions the transfer-benchmark methods are made of: tree learners chosen on validation,
ElemNets trained per mode and seed (cached per network), their means, validation-weighted blends, and
the zero gate for targets with exact zeros.

Every function takes the split dict of ``bench_transfer.task_data`` (``X``, ``y`` and the ``fit`` / ``val`` /
``train`` / ``test`` row indices) and returns validation and test predictions, never a test-chosen value.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor, RandomForestRegressor

from aloop.elemnet.sources import load_source_model, weights_digest
from aloop.elemnet.transfer import FineTuneConfig, finetune, refit
from aloop.elemnet.zero_gate import check_zero_share, choose_threshold, gate, zero_classifier, zero_probability


def tree_learner(kind: str, seed: int = 0) -> ExtraTreesRegressor | RandomForestRegressor | HistGradientBoostingRegressor:
    """An unfitted tree learner: ``et`` (extra trees), ``rf`` (random forest) or ``hgb`` (histogram boosting)."""
    if kind == "hgb":  # minutes instead of hours on the 10k–28k-row JARVIS tasks with 1,024 features
        return HistGradientBoostingRegressor(max_iter=1000, learning_rate=0.1, early_stopping=True,
                                             validation_fraction=0.1, n_iter_no_change=20, random_state=seed)
    cls = ExtraTreesRegressor if kind == "et" else RandomForestRegressor
    return cls(n_estimators=200, max_features=0.33, min_samples_leaf=1, n_jobs=-1, random_state=seed)


def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute error of two equally long arrays."""
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def zero_probabilities(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """P(y = 0) of the validation and test rows from ``aloop``'s zero classifier (Magpie extra trees),
    fitted on the fit part for validation and on all of train for test, as the tree regressors are."""
    X, zero = d["X"], d["y"] == 0
    check_zero_share(d["y"][d["train"]], repr(d.get("target", "this target")))
    fitted = lambda rows: zero_classifier().fit(X[rows], zero[rows])  # noqa: E731
    return zero_probability(fitted(d["fit"]), X[d["val"]]), zero_probability(fitted(d["train"]), X[d["test"]])


def score(d: dict, config: str, pv: np.ndarray, pt: np.ndarray) -> dict:
    """Validation and test MAE of a method's predictions. With a zero gate (``d["p_zero"]``, from
    ``zero_probabilities``) a prediction becomes 0 where P(y = 0) exceeds a threshold chosen on validation."""
    yv, yt = d["y"][d["val"]], d["y"][d["test"]]
    if "p_zero" not in d:
        return {"val_mae": mae(pv, yv), "test_mae": mae(pt, yt), "config": config}
    qv, qt = d["p_zero"]
    t, val_mae = choose_threshold(qv, pv, yv)
    return {"val_mae": val_mae, "test_mae": mae(gate(pt, qt, t), yt),
            "config": f"{config}, zero gate {'off' if t is None else f'P(0) > {t:.2f}'}", "zero_gate": t}


def tree_predictions(F: np.ndarray, d: dict, label: str,
                     learners: tuple[str, ...] = ("et", "rf")) -> tuple[str, np.ndarray, np.ndarray]:
    """Pick the tree learner on validation; its validation predictions (fitted on the fit part) and
    test predictions (the winner refitted on all of train)."""
    y, best = d["y"], None
    for kind in learners:
        pv = tree_learner(kind).fit(F[d["fit"]], y[d["fit"]]).predict(F[d["val"]])
        if best is None or mae(pv, y[d["val"]]) < best[1]:
            best = (kind, mae(pv, y[d["val"]]), pv)
    kind, _, pv = best
    pt = tree_learner(kind).fit(F[d["train"]], y[d["train"]]).predict(F[d["test"]])
    return f"{label}+{kind}", pv, pt


def select_trees(F: np.ndarray, d: dict, label: str, learners: tuple[str, ...] = ("et", "rf")) -> dict:
    """Pick the tree learner (``et``, ``rf``, ``hgb``) on validation, refit the winner on all of train, score test."""
    return score(d, *tree_predictions(F, d, label, learners))


def _network_member(mode: str, d: dict, args: argparse.Namespace, seed: int) -> tuple[int, np.ndarray, np.ndarray]:
    """One network's epochs and validation / test predictions.

    Default: trained on the fit part and early-stopped on the carved validation part, which then
    also scores it (optimistic). With ``args.refit`` the network early-stops on its own 10% of the fit
    part (drawn with its seed), so the carved validation part scores it honestly, and the test
    predictions come from the same recipe refitted on all of train for the best epoch count.
    Kept in ``d["network_cache"]`` (when set) under the mode, source weights, seed and recipe, so
    the single-network, blend and ensemble methods train each network once.
    """
    X, y = d["X"], d["y"]
    path = None
    if d.get("network_cache"):
        weights = "scratch" if mode == "scratch" else weights_digest(args.source)[:16]
        carve_seed = d.get("carve_seed", 0)  # seed 0's networks keep their original file names
        key = (f"{mode}-{weights}-seed{seed}-b{args.batch_size}-lr{args.lr:g}-p{args.patience}-e{args.max_epochs}"
               f"{'-refit' if args.refit else ''}{f'-ema{args.ema_decay:g}' if args.ema_decay else ''}"
               f"{f'-carve{carve_seed}' if carve_seed else ''}")
        path = Path(d["network_cache"]) / f"{key}.npz"
        if path.exists():
            z = np.load(path)
            if np.array_equal(z["val_rows"], d["val"]) and np.array_equal(z["test_rows"], d["test"]):
                return int(z["epochs"]), z["val"], z["test"]
    src = None if mode == "scratch" else load_source_model(args.source)
    config = FineTuneConfig(mode=mode, lr=args.lr, batch_size=args.batch_size, max_epochs=args.max_epochs,
                            patience=args.patience, seed=seed, ema_decay=args.ema_decay)
    predict = lambda net, rows: net(torch.from_numpy(X[rows])).squeeze(1).numpy()  # noqa: E731
    if args.refit:
        net, hist = finetune(X[d["fit"]], y[d["fit"]], src, config)
        refitted, epochs = refit(X[d["train"]], y[d["train"]], src, config, hist)
        with torch.no_grad():
            pv, pt = predict(net, d["val"]), predict(refitted, d["test"])
    else:
        net, hist = finetune(X[d["fit"]], y[d["fit"]], src, config, validation=(X[d["val"]], y[d["val"]]))
        epochs = len(hist)
        with torch.no_grad():
            pv, pt = predict(net, d["val"]), predict(net, d["test"])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, epochs=epochs, val=pv, test=pt, val_rows=d["val"], test_rows=d["test"])
        tmp.replace(path)
    return epochs, pv, pt


def network_members(modes: tuple[str, ...], d: dict, args: argparse.Namespace,
                    seeds: tuple[int, ...] | range) -> list[tuple[str, int, tuple[int, np.ndarray, np.ndarray]]]:
    """``(mode, seed, (epochs, val, test))`` of each network, mode after mode with the same seeds each."""
    return [(mode, seed, _network_member(mode, d, args, seed)) for mode in modes for seed in seeds]


def network_predictions(modes: str | tuple[str, ...], d: dict, args: argparse.Namespace,
                        seeds: tuple[int, ...] = (0,)) -> tuple[str, np.ndarray, np.ndarray]:
    """ElemNets trained per mode and seed on the fit part (modes as in ``FineTuneConfig``), early-stopped
    as ``_network_member`` says; the mean of their validation and test predictions."""
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    return mean_of_networks(modes, args, [m for *_, m in network_members(modes, d, args, seeds)])


def mean_of_networks(modes: str | tuple[str, ...], args: argparse.Namespace,
                     members: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[str, np.ndarray, np.ndarray]:
    """Label and mean validation / test predictions of networks given as ``(epochs, val, test)``,
    trained in one mode or, mode after mode with the same seeds each, in several."""
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    recipe = "" if (args.batch_size, args.lr) == (32, 1e-4) else f", batch {args.batch_size}, lr {args.lr:g}"
    recipe += f", weight EMA {args.ema_decay:g}" if args.ema_decay else ""
    what = f"{' and '.join(modes)} from {args.source if modes != ('scratch',) else 'scratch'}"
    if len(modes) > 1:
        per_mode = len(members) // len(modes)
        what = f"mean of {len(members)} networks ({per_mode} seed{'s' if per_mode > 1 else ''} each) of {what}"
    elif len(members) > 1:
        what = f"mean of {len(members)} seeds of {what}"
    epochs = "/".join(str(m[0]) for m in members)
    epochs = f"refitted on train for {epochs} epochs" if args.refit else f"epochs {epochs}"
    return (f"{what}, {epochs}{recipe}", np.mean([m[1] for m in members], axis=0),
            np.mean([m[2] for m in members], axis=0))


def blend(d: dict, a: tuple[str, np.ndarray, np.ndarray], b: tuple[str, np.ndarray, np.ndarray]) -> dict:
    """``w·a + (1 − w)·b`` with ``w`` (steps of 0.05) chosen on the validation predictions (jointly with
    the zero gate's threshold, when there is one)."""
    yv, yt = d["y"][d["val"]], d["y"][d["test"]]
    best = None
    for w in np.linspace(0.0, 1.0, 21):
        r = score(d, f"{w:.2f} × ({a[0]}) + {1 - w:.2f} × ({b[0]})", w * a[1] + (1 - w) * b[1], w * a[2] + (1 - w) * b[2])
        if best is None or r["val_mae"] < best["val_mae"]:
            best = {**r, "weight": float(w)}
    return {**best, "components": {label: {"config": c, "val_mae": mae(pv, yv), "test_mae": mae(pt, yt)}
                                   for label, (c, pv, pt) in (("network", a), ("trees", b))}}
