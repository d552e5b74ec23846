"""Pre-training run directories: exact resume with dropout, log and checkpoint agreeing after a crash,
early-stopped runs, damaged files and clean errors (library and `aloop pretrain`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import aloop.elemnet.pretrain as pretrain_module
from aloop.cli import app
from aloop.datasets import DatasetError, get_spec, verify
from aloop.elemnet.pretrain import PretrainConfig, RunDirectoryError, pretrain

DATASET = "jarvis-exfoliation-energy"  # small, train/test only (validation carved from train)
TINY = PretrainConfig(dataset=DATASET, max_epochs=3, limit_rows=256, batch_size=128, threads=1)


@pytest.fixture(autouse=True)
def _needs_dataset() -> None:
    try:
        verify(get_spec(DATASET))
    except DatasetError as exc:
        pytest.skip(f"needs dataset {DATASET!r}: {exc}")


def _interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make ``pretrain`` raise KeyboardInterrupt during ``epoch`` (before its checkpoint is written)."""
    real, calls = pretrain_module._mae, []

    def mae(*args: object) -> float:
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pretrain_module, "_mae", mae)


def _model(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def _files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir())}


def _cli(*args: str):  # -> typer.testing.Result
    return CliRunner().invoke(app, ["pretrain", "--dataset", DATASET, "--limit-rows", "256", "--batch-size", "128",
                                    "--threads", "1", *args], catch_exceptions=False)


