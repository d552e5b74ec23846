"""Opening a log database safely: URLs, foreign/corrupt-file checks, engines and write transactions.

SQLite files are checked from their first 100 bytes before any connection is made, so a
corrupt file or another application's database is reported without being touched.
Writers serialise per database (SQLite ``BEGIN IMMEDIATE`` + busy timeout) or per
campaign (a PostgreSQL transaction-scoped advisory lock): concurrent writers wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from aloop import __version__
from aloop.campaigns.migrations import upgrade
from aloop.campaigns.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLITE_APPLICATION_ID,
    campaigns,
    create_schema,
    events,
    meta,
)

BUSY_TIMEOUT_S = 60.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOCK_NAMESPACE = 0x616C6F70  # first key of pg_advisory_xact_lock(int, int)
_OUR_TABLES = {"meta", "campaigns", "events"}


class CampaignLogError(Exception):
    """A campaign log that cannot be opened or a write it refuses (nothing was written)."""


class NoCampaignLogError(CampaignLogError):
    """There is no campaign log at ``where`` yet (``open(..., create=True)`` creates one)."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(message)


class OutdatedSchemaError(CampaignLogError):
    """The log was written with an older schema; ``migrate(url)`` upgrades it."""

    def __init__(self, where: str, found: int) -> None:
        self.found = found
        self.expected = SCHEMA_VERSION
        super().__init__(
            f"{where} has campaign-log schema v{found}; this aloop uses v{SCHEMA_VERSION}. "
            "Back it up, then upgrade it with aloop.campaigns.migrate(url)."
        )


def to_url(target: str | Path | URL) -> URL:
    """A SQLAlchemy URL from a URL string or a path to a SQLite file (made absolute)."""
    if isinstance(target, URL):
        url = target
    elif isinstance(target, Path) or "://" not in target:
        return URL.create("sqlite", database=str(Path(target).expanduser().resolve()))
    else:
        try:
            url = make_url(target)
        except ArgumentError as exc:
            raise CampaignLogError(f"not a database URL: {target!r} ({exc})") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise CampaignLogError(f"unsupported database {backend!r}: use sqlite or postgresql")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise CampaignLogError("a campaign log needs a SQLite file, not an in-memory database")
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    return url


def url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a log's database URL (``None`` if it can); for config validation."""
    if "://" not in value:
        return (
            f"not a database URL: {value!r} (e.g. 'sqlite:///campaign.sqlite' or 'postgresql+psycopg2://user@host/db')"
        )
    try:
        to_url(value)
    except CampaignLogError as exc:
        return str(exc)
    return None


