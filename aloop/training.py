"""Early-stopped mini-batch training of torch networks (shared by fine-tuning, MoE and deep ensembles)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn


def train_network(
    net: nn.Module,
    X_tr: Tensor,
    y_tr: Tensor,
    X_val: Tensor,
    y_val: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    weight_decay: float = 0.0,
    seed: int = 0,
    history: list[dict] | None = None,
) -> float:
    """Adam with early stopping on the validation loss; restores the best weights and returns that loss.

    Only parameters that require gradients are optimised. ``X_tr``: ``n × d`` inputs (or any
    tensor ``net`` accepts row-indexed), ``y_tr``: targets shaped like ``net``'s output.
    Per-epoch validation losses are appended to ``history`` when given.
    """
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, waited = float("inf"), copy.deepcopy(net.state_dict()), 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        for idx in torch.randperm(len(X_tr), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss_fn(net(X_tr[idx]), y_tr[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val = float(loss_fn(net(X_val), y_val))
        if history is not None:
            history.append({"epoch": epoch, "val_loss": val})
        if val < best - 1e-7:
            best, best_state, waited = val, copy.deepcopy(net.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    net.eval()
    return best
