"""Output shared by the CLI commands: rich consoles, clean one-line user errors, new files written in one step.

Text that comes from users or files (names, formulas, units such as ``[eV]``, paths) goes
through :func:`escape` (or ``markup=False``), so rich never takes ``[eV]`` for a markup tag.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

#: Normal output (tables, summaries) goes to stdout.
out = Console(highlight=False)
#: Warnings, errors and progress go to stderr so stdout stays machine-readable.
err = Console(stderr=True, highlight=False)
#: Width of output that is not a terminal (a pipe, a file) and has no COLUMNS: wide enough that no line is broken.
PIPE_WIDTH = 1000


def unwrap_when_piped() -> None:
    """Keep each message and table row on one line when output goes to a pipe or a file (no COLUMNS set).

    Rich would break them at 80 columns there, which splits the values a script reads (``line 6: 104``).
    """
    for console in (out, err):
        if not console.is_terminal and not os.environ.get("COLUMNS"):
            console.soft_wrap, console.width = True, PIPE_WIDTH

#: Exit code for user errors (bad input, unknown names, missing files), like click's usage errors.
USER_ERROR = 2


def fail(message: str, code: int = USER_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr (no traceback) and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True, markup=True)


def bad_rows_text(rows: Sequence[Any], csv: bool, lines: Sequence[int] | None = None) -> str:
    """One line per bad row (objects with 1-based ``row``, ``formula``, ``reason``); for CSV input
    also the file line: ``lines[row - 1]`` (``frame.attrs["file_lines"]`` of ``read_table``), else row + 1."""
    def line(row: int) -> int:
        return lines[row - 1] if lines is not None else row + 1

    return "\n".join(
        f"  row {r.row}{f' (line {line(r.row)})' if csv else ''}: {r.formula!r}: {r.reason}" for r in rows
    )


def reserve_new_file(path: Path, option: str, example: str = "out.csv") -> Path:
    """Check that the new file ``path`` (given with ``option``, e.g. ``-o``) can be written; exit with a user
    error if not. Returns an empty temporary file beside it, for :func:`aloop.atomic.name_new_file`."""
    if path.is_dir():
        fail(f"{option}: {path} is a folder; name the file, e.g. {path / example}")
    if path.exists() or path.is_symlink():
        fail(f"{option}: {path} already exists; refusing to overwrite it (it may hold results): choose another file name")
    if not path.parent.is_dir():
        fail(f"{option}: folder {path.parent} does not exist")
    # Beside the file, so that giving it its name is one atomic step within one file system.
    from aloop.atomic import temp_beside

    tmp = temp_beside(path)
    try:
        tmp.open("x").close()
    except OSError as exc:
        fail(f"{option}: cannot write a file in folder {path.parent}: {exc.strerror or exc}")
    return tmp


@contextmanager
def campaign_errors() -> Iterator[None]:
    """Turn the errors a campaign user can cause into a clean ``error:`` message and exit code 2; show warnings cleanly."""
    from aloop.campaigns import CampaignLogError, ConfigError, RecordError
    from aloop.campaigns.outliers import OutlierWarning
    from aloop.campaigns.entries import ReplicateWarning
    from aloop.campaigns.matching import AlreadyRecordedWarning
    from aloop.campaigns.records import UnfilledRowsWarning
    from aloop.campaigns.pool import CampaignError, CampaignWarning

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        warn(str(message))

    with warnings.catch_warnings():
        for category in (CampaignWarning, ReplicateWarning, OutlierWarning, AlreadyRecordedWarning,
                         UnfilledRowsWarning):
            warnings.simplefilter("always", category)
        warnings.showwarning = show  # type: ignore[assignment]
        try:
            yield
        except (CampaignError, ConfigError, CampaignLogError, RecordError, FileExistsError) as exc:
            fail(str(exc))
        except (OSError, ValueError) as exc:
            fail(f"{type(exc).__name__}: {exc}")
