"""``python -m aloop.cli``: the same as the ``aloop`` console script."""

from aloop.cli import main

main()
