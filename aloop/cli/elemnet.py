"""`aloop pretrain` and `aloop export-source`: train (or resume) an ElemNet source model, then make it a --source."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aloop.cli._output import err, fail, out, warn

if TYPE_CHECKING:
    from aloop.elemnet.pretrain import RecipeMismatchError


#: The recipe defaults quoted in --help (importing torch just to print help would be slow);
#: tests check they equal ``PretrainConfig``'s.
RECIPE_DEFAULTS: dict[str, Any] = {
    "max_epochs": 50, "batch_size": 1024, "peak_lr": 6e-4, "patience": 12, "dropout": False, "seed": 0, "threads": 2,
}


def pretrain_config(dataset: str, **overrides: Any):  # -> PretrainConfig
    """A ``PretrainConfig`` for ``dataset``: the shipped recipe with the given (non-``None``) fields replaced."""
    from aloop.elemnet.pretrain import PretrainConfig

    fields = {k: v for k, v in overrides.items() if v is not None}
    if "exclude" in fields:
        fields["exclude"] = tuple(fields["exclude"])
    return PretrainConfig(dataset=dataset, **fields)


def _check_dataset(name: str, need_split: bool = True) -> None:
    """Fail cleanly unless ``name`` is a registry dataset whose file is present and verified."""
    from aloop.datasets import DatasetError, get_spec, verify

    try:
        spec = get_spec(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if need_split and spec.split_column is None:
        fail(f"dataset {name!r} has no published train/test split; pre-training needs one "
             "(e.g. oqmd-formation-enthalpy, oqmd-bandgap, the jarvis-* datasets)")
    try:
        verify(spec)
    except DatasetError as exc:
        fail(str(exc))


def _default(field: str) -> str:
    value = RECIPE_DEFAULTS[field]
    return f"(recipe default: {value:g})" if isinstance(value, float) else f"(recipe default: {value})"


def pretrain_command(
    run_dir: Annotated[Path, typer.Option(
        "--run-dir", show_default=False,
        help="Directory for checkpoint.pt, log.jsonl, best.pt, final.pt and summary.json.")],
    dataset: Annotated[str, typer.Option(
        "--dataset", "-d", help="Registry dataset with a published train/test split (the validation part is the published one, or 10% carved from train with the seed).")] = "oqmd-formation-enthalpy",
    epochs: Annotated[int | None, typer.Option(
        "--epochs", min=1, help=f"Maximum epochs {_default('max_epochs')}; raise it to extend a run.")] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help=f"Batch size {_default('batch_size')}.")] = None,
    lr: Annotated[float | None, typer.Option(
        "--lr", min=0.0, help=f"Peak learning rate of the one-cycle schedule {_default('peak_lr')}.")] = None,
    patience: Annotated[int | None, typer.Option(
        "--patience", min=1,
        help=f"Early stopping: epochs without a better validation MAE {_default('patience')}.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", "-x",
        help="Remove every composition of this registry dataset from train/val (repeatable).")] = None,
    init_source: Annotated[str | None, typer.Option(
        "--init-source", help="Start from this source model's hidden layers (chained transfer; a shipped one such as "
        "oqmd-formation-enthalpy, or yours from `aloop export-source`) instead of a random initialisation.")] = None,
    dropout: Annotated[bool | None, typer.Option(
        "--dropout/--no-dropout", help="Use ElemNet's published dropout (recipe default: off).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help=f"Random seed {_default('seed')}.")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1,
        help=f"torch CPU threads {_default('threads')}; may differ when resuming.")] = None,
    limit_rows: Annotated[int | None, typer.Option(
        "--limit-rows", min=1, hidden=True, help="For tests: only the first rows of each split.")] = None,
) -> None:
    """Pre-train an ElemNet source model; re-running the same command resumes from the last checkpoint.

    Every epoch is checkpointed in --run-dir, so a run can be stopped (Ctrl-C) and
    continued later with the same command; a larger --epochs extends a run (the learning-rate
    schedule is rebuilt for the new length). Any other change of recipe needs a new --run-dir.
    """
    from aloop.elemnet.pretrain import RecipeMismatchError, check_resume, pretrain

    _check_dataset(dataset)
    for name in exclude or []:
        _check_dataset(name, need_split=False)
    if init_source is not None:
        from aloop.elemnet.sources import SourceModelError, model_card

        try:
            model_card(init_source)
        except SourceModelError as exc:
            fail(str(exc))
    config = pretrain_config(dataset, max_epochs=epochs, batch_size=batch_size, peak_lr=lr, patience=patience,
                             exclude=exclude, init_source=init_source, dropout=dropout, seed=seed, threads=threads,
                             limit_rows=limit_rows)
    if run_dir.exists() and not run_dir.is_dir():
        fail(f"--run-dir {run_dir} is a file; name a folder (a new one, or a run to resume)")
    try:
        resuming = check_resume(config, run_dir)
    except RecipeMismatchError as exc:
        fail(_mismatch_text(exc))
    except ValueError as exc:  # an unreadable checkpoint, other initial weights
        fail(str(exc))
    err.print(f"{'resuming' if resuming else 'starting'} pre-training in {run_dir}: "
              + ", ".join(f"{k}={v}" for k, v in vars(config).items()), markup=False, soft_wrap=True)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: warn(str(message))  # type: ignore[assignment]
            summary = pretrain(config, run_dir)
    except KeyboardInterrupt:
        fail(f"interrupted; the last completed epoch is checkpointed in {run_dir}: re-run the same command to resume",
             code=130)
    except RecipeMismatchError as exc:
        fail(_mismatch_text(exc))
    except ValueError as exc:  # an unreadable run-directory file, no rows left to train on
        fail(str(exc))
    print_summary(summary, dataset, run_dir)


#: ``PretrainConfig`` field -> the `aloop pretrain` option that sets it.
OPTIONS = {"dataset": "--dataset", "exclude": "--exclude", "batch_size": "--batch-size", "max_epochs": "--epochs",
           "peak_lr": "--lr", "patience": "--patience", "dropout": "--dropout/--no-dropout", "seed": "--seed",
           "init_source": "--init-source", "limit_rows": "--limit-rows"}


def _mismatch_text(exc: RecipeMismatchError) -> str:
    """The refusal to resume another recipe: each differing option with the checkpoint's value and
    this command's (marked when it is the default, as when the option is left out)."""
    from dataclasses import fields

    from aloop.elemnet.pretrain import PretrainConfig

    def shown(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    defaults = {f.name: shown(f.default) for f in fields(PretrainConfig)}
    parts = [f"{OPTIONS.get(k, k)} {shown(old)!r} in the checkpoint, {shown(new)!r} now"
             + (" (the default)" if shown(new) == defaults.get(k) else "") for k, old, new in exc.differences]
    return (f"{exc.path} was written with a different recipe: {'; '.join(parts)}. Give the checkpoint's values to "
            "resume it, or use a new --run-dir")


def print_summary(summary: dict, dataset: str, run_dir: Path) -> None:
    """Print a pre-training summary: sizes, epochs, validation/test MAE and dead units per layer."""
    from aloop.datasets import get_spec

    units = next(iter(get_spec(dataset).targets.values()))
    table = Table(title=f"ElemNet pre-trained on {dataset}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    table.add_row("train / val / test", f"{summary['n_train']:,} / {summary['n_val']:,} / {summary['n_test']:,}")
    table.add_row("epochs run (best)", f"{summary['epochs_run']} ({summary['best_epoch']})")
    table.add_row("validation MAE", f"{summary['val_mae']:.4f} {units}")
    table.add_row("test MAE", f"{summary['test_mae']:.4f} {units}")
    dead = summary.get("dead_unit_fraction") or []
    table.add_row("dead units per layer", " ".join(f"{d:.2f}" for d in dead))
    table.add_row("files", escape(f"{run_dir}/best.pt, final.pt, summary.json, log.jsonl"))
    out.print(table)
    out.print(f"to use it as --source NAME: aloop export-source {run_dir} NAME", markup=False, highlight=False,
              soft_wrap=True)


def export_source_command(
    run_dir: Annotated[Path, typer.Argument(show_default=False, help="A finished `aloop pretrain` run directory.")],
    name: Annotated[str, typer.Argument(show_default=False, help="The name to give it (the value of --source).")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Replace your source model of this name (its features, and campaigns using them, change).")] = False,
) -> None:
    """Make a pre-trained network a source model: usable by `aloop featurize --source`, `aloop transfer
    --source` and campaign definitions, and listed by `aloop sources`.

    Writes NAME.safetensors (fp16) and its model card NAME.json, with the test MAE of the weights as
    written, to $ALOOP_SOURCES_DIR (default ~/.local/share/aloop/sources).
    """
    from aloop.elemnet.sources import SourceModelError, export_source_model, model_card, user_sources_dir

    if not run_dir.is_dir():
        fail(f"{run_dir} is not a folder; give the --run-dir of a finished `aloop pretrain` run")
    try:
        path = export_source_model(run_dir, name, replace=replace)
    except (SourceModelError, ValueError) as exc:
        fail(str(exc.args[0]))
    except OSError as exc:  # an unwritable folder, a full disk: the files are written under temporary names
        fail(f"cannot write the source model to {user_sources_dir()}: {exc.strerror or exc}; set ALOOP_SOURCES_DIR "
             "to a folder you can write to")
    card = model_card(name)
    units = card["source_dataset"]["units"]
    out.print(f"source model {name!r} ({card['source_dataset']['name']}, test MAE {card['test_mae']:.4f} {units} "
              f"as written) -> {path.parent}", markup=False, highlight=False, soft_wrap=True)
