"""Checking a lab results file before it reaches the log, reporting every bad row at once.

A results file (CSV, or a DataFrame) has one row per measurement and these columns:

* ``proposal_id`` and/or ``formula`` — which sample; at least one column, and every row
  needs one of the two. A row with only a formula is matched to a proposal of the same
  composition, or recorded as unsolicited.
* one column per objective, headed ``<name> [<units>]`` with exactly the units of the
  campaign definition (``band_gap [eV]``). A dimensionless objective (``units = ""``) is
  headed ``<name>`` (or ``<name> []``). Units live in the header, never in the cells.
* optional: ``measured_at`` (ISO 8601 only: ``2026-03-11`` or ``2026-03-11T14:30[:00]``, with
  ``Z`` or ``±HH:MM`` or no zone, which is taken as UTC; ``11/03/2026`` is refused, never
  guessed), ``operator``, ``notes``, ``raw_data`` (path or URI of the raw data), ``idempotency_key``.

Any other column is an error, so a typo never silently drops data, and so is a cell beyond
the header's columns (a value without a column is never guessed at). Headers and units are
compared in Unicode NFKC (``µ`` micro sign = ``μ`` Greek mu). Excel's leftovers are ignored:
rows of empty cells, empty cells past the last column, columns without a header and without
values; a semicolon-separated file, decimal commas and a file not in UTF-8 are refused with
how to save it instead. A value beyond ±``MAX_MAGNITUDE`` is refused; one far outside the
spread of the values already recorded is recorded with an ``OutlierWarning``. Without an
``idempotency_key`` each row gets sha256(the proposal it is matched to, or its composition if
unsolicited, values, measured_at): recording a result twice adds nothing, whether it is named
by proposal id or by formula (an ``AlreadyRecordedWarning`` says how to record a genuine repeat).
A row with no value in any objective column (a sheet filled in part), or with values in only
some of them (one property measured, another not yet), is left out with an ``UnfilledRowsWarning``:
its proposal stays pending, and recording the file again once it is filled adds only the new rows.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from aloop.campaigns.config import CampaignConfig
from aloop.campaigns.consistency import canonical
from aloop.campaigns.outliers import magnitude_problem
from aloop.campaigns.entries import Measurement, default_idempotency_key, utc
from aloop.campaigns.log import CampaignLog
from aloop.campaigns.matching import (
    OPTIONAL_COLUMNS,
    Resolved,
    announce,
    match_measurements,
    objective_columns,
)
from aloop.campaigns.results_file import SAVE_DOT
from aloop.campaigns.state import Event
from aloop.chem import composition_key, to_fraction_matrix

_UNNAMED = re.compile(r"(Unnamed: \d+(_level_\d+)?)?")  # no header cell (pandas names it 'Unnamed: 3')
_INTEGER, _DIGITS = re.compile(r"[+-]?\d+"), re.compile(r"\d+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")
_MAX_KEY = 128
_ISO = ("ISO 8601 format: 2026-03-11 or 2026-03-11T14:30:00, optionally with a zone (Z or +01:00; without one, "
        "UTC is assumed); day and month are never guessed")


@dataclass(frozen=True)
class RowProblem:
    """One problem: the row label (``None`` for the file as a whole), the column, the reason."""

    row: object
    column: str | None
    reason: str


class UnfilledRowsWarning(UserWarning):
    """Rows of a results sheet left out because no objective has a value in them (not measured yet)."""


class RecordError(ValueError):
    """A results file that cannot be recorded; ``problems`` lists every bad row and column."""

    def __init__(self, problems: Sequence[RowProblem], n_rows: int, row_name: str = "row") -> None:
        self.problems = list(problems)
        lines = []
        for p in self.problems[:50]:
            where = f"{row_name} {p.row}: " if p.row is not None else ""
            lines.append(f"  {where}{p.column + ': ' if p.column else ''}{p.reason}")
        if len(self.problems) > 50:
            lines.append(f"  … and {len(self.problems) - 50} more")
        bad_rows = len({p.row for p in self.problems if p.row is not None})
        head = f"{bad_rows} of {n_rows} rows are invalid" if bad_rows else "the results file is invalid"
        super().__init__(f"{head}; nothing was recorded:\n" + "\n".join(lines))


def _missing(v: object) -> bool:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return True
    return bool(isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _number(v: object) -> tuple[float | None, str | None]:
    if _missing(v):
        return None, "missing value"
    if isinstance(v, bool):
        return None, f"{v!r} is not a number"
    if isinstance(v, str) and "_" in v:  # Python's float() reads '1_0' as 10: a slip, not a number
        return None, f"{v!r} is not a number (digit separators such as '_' are not read)"
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        comma = isinstance(v, str) and _DECIMAL_COMMA.fullmatch(v.strip())
        return None, f"{v!r} is not a number" + (f" (a decimal comma? {SAVE_DOT})" if comma else "")
    if x == 0 and isinstance(v, str) and re.search(r"[1-9]", re.split(r"[eE]", v)[0]):
        return None, f"value {v.strip()} is too small for float64 (it would be stored as 0; a typo?)"
    if math.isnan(x):
        return None, "missing value (NaN)"
    if not math.isfinite(x):
        return None, f"value {v!r} is not finite"
    return (None, why) if (why := magnitude_problem(x, v.strip() if isinstance(v, str) else None)) else (x, None)


def _timestamp(v: object) -> datetime:
    """``v`` (ISO 8601 text, or a date/time object) as aware UTC; a naive time is UTC. ``ValueError`` if not ISO."""
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, date) and not isinstance(v, datetime):
        v = datetime(v.year, v.month, v.day)
    when = v if isinstance(v, datetime) else datetime.fromisoformat(str(v).strip())
    return utc(when)  # type: ignore[return-value]


def _text(v: object) -> str | None:
    return None if _missing(v) else str(v).strip()


def validate_results(df: pd.DataFrame, config: CampaignConfig, log: CampaignLog | None = None) -> list[Measurement]:
    """Check a results table against the campaign; return one ``Measurement`` per row.

    ``log`` (if given) is used to match rows to proposals as the log will: proposal ids must
    exist, match the formulas and still take results (not failed, rejected or cancelled).
    A valid table then warns (``AlreadyRecordedWarning``) about rows the log already holds and
    (``OutlierWarning``) about values far outside the spread of the recorded ones.

    Raises:
        RecordError: listing every bad column and every bad row with its reason (missing
            or extra columns, cells beyond the header, wrong units, missing / non-numeric /
            non-finite / huge values, invalid formulas, non-ISO times, unknown or closed
            proposals, repeated idempotency keys, one result given twice).
    """
    row_name = df.index.name or "row"
    width = len(df.columns)
    df, col_problems = _tidy_columns(df, row_name)  # first: empty rows are not rows
    columns = list(df.columns)
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    col_of, more = objective_columns(columns, config.objectives)
    col_problems += more + ([f"repeated column(s): {', '.join(map(repr, dupes))}"] if dupes else [])
    if col_problems:
        raise RecordError([RowProblem(None, None, p) for p in col_problems], len(df), row_name)
    if len(df) == 0:
        raise RecordError([RowProblem(None, None, "the file has no rows")], 0, row_name)
    extra_cells: dict[object, list[str]] = df.attrs.get("extra_cells", {})
    props: dict[int, tuple[str, str]] = {}
    closed: dict[int, str] = {}  # proposal → its status, for those failed, rejected or cancelled
    if log is not None:
        table = log.proposals()
        props = {int(r.proposal_id): (r.key, r.formula) for r in table.itertuples()}
        closed = {int(r.proposal_id): r.status for r in table.itertuples() if r.status not in ("pending", "measured")}
    formulas = [_text(v) for v in df["formula"]] if "formula" in df.columns else [None] * len(df)
    _, bad = to_fraction_matrix([f if f is not None else "H" for f in formulas], errors="collect")
    bad_formula = {b.index: b.reason for b in bad}
    log_scale = _log10_objectives(config)
    problems: list[RowProblem] = []
    out: list[Measurement] = []
    labels = list(df.index)
    seen_keys: dict[str, object] = {}
    unfilled: list[object] = []  # rows of a sheet not filled in yet: no value in any objective column
    closed_rows: list[str] = []  # empty rows whose proposals are closed (failed, rejected, cancelled)
    partial: dict[object, list[str]] = {}  # rows filled in for some objectives only -> the missing columns
    for i, (label, rec) in enumerate(zip(labels, df.to_dict("records"), strict=True)):
        empty = [c for c in col_of.values() if _missing(rec[c])]
        if label not in extra_cells and empty:
            if len(empty) == len(col_of):
                pid = _proposal_id(rec.get("proposal_id"), label, [], None, config.name)  # a bad id: as before, ignored
                if pid in closed:  # a sheet's row of a proposal failed, rejected or cancelled since: nothing to wait for
                    closed_rows.append(f"{row_name} {label} ({closed[pid]})")
                else:
                    unfilled.append(label)
            else:
                partial[label] = empty
            continue
        here: list[RowProblem] = []
        if label in extra_cells:
            here.append(RowProblem(label, None, _extra_cells_reason(list(rec.values()), extra_cells[label], width)))
        pid = _proposal_id(rec.get("proposal_id"), label, here, props if log is not None else None, config.name)
        formula, key = formulas[i], None
        if formula is not None:
            if i in bad_formula:
                here.append(RowProblem(label, "formula", f"{formula!r}: {bad_formula[i]}"))
            else:
                key = composition_key(formula)
                if pid is not None and pid in props and props[pid][0] != key:
                    why = f"{formula!r} is not the composition of proposal {pid} ({props[pid][1]})"
                    here.append(RowProblem(label, "formula", why))
        elif pid is None and not any(p.column == "proposal_id" for p in here):
            here.append(RowProblem(label, None, "needs a proposal_id or a formula"))
        values: dict[str, float] = {}
        for name, col in col_of.items():
            x, why = _number(rec[col])
            if why is None and name in log_scale and x <= 0:  # type: ignore[operator]
                why = f"{x!r} must be > 0: this campaign models log10({name})"
            if why:
                here.append(RowProblem(label, col, why))
            else:
                values[name] = x  # type: ignore[assignment]
        when = None
        if not _missing(rec.get("measured_at")):
            try:
                when = _timestamp(rec["measured_at"])
            except (ValueError, TypeError, OverflowError):
                here.append(RowProblem(label, "measured_at", f"{rec['measured_at']!r} is not a date/time in {_ISO}"))
            else:  # a day's grace: a local time written without its zone is read as UTC
                if when > (now := datetime.now(UTC)) + timedelta(days=1):
                    here.append(RowProblem(label, "measured_at", f"{when:%Y-%m-%d %H:%M} UTC is in the future (now "
                                           f"{now:%Y-%m-%d %H:%M} UTC): a typo in the year or month?"))
        idem = _text(rec.get("idempotency_key"))
        if idem is not None and len(idem) > _MAX_KEY:
            here.append(RowProblem(label, "idempotency_key", f"longer than {_MAX_KEY} characters"))
        m = Measurement(
            values=values,
            units={o.name: o.units for o in config.objectives},
            proposal_id=pid,
            formula=formula,
            key=key,
            measured_at=when,
            operator=_text(rec.get("operator")),
            notes=_text(rec.get("notes")),
            raw_ref=_text(rec.get("raw_data")),
            idempotency_key=idem,
            row=label,
        )
        if idem is not None or not here:
            k = idem or default_idempotency_key(m)
            if k in seen_keys:
                first = f"{row_name} {seen_keys[k]}"
                here.append(
                    RowProblem(label, "idempotency_key", f"{idem!r} repeats {first}")
                    if idem
                    else RowProblem(label, None, f"duplicate of {first} (same sample, values and measured_at)")
                )
            seen_keys.setdefault(k, label)
        problems += here
        if not here:
            out.append(m)
    if len(unfilled) + len(closed_rows) == len(df):
        named = ", ".join(map(repr, col_of.values()))
        raise RecordError([RowProblem(None, None, f"nothing to record: no row has a value in {named} (every cell "
                                      "is empty, a missing value); fill in the measured values")], len(df), row_name)
    if len(unfilled) + len(closed_rows) + len(partial) == len(df):
        raise RecordError([RowProblem(None, None, "nothing to record: no row has a value for every objective; "
                                      f"{_partial_text(partial, row_name)}")], len(df), row_name)
    resolved: list[Resolved] = []
    history: Sequence[Event] = ()
    if log is not None and out:
        # As the log will match them: closed proposals, one result named by id and by formula.
        history = log.events()
        keys = [m.idempotency_key or default_idempotency_key(m) for m in out]
        resolved, unresolved = match_measurements(out, keys, history, {}, config.name, row_name)
        problems += [RowProblem(out[u.index].row, u.column, u.reason) for u in unresolved]
        order = {lab: i for i, lab in enumerate(labels)}
        problems.sort(key=lambda p: order.get(p.row, -1))
    if problems:
        raise RecordError(problems, len(df), row_name)
    if unfilled:
        rows = ", ".join(f"{row_name} {r}" for r in unfilled[:20]) + (" …" if len(unfilled) > 20 else "")
        warnings.warn(f"{len(unfilled)} row(s) without any value left out ({rows}): not recorded, so their proposals "
                      "stay pending (record them once measured, or `aloop fail` / `aloop cancel` them)",
                      UnfilledRowsWarning, stacklevel=2)
    if closed_rows:
        rows = ", ".join(closed_rows[:20]) + (" …" if len(closed_rows) > 20 else "")
        warnings.warn(f"{len(closed_rows)} row(s) without any value left out ({rows}): their proposals are closed, "
                      "so nothing waits for them", UnfilledRowsWarning, stacklevel=2)
    if partial:
        warnings.warn(f"{len(partial)} row(s) filled in for only some objectives left out ({_partial_text(partial, row_name)}"
                      "): a result needs every objective, so their proposals stay pending; record the file again once "
                      "they are filled in (the rows recorded now are not added twice)", UnfilledRowsWarning, stacklevel=2)
    if log is not None:
        announce(out, resolved, history, row_name, log_scale)
    return out


def _partial_text(partial: dict[object, list[str]], row_name: str) -> str:
    """``row 3: no 'kappa [W/m/K]'; …`` for the first rows filled in for only some objectives."""
    shown = "; ".join(f"{row_name} {r}: no {', '.join(map(repr, cols))}" for r, cols in list(partial.items())[:10])
    return shown + (" …" if len(partial) > 10 else "")


def _tidy_columns(df: pd.DataFrame, row_name: str) -> tuple[pd.DataFrame, list[str]]:
    """``df`` without empty rows and header-less columns, fixed headers in NFKC; problems: such columns with values.

    A row is empty when all its cells are (Excel's ``,,,`` rows, NaN rows of ``pd.read_csv``)
    and it has no cells beyond the header either.
    """
    attrs = dict(df.attrs)
    extra = attrs.get("extra_cells", {})
    rows = zip(df.index, df.itertuples(index=False), strict=True)
    filled_rows = [lab in extra or not all(map(_missing, row)) for lab, row in rows]
    df = df[filled_rows] if not all(filled_rows) else df
    problems = []
    keep = []
    for j, col in enumerate(map(str, df.columns)):
        if _UNNAMED.fullmatch(col.strip()):
            filled = [(lab, v) for lab, v in zip(df.index, df.iloc[:, j], strict=True) if not _missing(v)]
            if filled:
                problems.append(f"column {j + 1} has no header but holds values ({row_name} {filled[0][0]}: "
                                f"{filled[0][1]!r}): give it a header, or delete the column")
            continue  # an empty column without a header (Excel's trailing ',') is nothing
        keep.append(j)
    fixed = ("proposal_id", "formula", *OPTIONAL_COLUMNS)  # objective headers stay as typed, for messages
    names = [canonical(str(c)) if canonical(str(c)) in fixed else str(c) for c in df.columns[keep]]
    df = df.iloc[:, keep].set_axis(names, axis=1)
    df.attrs = attrs
    return df, problems


def _extra_cells_reason(cells: list[object], extra: list[str], width: int) -> str:
    """Why a row with cells past the header's last column is refused (with a hint when decimal commas split numbers)."""
    why = (f"{width + len(extra)} cells but the header has {width} columns (extra: {', '.join(map(repr, extra))}); "
           "give each value a column header, or remove it")
    every = [str(c).strip() for c in [*cells, *extra]][1:]  # the first is the proposal id or formula
    if any(_INTEGER.fullmatch(a) and _DIGITS.fullmatch(b) for a, b in pairwise(every)):
        why += f" (if a number was written with a decimal comma, as 0,42, it became two cells: {SAVE_DOT})"
    return why


def _log10_objectives(config: CampaignConfig) -> set[str]:
    """Objectives the campaign models as log10 (``[surrogate] options.transform``): their values must be > 0."""
    spec = config.surrogate.options.get("transform", "none")
    per = spec if isinstance(spec, Mapping) else dict.fromkeys(config.objective_names, spec)
    return {n for n, t in per.items() if t == "log10"}


def _proposal_id(
    v: Any, label: object, here: list[RowProblem], props: dict[int, tuple[str, str]] | None, campaign: str
) -> int | None:
    if _missing(v):
        return None
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        x = math.nan
    if isinstance(v, bool) or not math.isfinite(x) or x != int(x) or x < 1:
        here.append(RowProblem(label, "proposal_id", f"{v!r} is not a proposal id (a positive integer)"))
        return None
    pid = int(x)
    if props is not None and pid not in props:
        here.append(RowProblem(label, "proposal_id", f"proposal {pid} does not exist in campaign {campaign!r}"))
        return None
    return pid
