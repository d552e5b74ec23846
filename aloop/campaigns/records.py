"""Checking a lab results file before it reaches the log, reporting every bad row at once.

A results file (CSV, or a DataFrame) has one row per measurement and these columns:

* ``proposal_id`` and/or ``formula`` — which sample; at least one column, and every row
  needs one of the two. A row with only a formula is matched to a proposal of the same
  composition, or recorded as unsolicited.
* one column per objective, headed ``<name> [<units>]`` with exactly the units of the
  campaign definition (``band_gap [eV]``). A dimensionless objective (``units = ""``) is
  headed ``<name>`` (or ``<name> []``). Units live in the header, never in the cells.
* optional: ``measured_at`` (ISO 8601; without a zone it is taken as UTC), ``operator``,
  ``notes``, ``raw_data`` (path or URI of the raw data), ``idempotency_key``.

Any other column is an error, so a typo never silently drops data, and so is a cell beyond
the header's columns (a value without a column is never guessed at). Without an
``idempotency_key`` each row gets sha256(the proposal it is matched to, or its composition if
unsolicited, values, measured_at): recording a result twice adds nothing, whether it is named
by proposal id or by formula.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from aloop.campaigns.config import CampaignConfig, Objective
from aloop.campaigns.entries import Measurement, default_idempotency_key
from aloop.campaigns.log import CampaignLog
from aloop.campaigns.matching import match_measurements
from aloop.chem import composition_key, to_fraction_matrix

OPTIONAL_COLUMNS = ("measured_at", "operator", "notes", "raw_data", "idempotency_key")
_HEADER = re.compile(r"^(?P<name>.*?)\s*\[(?P<units>[^\]]*)\]$")
_MAX_KEY = 128


@dataclass(frozen=True)
class RowProblem:
    """One problem: the row label (``None`` for the file as a whole), the column, the reason."""

    row: object
    column: str | None
    reason: str


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


def read_results(path: str | Path) -> pd.DataFrame:
    """Read a results CSV as text (cells are checked by ``validate_results``); rows labelled by their line.

    A row is labelled by the line it starts on (blank lines are skipped; a quoted cell may
    span lines). Missing trailing cells are empty. Cells beyond the header's columns are
    cut off and kept in ``attrs["extra_cells"]`` (line → cells) for ``validate_results`` to
    refuse: taking one as a row index would record a value against the wrong proposal.

    Raises:
        ValueError: the file is empty, not UTF-8, or not readable as CSV.
    """
    header: list[str] | None = None
    lines: list[int] = []
    rows: list[list[str]] = []
    extra: dict[int, list[str]] = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        last = 0
        try:
            for cells in reader:
                start, last = last + 1, reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if header is None:
                    header = [c or f"Unnamed: {j}" for j, c in enumerate(cells)]
                    continue
                width = len(header)
                if len(cells) > width:
                    extra[start] = cells[width:]
                lines.append(start)
                rows.append(cells[:width] + [""] * (width - len(cells)))
        except csv.Error as exc:
            raise ValueError(f"line {reader.line_num}: {exc}") from None
    if header is None:
        raise ValueError("the file is empty (no header line)")
    df = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
    df.attrs["extra_cells"] = extra
    return df


def _missing(v: object) -> bool:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return True
    return bool(isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT


def _number(v: object) -> tuple[float | None, str | None]:
    if _missing(v):
        return None, "missing value"
    if isinstance(v, bool):
        return None, f"{v!r} is not a number"
    try:
        x = float(v.strip()) if isinstance(v, str) else float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None, f"{v!r} is not a number"
    if math.isnan(x):
        return None, "missing value (NaN)"
    if not math.isfinite(x):
        return None, f"value {v!r} is not finite"
    return x, None


def _text(v: object) -> str | None:
    return None if _missing(v) else str(v).strip()


def _objective_columns(columns: Sequence[str], objectives: Sequence[Objective]) -> tuple[dict[str, str], list[str]]:
    """Objective name → column, and the column problems (missing, wrong units, extra)."""
    problems: list[str] = []
    found: dict[str, str] = {}
    names = {o.name: o for o in objectives}
    extra = []
    for col in columns:
        m = _HEADER.match(col)
        name, units = (m["name"].strip(), m["units"].strip()) if m else (col.strip(), None)
        if name in ("proposal_id", "formula") or (name in OPTIONAL_COLUMNS and units is None):
            continue
        if name not in names:
            extra.append(col)
            continue
        obj = names[name]
        if name in found:
            problems.append(f"columns {found[name]!r} and {col!r} both give objective {name!r}")
        elif units is None and obj.units:
            problems.append(f"column {col!r} must state its units: '{name} [{obj.units}]'")
        elif units is not None and units != obj.units:
            want = f"'{name} [{obj.units}]'" if obj.units else f"'{name}' (dimensionless)"
            problems.append(f"column {col!r}: units {units!r} differ from the campaign's; expected {want}")
        found.setdefault(name, col)
    for o in objectives:
        if o.name not in found:
            problems.append(
                f"missing column for objective {o.name!r}: '{o.name} [{o.units}]'"
                if o.units
                else f"missing column for objective {o.name!r}: '{o.name}'"
            )
    if extra:
        allowed = [
            "proposal_id",
            "formula",
            *(f"{o.name} [{o.units}]" if o.units else o.name for o in objectives),
            *OPTIONAL_COLUMNS,
        ]
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}")
    if "proposal_id" not in columns and "formula" not in columns:
        problems.append("missing column: give proposal_id or formula (or both) for each row")
    return found, problems


def validate_results(df: pd.DataFrame, config: CampaignConfig, log: CampaignLog | None = None) -> list[Measurement]:
    """Check a results table against the campaign; return one ``Measurement`` per row.

    ``log`` (if given) is used to match rows to proposals as the log will: proposal ids must
    exist, match the formulas and still take results (not failed, rejected or cancelled).

    Raises:
        RecordError: listing every bad column and every bad row with its reason (missing
            or extra columns, cells beyond the header, wrong units, missing / non-numeric /
            non-finite values, invalid formulas, unknown or closed proposals, repeated
            idempotency keys, one result given twice).
    """
    row_name = df.index.name or "row"
    columns = [str(c) for c in df.columns]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    col_of, col_problems = _objective_columns(columns, config.objectives)
    if dupes:
        col_problems.append(f"repeated column(s): {', '.join(map(repr, dupes))}")
    if col_problems:
        raise RecordError([RowProblem(None, None, p) for p in col_problems], len(df), row_name)
    if len(df) == 0:
        raise RecordError([RowProblem(None, None, "the file has no rows")], 0, row_name)
    extra_cells: dict[object, list[str]] = df.attrs.get("extra_cells", {})
    props: dict[int, tuple[str, str]] = {}
    if log is not None:
        table = log.proposals()
        props = {int(r.proposal_id): (r.key, r.formula) for r in table.itertuples()}
    formulas = [_text(v) for v in df["formula"]] if "formula" in df.columns else [None] * len(df)
    _, bad = to_fraction_matrix([f if f is not None else "H" for f in formulas], errors="collect")
    bad_formula = {b.index: b.reason for b in bad}
    problems: list[RowProblem] = []
    out: list[Measurement] = []
    labels = list(df.index)
    seen_keys: dict[str, object] = {}
    for i, (label, rec) in enumerate(zip(labels, df.to_dict("records"), strict=True)):
        here: list[RowProblem] = []
        if label in extra_cells:
            cells = extra_cells[label]
            here.append(RowProblem(label, None, f"{len(df.columns) + len(cells)} cells but the header has "
                                   f"{len(df.columns)} columns (extra: {', '.join(map(repr, cells))}); "
                                   "give each value a column header, or remove it"))
        pid = _proposal_id(rec.get("proposal_id"), label, here, props if log is not None else None, config.name)
        formula, key = formulas[i], None
        if formula is not None:
            if i in bad_formula:
                here.append(RowProblem(label, "formula", f"{formula!r}: {bad_formula[i]}"))
            else:
                key = composition_key(formula)
                if pid is not None and pid in props and props[pid][0] != key:
                    here.append(
                        RowProblem(
                            label, "formula", f"{formula!r} is not the composition of proposal {pid} ({props[pid][1]})"
                        )
                    )
        elif pid is None and not any(p.column == "proposal_id" for p in here):
            here.append(RowProblem(label, None, "needs a proposal_id or a formula"))
        values: dict[str, float] = {}
        for name, col in col_of.items():
            x, why = _number(rec[col])
            if why:
                here.append(RowProblem(label, col, why))
            else:
                values[name] = x  # type: ignore[assignment]
        when = None
        if not _missing(rec.get("measured_at")):
            try:
                when = pd.Timestamp(str(rec["measured_at"]).strip())
                when = (when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")).to_pydatetime()
            except (ValueError, TypeError):
                here.append(
                    RowProblem(
                        label,
                        "measured_at",
                        f"{rec['measured_at']!r} is not a date/time (ISO 8601, e.g. 2024-05-01T14:30:00+02:00)",
                    )
                )
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
    if log is not None and out:
        # As the log will match them: closed proposals, one result named by id and by formula.
        keys = [m.idempotency_key or default_idempotency_key(m) for m in out]
        _, unresolved = match_measurements(out, keys, log.events(), {}, config.name, row_name)
        problems += [RowProblem(out[u.index].row, u.column, u.reason) for u in unresolved]
        order = {lab: i for i, lab in enumerate(labels)}
        problems.sort(key=lambda p: order.get(p.row, -1))
    if problems:
        raise RecordError(problems, len(df), row_name)
    return out


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
