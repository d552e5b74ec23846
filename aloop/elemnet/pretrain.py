"""Resumable CPU pre-training of ElemNet source models on a registry dataset's published split.

A run directory holds ``checkpoint.pt`` (everything a resumed run needs: weights, optimizer,
schedule, the shuffling and dropout random states, the per-epoch history), ``best.pt``,
``log.jsonl`` (the checkpoint's history, one line per epoch, rewritten from the checkpoint so
the two agree even after a crash between the writes), and at the end ``final.pt`` and
``summary.json``. A resumed run continues exactly as an uninterrupted one would (bit for bit
with the same thread count).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from aloop.chem import keys_from_matrix, to_fraction_matrix
from aloop.datasets import get_spec, load
from aloop.elemnet.model import ElemNet, dead_unit_fractions, he_init
from aloop.elemnet.sources import load_source_model, weights_digest
from aloop.training import torch_threads


@dataclass
class PretrainConfig:
    """A pre-training recipe. The defaults are the CPU recipe the shipped source models use.

    Large batches with a one-cycle schedule make CPU training affordable; a moderate peak
    learning rate, He initialisation and L1 loss on the standardised target keep most
    ReLU units alive (dead units carry nothing to transfer).
    """

    dataset: str = "oqmd-formation-enthalpy"
    exclude: tuple[str, ...] = ()  # registry datasets whose compositions are removed from train/val
    batch_size: int = 1024
    max_epochs: int = 50
    peak_lr: float = 6e-4
    weight_decay: float = 1e-5
    pct_start: float = 0.15
    patience: int = 12
    dropout: bool = False
    seed: int = 0
    threads: int = 2
    dead_sample: int = 20000
    limit_rows: int | None = None  # for tests: use only the first rows of each split
    # Chained transfer: start from this shipped source model's hidden layers (a fresh output
    # layer) instead of He initialisation, e.g. OQMD formation enthalpy -> JARVIS MBJ band gap.
    init_source: str | None = None
    val_fraction: float = 0.1  # carved from train (seeded) when the dataset publishes train/test only


class RunDirectoryError(ValueError):
    """A run directory whose files cannot be resumed from (missing, truncated or not written by ``pretrain``)."""


class RecipeMismatchError(ValueError):
    """A run directory's checkpoint was written with another recipe; ``differences`` holds
    ``(field, checkpoint's value, this config's value)`` for every field that differs."""

    def __init__(self, path: Path, differences: list[tuple[str, Any, Any]]) -> None:
        self.path, self.differences = path, differences
        said = "; ".join(f"{k} {old!r} there, {new!r} now" for k, old, new in differences)
        super().__init__(f"{path} was written with a different recipe ({said}); resume with the checkpoint's "
                         "values or use a new run directory")


@dataclass
class PretrainState:
    """Everything a resumed run needs besides the tensors."""

    epoch: int = 0
    best_val_mae: float = math.inf
    best_epoch: int = -1
    epochs_since_best: int = 0
    history: list[dict] = field(default_factory=list)
    schedule_changes: list[dict] = field(default_factory=list)


def excluded_keys(names: tuple[str, ...]) -> set[str]:
    """Composition keys of every parseable row of the named registry datasets."""
    keys: set[str] = set()
    for name in names:
        try:
            frame = load(name)
        except KeyError as exc:  # an unknown name: say which setting holds it
            raise ValueError(f"exclude: {exc.args[0]}") from None
        X, _ = to_fraction_matrix(list(frame["formula"]), errors="collect")
        keys.update(keys_from_matrix(X))
    keys.discard("")  # unparseable rows are all-zero
    return keys


def _prepare(config: PretrainConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    frame = load(config.dataset)
    target = next(iter(get_spec(config.dataset).targets))
    splits = set(frame["split"]) if "split" in frame else set()
    if not {"train", "test"} <= splits:
        raise ValueError(
            f"pre-training needs a published train/test (or train/val/test) split; dataset {config.dataset!r} has "
            f"{sorted(splits) or 'no split'}"
        )
    if "val" not in splits:  # carve the validation part from train with the run's seed
        if not 0.0 < config.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {config.val_fraction}")
        train = np.flatnonzero((frame["split"] == "train").to_numpy())
        val = np.random.default_rng(config.seed).permutation(train)[: max(1, round(config.val_fraction * len(train)))]
        frame = frame.assign(split=frame["split"].to_numpy().copy())
        frame.iloc[val, frame.columns.get_loc("split")] = "val"
    drop = excluded_keys(config.exclude) if config.exclude else set()
    out = {}
    for split in ("train", "val", "test"):
        part = frame[frame["split"] == split]
        if config.limit_rows:
            part = part.iloc[: config.limit_rows]
        X, bad = to_fraction_matrix(list(part["formula"]), errors="collect")
        keep = np.ones(len(X), dtype=bool)
        keep[[b.index for b in bad]] = False
        if drop and split != "test":  # the published test set stays whole, so test MAE stays comparable
            keep &= np.array([k not in drop for k in keys_from_matrix(X)])
        out[split] = (X[keep], part[target].to_numpy(dtype=np.float32)[keep])
        if split != "test" and not keep.any():
            removed = f" after excluding the compositions of {', '.join(config.exclude)}" if config.exclude else ""
            raise ValueError(f"no {'training' if split == 'train' else 'validation'} rows of {config.dataset} "
                             f"are left{removed}; nothing to train on")
    return out


def _schedule_at(
    opt: torch.optim.Optimizer, config: PretrainConfig, steps_per_epoch: int, step: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """The one-cycle schedule of ``config`` advanced to ``step`` (learning rates set accordingly)."""
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.peak_lr, total_steps=config.max_epochs * steps_per_epoch, pct_start=config.pct_start
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping the schedule without optimizer steps is intended here
        for _ in range(step):
            sched.step()
    return sched


def _recipe(config: dict) -> dict:
    """The parts of a config that must match to resume.

    ``threads`` may change between sessions; ``max_epochs`` may change too (the learning-rate
    schedule is rebuilt for the new length at the current step, and the change is recorded).
    """
    return {k: v for k, v in config.items() if k not in ("threads", "max_epochs")}


def recipe_differences(checkpoint_config: dict, config: PretrainConfig) -> list[tuple[str, Any, Any]]:
    """``(field, checkpoint's value, config's value)`` for each recipe field (``_recipe``) that differs."""
    old, new = _recipe(checkpoint_config), _recipe(asdict(config))
    return [(k, old.get(k), new.get(k)) for k in dict.fromkeys([*new, *old]) if old.get(k) != new.get(k)]


def _check_same_recipe(ckpt: dict, config: PretrainConfig, ckpt_path: Path) -> None:
    """Raise ``RecipeMismatchError`` (naming the fields) or ``ValueError`` unless ``config`` may resume ``ckpt``."""
    differences = recipe_differences(ckpt["config"], config)
    if differences:
        raise RecipeMismatchError(ckpt_path, differences)
    if ckpt.get("init_source_sha256") != (weights_digest(config.init_source) if config.init_source else None):
        raise ValueError(f"{ckpt_path} started from other weights of {config.init_source!r} than the shipped ones; "
                         "use a new run directory")


def check_resume(config: PretrainConfig, run_dir: str | Path) -> bool:
    """Whether ``pretrain(config, run_dir)`` resumes a checkpoint (``False``: it starts afresh).

    Raises what ``pretrain`` would before training: ``RecipeMismatchError`` (every differing field
    with both values), ``RunDirectoryError`` for an unreadable checkpoint, ``ValueError`` for
    other initial weights.
    """
    ckpt_path = Path(run_dir) / "checkpoint.pt"
    if not ckpt_path.exists():
        return False
    ckpt = _read(ckpt_path, ("config", "state"))
    _check_same_recipe(ckpt, config, ckpt_path)
    _check_extension(ckpt, config, ckpt_path)
    return True


def _check_extension(ckpt: dict, config: PretrainConfig, ckpt_path: Path) -> None:
    """Raise ``ValueError`` when ``config``'s epoch limit differs from the checkpoint's and cannot extend its run."""
    if ckpt["config"]["max_epochs"] == config.max_epochs:
        return
    try:
        state = PretrainState(**ckpt["state"])
    except TypeError as exc:
        raise RunDirectoryError(f"{ckpt_path} holds no run state aloop can read ({exc}); restore it from a backup, "
                                f"or delete the run directory {ckpt_path.parent} to start again") from None
    if state.epoch >= config.max_epochs:
        raise ValueError(f"{ckpt_path} has already run {state.epoch} epochs; to continue it, the epoch limit "
                         f"(max_epochs, `aloop pretrain --epochs`) must exceed {state.epoch}; to resume it as it "
                         f"was, give its own {ckpt['config']['max_epochs']}")
    if state.epochs_since_best >= config.patience:
        raise ValueError(
            f"{ckpt_path}: the run early-stopped at epoch {state.epoch} (no better validation MAE since epoch "
            f"{state.best_epoch}, patience {config.patience}); a larger epoch limit does not restart it. "
            f"Its results are in {ckpt_path.parent}; to train longer, use a new run directory")


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_log(run_dir: Path, history: list[dict]) -> None:
    """Rewrite ``log.jsonl`` (atomically) from a checkpoint's history, one JSON line per epoch."""
    tmp = run_dir / "log.jsonl.tmp"
    tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    os.replace(tmp, run_dir / "log.jsonl")


