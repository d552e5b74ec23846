"""Retracting a wrongly recorded value: an appended event that takes the value out of every derived state.

Log-backed tests run on SQLite and PostgreSQL; they check what a lab sees (observations,
proposal status, what may be proposed) and that every refusal leaves the log's digest unchanged.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

import aloop.campaigns.log as log_module
from aloop.campaigns import CampaignLog, CampaignLogError, Measurement, OutdatedSchemaError, Proposal, migrate
from aloop.campaigns._store import events_digest
from aloop.campaigns.entries import ReplicateWarning
from aloop.campaigns.migrations import create_v2_schema
from aloop.chem import composition_key

UNITS = {"zT": "", "kappa": "W/m/K"}


def _props(*formulas: str) -> list[Proposal]:
    return [Proposal(f, composition_key(f), {"zT": 0.5}, {"zT": 0.1}, 0.2, "test") for f in formulas]


def _m(value: float, **kw: object) -> Measurement:
    return Measurement({"zT": value, "kappa": 1.0}, UNITS, **kw)  # type: ignore[arg-type]


def _status(log: CampaignLog) -> dict[int, str]:
    table = log.proposals()
    return dict(zip(table["proposal_id"], table["status"], strict=True))


def test_a_retracted_value_leaves_every_derived_state_but_stays_in_the_events(log: CampaignLog) -> None:
    p_bi, p_sb = log.append_proposals(_props("Bi2Te3", "Sb2Te3")).proposal_ids
    wrong, right = log.append_measurements([_m(9.0, proposal_id=p_bi), _m(0.4, proposal_id=p_sb)]).event_ids
    before = len(log.events())

    (rid,) = log.retract(p_bi, "typed 9.0 for 0.9", operator="ann")  # the proposal id from the results sheet
    assert list(log.observations()["event_id"]) == [right]
    assert _status(log) == {p_bi: "pending", p_sb: "measured"}  # awaits the corrected value
    assert list(log.pending()["proposal_id"]) == [p_bi]
    assert log.pending().loc[0, "status_at"] == log.events()[-1].created_at
    assert composition_key("Bi2Te3") in log.excluded_keys()  # pending: not proposed again meanwhile

    events = log.events()
    assert len(events) == before + 1 and events[-1].id == rid  # appended; nothing removed
    assert [e.id for e in events if e.kind == "measured"] == [wrong, right]
    gone = log.retractions()
    columns = ["event_id", "measurement_id", "proposal_id", "formula", "zT", "reason", "operator"]
    assert gone.loc[0, columns].tolist() == [rid, wrong, p_bi, "Bi2Te3", 9.0, "typed 9.0 for 0.9", "ann"]
    assert gone.loc[0, "retracted_at"] == events[-1].created_at

    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplicateWarning)  # the corrected value is no replicate of the wrong one
        log.append_measurements([_m(0.9, proposal_id=p_bi)])
    assert _status(log)[p_bi] == "measured"
    assert sorted(log.observations()["zT"]) == [0.4, 0.9]


def test_a_replicate_is_retracted_by_its_measurement_id(log: CampaignLog) -> None:
    (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    first = log.append_measurements([_m(0.9, proposal_id=pid)]).event_ids[0]
    with pytest.warns(ReplicateWarning):
        second = log.append_measurements([_m(1.9, proposal_id=pid)]).event_ids[0]
    digest = log.events_digest()
    with pytest.raises(CampaignLogError, match=rf"has 2 measurements — measurement {first} .*zT = 0.9.*"
                                               rf"measurement {second} .*zT = 1.9.*: give the id"):
        log.retract(pid, "which one?")
    assert log.events_digest() == digest

    log.retract(second, "pipetting error")
    assert list(log.observations()["event_id"]) == [first]
    assert _status(log)[pid] == "measured"  # another valid measurement remains
    assert composition_key("Bi2Te3") in log.excluded_keys()


def test_retracting_an_unsolicited_value_frees_its_composition(log: CampaignLog) -> None:
    (mid,) = log.append_measurements([_m(0.7, formula="Sb2Te3", key=composition_key("Sb2Te3"))]).event_ids
    with pytest.raises(CampaignLogError, match="already measured"):
        log.append_proposals(_props("Sb2Te3"))
    log.retract([mid], "wrong sample")
    assert log.observations().empty and composition_key("Sb2Te3") not in log.excluded_keys()
    assert log.retractions()["proposal_id"].isna().all()
    log.append_proposals(_props("Sb2Te3"))  # measurable again: no valid measurement of it is left


def test_bad_retractions_are_refused_and_change_nothing(log: CampaignLog) -> None:
    p_bi, p_sb, p_te = log.append_proposals(_props("Bi2Te3", "Sb2Te3", "BiTe")).proposal_ids
    m_bi, m_sb = log.append_measurements([_m(0.9, proposal_id=p_bi), _m(0.4, proposal_id=p_sb)]).event_ids
    log.retract(m_sb, "wrong units", operator="bob")
    fit = log.record_model_fit("v1", 1)
    digest = log.events_digest()
    cases = [
        (lambda: log.retract(999_999, "x"), "999999: not a measurement, outcome or proposal of campaign 'zt' "
                                            "(no such event)"),
        (lambda: log.retract(m_sb, "again"), f"measurement {m_sb} (Sb2Te3: zT = 0.4, kappa = 1) was already "
                                             "retracted on"),
        (lambda: log.retract(m_sb, "again"), "by bob ('wrong units')"),
        (lambda: log.retract(p_sb, "again"), f"proposal {p_sb} (Sb2Te3) has no measurement to retract "
                                             f"(already retracted: measurement {m_sb})"),
        (lambda: log.retract(p_te, "x"), f"proposal {p_te} (BiTe) has no measurement to retract (it is pending)"),
        (lambda: log.retract(fit, "x"), f"event {fit} is a 'model_fitted' event"),
        (lambda: log.retract(m_bi, ""), "give a reason"),
        (lambda: log.retract(m_bi, "   "), "give a reason"),
        (lambda: log.retract([m_bi, p_bi], "typo"), f"measurement {m_bi} (Bi2Te3: zT = 0.9, kappa = 1) is named twice"),
        (lambda: log.retract([], "typo"), "no measurement or proposal ids given"),
        (lambda: log.retract([m_bi, 2.5], "typo"), "ids are integers, got 2.5"),  # type: ignore[list-item]
        (lambda: log.retract([m_bi, 999_999], "typo"), "999999"),  # one bad id: none is retracted
    ]
    for refuse, needle in cases:
        with pytest.raises(CampaignLogError) as err:
            refuse()
        assert needle in str(err.value), (needle, str(err.value))
        assert log.events_digest() == digest, needle
    assert list(log.observations()["event_id"]) == [m_bi]


def test_a_mistaken_fail_reject_or_cancel_is_retracted(log: CampaignLog) -> None:
    """A typo'd id in `aloop fail` must not lose a composition: the proposal is pending again and takes its result."""
    p_a, p_b, p_c = log.append_proposals(_props("Bi2Te3", "Sb2Te3", "BiTe")).proposal_ids
    (fail_a,) = log.fail(p_a, "cracked")
    log.reject(p_b, "toxic")
    (cancel_c,) = log.cancel(p_c)
    assert composition_key("BiTe") not in log.excluded_keys()
    ids = log.retract([p_a, p_b, cancel_c], "wrong proposal id", operator="ann")  # proposal ids or the outcome's id
    assert _status(log) == {p_a: "pending", p_b: "pending", p_c: "pending"}
    assert log.failures().empty and log.rejections().empty  # out of the feasibility model's data too
    assert {composition_key(f) for f in ("Bi2Te3", "Sb2Te3", "BiTe")} <= log.excluded_keys()  # pending again
    gone = log.retractions()
    assert gone["event_id"].tolist() == ids and gone["kind"].tolist() == ["failed", "rejected", "cancelled"]
    assert gone["outcome_id"].tolist()[::2] == [fail_a, cancel_c] and gone["measurement_id"].isna().all()
    assert gone["formula"].tolist() == ["Bi2Te3", "Sb2Te3", "BiTe"] and set(gone["operator"]) == {"ann"}
    log.append_measurements([_m(0.9, proposal_id=p_a)])  # its real result is recorded after all
    assert _status(log)[p_a] == "measured" and list(log.observations()["zT"]) == [0.9]
    (again,) = log.reject(p_b, "toxic after all")  # marked again, and retracted again
    log.retract(again, "no, it was fine")
    assert _status(log)[p_b] == "pending"

    digest = log.events_digest()
    with pytest.raises(CampaignLogError, match=f"proposal {p_a} \\(Bi2Te3\\) marked failed: that outcome was already "
                                               "retracted"):
        log.retract(fail_a, "twice")
    assert log.events_digest() == digest


