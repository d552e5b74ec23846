"""Cross-property transfer learning with ElemNet (Gupta et al. 2021): fine-tuning modes as sklearn estimators."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from torch import nn

from aloop.chem.elements import N_ELEMENTS
from aloop.elemnet.model import HIDDEN_WIDTHS, ElemNet, he_init
from aloop.features.base import as_numeric_matrix, check_fractions
from aloop.training import check_seed, torch_threads, train_network

Mode = Literal["finetune", "modfinetune", "freezing", "scratch"]
MODES: tuple[str, ...] = ("finetune", "modfinetune", "freezing", "scratch")


@dataclass
class FineTuneConfig:
    """How a network is trained on the target data.

    ``finetune``: start from all source weights (output layer included) and train all;
    ``modfinetune``: source weights with a fresh output layer, train all;
    ``freezing``: source weights, hidden layers 1–15 frozen, train layer 16 + fresh output;
    ``scratch``: random initialisation (SC:DL(EF) in the paper).
    Early stopping on a random ``val_fraction`` of the training rows restores the best epoch;
    ``patience=None`` instead trains on every row for exactly ``max_epochs`` epochs and keeps the
    last weights (the refit for an epoch count that an early-stopped run found, see ``best_epoch``).
    ``ema_decay`` (per step, e.g. 0.998) validates and returns a moving average of the weights.
    ``threads``: torch threads while training (``None``: as set); the process's count is restored after.
    """

    mode: Mode = "modfinetune"
    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 400
    patience: int | None = 25
    val_fraction: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    threads: int | None = None
    loss: Literal["l1", "mse"] = "l1"
    ema_decay: float | None = None


def _check_xy(X: np.ndarray, y: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fractions (checked as the featurizers check them: amounts rescaled, negative, non-finite, text and
    all-zero rows refused) and ``y`` (``n`` or ``n × m``, finite) as float32 tensors."""
    X = as_numeric_matrix(X, "ElemNet input")
    if X.ndim != 2 or X.shape[1] != N_ELEMENTS:
        raise ValueError(f"ElemNet input must be an n × {N_ELEMENTS} fraction matrix, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("fraction matrix has NaN/inf entries")
    X = np.asarray(check_fractions(X, "ElemNet input"), dtype=np.float32)
    empty = np.flatnonzero(~X.any(axis=1))
    if empty.size:
        raise ValueError(f"ElemNet input: {empty.size} rows hold no element (all zero), e.g. rows {empty[:10].tolist()}; "
                         f"each row must be a composition (to_fraction_matrix(errors='collect') leaves such rows for "
                         f"formulas it could not parse: drop them)")
    if y is None:
        return torch.from_numpy(X), None
    y = np.asarray(y, dtype=np.float32)
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    if y.ndim != 2 or len(y) != len(X):
        raise ValueError(f"y must have one row per row of X ({len(X)}), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"y has {int((~np.isfinite(y)).sum())} NaN/inf values")
    return torch.from_numpy(X), torch.from_numpy(y)


def check_enough_rows(n_rows: int, holds_out: bool = True) -> None:
    """Refuse to train a network on too few rows: with early stopping on a held-out part of them, at least 10."""
    minimum = 10 if holds_out else 2
    if n_rows < minimum:
        detail = " (some are held out for early stopping)" if holds_out else ""
        raise ValueError(f"too few training rows: {n_rows}; at least {minimum} are needed{detail}")


def hold_out(n_rows: int, val_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``n_rows`` for early stopping: a seeded random ``val_fraction`` of them (at least one) held
    out, and the rest to train on; returns ``(val_idx, train_idx)``."""
    if isinstance(val_fraction, bool) or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction (the share of rows held out for early stopping) must lie strictly between "
                         f"0 and 1, got {val_fraction!r}")
    perm = torch.randperm(n_rows, generator=generator)
    n_val = max(1, int(round(val_fraction * n_rows)))
    if n_val >= n_rows:
        raise ValueError(f"val_fraction={val_fraction} holds out all {n_rows} rows for early stopping, leaving none "
                         f"to train on; give a smaller val_fraction")
    return perm[:n_val], perm[n_val:]


def finetune(
    X: np.ndarray, y: np.ndarray, source: ElemNet | None, config: FineTuneConfig | None = None,
    hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS, validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[ElemNet, list[dict]]:
    """Train an ElemNet on ``X`` (``n × 86`` fractions) and ``y`` (``n`` or ``n × m``) from ``source``.

    Early stopping watches ``validation = (X_val, y_val)`` when given, else a random
    ``config.val_fraction`` of the rows (which are then not trained on). With
    ``config.patience=None`` every row is trained on for ``config.max_epochs`` epochs
    (``validation``, if given, is only watched).
    Returns the best network (eval mode, ``n × m`` predictions in raw units) and the
    per-epoch history.
    ``source`` is copied, never modified; it must be ``None`` exactly for ``mode="scratch"``.
    """
    config = config or FineTuneConfig()
    if config.mode not in MODES:
        raise ValueError(f"unknown transfer mode {config.mode!r}; modes: {', '.join(MODES)}")
    if config.loss not in ("l1", "mse"):
        raise ValueError(f"loss must be 'l1' or 'mse', got {config.loss!r}")
    if (source is None) != (config.mode == "scratch"):
        raise ValueError(f"mode {config.mode!r} {'needs' if source is None else 'takes no'} source network")
    Xt, yt = _check_xy(X, y)
    check_enough_rows(len(Xt), holds_out=validation is None and config.patience is not None)
    gen = torch.Generator().manual_seed(check_seed(config.seed))
    with torch.random.fork_rng(devices=[]):  # a seeded initialisation that leaves the caller's random stream alone
        torch.manual_seed(config.seed)
        net = ElemNet(hidden_widths=source.hidden_widths if source is not None else hidden_widths)
        if source is not None:
            net.load_state_dict(source.state_dict())
        m = yt.shape[1]
        if config.mode == "finetune" and m != 1:
            raise ValueError(f"mode 'finetune' reuses the single-output source head; got {m} targets (use modfinetune)")
        if config.mode == "scratch":
            he_init(net)
        elif config.mode in ("modfinetune", "freezing"):
            net.output = nn.Linear(net.output.in_features, m)
        if config.mode == "freezing":
            for lin in net.hidden[:-1]:
                lin.requires_grad_(False)
    # "finetune" keeps the source output layer, so it trains in raw units; the others
    # train on the standardised target and fold the scaling back in at the end.
    if config.mode == "finetune":
        mean, std = torch.zeros(m), torch.ones(m)
    else:
        mean, std = yt.mean(0), yt.std(0) if len(yt) > 1 else torch.ones(m)
        std = torch.where(std > 0, std, torch.ones_like(std))
    ys = (yt - mean) / std
    if validation is not None:
        Xv, yv = _check_xy(*validation)
        tr_idx = torch.arange(len(Xt))
        Xt, ys = torch.cat([Xt, Xv]), torch.cat([ys, (yv - mean) / std])
        val_idx = torch.arange(len(tr_idx), len(Xt))
    elif config.patience is None:
        tr_idx, val_idx = torch.arange(len(Xt)), None
    else:
        val_idx, tr_idx = hold_out(len(Xt), config.val_fraction, gen)
    history: list[dict] = []
    loss = nn.functional.l1_loss if config.loss == "l1" else nn.functional.mse_loss
    with torch_threads(config.threads):
        train_network(
            net, Xt[tr_idx], ys[tr_idx], *((Xt[val_idx], ys[val_idx]) if val_idx is not None else (None, None)), loss,
            config.lr, config.batch_size, config.max_epochs, config.patience, config.weight_decay, config.seed, history,
            config.ema_decay,
        )
    for h in history:  # validation loss in raw units (exact for L1 with one target)
        h["val_mae" if config.loss == "l1" else "val_mse"] = h.pop("val_loss") * float(std.mean()) ** (
            1 if config.loss == "l1" else 2)
    with torch.no_grad():
        net.output.weight.mul_(std.unsqueeze(1))
        net.output.bias.mul_(std).add_(mean)
    net.requires_grad_(False)
    net.eval()
    return net, history


def best_epoch(history: list[dict]) -> int:
    """The epoch (1-based) whose validation loss an early-stopped ``finetune`` restored."""
    losses = [h.get("val_mae", h.get("val_mse")) for h in history]
    if not losses or any(v is None or not np.isfinite(v) for v in losses):
        raise ValueError("best_epoch needs the history of an early-stopped run (finite validation losses)")
    return int(np.argmin(losses)) + 1


def refit(X: np.ndarray, y: np.ndarray, source: ElemNet | None, config: FineTuneConfig, history: list[dict],
          hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS) -> tuple[ElemNet, int]:
    """Retrain ``config``'s recipe from ``source`` on every row for the best epoch of an early-stopped
    run's ``history``; returns the network and that epoch count."""
    epochs = best_epoch(history)
    net, _ = finetune(X, y, source, replace(config, max_epochs=epochs, patience=None), hidden_widths=hidden_widths)
    return net, epochs


class ElemNetRegressor(RegressorMixin, BaseEstimator):
    """A scikit-learn regressor that fine-tunes an ElemNet source model on ``n × 86`` fractions.

    Args:
        source: shipped source model name, or ``None`` for training from scratch.
        mode: one of ``finetune``, ``modfinetune``, ``freezing``, ``scratch``.
        refit: after early stopping on ``val_fraction`` of the rows, train again from the source
            on every row for the best epoch count, so no row is held out of the final network.
        lr, batch_size, weight_decay, max_epochs, patience, val_fraction, seed, ema_decay: as in
            ``FineTuneConfig`` (its ``loss`` and ``threads`` keep their defaults here);
            ``aloop.elemnet.tuning.tune`` chooses the first three on validation.
        hidden_widths: the architecture for ``mode='scratch'``.

    Example:
        >>> reg = ElemNetRegressor(source=None, mode="scratch", hidden_widths=(16, 8), max_epochs=2)
        >>> X = np.eye(86, dtype=np.float32)[:20]; y = np.arange(20.0)
        >>> reg.fit(X, y).predict(X).shape
        (20,)
    """

    def __init__(self, source: str | None = "oqmd-formation-enthalpy", mode: Mode = "modfinetune", lr: float = 1e-4,
                 batch_size: int = 32, max_epochs: int = 400, patience: int | None = 25, val_fraction: float = 0.1,
                 seed: int = 0, hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS, refit: bool = False,
                 ema_decay: float | None = None, weight_decay: float = 0.0) -> None:
        self.source = source
        self.mode = mode
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.hidden_widths = hidden_widths
        self.refit = refit
        self.ema_decay = ema_decay
        self.weight_decay = weight_decay

    def fit(self, X: np.ndarray, y: np.ndarray) -> ElemNetRegressor:
        from aloop.elemnet.sources import load_source_model

        if self.refit and self.patience is None:
            raise ValueError("refit=True needs early stopping to find the epoch count (patience=None given)")
        src = None if self.source is None or self.mode == "scratch" else load_source_model(self.source)
        if src is not None and tuple(self.hidden_widths) not in (HIDDEN_WIDTHS, src.hidden_widths):
            raise ValueError(f"hidden_widths is for mode='scratch'; mode {self.mode!r} keeps the source model's "
                             f"architecture {src.hidden_widths}, so leave hidden_widths at its default")
        config = FineTuneConfig(mode=self.mode, lr=self.lr, batch_size=self.batch_size, max_epochs=self.max_epochs,
                                patience=self.patience, val_fraction=self.val_fraction, seed=self.seed,
                                ema_decay=self.ema_decay, weight_decay=self.weight_decay)
        self.network_, self.history_ = finetune(X, y, src, config, hidden_widths=self.hidden_widths)
        if self.refit:
            self.network_, self.best_epoch_ = refit(X, y, src, config, self.history_, self.hidden_widths)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "network_"):
            raise NotFittedError("ElemNetRegressor is not fitted; call fit(X, y) first")
        Xt, _ = _check_xy(X)
        if len(Xt) == 0:
            return np.zeros(0, dtype=np.float32)
        with torch.inference_mode():
            return torch.cat([self.network_(Xt[i : i + 32768]).squeeze(1) for i in range(0, len(Xt), 32768)]).numpy()


#: Every way of building a model on a small target dataset (Gupta et al. 2021 naming).
STRATEGIES: tuple[str, ...] = ("base", "sc-ef", "sc-magpie", "featextr", *MODES, "moe")


def make_regressor(strategy: str, source: str | None = None, layer: int | None = None,
                   trees: str | None = None, seed: int = 0, **options: object) -> BaseEstimator:
    """A scikit-learn regressor on ``n × 86`` fraction matrices for one transfer strategy.

    ``base``: the training mean; ``sc-ef`` / ``sc-magpie``: trees on elemental fractions /
    Magpie (SC:ML); ``featextr``: trees on ElemNet layer-``layer`` activations of ``source``
    (TL:ML(FeatExtr)); ``finetune`` / ``modfinetune`` / ``freezing`` / ``scratch``: an
    ``ElemNetRegressor``; ``moe``: a ``MoERegressor`` over the default experts (``sources.moe_experts``;
    ``sources=(...)`` among the options names others), ``layer`` being its experts' layer.
    ``source`` defaults to ``oqmd-formation-enthalpy``, ``layer`` to 2 (16 for ``moe``), ``trees`` to ``"et"``
    (extra trees; ``"rf"``: a random forest). A setting the strategy does not use is refused, not ignored.
    """
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
    from sklearn.pipeline import make_pipeline

    from aloop.features import get_featurizer
    from aloop.features.base import FeaturizerTransformer

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
    users = {"source": ("featextr", "finetune", "modfinetune", "freezing"), "layer": ("featextr", "moe"),
             "trees": ("sc-ef", "sc-magpie", "featextr")}
    for name, value in (("source", source), ("layer", layer), ("trees", trees)):
        if value is not None and strategy not in users[name]:
            hint = "; a mixture names its experts with sources=(...)" if (strategy, name) == ("moe", "source") else ""
            raise ValueError(f"{name}={value!r} applies to the strategies {', '.join(users[name])}, not {strategy!r}{hint}")
    source = source or "oqmd-formation-enthalpy"
    trees = trees or "et"
    if trees not in ("et", "rf"):
        raise ValueError(f"trees must be 'et' (extra trees) or 'rf' (random forest), got {trees!r}")
    if options and strategy in ("base", "sc-ef", "sc-magpie", "featextr"):
        raise ValueError(f"strategy {strategy!r} takes no training options, got {', '.join(sorted(options))}; "
                         f"they are for {', '.join((*MODES, 'moe'))}")
    forest = (ExtraTreesRegressor if trees == "et" else RandomForestRegressor)(
        n_estimators=200, max_features=0.33, n_jobs=-1, random_state=seed)
    if strategy == "base":
        return DummyRegressor()
    if strategy in ("sc-ef", "sc-magpie", "featextr"):
        feat = {"sc-ef": lambda: get_featurizer("ef"), "sc-magpie": lambda: get_featurizer("magpie"),
                "featextr": lambda: get_featurizer("elemnet", source=source, layer=2 if layer is None else layer)}[strategy]()
        return make_pipeline(FeaturizerTransformer(feat), forest)
    if strategy == "moe":
        from aloop.elemnet.moe import MoERegressor

        return MoERegressor(seed=seed, **({} if layer is None else {"layer": layer}), **options)  # type: ignore[arg-type]
    return ElemNetRegressor(source=None if strategy == "scratch" else source, mode=strategy, seed=seed,
                            **options)  # type: ignore[arg-type]
