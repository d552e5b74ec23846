"""Matching a results file's columns to the objectives, its rows to the proposals they answer, and recognising
results the log already holds.

Pure functions over the log's events (``aloop.campaigns.state``): ``validate_results`` uses
them to report every bad row of a results file, and the log to decide, inside its write
transaction, which proposal each row closes and which rows are already recorded.
A row without an ``idempotency_key`` that repeats a logged result (same sample, values and
measured_at) is skipped, so recording a sheet twice adds nothing; ``already_recorded_message``
tells the user so and how to record a genuine repeat. Values beyond ``MAX_MAGNITUDE`` are refused.
``announce`` gives a valid file's warnings: rows already recorded, values far outside the recorded spread.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from aloop.campaigns.config import Objective
from aloop.campaigns.consistency import canonical
from aloop.campaigns.outliers import OutlierWarning, find_outliers, magnitude_problem, outliers_message
from aloop.campaigns.entries import (
    Measurement,
    ReplicateWarning,
    label,
    replicates_message,
    result_key,
)
from aloop.campaigns.schema import CLOSING_KINDS
from aloop.campaigns.state import Event, proposal_status, retracted

#: Columns a results file may have besides proposal_id, formula and the objectives.
OPTIONAL_COLUMNS = ("measured_at", "operator", "notes", "raw_data", "idempotency_key")
#: Columns of `aloop export --table observations` that the log derives itself: read past, so an exported
#: table can be recorded into another campaign (or a new database) as it is.
EXPORT_COLUMNS = ("event_id", "key", "recorded_at", "unsolicited")
_HEADER = re.compile(r"^(?P<name>.*?)\s*\[(?P<units>[^\]]*)\]$")


class AlreadyRecordedWarning(UserWarning):
    """Rows skipped because the log holds the same result, with how to record a genuine repeat instead."""


def already_recorded_message(where: Sequence[str]) -> str:
    """The ``AlreadyRecordedWarning`` text for the skipped rows ``where`` (``line 3``…)."""
    rows = ", ".join(where[:20]) + (f" and {len(where) - 20} more" if len(where) > 20 else "")
    return (f"{len(where)} row(s) skipped as already recorded ({rows}): the log holds a result with the same sample, "
            "values and measured_at, so recording a sheet twice adds nothing. If a row is a genuine repeat "
            "measurement that gave the same value, give it a measured_at (when it was measured) or an "
            "idempotency_key (e.g. the sample's id) and record it again")


@dataclass(frozen=True)
class Resolved:
    """A measurement ready to write: its proposal (``None`` = unsolicited), formula and key.

    ``earlier``: values the proposal already had (log or earlier rows); any means a replicate.
    """

    measurement: Measurement
    idempotency_key: str
    proposal_id: int | None
    formula: str | None
    key: str | None
    earlier: tuple[Mapping[str, float], ...] = ()


@dataclass(frozen=True)
class Unresolved:
    """Why measurement ``index`` cannot be written; ``column`` is the input at fault (``None``: the row)."""

    index: int
    column: str | None
    reason: str




def match_measurements(
    rows: Sequence[Measurement],
    keys: Sequence[str],
    history: Sequence[Event],
    existing: Mapping[str, Event],
    campaign: str,
    row_name: str = "row",
) -> tuple[list[Resolved], list[Unresolved]]:
    """Match new measurements to proposals and skip those already in the log; see ``resolve_measurements``.

    ``keys`` are the rows' keys before matching (explicit ones, or ``default_idempotency_key``);
    ``existing`` maps keys to logged events beyond those in ``history``.
    """
    proposed = {e.id: e for e in history if e.kind == "proposed"}
    status = proposal_status(history)
    by_key: dict[str | None, list[int]] = {}  # composition → its proposals, oldest first
    for e in proposed.values():
        by_key.setdefault(e.composition_key, []).append(e.id)
    logged = {e.idempotency_key: e for e in history if e.kind == "measured" and e.idempotency_key}
    logged.update(existing)
    gone = retracted(history)
    measured: dict[int, list[Mapping[str, float]]] = {}  # proposal → its values so far (not retracted)
    for e in history:
        if e.kind == "measured" and e.proposal_id is not None and e.id not in gone:
            measured.setdefault(e.proposal_id, []).append(e.payload["values"])
    written: dict[str, int] = {}  # key → index of the row of this call that takes it
    out: list[Resolved] = []
    problems: list[Unresolved] = []
    for i, (m, k) in enumerate(zip(rows, keys, strict=True)):
        values = {n: float(v) for n, v in m.values.items()}
        huge = [(n, why) for n, v in values.items() if (why := magnitude_problem(v))]
        if huge:
            problems += [Unresolved(i, n, f"{n}: {why}") for n, why in huge]  # files are refused earlier
            continue
        explicit = m.idempotency_key is not None
        if explicit and k in logged:
            old = logged[k]
            other_proposal = m.proposal_id is not None and old.proposal_id != int(m.proposal_id)
            if old.payload.get("values") != values or other_proposal:
                problems.append(Unresolved(i, "idempotency_key", f"idempotency key {k[:16]}… was recorded "
                                           f"(event {old.id}) with other values"))
            elif old.id in gone:
                problems.append(Unresolved(i, "idempotency_key", _was_retracted(old, gone[old.id], "a new key")))
            continue
        pid = None if m.proposal_id is None else int(m.proposal_id)  # numpy ints from DataFrames too
        column = "proposal_id" if pid is not None else "formula"
        formula, key = m.formula, m.key
        if pid is not None:
            p = proposed.get(pid)
            if p is None:
                problems.append(Unresolved(i, column, f"proposal {pid} does not exist in campaign {campaign!r}"))
                continue
            if key is not None and key != p.composition_key:
                problems.append(Unresolved(i, "formula", f"composition {formula or key!r} is not that of "
                                           f"proposal {pid} ({p.payload['formula']})"))
                continue
            formula, key = p.payload["formula"], p.composition_key
        candidates = [pid] if pid is not None else by_key.get(key, [])
        if not explicit and (old := _logged_result(m, pid, key, candidates, logged)) is not None:
            if old.id in gone:
                problems.append(Unresolved(i, None, _was_retracted(old, gone[old.id], "an idempotency_key")))
            continue  # the same result, recorded earlier (perhaps named the other way)
        if pid is None and candidates:
            waiting = [q for q in candidates if status[q] == "pending"]
            done = [q for q in candidates if status[q] == "measured"]
            # The latest proposal cancelled: the composition is free again, so a result named by formula is one of its
            # own (as for a composition never proposed); one naming the proposal's id is refused below.
            latest = candidates[-1]
            pid = waiting[0] if waiting else done[-1] if done else None if status[latest] == "cancelled" else latest
        if pid is not None and status[pid] in CLOSING_KINDS:
            reason = next(e.payload.get("reason", "") for e in reversed(history) if e.proposal_id == pid)
            which = f"proposal {pid} ({proposed[pid].payload['formula']})"
            which = which + " is" if m.proposal_id is not None else f"{m.formula!r} matches {which}, which is"
            why = f" ({reason!r})" if reason else ""
            hint = {"failed": f"; for a new attempt at it, `aloop retry {pid}` first (a new proposal that takes the "
                              f"result; the failure stays); if it was marked failed by mistake, `aloop retract {pid}`",
                    "rejected": f"; if it was rejected by mistake, `aloop retract {pid}` first",
                    "cancelled": f"; the composition is free again: leave proposal_id empty (give the formula) to record "
                                 f"it as a result of its own, or `aloop retract {pid}` first if it was cancelled by mistake",
                    }.get(status[pid], "")
            problems.append(Unresolved(i, column, f"{which} marked {status[pid]}{why}: only pending or measured "
                                       f"proposals take results{hint}"))
            continue
        rk = k if explicit else result_key(m, pid, key)
        if rk in written:
            j = written[rk]
            sample = f"proposal {pid}" if pid is not None else f"composition {key}"
            problems.append(Unresolved(i, None, f"same result as {label(rows[j], j, row_name)} ({sample}, "
                                       "same values and measured_at)"))
            continue
        written[rk] = i
        earlier = tuple(measured.get(pid, ())) if pid is not None else ()
        if pid is not None:
            status[pid] = "measured"
            measured[pid] = [*earlier, values]
        out.append(Resolved(m, rk, pid, formula, key, earlier))
    return out, problems


def _was_retracted(measured: Event, retraction: Event, remedy: str) -> str:
    """Why a row repeating a retracted measurement is refused (re-recording it would be a silent no-op)."""
    return (f"this result was recorded as measurement {measured.id} and retracted on "
            f"{retraction.created_at:%Y-%m-%d %H:%M} UTC ({retraction.payload.get('reason', '')!r}): to record "
            f"the same value again, give the row {remedy}; otherwise remove the row")


def _logged_result(
    m: Measurement, pid: int | None, key: str | None, candidates: Sequence[int], logged: Mapping[str, Event]
) -> Event | None:
    """The logged event of this very result, whether it was named by proposal id or by formula."""
    for q in candidates:
        if (e := logged.get(result_key(m, q, key))) is not None:
            return e
    # Unsolicited, or matched by formula before keys named the matched proposal.
    e = logged.get(result_key(m, None, key))
    return e if e is not None and (pid is None or e.proposal_id == pid) else None


def resolve_measurements(
    rows: Sequence[Measurement],
    keys: Sequence[str],
    history: Sequence[Event],
    existing: Mapping[str, Event],
    campaign: str,
) -> tuple[list[Resolved], list[str]]:
    """Match new measurements to proposals; skip those already recorded (``existing`` by key).

    A row with a proposal id must name an existing proposal (and, if it gives a formula, the
    same composition). A row with only a composition closes the oldest pending proposal of
    that composition, else belongs to its latest measured proposal (a replicate), else is
    unsolicited. A failed, rejected or cancelled proposal takes no results. A row without an
    ``idempotency_key`` is keyed by the proposal it was matched to (``result_key``), so
    re-recording a result, by id or by formula, adds nothing.

    Returns the rows to write and the problems (a key recorded earlier with other values…).
    If there are none, a ``ReplicateWarning`` lists the rows stored next to an earlier value.
    """
    resolved, unresolved = match_measurements(rows, keys, history, existing, campaign)
    problems = [f"{label(rows[u.index], u.index)}: {u.reason}" for u in unresolved]
    replicates = [(r.proposal_id, r.formula, r.measurement.values, r.earlier) for r in resolved
                  if r.earlier and r.proposal_id is not None]
    if replicates and not problems:
        warnings.warn(replicates_message(replicates), ReplicateWarning, stacklevel=3)
    return resolved, problems


#: Results sheets from ``aloop propose -o`` carry the model's predictions as ``predicted <objective> [<units>]``,
#: ``predicted sd …`` and ``P(success)`` columns; ``record`` reads past them (an objective of that name still wins).
PREDICTED_PREFIX = "predicted "
P_SUCCESS_COLUMN = "P(success)"


def objective_columns(columns: Sequence[str], objectives: Sequence[Objective]) -> tuple[dict[str, str], list[str]]:
    """Objective name → column of a results table, and the column problems (missing, wrong units, extra).

    Headers, objective names and units are compared in NFKC (``canonical``): 'µW' (micro sign) is 'μW' (mu).
    """
    problems: list[str] = []
    found: dict[str, str] = {}
    names = {canonical(o.name): o for o in objectives}
    extra = []
    for col in columns:
        m = _HEADER.match(canonical(col))
        name, units = (m["name"].strip(), m["units"].strip()) if m else (canonical(col), None)
        if name in ("proposal_id", "formula") or (name in (*OPTIONAL_COLUMNS, *EXPORT_COLUMNS) and units is None):
            continue
        if name not in names:
            if not (name.startswith(PREDICTED_PREFIX) or name == P_SUCCESS_COLUMN):  # a sheet's reference columns
                extra.append(col)
            continue
        obj = names[name]
        if obj.name in found:
            problems.append(f"columns {found[obj.name]!r} and {col!r} both give objective {obj.name!r}")
        elif units is None and obj.units:
            problems.append(f"column {col!r} must state its units: '{obj.name} [{obj.units}]'")
        elif units is not None and units != canonical(obj.units):
            want = f"'{obj.name} [{obj.units}]'" if obj.units else f"'{obj.name}' (dimensionless)"
            typed = _HEADER.match(col.strip())
            problems.append(f"column {col!r}: units {typed['units'].strip() if typed else units!r} differ from the "
                            f"campaign's; expected {want}")
        found.setdefault(obj.name, col)
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


def announce(rows: Sequence[Measurement], resolved: Sequence[Resolved], history: Sequence[Event], row_name: str,
             log_scale: Collection[str] = ()) -> None:
    """Warn about valid rows the log already holds, and values far outside the spread of the recorded ones.

    ``resolved`` are the ``rows`` that ``match_measurements`` keeps; ``log_scale`` the objectives
    modelled as log10. The ``OutlierWarning`` names the command that retracts each value.
    """
    kept = {id(r.measurement) for r in resolved}
    skipped = [f"{row_name} {m.row}" for m in rows if id(m) not in kept and m.idempotency_key is None]
    if skipped:
        warnings.warn(already_recorded_message(skipped), AlreadyRecordedWarning, stacklevel=3)
    found = find_outliers([r.measurement.values for r in resolved], history, log_scale)
    if not found:
        return
    per_proposal = Counter(r.proposal_id for r in resolved)

    def undo(r: Resolved) -> str:
        if r.proposal_id is not None and not r.earlier and per_proposal[r.proposal_id] == 1:
            return f'aloop retract {r.proposal_id} --reason "..."'
        return ('aloop retract ID --reason "..." (ID: the measurement id `aloop record` lists for this row; '
                'in Python, AppendResult.event_ids)')

    where = [f"{row_name} {resolved[o.index].measurement.row}" for o in found]
    message = outliers_message(found, where, [undo(resolved[o.index]) for o in found])
    warnings.warn(message, OutlierWarning, stacklevel=3)
