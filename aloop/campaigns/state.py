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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd

from aloop.campaigns.entries import Measurement, label
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
    """A measurement ready to write: its proposal (``None`` = unsolicited), formula and key."""

    measurement: Measurement
    idempotency_key: str
    proposal_id: int | None
    formula: str | None
    key: str | None


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
    that composition, else belongs to its latest proposal (a replicate), else is unsolicited.
    Returns the rows to write and the problems (a key recorded earlier with other values…).
    """
    proposed = {e.id: e for e in history if e.kind == "proposed"}
    status = proposal_status(history)
    out: list[Resolved] = []
    problems: list[str] = []
    for i, (m, k) in enumerate(zip(rows, keys, strict=True)):
        if k in existing:
            old = existing[k]
            same_values = old.payload.get("values") == {n: float(v) for n, v in m.values.items()}
            if not same_values or (m.proposal_id is not None and old.proposal_id != int(m.proposal_id)):
                problems.append(
                    f"{label(m, i)}: idempotency key {k[:16]}… was recorded (event {old.id}) with other values"
                )
            continue
        pid = None if m.proposal_id is None else int(m.proposal_id)  # numpy ints from DataFrames too
        formula, key = m.formula, m.key
        if pid is not None:
            p = proposed.get(pid)
            if p is None:
                problems.append(f"{label(m, i)}: proposal {pid} does not exist in campaign {campaign!r}")
                continue
            if key is not None and key != p.composition_key:
                problems.append(
                    f"{label(m, i)}: composition {formula or key!r} is not that of proposal {pid} "
                    f"({p.payload['formula']})"
                )
                continue
            formula, key = p.payload["formula"], p.composition_key
        else:
            same = [e.id for e in proposed.values() if e.composition_key == key]
            waiting = [q for q in same if status[q] == "pending"]
            pid = waiting[0] if waiting else (same[-1] if same else None)
        if pid is not None:
            status[pid] = "measured"
        out.append(Resolved(m, k, pid, formula, key))
    return out, problems
