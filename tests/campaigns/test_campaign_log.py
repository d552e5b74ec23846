"""The event log: state derived from events, refusals that change nothing, schema checks and upgrades."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

import aloop.campaigns.log as log_module
from aloop.campaigns import (
    CampaignLog,
    CampaignLogError,
    Measurement,
    OutdatedSchemaError,
    Proposal,
    list_campaigns,
    migrate,
)
from aloop.campaigns.log import ProposalConflictError
from aloop.campaigns.migrations import create_v1_schema
from aloop.chem import composition_key

UNITS = {"zT": "", "kappa": "W/m/K"}


def _props(*formulas: str) -> list[Proposal]:
    return [Proposal(f, composition_key(f), {"zT": 0.5}, {"zT": 0.1}, 0.2, "test") for f in formulas]


def _m(value: float, **kw: object) -> Measurement:
    return Measurement({"zT": value, "kappa": 1.0}, UNITS, **kw)  # type: ignore[arg-type]


def test_state_is_derived_from_events(log: CampaignLog) -> None:
    b1 = log.append_proposals(_props("Bi2Te3", "Sb2Te3", "BiSbTe3", "BiTe"), model_version=None)
    assert b1.batch_id == 1 and len(log.pending()) == 4
    p_bi, p_sb, p_mix, p_bite = b1.proposal_ids
    result = log.append_measurements([_m(0.9, proposal_id=p_bi, operator="ann"), _m(0.4, formula="Bi", key="Bi1")])
    assert (result.new, result.duplicates, result.unsolicited) == (2, 0, 1)
    log.fail(p_sb, "cracked")
    log.reject(p_mix, "toxic precursor")
    log.record_model_fit("gp-1", training_size=2, cv={"r2": 0.7})
    b2 = log.append_proposals(_props("Bi3Te2"), model_version="gp-1")
    assert b2.batch_id == 2

    pending = log.pending()
    assert list(pending["proposal_id"]) == [p_bite, b2.proposal_ids[0]]
    assert pending.loc[1, "model_version"] == "gp-1" and pending.loc[1, "mean_zT"] == 0.5
    obs = log.observations()
    assert list(obs["zT"]) == [0.9, 0.4] and list(obs["unsolicited"]) == [False, True]
    assert obs.attrs["units"] == UNITS
    assert list(log.failures()["reason"]) == ["cracked"]
    assert list(log.rejections()["formula"]) == ["BiSbTe3"]
    assert log.model_versions().loc[0, "cv_r2"] == 0.7
    statuses = dict(zip(log.proposals()["proposal_id"], log.proposals()["status"], strict=True))
    assert statuses == {
        p_bi: "measured",
        p_sb: "failed",
        p_mix: "rejected",
        p_bite: "pending",
        b2.proposal_ids[0]: "pending",
    }
    keys = {composition_key(f) for f in ("Bi2Te3", "Sb2Te3", "BiSbTe3", "BiTe", "Bi3Te2", "Bi")}
    assert log.excluded_keys() == keys
    assert log.excluded_keys(include_failed=False) == keys - {composition_key("Sb2Te3")}
    log.cancel(p_bite)
    assert composition_key("BiTe") not in log.excluded_keys()  # cancelled: may be proposed again
    kinds = [e.kind for e in log.events()]
    assert kinds == ["proposed"] * 4 + ["measured"] * 2 + [
        "failed",
        "rejected",
        "model_fitted",
        "proposed",
        "cancelled",
    ]
    assert all(e.created_at.tzinfo is not None for e in log.events())


def test_formula_only_measurement_closes_the_matching_proposal(log: CampaignLog) -> None:
    (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    log.append_measurements([_m(0.9, formula="Te3Bi2", key=composition_key("Te3Bi2"))])
    obs = log.observations()
    assert obs.loc[0, "proposal_id"] == pid and not obs.loc[0, "unsolicited"]
    assert log.pending().empty
    log.append_measurements([_m(1.0, formula="Bi2Te3", key=composition_key("Bi2Te3"))])  # a replicate
    assert list(log.observations()["proposal_id"]) == [pid, pid]


def test_refused_writes_change_nothing(log: CampaignLog) -> None:
    (pid, other) = log.append_proposals(_props("Bi2Te3", "Sb2Te3")).proposal_ids
    log.append_measurements([_m(0.9, proposal_id=pid, idempotency_key="run-1")])
    log.reject(other, "no precursor")
    log.record_model_fit("gp-1", 1)
    digest = log.events_digest()
    refusals = [
        lambda: log.append_measurements([_m(0.1, proposal_id=999)]),
        lambda: log.append_measurements([_m(0.1, proposal_id=pid), _m(0.1, proposal_id=pid)]),  # same derived key
        lambda: log.append_measurements([_m(0.5, proposal_id=pid, idempotency_key="run-1")]),  # key reused, new value
        lambda: log.append_measurements([_m(float("nan"), proposal_id=pid)]),
        lambda: log.append_measurements([_m(0.2, proposal_id=pid, key=composition_key("Sb2Te3"))]),
        lambda: log.append_measurements([_m(0.2)]),
        lambda: log.fail(pid, "already measured"),
        lambda: log.fail(other, "already rejected"),
        lambda: log.fail(12345, "unknown"),
        lambda: log.reject(pid, ""),
        lambda: log.append_proposals(_props("Sb2Te3")),  # rejected: never again
        lambda: log.append_proposals(_props("BiTe", "TeBi")),  # same composition twice
        lambda: log.append_proposals([Proposal("BiTe", "Bi0.5 Te0.5", {"zT": float("inf")})]),
        lambda: log.append_proposals([Proposal("BiTe", "Bi0.5 Te0.5", p_success=1.5)]),  # not a probability
        lambda: log.append_proposals(_props("BiTe"), retry_of=[other]),  # a rejected proposal is not retried
        lambda: log.record_model_fit("gp-1", 2),
    ]
    for i, refuse in enumerate(refusals):
        with pytest.raises(CampaignLogError) as err:
            refuse()
        assert str(err.value), i
        assert log.events_digest() == digest, f"refusal {i} changed the log"
    assert "does not exist" in _message(refusals[0]) and "not pending" in _message(refusals[6])
    assert "p_success must be a probability in [0, 1], got 1.5" in _message(refusals[13])
    assert f"proposal {other} (Sb2Te3) is not failed: it was rejected" in _message(refusals[14])


def test_a_batch_is_checked_against_the_log_as_it_is_when_written(log: CampaignLog, db_url: str) -> None:
    # `other` picked its batch from an empty log; by the time it writes, `log` has proposed and
    # recorded some of those compositions: the whole batch is refused and nothing is written.
    with CampaignLog.open(db_url, log.name) as other:
        assert other.events() == ()
        (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
        log.append_measurements([_m(0.4, formula="Sb2Te3", key=composition_key("Sb2Te3"))])  # unsolicited
        digest = log.events_digest()
        with pytest.raises(ProposalConflictError, match=rf"already measured: Sb2Te3; already pending: Bi2Te3 \(proposal {pid}\)$") as err:
            other.append_proposals(_props("BiTe", "Bi2Te3", "Sb2Te3"))
        assert err.value.keys == {composition_key("Bi2Te3"), composition_key("Sb2Te3")}
        assert log.events_digest() == digest
        log.fail(pid, "cracked")  # a failed composition may be tried again; a cancelled one too
        (again,) = other.append_proposals(_props("Bi2Te3")).proposal_ids
        log.cancel(again)
        other.append_proposals(_props("Bi2Te3", "BiTe"))
    assert list(log.pending()["formula"]) == ["Bi2Te3", "BiTe"]


def _message(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except CampaignLogError as exc:
        return str(exc)
    raise AssertionError("no error")


def test_a_failure_mid_transaction_rolls_everything_back(log: CampaignLog, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_m(i / 100, formula=f"Bi{i + 1}Te", key=composition_key(f"Bi{i + 1}Te")) for i in range(50)]
    digest = log.events_digest()

    def explode(i: int) -> None:
        if i == 30:
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(log_module, "_test_row_hook", explode)
    with pytest.raises(RuntimeError):
        log.append_measurements(rows)
    assert log.events_digest() == digest
    monkeypatch.setattr(log_module, "_test_row_hook", None)
    assert log.append_measurements(rows).new == 50


def test_events_are_append_only(log: CampaignLog, db_url: str) -> None:
    log.append_proposals(_props("Bi2Te3"))
    engine = create_engine(db_url)
    try:
        for sql in ("UPDATE events SET kind = 'cancelled'", "DELETE FROM events"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(sql))
    finally:
        engine.dispose()
    assert len(log.pending()) == 1


def test_a_second_handle_sees_every_new_event(log: CampaignLog, db_url: str) -> None:
    # Reads fetch only events above the last id seen: another writer's events must still show.
    with CampaignLog.open(db_url, log.name) as other:
        assert other.events() == ()
        ids = log.append_proposals(_props("Bi2Te3", "Sb2Te3")).proposal_ids
        assert [e.id for e in other.events()] == list(ids)
        before = other.events()
        assert other.events() is before  # unchanged log, same tuple
        other.append_measurements([_m(0.9, proposal_id=ids[0])])
        log.fail(ids[1], "cracked")
        assert [e.kind for e in log.events()] == ["proposed", "proposed", "measured", "failed"]
        assert [e.kind for e in other.events()] == ["proposed", "proposed", "measured", "failed"]
        assert [e.kind for e in other.events(["failed"])] == ["failed"]


def test_derived_state_is_a_fresh_copy_each_time(log: CampaignLog) -> None:
    log.append_proposals(_props("Bi2Te3", "Sb2Te3"))
    first = log.pending()
    first.loc[0, "formula"] = "changed"
    first.drop(columns="status", inplace=True)
    again = log.pending()
    assert list(again["formula"]) == ["Bi2Te3", "Sb2Te3"] and "status" in again.columns
    keys = log.excluded_keys()
    keys.clear()
    assert len(log.excluded_keys()) == 2
    log.fail(int(again.loc[0, "proposal_id"]), "cracked")
    # Remembered results are per argument too: a retry of failed compositions frees one key.
    assert len(log.excluded_keys()) == 2 and len(log.excluded_keys(include_failed=False)) == 1
    assert len(log.excluded_keys()) == 2


def test_campaigns_share_a_database_but_not_state(db_url: str) -> None:
    with CampaignLog.open(db_url, "a", create=True) as a, CampaignLog.open(db_url, "b", create=True) as b:
        a.append_proposals(_props("Bi2Te3"))
        assert b.pending().empty and len(a.pending()) == 1
    assert list_campaigns(db_url) == ["a", "b"]
    with pytest.raises(CampaignLogError, match="name the one"):
        CampaignLog.open(db_url)
    with pytest.raises(CampaignLogError, match="no campaign 'c'"):
        CampaignLog.open(db_url, "c")


def test_opening_needs_create_for_a_new_log(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    with pytest.raises(CampaignLogError, match="no campaign log"):
        CampaignLog.open(path, "x")
    assert not path.exists()
    with pytest.raises(CampaignLogError, match="does not exist"):
        CampaignLog.open(tmp_path / "missing-dir" / "x.sqlite", "x", create=True)
    with CampaignLog.open(path, "x", create=True) as log:
        assert log.pending().empty
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_an_empty_file_is_not_taken_for_a_missing_log(tmp_path: Path) -> None:
    path = tmp_path / "truncated.sqlite"
    path.write_bytes(b"")
    with pytest.raises(CampaignLogError, match=r"is an empty file \(0 bytes\), not a campaign log: truncated\?"):
        CampaignLog.open(path, "x")
    assert path.read_bytes() == b""


def test_a_log_in_a_read_only_folder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite in WAL mode writes -wal / -shm files beside the log even to read it (the root user of the
    tests can write anywhere, so the folder's refusal is simulated)."""
    import sqlalchemy

    import aloop.campaigns._store as store

    path = tmp_path / "ro.sqlite"
    CampaignLog.open(path, "x", create=True).close()

    def refuse(*args: object, **kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("connect", {}, sqlite3.OperationalError("unable to open database file"))

    monkeypatch.setattr(store, "read_schema_version", refuse)
    monkeypatch.setattr(store.os, "access", lambda p, mode: Path(p) != tmp_path)
    with pytest.raises(CampaignLogError, match=f"its folder {tmp_path} is read-only"):
        CampaignLog.open(path, "x")


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(CampaignLogError, match="127.0.0.1"):
        CampaignLog.open("postgresql+psycopg2://nobody@127.0.0.1:1/none", "x")


# --- foreign and corrupt databases -------------------------------------------------------


def _snapshot(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


def _foreign_sqlite(path: Path, wal: bool) -> None:
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode = WAL")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    con.execute("INSERT INTO events (what) VALUES ('their data')")
    con.commit()
    con.close()


@pytest.mark.parametrize("kind", ["random bytes", "text file", "short file", "foreign sqlite", "foreign sqlite wal"])
def test_corrupt_or_foreign_file_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "campaign.sqlite"
    if kind == "random bytes":
        path.write_bytes(os.urandom(8192))
    elif kind == "text file":
        path.write_text("name = 'not a database'\n" * 50)
    elif kind == "short file":
        path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20)
    else:
        _foreign_sqlite(path, wal=kind.endswith("wal"))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = _snapshot(path)
    for attempt in (
        lambda: CampaignLog.open(path, "x"),
        lambda: CampaignLog.open(path, "x", create=True),
        lambda: CampaignLog.open(f"sqlite:///{path}", None, create=True),
        lambda: migrate(path),
        lambda: list_campaigns(path),
    ):
        try:
            result = attempt()
        except CampaignLogError as exc:
            assert "not" in str(exc) and str(path) in str(exc)
        else:
            assert result == [], "only list_campaigns may answer (with nothing)"
        assert _snapshot(path) == before


def test_foreign_database_is_refused_untouched(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)"))
        conn.execute(text("INSERT INTO events (id, what) VALUES (1, 'their data')"))
    tables = sorted(inspect(engine).get_table_names())
    with pytest.raises(CampaignLogError, match="not an aloop campaign log"):
        CampaignLog.open(db_url, "x", create=True)
    assert sorted(inspect(engine).get_table_names()) == tables
    with engine.connect() as conn:
        assert conn.execute(text("SELECT what FROM events")).scalars().all() == ["their data"]
    engine.dispose()


def test_meta_of_another_application_is_refused(db_url: str) -> None:
    CampaignLog.open(db_url, "x", create=True).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = 'someone.else' WHERE key = 'application_id'"))
    engine.dispose()
    with pytest.raises(CampaignLogError, match="someone.else"):
        CampaignLog.open(db_url, "x")


# --- schema versions ---------------------------------------------------------------------


def test_migrate_upgrades_a_v1_log(db_url: str) -> None:
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        create_v1_schema(conn)
        cid = conn.execute(
            text("INSERT INTO campaigns (name, created_at) VALUES ('old', :t) RETURNING id"), {"t": now}
        ).scalar_one()
        ev = "INSERT INTO events (campaign_id, kind, created_at, batch_id, proposal_id, payload) VALUES "
        payload = '{"formula": "Bi2Te3", "key": "Bi0.4 Te0.6", "model_version": null}'
        pid = conn.execute(
            text(ev + "(:c, 'proposed', :t, 1, NULL, :p) RETURNING id"), {"c": cid, "t": now, "p": payload}
        ).scalar_one()
        conn.execute(
            text(ev + "(:c, 'rejected', :t, NULL, :pid, :p)"),
            {"c": cid, "t": now, "pid": pid, "p": '{"reason": "toxic"}'},
        )
    engine.dispose()
    with pytest.raises(OutdatedSchemaError, match="v1"):
        CampaignLog.open(db_url, "old")
    assert migrate(db_url) == (1, 3)
    assert migrate(db_url) == (3, 3)
    with CampaignLog.open(db_url, "old") as log:
        assert log.events()[0].composition_key == "Bi0.4 Te0.6"  # backfilled
        with pytest.raises(CampaignLogError, match="rejected"):
            log.append_proposals([Proposal("Bi2Te3", "Bi0.4 Te0.6")])
        log.append_proposals(_props("Sb2Te3"))
    engine = create_engine(db_url)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM events"))
    engine.dispose()


def test_newer_schema_is_refused(db_url: str) -> None:
    CampaignLog.open(db_url, "x", create=True).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(CampaignLogError, match="newer"):
        CampaignLog.open(db_url, "x")


def test_a_missing_database_driver_is_named() -> None:
    import importlib.util

    from sqlalchemy.engine import make_url

    from aloop.campaigns._store import make_engine

    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed; the test needs a driver that is not")
    with pytest.raises(CampaignLogError, match="needs the Python package 'pg8000', which is not installed"):
        make_engine(make_url("postgresql+pg8000://u@127.0.0.1:1/db"))


def test_failures_and_vetoes_are_the_feasibility_model_s_negatives(log: CampaignLog) -> None:
    from aloop.campaigns import state

    p_a, p_b, p_c = log.append_proposals(_props("Bi2Te3", "Sb2Te3", "BiTe")).proposal_ids
    log.reject(p_b, "toxic precursor")
    log.fail(p_a, "cracked")
    log.cancel(p_c)  # cancelled: says nothing about synthesis
    bad = state.negatives(log.events())
    assert list(bad["formula"]) == ["Bi2Te3", "Sb2Te3"] and list(bad["reason"]) == ["cracked", "toxic precursor"]


def test_an_idempotency_key_belongs_to_one_proposal(log: CampaignLog) -> None:
    """A sample id reused for another proposal is a mistake to report, even with the same values, not a duplicate."""
    p_a, p_b = log.append_proposals(_props("Bi2Te3", "Sb2Te3")).proposal_ids
    (first,) = log.append_measurements([_m(0.9, proposal_id=p_a, idempotency_key="sample-7")]).event_ids
    digest = log.events_digest()
    with pytest.raises(CampaignLogError, match=rf"idempotency key sample-7… was recorded \(event {first}\)"):
        log.append_measurements([_m(0.9, proposal_id=p_b, idempotency_key="sample-7")])
    assert log.events_digest() == digest and list(log.pending()["proposal_id"]) == [p_b]
