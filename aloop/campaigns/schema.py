"""The campaign log's SQL schema (version 3): meta, campaigns and the append-only events table.

One database may hold several campaigns. Every fact is a row of ``events``; nothing is
ever updated or deleted (triggers refuse it), so a campaign's state is whatever its
events say. A proposal's id is the id of its ``proposed`` event; later events about it
(``measured``, ``failed``, ``rejected``, ``cancelled``) point to it through ``proposal_id``.
A wrong value is never removed: a ``retracted`` event names the measurement (or outcome) it withdraws.

``payload`` (JSON) by kind:

* ``proposed``: ``formula``, ``key``, ``model_version``, ``mean`` and ``std`` (objective →
  predicted value), ``acquisition_value``, ``reason``; ``batch_id`` column set.
* ``measured``: ``formula``, ``key``, ``values`` and ``units`` (objective → value / units),
  ``measured_at`` (ISO 8601 UTC or null), ``operator``, ``notes``, ``raw_ref``,
  ``unsolicited`` (true when the composition was never proposed).
* ``failed`` / ``rejected`` / ``cancelled``: ``reason``.
* ``retracted``: ``measurement_id`` (the event id of the withdrawn ``measured`` event) or
  ``outcome_id`` (of a ``failed`` / ``rejected`` / ``cancelled`` event set by mistake),
  ``formula``, ``reason``, ``operator``; ``proposal_id`` and ``composition_key`` are the
  withdrawn event's, and ``idempotency_key`` is ``retracted:<its id>``, so the database
  itself refuses a second retraction of one event.
* ``model_fitted``: ``model_version``, ``training_size``, ``cv`` (metric → value), ``details``.
"""

from __future__ import annotations

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
)
from sqlalchemy.engine import Connection

#: Written to ``meta`` so that a database of another application is never mistaken for a log.
APPLICATION_ID = "aloop.campaign-log"
#: SQLite header field ``application_id`` (bytes 68–71): "alop". Lets ``open`` recognise a
#: foreign SQLite file from its first 100 bytes, without connecting to (and touching) it.
SQLITE_APPLICATION_ID = 0x616C6F70
SCHEMA_VERSION = 3

EVENT_KINDS = ("proposed", "measured", "failed", "rejected", "cancelled", "model_fitted", "retracted")
#: Kinds that close a pending proposal.
OUTCOME_KINDS = ("measured", "failed", "rejected", "cancelled")
#: Outcomes after which a proposal takes no results (a ``retracted`` event can withdraw one set by mistake).
CLOSING_KINDS = OUTCOME_KINDS[1:]
#: Kinds a proposal's status is derived from (a retraction can make a measured proposal pending again).
STATUS_KINDS = ("proposed", *OUTCOME_KINDS, "retracted")

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("definition", JSON),
)

events = Table(
    "events",
    metadata,
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
    CheckConstraint("kind IN ({})".format(", ".join(f"'{k}'" for k in EVENT_KINDS)), name="ck_events_kind"),
    CheckConstraint(
        "kind NOT IN ('failed', 'rejected', 'cancelled') OR proposal_id IS NOT NULL",
        name="ck_events_outcome_has_proposal",
    ),
    Index("ix_events_campaign_kind", "campaign_id", "kind"),
    Index("ix_events_proposal", "proposal_id"),
    Index("ix_events_campaign_key", "campaign_id", "composition_key"),
    sqlite_autoincrement=True,  # ids never reused, so they order events in time
)

_SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
    "BEGIN SELECT RAISE(ABORT, 'aloop: events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
    "BEGIN SELECT RAISE(ABORT, 'aloop: events are append-only'); END",
]
_POSTGRES_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION aloop_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'aloop: events are append-only'; END $$",
    "DROP TRIGGER IF EXISTS events_append_only ON events",
    "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION aloop_events_append_only()",
]


def create_append_only_triggers(conn: Connection) -> None:
    """Make the database itself refuse UPDATE and DELETE on ``events``."""
    statements = _SQLITE_APPEND_ONLY if conn.dialect.name == "sqlite" else _POSTGRES_APPEND_ONLY
    for sql in statements:
        conn.exec_driver_sql(sql)


def create_schema(conn: Connection, created_by: str) -> None:
    """Create the current schema in an empty database (inside the caller's transaction)."""
    metadata.create_all(conn)
    create_append_only_triggers(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
    conn.execute(
        meta.insert(),
        [
            {"key": "application_id", "value": APPLICATION_ID},
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "created_by", "value": created_by},
        ],
    )
