"""The ``aloop`` console script: Ctrl-C while the command line is still loading exits quietly, as it does later."""

from __future__ import annotations


def main() -> None:
    """Load the command line (torch, pandas, …: a second or two) and run it; Ctrl-C meanwhile exits 130."""
    try:
        from aloop.cli import main as run
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("aloop: interrupted while starting; nothing was done\n")
        raise SystemExit(130) from None
    run()
