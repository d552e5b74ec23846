"""One-step file writes: a new file never replaces one, and temporary files of killed writers do not pile up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aloop.atomic import STALE_AFTER, temp_beside, write_atomically


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_write_atomically_replaces_or_refuses(tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    write_atomically(path, b"a\n")
    write_atomically(path, b"b\n")
    assert path.read_bytes() == b"b\n"
    with pytest.raises(FileExistsError):
        write_atomically(path, b"c\n", replace=False)
    assert path.read_bytes() == b"b\n" and sorted(p.name for p in tmp_path.iterdir()) == ["sheet.csv"]


def test_a_killed_writer_s_old_temporary_file_is_removed_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "sheet.csv"
    dead = _dead_pid()
    stale = tmp_path / f".sheet.csv.{dead}.tmp"  # left by a writer killed (SIGKILL) mid-write
    recent = tmp_path / f".sheet.csv.{_dead_pid()}.tmp"
    running = tmp_path / f".sheet.csv.{os.getppid()}.tmp"  # a live process is still writing
    other = tmp_path / f".other.csv.{dead}.tmp"  # another file's
    npz = tmp_path / f".sheet.csv.{dead}.tmp.npz"
    for p in (stale, recent, running, other, npz):
        p.write_bytes(b"partial")
    for p in (stale, running, other, npz):
        _age(p, STALE_AFTER + 60)
    write_atomically(path, b"whole\n")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert stale.name not in left  # removed
    # a recent file may belong to a writer on another machine sharing the folder; a live writer's stays;
    # another file's, or another kind of temporary file, is not this one's
    assert set(left) == {recent.name, running.name, other.name, npz.name, "sheet.csv"}
    assert temp_beside(path, ".npz").name == f".sheet.csv.{os.getpid()}.tmp.npz"
    temp_beside(path, ".npz")
    assert not npz.exists()

