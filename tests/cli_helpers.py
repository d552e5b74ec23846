"""What the CLI tests share: running a command in-process, and reading console text."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from aloop.cli import app

runner = CliRunner()


def invoke(*args: object, **kwargs: object) -> Result:
    """Run ``aloop ARGS…`` in-process (exceptions propagate, so a traceback fails the test)."""
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)  # type: ignore[arg-type]


def one_line(text: str) -> str:
    """Console text with rich's line wrapping undone."""
    return " ".join(text.split())
