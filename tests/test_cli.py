"""The `aloop` command line: help everywhere, datasets, featurize, pretrain, clean user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from aloop.cli import app
from aloop.cli.elemnet import RECIPE_DEFAULTS
from aloop.datasets import DatasetError, get_spec, list_specs, load, verify
from aloop.features import get_featurizer

runner = CliRunner()


def invoke(*args: str, **kwargs):  # -> typer.testing.Result
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def require(name: str) -> None:
    """Skip the test when registry dataset ``name`` is not in the data directory."""
    try:
        verify(get_spec(name))
    except DatasetError as exc:
        pytest.skip(f"needs dataset {name!r}: {exc}")


def assert_clean_error(result, code: int = 2, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["datasets"], ["datasets", "list"], ["datasets", "show"], ["featurize"], ["pretrain"], ["export-source"]],
    ids=lambda a: " ".join(a) or "aloop",
)
def test_every_command_has_help(args: list[str]) -> None:
    result = invoke(*args, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("aloop ")


# --- datasets ---------------------------------------------------------------------------------------


def test_datasets_list_names_every_dataset() -> None:
    result = invoke("datasets", "list")
    assert result.exit_code == 0, result.output
    for spec in list_specs():
        assert spec.name in result.stdout
    assert "data directory" in result.stdout


def test_datasets_list_group_and_missing_files(tmp_path: Path) -> None:
    result = invoke("datasets", "list", "--group", "experimental", env={"ALOOP_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "expt-bandgap" in result.stdout and "oqmd-bandgap" not in result.stdout
    assert "missing" in result.stdout and "0 of 6 present" in result.stdout


def test_datasets_list_unknown_group() -> None:
    assert_clean_error(invoke("datasets", "list", "--group", "nope"), 2, "unknown dataset group 'nope'; groups: ", "experimental")


def test_datasets_show_embedded_every_field() -> None:
    result = invoke("datasets", "show", "mp-transport")
    assert result.exit_code == 0, result.output
    spec = get_spec("mp-transport")
    for text in (spec.description, spec.citation, spec.origin_url, spec.license, spec.sha256, "PF_p (μW/(cm·K²))",
                 "pretty_formula", "none published", "present, sha256 OK"):
        assert text in result.stdout, text


def test_datasets_show_missing_file_says_where(tmp_path: Path) -> None:
    result = invoke("datasets", "show", "expt-bandgap", env={"ALOOP_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "missing" in result.stdout and str(tmp_path) in result.stdout
    assert get_spec("expt-bandgap").origin_url in result.stdout


def test_datasets_show_verified_file() -> None:
    require("expt-bandgap")
    result = invoke("datasets", "show", "expt-bandgap")
    assert "present, sha256 OK" in result.stdout and "published, column 'split'" in result.stdout


def test_datasets_show_says_which_way_is_better() -> None:
    assert "lower overpotential_V (minimize)" in " ".join(invoke("datasets", "show", "oer-plate-3496").stdout.split())
    said = " ".join(invoke("datasets", "show", "expt-bandgap", env={"ALOOP_DATA_DIR": "/nonexistent"}).stdout.split())
    assert "not recorded (benchmarks need --direction)" in said


def test_datasets_show_unknown_is_a_clean_error() -> None:
    assert_clean_error(invoke("datasets", "show", "nope"), 2, "unknown dataset 'nope'", "expt-bandgap")


# --- featurize --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bandgap_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 real formulas with their experimental band gaps."""
    require("expt-bandgap")
    path = tmp_path_factory.mktemp("bandgap") / "bandgap.csv"
    load("expt-bandgap").sample(300, random_state=0).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("featurizer", ["magpie", "ef"])
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_featurize_real_formulas(bandgap_csv: Path, tmp_path: Path, featurizer: str, suffix: str) -> None:
    out = tmp_path / f"features{suffix}"
    result = invoke("featurize", str(bandgap_csv), "--featurizer", featurizer, "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    source = pd.read_csv(bandgap_csv)
    feat = get_featurizer(featurizer)
    assert list(table.columns) == [*source.columns, *feat.feature_names]
    assert table["formula"].tolist() == source["formula"].tolist()
    expected = feat.transform(source["formula"].tolist())
    np.testing.assert_allclose(table[feat.feature_names].to_numpy(), expected, rtol=1e-6, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary files left


def test_featurize_chunks_give_the_same_table(tmp_path: Path) -> None:
    frame = load("mp-transport").head(103)[["formula", "PF_p"]].rename(columns={"formula": "composition"})
    src = tmp_path / "mp.csv"
    frame.to_csv(src, index=False)
    whole, chunked = tmp_path / "whole.parquet", tmp_path / "chunked.parquet"
    assert invoke("featurize", str(src), "-c", "composition", "-o", str(whole)).exit_code == 0
    assert invoke("featurize", str(src), "-c", "composition", "--chunk-size", "10", "-o", str(chunked)).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(whole), pd.read_parquet(chunked))
    assert len(pd.read_parquet(whole)) == 103


def _with_bad_rows(tmp_path: Path) -> Path:
    formulas = ["Fe2O3", "Xx2O3", "LiFePO4", "He2", "", "Ti0.99Nb0.01NiSn", "Fe-1O", "NaN"]
    path = tmp_path / "bad.csv"
    pd.DataFrame({"formula": formulas, "y": np.arange(len(formulas))}).to_csv(path, index=False)
    return path


def test_featurize_bad_formulas_exit_2_and_write_nothing(tmp_path: Path) -> None:
    src, out = _with_bad_rows(tmp_path), tmp_path / "out.parquet"
    result = invoke("featurize", str(src), "-o", str(out))
    assert_clean_error(result, 2, "4 of 8 formulas", "nothing written")
    for row, reason in [(2, "unknown element 'Xx'"), (4, "outside the 86-element"), (5, "empty"), (7, "Fe-1O")]:
        assert f"row {row} " in result.stderr and reason in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # no output, no temporary file


def test_featurize_skip_invalid_drops_rows_with_a_warning(tmp_path: Path) -> None:
    src, out = _with_bad_rows(tmp_path), tmp_path / "out.csv"
    result = invoke("featurize", str(src), "--skip-invalid", "-f", "ef", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "warning: skipped 4 invalid formulas" in result.stderr and "row 4 (line 5): 'He2'" in result.stderr
    table = pd.read_csv(out, keep_default_na=False)
    assert table["formula"].tolist() == ["Fe2O3", "LiFePO4", "Ti0.99Nb0.01NiSn", "NaN"]  # NaN: sodium nitride
    assert table["y"].tolist() == [0, 2, 5, 7]


def test_featurize_skip_invalid_with_no_valid_row_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "ids.csv"
    src.write_text("id,formula\nabc,NaCl\nxyz,MgO\n", encoding="utf-8")
    result = invoke("featurize", str(src), "-c", "id", "--skip-invalid", "-f", "ef", "-o", str(tmp_path / "out.csv"))
    assert_clean_error(result, 2, "2 of 2 formulas", "is --formula-column the formula column?")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.csv"]


def test_featurize_names_the_real_file_line_after_blank_lines(tmp_path: Path) -> None:
    src = tmp_path / "gaps.csv"
    src.write_text("formula,y\nFe2O3,1\n\n\nHe2,2\nLiFePO4,3\n", encoding="utf-8")  # He2 is on file line 5
    result = invoke("featurize", str(src), "-o", str(tmp_path / "out.parquet"))
    assert_clean_error(result, 2, "1 of 3 formulas")
    assert "row 2 (line 5): 'He2'" in result.stderr
    result = invoke("featurize", str(src), "--skip-invalid", "-f", "ef", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0 and "row 2 (line 5): 'He2'" in result.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["{tmp}/missing.csv", "-o", "{tmp}/x.parquet"], "not found"),
        (["{src}", "-f", "nope", "-o", "{tmp}/x.parquet"], "unknown featurizer 'nope'"),
        (["{src}", "-c", "comp", "-o", "{tmp}/x.parquet"], "no column 'comp'"),
        (["{src}", "-o", "{tmp}/x.txt"], "output format"),
        (["{src}", "-o", "{src}"], "would overwrite the input"),
    ],
    ids=["missing-input", "unknown-featurizer", "missing-column", "unknown-output-format", "output-is-input"],
)
def test_featurize_user_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    src = _with_bad_rows(tmp_path)
    assert_clean_error(invoke("featurize", *(a.format(src=src, tmp=tmp_path) for a in args)), 2, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_featurize_refuses_an_existing_output_unless_overwrite(tmp_path: Path) -> None:
    src, out = _with_empty_notes(tmp_path), tmp_path / "out.csv"
    out.write_text("precious results\n")
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(out))
    assert_clean_error(result, 2, f"{out} already exists; refusing to overwrite it: choose another name, "
                                  "or pass --overwrite")
    assert out.read_text() == "precious results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv", "out.csv"]  # no temporary file
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out)["formula"].tolist() == ["Fe2O3", "NiO", "CoO", "Bi2Te3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv", "out.csv"]


