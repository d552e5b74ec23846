"""`aloop sources` and `aloop transfer` on small real tables, including bad inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aloop.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not (Path(os.environ.get("ALOOP_DATA_DIR", "/nonexistent")) / "experimental").is_dir():
        pytest.skip("ALOOP_DATA_DIR does not hold the shared datasets (set ALOOP_DATA_DIR=../shared/data)")
    from aloop.datasets import load

    d = load("expt-formation-enthalpy")
    tmp = tmp_path_factory.mktemp("tl")
    d[d["split"] == "train"].head(200).to_csv(tmp / "train.csv", index=False)
    d[d["split"] == "test"].head(40).to_csv(tmp / "test.csv", index=False)
    return tmp / "train.csv", tmp / "test.csv"


def test_transfer_trains_tests_and_predicts(tables, tmp_path: Path) -> None:
    train, test = tables
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "sc-ef", "--test", str(test),
                            "--predict", str(test), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "test MAE" in r.output
    import pandas as pd

    pred = pd.read_csv(out)
    assert len(pred) == 40 and "predicted_delta_e" in pred.columns
    before = out.read_bytes()
    again = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "sc-ef", "--predict", str(test),
                                "-o", str(out)])
    assert again.exit_code == 2 and "already exists; refusing to overwrite it" in " ".join(again.stderr.split())
    assert "trained" not in again.stderr  # refused before any training
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["pred.csv"]


@pytest.mark.parametrize("args, needle", [
    (["-t", "nope", "-s", "sc-ef"], "no column 'nope'"),
    (["-t", "delta_e", "-s", "magic"], "unknown strategy 'magic'"),
    (["-t", "delta_e", "-s", "featextr", "--source", "missing-model"], "no source model 'missing-model'"),
    (["-t", "delta_e", "--predict", "x.csv"], "--predict and --output go together"),
    (["-t", "delta_e", "-s", "sc-ef", "--refit"], "--refit applies to the network strategies"),
    (["-t", "delta_e", "-s", "moe", "--tune", "3"], "--tune applies to the network strategies"),
    (["-t", "delta_e", "--tune", "0"], "Invalid value for '--tune'"),
])
def test_transfer_bad_inputs(tables, args: list[str], needle: str) -> None:
    train, _ = tables
    r = runner.invoke(app, ["transfer", str(train), *args])
    assert r.exit_code == 2
    assert needle in r.output and "Traceback" not in r.output


def test_transfer_refit_finetunes_on_every_row(tables) -> None:
    train, test = tables
    r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "finetune", "--refit", "--test", str(test)])
    assert r.exit_code == 0, r.output
    mae = float(r.output.split("test MAE ")[1].split()[0])
    assert mae < 0.5  # eV/atom; the targets' spread is about 1 eV/atom
    # the early-stopping validation MAE of the run that found the epoch count, which is then used on every row
    line = next(x for x in r.stdout.splitlines() if x.startswith("validation MAE "))
    epoch = int(line.split("best epoch ")[1].split()[0])
    assert " on 20 held-out rows (early stopping: best epoch " in line
    assert f"retrained on all 200 rows for {epoch} epochs" in line and float(line.split()[2]) < 0.5


def test_transfer_tune_searches_the_recipe_then_trains_with_it(tables) -> None:
    train, test = tables
    r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "freezing", "--tune", "2", "--test", str(test)])
    assert r.exit_code == 0, r.output
    tuned = next(x for x in r.stdout.splitlines() if x.startswith("tuned over 2 trials"))
    chosen = float(tuned.split("its validation MAE ")[1].split()[0])
    # the model trained with the chosen recipe is the chosen trial's network again (same seed, same rows)
    line = next(x for x in r.stdout.splitlines() if x.startswith("validation MAE "))
    assert float(line.split()[2]) == pytest.approx(chosen, abs=1e-4)
    assert float(r.output.split("test MAE ")[1].split()[0]) < 0.5


def test_transfer_reports_the_validation_mae_of_a_held_out_part_for_trees(tables, tmp_path: Path) -> None:
    """sc-ef has no internal split: a copy is scored on a seeded 10%; the predicting model is unchanged (all rows)."""
    import numpy as np
    import pandas as pd
    from sklearn.base import clone
    from sklearn.model_selection import GroupShuffleSplit

    from aloop.chem import keys_from_matrix, to_fraction_matrix
    from aloop.elemnet.transfer import make_regressor

    train, test = tables
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "sc-ef", "--seed", "3",
                            "--predict", str(test), "-o", str(out)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("validation MAE "))
    assert line.endswith("on 20 held-out rows (their compositions held out from a copy fitted on the other 180, "
                         "seed 3; the model used for --test/--predict is fitted on all 200)")
    frame, new = pd.read_csv(train), pd.read_csv(test)
    X, y = to_fraction_matrix(list(frame["formula"]))[0], frame["delta_e"].to_numpy(float)
    fit, val = next(GroupShuffleSplit(1, test_size=0.1, random_state=3).split(X, y, keys_from_matrix(X)))
    model = make_regressor("sc-ef", seed=3)
    mae = np.mean(np.abs(clone(model).fit(X[fit], y[fit]).predict(X[val]) - y[val]))
    assert float(line.split()[2]) == pytest.approx(mae, abs=5e-5)
    expected = model.fit(X, y).predict(to_fraction_matrix(list(new["formula"]))[0])
    np.testing.assert_allclose(pd.read_csv(out)["predicted_delta_e"].to_numpy(), expected, rtol=1e-12)


def test_transfer_scores_are_not_flattered_by_repeated_compositions(tables, tmp_path: Path) -> None:
    """A table holding each composition three times: the held-out part is held out by composition, and a --test
    file of training compositions is said to be no held-out test."""
    import pandas as pd

    train, _ = tables
    tripled = tmp_path / "tripled.csv"
    pd.concat([pd.read_csv(train)] * 3).to_csv(tripled, index=False)
    r = runner.invoke(app, ["transfer", str(tripled), "-t", "delta_e", "-s", "sc-ef", "--seed", "3", "--test", str(train)])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if x.startswith("validation MAE "))
    assert float(line.split()[2]) > 0.01 and "on 60 held-out rows" in line  # by row it read 0.0000
    assert "200 of the --test rows have a composition of the training table" in " ".join(r.stderr.split())


def test_transfer_non_numeric_target(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,y\nFe2O3,1.0\nNaCl,abc\nMgO,\n")
    r = runner.invoke(app, ["transfer", str(bad), "-t", "y", "-s", "base"])
    assert r.exit_code == 2 and "values in row 2 (line 3), row 3 (line 4)" in " ".join(r.output.split())
    import pandas as pd

    pd.read_csv(bad).to_parquet(tmp_path / "bad.parquet")  # no file lines to name in a Parquet table
    r = runner.invoke(app, ["transfer", str(tmp_path / "bad.parquet"), "-t", "y", "-s", "base"])
    assert r.exit_code == 2 and "values in row 2, row 3" in " ".join(r.output.split()) and "line" not in r.output


def test_sources_lists_shipped_models() -> None:
    r = runner.invoke(app, ["sources"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "oqmd-formation-enthalpy" in r.output and "random (He init)" in r.output
    # the chained source names the source its hidden layers started from
    assert any("jarvis-mbj-bandgap" in line and "hidden layers of oqmd-formation-enthalpy" in line
               for line in r.output.splitlines())


@pytest.mark.parametrize("columns", [None, "80", "60"], ids=["default", "80-columns", "60-columns"])
def test_sources_never_shortens_a_source_name(columns: str | None) -> None:
    """The name is the value --source needs: whole on one line at CliRunner's default 80 columns and narrower."""
    from aloop.elemnet.sources import list_sources

    r = runner.invoke(app, ["sources"], env={"COLUMNS": columns} if columns else None)
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout
    lines = r.stdout.splitlines()
    for name in list_sources():
        assert any(line.split() and line.split()[0] == name for line in lines), (name, r.stdout)
        rows = [line for line in lines if line.startswith(name + " ")]
        assert rows and all(f"{float(x):.4f}" == x for x in rows[0].split()[2:4]), rows  # MAEs not wrapped