def _read(path: Path, keys: tuple[str, ...]) -> dict:
    """Load a file ``pretrain`` wrote into its run directory, or raise a ``RunDirectoryError`` saying what to do."""
    advice = f"restore {path.name} from a backup, or delete the run directory {path.parent} to start again"
    if not path.is_file():
        raise RunDirectoryError(f"{path} is missing; {advice}")
    try:
        obj = torch.load(path, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file (EOFError, RuntimeError, KeyError, ...)
        raise RunDirectoryError(f"{path} cannot be read (truncated or not written by aloop pretrain: "
                                f"{type(exc).__name__}); {advice}") from None
    missing = [k for k in keys if k not in obj] if isinstance(obj, dict) else list(keys)
    if missing:
        raise RunDirectoryError(f"{path} is not a pre-training file (it lacks {', '.join(missing)}); {advice}")
    return obj


@torch.no_grad()
def _mae(net: ElemNet, X: torch.Tensor, y: torch.Tensor, mean: float, std: float) -> float:
    net.eval()
    pred = torch.cat([net(X[i : i + 16384]).squeeze(1) for i in range(0, len(X), 16384)])
    net.train()
    return float((pred * std + mean - y).abs().mean())


def check_config(config: PretrainConfig) -> None:
    """Refuse settings a run cannot use (torch's or Python's errors otherwise), with the bounds ``aloop pretrain`` has."""
    for name in ("seed", "batch_size", "max_epochs", "patience", "threads", "dead_sample", "limit_rows"):
        value, low = getattr(config, name), 0 if name == "seed" else 1
        if name == "limit_rows" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            kind = "non-negative" if low == 0 else "positive"
            raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    if not config.peak_lr >= 0:
        raise ValueError(f"peak_lr must be ≥ 0, got {config.peak_lr!r}")
    if isinstance(config.exclude, str):
        raise TypeError(f"exclude must be a list of dataset names, got one string {config.exclude!r}; wrap it in a list")


def pretrain(config: PretrainConfig, run_dir: str | Path, progress: bool = True) -> dict:
    """Train (or resume) an ElemNet on ``config.dataset``; checkpoints each epoch in ``run_dir``.

    Returns a summary with the best validation MAE, the test MAE of the best epoch and the
    dead-unit fraction per hidden layer. The best network (target de-standardised into its
    output layer) is saved as ``run_dir/best.pt``.

    Raises:
        RunDirectoryError: ``run_dir``'s checkpoint or best network cannot be loaded (nothing is changed).
        RecipeMismatchError: a recipe other than the checkpoint's (a ``ValueError``, naming the fields).
        ValueError: other initial weights, an epoch limit the run cannot be extended to, no rows left to train on.
    """
    check_config(config)
    with torch_threads(config.threads):  # the process's own thread count is restored afterwards
        return _pretrain(config, Path(run_dir), progress)


def _pretrain(config: PretrainConfig, run_dir: Path, progress: bool) -> dict:
    """:func:`pretrain` after its checks, on ``config.threads`` torch threads."""
    ckpt_path = run_dir / "checkpoint.pt"
    data = _prepare(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    Xtr, ytr = (torch.from_numpy(a) for a in data["train"])
    Xva, yva = (torch.from_numpy(a) for a in data["val"])
    Xte, yte = (torch.from_numpy(a) for a in data["test"])
    mean, std = float(ytr.mean()), float(ytr.std())
    net = ElemNet(dropout=config.dropout)
    torch.manual_seed(config.seed)
    he_init(net)
    init_sha = weights_digest(config.init_source) if config.init_source else None
    if config.init_source:
        _init_from_source(net, config.init_source)
    steps_per_epoch = math.ceil(len(Xtr) / config.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=config.peak_lr, weight_decay=config.weight_decay)
    sched = _schedule_at(opt, config, steps_per_epoch, 0)
    state = PretrainState()
    gen = torch.Generator().manual_seed(config.seed)
    if ckpt_path.exists():
        ckpt = _read(ckpt_path, ("config", "model", "optimizer", "scheduler", "generator", "state"))
        _check_same_recipe(ckpt, config, ckpt_path)
        _check_extension(ckpt, config, ckpt_path)
        try:
            net.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            gen.set_state(ckpt["generator"])
            state = PretrainState(**ckpt["state"])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            raise RunDirectoryError(f"{ckpt_path} does not fit this run's network ({exc}); restore it from a backup, "
                                    f"or delete the run directory {run_dir} to start again") from None
        if ckpt["config"]["max_epochs"] == config.max_epochs:
            sched.load_state_dict(ckpt["scheduler"])
        else:
            sched = _schedule_at(opt, config, steps_per_epoch, state.epoch * steps_per_epoch)
            state.schedule_changes.append(
                {"at_epoch": state.epoch, "max_epochs_from": ckpt["config"]["max_epochs"], "max_epochs_to": config.max_epochs}
            )
        if state.best_epoch > 0:
            _read(run_dir / "best.pt", ("model", "mean", "std"))  # fail now rather than after training
        if "torch_rng" in ckpt:  # dropout draws from the global generator
            torch.set_rng_state(ckpt["torch_rng"])
        elif config.dropout and state.epoch < config.max_epochs and state.epochs_since_best < config.patience:
            warnings.warn(f"{ckpt_path} predates saving the dropout random state: the resumed epochs draw other "
                          "dropout masks than an uninterrupted run would", stacklevel=2)
        _write_log(run_dir, state.history)  # a crash may have come between the checkpoint and the log
    dead_idx = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(1))[: config.dead_sample]
    ytr_std = (ytr - mean) / std
    bar = tqdm(total=config.max_epochs, initial=state.epoch, desc=f"pretrain {config.dataset}", disable=not progress)
    while state.epoch < config.max_epochs and state.epochs_since_best < config.patience:
        t0 = time.time()
        perm = torch.randperm(len(Xtr), generator=gen)
        total, count = 0.0, 0
        net.train()
        for start in range(0, len(Xtr), config.batch_size):
            idx = perm[start : start + config.batch_size]
            loss = (net(Xtr[idx]).squeeze(1) - ytr_std[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        val_mae = _mae(net, Xva, yva, mean, std)
        dead = dead_unit_fractions(net, Xtr[dead_idx])
        state.epoch += 1
        state.history.append({
            "epoch": state.epoch, "train_mae": total / count * std, "val_mae": val_mae,
            "lr": sched.get_last_lr()[0], "seconds": time.time() - t0, "dead_mean": float(np.mean(dead)),
        })
        if val_mae < state.best_val_mae:
            state.best_val_mae, state.best_epoch, state.epochs_since_best = val_mae, state.epoch, 0
            _atomic_save({"model": net.state_dict(), "mean": mean, "std": std}, run_dir / "best.pt")
        else:
            state.epochs_since_best += 1
        _atomic_save({
            "config": asdict(config), "model": net.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "state": asdict(state), "init_source_sha256": init_sha,
        }, ckpt_path)
        _write_log(run_dir, state.history)
        bar.update(1)
        bar.set_postfix(train_mae=f"{state.history[-1]['train_mae']:.4f}", val_mae=f"{val_mae:.4f}",
                        dead=f"{state.history[-1]['dead_mean']:.2f}")
    bar.close()
    best = _read(run_dir / "best.pt", ("model", "mean", "std"))
    net.load_state_dict(best["model"])
    fold_standardisation(net, best["mean"], best["std"])
    net.eval()
    summary = {
        "config": asdict(config),
        "n_train": len(Xtr), "n_val": len(Xva), "n_test": len(Xte),
        "epochs_run": state.epoch, "best_epoch": state.best_epoch, "schedule_changes": state.schedule_changes,
        "init_source_sha256": init_sha,
        "val_mae": _mae(net, Xva, yva, 0.0, 1.0), "test_mae": _mae(net, Xte, yte, 0.0, 1.0),
        "dead_unit_fraction": dead_unit_fractions(net, Xtr[dead_idx]),
        "history": state.history,
    }
    _atomic_save({"model": net.state_dict()}, run_dir / "final.pt")
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, run_dir / "summary.json")
    return summary


@torch.no_grad()
def _init_from_source(net: ElemNet, source: str) -> None:
    """Copy a shipped source model's hidden layers into ``net``; its output layer stays freshly initialised
    (the source's is folded to another property's units)."""
    src = load_source_model(source)
    if src.hidden_widths != net.hidden_widths:
        raise ValueError(f"source {source!r} has hidden widths {src.hidden_widths}, this run {net.hidden_widths}")
    net.hidden.load_state_dict(src.hidden.state_dict())


@torch.no_grad()
def fold_standardisation(net: ElemNet, mean: float, std: float) -> None:
    """Fold ``y = std · f(x) + mean`` into the output layer so the network predicts raw units."""
    net.output.weight.mul_(std)
    net.output.bias.mul_(std).add_(mean)