def test_featurize_never_replaces_a_file_that_appears_while_it_runs(tmp_path: Path, monkeypatch) -> None:
    """The final naming step refuses a file created after the start (no check-then-replace race)."""
    from aloop.cli import featurize

    src, out = _with_empty_notes(tmp_path), tmp_path / "out.csv"
    real = featurize._write_part

    def write_and_race(*args, **kwargs):  # wraps _write_part
        out.write_text("written by someone else\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(featurize, "_write_part", write_and_race)
    assert_clean_error(invoke("featurize", str(src), "-f", "ef", "-o", str(out)), 2, "already exists")
    assert out.read_text() == "written by someone else\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv", "out.csv"]


def test_featurize_overwrite_is_atomic_on_failure(tmp_path: Path, monkeypatch) -> None:
    """With --overwrite, a run that fails half-way leaves the old file whole and no temporary file."""
    from aloop.cli import featurize

    src, out = _with_empty_notes(tmp_path), tmp_path / "out.csv"
    out.write_text("old\n")
    real, calls = featurize._write_part, []

    def fail_second(*args, **kwargs):  # wraps _write_part
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(featurize, "_write_part", fail_second)
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(out), "--overwrite", "--chunk-size", "2")
    assert_clean_error(result, 2, "No space left on device")
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv", "out.csv"]


