"""Early-stopped training refuses settings that would train nothing or fail inside torch, for every model using it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aloop.elemnet.model import ElemNet
from aloop.elemnet.moe import MoERegressor
from aloop.elemnet.transfer import ElemNetRegressor
from aloop.training import train_network


@pytest.mark.parametrize(("option", "value", "message"), [
    ("batch_size", 0, r"batch_size must be ≥ 1 \(a whole number\), got 0"),
    ("max_epochs", 0, r"max_epochs must be ≥ 1 \(a whole number\), got 0"),
    ("max_epochs", 2.5, r"max_epochs must be ≥ 1 \(a whole number\), got 2.5"),
    ("patience", 0, r"patience must be ≥ 1 epoch or None \(no early stopping\), got 0"),
    ("lr", 0.0, r"lr \(the learning rate\) must be > 0, got 0.0"),
    ("weight_decay", -1e-3, r"weight_decay must be ≥ 0, got -0.001"),
    ("seed", None, r"seed must be a whole number ≥ 0 \(it seeds the initial weights and the batch order\), got None"),
])
def test_bad_settings_are_refused_by_each_model(band_gap, option: str, value: object, message: str) -> None:
    X, y = band_gap
    torch.manual_seed(0)
    experts = [ElemNet(hidden_widths=(16, 8))]
    models = [ElemNetRegressor(source=None, mode="scratch", hidden_widths=(16, 8), max_epochs=2, patience=2),
              MoERegressor(experts=experts, layer=2, max_epochs=2, patience=2, guard=False)]
    for model in models:  # MoERegressor trained nothing for max_epochs=0 and reported an infinite validation MAE
        with pytest.raises(ValueError, match=message):
            model.set_params(**{option: value}).fit(X, y)
    if option == "seed":
        return  # train_network takes a generator seed from its callers, which check it
    Xt, yt = torch.from_numpy(X[:20]), torch.from_numpy(np.asarray(y[:20, None], dtype=np.float32))
    settings = {"lr": 1e-3, "batch_size": 8, "max_epochs": 2, "patience": 2, option: value}
    with pytest.raises(ValueError, match=message):
        train_network(ElemNet(hidden_widths=(16, 8)), Xt, yt, Xt, yt, torch.nn.functional.l1_loss, **settings)


def test_training_progress_reports_every_epoch_inside_the_block_only() -> None:
    from aloop.training import training_progress

    torch.manual_seed(0)
    X, y = torch.randn(40, 3), torch.randn(40, 1)
    seen: list[tuple[int, float, float]] = []

    def train(patience: int | None) -> float:
        net = torch.nn.Linear(3, 1)
        return train_network(net, X[:30], y[:30], X[30:], y[30:], torch.nn.functional.l1_loss, lr=1e-2,
                             batch_size=8, max_epochs=6, patience=patience)

    with training_progress(lambda epoch, val, best: seen.append((epoch, val, best))):
        best = train(patience=6)
    assert [e for e, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert all(b <= v + 1e-12 for _, v, b in seen) and seen[-1][2] == pytest.approx(best)
    assert [b for _, _, b in seen] == sorted((b for _, _, b in seen), reverse=True)  # best never rises
    train(patience=None)  # outside the block: nothing reported
    assert len(seen) == 6


def test_nested_progress_blocks_both_hear_every_epoch() -> None:
    """A tuning search's pruning (inner) and `aloop transfer`'s display (outer) both see each epoch."""
    from aloop.training import training_progress

    torch.manual_seed(0)
    X, y = torch.randn(40, 3), torch.randn(40, 1)
    outer: list[int] = []
    inner: list[int] = []
    with training_progress(lambda epoch, val, best: outer.append(epoch)):
        with training_progress(lambda epoch, val, best: inner.append(epoch)):
            train_network(torch.nn.Linear(3, 1), X[:30], y[:30], X[30:], y[30:], torch.nn.functional.l1_loss,
                          lr=1e-2, batch_size=8, max_epochs=3, patience=None)
        train_network(torch.nn.Linear(3, 1), X[:30], y[:30], X[30:], y[30:], torch.nn.functional.l1_loss,
                      lr=1e-2, batch_size=8, max_epochs=2, patience=None)
    assert inner == [1, 2, 3] and outer == [1, 2, 3, 1, 2]


def test_a_diverged_run_is_an_error_not_the_untrained_network() -> None:
    """NaN/inf validation losses never beat the starting point, so the initial weights would come back silently."""
    torch.manual_seed(0)
    X, y = torch.randn(40, 3), torch.randn(40, 1)
    with pytest.raises(ValueError, match=r"training diverged: .* in every epoch; lower the learning rate \(lr=1e\+20\)"):
        train_network(torch.nn.Linear(3, 1), X[:30], y[:30], X[30:], y[30:], torch.nn.functional.mse_loss, lr=1e20,
                      batch_size=8, max_epochs=3, patience=2)


def test_a_mixture_names_a_bad_head_or_an_empty_source_list(band_gap) -> None:
    X, y = band_gap
    with pytest.raises(ValueError, match=r"head_hidden \(units of the property head's hidden layer\) must be a whole "
                                         r"number ≥ 1, got -1"):
        MoERegressor(experts=[ElemNet(hidden_widths=(16, 8))], layer=2, head_hidden=-1).fit(X, y)
    with pytest.raises(ValueError, match="sources is empty: a mixture needs at least one source model"):
        MoERegressor(sources=()).fit(X, y)