def test_an_outcome_is_not_retracted_once_the_composition_moved_on(log: CampaignLog) -> None:
    """Reopening a proposal whose composition was proposed or measured again since would leave two results pending."""
    (p_old,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    log.cancel(p_old)
    (p_new,) = log.append_proposals(_props("Bi2Te3")).proposal_ids  # cancelled compositions may be proposed again
    (p_f,) = log.append_proposals(_props("Sb2Te3")).proposal_ids
    log.fail(p_f, "cracked")
    (p_retry,) = log.append_proposals(_props("Sb2Te3")).proposal_ids  # a retry of the failed composition
    (m,) = log.append_measurements([_m(0.4, proposal_id=p_retry)]).event_ids
    digest = log.events_digest()
    with pytest.raises(CampaignLogError) as err:
        log.retract([p_old, p_f], "reopen")
    assert f"proposal {p_old} (Bi2Te3) marked cancelled: the composition was proposed again since, as proposal " \
           f"{p_new} (pending); record its result there" in str(err.value)
    assert f"proposal {p_f} (Sb2Te3) marked failed: the composition was measured since (measurement {m}" in str(err.value)
    assert log.events_digest() == digest


def test_the_database_itself_refuses_a_second_retraction(log: CampaignLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even a writer that skipped the check (or raced another) cannot retract one measurement twice."""
    (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    (mid,) = log.append_measurements([_m(9.0, proposal_id=pid)]).event_ids
    log.retract(mid, "typo")
    digest = log.events_digest()
    monkeypatch.setattr(log_module, "check_retractions", lambda ids, history, campaign: [history[1]])
    with pytest.raises(CampaignLogError, match="(?i)unique|duplicate"):
        log.retract(mid, "typo, again")
    assert log.events_digest() == digest


def test_re_recording_a_retracted_result_is_refused_with_the_remedy(log: CampaignLog) -> None:
    (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    log.append_measurements([_m(0.9, proposal_id=pid)])
    log.retract(pid, "sample was contaminated")
    digest = log.events_digest()
    for row in (_m(0.9, proposal_id=pid), _m(0.9, formula="Bi2Te3", key=composition_key("Bi2Te3"))):
        with pytest.raises(CampaignLogError, match="retracted on .*'sample was contaminated'.*give the row an "
                                                   "idempotency_key"):
            log.append_measurements([row])  # silently skipping it as "already recorded" would hide it
        assert log.events_digest() == digest
    log.append_measurements([_m(0.9, proposal_id=pid, idempotency_key="re-measured")])
    assert list(log.observations()["zT"]) == [0.9] and _status(log)[pid] == "measured"

    log.retract(pid, "still contaminated")  # a result recorded under the lab's own key: that key is spent
    digest = log.events_digest()
    with pytest.raises(CampaignLogError, match="retracted on .*'still contaminated'.*give the row a new key"):
        log.append_measurements([_m(0.9, proposal_id=pid, idempotency_key="re-measured")])
    assert log.events_digest() == digest


def test_a_v2_log_is_migrated_unchanged_and_then_takes_retractions(db_url: str) -> None:
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        create_v2_schema(conn)
        cid = conn.execute(
            text("INSERT INTO campaigns (name, created_at) VALUES ('old', :t) RETURNING id"), {"t": now}
        ).scalar_one()
        ev = "INSERT INTO events (campaign_id, kind, created_at, proposal_id, composition_key, payload) VALUES "
        pid = conn.execute(
            text(ev + "(:c, 'proposed', :t, NULL, 'Bi0.4 Te0.6', :p) RETURNING id"),
            {"c": cid, "t": now, "p": '{"formula": "Bi2Te3", "key": "Bi0.4 Te0.6", "model_version": null}'},
        ).scalar_one()
        payload = ('{"formula": "Bi2Te3", "key": "Bi0.4 Te0.6", "values": {"zT": 9.0, "kappa": 1.0}, '
                   '"units": {"zT": "", "kappa": "W/m/K"}, "measured_at": null, "unsolicited": false}')
        mid = conn.execute(text(ev + "(:c, 'measured', :t, :pid, 'Bi0.4 Te0.6', :p) RETURNING id"),
                           {"c": cid, "t": now, "pid": pid, "p": payload}).scalar_one()
    with pytest.raises(DBAPIError, match="ck_events_kind|CHECK"), engine.begin() as conn:  # why v3 is needed
        conn.execute(text(ev + "(:c, 'retracted', :t, :pid, NULL, '{}')"), {"c": cid, "t": now, "pid": pid})
    with engine.connect() as conn:
        before = events_digest(conn)
    with pytest.raises(OutdatedSchemaError, match="v2"):
        CampaignLog.open(db_url, "old")
    assert migrate(db_url) == (2, 3)
    with engine.connect() as conn:
        assert events_digest(conn) == before  # every row kept as it was, ids included
    with CampaignLog.open(db_url, "old") as log:
        assert list(log.observations()["zT"]) == [9.0]
        log.retract(pid, "typed 9.0 for 0.9", operator="ann")
        assert log.observations().empty and list(log.pending()["proposal_id"]) == [pid]
        log.append_measurements([_m(0.9, proposal_id=pid)])
        assert log.events()[-1].id > mid
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM events"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE events SET payload = '{}'"))
    engine.dispose()


def test_a_withdrawn_veto_no_longer_keeps_its_composition_out(log: CampaignLog) -> None:
    (pid,) = log.append_proposals(_props("Bi2Te3")).proposal_ids
    (veto,) = log.reject(pid, "toxic")
    log.retract(veto, "wrong proposal id")
    log.cancel(pid)  # no longer wanted: free again, as any cancelled composition
    assert composition_key("Bi2Te3") not in log.excluded_keys()
    log.append_proposals(_props("Bi2Te3"))


def test_a_retracted_unsolicited_value_is_no_duplicate_of_a_later_proposal_s_result(log: CampaignLog) -> None:
    """Same composition, same value, but the proposal's own sample: recorded, not refused as the retracted one."""
    (mid,) = log.append_measurements([_m(0.7, formula="Sb2Te3", key=composition_key("Sb2Te3"))]).event_ids
    log.retract(mid, "wrong sample")
    (pid,) = log.append_proposals(_props("Sb2Te3")).proposal_ids
    assert log.append_measurements([_m(0.7, proposal_id=pid)]).new == 1
    assert _status(log)[pid] == "measured" and list(log.observations()["proposal_id"]) == [pid]
