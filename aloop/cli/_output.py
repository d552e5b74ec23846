"""Console output shared by the CLI commands: rich consoles and clean one-line user errors."""

from __future__ import annotations

from typing import NoReturn

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
