"""``python -m aloop``: the ``aloop`` command."""

from aloop._console import main

if __name__ == "__main__":
    main()
