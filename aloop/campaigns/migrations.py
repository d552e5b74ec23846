"""Upgrades of older campaign-log schemas: one step per version, all steps in one transaction.

Version history:

* v1: ``meta``, ``campaigns``, ``events`` without ``composition_key``; the key lived
  only in the JSON payload, and append-only was a convention.
* v2: ``events.composition_key`` (indexed; backfilled from payloads, and for outcome
  events from their proposal), so every event about a composition is one indexed
  look-up; triggers refuse UPDATE/DELETE on events.
* v3: event kind ``retracted`` (a measurement withdrawn, with its reason). The check
  constraint on ``events.kind`` names every kind, so it is replaced: on PostgreSQL in place,
  on SQLite (which cannot alter a constraint) by rebuilding ``events`` under the same name
  with every row copied unchanged (ids included, so ``events_digest`` is the same before and
  after). Nothing else changes; a v2 log migrated to v3 reads exactly as before.

The v1 and v2 schemas are kept here (``create_v1_schema``, ``create_v2_schema``) so the
upgrades stay tested.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    JSON,
    CheckConstraint,
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


def _v2_to_v3(conn: Connection) -> None:
    checks = [c for c in events.constraints if isinstance(c, CheckConstraint)]
    if conn.dialect.name == "postgresql":
        for check in checks:
            conn.exec_driver_sql(f"ALTER TABLE events DROP CONSTRAINT IF EXISTS {check.name}")
            conn.exec_driver_sql(f"ALTER TABLE events ADD CONSTRAINT {check.name} CHECK ({check.sqltext})")
        return
    seq = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'").scalar()
    for trigger in ("events_no_update", "events_no_delete"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
    for index in events.indexes:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index.name}")
    # The rename also points the old table's self-reference (proposal_id) at events_v2, so
    # dropping it afterwards leaves the new table's references to events intact.
    conn.exec_driver_sql("ALTER TABLE events RENAME TO events_v2")
    events.create(conn)
    columns = ", ".join(c.name for c in events.columns)
    conn.exec_driver_sql(f"INSERT INTO events ({columns}) SELECT {columns} FROM events_v2 ORDER BY id")
    conn.exec_driver_sql("DROP TABLE events_v2")
    if seq is not None:  # ids are never reused, not even those of rolled-back writes
        conn.exec_driver_sql("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'events'", (int(seq),))
    create_append_only_triggers(conn)


#: ``MIGRATIONS[n]`` upgrades a version-``n`` database to version ``n + 1``.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}
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


_V2_KINDS = ("proposed", "measured", "failed", "rejected", "cancelled", "model_fitted")
_v2 = MetaData()
Table("meta", _v2, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
Table(
    "campaigns",
    _v2,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("definition", JSON),
)
Table(
    "events",
    _v2,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("batch_id", Integer),
    Column("proposal_id", Integer, ForeignKey("events.id")),
    Column("composition_key", String(400)),
    Column("idempotency_key", String(128)),
    Column("payload", JSON, nullable=False),
    UniqueConstraint("campaign_id", "idempotency_key", name="uq_events_idempotency"),
    CheckConstraint("kind IN ({})".format(", ".join(f"'{k}'" for k in _V2_KINDS)), name="ck_events_kind"),
    CheckConstraint(
        "kind NOT IN ('failed', 'rejected', 'cancelled') OR proposal_id IS NOT NULL",
        name="ck_events_outcome_has_proposal",
    ),
    Index("ix_events_campaign_kind", "campaign_id", "kind"),
    Index("ix_events_proposal", "proposal_id"),
    Index("ix_events_campaign_key", "campaign_id", "composition_key"),
    sqlite_autoincrement=True,
)


def _create_old(conn: Connection, schema: MetaData, version: int) -> None:
    schema.create_all(conn)
    if version >= 2:
        create_append_only_triggers(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
    conn.execute(
        meta.insert(),
        [{"key": "application_id", "value": APPLICATION_ID}, {"key": "schema_version", "value": str(version)}],
    )


def create_v1_schema(conn: Connection) -> None:
    """Create an empty version-1 log (what aloop wrote before v2), for upgrade tests."""
    _create_old(conn, _v1, 1)


def create_v2_schema(conn: Connection) -> None:
    """Create an empty version-2 log (what aloop wrote before v3: no ``retracted`` kind), for upgrade tests."""
    _create_old(conn, _v2, 2)
