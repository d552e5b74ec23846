"""`aloop sources` and `aloop transfer`: shipped ElemNet source models and transfer learning on a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aloop.cli._output import bad_rows_text, err, fail, out


def sources_command() -> None:
    """List the shipped ElemNet source models with their held-out error and dead units."""
    from rich.table import Table

    from aloop.elemnet.sources import list_sources, model_card

    names = list_sources()
    if not names:
        err.print("no source models are shipped in this installation")
        return
    table = Table("name", "dataset", "initialised from", "units", "test MAE", "val MAE", "epochs",
                  "dead units (mean over layers)")
    for name in names:
        card = model_card(name)
        dead = card["dead_unit_fraction_per_layer"]
        init = (card.get("initialised_from") or {}).get("source", "random (He)")
        table.add_row(name, card["source_dataset"]["name"], init, card["source_dataset"]["units"], f"{card['test_mae']:.4f}",
                      f"{card['val_mae']:.4f}", str(card["epochs_run"]), f"{sum(dead) / len(dead):.1%}")
    out.print(table)


def _table(path: Path, formula_column: str, target: str | None):  # -> (X, y | None, frame)
    """Fractions, target and frame of a table; bad rows are reported as ``aloop featurize`` does (data rows from 1)."""
    import pandas as pd

    from aloop.chem import to_fraction_matrix
    from aloop.cli.featurize import BadFormulaRow

    if not path.exists():
        fail(f"file not found: {path}")
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path, dtype={formula_column: str})
    for col in (formula_column, target):
        if col is not None and col not in frame.columns:
            fail(f"{path}: no column {col!r}; columns are {list(frame.columns)}")
    X, bad = to_fraction_matrix(list(frame[formula_column]), errors="collect")
    csv = path.suffix.lower() not in (".parquet", ".pq")
    if bad:
        err.print(bad_rows_text([BadFormulaRow(b.index + 1, b.formula, b.reason) for b in bad], csv=csv),
                  markup=False, highlight=False, soft_wrap=True)
        fail(f"{len(bad)} of {len(frame)} formulas in {path} are invalid (rows listed above)")
    if target is None:
        return X, None, frame
    y = pd.to_numeric(frame[target], errors="coerce").to_numpy(float)
    rows = [i + 1 for i, v in enumerate(y) if not (v == v and abs(v) != float("inf"))]
    if rows:
        more, s = (", …" if len(rows) > 20 else ""), ("s" if len(rows) > 1 else "")
        lines = f" (file line{s} {', '.join(str(r + 1) for r in rows[:20])}{more})" if csv else ""
        fail(f"{path}: column {target!r} has non-numeric, NaN or infinite values in data row{s} "
             f"{', '.join(map(str, rows[:20]))}{more}{lines}")
    return X, y, frame


def transfer_command(
    train: Annotated[Path, typer.Argument(show_default=False, help="Training table (CSV/Parquet) with formulas and the target.")],
    target: Annotated[str, typer.Option("--target", "-t", show_default=False, help="Target column.")],
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s",
        help="base, sc-ef, sc-magpie, featextr (trees on ElemNet activations), finetune, modfinetune, freezing, "
             "scratch, moe.")] = "modfinetune",
    source: Annotated[str, typer.Option("--source", help="ElemNet source model (`aloop sources`).")] = "oqmd-formation-enthalpy",
    layer: Annotated[int, typer.Option("--layer", min=1, max=16, help="Hidden layer for featextr.")] = 2,
    formula_column: Annotated[str, typer.Option("--formula-column", "-c")] = "formula",
    test: Annotated[Path | None, typer.Option("--test", help="Table with the target: report test MAE.")] = None,
    predict: Annotated[Path | None, typer.Option("--predict", help="Table of formulas to predict.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write --predict's predictions (CSV).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    refit: Annotated[bool, typer.Option(
        "--refit", help="Network strategies: after early stopping on 10% of the rows, retrain on every row "
                        "for the best epoch count.")] = False,
    zero_gate: Annotated[bool, typer.Option(
        "--zero-gate", help="For a target with exact zeros (measured band gaps: metals are 0 eV): predict 0 where a "
                            "Magpie classifier's P(y = 0) exceeds a threshold chosen on 10% of the rows.")] = False,
) -> None:
    """Train a model on a small dataset by transfer learning from an ElemNet source model.

    Prints the validation MAE (early stopping / held-out part of the training table) and,
    with --test, the test MAE; with --predict and -o, writes predictions.
    """
    import numpy as np

    from aloop.elemnet.transfer import MODES, make_regressor
    from aloop.elemnet.zero_gate import ZeroGatedRegressor

    if (predict is None) != (output is None):
        fail("--predict and --output go together")
    if refit and strategy not in MODES:
        fail(f"--refit applies to the network strategies ({', '.join(MODES)}), not {strategy!r}")
    X, y, _ = _table(train, formula_column, target)
    try:
        model = make_regressor(strategy, source=source, layer=layer, seed=seed, **({"refit": True} if refit else {}))
        if zero_gate:
            model = ZeroGatedRegressor(model, seed=seed)
        model.fit(X, y)
    except (LookupError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    err.print(f"trained {strategy} on {len(y):,} rows of {train}", markup=False)
    if zero_gate:
        t = model.threshold_
        out.print(f"zero gate: {'off (no threshold helped on validation)' if t is None else f'0 where P(0) > {t:.2f}'}",
                  markup=False)
    if hasattr(model, "gate_weights_"):
        out.print("gate weights: " + ", ".join(f"{k} {v:.2f}" for k, v in model.gate_weights_.items()), markup=False)
    if test is not None:
        Xt, yt, _ = _table(test, formula_column, target)
        out.print(f"test MAE {float(np.mean(np.abs(model.predict(Xt) - yt))):.4f} on {len(yt):,} rows", markup=False)
    if predict is not None and output is not None:
        Xp, _, frame = _table(predict, formula_column, None)
        frame[f"predicted_{target}"] = model.predict(Xp)
        tmp = output.with_name(output.name + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(output)
        err.print(f"wrote {len(frame):,} predictions to {output}", markup=False)