@pytest.mark.parametrize("args, needle", [
    (["-s", "base", "--source", "nope"], ("--source applies to the strategies featextr, finetune, modfinetune, "
                                          "freezing, not 'base'")),
    (["-s", "sc-ef", "--source", "oqmd-bandgap"], "--source applies to"),
    (["-s", "scratch", "--source", "oqmd-bandgap"], "not 'scratch' (it trains ElemNet from random weights)"),
    (["-s", "moe", "--source", "oqmd-bandgap"], "not 'moe' (it mixes its own source models)"),
    (["-s", "base", "--layer", "3"], "--layer applies to the strategies featextr, not 'base'"),
    (["-s", "finetune", "--layer", "3"], "--layer applies to the strategies featextr, not 'finetune'"),
], ids=["base-source", "sc-ef-source", "scratch-source", "moe-source", "base-layer", "finetune-layer"])
def test_transfer_refuses_options_the_strategy_does_not_use(tmp_path: Path, args: list[str], needle: str) -> None:
    train = tmp_path / "t.csv"
    train.write_text("formula,y\nFe2O3,1.0\nNaCl,2.0\n")
    r = runner.invoke(app, ["transfer", str(train), "-t", "y", *args])
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split()) and "Traceback" not in r.output
    assert "trained" not in r.output


