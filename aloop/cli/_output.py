"""Console output shared by the CLI commands: rich consoles and clean one-line user errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

#: Normal output (tables, summaries) goes to stdout.
out = Console(highlight=False)
#: Warnings, errors and progress go to stderr so stdout stays machine-readable.
err = Console(stderr=True, highlight=False)

#: Exit code for user errors (bad input, unknown names, missing files), like click's usage errors.
USER_ERROR = 2


def fail(message: str, code: int = USER_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr (no traceback) and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True, markup=True)


def bad_rows_text(rows: Sequence[Any], csv: bool) -> str:
    """One line per bad row (objects with 1-based ``row``, ``formula``, ``reason``); for CSV input
    also the file line (the header is line 1)."""
    return "\n".join(
        f"  row {r.row}{f' (line {r.row + 1})' if csv else ''}: {r.formula!r}: {r.reason}" for r in rows
    )
