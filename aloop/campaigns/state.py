"""A campaign's state derived from its events: proposals with status, observations, failures, models.

Pure functions over a sequence of ``Event`` (oldest first), so the same derivation serves the
live log and offline replays. Given the log's event tuple (``CampaignLog.events()``, the same
object while the log is unchanged) they compute once and hand out copies. A proposal's status
is the kind of its latest outcome event (``measured``, ``failed``, ``rejected``,
``cancelled``), or ``pending`` if none.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd

from aloop.campaigns.entries import Measurement, ReplicateWarning, label, replicates_message, result_key
from aloop.campaigns.schema import OUTCOME_KINDS


@dataclass(frozen=True)
class Event:
    """One row of the ``events`` table (``created_at`` is timezone-aware UTC)."""

    id: int
    kind: str
    created_at: datetime
    payload: dict[str, Any]
    batch_id: int | None = None
    proposal_id: int | None = None
    composition_key: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def from_row(cls, r: Any) -> Event:
        """An event from a row of the ``events`` table."""
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
        return cls(
            r.id,
            r.kind,
            created.astimezone(UTC),
            r.payload,
            r.batch_id,
            r.proposal_id,
            r.composition_key,
            r.idempotency_key,
        )


def proposal_status(events: Iterable[Event]) -> dict[int, str]:
    """Proposal id → ``pending`` or the kind of its latest outcome event."""
    status: dict[int, str] = {}
    for e in events:
        if e.kind == "proposed":
            status[e.id] = "pending"
        elif e.kind in OUTCOME_KINDS and e.proposal_id is not None:
            status[e.proposal_id] = e.kind
    return status


_T = TypeVar("_T")


def _memo(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Remember ``fn``'s last result for one event tuple (by identity; lists are never remembered).

    Holding the tuple keeps its identity from being reused; callers get a copy to change freely.
    """
    last: list[tuple[tuple[Event, ...], Any, Any]] = []  # one (events, arguments, result) entry

    @functools.wraps(fn)
    def wrapper(events: Sequence[Event], *args: Any, **kwargs: Any) -> _T:
        if not isinstance(events, tuple):
            return fn(events, *args, **kwargs)
        key = (args, sorted(kwargs.items()))
        entry = last[0] if last else None  # one read: another thread may swap the entry meanwhile
        if entry is None or entry[0] is not events or entry[1] != key:
            entry = (events, key, fn(events, *args, **kwargs))
            last[:] = [entry]
        return copy.copy(entry[2])

    return wrapper


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in columns]
    return df.reindex(columns=[*columns, *extra])


@_memo
def proposals(events: Sequence[Event]) -> pd.DataFrame:
    """Every proposal, oldest first, with ``status`` and ``status_at`` (time of its latest outcome).

    Predictions appear as ``mean_<objective>`` and ``std_<objective>`` columns.
    """
    status = proposal_status(events)
    status_at: dict[int, datetime] = {}
    for e in events:
        if e.kind in OUTCOME_KINDS and e.proposal_id is not None:
            status_at[e.proposal_id] = e.created_at
    rows = []
    for e in events:
        if e.kind != "proposed":
            continue
        p = e.payload
        row = {
            "proposal_id": e.id,
            "batch_id": e.batch_id,
            "formula": p.get("formula"),
            "key": e.composition_key,
            "model_version": p.get("model_version"),
            "acquisition_value": p.get("acquisition_value"),
            "reason": p.get("reason", ""),
            "proposed_at": e.created_at,
            "status": status[e.id],
            "status_at": status_at.get(e.id),
        }
        row.update({f"mean_{k}": v for k, v in (p.get("mean") or {}).items()})
        row.update({f"std_{k}": v for k, v in (p.get("std") or {}).items()})
        rows.append(row)
    cols = [
        "proposal_id",
        "batch_id",
        "formula",
        "key",
        "model_version",
        "acquisition_value",
        "reason",
        "proposed_at",
        "status",
        "status_at",
    ]
    return _frame(rows, cols)


@_memo
def observations(events: Sequence[Event]) -> pd.DataFrame:
    """Every measurement, oldest first: one column per objective; ``attrs["units"]`` gives units."""
    rows = []
    units: dict[str, str] = {}
    objectives: list[str] = []
    for e in events:
        if e.kind != "measured":
            continue
        p = e.payload
        for name in p["values"]:
            if name not in objectives:
                objectives.append(name)
        units.update(p.get("units") or {})
        rows.append(
            {
                "event_id": e.id,
                "proposal_id": e.proposal_id,
                "formula": p.get("formula"),
                "key": e.composition_key,
                **p["values"],
                "measured_at": pd.Timestamp(p["measured_at"]) if p.get("measured_at") else None,
                "recorded_at": e.created_at,
                "operator": p.get("operator"),
                "notes": p.get("notes"),
                "raw_ref": p.get("raw_ref"),
                "unsolicited": bool(p.get("unsolicited", False)),
                "idempotency_key": e.idempotency_key,
            }
        )
    cols = [
        "event_id",
        "proposal_id",
        "formula",
        "key",
        *objectives,
        "measured_at",
        "recorded_at",
        "operator",
        "notes",
        "raw_ref",
        "unsolicited",
        "idempotency_key",
    ]
    df = _frame(rows, cols)
    df["proposal_id"] = df["proposal_id"].astype("Int64")  # missing for unsolicited rows
    df.attrs["units"] = units
    return df