def test_transfer_uses_source_and_layer_where_they_apply(tmp_path: Path) -> None:
    """featextr takes both; the default source still works when --source is not given."""
    train = tmp_path / "t.csv"
    train.write_text("formula,y\n" + "".join(f"{f},{i}\n" for i, f in enumerate(
        ["Fe2O3", "NaCl", "MgO", "KCl", "LiF", "CaO", "ZnS", "GaAs", "SiC", "TiO2", "Al2O3", "CuO"])))
    r = runner.invoke(app, ["transfer", str(train), "-t", "y", "-s", "featextr", "--source", "oqmd-bandgap",
                            "--layer", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["transfer", str(train), "-t", "y", "-s", "base"])
    assert r.exit_code == 0, r.output


def test_transfer_zero_gate_on_measured_band_gaps(tmp_path: Path) -> None:
    if not (Path(os.environ.get("ALOOP_DATA_DIR", "/nonexistent")) / "experimental").is_dir():
        pytest.skip("ALOOP_DATA_DIR does not hold the shared datasets (set ALOOP_DATA_DIR=../shared/data)")
    from aloop.datasets import load

    d = load("expt-bandgap")
    d[d["split"] == "train"].head(300).to_csv(tmp_path / "train.csv", index=False)
    d[d["split"] == "test"].head(60).to_csv(tmp_path / "test.csv", index=False)
    r = runner.invoke(app, ["transfer", str(tmp_path / "train.csv"), "-t", "gap expt", "-s", "sc-magpie", "--zero-gate",
                            "--test", str(tmp_path / "test.csv")])
    assert r.exit_code == 0, r.output
    assert "zero gate: " in r.output and "test MAE" in r.output


def test_transfer_zero_gate_refuses_a_target_without_zeros(tables) -> None:
    train, _ = tables
    r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "sc-ef", "--zero-gate"])
    assert r.exit_code == 2
    assert "the zero gate needs a target with exact zeros in 5–95% of the training rows; the target has 0.0%" in r.output


def test_transfer_moe_refuses_a_single_training_row(tables, tmp_path: Path) -> None:
    train, test = tables
    one = tmp_path / "one.csv"
    one.write_text("".join(train.read_text().splitlines(keepends=True)[:2]))
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["transfer", str(one), "-t", "delta_e", "-s", "moe", "--test", str(test),
                            "--predict", str(test), "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert "too few training rows: 1; at least 10 are needed" in r.output and "nan" not in r.output
    assert not out.exists()


def test_transfer_counts_bad_formula_and_bad_target_rows_alike(tmp_path: Path) -> None:
    """Both count data rows from 1 (header excluded) and give the file line, as `aloop featurize` does."""
    bad_formula = tmp_path / "formula.csv"
    bad_formula.write_text("formula,y\nFe2O3,1.0\nNaCl,2.0\nMgO,3.0\nXx3,4.0\n")
    r = runner.invoke(app, ["transfer", str(bad_formula), "-t", "y", "-s", "base"])
    assert r.exit_code == 2 and "row 4 (line 5): 'Xx3'" in r.output
    bad_target = tmp_path / "target.csv"
    bad_target.write_text("formula,y\nFe2O3,1.0\nNaCl,2.0\nMgO,3.0\nKCl,\n")
    r = runner.invoke(app, ["transfer", str(bad_target), "-t", "y", "-s", "base"])
    assert r.exit_code == 2 and "values in row 4 (line 5)" in " ".join(r.output.split())
    many = tmp_path / "many.csv"
    many.write_text("formula,y\n" + "NaCl,x\n" * 25)
    r = runner.invoke(app, ["transfer", str(many), "-t", "y", "-s", "base"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "row 20 (line 21), … (25 rows in all)" in said and "row 21 " not in said


def test_transfer_checks_every_table_before_training(tables, tmp_path: Path) -> None:
    """A bad --test or --predict file, or a non-CSV -o, is refused before any training, in one line."""
    train, test = tables
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("formula\nNaCl\n,\nMgO\n")
    (tmp_path / "names.csv").write_text("formula\nNaCl\n")
    # He on file line 6 (a blank line before it); a quoted empty formula is a row, not a blank line
    (tmp_path / "bad.csv").write_text('formula\nNaCl\nXx2O\n\nFe2O3\nHe\n""\nMgO\n')
    cases = [
        (["--predict", str(tmp_path / "empty.csv"), "-o", str(tmp_path / "p.csv")], "--predict: ", "is empty"),
        (["--predict", str(tmp_path / "ragged.csv"), "-o", str(tmp_path / "p.csv")], "cannot be read as a CSV"),
        (["--predict", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "p.csv")], "not found"),
        (["--test", str(tmp_path / "names.csv")], "--test: ", "has no column 'delta_e'"),
        (["--predict", str(test), "-o", str(tmp_path / "p.parquet")], "written as CSV; name the file .csv"),
        (["--predict", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "p.csv")], "row 4 (line 6): 'He'",
         "row 5 (line 7): '': empty formula", "3 of 6 formulas"),
    ]
    for args, *needles in cases:
        r = runner.invoke(app, ["transfer", str(train), "-t", "delta_e", "-s", "sc-ef", *args])
        text = " ".join(r.output.split())
        assert r.exit_code == 2 and "Traceback" not in r.output and "trained" not in r.output, (args, r.output)
        assert all(n in text for n in needles), (needles, text)
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "p.parquet").exists()
    r = runner.invoke(app, ["transfer", str(tmp_path / "empty.csv"), "-t", "delta_e", "-s", "sc-ef"])
    assert r.exit_code == 2 and "TRAIN: " in r.output and "is empty" in r.output

