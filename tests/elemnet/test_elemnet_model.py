"""ElemNet architecture, pre-training (resumable), source-model export/loading."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aloop.elemnet.model import DROPOUT_AFTER, HIDDEN_WIDTHS, ElemNet, dead_unit_fractions
from aloop.elemnet.pretrain import PretrainConfig, pretrain
from aloop.elemnet.sources import (
    SourceModelError,
    export_source_model,
    list_sources,
    load_source_model,
    model_card,
    weights_digest,
)

needs_data = pytest.mark.skipif(
    not (Path(os.environ.get("ALOOP_DATA_DIR", "/nonexistent")) / "source").is_dir(),
    reason="ALOOP_DATA_DIR does not hold the shared datasets (set ALOOP_DATA_DIR=../shared/data)",
)


def test_published_architecture() -> None:
    net = ElemNet(dropout=True)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 17
    assert [lin.out_features for lin in linears] == [1024] * 4 + [512] * 3 + [256] * 3 + [128] * 3 + [64] * 2 + [32, 1]
    assert linears[0].in_features == 86
    assert {int(k): m.p for k, m in net.drops.items()} == {4: 0.2, 7: 0.1, 10: 0.3, 13: 0.2} == DROPOUT_AFTER
    assert len(ElemNet().drops) == 0  # dropout off by default (Gupta et al. 2021)


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    net = ElemNet(dropout=True).eval()
    x = torch.rand(8, 86)
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))


def test_activations_shapes_and_bounds() -> None:
    net = ElemNet()
    x = torch.rand(5, 86)
    for layer, width in ((1, 1024), (7, 512), (16, 32)):
        assert net.activations(x, layer).shape == (5, width)
    assert torch.allclose(net.output(net.activations(x, 16)), net(x))
    for bad in (0, 17):
        with pytest.raises(ValueError, match="layer must be in 1..16"):
            net.activations(x, bad)


def test_dead_unit_fractions() -> None:
    net = ElemNet(hidden_widths=(4, 2))
    with torch.no_grad():
        net.hidden[0].weight.zero_()
        net.hidden[0].bias.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    dead = dead_unit_fractions(net, torch.rand(10, 86))
    assert dead[0] == pytest.approx(0.5)
    assert len(dead) == 2


@needs_data
def test_pretrain_resume_and_export(tmp_path: Path) -> None:
    config = PretrainConfig(max_epochs=2, limit_rows=600, batch_size=128, dead_sample=500, threads=1)
    run = tmp_path / "run"
    first = pretrain(PretrainConfig(**{**config.__dict__, "max_epochs": 1}), run, progress=False)
    assert first["epochs_run"] == 1
    with pytest.raises(ValueError, match="different recipe"):
        pretrain(PretrainConfig(**{**config.__dict__, "max_epochs": 1, "peak_lr": 1.0}), run, progress=False)
    # Resuming needs the same recipe: a one-epoch run cannot be continued to two epochs
    # (the schedule length is part of the recipe), so start the two-epoch run afresh and
    # resume it after its first epoch by re-running the same command.
    run2 = tmp_path / "run2"
    pretrain(config, run2, progress=False)
    again = pretrain(config, run2, progress=False)
    assert again["epochs_run"] == 2 and len(again["history"]) == 2
    assert 0 < again["test_mae"] < 5
    assert len(again["dead_unit_fraction"]) == 16

    weights = tmp_path / "weights"
    export_source_model(run2, "tiny", weights_dir=weights)
    assert list_sources(weights) == ["tiny"]
    card = model_card("tiny", weights)
    assert card["element_vocabulary"][0] == "H" and len(card["element_vocabulary"]) == 86
    assert card["source_dataset"]["sha256"].startswith("f8be437a")
    assert card["architecture"]["hidden_widths"] == list(HIDDEN_WIDTHS)
    # Both on the same (limited) test rows: they differ only by the fp16 rounding of the weights.
    assert abs(card["test_mae"] - card["test_mae_float32"]) < 2e-3 * card["test_mae_float32"] + 1e-4
    assert card["recipe"]["limit_rows"] == 600 and "500-composition sample" in card["dead_unit_definition"]
    net = load_source_model("tiny", weights)
    assert next(net.parameters()).dtype == torch.float32
    assert not any(p.requires_grad for p in net.parameters())
    trainable = load_source_model("tiny", weights, trainable=True)
    assert all(p.requires_grad for p in trainable.parameters())
    assert json.loads((weights / "tiny.json").read_text())["name"] == "tiny"
    digest = weights_digest("tiny", weights)
    assert digest == hashlib.sha256((weights / "tiny.safetensors").read_bytes()).hexdigest()


@needs_data
def test_chained_pretraining_from_a_source(tmp_path: Path) -> None:
    """A JARVIS dataset (train/test only) pre-trained from a shipped source: validation is carved from
    train with the seed, the hidden layers start as the source's, the card names the source and its sha256."""
    from aloop.elemnet.pretrain import _init_from_source, _prepare

    source = "oqmd-formation-enthalpy"
    net = ElemNet()
    _init_from_source(net, source)
    src = load_source_model(source)
    assert all(torch.equal(a, b) for a, b in zip(net.hidden.parameters(), src.hidden.parameters()))
    assert not torch.equal(net.output.weight, src.output.weight)

    config = PretrainConfig(dataset="jarvis-slme", init_source=source, max_epochs=1, batch_size=128,
                            dead_sample=200, threads=1, exclude=("jarvis-spillage",))
    parts = _prepare(config)
    n_fit, n_val = len(parts["train"][0]), len(parts["val"][0])
    assert 0.08 < n_val / (n_fit + n_val) < 0.12  # 10% carved from train (minus the excluded rows)
    assert _prepare(config)["val"][0].tobytes() == parts["val"][0].tobytes()  # the carve is seeded
    summary = pretrain(config, tmp_path / "run", progress=False)
    assert summary["init_source_sha256"] == weights_digest(source)
    export_source_model(tmp_path / "run", "chained", weights_dir=tmp_path / "weights")
    card = model_card("chained", tmp_path / "weights")
    assert card["initialised_from"]["source"] == source
    assert card["initialised_from"]["sha256"] == weights_digest(source)
    assert card["source_dataset"]["name"] == "jarvis-slme"
    with pytest.raises(SourceModelError, match="no source model 'nope'"):
        pretrain(PretrainConfig(dataset="jarvis-slme", init_source="nope", max_epochs=1, threads=1),
                 tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()


def test_missing_source_model_error(tmp_path: Path) -> None:
    with pytest.raises(SourceModelError, match="no source model 'nope'"):
        load_source_model("nope", tmp_path)
    with pytest.raises(SourceModelError, match="no source model 'nope'"):
        weights_digest("nope", tmp_path)


def test_shipped_sources_have_cards() -> None:
    for name in list_sources():
        card = model_card(name)
        assert card["test_mae"] > 0 and len(card["dead_unit_fraction_per_layer"]) == 16
        net = load_source_model(name)
        assert np.isfinite(net(torch.rand(3, 86)).numpy()).all()


def test_each_load_is_a_network_of_its_own() -> None:
    """Changing a loaded source model (a new head in a notebook cell) never changes the next one loaded."""
    first = load_source_model("oqmd-formation-enthalpy")
    x = torch.rand(4, 86)
    before = first(x).detach().clone()
    first.output = torch.nn.Linear(first.output.in_features, 1)
    with torch.no_grad():
        first.hidden[0].weight.mul_(2.0)
    again = load_source_model("oqmd-formation-enthalpy")
    assert torch.equal(again(x), before)
    assert not any(p.requires_grad for p in again.parameters()) and not again.training


def test_a_users_model_never_shadows_a_shipped_one_of_the_same_name() -> None:
    """Files named like a shipped model in the user's folder (copied there by hand) are not what that name loads."""
    from safetensors.torch import save_file

    from aloop.elemnet.sources import WEIGHTS_DIR, user_sources_dir

    name = "oqmd-bandgap"
    own = user_sources_dir()
    own.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ElemNet(hidden_widths=(8, 4)).state_dict().items()},
              own / f"{name}.safetensors")
    (own / f"{name}.json").write_text(json.dumps({"name": name, "architecture": {"hidden_widths": [8, 4]}}))
    shipped = hashlib.sha256((WEIGHTS_DIR / f"{name}.safetensors").read_bytes()).hexdigest()
    assert weights_digest(name) == shipped
    assert model_card(name)["architecture"]["hidden_widths"] == list(HIDDEN_WIDTHS)
    assert load_source_model(name).hidden_widths == HIDDEN_WIDTHS
