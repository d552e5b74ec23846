"""Durability with real processes: SIGKILL mid-transaction, concurrent writers, idempotent re-recording."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from aloop.campaigns import CampaignLog, Proposal
from aloop.chem import composition_key

N_ROWS = 200
N_TRIALS = 20
ROW_DELAY = 0.001  # seconds slept after each INSERT by the test-only hook: widens the window
WRITER = Path(__file__).with_name("_campaign_writer.py")


def _load_writer() -> ModuleType:
    """The writer helpers, loaded by path (pytest's importlib mode puts no test folder on sys.path)."""
    spec = importlib.util.spec_from_file_location("_campaign_writer", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_writer = _load_writer()
fork_writer, make_rows, progress_lines, wait_for_line = (
    _writer.fork_writer,
    _writer.make_rows,
    _writer.progress_lines,
    _writer.wait_for_line,
)


def _run_to_end(url: str, campaign: str, rows: list[dict], progress: Path, **kw: object) -> float:
    """Run one forked writer to completion; returns the ready→committed time."""
    pid = fork_writer(url=url, campaign=campaign, rows=rows, progress=progress, **kw)
    wait_for_line(progress, "ready")
    t0 = time.monotonic()
    wait_for_line(progress, "committed")
    elapsed = time.monotonic() - t0
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, progress_lines(progress)
    return elapsed


def test_sigkill_leaves_all_rows_or_none(db_url: str, tmp_path: Path) -> None:
    rows = make_rows(N_ROWS)
    CampaignLog.open(db_url, "calibration", create=True).close()
    write_time = _run_to_end(db_url, "calibration", rows, tmp_path / "calibration", row_delay=ROW_DELAY)
    with CampaignLog.open(db_url, "calibration") as log:
        assert len(log.observations()) == N_ROWS

    rng = random.Random(20240501)
    seen: Counter[str] = Counter()
    for trial in range(N_TRIALS):
        name = f"kill-{trial}"
        CampaignLog.open(db_url, name, create=True).close()
        progress = tmp_path / f"trial-{trial}"
        pid = fork_writer(url=db_url, campaign=name, rows=rows, progress=progress, row_delay=ROW_DELAY)
        wait_for_line(progress, "ready")
        time.sleep(rng.uniform(0.0, 1.3 * write_time))  # before, during or just after the write
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        lines = progress_lines(progress)
        inserted = sum(line.startswith("row ") for line in lines)
        committed = any(line.startswith("committed") for line in lines)
        with CampaignLog.open(db_url, name) as log:  # the log opens after every kill
            n = len(log.observations())
            assert log.pending().empty
        assert n in (0, N_ROWS), f"trial {trial}: {n} of {N_ROWS} rows survived a SIGKILL"
        if inserted < N_ROWS:
            assert n == 0, f"trial {trial}: rows visible although only {inserted} were inserted"
        if committed:
            assert n == N_ROWS, f"trial {trial}: a reported commit was lost"
        seen["during the write" if 0 < inserted < N_ROWS else "after the commit" if committed else "around it"] += 1
    print(f"{db_url.split(':')[0]}: write {write_time:.2f} s; kills landed: {dict(seen)}")
    assert seen["during the write"] >= 3, f"too few kills landed mid-transaction: {dict(seen)}"
    with CampaignLog.open(db_url, "calibration") as log:  # other campaigns are untouched
        assert len(log.observations()) == N_ROWS


def _proposals(db_url: str, n: int) -> list[int]:
    formulas = [f"Bi{i + 1}Sb{1000 - i}Te3" for i in range(n)]
    with CampaignLog.open(db_url, "zt", create=True) as log:
        return list(log.append_proposals([Proposal(f, composition_key(f)) for f in formulas]).proposal_ids)


def test_two_processes_record_at_the_same_time(db_url: str, tmp_path: Path) -> None:
    ids = _proposals(db_url, 2 * N_ROWS)
    go = tmp_path / "go"
    pids, progress = [], []
    for w, part in enumerate((ids[:N_ROWS], ids[N_ROWS:])):
        progress.append(tmp_path / f"progress-{w}")
        rows = make_rows(N_ROWS, proposal_ids=part, operator=f"writer-{w}")
        pids.append(
            fork_writer(url=db_url, campaign="zt", rows=rows, progress=progress[-1], chunk=10, row_delay=0.0005, go=go)
        )
    for p in progress:
        wait_for_line(p, "ready")
    go.touch()  # both start writing at once
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    with CampaignLog.open(db_url, "zt") as log:
        obs = log.observations()
        assert len(obs) == 2 * N_ROWS
        assert sorted(obs["proposal_id"]) == ids  # every result exactly once
        assert log.pending().empty


def test_fresh_interpreters_write_concurrently_and_survive_a_kill(db_url: str, tmp_path: Path) -> None:
    """Two independent Python processes write 10-row transactions at once; one is SIGKILLed mid-transaction."""
    ids = _proposals(db_url, 2 * N_ROWS)
    go = tmp_path / "go"
    procs, progress = [], []
    for w, part in enumerate((ids[:N_ROWS], ids[N_ROWS:])):
        rows_file = tmp_path / f"rows-{w}.json"
        rows_file.write_text(json.dumps(make_rows(N_ROWS, proposal_ids=part, operator=f"writer-{w}")))
        progress.append(tmp_path / f"progress-{w}")
        cmd = [
            sys.executable,
            str(WRITER),
            db_url,
            "zt",
            str(rows_file),
            str(progress[-1]),
            "--chunk",
            "10",
            "--row-delay",
            "0.002",
            "--go",
            str(go),
        ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in progress:
        wait_for_line(p, "ready", timeout=120)
    go.touch()
    while sum(line.startswith("committed") for line in progress_lines(progress[0])) < 3:  # noqa: ASYNC110
        time.sleep(0.002)
    wait_for_line_after = len(progress_lines(progress[0]))
    while not any(line.startswith("row 4") for line in progress_lines(progress[0])[wait_for_line_after:]):
        time.sleep(0.001)
    procs[0].kill()  # SIGKILL, inside its 4th transaction (or later)
    procs[0].wait()
    out, _ = procs[1].communicate(timeout=120)
    assert procs[1].returncode == 0, out.decode()
    committed = sum(line.startswith("committed") for line in progress_lines(progress[0]))
    with CampaignLog.open(db_url, "zt") as log:
        obs = log.observations()
        killed = obs[obs["operator"] == "writer-0"]
        assert len(obs[obs["operator"] == "writer-1"]) == N_ROWS
        assert len(killed) in (10 * committed, 10 * committed + 10)  # whole transactions only
        assert killed["proposal_id"].is_unique and len(killed) < N_ROWS
        assert len(log.pending()) == N_ROWS - len(killed)


def test_two_processes_recording_the_same_file_write_it_once(db_url: str, tmp_path: Path) -> None:
    rows = make_rows(N_ROWS)
    CampaignLog.open(db_url, "zt", create=True).close()
    go = tmp_path / "go"
    pids, progress = [], []
    for w in range(2):
        progress.append(tmp_path / f"progress-{w}")
        pids.append(fork_writer(url=db_url, campaign="zt", rows=rows, progress=progress[-1], row_delay=0.0005, go=go))
    for p in progress:
        wait_for_line(p, "ready")
    go.touch()
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    results = sorted(
        tuple(map(int, line.split()[1:]))
        for p in progress
        for line in progress_lines(p)
        if line.startswith("committed")
    )
    assert results == [(0, N_ROWS), (N_ROWS, 0)]  # one wrote all, the other found only duplicates
    with CampaignLog.open(db_url, "zt") as log:
        assert len(log.observations()) == N_ROWS


@pytest.mark.parametrize("chunk", [None, 50])
def test_re_recording_is_a_no_op(db_url: str, tmp_path: Path, chunk: int | None) -> None:
    rows = make_rows(N_ROWS)
    CampaignLog.open(db_url, "zt", create=True).close()
    _run_to_end(db_url, "zt", rows, tmp_path / "first", chunk=chunk)
    with CampaignLog.open(db_url, "zt") as log:
        digest = log.events_digest()
    _run_to_end(db_url, "zt", rows, tmp_path / "again", chunk=chunk)
    assert all(line.split()[1] == "0" for line in progress_lines(tmp_path / "again") if line.startswith("committed"))
    with CampaignLog.open(db_url, "zt") as log:
        assert log.events_digest() == digest
        assert len(log.observations()) == N_ROWS


def test_a_write_lock_held_past_the_wait_is_said_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another program holding the SQLite write lock: the error says so and that nothing was written."""
    import sqlite3

    from aloop.campaigns import _store
    from aloop.campaigns.entries import Proposal
    from aloop.campaigns.log import CampaignLog, CampaignLogError

    monkeypatch.setattr(_store, "BUSY_TIMEOUT_S", 0.2)
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    with CampaignLog.open(url, "c", create=True) as log:
        before = log.events_digest()
        holder = sqlite3.connect(tmp_path / "c.sqlite")
        holder.execute("BEGIN IMMEDIATE")  # e.g. a database browser with an open write transaction
        try:
            with pytest.raises(CampaignLogError, match="held the log's write lock for the whole wait; nothing was "
                                                       "written"):
                log.append_proposals([Proposal("NiO", "Ni0.5 O0.5")])
        finally:
            holder.rollback()
            holder.close()
        assert log.events_digest() == before
