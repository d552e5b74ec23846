"""Transfer-learning modes, ElemNet features and the mixture of experts, on tiny networks and real formulas."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.exceptions import NotFittedError

from aloop.elemnet.model import ElemNet
from aloop.elemnet.moe import MixtureOfExperts, MoERegressor
from aloop.elemnet.transfer import MODES, ElemNetRegressor, FineTuneConfig, best_epoch, finetune, make_regressor
from aloop.training import train_network
from aloop.features import get_featurizer
from aloop.features.elemnet import ElemNetFeatures

TINY = (32, 32, 16)


def _source() -> ElemNet:
    torch.manual_seed(1)
    return ElemNet(hidden_widths=TINY)


def test_modes_touch_the_right_weights(band_gap) -> None:
    X, y = band_gap
    src = _source()
    before = {k: v.clone() for k, v in src.state_dict().items()}
    cfg = dict(max_epochs=3, patience=3, batch_size=64, lr=1e-3)
    frozen, _ = finetune(X, y, src, FineTuneConfig(mode="freezing", **cfg))
    for i in range(len(TINY) - 1):  # hidden layers 1..n-1 are frozen
        assert torch.equal(frozen.hidden[i].weight, before[f"hidden.{i}.weight"])
    assert not torch.equal(frozen.hidden[-1].weight, before[f"hidden.{len(TINY) - 1}.weight"])
    tuned, hist = finetune(X, y, src, FineTuneConfig(mode="modfinetune", **cfg))
    assert not torch.equal(tuned.hidden[0].weight, before["hidden.0.weight"])
    assert 1 <= len(hist) <= 3
    for k, v in src.state_dict().items():  # the source is never modified
        assert torch.equal(v, before[k])


def test_finetune_beats_the_mean_and_predicts_raw_units(band_gap) -> None:
    X, y = band_gap
    reg = ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY, max_epochs=60, patience=15,
                           batch_size=32, lr=1e-3).fit(X[:240], y[:240])
    pred = reg.predict(X[240:])
    assert np.mean(np.abs(pred - y[240:])) < np.mean(np.abs(y[:240].mean() - y[240:]))
    assert abs(pred.mean() - y.mean()) < 1.0  # raw eV, not standardised


def test_threads_apply_while_training_and_are_restored(band_gap) -> None:
    """A fine-tune with ``threads=1`` in a notebook must not leave the whole process on one thread."""
    X, y = band_gap
    before = torch.get_num_threads()
    seen = []
    torch.set_num_threads(2)
    try:
        finetune(X[:40], y[:40], _source(), FineTuneConfig(threads=1, max_epochs=1, patience=None, batch_size=64))
        seen.append(torch.get_num_threads())
    finally:
        torch.set_num_threads(before)
    assert seen == [2]


def test_finetune_bad_inputs(band_gap) -> None:
    X, y = band_gap
    with pytest.raises(ValueError, match="unknown transfer mode"):
        finetune(X, y, _source(), FineTuneConfig(mode="nope"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs source network"):
        finetune(X, y, None, FineTuneConfig(mode="finetune"))
    with pytest.raises(ValueError, match="n × 86"):
        finetune(X[:, :10], y, _source(), FineTuneConfig())
    with pytest.raises(ValueError, match="loss must be 'l1' or 'mse', got 'huber'"):  # was trained with MSE
        finetune(X, y, _source(), FineTuneConfig(loss="huber"))  # type: ignore[arg-type]
    y_bad = y.copy()
    y_bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        finetune(X, y_bad, _source(), FineTuneConfig())
    with pytest.raises(NotFittedError, match="not fitted"):
        ElemNetRegressor().predict(X)
    assert set(MODES) == {"finetune", "modfinetune", "freezing", "scratch"}


def test_refit_trains_every_row_for_the_best_epoch_count(band_gap) -> None:
    X, y = band_gap
    opts = dict(hidden_widths=TINY, batch_size=64, lr=1e-2, seed=3)
    reg = ElemNetRegressor(source=None, mode="scratch", max_epochs=100, patience=4, refit=True, **opts).fit(X, y)
    assert reg.best_epoch_ == best_epoch(reg.history_) < len(reg.history_)  # stopped early, restored the best
    cfg = FineTuneConfig(mode="scratch", max_epochs=reg.best_epoch_, patience=None, batch_size=64, lr=1e-2, seed=3)
    again, hist = finetune(X, y, None, cfg, hidden_widths=TINY)
    assert len(hist) == reg.best_epoch_ and all(np.isnan(h["val_mae"]) for h in hist)  # nothing held out
    with torch.no_grad():
        np.testing.assert_allclose(reg.predict(X), again(torch.from_numpy(X)).squeeze(1).numpy(), rtol=1e-5)
    held = ElemNetRegressor(source=None, mode="scratch", max_epochs=100, patience=4, **opts).fit(X, y)
    assert not np.allclose(held.predict(X), reg.predict(X))


def test_weight_ema_is_what_is_validated_and_kept(band_gap) -> None:
    X, y = band_gap
    cfg = dict(mode="scratch", max_epochs=4, patience=None, batch_size=32, lr=1e-2, seed=2)
    raw, _ = finetune(X, y, None, FineTuneConfig(**cfg), hidden_widths=TINY)
    nearly_raw, _ = finetune(X, y, None, FineTuneConfig(**cfg, ema_decay=1e-12), hidden_widths=TINY)
    smooth, _ = finetune(X, y, None, FineTuneConfig(**cfg, ema_decay=0.95), hidden_widths=TINY)
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        p_raw, p_nearly, p_smooth = (n(Xt).squeeze(1).numpy() for n in (raw, nearly_raw, smooth))
    np.testing.assert_allclose(p_nearly, p_raw, rtol=1e-4, atol=1e-4)  # a decay of ~0 keeps the last step
    assert np.abs(p_smooth - p_raw).max() > 1e-3
    _, hist = finetune(X, y, None, FineTuneConfig(**{**cfg, "patience": 3, "max_epochs": 30}, ema_decay=0.95),
                       hidden_widths=TINY, validation=(X[:50], y[:50]))
    stopped, _ = finetune(X, y, None, FineTuneConfig(**{**cfg, "patience": 3, "max_epochs": 30}, ema_decay=0.95),
                          hidden_widths=TINY, validation=(X[:50], y[:50]))
    with torch.no_grad():  # the kept weights are the EMA weights of the best epoch, whose MAE the history holds
        kept = float(np.mean(np.abs(stopped(torch.from_numpy(X[:50])).squeeze(1).numpy() - y[:50])))
    assert kept == pytest.approx(min(h["val_mae"] for h in hist), rel=1e-4)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="ema_decay must lie strictly between 0 and 1"):
            finetune(X, y, None, FineTuneConfig(**cfg, ema_decay=bad), hidden_widths=TINY)


def test_refit_and_epoch_bad_inputs(band_gap) -> None:
    X, y = band_gap
    with pytest.raises(ValueError, match="refit=True needs early stopping"):
        ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY, patience=None, max_epochs=1, refit=True).fit(X, y)
    with pytest.raises(ValueError, match="patience must be ≥ 1"):
        finetune(X, y, None, FineTuneConfig(mode="scratch", patience=0), hidden_widths=TINY)
    with pytest.raises(ValueError, match="max_epochs must be ≥ 1"):
        finetune(X, y, None, FineTuneConfig(mode="scratch", max_epochs=0, patience=None), hidden_widths=TINY)
    with pytest.raises(ValueError, match="early-stopped run"):
        best_epoch([{"epoch": 1, "val_mae": float("nan")}])
    with pytest.raises(ValueError, match="early-stopped run"):
        best_epoch([])
    net = ElemNet(hidden_widths=TINY)
    Xt, yt = torch.from_numpy(X[:20]), torch.from_numpy(y[:20, None].astype(np.float32))
    with pytest.raises(ValueError, match="needs a validation set"):
        train_network(net, Xt, yt, None, None, torch.nn.functional.l1_loss, 1e-3, 8, 2, patience=2)


def test_elemnet_features_layers_and_sklearn(band_gap) -> None:
    X, y = band_gap
    net = _source()
    feats = ElemNetFeatures(network=net, layer=2)
    F = feats.transform_fractions(X)
    assert F.shape == (len(X), 32) and F.dtype == np.float32 and (F >= 0).all()
    with torch.no_grad():
        assert np.allclose(F, net.activations(torch.from_numpy(X), 2).numpy(), atol=1e-6)
    small = ElemNetFeatures(network=net, layer=2, batch_size=7).transform_fractions(X)
    assert np.allclose(F, small)
    ExtraTreesRegressor(n_estimators=5, random_state=0).fit(F, y)
    with pytest.raises(ValueError, match="layer must be in 1..3"):
        ElemNetFeatures(network=net, layer=4)
    assert len(feats.feature_names) == 32


def test_elemnet_features_cache_by_composition_key(band_gap) -> None:
    X, _ = band_gap
    net = _source()
    feats = ElemNetFeatures(network=net, layer=3, cache_size=250)
    first = feats.transform_fractions(X[:200])
    assert len(feats._cache) == 200
    calls = []
    feats._forward = lambda A: calls.append(len(A)) or ElemNetFeatures._forward(feats, A)  # type: ignore[method-assign]
    # 200 seen rows come from the cache; only the 100 new ones (the same row twice counted once) are computed.
    again = feats.transform_fractions(np.vstack([X[:200], X[200:], X[200:201]]))
    assert calls == [100]
    assert np.array_equal(again[:200], first) and np.array_equal(again[-1], again[200])
    assert len(feats._cache) == 250  # full: the rest were computed but not stored
    uncached = ElemNetFeatures(network=net, layer=3, cache_size=0).transform_fractions(X)
    assert np.allclose(again[:300], uncached, atol=1e-6)
    with pytest.raises(ValueError, match="cache_size"):
        ElemNetFeatures(network=net, layer=3, cache_size=-1)


def test_elemnet_featurizer_registered() -> None:
    with pytest.raises(Exception, match="no source model 'missing-source'"):
        get_featurizer("elemnet", source="missing-source")


def test_mixture_gate_is_top_k_softmax() -> None:
    experts = [ElemNet(hidden_widths=TINY) for _ in range(4)]
    moe = MixtureOfExperts(experts, layer=3, top_k=2, gate="fixed").eval()
    with torch.no_grad():
        moe.gate_logits.copy_(torch.tensor([0.0, 2.0, 1.0, -1.0]))
    g = moe.gate_weights()
    assert torch.isclose(g.sum(), torch.tensor(1.0)) and (g > 0).sum() == 2 and g[1] > g[2] > 0
    moe_in = MixtureOfExperts(experts, layer=3, top_k=3, gate="input").eval()
    gi = moe_in.gate_weights(torch.rand(5, 86))
    assert gi.shape == (5, 4) and torch.allclose(gi.sum(1), torch.ones(5)) and ((gi > 0).sum(1) == 3).all()
    assert moe_in(torch.rand(5, 86)).shape == (5, 1)
    with pytest.raises(ValueError, match="widths differ"):
        MixtureOfExperts([ElemNet(hidden_widths=(8, 4)), ElemNet(hidden_widths=(8, 6))], layer=2)
    with pytest.raises(ValueError, match="at least one expert"):
        MixtureOfExperts([], layer=1)


def test_moe_regressor_reports_gate_and_learns(band_gap) -> None:
    X, y = band_gap
    torch.manual_seed(0)
    experts = [ElemNet(hidden_widths=TINY) for _ in range(3)]
    reg = MoERegressor(experts=experts, layer=2, top_k=2, max_epochs=80, patience=20).fit(X[:240], y[:240])
    assert set(reg.gate_weights_) == {"expert0", "expert1", "expert2"}
    assert sum(reg.gate_weights_.values()) == pytest.approx(1.0, abs=1e-5)
    mae = np.mean(np.abs(reg.predict(X[240:]) - y[240:]))
    assert mae < np.mean(np.abs(y[:240].mean() - y[240:]))
    # The negative-transfer guard kept whichever of the mixture and the single experts
    # validated best, and its gate says so.
    g = reg.guard_
    singles = {k: v for k, v in g.items() if k.endswith("_val_mae") and k != "mixture_val_mae"}
    assert len(singles) == 3 and reg.val_mae_ == pytest.approx(min([g["mixture_val_mae"], *singles.values()]))
    if g["kept"] != "mixture":
        assert reg.gate_weights_[g["kept"]] == 1.0


def test_moe_guard_falls_back_to_the_useful_expert(band_gap) -> None:
    X, y = band_gap
    torch.manual_seed(0)
    useful = ElemNet(hidden_widths=TINY)
    dead = ElemNet(hidden_widths=TINY)
    with torch.no_grad():  # an expert whose features are all zero carries nothing
        for p in dead.parameters():
            p.zero_()
    common = {"layer": 2, "top_k": 2, "max_epochs": 60, "patience": 15}
    reg = MoERegressor(experts=[dead, useful], **common).fit(X[:240], y[:240])
    assert reg.guard_["expert1_val_mae"] < reg.guard_["expert0_val_mae"]
    assert reg.val_mae_ <= reg.guard_["expert1_val_mae"] + 1e-12
    off = MoERegressor(experts=[dead, useful], guard=False, **common).fit(X[:240], y[:240])
    assert off.guard_["kept"] == "mixture" and "expert0_val_mae" not in off.guard_


def test_make_regressor_strategies(band_gap) -> None:
    from aloop.elemnet.transfer import STRATEGIES, make_regressor

    X, y = band_gap
    base = make_regressor("base").fit(X[:240], y[:240])
    assert np.allclose(base.predict(X[240:]), y[:240].mean())
    ef = make_regressor("sc-ef").fit(X[:240], y[:240])
    assert np.mean(np.abs(ef.predict(X[240:]) - y[240:])) < np.mean(np.abs(y[:240].mean() - y[240:]))
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        make_regressor("nope")
    with pytest.raises(ValueError, match="trees must be"):
        make_regressor("sc-ef", trees="xgb")
    assert {"featextr", "modfinetune", "moe"} <= set(STRATEGIES)


def test_moe_refuses_too_few_rows_like_the_network_modes() -> None:
    X = np.eye(86, dtype=np.float32)[:9]
    y = np.arange(9.0)
    experts = [ElemNet(hidden_widths=TINY)]
    for rows in (1, 9):
        with pytest.raises(ValueError, match=f"too few training rows: {rows}; at least 10 are needed"):
            MoERegressor(experts=experts, layer=2).fit(X[:rows], y[:rows])
        with pytest.raises(ValueError, match=f"too few training rows: {rows}; at least 10 are needed"):
            ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY).fit(X[:rows], y[:rows])


def test_default_moe_experts_leave_out_chained_sources(band_gap) -> None:
    from aloop.elemnet.sources import list_sources, model_card, moe_experts
    from aloop.elemnet.transfer import make_regressor

    cards = {"a": {}, "b": {"initialised_from": None}, "chained": {"initialised_from": {"source": "a"}}}
    assert moe_experts(cards, cards.__getitem__) == ("a", "b")
    shipped = moe_experts()
    assert shipped and set(shipped) <= set(list_sources())
    assert not any(model_card(s).get("initialised_from") for s in shipped)
    if "jarvis-mbj-bandgap" in list_sources():
        assert "jarvis-mbj-bandgap" not in shipped
    X, y = band_gap
    reg = make_regressor("moe", max_epochs=2, patience=1, guard=False).fit(X[:40], y[:40])
    assert tuple(reg.gate_weights_) == shipped


def test_regressors_check_fractions_like_the_featurizers(band_gap) -> None:
    X, y = band_gap
    reg = ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY, max_epochs=2, patience=2).fit(X, y)
    moe = MoERegressor(experts=[_source()], layer=2, max_epochs=2, patience=2, guard=False).fit(X, y)
    for model in (reg, moe):
        # rows of amounts (Fe2O3 as 2, 3) are rescaled to fractions, as every featurizer does
        np.testing.assert_allclose(model.predict(X[:5] * 5), model.predict(X[:5]), rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match="negative or non-finite fractions in 5 rows"):
            model.predict(-X[:5])
        with pytest.raises(ValueError, match=r"1 rows hold no element \(all zero\), e.g. rows \[1\]"):
            model.predict(np.vstack([X[:1], np.zeros((1, 86), np.float32)]))
        with pytest.raises(ValueError, match=r"got 'NaCl' in it; .*to_fraction_matrix\(formulas\)"):
            model.predict(["NaCl", "Si"])
    with pytest.raises(ValueError, match="hold no element"):
        ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY).fit(np.vstack([X, np.zeros((1, 86))]),
                                                                               np.r_[y, 0.0])


def test_val_fraction_must_leave_rows_on_both_sides(band_gap) -> None:
    X, y = band_gap
    options = dict(max_epochs=2, patience=2)
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=f"val_fraction .* strictly between 0 and 1, got {fraction}"):
            ElemNetRegressor(source=None, mode="scratch", hidden_widths=TINY, val_fraction=fraction, **options).fit(X, y)
        with pytest.raises(ValueError, match=f"val_fraction .* strictly between 0 and 1, got {fraction}"):
            MoERegressor(experts=[_source()], layer=2, val_fraction=fraction, **options).fit(X, y)
    with pytest.raises(ValueError, match="val_fraction=0.96 holds out all 10 rows"):
        finetune(X[:10], y[:10], None, FineTuneConfig(mode="scratch", val_fraction=0.96, **options), hidden_widths=TINY)


def test_moe_refuses_what_it_would_misread(band_gap) -> None:
    X, y = band_gap
    experts = [_source(), ElemNet(hidden_widths=TINY)]
    options = dict(max_epochs=2, patience=2, guard=False)
    with pytest.raises(ValueError, match="predicts one target; y has 2 columns"):
        MoERegressor(experts=experts, layer=2, **options).fit(X, np.c_[y, y])
    for layer in (0, 4):
        with pytest.raises(ValueError, match=f"layer must be a hidden layer of every expert, 1..3, got {layer}"):
            MoERegressor(experts=experts, layer=layer, **options).fit(X, y)
    with pytest.raises(ValueError, match="top_k .* ≥ 1, got 0"):
        MoERegressor(experts=experts, layer=2, top_k=0, **options).fit(X, y)
    with pytest.raises(ValueError, match="top_k=3 but the mixture has only 2 expert"):
        MoERegressor(experts=experts, layer=2, top_k=3, **options).fit(X, y)
    with pytest.raises(ValueError, match="top_k=2 but the mixture has only 1 expert"):
        MixtureOfExperts(experts[:1], layer=2, top_k=2)
    single = MoERegressor(experts=experts[:1], layer=2, **options).fit(X, y)  # unset top_k: the one expert
    assert single.gate_weights_ == {"expert0": 1.0}
    with pytest.raises(TypeError, match="one string 'oqmd-bandgap'; wrap it in a list"):
        MoERegressor(sources="oqmd-bandgap", **options).fit(X, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sources name 'oqmd-bandgap' more than once"):
        MoERegressor(sources=("oqmd-bandgap", "oqmd-bandgap"), **options).fit(X, y)
    with pytest.raises(ValueError, match="give experts .* or sources .*, not both"):
        MoERegressor(experts=experts, sources=("oqmd-bandgap",), layer=2, **options).fit(X, y)


def test_make_regressor_refuses_options_a_strategy_would_ignore() -> None:
    for strategy in ("base", "sc-ef", "sc-magpie", "featextr"):
        with pytest.raises(ValueError, match=f"strategy '{strategy}' takes no training options, got max_epochs, refit"):
            make_regressor(strategy, max_epochs=3, refit=True)
    assert make_regressor("scratch", max_epochs=3).max_epochs == 3


def test_hidden_widths_with_a_source_are_refused_not_ignored(band_gap) -> None:
    X, y = band_gap
    with pytest.raises(ValueError, match="hidden_widths is for mode='scratch'; mode 'modfinetune' keeps"):
        ElemNetRegressor(hidden_widths=TINY, max_epochs=1, patience=1).fit(X, y)


def test_a_notebook_session_keeps_its_random_state_and_gets_clear_answers(band_gap) -> None:
    """Fitting leaves the caller's torch random stream alone; an empty prediction and settings a strategy
    does not use get clear answers instead of a torch error or silence."""
    X, y = band_gap
    opts = dict(source=None, mode="scratch", hidden_widths=TINY, batch_size=64, max_epochs=3, patience=2)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    reg = ElemNetRegressor(**opts).fit(X, y)
    assert torch.equal(torch.rand(3), expected)
    assert np.array_equal(reg.predict(X), ElemNetRegressor(**opts).fit(X, y).predict(X))  # still seeded
    assert reg.predict(X[:0]).shape == (0,)
    with pytest.raises(ValueError, match="layer=8 applies to the strategies featextr, moe, not 'modfinetune'"):
        make_regressor("modfinetune", layer=8)
    with pytest.raises(ValueError, match="source='oqmd-bandgap' applies to .* not 'moe'; a mixture names its experts"):
        make_regressor("moe", source="oqmd-bandgap")
    with pytest.raises(ValueError, match="trees='rf' applies to the strategies sc-ef, sc-magpie, featextr"):
        make_regressor("moe", trees="rf")
    assert make_regressor("moe", layer=8).layer == 8


def test_an_mse_history_is_in_squared_raw_units(band_gap) -> None:
    """With ``loss="mse"`` the history's ``val_mse`` is the kept network's mean squared error in eV², not in the
    standardised units it trained in (nor scaled by the standard deviation once, as a mean absolute error is)."""
    X, y = band_gap
    cfg = FineTuneConfig(mode="scratch", loss="mse", max_epochs=8, patience=3, batch_size=64, lr=1e-2, seed=1)
    net, hist = finetune(X[50:], y[50:], None, cfg, hidden_widths=TINY, validation=(X[:50], y[:50]))
    with torch.no_grad():
        mse = float(np.mean((net(torch.from_numpy(X[:50])).squeeze(1).numpy() - y[:50]) ** 2))
    assert "val_mae" not in hist[0]
    assert mse == pytest.approx(min(h["val_mse"] for h in hist), rel=1e-4)


def test_finetune_keeps_the_source_head_in_raw_units(band_gap) -> None:
    """``finetune`` starts from the whole source network: with a negligible step it predicts what the source
    does, not a rescaling of it by the target's mean and spread."""
    X, y = band_gap
    src = _source()
    net, _ = finetune(X, y, src, FineTuneConfig(mode="finetune", lr=1e-12, max_epochs=1, patience=None, batch_size=64))
    Xt = torch.from_numpy(X)
    with torch.no_grad():
        np.testing.assert_allclose(net(Xt).numpy(), src.eval()(Xt).numpy(), rtol=1e-5, atol=1e-6)


