"""The durable campaign log: append proposals, measurements, outcomes, retractions and model fits; derive state.

The log is the single source of truth. Every write is one transaction (all rows or none);
state (pending proposals, observations, failures, …) is recomputed from events on each
read, so a crash between two steps loses nothing and a restart resumes.

Example::

    log = CampaignLog.open("runs/zt.sqlite", "zt", create=True)
    batch = log.append_proposals([Proposal("Bi2Te3", "Bi0.4 Te0.6")], model_version=None)
    log.append_measurements([Measurement({"zT": 0.9}, {"zT": ""}, proposal_id=batch.proposal_ids[0])])
    log.pending()        # DataFrame: nothing pending any more
    log.observations()   # DataFrame: one row, column "zT"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from aloop.campaigns import state
from aloop.campaigns._store import (
    CampaignLogError,
    NoCampaignLogError,
    OutdatedSchemaError,
    database_error,
    describe,
    events_digest,
    list_campaigns,
    migrate,
    open_log,
    write_transaction,
)
from aloop.campaigns.consistency import ProposalConflictError, check_free, check_pending, check_retractions
from aloop.campaigns.entries import (
    AppendResult,
    Batch,
    Measurement,
    Proposal,
    check_measurements,
    check_proposals,
    default_idempotency_key,
    id_list,
    measurement_payload,
    proposal_payload,
)
from aloop.campaigns.matching import resolve_measurements
from aloop.campaigns.schema import STATUS_KINDS, events
from aloop.campaigns.state import Event

__all__ = [
    "AppendResult",
    "Batch",
    "CampaignLog",
    "CampaignLogError",
    "Measurement",
    "NoCampaignLogError",
    "OutdatedSchemaError",
    "Proposal",
    "ProposalConflictError",
    "default_idempotency_key",
    "list_campaigns",
    "migrate",
]

#: TEST-ONLY hook: when set, measurements are inserted one row at a time and the hook is
#: called with the row index after each INSERT, inside the open transaction, so
#: durability tests can kill a writer half-way through. Never set it in real code.
_test_row_hook: Callable[[int], None] | None = None


class CampaignLog:
    """An append-only event log of one campaign in a SQLite file or a PostgreSQL database.

    Open with ``CampaignLog.open``; use as a context manager or call ``close()``.
    """

    def __init__(self, engine: Engine, url: URL, campaign_id: int, name: str) -> None:
        self._engine = engine
        self.url = url
        self.campaign_id = campaign_id
        self.name = name
        # Events are immutable and, per campaign, committed in id order (writes hold the
        # campaign's lock), so reads fetch only ids above the last one seen.
        self._seen: tuple[Event, ...] = ()

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        target: str | Path | URL,
        campaign: str | None = None,
        *,
        create: bool = False,
        definition: Mapping[str, Any] | None = None,
    ) -> CampaignLog:
        """Open the log of ``campaign`` at ``target`` (a URL or a SQLite file path).

        Args:
            campaign: campaign name; may be omitted when the database holds exactly one.
            create: create the database schema and/or the campaign if missing.
            definition: JSON-able campaign definition stored with a new campaign.

        Raises:
            CampaignLogError: corrupt file, another application's database, no log or
                campaign there (and ``create`` is false), unreachable server. The file or
                database is left exactly as it was.
            OutdatedSchemaError: an older schema; run ``migrate(target)`` first.
        """
        engine, url, cid, name = open_log(target, campaign, create, definition)
        return cls(engine, url, cid, name)

    def close(self) -> None:
        """Release connections (SQLite: checkpoints the WAL into the file)."""
        self._engine.dispose()

    def __enter__(self) -> CampaignLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CampaignLog({describe(self.url)!r}, campaign={self.name!r})"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with write_transaction(self._engine, lock=self.campaign_id) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise database_error(describe(self.url), exc) from None

    def _rows(
        self, conn: Connection, rows: list[dict[str, Any]], hook: Callable[[int], None] | None = None
    ) -> list[int]:
        stmt = events.insert().returning(events.c.id, sort_by_parameter_order=True)
        if hook is None:
            return list(conn.execute(stmt, rows).scalars()) if rows else []
        ids = []
        for i, row in enumerate(rows):
            ids.append(conn.execute(stmt, row).scalar_one())
            hook(i)
        return ids

    def _load(self, conn: Connection, kinds: Sequence[str] | None = None) -> tuple[Event, ...]:
        q = select(events).where(events.c.campaign_id == self.campaign_id).order_by(events.c.id)
        if self._seen:
            q = q.where(events.c.id > self._seen[-1].id)
        new = tuple(Event.from_row(r) for r in conn.execute(q))
        if new:
            # A new tuple only when the log grew: an unchanged log is the same object, which
            # lets the state derivations (``aloop.campaigns.state``) reuse their results.
            self._seen = self._seen + new
        if kinds is None:
            return self._seen
        wanted = frozenset(kinds)
        return tuple(e for e in self._seen if e.kind in wanted)

    def _base(self, kind: str, now: datetime, **cols: Any) -> dict[str, Any]:
        row = {
            "campaign_id": self.campaign_id,
            "kind": kind,
            "created_at": now,
            "batch_id": None,
            "proposal_id": None,
            "composition_key": None,
            "idempotency_key": None,
        }
        row.update(cols)
        return row

    # --- writes -----------------------------------------------------------------------

    def append_proposals(self, proposals: Sequence[Proposal], *, model_version: str | None = None,
                         retry_of: Sequence[int] | None = None) -> Batch:
        """Write one batch of proposals (all or none); they are pending until an outcome.

        ``retry_of``: for each proposal, the failed proposal of the same composition it tries again (the
        failure stays in the log and in the feasibility model; the new proposal takes the result).

        Raises:
            CampaignLogError: empty batch, a composition twice in the batch, non-finite
                predictions.
            ProposalConflictError: a composition that is pending, measured or rejected in the
                log as it stands when the batch is written (checked under the write lock, so
                two writers never both propose a composition).
        """
        props = list(proposals)
        problems = check_proposals(props) if props else ["no proposals given"]
        if problems:
            raise CampaignLogError("proposals not written:\n  " + "\n  ".join(problems))
        now = datetime.now(UTC)
        if retry_of is not None and len(retry_of) != len(props):
            raise CampaignLogError(f"retry_of names {len(retry_of)} proposal(s) for {len(props)} proposal(s)")
        with self._write() as conn:
            history = self._load(conn)
            failed = check_pending("retried", list(retry_of), history, self.name, need="failed") if retry_of else {}
            if bad := [f"proposal {pid} is {failed[pid].payload['formula']}, not {p.formula}"
                       for p, pid in zip(props, retry_of or (), strict=False) if failed[pid].composition_key != p.key]:
                raise CampaignLogError("nothing retried:\n  " + "\n  ".join(bad))
            check_free(props, history)
            last = conn.execute(
                select(func.max(events.c.batch_id)).where(events.c.campaign_id == self.campaign_id)
            ).scalar()
            batch = (last or 0) + 1
            rows = [
                self._base("proposed", now, batch_id=batch, composition_key=p.key,
                           payload=proposal_payload(p, model_version) | ({"retry_of": retry_of[i]} if retry_of else {}))
                for i, p in enumerate(props)
            ]
            ids = self._rows(conn, rows)
        return Batch(batch, tuple(ids))

    def append_measurements(self, rows: Sequence[Measurement]) -> AppendResult:
        """Record measurements in ONE transaction: all are written or none.

        A row whose idempotency key is already in the log is skipped (counted in
        ``duplicates``), so re-recording a file is a no-op. Rows without a proposal id are
        matched by composition key to a pending proposal (else the latest one); if the
        composition was never proposed, the row is stored with ``unsolicited=True``.

        Raises:
            CampaignLogError: a key repeated within ``rows``; unknown proposal ids; a
                formula that contradicts its proposal; non-finite values; a key already
                recorded with different content. Nothing is written then.
        """
        given = {id(m): i for i, m in enumerate(rows)}
        rows = sorted(rows, key=Measurement.order)  # the same rows in any order are the same log
        keys, problems = check_measurements(rows)
        if problems:
            raise CampaignLogError("measurements not written:\n  " + "\n  ".join(problems))
        now = datetime.now(UTC)
        with self._write() as conn:
            history = self._load(conn, STATUS_KINDS)
            existing = self._existing(conn, keys)
            resolved, problems = resolve_measurements(rows, keys, history, existing, self.name)
            new = [
                self._base(
                    "measured",
                    now,
                    proposal_id=r.proposal_id,
                    composition_key=r.key,
                    idempotency_key=r.idempotency_key,
                    payload=measurement_payload(r.measurement, r.formula, r.key, unsolicited=r.proposal_id is None),
                )
                for r in resolved
            ]
            unsolicited = sum(r.proposal_id is None for r in resolved)
            if problems:
                raise CampaignLogError("measurements not written:\n  " + "\n  ".join(problems))
            ids = self._rows(conn, new, _test_row_hook)
        written = sorted(zip(ids, (r.measurement for r in resolved), strict=True), key=lambda p: given[id(p[1])])
        return AppendResult(len(new), len(rows) - len(new), unsolicited, tuple(i for i, _ in written),
                            tuple(m.row for _, m in written))  # in the caller's row order

    def _existing(self, conn: Connection, keys: Sequence[str]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for start in range(0, len(keys), 500):
            q = select(events).where(
                events.c.campaign_id == self.campaign_id, events.c.idempotency_key.in_(keys[start : start + 500])
            )
            for r in conn.execute(q):
                found[r.idempotency_key] = Event.from_row(r)
        return found

    def _close(self, kind: str, proposal_ids: int | Sequence[int], reason: str) -> list[int]:
        ids = id_list(proposal_ids, kind, "proposal")
        verb = {"failed": "fail", "rejected": "reject", "cancelled": "cancel"}[kind]
        if not isinstance(reason, str):
            raise CampaignLogError(f"{verb}: the reason must be text, got {type(reason).__name__} {reason!r}")
        if kind != "cancelled" and not reason.strip():
            raise CampaignLogError(f"{verb}: give a reason (--reason TEXT: why the proposal is {kind}); it is kept "
                                   "in the log and teaches the feasibility model")
        now = datetime.now(UTC)
        with self._write() as conn:
            proposed = check_pending(kind, ids, self._load(conn, STATUS_KINDS), self.name)
            rows = [self._base(kind, now, proposal_id=pid, composition_key=proposed[pid].composition_key,
                               payload={"reason": reason}) for pid in ids]
            return self._rows(conn, rows)

    def fail(self, proposal_ids: int | Sequence[int], reason: str) -> list[int]:
        """Record that pending proposals could not be synthesised/measured; returns event ids."""
        return self._close("failed", proposal_ids, reason)

    def reject(self, proposal_ids: int | Sequence[int], reason: str) -> list[int]:
        """Refuse pending proposals: their compositions are never proposed again."""
        return self._close("rejected", proposal_ids, reason)

    def cancel(self, proposal_ids: int | Sequence[int], reason: str = "") -> list[int]:
        """Withdraw pending proposals (not made); their compositions may be proposed again."""
        return self._close("cancelled", proposal_ids, reason)

    def retract(self, ids: int | Sequence[int], reason: str, operator: str | None = None) -> list[int]:
        """Withdraw wrongly recorded measurements or outcomes (all or none); returns the ``retracted`` event ids.

        ``ids``: measurement event ids (``event_id`` of ``observations()``), or the id of a
        proposal with exactly one measurement not yet retracted. Nothing is deleted: the value
        stays in ``events()`` with the retraction's ``reason``, ``operator`` and time, but leaves
        ``observations()`` (so the model's training data) and counts as never measured. A
        proposal left without measurements is pending again and takes a corrected result.
        A proposal marked failed, rejected or cancelled by mistake (its id, or the outcome's
        event id) is pending again the same way: the outcome leaves ``failures()`` /
        ``rejections()`` and the feasibility model's data, and a rejected composition may be
        proposed again.

        Raises:
            CampaignLogError: no ids or no reason; an id that is neither a measurement, an
                outcome nor a proposal with exactly one measurement or an outcome; a measurement
                or outcome already retracted or named twice; an outcome whose composition was
                measured or proposed again since.
        """
        targets = id_list(ids, "retract", "measurement or proposal")
        if not isinstance(reason, str) or not reason.strip():
            raise CampaignLogError("retract: give a reason (why the recorded value is wrong)")
        if operator is not None and not isinstance(operator, str):
            raise CampaignLogError(f"retract: operator must be text (who retracts), got {operator!r}")
        now = datetime.now(UTC)
        with self._write() as conn:
            history = self._load(conn)
            formulas = {e.id: e.payload.get("formula") for e in history if e.kind == "proposed"}
            rows = [self._base("retracted", now, proposal_id=e.proposal_id, composition_key=e.composition_key,
                               idempotency_key=f"retracted:{e.id}",
                               payload={"measurement_id" if e.kind == "measured" else "outcome_id": e.id,
                                        "formula": e.payload.get("formula", formulas.get(e.proposal_id)),
                                        "reason": reason, "operator": operator})
                    for e in check_retractions(targets, history, self.name)]
            return self._rows(conn, rows)

    def record_model_fit(
        self,
        model_version: str,
        training_size: int,
        cv: Mapping[str, float] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a fitted surrogate (``model_version`` unique per campaign); returns the event id."""
        if not model_version:
            raise CampaignLogError("record_model_fit: model_version must be non-empty")
        key = f"model_fitted:{model_version}"
        payload = {
            "model_version": model_version,
            "training_size": int(training_size),
            "cv": {k: float(v) for k, v in (cv or {}).items()},
            "details": dict(details or {}),
        }
        with self._write() as conn:
            if self._existing(conn, [key]):
                raise CampaignLogError(f"model version {model_version!r} is already recorded")
            return self._rows(
                conn, [self._base("model_fitted", datetime.now(UTC), idempotency_key=key, payload=payload)]
            )[0]

    # --- derived state ----------------------------------------------------------------

    def events(self, kinds: Sequence[str] | None = None) -> tuple[Event, ...]:
        """This campaign's events, oldest first (optionally only some kinds)."""
        try:
            with self._engine.connect() as conn:
                return self._load(conn, kinds)
        except SQLAlchemyError as exc:
            raise database_error(describe(self.url), exc) from None

    def proposals(self) -> pd.DataFrame:
        """Every proposal with its status (see ``aloop.campaigns.state.proposals``)."""
        return state.proposals(self.events())

    def pending(self) -> pd.DataFrame:
        """Proposals without an outcome yet, oldest first."""
        df = self.proposals()
        return df[df["status"] == "pending"].reset_index(drop=True)

    def observations(self) -> pd.DataFrame:
        """Every measurement not retracted, one column per objective (``attrs["units"]`` has the units)."""
        return state.observations(self.events())

    def retractions(self) -> pd.DataFrame:
        """Every retraction: the measurement withdrawn, its values, the reason, who and when."""
        return state.retractions(self.events())

    def failures(self) -> pd.DataFrame:
        """Every ``failed`` event with the proposal's formula, key and the reason."""
        return state.outcomes(self.events(), "failed")

    def rejections(self) -> pd.DataFrame:
        """Every ``rejected`` event with the proposal's formula, key and the reason."""
        return state.outcomes(self.events(), "rejected")

    def model_versions(self) -> pd.DataFrame:
        """Every ``model_fitted`` event: version, training size, ``cv_*`` metrics."""
        return state.model_versions(self.events())

    def excluded_keys(self, include_failed: bool = True) -> set[str]:
        """Composition keys not to propose: measured, pending, rejected (and failed)."""
        return state.excluded_keys(self.events(), include_failed)

    def events_digest(self) -> str:
        """sha256 of the whole ``events`` table (every campaign): equal digests, unchanged log."""
        with self._engine.connect() as conn:
            return events_digest(conn)

