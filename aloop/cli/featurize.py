"""`aloop featurize`: a table of formulas → a feature table (Parquet or CSV), in chunks, written atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from aloop.atomic import name_new_file, temp_beside
from aloop.cli._output import bad_rows_text, err, fail, warn

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".gz": "csv"}


@dataclass(frozen=True)
class BadFormulaRow:
    """A rejected input row: 1-based data row (header excluded), its formula text and the reason."""

    row: int
    formula: object
    reason: str


class BadFormulasError(ValueError):
    """Some rows of the input table do not parse; ``rows`` lists every one of them."""

    def __init__(self, rows: Sequence[BadFormulaRow], total: int, file_lines: Sequence[int] | None = None) -> None:
        self.rows = list(rows)
        self.total = total
        self.file_lines = file_lines  # the file line of each data row of a CSV (blank lines skipped), if known
        super().__init__(f"{len(self.rows)} of {total} formulas are invalid")


@dataclass
class FeaturizeResult:
    """What ``featurize_table`` wrote: rows in and out, feature count and the skipped rows."""

    output: Path
    rows_in: int
    rows_out: int
    n_features: int
    skipped: list[BadFormulaRow] = field(default_factory=list)
    file_lines: list[int] | None = None  # the file line of each data row of a CSV input (``read_table``)


def output_format(path: Path) -> str:
    """``"parquet"`` or ``"csv"`` from the output file name (``.parquet``, ``.pq``, ``.csv``, ``.csv.gz``)."""
    suffix = path.suffix.lower()
    if suffix == ".gz" and not path.name.lower().endswith(".csv.gz"):
        suffix = ""
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"cannot tell the output format of {path.name!r}: use .parquet, .pq, .csv or .csv.gz")
    return OUTPUT_FORMATS[suffix]


def read_table(path: Path, formula_column: str):  # -> pd.DataFrame
    """Read a CSV (``.csv``, ``.csv.gz``) or Parquet table; formulas are kept as text (``NaN`` is sodium nitride).

    Column names are stripped of surrounding spaces (a ``formula, target`` header names
    ``target``). For a CSV, ``frame.attrs["file_lines"]`` holds the file line of each data row
    (the header is line 1; blank lines, which are skipped, still count).

    Raises:
        FileNotFoundError, IsADirectoryError: no such file, or a folder.
        ValueError: an empty file (no header row), a file that is not a CSV table, or a table without data rows.
        KeyError: no ``formula_column`` (with a hint when the file looks semicolon- or tab-separated).
    """
    import pandas as pd

    if path.is_dir():
        raise IsADirectoryError(f"input {str(path)!r} is a folder, not a table; name a .csv or .parquet file")
    if not path.is_file():
        raise FileNotFoundError(f"input file {str(path)!r} not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        frame.columns = _stripped_names(path, frame.columns)
    else:
        try:
            names = _stripped_names(path, pd.read_csv(path, nrows=0).columns)
            text = {names.index(formula_column): str} if formula_column in names else None
            frame = pd.read_csv(path, converters=text)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path} is empty (no header row)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} cannot be read as a CSV table ({str(exc).strip()}); give a comma-separated "
                             "text file with a header row") from None
        if not isinstance(frame.index, pd.RangeIndex):  # pandas took the first column(s) for an index
            raise ValueError(f"{path}: the data rows have more fields than the header's {len(names)} (a trailing "
                             "comma on every row?); give each row one field per header column")
        frame.columns = names
        from aloop.chem.candidates import file_lines  # not at the top: pymatgen would slow every command's start

        frame.attrs["file_lines"] = file_lines(path, len(frame))
    if formula_column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        separator = next((name for sep, name in ((";", "semicolon"), ("\t", "tab")) if len(frame.columns) == 1
                          and sep in str(frame.columns[0])), None)
        if separator is not None:
            hint = (f"; the file looks {separator}-separated: save it with commas as the separator "
                    "(e.g. 'CSV UTF-8 (Comma delimited)')")
        else:
            hint = "; name it with --formula-column"
        raise KeyError(f"{path.name} has no column {formula_column!r} (columns: {columns}){hint}")
    if frame.empty:
        raise ValueError(f"{path} has no data rows (only a header)")
    return frame


def _stripped_names(path: Path, columns: Sequence[object]) -> list[str]:
    """Column names without surrounding spaces; ``ValueError`` if two become one."""
    names = [str(c).strip() for c in columns]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{path.name}: columns {repeated} appear twice once surrounding spaces are removed; "
                         "rename one of them")
    return names


def featurize_table(
    input_path: str | Path,
    output_path: str | Path,
    featurizer: str = "magpie",
    formula_column: str = "formula",
    skip_invalid: bool = False,
    chunk_size: int = 10_000,
    progress: bool | None = None,
    options: dict | None = None,
    overwrite: bool = False,
) -> FeaturizeResult:
    """Featurize every formula of a table and write the input columns plus the features.

    Formulas are parsed and featurized in chunks of ``chunk_size`` rows. Every bad row is
    collected; unless ``skip_invalid``, they are raised together and nothing is written.
    The output is written to a temporary file beside ``output_path``, synced, and named
    ``output_path`` only when complete, so an interrupted run never leaves a half-written file.
    An existing ``output_path`` is replaced (in one step) only with ``overwrite``.

    Args:
        input_path: CSV or Parquet table with a formula column.
        output_path: ``.parquet``/``.pq`` or ``.csv``/``.csv.gz``.
        featurizer: a name known to ``aloop.features.get_featurizer`` (``"ef"``, ``"magpie"``, ``"elemnet"``).
        formula_column: the column holding the formulas.
        skip_invalid: drop bad rows (returned in ``FeaturizeResult.skipped``) instead of failing.
        chunk_size: rows per chunk.
        progress: show a progress bar (``None``: only on a terminal and for inputs above one chunk).
        options: keyword options of the featurizer (``{"source": ..., "layer": ...}`` for ElemNet).
        overwrite: replace an existing ``output_path``; without it an existing file is never touched.

    Raises:
        BadFormulasError: some formulas do not parse (and ``skip_invalid`` is false), or none does.
        FileExistsError: ``output_path`` exists and ``overwrite`` is false (checked before and after the work).
        FileNotFoundError, KeyError, ValueError: missing input or output folder, missing column, empty
            input, unknown output format or featurizer name, input columns that Parquet cannot hold.
    """
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    from aloop.chem import to_fraction_matrix
    from aloop.features import get_featurizer

    input_path, output_path = Path(input_path), Path(output_path)
    fmt = output_format(output_path)
    if not output_path.parent.is_dir():
        raise FileNotFoundError(f"folder {output_path.parent} does not exist")
    if not overwrite and (output_path.exists() or output_path.is_symlink()):
        raise FileExistsError(f"{output_path} already exists; refusing to overwrite it: choose another name, "
                              "or pass --overwrite")
    feat = get_featurizer(featurizer, **(options or {}))
    frame = read_table(input_path, formula_column)
    names = list(feat.feature_names)
    clash = sorted(set(names) & set(map(str, frame.columns)))
    if clash:
        raise ValueError(f"input already has columns named like features: {', '.join(clash[:5])}")
    formulas = frame[formula_column].tolist()
    n = len(formulas)
    bad: list[BadFormulaRow] = []
    # Same directory as the output, so the final os.replace is an atomic rename.
    tmp = temp_beside(output_path)
    # Decided from the final name: the temporary one does not end in .gz.
    compression = "gzip" if output_path.name.lower().endswith(".gz") else None
    # Parquet column types come from the whole input, not from the first chunk: a column whose
    # first chunk is empty would otherwise be typed null and refuse the text of a later chunk.
    input_types = _arrow_types(frame, output_path) if fmt == "parquet" else None
    writer = None
    rows_out = 0
    # tqdm's disable=None hides the bar when stderr is not a terminal.
    disable = (None if n > chunk_size else True) if progress is None else not progress
    bar = tqdm(total=n, unit="formula", desc=f"featurize {featurizer}", disable=disable)
    try:
        for start in range(0, n, chunk_size):  # read_table refuses a table without rows
            chunk = formulas[start : start + chunk_size]
            X, chunk_bad = to_fraction_matrix(chunk, errors="collect")
            bad.extend(BadFormulaRow(start + b.index + 1, b.formula, b.reason) for b in chunk_bad)
            bar.update(len(chunk))
            if bad and not skip_invalid:
                continue  # keep parsing to report every bad row, but stop featurizing
            ok = np.ones(len(chunk), dtype=bool)
            ok[[b.index for b in chunk_bad]] = False
            if ok.any():
                features = np.asarray(feat.transform_fractions(X[ok]), dtype=np.float32)
            else:
                features = np.zeros((0, len(names)), dtype=np.float32)
            part = frame.iloc[start : start + len(chunk)][ok].reset_index(drop=True)
            part = pd.concat([part, pd.DataFrame(features, columns=names)], axis=1)
            writer = _write_part(part, tmp, writer, first=start == 0, compression=compression,
                                 input_types=input_types, output=output_path)
            rows_out += len(part)
        if writer is not None:
            writer.close()
            writer = None
        if bad and (not skip_invalid or rows_out == 0):  # with every row invalid there is nothing to write
            raise BadFormulasError(bad, n, frame.attrs.get("file_lines"))
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())  # on disk before it gets its name
        if overwrite:
            os.replace(tmp, output_path)
        else:
            try:
                name_new_file(tmp, output_path)  # never replaces a file that appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{output_path} already exists; refusing to overwrite it: choose another "
                                      "name, or pass --overwrite") from None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return FeaturizeResult(output_path, n, rows_out, len(names), bad if skip_invalid else [],
                           frame.attrs.get("file_lines"))


def _arrow_types(frame, output: Path) -> list:  # noqa: ANN001 (pandas/pyarrow types)
    """The Arrow type of every input column, inferred from all its rows."""
    import pyarrow as pa

    try:
        return [field.type for field in pa.Schema.from_pandas(frame, preserve_index=False)]
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise ValueError(f"cannot write {output.name} as Parquet: {exc}") from None


def _write_part(part, tmp: Path, writer, first: bool, compression: str | None,  # noqa: ANN001 (pandas/pyarrow)
                input_types: list | None, output: Path):  # noqa: ANN202
    """Append one chunk to the temporary output; returns the open Parquet writer (``None`` for CSV).

    ``input_types`` (Parquet only) are the types of the input columns, which come first in ``part``.
    """
    if input_types is None:
        part.to_csv(tmp, mode="w" if first else "a", header=first, index=False, compression=compression)
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(part, preserve_index=False)
        if writer is None:
            schema = table.schema
            for i, type_ in enumerate(input_types):
                schema = schema.set(i, schema.field(i).with_type(type_))
            writer = pq.ParquetWriter(tmp, schema)
        writer.write_table(table.cast(writer.schema))
    except (pa.ArrowException, TypeError) as exc:  # ArrowException covers Arrow's ValueError/TypeError subclasses
        if writer is not None:
            writer.close()  # the caller removes the temporary file
        raise ValueError(f"cannot write {output.name} as Parquet: {exc}") from None
    return writer


def featurize_command(
    input: Annotated[Path, typer.Argument(
        show_default=False, help="CSV (.csv, .csv.gz) or Parquet table with a formula column.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", show_default=False, help="Output table: .parquet/.pq or .csv/.csv.gz.")],
    featurizer: Annotated[str, typer.Option(
        "--featurizer", "-f",
        help="ef (the 86 elemental fractions), magpie (Magpie statistics) or elemnet (ElemNet activations).")] = "magpie",
    source: Annotated[str | None, typer.Option(
        "--source", help="ElemNet source model for --featurizer elemnet (see `aloop sources`).")] = None,
    layer: Annotated[int | None, typer.Option(
        "--layer", min=1, max=16, help="ElemNet hidden layer 1–16 for --featurizer elemnet.")] = None,
    formula_column: Annotated[str, typer.Option(
        "--formula-column", "-c", help="Column holding the formulas.")] = "formula",
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Drop rows whose formula does not parse (with a warning) instead of failing.")] = False,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Rows featurized per chunk.")] = 10_000,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing output file (by default an existing file is never touched).")] = False,
) -> None:
    """Featurize the formulas of a table; writes the input columns followed by the features.

    Every invalid formula is reported with its row number (data rows count from 1) and
    the reason, and nothing is written (exit code 2) unless --skip-invalid is given.
    An existing output file is refused unless --overwrite is given; the output is written
    to a temporary file and named only when complete.
    """
    if input.resolve() == output.resolve():
        fail(f"the output {output} would overwrite the input; choose another file name")
    if output.is_dir():
        fail(f"-o: {output} is a folder; name the file, e.g. {output / 'features.parquet'}")
    if not output.parent.is_dir():
        fail(f"-o: folder {output.parent} does not exist")
    if not overwrite and (output.exists() or output.is_symlink()):
        fail(f"{output} already exists; refusing to overwrite it: choose another name, or pass --overwrite")
    options = {k: v for k, v in (("source", source), ("layer", layer)) if v is not None}
    if options and featurizer != "elemnet":
        fail(f"--source/--layer apply to --featurizer elemnet, not {featurizer!r}")
    try:
        result = featurize_table(input, output, featurizer, formula_column, skip_invalid, chunk_size,
                                 options=options, overwrite=overwrite)
    except BadFormulasError as exc:
        err.print(bad_rows_text(exc.rows, csv=input.suffix.lower() not in (".parquet", ".pq"), lines=exc.file_lines),
                  markup=False, highlight=False, soft_wrap=True)
        fail(f"{len(exc.rows)} of {exc.total} formulas in {input} are invalid (rows listed above); nothing written. "
             + ("Not one is valid: is --formula-column the formula column?" if skip_invalid
                else "Fix them or pass --skip-invalid."))
    except (LookupError, ValueError) as exc:
        fail(str(exc.args[0]) if exc.args else str(exc))
    except OSError as exc:  # missing input, unwritable output directory, disk full
        fail(str(exc))
    if result.skipped:
        warn(f"skipped {len(result.skipped)} invalid formulas:")
        err.print(bad_rows_text(result.skipped, csv=input.suffix.lower() not in (".parquet", ".pq"),
                                lines=result.file_lines),
                  markup=False, highlight=False, soft_wrap=True)
    err.print(f"wrote {result.rows_out:,} rows × {result.n_features} {featurizer} features to {result.output}",
              soft_wrap=True, markup=False)
