"""The ``aloop`` console script: Ctrl-C while the command line is still loading, or once its command has finished,
exits quietly, as it does in between."""

from __future__ import annotations

import signal


def main() -> None:
    """Load the command line (torch, pandas, …: a second or two) and run it; Ctrl-C meanwhile exits 130."""
    try:
        from aloop.cli import main as run
    except KeyboardInterrupt:
        import sys

        sys.stderr.write("aloop: interrupted while starting; nothing was done\n")
        raise SystemExit(130) from None
    try:
        run()
    finally:
        # The command is done (or has said why it stopped): a Ctrl-C now would only interrupt the interpreter's exit
        # handlers (torch's among them) and print their traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
