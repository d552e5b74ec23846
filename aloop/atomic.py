"""Writing files in one step: a reader sees the old file or the whole new one, and a new file never replaces one."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

__all__ = ["name_new_file", "temp_beside", "write_atomically"]

#: A temporary file whose writer is gone is removed only once it is this old (seconds): a writer on another
#: machine sharing the folder has a process id that means nothing here, but its file keeps being written.
STALE_AFTER = 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # no permission to signal it: it exists
        return True
    return True


def temp_beside(path: Path, suffix: str = "") -> Path:
    """The temporary name under which this process writes ``path``: ``.NAME.PID.tmp`` + ``suffix``, beside it (the
    same file system, so naming it ``path`` is one step).

    Temporary files of ``path`` that a killed writer left behind (its process gone, the file untouched for an
    hour) are removed first, so crashes do not pile them up beside a campaign's files.
    """
    own = os.getpid()
    head, tail = f".{path.name}.", f".tmp{suffix}"
    for old in path.parent.glob(glob.escape(head) + "*" + glob.escape(tail)):
        pid = old.name[len(head):len(old.name) - len(tail)]
        try:
            stale = pid.isdigit() and int(pid) != own and not _alive(int(pid)) \
                and time.time() - old.stat().st_mtime > STALE_AFTER
            if stale:
                old.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            pass
    return path.with_name(f"{head}{own}{tail}")


def name_new_file(tmp: Path, path: Path) -> None:
    """Give the written, synced file ``tmp`` the name ``path`` in one step that never replaces a file.

    Raises:
        FileExistsError: ``path`` exists (it may have appeared while ``tmp`` was written).
    """
    try:
        os.link(tmp, path)  # refuses, instead of replacing, a name that is taken
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists() or path.is_symlink():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def write_atomically(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path`` (same file system), sync it, then name it ``path``.

    ``replace=False`` never replaces an existing file (``FileExistsError``). The temporary file
    is removed whatever happens.
    """
    tmp = temp_beside(path)
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            name_new_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
