"""Campaign definitions the campaign tests share (a module of its own: conftest names clash across folders)."""

from __future__ import annotations


def minimal_definition(name: str = "zt") -> dict:
    """The smallest valid definition, as the dict ``tomllib`` reads: a Bi–Sb–Te grid, maximise zT."""
    import tomllib

    return tomllib.loads(
        f"""
        name = "{name}"
        [search_space]
        elements = ["Bi", "Sb", "Te"]
        step = 0.1
        [[objectives]]
        name = "zT"
        units = ""
        direction = "maximize"
        """
    )