def test_modfinetune_and_freezing_replace_the_source_head(band_gap) -> None:
    """Two sources that differ only in their output layer give one and the same network: the head is fresh."""
    X, y = band_gap
    src, other = _source(), _source()
    with torch.no_grad():
        other.output.weight.mul_(-3.0)
        other.output.bias.add_(5.0)
    for mode in ("modfinetune", "freezing"):
        cfg = FineTuneConfig(mode=mode, max_epochs=2, patience=None, batch_size=64, lr=1e-3)
        a, _ = finetune(X, y, src, cfg)
        b, _ = finetune(X, y, other, cfg)
        with torch.no_grad():
            np.testing.assert_allclose(a(torch.from_numpy(X)).numpy(), b(torch.from_numpy(X)).numpy(), rtol=1e-6)


def test_moe_validation_mae_is_the_kept_models_error_in_raw_units(band_gap) -> None:
    """``val_mae_`` is the kept mixture's mean absolute error on its held-out rows, in the target's units."""
    from aloop.elemnet.transfer import hold_out

    X, y = band_gap
    y = 10.0 * y  # a spread far from 1, so that standardised and raw errors differ
    reg = MoERegressor(experts=[_source()], layer=2, max_epochs=5, patience=5, guard=False, seed=4).fit(X, y)
    val, _ = hold_out(len(X), 0.1, torch.Generator().manual_seed(4))
    mae = float(np.mean(np.abs(reg.predict(X[val.numpy()]) - y[val.numpy()])))
    assert reg.val_mae_ == pytest.approx(mae, rel=1e-4)