@pytest.mark.parametrize(
    "content, needle",
    [
        ("", "{src} is empty (no header row)"),
        ("formula,y\n", "{src} has no data rows"),
        ("formula;y\nFe2O3;1\n", "looks semicolon-separated: save it with commas"),
        ("formula\ty\nFe2O3\t1\n", "looks tab-separated: save it with commas"),
    ],
    ids=["empty", "header-only", "semicolons", "tabs"],
)
def test_featurize_explains_unusable_input_files(tmp_path: Path, content: str, needle: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text(content)
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(tmp_path / "out.csv"))
    assert_clean_error(result, 2, needle.format(src=src))
    assert "No columns to parse" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_featurize_input_folder_and_missing_output_folder(tmp_path: Path) -> None:
    src = _with_empty_notes(tmp_path)
    result = invoke("featurize", str(tmp_path), "-f", "ef", "-o", str(tmp_path / "out.csv"))
    assert_clean_error(result, 2, "is a folder")
    assert "not found" not in result.stderr
    missing = tmp_path / "missing" / "dir"
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(missing / "x.csv"))
    assert_clean_error(result, 2, f"folder {missing} does not exist")
    assert not (tmp_path / "missing").exists()
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(tmp_path))
    assert_clean_error(result, 2, "is a folder; name the file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv"]


def _with_empty_notes(tmp_path: Path) -> Path:
    """Formulas with a notes column that is empty in the first rows only."""
    path = tmp_path / "n.csv"
    path.write_text("formula,notes\nFe2O3,\nNiO,\nCoO,hello\nBi2Te3,\n")
    return path


@pytest.mark.parametrize("chunk_size", ["2", "10"])
def test_featurize_csv_gz_output_is_gzip(tmp_path: Path, chunk_size: str) -> None:
    src, out = _with_empty_notes(tmp_path), tmp_path / "out.csv.gz"
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(out), "--chunk-size", chunk_size)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # the gzip magic number
    table = pd.read_csv(out, compression="gzip")
    assert table["formula"].tolist() == ["Fe2O3", "NiO", "CoO", "Bi2Te3"] and len(table.columns) == 2 + 86


def test_featurize_parquet_keeps_one_schema_across_chunks(tmp_path: Path) -> None:
    src, out = _with_empty_notes(tmp_path), tmp_path / "n.parquet"
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(out), "--chunk-size", "2")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert table["notes"].tolist() == [None, None, "hello", None]
    whole = tmp_path / "whole.parquet"
    assert invoke("featurize", str(src), "-f", "ef", "-o", str(whole)).exit_code == 0
    pd.testing.assert_frame_equal(table, pd.read_parquet(whole))