def resolve_sqlite(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file path made absolute against ``base``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or Path(parsed.database).is_absolute():
        return url
    return parsed.set(database=str((base / parsed.database).resolve())).render_as_string(hide_password=False)


def describe(url: URL) -> str:
    """How to name the database in messages (the file path, or the URL without password)."""
    return url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def check_sqlite_file(path: Path) -> str:
    """``"missing"``, ``"empty"`` or ``"aloop"`` — or ``CampaignLogError`` for anything else.

    Reads only the 100-byte header: a foreign or corrupt file is never opened by SQLite.
    """
    if not path.exists():
        return "missing"
    if not path.is_file():
        raise CampaignLogError(f"{path} is not a file")
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header:
        return "empty"
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise CampaignLogError(
            f"{path} is not a SQLite database (corrupt, or another kind of file); it was left untouched"
        )
    (app_id,) = struct.unpack(">I", header[68:72])
    if app_id != SQLITE_APPLICATION_ID:
        raise CampaignLogError(
            f"{path} is a SQLite database of another application (application_id {app_id:#x}), "
            "not an aloop campaign log; it was left untouched"
        )
    return "aloop"


def _sqlite_on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event, not the driver, start transactions (see make_engine).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    cur.execute("PRAGMA synchronous = FULL")  # a commit survives power loss, not only a crash
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for a lock held by a
    # writer that committed meanwhile (SQLITE_BUSY_SNAPSHOT); IMMEDIATE takes the write
    # lock up front, so concurrent writers queue on the busy timeout instead of failing.
    mode = "IMMEDIATE" if conn.get_execution_options().get("aloop_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: URL) -> Engine:
    """An engine with the log's connection settings (SQLite pragmas, write locking)."""
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as err:  # the database's driver is an optional dependency
        extra = " (pip install 'aloop[postgres]')" if err.name == "psycopg2" else ""
        raise CampaignLogError(f"database_url {url.render_as_string(hide_password=True)!r} needs the Python "
                               f"package {err.name!r}, which is not installed{extra}") from None


@contextmanager
def write_transaction(engine: Engine, lock: int = 0) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back on any exception.

    ``lock`` (a campaign id, 0 for schema changes) scopes the PostgreSQL advisory lock.
    """
    with engine.connect() as conn:
        conn.execution_options(aloop_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": _LOCK_NAMESPACE, "k": lock})
            yield conn


def read_schema_version(conn: Connection, where: str) -> int | None:
    """The log's schema version, ``None`` for an empty database, ``CampaignLogError`` if foreign."""
    tables = set(inspect(conn).get_table_names())
    if "meta" not in tables:
        clash = sorted(tables & _OUR_TABLES)
        if clash or (conn.dialect.name == "sqlite" and tables):
            raise CampaignLogError(
                f"{where} holds tables ({', '.join(sorted(tables)[:8])}) but no aloop meta table: "
                "it is not an aloop campaign log; nothing was changed"
            )
        return None
    values = dict(conn.execute(select(meta.c.key, meta.c.value)).all())
    if values.get("application_id") != APPLICATION_ID:
        raise CampaignLogError(
            f"{where} has a meta table but application_id {values.get('application_id')!r}: "
            "it is not an aloop campaign log; nothing was changed"
        )
    try:
        version = int(values["schema_version"])
    except (KeyError, ValueError):
        raise CampaignLogError(f"{where}: meta.schema_version is missing or not a number") from None
    if version > SCHEMA_VERSION:
        raise CampaignLogError(
            f"{where} has campaign-log schema v{version}, newer than this aloop's v{SCHEMA_VERSION}: upgrade aloop"
        )
    return version


def events_digest(conn: Connection) -> str:
    """sha256 of the whole ``events`` table in a canonical text form (same on every backend)."""
    h = hashlib.sha256()
    for r in conn.execute(select(events).order_by(events.c.id)):
        created = r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC)
        doc = [
            r.id,
            r.campaign_id,
            r.kind,
            created.astimezone(UTC).isoformat(),
            r.batch_id,
            r.proposal_id,
            r.composition_key,
            r.idempotency_key,
            r.payload,
        ]
        h.update(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return h.hexdigest()


def database_error(where: str, exc: SQLAlchemyError) -> CampaignLogError:
    """A readable ``CampaignLogError`` for a driver error (connection refused, corrupt file…)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if "database is locked" in text or "lock timeout" in text or "could not obtain lock" in text:
        return CampaignLogError(f"{where}: another program (another aloop command, a database browser) held the "
                                "log's write lock for the whole wait; nothing was written: close it or try again")
    return CampaignLogError(f"{where}: {type(orig).__name__}: {text}")


def create_log_schema(engine: Engine, where: str) -> int:
    """Create the schema in an empty database unless another process just did; returns its version."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            # The application id goes straight into the file header *before* WAL mode: in WAL
            # mode header changes wait in the -wal file until a checkpoint, and
            # check_sqlite_file reads only the main file. Neither pragma works in a transaction.
            raw.driver_connection.execute(f"PRAGMA application_id = {SQLITE_APPLICATION_ID}")
            raw.driver_connection.execute("PRAGMA journal_mode = WAL")
        finally:
            raw.close()
    with write_transaction(engine) as conn:
        version = read_schema_version(conn, where)  # another process may have created it meanwhile
        if version is None:
            create_schema(conn, created_by=f"aloop {__version__}")
            version = SCHEMA_VERSION
    return version


def find_campaign(
    engine: Engine, name: str | None, create: bool, definition: Mapping[str, Any] | None, where: str
) -> tuple[int, str]:
    """``(id, name)`` of campaign ``name`` (or of the only one), created if asked."""
    with engine.connect() as conn:
        known = dict(conn.execute(select(campaigns.c.name, campaigns.c.id)).all())
    if name is None:
        if len(known) == 1:
            ((only, cid),) = known.items()
            return cid, only
        raise CampaignLogError(f"{where} holds campaigns {sorted(known) or 'none'}: name the one to open")
    if name in known:
        return known[name], name
    if not create:
        raise CampaignLogError(f"{where} has no campaign {name!r} (campaigns: {', '.join(sorted(known)) or 'none'})")
    with write_transaction(engine) as conn:
        cid = conn.execute(select(campaigns.c.id).where(campaigns.c.name == name)).scalar()
        if cid is None:
            stmt = campaigns.insert().values(name=name, created_at=datetime.now(UTC), definition=definition)
            cid = conn.execute(stmt.returning(campaigns.c.id)).scalar_one()
    return cid, name


def open_log(
    target: str | Path | URL, campaign: str | None, create: bool, definition: Mapping[str, Any] | None
) -> tuple[Engine, URL, int, str]:
    """``(engine, url, campaign id, name)`` of a log; see ``CampaignLog.open`` for the arguments and errors."""
    url = to_url(target)
    where = describe(url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        found = check_sqlite_file(path)
        if found == "empty" and not create:  # not "missing": creating a log there would hide a truncated one
            raise CampaignLogError(f"{path} is an empty file (0 bytes), not a campaign log: truncated? Restore it "
                                   "from a backup; it was left untouched")
        if found != "aloop" and not create:
            raise NoCampaignLogError(str(path), f"no campaign log at {path} (create it with create=True)")
        if found == "missing" and not path.parent.is_dir():
            raise CampaignLogError(f"cannot create {path}: folder {path.parent} does not exist")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            version = read_schema_version(conn, where)
        if version is None:
            if not create:
                raise NoCampaignLogError(where, f"{where} holds no campaign log (create it with create=True)")
            version = create_log_schema(engine, where)
        if version < SCHEMA_VERSION:
            raise OutdatedSchemaError(where, version)
        cid, name = find_campaign(engine, campaign, create, definition, where)
    except SQLAlchemyError as exc:
        engine.dispose()
        if url.get_backend_name() == "sqlite" and not os.access(Path(url.database or "").parent, os.W_OK):
            folder = Path(url.database or "").parent
            raise CampaignLogError(f"{where}: cannot open the log: its folder {folder} is read-only, and a log "
                                   "(SQLite in WAL mode) writes its -wal and -shm files beside it even to be read; "
                                   "copy the campaign folder somewhere writable") from None
        raise database_error(where, exc) from None
    except BaseException:
        engine.dispose()
        raise
    return engine, url, cid, name


def list_campaigns(target: str | Path | URL) -> list[str]:
    """Names of the campaigns in a log database."""
    log_url = to_url(target)
    if log_url.get_backend_name() == "sqlite" and check_sqlite_file(Path(log_url.database or "")) != "aloop":
        return []
    engine = make_engine(log_url)
    try:
        with engine.connect() as conn:
            if read_schema_version(conn, describe(log_url)) is None:
                return []
            return sorted(conn.execute(select(campaigns.c.name)).scalars())
    except SQLAlchemyError as exc:
        raise database_error(describe(log_url), exc) from None
    finally:
        engine.dispose()


def migrate(target: str | Path | URL) -> tuple[int, int]:
    """Upgrade a log to the current schema in one transaction; returns ``(old, new)`` versions."""
    log_url = to_url(target)
    where = describe(log_url)
    if log_url.get_backend_name() == "sqlite" and check_sqlite_file(Path(log_url.database or "")) != "aloop":
        raise CampaignLogError(f"no campaign log at {where}")
    engine = make_engine(log_url)
    try:
        with write_transaction(engine) as conn:
            found = read_schema_version(conn, where)
            if found is None:
                raise CampaignLogError(f"{where} holds no campaign log")
            return found, upgrade(conn, found)
    except SQLAlchemyError as exc:
        raise database_error(where, exc) from None
    finally:
        engine.dispose()
