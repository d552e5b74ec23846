"""Writing files in one step: a reader sees the old file or the whole new one, and a new file never replaces one."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["name_new_file", "write_atomically"]


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
