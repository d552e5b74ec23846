"""`aloop sources` and `aloop transfer`: the ElemNet source models and transfer learning on a table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aloop.atomic import write_atomically
from aloop.cli._output import bad_rows_text, err, fail, out, reserve_new_file, warn


def sources_command() -> None:
    """List the ElemNet source models (shipped, and your own from `aloop export-source`) with their
    held-out error and dead units."""
    from rich import box
    from rich.table import Table

    from aloop.elemnet.sources import is_shipped, list_sources, model_card, user_sources_dir

    names = list_sources()
    if not names:
        err.print(f"no source models: none is shipped in this installation and {user_sources_dir()} holds none "
                  "(`aloop pretrain`, then `aloop export-source`)", markup=False, highlight=False)
        return
    own = [name for name in names if not is_shipped(name)]
    cards = {name: model_card(name) for name in names}
    # The name is the value --source needs: it never wraps or shortens, even on a narrow terminal or
    # a pipe (80 columns); the numbers never wrap either, and only the text columns fold.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("name (--source)", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("units", no_wrap=True, min_width=max(len(c["source_dataset"]["units"]) for c in cards.values()))
    for header, width in (("test\nMAE", 6), ("val\nMAE", 6), ("epochs", 6), ("dead\nunits", 5)):
        table.add_column(header, no_wrap=True, justify="right", min_width=width)
    table.add_column("starting weights", overflow="fold", ratio=1)
    for name, card in cards.items():
        dead = card["dead_unit_fraction_per_layer"]
        table.add_row(name, card["source_dataset"]["units"], f"{card['test_mae']:.4f}", f"{card['val_mae']:.4f}",
                      str(card["epochs_run"]), f"{sum(dead) / len(dead):.0%}", starting_weights(card))
    out.print(table, crop=False)  # too narrow a terminal wraps the last columns rather than losing them
    # A dataset column would squeeze the table on an 80-column terminal: the few sources not named
    # after their dataset say so below it.
    other = {name: card["source_dataset"]["name"] for name, card in cards.items() if card["source_dataset"]["name"] != name}
    notes = [f"{name}: trained on {dataset}" for name, dataset in other.items()]
    notes.append(f"{'the others are' if other else 'each source model is'} trained on the dataset of the same name "
                 "(`aloop datasets show NAME`)")
    notes += ["MAE in the units shown, on the source dataset's held-out test and validation rows",
              "dead units: mean share per hidden layer of units never active on a sample of the training set"]
    if own:
        notes.append(f"yours (`aloop export-source`, in {user_sources_dir()}): {', '.join(own)}; the others ship with aloop")
    out.print("\n".join(notes), markup=False, highlight=False)


def starting_weights(card: dict) -> str:
    """How a source model's training started, for `aloop sources`: random weights, or another source's layers."""
    init = card.get("initialised_from")
    if init and init.get("source"):
        return f"hidden layers of {init['source']}"
    return "random (He init)"


#: The ``--source`` and ``--layer`` options of ``aloop transfer`` and the strategies that use them.
SOURCE_STRATEGIES: tuple[str, ...] = ("featextr", "finetune", "modfinetune", "freezing")
LAYER_STRATEGIES: tuple[str, ...] = ("featextr",)
DEFAULT_SOURCE = "oqmd-formation-enthalpy"
DEFAULT_LAYER = 2


def unused_options(strategy: str, source: str | None, layer: int | None) -> str | None:
    """The refusal for ``--source``/``--layer`` given to a strategy that does not use them, else ``None``."""
    for option, value, users in (("--source", source, SOURCE_STRATEGIES), ("--layer", layer, LAYER_STRATEGIES)):
        if value is not None and strategy not in users:
            why = {"scratch": " (it trains ElemNet from random weights)",
                   "moe": " (it mixes its own source models)"}.get(strategy, "") if option == "--source" else ""
            return f"{option} applies to the strategies {', '.join(users)}, not {strategy!r}{why}"
    return None


def _table(path: Path, formula_column: str, target: str | None, what: str):  # -> (X, y | None, frame)
    """Fractions, target and frame of a table (``what``: the argument that named it); bad rows are reported as
    ``aloop featurize`` does (data rows from 1, with their file lines)."""
    import pandas as pd

    from aloop.chem import to_fraction_matrix
    from aloop.cli.featurize import BadFormulaRow, read_table

    try:
        frame = read_table(path, formula_column)
    except KeyError as exc:
        fail(f"{what}: {exc.args[0]}")
    except (OSError, ValueError) as exc:
        fail(f"{what}: {exc}")
    if target is not None and target not in frame.columns:
        fail(f"{what}: {path} has no column {target!r} (columns: {', '.join(map(str, frame.columns))})")
    formulas = ["" if pd.isna(f) else str(f) for f in frame[formula_column]]
    X, bad = to_fraction_matrix(formulas, errors="collect")
    csv = path.suffix.lower() not in (".parquet", ".pq")
    lines = frame.attrs.get("file_lines")
    if bad:
        err.print(bad_rows_text([BadFormulaRow(b.index + 1, b.formula, b.reason) for b in bad],
                                csv=csv, lines=lines), markup=False, highlight=False, soft_wrap=True)
        fail(f"{len(bad)} of {len(frame)} formulas in {path} are invalid (rows listed above); fix or remove them")
    if target is None:
        return X, None, frame
    y = pd.to_numeric(frame[target], errors="coerce").to_numpy(float)
    rows = [i + 1 for i, v in enumerate(y) if not (v == v and abs(v) != float("inf"))]
    if rows:  # named as the bad formulas are: "row N (line M)", data rows from 1, lines counting the header
        more = f", … ({len(rows)} rows in all)" if len(rows) > 20 else ""
        named = ", ".join(f"row {r}" + (f" (line {lines[r - 1] if lines else r + 1})" if csv else "") for r in rows[:20])
        fail(f"{path}: column {target!r} has non-numeric, NaN or infinite values in {named}{more}")
    return X, y, frame


#: Share of the training rows the tree and ``base`` strategies hold out for their validation MAE
#: (as the network strategies do for early stopping).
VALIDATION_FRACTION = 0.1


def validation_text(model: object, X: object, y: object, seed: int) -> str:
    """The validation MAE line of ``aloop transfer`` and what it was measured on.

    Network strategies and ``moe`` report their early-stopping MAE (the best epoch's, on a seeded
    10% of the rows they did not train on). The tree strategies and ``base`` have no internal
    split: a copy is fitted on a seeded 90% and scored on the other 10%, while the model that
    predicts is fitted on every row as before. With the zero gate, the MAE is the regressor's, ungated.
    """
    import numpy as np
    from sklearn.base import clone

    from aloop.elemnet.moe import MoERegressor
    from aloop.elemnet.transfer import ElemNetRegressor, best_epoch
    from aloop.elemnet.zero_gate import ZeroGatedRegressor

    X, y = np.asarray(X), np.asarray(y, dtype=np.float64)
    gated = isinstance(model, ZeroGatedRegressor)
    inner = model.regressor_ if gated else model  # type: ignore[attr-defined]
    note, n = (" (before the zero gate)" if gated else ""), len(y)
    if isinstance(inner, ElemNetRegressor | MoERegressor):
        n_val = max(1, int(round(inner.val_fraction * n)))
        if isinstance(inner, MoERegressor):
            kept = inner.guard_["kept"]
            how = "early stopping" + (f"; the guard kept {kept}, the best of the mixture and each expert alone"
                                      if inner.guard and len(inner.gate_weights_) > 1 else "")
            return f"validation MAE {inner.val_mae_:.4f}{note} on {n_val:,} held-out rows ({how})"
        epoch = best_epoch(inner.history_)
        how = f"early stopping: best epoch {epoch} of {len(inner.history_)}"
        if inner.refit:
            how += f"; the network was then retrained on all {n:,} rows for {epoch} epochs"
        return f"validation MAE {inner.history_[epoch - 1]['val_mae']:.4f}{note} on {n_val:,} held-out rows ({how})"
    if n < 10:
        return f"no validation MAE: {n} rows are too few to hold out a part (at least 10 are needed)"
    from sklearn.model_selection import GroupShuffleSplit

    from aloop.chem import keys_from_matrix

    # Held out by composition: a repeated composition's twin on the fitting side would flatter the score.
    split = GroupShuffleSplit(n_splits=1, test_size=VALIDATION_FRACTION, random_state=seed)
    fit, val = next(split.split(X, y, groups=keys_from_matrix(X)))
    mae = float(np.mean(np.abs(clone(inner).fit(X[fit], y[fit]).predict(X[val]) - y[val])))
    return (f"validation MAE {mae:.4f}{note} on {len(val):,} held-out rows (their compositions held out from a copy "
            f"fitted on the other {len(fit):,}, seed {seed}; the model used for --test/--predict is fitted on all {n:,})")


def transfer_command(
    train: Annotated[Path, typer.Argument(show_default=False, help="Training table (CSV/Parquet) with formulas and the target.")],
    target: Annotated[str, typer.Option("--target", "-t", show_default=False, help="Target column.")],
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s",
        help="base, sc-ef, sc-magpie, featextr (trees on ElemNet activations), finetune, modfinetune, freezing, "
             "scratch, moe.")] = "modfinetune",
    source: Annotated[str | None, typer.Option("--source", show_default=False, help=(
        f"ElemNet source model (`aloop sources`) for {', '.join(SOURCE_STRATEGIES)}; default {DEFAULT_SOURCE}."))] = None,
    layer: Annotated[int | None, typer.Option("--layer", min=1, max=16, show_default=False, help=(
        f"Hidden layer 1–16 whose activations featextr uses; default {DEFAULT_LAYER}."))] = None,
    formula_column: Annotated[str, typer.Option("--formula-column", "-c")] = "formula",
    test: Annotated[Path | None, typer.Option("--test", help="Table with the target: report test MAE.")] = None,
    predict: Annotated[Path | None, typer.Option("--predict", help="Table of formulas to predict.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write --predict's predictions (CSV).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    refit: Annotated[bool, typer.Option(
        "--refit", help="Network strategies: after early stopping on 10% of the rows, retrain on every row "
                        "for the best epoch count.")] = False,
    tune: Annotated[int | None, typer.Option(
        "--tune", min=1, show_default=False,
        help="Network strategies: first search the learning rate, batch size and weight decay over this many "
             "trials (optuna; each scored on the held-out 10%), then train with the best.")] = None,
    zero_gate: Annotated[bool, typer.Option(
        "--zero-gate", help="For a target with exact zeros (measured band gaps: metals are 0 eV): predict 0 where a "
                            "Magpie classifier's P(y = 0) exceeds a threshold chosen on 10% of the rows.")] = False,
) -> None:
    """Train a model on a small dataset by transfer learning from an ElemNet source model.

    Prints the validation MAE and, with --test, the test MAE; with --predict and -o, writes
    predictions. The validation MAE is measured on a seeded 10% of the training rows: the
    early-stopping part of the network strategies and moe, and for base, sc-ef, sc-magpie and
    featextr a part held out from a copy of the model (the model itself is fitted on every row), by composition.
    """
    from aloop.elemnet.transfer import MODES, STRATEGIES

    if (predict is None) != (output is None):
        fail("--predict and --output go together")
    for flag, given in (("--refit", refit), ("--tune", tune is not None)):
        if given and strategy not in MODES:
            fail(f"{flag} applies to the network strategies ({', '.join(MODES)}), not {strategy!r}")
    if strategy in STRATEGIES and (refusal := unused_options(strategy, source, layer)):
        fail(refusal)
    if output is not None and output.suffix.lower() != ".csv":
        fail(f"-o: {output.name}: predictions are written as CSV; name the file .csv")
    tmp = reserve_new_file(output, "-o", "predictions.csv") if output is not None else None  # before any training
    try:
        _train_and_report(train, target, strategy, formula_column, source, layer, seed, refit, tune, zero_gate,
                          test, predict, output, tmp)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _say_overlaps(X: object, X_test: object | None, model: object, strategy: str, train: Path) -> None:
    """Warn where a score would flatter the model: compositions repeated in the training table (the networks'
    early-stopping split is by row), or --test compositions that are also training compositions."""
    from aloop.chem import keys_from_matrix
    from aloop.elemnet.moe import MoERegressor
    from aloop.elemnet.transfer import ElemNetRegressor

    keys = keys_from_matrix(X)  # type: ignore[arg-type]
    repeats = len(keys) - len(set(keys))
    network = isinstance(getattr(model, "regressor_", model), ElemNetRegressor | MoERegressor)
    if repeats and network:
        warn(f"{train}: {repeats:,} rows repeat a composition of another row; {strategy}'s validation rows are drawn "
             "by row, so some have a twin in training and its validation MAE is optimistic (average the replicates "
             "first for an honest one)")
    if X_test is not None:
        seen = set(keys)
        shared = sum(k in seen for k in keys_from_matrix(X_test))  # type: ignore[arg-type]
        if shared:
            warn(f"{shared:,} of the --test rows have a composition of the training table: the test MAE is not "
                 "a held-out score for them")


def _train_and_report(train: Path, target: str, strategy: str, formula_column: str, source: str | None,
                      layer: int | None, seed: int, refit: bool, tune: int | None, zero_gate: bool, test: Path | None,
                      predict: Path | None, output: Path | None, tmp: Path | None) -> None:
    """Fit the strategy, print the validation (and test) MAE, write --predict's predictions (``tmp``: the file
    ``reserve_new_file`` made beside ``output``, the one ``write_atomically`` writes and names ``output``)."""
    import numpy as np

    from aloop.elemnet.transfer import make_regressor
    from aloop.elemnet.zero_gate import ZeroGatedRegressor

    X, y, _ = _table(train, formula_column, target, "TRAIN")
    # Every table is read and checked before training, so a bad --test or --predict file wastes no run.
    tested = _table(test, formula_column, target, "--test") if test is not None else None
    to_predict = _table(predict, formula_column, None, "--predict") if predict is not None else None
    try:
        options = _tuned(strategy, source, seed, tune, X, y) if tune is not None else {}
        model = make_regressor(strategy, source=source, layer=layer, seed=seed,
                               **({"refit": True} if refit else {}), **options)
        if zero_gate:
            model = ZeroGatedRegressor(model, seed=seed)
        with _epochs_shown(strategy, len(y)):
            model.fit(X, y)
    except (LookupError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    err.print(f"trained {strategy} on {len(y):,} rows of {train}", markup=False)
    _say_overlaps(X, tested[0] if tested is not None else None, model, strategy, train)
    try:
        out.print(validation_text(model, X, y, seed), markup=False, soft_wrap=True)
    except ValueError as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    if zero_gate:
        t = model.threshold_
        out.print(f"zero gate: {'off (no threshold helped on validation)' if t is None else f'0 where P(0) > {t:.2f}'}",
                  markup=False)
    if hasattr(model, "gate_weights_"):
        out.print("gate weights: " + ", ".join(f"{k} {v:.2f}" for k, v in model.gate_weights_.items()), markup=False)
    if tested is not None:
        Xt, yt, _ = tested
        out.print(f"test MAE {float(np.mean(np.abs(model.predict(Xt) - yt))):.4f} on {len(yt):,} rows", markup=False)
    if to_predict is not None and output is not None and tmp is not None:
        Xp, _, frame = to_predict
        frame[f"predicted_{target}"] = model.predict(Xp)
        try:
            write_atomically(output, frame.to_csv(index=False).encode(), replace=False)
        except OSError as exc:
            fail(f"-o: {output} not written: {'it appeared meanwhile' if isinstance(exc, FileExistsError) else exc}")
        err.print(f"wrote {len(frame):,} predictions to {output}", markup=False)


def _tuned(strategy: str, source: str | None, seed: int, n_trials: int, X: object, y: object) -> dict[str, object]:
    """The learning rate, batch size and weight decay that ``--tune`` chose, after printing them."""
    from aloop.elemnet.tuning import tune

    fixed = {"mode": strategy, "source": None if strategy == "scratch" else source or DEFAULT_SOURCE}
    with _epochs_shown(f"{strategy} (tuning, {n_trials} trials)", len(y)):  # type: ignore[arg-type]
        result = tune(X, y, n_trials=n_trials, seed=seed, **fixed)  # type: ignore[arg-type]
    chosen = {k: result.params[k] for k in ("lr", "batch_size", "weight_decay")}
    pruned = sum(t["state"] == "pruned" for t in result.trials)
    out.print(f"tuned over {len(result.trials)} trials ({pruned} stopped early): learning rate {chosen['lr']:.3g}, "
              f"batch size {chosen['batch_size']}, weight decay {chosen['weight_decay']:.3g}; its validation MAE "
              f"{result.val_mae:.4f} is optimistic (the search chose on those rows)", markup=False, soft_wrap=True)
    return chosen


@contextmanager
def _epochs_shown(strategy: str, n: int) -> Iterator[None]:
    """A status line while networks train (minutes on a CPU): which network, its epoch and validation loss."""
    from aloop.training import training_progress

    networks = [0]
    with err.status(f"training {strategy} on {n:,} rows") as status:

        def show(epoch: int, val: float, best: float) -> None:
            networks[0] += epoch == 1
            status.update(f"training {strategy} on {n:,} rows: network {networks[0]}, epoch {epoch}, "
                          f"validation loss {val:.4g} (best {best:.4g})")

        with training_progress(show):
            yield