def test_resume_with_dropout_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(TINY, dropout=True)
    pretrain(config, tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m, 3)
        with pytest.raises(KeyboardInterrupt):
            pretrain(config, tmp_path / "resumed", progress=False)
    assert len((tmp_path / "resumed" / "log.jsonl").read_text().splitlines()) == 2
    pretrain(config, tmp_path / "resumed", progress=False)
    whole, resumed = _model(tmp_path / "whole"), _model(tmp_path / "resumed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_checkpoint_without_rng_state_still_resumes_with_a_note(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config, run = replace(TINY, dropout=True), tmp_path / "run"
    with monkeypatch.context() as m:
        _interrupt_at_epoch(m, 2)
        with pytest.raises(KeyboardInterrupt):
            pretrain(config, run, progress=False)
    old = torch.load(run / "checkpoint.pt", weights_only=True)
    del old["torch_rng"]  # as written before the dropout random state was saved
    torch.save(old, run / "checkpoint.pt")
    with pytest.warns(UserWarning, match="predates saving the dropout random state"):
        summary = pretrain(config, run, progress=False)
    assert summary["epochs_run"] == 3


def test_log_is_reconciled_with_the_checkpoint_after_a_crash(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = replace(TINY, max_epochs=2)
    pretrain(config, run, progress=False)
    log = run / "log.jsonl"
    # A crash after checkpoint.pt was written but before log.jsonl was: the log lacks the last epoch.
    log.write_text(log.read_text().splitlines(keepends=True)[0])
    summary = pretrain(config, run, progress=False)
    assert [json.loads(line) for line in log.read_text().splitlines()] == summary["history"]
    assert len(summary["history"]) == 2
    # A stray line beyond the checkpoint's epoch is dropped; an extended run logs every epoch once.
    log.write_text(log.read_text() + json.dumps({"epoch": 3, "val_mae": 0.0}) + "\n")
    summary = pretrain(replace(config, max_epochs=3), run, progress=False)
    assert [json.loads(line) for line in log.read_text().splitlines()] == summary["history"]
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3]


def test_an_early_stopped_run_is_not_extended_silently(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # A zero learning rate never improves the validation MAE: stops after epoch 2 with patience 1.
    config = replace(TINY, max_epochs=6, patience=1, peak_lr=0.0)
    assert pretrain(config, run, progress=False)["epochs_run"] == 2
    before = _files(run)
    with pytest.raises(ValueError, match="early-stopped at epoch 2 .*patience 1.* does not restart it"):
        pretrain(replace(config, max_epochs=12), run, progress=False)
    assert _files(run) == before  # no schedule change recorded, nothing rewritten
    result = _cli("--run-dir", str(run), "--epochs", "12", "--patience", "1", "--lr", "0")
    assert result.exit_code == 2 and "early-stopped at epoch 2" in result.stderr
    assert "resuming" not in result.stderr  # refused before anything is announced
    shorter = _cli("--run-dir", str(run), "--epochs", "1", "--patience", "1", "--lr", "0")
    assert shorter.exit_code == 2
    assert ("has already run 2 epochs; to continue it, the epoch limit (max_epochs, `aloop pretrain --epochs`) "
            "must exceed 2; to resume it as it was, give its own 6") in " ".join(shorter.stderr.split())
    assert "resuming" not in shorter.stderr
    assert _files(run) == before
    # The same command as before still just reports the finished run.
    assert pretrain(config, run, progress=False)["schedule_changes"] == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not-a-checkpoint", "best-deleted"])
def test_damaged_run_directory_files_give_clear_errors(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    config = replace(TINY, max_epochs=2)
    pretrain(config, run, progress=False)
    ckpt = run / "checkpoint.pt"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint at all" * 50)
    elif damage == "not-a-checkpoint":
        torch.save({"model": {}}, ckpt)
    else:
        (run / "best.pt").unlink()
    name = "best.pt" if damage == "best-deleted" else "checkpoint.pt"
    before = _files(run)
    with pytest.raises(RunDirectoryError, match=f"{name} .*(restore|delete)"):
        pretrain(config, run, progress=False)
    with pytest.raises(RunDirectoryError):  # an extension fails the same way, before any training
        pretrain(replace(config, max_epochs=3), run, progress=False)
    result = _cli("--run-dir", str(run), "--epochs", "2")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.stderr and name in result.stderr
    assert _files(run) == before


def test_nothing_left_to_train_on_and_a_negative_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"no training rows of {DATASET} are left after excluding"):
        pretrain(replace(TINY, limit_rows=None, exclude=(DATASET,)), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    result = _cli("--run-dir", str(tmp_path / "run"), "--exclude", DATASET)
    assert result.exit_code == 2 and "no training rows" in result.stderr
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -3"):
        pretrain(replace(TINY, seed=-3), tmp_path / "run", progress=False)
    result = _cli("--run-dir", str(tmp_path / "run"), "--seed", "-3")
    assert result.exit_code == 2 and "--seed" in result.output
    assert not (tmp_path / "run").exists()


def test_resuming_another_recipe_names_each_differing_option_before_saying_resuming(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _cli("--run-dir", str(run), "--epochs", "1", "--lr", "0.001")
    assert first.exit_code == 0, first.output
    before = _files(run)
    result = _cli("--run-dir", str(run), "--epochs", "1")  # --lr left out: the recipe default
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "resuming pre-training" not in said, result.output
    assert "different recipe: --lr 0.001 in the checkpoint, 0.0006 now (the default)" in said
    # --dataset left out: the default dataset, named with the checkpoint's; several fields at once
    result = CliRunner().invoke(app, ["pretrain", "--run-dir", str(run), "--epochs", "1", "--limit-rows", "256",
                                      "--batch-size", "64", "--threads", "1", "--lr", "0.001"])
    said = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "resuming pre-training" not in said, result.output
    assert (f"--dataset '{DATASET}' in the checkpoint, 'oqmd-formation-enthalpy' now (the default); "
            "--batch-size 128 in the checkpoint, 64 now") in said
    assert _files(run) == before
    # The library names the fields too.
    with pytest.raises(pretrain_module.RecipeMismatchError, match=r"peak_lr 0.001 there, 0.0006 now"):
        pretrain(replace(TINY, max_epochs=1), run, progress=False)
    assert pretrain_module.check_resume(replace(TINY, max_epochs=1, peak_lr=0.001), run)
    assert not pretrain_module.check_resume(TINY, tmp_path / "fresh")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("threads", 0, "threads must be a positive integer, got 0"),
    ("max_epochs", 0, "max_epochs must be a positive integer, got 0"),
    ("batch_size", 0, "batch_size must be a positive integer, got 0"),
    ("limit_rows", 0, "limit_rows must be a positive integer, got 0"),  # was read as no limit: the whole dataset
    ("batch_size", 64.0, "batch_size must be a positive integer, got 64.0"),
    ("peak_lr", -1e-3, "peak_lr must be ≥ 0, got -0.001"),
])
def test_settings_a_run_cannot_use_are_refused_before_it_starts(tmp_path: Path, option: str, value: object,
                                                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pretrain(replace(TINY, **{option: value}), tmp_path / "run", progress=False)
    with pytest.raises(TypeError, match="one string 'jarvis-spillage'; wrap it in a list"):
        pretrain(replace(TINY, exclude="jarvis-spillage"), tmp_path / "run", progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "run").exists() and torch.get_num_threads() >= 1


def test_threads_apply_while_training_and_are_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pretrain(threads=1)`` from a notebook trains on one thread and leaves the process's count as it was."""
    real, during = pretrain_module._mae, []

    def mae(*args: object) -> float:
        during.append(torch.get_num_threads())
        return real(*args)

    monkeypatch.setattr(pretrain_module, "_mae", mae)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pretrain(replace(TINY, max_epochs=1), tmp_path / "run", progress=False)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert set(during) == {1} and after == 2


def test_an_unknown_dataset_to_exclude_is_named_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exclude: unknown dataset 'nope'; known datasets: "):
        pretrain(replace(TINY, exclude=("nope",)), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
