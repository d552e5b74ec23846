"""Candidate lists: filtering streamed chunks, de-duplication, excluding measured compositions, candidate CSVs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from os import PathLike
from typing import Literal

import numpy as np
import pandas as pd

from aloop.chem.charge import _support_words
from aloop.chem.elements import ELEMENT_INDEX, N_ELEMENTS
from aloop.chem.parse import BadRow, InvalidFormulasError, check_formulas, composition_key, keys_from_matrix


def filter_chunks(chunks: Iterable[np.ndarray], mask_fn: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
    """Keep the rows of each ``n × 86`` chunk where ``mask_fn(chunk)`` is true; empty chunks are skipped."""
    for X in chunks:
        keep = np.asarray(mask_fn(X), dtype=bool)
        if keep.any():
            yield X[keep]


def dedupe(X: np.ndarray, seen: set[str] | None = None) -> np.ndarray:
    """Rows of ``X`` (``n × 86``) whose canonical key is new; pass ``seen`` to dedupe across chunks (it is updated)."""
    seen = set() if seen is None else seen
    keep = np.zeros(len(X), dtype=bool)
    for i, key in enumerate(keys_from_matrix(X)):
        keep[i] = key not in seen
        seen.add(key)
    return X[keep]


def exclude_measured(X: np.ndarray, measured_keys: Collection[str]) -> np.ndarray:
    """Rows of ``X`` (``n × 86``) not already measured; keys from ``composition_key``/``keys_from_matrix``."""
    if not measured_keys or not len(X):
        return X
    keep = np.ones(len(X), dtype=bool)
    support = np.zeros((len(measured_keys), N_ELEMENTS), dtype=bool)
    for i, key in enumerate(measured_keys):  # read the element set off the key: "Nb0" (a trace) is no formula
        try:
            support[i, [ELEMENT_INDEX[token.rstrip("0123456789.")] for token in str(key).split()]] = True
        except KeyError:
            raise ValueError(f"{key!r} is not a composition key (e.g. 'Fe0.4 O0.6')") from None
    measured = _support_words(support)
    words = _support_words(np.asarray(X) > 0)
    # Only rows whose element set occurs among the measured ones need the (slow) exact key.
    suspects = np.flatnonzero(np.isin(words[:, 0], measured[:, 0]) & np.isin(words[:, 1], measured[:, 1]))
    keep[suspects] = [k not in measured_keys for k in keys_from_matrix(X[suspects])]
    return X[keep]


def load_candidates_csv(
    path: str | PathLike[str],
    formula_column: str = "formula",
    errors: Literal["raise", "collect"] = "raise",
    drop_duplicates: bool = True,
) -> pd.DataFrame:
    """Read a CSV of candidate formulas into a DataFrame of valid, de-duplicated candidates.

    The frame keeps the file's columns, names stripped of surrounding spaces (index = data-row
    number, 0-based), and adds ``key`` (the canonical composition key). Formula cells are read
    as text ("NaN" stays a formula).
    ``errors="raise"`` raises ``InvalidFormulasError`` listing every bad row (as ``row N (line M)``,
    data rows from 1, lines counting the header; ``BadRow.index`` stays 0-based); ``"collect"``
    drops them and lists them in ``frame.attrs["bad_rows"]``. With ``drop_duplicates`` only
    the first row of each composition is kept (the others in ``frame.attrs["duplicate_rows"]``).
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]  # "formula ," heads the column "formula"
    if formula_column not in frame.columns:
        raise ValueError(f"{path}: no column {formula_column!r}; columns present: {list(frame.columns)}")
    position = [i for i, c in enumerate(frame.columns) if c == formula_column]
    if len(position) > 1:
        raise ValueError(f"{path}: {len(position)} columns are headed {formula_column!r}; keep one")
    # Re-read the formula column as raw text: pandas would turn the formula "NaN" into a float.
    formulas = pd.read_csv(path, usecols=position, dtype=str, keep_default_na=False).iloc[:, 0]
    frame[formula_column] = formulas.to_numpy()
    bad: list[BadRow] = check_formulas(frame[formula_column].tolist())
    if bad and errors == "raise":
        raise InvalidFormulasError(bad, len(frame), file=path, lines=file_lines(path, len(frame)))
    frame = frame.drop(index=[b.index for b in bad])
    frame["key"] = [composition_key(f) for f in frame[formula_column]]
    duplicated = frame["key"].duplicated() & drop_duplicates
    duplicates = [int(i) for i in frame.index[duplicated]]
    frame = frame[~duplicated].copy()
    frame.attrs["bad_rows"] = bad
    frame.attrs["duplicate_rows"] = duplicates
    return frame


def file_lines(path: str | PathLike[str], rows: int) -> list[int] | None:
    """The file line on which each data row of a CSV starts (header = line 1), counting the blank lines pandas
    skips; ``None`` if the count does not match ``rows`` (then lines are taken as row + 1)."""
    import csv
    import gzip

    opener = gzip.open if str(path).lower().endswith(".gz") else open
    starts: list[int] = []
    text: list[str] = []  # the raw lines of the record being read: a quoted empty field ("") is a row, not blank

    def kept(fh: Iterable[str]) -> Iterator[str]:
        for line in fh:
            text.append(line)
            yield line

    with opener(path, "rt", newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader, end = csv.reader(kept(fh)), 0
        for _ in reader:
            start, end = end + 1, reader.line_num
            if "".join(text).strip():  # pandas skips blank and all-space lines
                starts.append(start)
            text.clear()
    return starts[1:] if len(starts) == rows + 1 else None
