"""benchmarks/bench_transfer.py: fine-tuned ensembles and blends on a small slice of the experimental formation enthalpy."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from aloop.datasets import DatasetError
from aloop.elemnet.sources import load_source_model
from aloop.elemnet.transfer import FineTuneConfig, best_epoch, finetune

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_transfer.py"
_spec = importlib.util.spec_from_file_location("bench_transfer", _PATH)
bench_transfer = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_transfer", bench_transfer)
_spec.loader.exec_module(bench_transfer)
import transfer_members  # noqa: E402 (benchmarks/ is on the path once bench_transfer is loaded)


def _sample(name: str, n_fit: int, n_val: int, n_test: int) -> dict:
    """A registry task's split dict cut to its first rows of each part (a tiny real sample)."""
    try:
        d = bench_transfer.task_data(name)
    except DatasetError as exc:
        pytest.skip(f"needs dataset {name!r}: {exc}")
    d.update(fit=d["fit"][:n_fit], val=d["val"][:n_val], test=d["test"][:n_test])
    d["train"] = np.concatenate([d["fit"], d["val"]])
    return d


@pytest.fixture(scope="module")
def task() -> dict:
    return _sample("expt-formation-enthalpy", 60, 20, 20)


def _args(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    bench_transfer.add_method_options(ap)
    return ap.parse_args(["--max-epochs", "2", "--patience", "2", "--learners", "et", *argv])


def test_ensemble_is_the_mean_of_its_seeds(task) -> None:
    args = _args("--blend-mode", "finetune")
    label, pv, pt = bench_transfer.network_predictions("finetune", task, args, seeds=(0, 1))
    singles = [bench_transfer.network_predictions("finetune", task, args, seeds=(s,)) for s in (0, 1)]
    assert label.startswith("mean of 2 seeds of finetune from oqmd-formation-enthalpy, epochs ")
    assert pv.shape == (20,) and pt.shape == (20,)
    np.testing.assert_allclose(pv, (singles[0][1] + singles[1][1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pt, (singles[0][2] + singles[1][2]) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(singles[0][2], singles[1][2])  # the seeds give different members


def test_ensemble_methods_share_one_ensemble(task) -> None:
    args, cache = _args("--ensemble-size", "2", "--blend-mode", "finetune"), {}
    alone = bench_transfer.run_method("tl_ensemble", task, args, cache)
    ensemble = cache["ensemble"]
    blended = bench_transfer.run_method("tl_ensemble_blend_magpie", task, args, cache)
    assert cache["ensemble"] is ensemble
    assert alone["config"].startswith("mean of 2 seeds of finetune")
    assert [m["seed"] for m in alone["members"]] == [0, 1]
    assert alone["test_mae"] <= max(m["test_mae"] for m in alone["members"]) + 1e-12  # MAE is convex
    assert blended["components"]["network"]["test_mae"] == pytest.approx(alone["test_mae"])
    assert blended["val_mae"] <= min(alone["val_mae"], blended["components"]["trees"]["val_mae"]) + 1e-12
    assert 0.0 <= blended["weight"] <= 1.0


def test_ensemble_over_two_modes_averages_every_member(task, tmp_path) -> None:
    args, d = _args("--ensemble-size", "2", "--blend-mode", "finetune", "modfinetune"), {**task, "network_cache": tmp_path}
    cache: dict = {}
    r = bench_transfer.run_method("tl_ensemble", d, args, cache)
    assert r["config"].startswith("mean of 4 networks (2 seeds each) of finetune and modfinetune from ")
    assert r["blend_modes"] == ["finetune", "modfinetune"]
    assert [(m["mode"], m["seed"]) for m in r["members"]] == [("finetune", 0), ("finetune", 1),
                                                              ("modfinetune", 0), ("modfinetune", 1)]
    singles = [bench_transfer.network_predictions(mode, d, args, seeds=(s,))[2]
               for mode in ("finetune", "modfinetune") for s in (0, 1)]  # cached: the same networks
    np.testing.assert_allclose(cache["ensemble"][2], np.mean(singles, axis=0), rtol=1e-6)
    blended = bench_transfer.run_method("tl_blend_magpie", d, args, cache)  # seed 0 of each mode
    assert blended["components"]["network"]["config"].startswith("mean of 2 networks (1 seed each) of finetune and ")
    assert blended["blend_modes"] == ["finetune", "modfinetune"]


def test_blend_mode_named_twice_is_rejected(task) -> None:
    with pytest.raises(ValueError, match="--blend-mode names a mode twice"):
        bench_transfer.run_method("tl_ensemble", task, _args("--blend-mode", "finetune", "finetune"), {})


def test_blend_mode_must_be_a_network_mode(capsys) -> None:
    with pytest.raises(SystemExit):
        _args("--blend-mode", "finetune", "freezing")
    assert "--blend-mode: invalid choice: 'freezing'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_ensemble_size_must_be_a_positive_whole_number(bad: str, capsys) -> None:
    with pytest.raises(SystemExit):
        _args("--ensemble-size", bad)
    assert "--ensemble-size: must be a whole number ≥ 1" in capsys.readouterr().err


def test_networks_are_trained_once_per_cache(task, tmp_path, monkeypatch) -> None:
    args, d = _args(), {**task, "network_cache": tmp_path}
    first = bench_transfer.network_predictions("modfinetune", d, args)
    assert len(list(tmp_path.glob("modfinetune-*-seed0-b32-lr0.0001-p2-e2.npz"))) == 1

    def no_training(*a, **k):
        raise AssertionError("the cached network was retrained")

    monkeypatch.setattr(transfer_members, "finetune", no_training)
    again = bench_transfer.network_predictions("modfinetune", d, args)
    assert again[0] == first[0]
    np.testing.assert_array_equal(again[2], first[2])
    with pytest.raises(AssertionError, match="retrained"):  # other rows: the cached predictions do not apply
        bench_transfer.network_predictions("modfinetune", {**d, "test": task["test"][:10]}, args)


def test_refit_networks_stop_on_their_own_rows_and_refit_on_train(task, tmp_path) -> None:
    args, d = _args("--refit"), {**task, "network_cache": tmp_path}
    label, pv, pt = bench_transfer.network_predictions("modfinetune", d, args)
    assert label.startswith("modfinetune from oqmd-formation-enthalpy, refitted on train for ")
    assert len(list(tmp_path.glob("modfinetune-*-seed0-b32-lr0.0001-p2-e2-refit.npz"))) == 1
    src = load_source_model("oqmd-formation-enthalpy")
    config = FineTuneConfig(mode="modfinetune", max_epochs=2, patience=2, seed=0)
    X, y = task["X"], task["y"]
    stopped, hist = finetune(X[task["fit"]], y[task["fit"]], src, config)  # never sees validation
    epochs = best_epoch(hist)
    refitted, _ = finetune(X[task["train"]], y[task["train"]], src, replace(config, max_epochs=epochs, patience=None))
    with torch.no_grad():
        np.testing.assert_allclose(pv, stopped(torch.from_numpy(X[task["val"]])).squeeze(1).numpy(), rtol=1e-5)
        np.testing.assert_allclose(pt, refitted(torch.from_numpy(X[task["test"]])).squeeze(1).numpy(), rtol=1e-5)
    assert label.endswith(f"for {epochs} epochs")


def test_results_of_the_other_protocol_are_stale() -> None:
    stale, w = bench_transfer.stale, bench_transfer.source_versions("tl_finetune", "oqmd-formation-enthalpy")
    shared = {"val_mae": 0.3, "test_mae": 0.4, **w}
    plain, refit = bench_transfer.network_protocol(_args()), bench_transfer.network_protocol(_args("--refit"))
    both = bench_transfer.network_protocol(_args("--refit", "--ema-decay", "0.998"))
    assert plain == {"refit": False, "ema_decay": None} and both == {"refit": True, "ema_decay": 0.998}
    assert not stale(shared, "tl_finetune", "oqmd-formation-enthalpy", plain)
    assert stale(shared, "tl_finetune", "oqmd-formation-enthalpy", refit)
    assert stale({**shared, **refit}, "tl_finetune", "oqmd-formation-enthalpy", plain)
    assert not stale({**shared, **refit}, "tl_finetune", "oqmd-formation-enthalpy", refit)
    assert stale({**shared, **refit}, "tl_finetune", "oqmd-formation-enthalpy", both)
    assert not stale({"val_mae": 0.5, "test_mae": 0.5}, "sc_ml_magpie", "oqmd-formation-enthalpy", both)


def test_a_cached_result_is_reused_only_for_the_same_recipe() -> None:
    reusable, recipe = bench_transfer.reusable, bench_transfer.network_recipe
    args = _args("--ensemble-size", "3", "--blend-mode", "finetune")
    w = bench_transfer.source_versions("tl_ensemble", "oqmd-formation-enthalpy")
    made = {"val_mae": 0.3, "test_mae": 0.4, **w, **bench_transfer.network_protocol(args),
            "recipe": recipe("tl_ensemble", args)}
    assert made["recipe"] == {"batch_size": 32, "lr": 1e-4, "patience": 2, "max_epochs": 2,
                              "blend_modes": ["finetune"], "ensemble_size": 3}
    assert reusable(made, "tl_ensemble", args)
    for other in (("--ensemble-size", "5", "--blend-mode", "finetune"), ("--ensemble-size", "3"),
                  ("--ensemble-size", "3", "--blend-mode", "finetune", "--lr", "2e-4")):
        assert not reusable(made, "tl_ensemble", _args(*other)), other
    legacy = {k: v for k, v in made.items() if k != "recipe"}  # made before recipes were recorded
    assert not reusable(legacy, "tl_ensemble", args)
    assert recipe("sc_ml_magpie", args) == {} and reusable({"val_mae": 0.5, "test_mae": 0.5}, "sc_ml_magpie", args)
    assert "blend_modes" not in recipe("sc_blend_magpie", args) and "ensemble_size" not in recipe("tl_blend_magpie", args)


@pytest.mark.parametrize("bad", ["0", "1", "1.5", "-0.1", "fast"])
def test_ema_decay_must_lie_between_0_and_1(bad: str, capsys) -> None:
    with pytest.raises(SystemExit):
        _args("--ema-decay", bad)
    assert "--ema-decay: must be a number strictly between 0 and 1" in capsys.readouterr().err


def test_results_of_other_sources_sit_beside_and_compete_on_validation() -> None:
    key, parse = bench_transfer.result_key, bench_transfer.parse_result_key
    assert key("tl_finetune", "oqmd-formation-enthalpy") == "tl_finetune"
    assert key("tl_finetune", "oqmd-bandgap") == "tl_finetune@oqmd-bandgap"
    assert key("sc_ml_magpie", "oqmd-bandgap") == "sc_ml_magpie"  # no source involved
    assert parse("tl_finetune@oqmd-bandgap") == ("tl_finetune", "oqmd-bandgap")
    assert parse("tl_finetune") == ("tl_finetune", "oqmd-formation-enthalpy")
    results = {"sc_ml_magpie": {"val_mae": 0.5, "test_mae": 0.5},
               "tl_finetune": {"val_mae": 0.4, "test_mae": 0.41},
               "tl_finetune@oqmd-bandgap": {"val_mae": 0.3, "test_mae": 0.35}}
    summary = bench_transfer.summarise("expt-bandgap", results)
    assert summary["best_tl"]["method"] == "tl_finetune@oqmd-bandgap"
    assert summary["best_sc"]["method"] == "sc_ml_magpie"


def test_a_tl_blend_without_its_network_does_not_stand_for_tl() -> None:
    magpie = {"val_mae": 0.30, "test_mae": 0.40}
    results = {"sc_ml_magpie": magpie, "tl_blend_magpie": {**magpie, "weight": 0.0},
               "tl_finetune": {"val_mae": 0.32, "test_mae": 0.35}}
    assert bench_transfer.summarise("expt-bandgap", results)["best_tl"]["method"] == "tl_finetune"
    results["tl_blend_magpie"] = {"val_mae": 0.29, "test_mae": 0.38, "weight": 0.05}
    assert bench_transfer.summarise("expt-bandgap", results)["best_tl"]["method"] == "tl_blend_magpie"


def test_a_source_that_may_have_seen_the_task_is_refused(monkeypatch) -> None:
    bench_transfer.check_unseen("expt-bandgap", "oqmd-formation-enthalpy")  # the shipped source excludes it
    chained = {"excluded_compositions": {"datasets": ["expt-bandgap"]}, "initialised_from": {"source": "x"}}
    monkeypatch.setattr(bench_transfer, "model_card", lambda name: chained)
    bench_transfer.check_unseen("expt-bandgap", "chained")
    with pytest.raises(ValueError, match="'chained' was not trained with 'jarvis-slme''s compositions removed"):
        bench_transfer.check_unseen("jarvis-slme", "chained")


def test_moe_experts_are_the_oqmd_sources(monkeypatch) -> None:
    cards = {"oqmd-a": {}, "oqmd-b": {}, "chained": {"initialised_from": {"source": "oqmd-a"}}}
    monkeypatch.setattr(bench_transfer, "list_sources", lambda: sorted(cards))
    monkeypatch.setattr(bench_transfer, "model_card", cards.__getitem__)
    assert bench_transfer.moe_sources() == ("oqmd-a", "oqmd-b")


def test_the_command_refuses_an_unseen_check_failure_before_any_work(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_transfer.py", "--tasks", "expt-bandgap", "jarvis-slme", "--methods",
                                      "tl_finetune", "--source", "jarvis-mbj-bandgap", "--results", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench_transfer.main()
    assert "'jarvis-mbj-bandgap' was not trained with 'jarvis-slme''s compositions removed" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # not even the first task was started


def test_the_zero_gate_sets_a_prediction_to_zero_above_a_threshold_chosen_on_validation() -> None:
    d = {"y": np.array([0.0, 0.0, 1.0, 0.0, 2.0]), "val": np.array([0, 1, 2]), "test": np.array([3, 4]),
         "p_zero": (np.array([0.9, 0.4, 0.1]), np.array([0.6, 0.55]))}
    r = transfer_members.score(d, "net", np.array([0.3, 0.2, 1.0]), np.array([0.5, 1.5]))
    assert r["zero_gate"] == 0.5 and r["config"] == "net, zero gate P(0) > 0.50"  # the first best threshold
    assert r["val_mae"] == pytest.approx(0.2 / 3)
    assert r["test_mae"] == pytest.approx((0.0 + 2.0) / 2)  # both test rows are gated, even the wrong one
    off = transfer_members.score({**d, "p_zero": (np.array([0.97, 0.97, 0.97]), d["p_zero"][1])}, "net",
                                 np.array([0.0, 0.0, 1.0]), np.array([0.5, 1.5]))
    assert off["zero_gate"] is None and off["config"] == "net, zero gate off"
    assert off["test_mae"] == pytest.approx((0.5 + 0.5) / 2)
    plain = transfer_members.score({k: v for k, v in d.items() if k != "p_zero"}, "net",
                                   np.array([0.3, 0.2, 1.0]), np.array([0.5, 1.5]))
    assert plain == {"val_mae": pytest.approx(0.5 / 3), "test_mae": pytest.approx(0.5), "config": "net"}


def test_the_zero_gate_on_measured_band_gaps(tmp_path) -> None:
    d = _sample("expt-bandgap", 300, 100, 100)
    plain = bench_transfer.run_method("sc_ml_magpie", d, _args(), {})
    cache: dict = {}
    gated = bench_transfer.run_method("sc_ml_magpie", d, _args("--zero-gate"), cache)
    assert gated["val_mae"] <= plain["val_mae"] and gated["config"].startswith(plain["config"] + ", zero gate ")
    qv, qt = cache["p_zero"]
    assert qv.shape == (100,) and qt.shape == (100,) and ((qv >= 0) & (qv <= 1)).all()
    assert "p_zero" not in d  # the gate does not leak into the split dict of later, ungated methods
    blended = bench_transfer.run_method("sc_blend_magpie", {**d, "network_cache": tmp_path}, _args("--zero-gate"), cache)
    assert blended["val_mae"] <= gated["val_mae"] + 1e-12  # weight 0 is the gated trees
    assert bench_transfer.run_method("base", d, _args("--zero-gate"), cache)["config"] == "training mean"
    key, parse = bench_transfer.result_key, bench_transfer.parse_result_key
    assert key("tl_finetune", "oqmd-bandgap", True) == "tl_finetune@oqmd-bandgap+zero-gate"
    assert key("base", "oqmd-formation-enthalpy", True) == "base" and key("moe", "oqmd-bandgap", True) == "moe"
    assert parse("tl_finetune@oqmd-bandgap+zero-gate") == ("tl_finetune", "oqmd-bandgap")
    assert parse("sc_ml_magpie+zero-gate") == ("sc_ml_magpie", "oqmd-formation-enthalpy")


def test_the_zero_gate_refuses_a_target_without_zeros(task, monkeypatch, tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match="exact zeros in 5–95% of the training rows; 'delta_e' has 0.0%"):
        bench_transfer.run_method("sc_ml_magpie", task, _args("--zero-gate"), {})
    (tmp_path / "expt-formation-enthalpy").mkdir()
    kept = tmp_path / "expt-formation-enthalpy" / "sc_ml_ef.json"
    kept.write_text('{"val_mae": 0.1, "test_mae": 0.1, "config": "kept"}')
    monkeypatch.setattr(sys, "argv", ["bench_transfer.py", "--tasks", "expt-formation-enthalpy", "--methods",
                                      "sc_ml_ef", "--zero-gate", "--results", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench_transfer.main()
    assert "expt-formation-enthalpy sc_ml_ef: the zero gate needs a target with exact zeros" in capsys.readouterr().err
    assert kept.read_text() == '{"val_mae": 0.1, "test_mae": 0.1, "config": "kept"}'


def test_another_carve_seed_carves_another_validation_part() -> None:
    train = np.arange(1000)
    first, again, other = (bench_transfer.carve(train, s) for s in (0, 0, 1))
    np.testing.assert_array_equal(first["val"], again["val"])
    assert len(other["val"]) == 100 and len(np.intersect1d(first["val"], other["val"])) < 30
    assert sorted(np.concatenate([other["fit"], other["val"]])) == list(train)


def test_networks_of_another_carve_are_kept_apart(task, tmp_path) -> None:
    args = _args()
    bench_transfer.network_predictions("modfinetune", {**task, "network_cache": tmp_path}, args)
    bench_transfer.network_predictions("modfinetune", {**task, "network_cache": tmp_path, "carve_seed": 1}, args)
    names = sorted(p.name for p in tmp_path.glob("modfinetune-*.npz"))
    assert len(names) == 2 and names[0].endswith("-e2-carve1.npz") and names[1].endswith("-e2.npz")


@pytest.mark.parametrize("bad", ["-1", "one"])
def test_carve_seed_must_be_a_whole_number(bad: str, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_transfer.py", "--carve-seed", bad])
    with pytest.raises(SystemExit):
        bench_transfer.main()
    assert "--carve-seed: must be a whole number ≥ 0" in capsys.readouterr().err


def test_results_of_another_carve_are_refused_and_kept(monkeypatch, tmp_path, capsys) -> None:
    (tmp_path / "expt-formation-enthalpy").mkdir()
    kept = tmp_path / "expt-formation-enthalpy" / "base.json"
    kept.write_text('{"val_mae": 0.1, "test_mae": 0.1, "config": "kept"}')  # made before carve seeds: seed 0
    monkeypatch.setattr(sys, "argv", ["bench_transfer.py", "--tasks", "expt-formation-enthalpy", "--methods", "base",
                                      "--carve-seed", "1", "--results", str(tmp_path)])
    with pytest.raises(SystemExit):
        bench_transfer.main()
    assert "base.json was made on the validation carve with seed 0, not 1" in capsys.readouterr().err
    assert kept.read_text() == '{"val_mae": 0.1, "test_mae": 0.1, "config": "kept"}'
    other = tmp_path / "carve1"
    monkeypatch.setattr(sys, "argv", ["bench_transfer.py", "--tasks", "expt-formation-enthalpy", "--methods", "base",
                                      "--carve-seed", "1", "--results", str(other)])
    try:
        bench_transfer.main()
    except DatasetError as exc:
        pytest.skip(f"needs dataset expt-formation-enthalpy: {exc}")
    made = json.loads((other / "expt-formation-enthalpy" / "base.json").read_text())
    assert made["carve_seed"] == 1 and made["n_train"] > 1000
