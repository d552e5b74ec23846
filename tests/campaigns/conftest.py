"""Fixtures: every log test runs on SQLite (a temp file) and on PostgreSQL (a fresh schema).

PostgreSQL comes from ``ALOOP_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts one and
prints it); without a reachable server those cases skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from aloop.campaigns import CampaignConfig, CampaignLog, parse_config

PG_ENV = "ALOOP_TEST_POSTGRES_URL"
_pg_admin: tuple[Engine | None, str] | None = None


def _postgres_admin() -> tuple[Engine | None, str]:
    """A connection to the server's maintenance database, or ``None`` and the reason."""
    global _pg_admin
    if _pg_admin is None:
        url = os.environ.get(PG_ENV)
        if not url:
            _pg_admin = (None, f'{PG_ENV} is not set (run `eval "$(bash .ci/postgres.sh)"`)')
        else:
            engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                _pg_admin = (engine, "")
            except Exception as exc:  # any failure to reach the server means "skip", with the cause
                engine.dispose()
                _pg_admin = (
                    None,
                    f"PostgreSQL at {make_url(url).render_as_string()} unreachable: {exc.__class__.__name__}",
                )
    return _pg_admin


def pytest_report_header() -> str:
    engine, reason = _postgres_admin()
    return "campaign-log backends: sqlite, " + (
        "postgresql" if engine is not None else f"(postgresql skipped: {reason})"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file in ``tmp_path`` or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'campaign.sqlite'}"
        return
    engine, reason = _postgres_admin()
    if engine is None:
        print(f"skipping PostgreSQL: {reason}")
        pytest.skip(reason)
    # A fresh schema per test (much cheaper than CREATE DATABASE), selected via search_path.
    schema = f"aloop_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = engine.url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def make_config(**overrides: object) -> CampaignConfig:
    """A small two-objective campaign over Bi–Sb–Te."""
    data: dict = {
        "name": "zt",
        "search_space": {"elements": ["Bi", "Sb", "Te"], "step": 0.1},
        "objectives": [
            {"name": "zT", "units": "", "direction": "maximize"},
            {"name": "kappa", "units": "W/m/K", "direction": "minimize"},
        ],
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture
def config() -> CampaignConfig:
    return make_config()


@pytest.fixture
def log(db_url: str, config: CampaignConfig) -> Iterator[CampaignLog]:
    with CampaignLog.open(db_url, config.name, create=True, definition=config.to_dict()) as lg:
        yield lg