def test_featurize_write_failure_is_a_clean_error_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def broken(self, table, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise pa.ArrowNotImplementedError("Unsupported cast from string to null")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", broken)
    src = _with_empty_notes(tmp_path)
    result = invoke("featurize", str(src), "-f", "ef", "-o", str(tmp_path / "n.parquet"))
    assert_clean_error(result, 2, "cannot write n.parquet as Parquet: Unsupported cast")
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.csv"]  # no output, no temporary file


# --- init -------------------------------------------------------------------------------------------


def test_init_with_an_invalid_window_reports_only_that(tmp_path: Path) -> None:
    result = invoke("init", "w", "--dir", str(tmp_path), "--elements", "Fe,Ni", "--step", "0.5",
                    "--direction", "window", "--window", "2", "1", "--featurizer", "ef")
    assert_clean_error(result, 2, "objectives[0].window: must be [lo, hi] with finite numbers lo < hi")
    assert "required" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- pretrain ---------------------------------------------------------------------------------------


def test_pretrain_help_quotes_the_recipe_defaults() -> None:
    from aloop.elemnet.pretrain import PretrainConfig

    defaults = {f.name: f.default for f in fields(PretrainConfig)}
    assert {k: defaults[k] for k in RECIPE_DEFAULTS} == RECIPE_DEFAULTS


def test_pretrain_tiny_run_checkpoints_and_resumes(tmp_path: Path) -> None:
    require("oqmd-formation-enthalpy")
    run = tmp_path / "run"

    def pretrain(epochs: int, batch_size: int = 128):  # -> typer.testing.Result
        return invoke("pretrain", "--run-dir", str(run), "--epochs", str(epochs), "--limit-rows", "256",
                      "--batch-size", str(batch_size), "--threads", "1")

    def epochs_logged() -> int:
        return len((run / "log.jsonl").read_text().splitlines())

    first = pretrain(1)
    assert first.exit_code == 0, first.output
    assert {"checkpoint.pt", "best.pt", "final.pt", "summary.json", "log.jsonl"} <= {p.name for p in run.iterdir()}
    assert "test MAE" in first.stdout and "starting" in first.stderr
    # The same command again resumes: the finished epoch is not trained again.
    second = pretrain(1)
    assert second.exit_code == 0, second.output
    assert "resuming" in second.stderr and epochs_logged() == 1
    # A larger --epochs continues from the checkpoint.
    third = pretrain(2)
    assert third.exit_code == 0, third.output
    assert epochs_logged() == 2
    assert json.loads((run / "summary.json").read_text())["epochs_run"] == 2
    # Any other change of recipe in the same directory is refused cleanly.
    assert_clean_error(pretrain(3, batch_size=64), 2, "different recipe")
    assert epochs_logged() == 2


def test_pretrain_refuses_a_run_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("notes")
    result = invoke("pretrain", "--dataset", "jarvis-exfoliation-energy", "--run-dir", str(tmp_path / "afile"),
                    "--epochs", "1", "--limit-rows", "64")
    assert_clean_error(result, 2, "--run-dir", "is a file; name a folder")
    assert (tmp_path / "afile").read_text() == "notes"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--dataset", "mp-transport"], "no published train/test split"),
        (["--init-source", "nope"], "no source model 'nope'"),
        (["--exclude", "nope"], "unknown dataset 'nope'"),
    ],
    ids=["unknown-dataset", "no-split", "unknown-init-source", "unknown-exclude"],
)
def test_pretrain_user_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    if "--exclude" in args or "--init-source" in args:
        require("oqmd-formation-enthalpy")
    assert_clean_error(invoke("pretrain", "--run-dir", str(tmp_path / "run"), *args), 2, needle)
    assert not (tmp_path / "run").exists()


def test_console_script_reports_one_line_errors() -> None:
    aloop = Path(sys.executable).with_name("aloop")
    command = [str(aloop)] if aloop.exists() else [sys.executable, "-m", "aloop.cli"]
    result = subprocess.run([*command, "datasets", "show", "nope"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown dataset 'nope'") and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_the_command_line_loads_without_torch() -> None:
    """`aloop --help`, `--version` and a mistyped command answer at once: torch, BoTorch and the surrogates load
    only in the commands that use them."""
    code = ("import sys, aloop.cli, aloop.benchmark.metrics, aloop.benchmark.backends; "
            "print(sorted(m for m in ('torch', 'botorch', 'gpytorch', 'aloop.surrogates') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_ctrl_c_while_the_command_line_loads_exits_quietly(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The console script's entry point: a KeyboardInterrupt while `aloop.cli` imports exits 130 with one line."""
    import builtins

    from aloop import _console

    real_import = builtins.__import__

    def interrupted(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "aloop.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as info:
        _console.main()
    assert info.value.code == 130
    assert capsys.readouterr().err == "aloop: interrupted while starting; nothing was done\n"


def test_ctrl_c_after_the_command_has_finished_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the command is done, Ctrl-C would only interrupt the interpreter's exit handlers (a raw traceback)."""
    import signal

    from aloop import _console

    monkeypatch.setattr("aloop.cli.main", lambda: None)
    before = signal.getsignal(signal.SIGINT)
    try:
        _console.main()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_piped_output_keeps_each_message_on_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal (a pipe, a file): a long message is not broken at 80 columns, where scripts read its values."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)
    result = invoke("init", "x", "--elements", "Ni,Fe,Co", "--step", "0.1", "--objective", "gap", "--units", "eV")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("the grid holds 66 compositions")]
    assert len(line) > 80 and line.endswith("of memory while proposing"), result.stdout
