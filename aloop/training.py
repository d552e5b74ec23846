"""Early-stopped mini-batch training of torch networks (shared by fine-tuning, MoE and deep ensembles)."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block on ``n`` torch threads (``None`` or 0: as set), restoring the process's count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Called after every epoch of every network trained inside :func:`training_progress`.
_EPOCH_REPORT: ContextVar[Callable[[int, float, float], None] | None] = ContextVar("epoch_report", default=None)


@contextmanager
def training_progress(report: Callable[[int, float, float], None]) -> Iterator[None]:
    """Call ``report(epoch, validation loss, best so far)`` after each epoch of every network trained in the
    block (fine-tuning, MoE, deep ensembles): for a progress display, as `aloop transfer` shows one.
    Inside another such block, both are called (this one first): a search's pruning and a display."""
    outer = _EPOCH_REPORT.get()

    def both(epoch: int, val: float, best: float) -> None:
        report(epoch, val, best)
        if outer is not None:
            outer(epoch, val, best)

    token = _EPOCH_REPORT.set(both if outer is not None else report)
    try:
        yield
    finally:
        _EPOCH_REPORT.reset(token)


def check_seed(seed: object) -> int:
    """``seed`` as an ``int`` (a whole number ≥ 0, numpy integers too), else a ``ValueError`` that says so."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number ≥ 0 (it seeds the initial weights and the batch order), "
                         f"got {seed!r}")
    return int(seed)


def train_network(
    net: nn.Module,
    X_tr: Tensor,
    y_tr: Tensor,
    X_val: Tensor | None,
    y_val: Tensor | None,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int | None,
    weight_decay: float = 0.0,
    seed: int = 0,
    history: list[dict] | None = None,
    ema_decay: float | None = None,
) -> float:
    """Adam with early stopping on the validation loss; restores the best weights and returns that loss.

    Only parameters that require gradients are optimised. ``X_tr``: ``n × d`` inputs (or any
    tensor ``net`` accepts row-indexed), ``y_tr``: targets shaped like ``net``'s output.
    Per-epoch validation losses are appended to ``history`` when given.
    ``patience=None`` trains exactly ``max_epochs`` epochs and keeps the last weights (a refit for
    an epoch count found earlier); the validation set is then optional and only watched, and the
    last epoch's validation loss (NaN without one) is returned.
    ``ema_decay`` (per optimiser step, e.g. 0.998): validate and keep an exponential moving
    average of the weights instead of the raw ones, which smooths the epoch-to-epoch noise of
    small-batch training (what early stopping sees and what is returned).
    """
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie strictly between 0 and 1, got {ema_decay}")
    for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be ≥ 1 (a whole number), got {value!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1):
        raise ValueError(f"patience must be ≥ 1 epoch or None (no early stopping), got {patience!r}")
    if not lr > 0:
        raise ValueError(f"lr (the learning rate) must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be ≥ 0, got {weight_decay!r}")
    if X_val is None and patience is not None:
        raise ValueError("early stopping (patience set) needs a validation set")
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) if ema_decay is not None else None
    model = ema.module if ema is not None else net  # the weights that are validated and kept
    best, best_state, waited = float("inf"), copy.deepcopy(net.state_dict()), 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        for idx in torch.randperm(len(X_tr), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X_tr[idx]), y_tr[idx]).backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
        net.eval()
        model.eval()
        if X_val is None:
            val = float("nan")
        else:
            with torch.no_grad():
                val = float(loss_fn(model(X_val), y_val))
        if history is not None:
            history.append({"epoch": epoch, "val_loss": val})
        if (report := _EPOCH_REPORT.get()) is not None:
            report(epoch, val, min(best, val) if patience is not None else val)
        if patience is None:
            best = val
            continue
        if val < best - 1e-7:
            best, best_state, waited = val, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if not math.isfinite(best) and X_val is not None:  # NaN never beats inf: the weights would be the untrained ones
        raise ValueError(f"training diverged: the validation loss was {best} (NaN or infinite) "
                         f"{'in every epoch' if patience is not None else 'at the end'}; lower the learning rate "
                         f"(lr={lr:g})")
    if patience is not None:
        net.load_state_dict(best_state)
    elif ema is not None:
        net.load_state_dict(ema.module.state_dict())
    net.eval()
    return best
