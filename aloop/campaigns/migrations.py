"""Upgrades of older campaign-log schemas: one step per version, all steps in one transaction.

Version history:

* v1: ``meta``, ``campaigns``, ``events`` without ``composition_key``; the key lived
  only in the JSON payload, and append-only was a convention.
* v2: ``events.composition_key`` (indexed; backfilled from payloads, and for outcome
  events from their proposal), so every event about a composition is one indexed
  look-up; triggers refuse UPDATE/DELETE on events.

The v1 schema is kept here (``create_v1_schema``) so the upgrade stays tested.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.engine import Connection

from aloop.campaigns.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLITE_APPLICATION_ID,
    create_append_only_triggers,
    events,
    meta,
)


def _v1_to_v2(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE events ADD COLUMN composition_key VARCHAR(400)")
    rows = conn.execute(select(events.c.id, events.c.kind, events.c.proposal_id, events.c.payload)).all()
    own = {
        r.id: r.payload.get("key") for r in rows if r.kind in ("proposed", "measured") and isinstance(r.payload, dict)
    }
    # v2 outcome events (failed/rejected/cancelled) carry their proposal's key as well.
    outcome = {r.id: own.get(r.proposal_id) for r in rows if r.kind in ("failed", "rejected", "cancelled")}
    keys = [{"eid": eid, "k": k} for eid, k in {**own, **outcome}.items() if k]
    if keys:
        conn.execute(
            events.update().where(events.c.id == bindparam("eid")).values(composition_key=bindparam("k")), keys
        )
    conn.exec_driver_sql("CREATE INDEX ix_events_campaign_key ON events (campaign_id, composition_key)")
    create_append_only_triggers(conn)  # after the backfill, which the triggers would refuse


#: ``MIGRATIONS[n]`` upgrades a version-``n`` database to version ``n + 1``.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2}
assert all(v in MIGRATIONS for v in range(1, SCHEMA_VERSION))


def upgrade(conn: Connection, found: int) -> int:
    """Apply every step from ``found`` to the current version inside the caller's transaction."""
    version = found
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    return version


# --- historical schemas, for upgrade tests -------------------------------------------

_v1 = MetaData()
Table("meta", _v1, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
Table(
    "campaigns",
    _v1,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("definition", JSON),
)
Table(
    "events",
    _v1,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", Integer),
    Column("proposal_id", Integer, ForeignKey("events.id")),
    Column("idempotency_key", String(128)),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("campaign_id", "idempotency_key", name="uq_events_idempotency"),
    Index("ix_events_campaign_kind", "campaign_id", "kind"),
    Index("ix_events_proposal", "proposal_id"),
    sqlite_autoincrement=True,
)


def create_v1_schema(conn: Connection) -> None:
    """Create an empty version-1 log (what aloop wrote before v2), for upgrade tests."""
    _v1.create_all(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
    conn.execute(
        meta.insert(),
        [{"key": "application_id", "value": APPLICATION_ID}, {"key": "schema_version", "value": "1"}],
    )
