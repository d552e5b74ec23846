"""Writer processes for the durability tests: a forked child or a standalone script.

Each writer appends measurements and reports progress as lines in a file (written with
unbuffered ``os.write``, so a SIGKILL loses nothing already reported)::

    ready                 log opened, about to write
    row <i>               row i inserted inside the (still open) transaction
    committed <new> <dup> append_measurements returned

Script use: ``python _campaign_writer.py URL CAMPAIGN ROWS.json PROGRESS [--chunk N]
[--row-delay S] [--go FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import aloop.campaigns.log as log_module
from aloop.campaigns import CampaignLog, Measurement
from aloop.chem import composition_key


def make_rows(
    n: int, proposal_ids: list[int] | None = None, start: int = 0, operator: str = "w"
) -> list[dict[str, Any]]:
    """``n`` distinct measurement rows (for proposals, or unsolicited compositions) as JSON-able dicts."""
    rows = []
    for i in range(start, start + n):
        row: dict[str, Any] = {
            "values": {"zT": round(0.1 + i / 1000, 6), "kappa": 1.5},
            "units": {"zT": "", "kappa": "W/m/K"},
            "operator": operator,
            "measured_at": f"2024-05-01T12:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
        }
        if proposal_ids is not None:
            row["proposal_id"] = proposal_ids[i - start]
        else:
            row["formula"] = f"Bi{i + 1}Te{2000 - i}"
            row["key"] = composition_key(row["formula"])
        rows.append(row)
    return rows


def to_measurements(rows: list[dict[str, Any]]) -> list[Measurement]:
    from datetime import datetime

    return [Measurement(**{**r, "measured_at": datetime.fromisoformat(r["measured_at"])}) for r in rows]


def write(
    url: str,
    campaign: str,
    rows: list[dict[str, Any]],
    progress: Path,
    row_delay: float = 0.0,
    chunk: int | None = None,
    go: Path | None = None,
) -> None:
    """Open the log and append ``rows`` (in chunks of ``chunk`` per transaction), reporting progress."""
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    def hook(i: int) -> None:
        say(f"row {i}")
        if row_delay:
            time.sleep(row_delay)

    log_module._test_row_hook = hook
    measurements = to_measurements(rows)
    with CampaignLog.open(url, campaign) as log:
        say("ready")
        while go is not None and not go.exists():
            time.sleep(0.005)
        step = chunk or len(measurements)
        for start in range(0, len(measurements), step):
            result = log.append_measurements(measurements[start : start + step])
            say(f"committed {result.new} {result.duplicates}")
    os.close(fd)


def fork_writer(**kwargs: Any) -> int:
    """Run ``write(**kwargs)`` in a forked child process; returns its pid (exit code 0 = done)."""
    pid = os.fork()
    if pid == 0:  # child: never return into the test runner
        code = 1
        try:
            write(**kwargs)
            code = 0
        except BaseException:
            with open(kwargs["progress"], "a") as fh:
                fh.write("error " + traceback.format_exc().replace("\n", " | ") + "\n")
        finally:
            os._exit(code)
    return pid


def progress_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_line(path: Path, prefix: str, timeout: float = 60.0) -> None:
    """Wait until a progress line starts with ``prefix`` (fails on an ``error`` line or timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = progress_lines(path)
        if any(line.startswith("error") for line in lines):
            raise AssertionError(f"writer failed: {lines[-1]}")
        if any(line.startswith(prefix) for line in lines):
            return
        time.sleep(0.002)
    raise AssertionError(f"no {prefix!r} line in {path} after {timeout} s: {progress_lines(path)[-3:]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("campaign")
    ap.add_argument("rows", type=Path)
    ap.add_argument("progress", type=Path)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--row-delay", type=float, default=0.0)
    ap.add_argument("--go", type=Path, default=None)
    a = ap.parse_args()
    write(a.url, a.campaign, json.loads(a.rows.read_text()), a.progress, a.row_delay, a.chunk, a.go)