def outcomes(events: Sequence[Event], kind: str) -> pd.DataFrame:
    """``failed``, ``rejected`` or ``cancelled`` events with the proposal's formula and key."""
    proposed = {e.id: e for e in events if e.kind == "proposed"}
    rows = []
    for e in events:
        if e.kind != kind:
            continue
        p = proposed.get(e.proposal_id) if e.proposal_id is not None else None
        rows.append(
            {
                "event_id": e.id,
                "proposal_id": e.proposal_id,
                "formula": p.payload.get("formula") if p else None,
                "key": e.composition_key,
                "reason": e.payload.get("reason", ""),
                "at": e.created_at,
            }
        )
    return _frame(rows, ["event_id", "proposal_id", "formula", "key", "reason", "at"])


@_memo
def model_versions(events: Sequence[Event]) -> pd.DataFrame:
    """Every fitted model, oldest first; cross-validation metrics as ``cv_<metric>`` columns."""
    rows = []
    for e in events:
        if e.kind != "model_fitted":
            continue
        p = e.payload
        row = {
            "event_id": e.id,
            "model_version": p["model_version"],
            "training_size": p["training_size"],
            "fitted_at": e.created_at,
            "details": p.get("details") or {},
        }
        row.update({f"cv_{k}": v for k, v in (p.get("cv") or {}).items()})
        rows.append(row)
    return _frame(rows, ["event_id", "model_version", "training_size", "fitted_at", "details"])


@_memo
def excluded_keys(events: Sequence[Event], include_failed: bool = True) -> set[str]:
    """Composition keys that must not be proposed again.

    Measured (solicited or not), pending and rejected compositions always; failed ones
    unless ``include_failed=False`` (to allow a retry). Cancelled proposals are free again.
    """
    status = proposal_status(events)
    out: set[str] = set()
    rejected: set[str] = set()
    for e in events:
        if e.composition_key is None:
            continue
        if e.kind == "measured":
            out.add(e.composition_key)
        elif e.kind == "rejected":
            rejected.add(e.composition_key)
        elif e.kind == "proposed":
            s = status[e.id]
            if s in ("pending", "measured") or (s == "failed" and include_failed):
                out.add(e.composition_key)
    return out | rejected


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


_CLOSED = ("failed", "rejected", "cancelled")  # outcomes after which a proposal takes no results


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
    measured: dict[int, list[Mapping[str, float]]] = {}  # proposal → its values so far
    for e in history:
        if e.kind == "measured" and e.proposal_id is not None:
            measured.setdefault(e.proposal_id, []).append(e.payload["values"])
    written: dict[str, int] = {}  # key → index of the row of this call that takes it
    out: list[Resolved] = []
    problems: list[Unresolved] = []
    for i, (m, k) in enumerate(zip(rows, keys, strict=True)):
        values = {n: float(v) for n, v in m.values.items()}
        explicit = m.idempotency_key is not None
        if explicit and k in logged:
            old = logged[k]
            other_proposal = m.proposal_id is not None and old.proposal_id != int(m.proposal_id)
            if old.payload.get("values") != values or other_proposal:
                problems.append(Unresolved(i, "idempotency_key", f"idempotency key {k[:16]}… was recorded "
                                           f"(event {old.id}) with other values"))
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
        if not explicit and _logged_result(m, pid, key, candidates, logged) is not None:
            continue  # the same result, recorded earlier (perhaps named the other way)
        if pid is None and candidates:
            waiting = [q for q in candidates if status[q] == "pending"]
            done = [q for q in candidates if status[q] == "measured"]
            pid = waiting[0] if waiting else done[-1] if done else candidates[-1]
        if pid is not None and status[pid] in _CLOSED:
            reason = next(e.payload.get("reason", "") for e in reversed(history) if e.proposal_id == pid)
            which = f"proposal {pid} ({proposed[pid].payload['formula']})"
            which = which + " is" if m.proposal_id is not None else f"{m.formula!r} matches {which}, which is"
            why = f" ({reason!r})" if reason else ""
            problems.append(Unresolved(i, column, f"{which} marked {status[pid]}{why}: only pending or measured "
                                       "proposals take results"))
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
