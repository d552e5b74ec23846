"""A campaign's state derived from its events: proposals with status, observations, failures, models.

Pure functions over a sequence of ``Event`` (oldest first), so the same derivation serves the
live log and offline replays. Given the log's event tuple (``CampaignLog.events()``, the same
object while the log is unchanged) they compute once and hand out copies. A proposal's status
is the kind of its latest outcome event (``measured``, ``failed``, ``rejected``,
``cancelled``), or ``pending`` if none.

A retracted measurement (a ``retracted`` event names it) is left out of everything derived
here except the events themselves and ``retractions``: it is no observation, makes no
composition "measured", and a proposal whose every measurement is retracted is ``pending``
again — it awaits a result, as if the wrong value had never been recorded. A ``failed``,
``rejected`` or ``cancelled`` outcome set by mistake is retracted the same way (the
``retracted`` event names it by ``outcome_id``): it is left out of ``outcomes``, the
composition is no longer excluded, and the proposal is ``pending`` again.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd

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


def retracted(events: Iterable[Event]) -> dict[int, Event]:
    """Measurement event id → the ``retracted`` event that withdrew it."""
    return {int(e.payload["measurement_id"]): e for e in events
            if e.kind == "retracted" and "measurement_id" in e.payload}


def undone(events: Iterable[Event]) -> dict[int, Event]:
    """``failed`` / ``rejected`` / ``cancelled`` event id → the ``retracted`` event that withdrew it."""
    return {int(e.payload["outcome_id"]): e for e in events if e.kind == "retracted" and "outcome_id" in e.payload}


def _proposal_states(events: Iterable[Event]) -> dict[int, tuple[str, datetime | None]]:
    """Proposal id → (status, time of the event that set it; ``None`` while first pending)."""
    states: dict[int, tuple[str, datetime | None]] = {}
    valid: dict[int, set[int]] = {}  # proposal → its measurements not retracted
    for e in events:
        pid = e.proposal_id
        if e.kind == "proposed":
            states[e.id] = ("pending", None)
        elif e.kind in OUTCOME_KINDS and pid is not None:
            states[pid] = (e.kind, e.created_at)
            if e.kind == "measured":
                valid.setdefault(pid, set()).add(e.id)
        elif e.kind == "retracted" and "outcome_id" in e.payload and pid in states:
            states[pid] = ("pending", e.created_at)  # only a proposal's latest outcome can be retracted
        elif e.kind == "retracted" and pid in valid:
            valid[pid].discard(int(e.payload["measurement_id"]))
            if not valid[pid] and states[pid][0] == "measured":
                states[pid] = ("pending", e.created_at)
    return states


def proposal_status(events: Iterable[Event]) -> dict[int, str]:
    """Proposal id → ``pending`` or the kind of its latest outcome event (see the module docstring)."""
    return {pid: status for pid, (status, _) in _proposal_states(events).items()}


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
    """Every proposal, oldest first, with ``status`` and ``status_at`` (when the status was last set).

    ``p_success`` is the feasibility model's P(success) when it was proposed (missing before any failure or veto).
    Predictions appear as ``mean_<objective>`` and ``std_<objective>`` columns.
    """
    states = _proposal_states(events)
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
            "p_success": p.get("p_success"),
            "reason": p.get("reason", ""),
            "proposed_at": e.created_at,
            "status": states[e.id][0],
            "status_at": states[e.id][1],
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
        "p_success",
        "reason",
        "proposed_at",
        "status",
        "status_at",
    ]
    return _frame(rows, cols)


@_memo
def observations(events: Sequence[Event]) -> pd.DataFrame:
    """Every measurement not retracted, oldest first: one column per objective; ``attrs["units"]`` gives units."""
    gone = retracted(events)
    rows = []
    units: dict[str, str] = {}
    objectives: list[str] = []
    for e in events:
        if e.kind != "measured" or e.id in gone:
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
    withdrawn = undone(events)
    rows = []
    for e in events:
        if e.kind != kind or e.id in withdrawn:
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


def negatives(events: Sequence[Event]) -> pd.DataFrame:
    """The feasibility model's negatives: every ``failed`` then every ``rejected`` outcome (``outcomes``' columns)."""
    frames = [df for df in (outcomes(events, k) for k in ("failed", "rejected")) if len(df)]
    return pd.concat(frames, ignore_index=True) if frames else outcomes(events, "failed")


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

    Measured (solicited or not; retracted measurements do not count), pending and rejected
    compositions always; failed ones unless ``include_failed=False`` (to allow a retry).
    Cancelled proposals are free again, and so are retracted rejections.
    """
    status = proposal_status(events)
    gone = retracted(events)
    withdrawn = undone(events)
    out: set[str] = set()
    rejected: set[str] = set()
    for e in events:
        if e.composition_key is None:
            continue
        if e.kind == "measured" and e.id not in gone:
            out.add(e.composition_key)
        elif e.kind == "rejected" and e.id not in withdrawn:
            rejected.add(e.composition_key)
        elif e.kind == "proposed":
            s = status[e.id]
            if s in ("pending", "measured") or (s == "failed" and include_failed):
                out.add(e.composition_key)
    return out | rejected


def retractions(events: Sequence[Event]) -> pd.DataFrame:
    """Every retraction, oldest first: what it withdrew (``kind``: ``measured`` with the measurement's id and
    values, or the ``failed`` / ``rejected`` / ``cancelled`` outcome's event id), proposal, formula, why, by whom, when."""
    by_id = {e.id: e for e in events if e.kind in OUTCOME_KINDS}
    rows = []
    objectives: list[str] = []
    for e in events:
        if e.kind != "retracted":
            continue
        p = e.payload
        m = by_id[int(p["measurement_id"] if "measurement_id" in p else p["outcome_id"])]
        values = m.payload["values"] if m.kind == "measured" else {}
        objectives += [name for name in values if name not in objectives]
        rows.append({"event_id": e.id, "kind": m.kind, "measurement_id": m.id if m.kind == "measured" else None,
                     "outcome_id": None if m.kind == "measured" else m.id, "proposal_id": m.proposal_id,
                     "formula": p.get("formula") or m.payload.get("formula"), "key": m.composition_key, **values,
                     "reason": p.get("reason", ""), "operator": p.get("operator"), "retracted_at": e.created_at})
    df = _frame(rows, ["event_id", "kind", "measurement_id", "outcome_id", "proposal_id", "formula", "key",
                       *objectives, "reason", "operator", "retracted_at"])
    for col in ("measurement_id", "outcome_id", "proposal_id"):  # proposal_id is missing for unsolicited measurements
        df[col] = df[col].astype("Int64")
    return df
