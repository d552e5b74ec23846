"""Typed reading of TOML tables that collects every problem under its dotted field name."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_MISSING: Any = object()


class ConfigError(ValueError):
    """An invalid campaign definition; ``problems`` holds one ``field: reason`` line per problem."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        if len(self.problems) == 1 and source is None:
            message = self.problems[0]
        else:
            head = f"invalid campaign definition {source}" if source else "invalid campaign definition"
            message = head + ":\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


def _kind(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "text", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


class Fields:
    """One TOML table being validated; problems are appended to the shared list.

    Each getter returns the value (or the default), or ``None`` after recording a problem,
    so validation goes on and the user sees every problem at once. ``done()`` reports
    keys nobody asked for (typos).
    """

    def __init__(self, data: object, where: str, problems: list[str]) -> None:
        self.raw: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
        self.where = where
        self.problems = problems
        self._seen: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _fail(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.name(key)}: {reason}")

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            self._fail(key, "required")
        return default

    def text(self, key: str, default: Any = _MISSING, check: Callable[[str], str | None] | None = None) -> Any:
        value = self._get(key, default)
        if value is _MISSING or key not in self.raw:
            return None if value is _MISSING else value
        if not isinstance(value, str):
            self._fail(key, f"must be text; got {value!r} ({_kind(value)})")
            return None
        reason = check(value) if check else None
        if reason:
            self._fail(key, reason)
            return None
        return value

    def choice(self, key: str, options: Sequence[str], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key in self.raw and value not in options:
            self._fail(key, f"must be one of {', '.join(options)}; got {value!r}")
            return None
        return None if value is _MISSING else value

    def integer(self, key: str, default: Any = _MISSING, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(key, default)
        if key not in self.raw:
            return None if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(key, f"must be an integer; got {value!r} ({_kind(value)})")
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            lo = "" if minimum is None else f">= {minimum}"
            hi = "" if maximum is None else f"<= {maximum}"
            self._fail(key, f"must be {' and '.join(x for x in (lo, hi) if x)}; got {value}")
            return None
        return value

    def number(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key not in self.raw:
            return None if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._fail(key, f"must be a finite number; got {value!r} ({_kind(value)})")
            return None
        return float(value)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key in self.raw and not isinstance(value, bool):
            self._fail(key, f"must be true or false; got {value!r} ({_kind(value)})")
            return None
        return None if value is _MISSING else value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key not in self.raw:
            return None if value is _MISSING else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._fail(key, f"must be an array of text; got {value!r}")
            return None
        return list(value)

    def pair(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if key not in self.raw:
            return None if value is _MISSING else value
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if not ok or not value[0] < value[1]:
            self._fail(key, f"must be [lo, hi] with finite numbers lo < hi; got {value!r}")
            return None
        return (float(value[0]), float(value[1]))

    def table(self, key: str, default: Any = _MISSING) -> Fields:
        value = self._get(key, default)
        if key in self.raw and not isinstance(value, Mapping):
            self._fail(key, f"must be a table ([{self.name(key)}]); got {value!r}")
        return Fields(value if isinstance(value, Mapping) else {}, self.name(key), self.problems)

    def tables(self, key: str) -> list[Fields]:
        value = self._get(key, _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self._fail(key, f"must be an array of tables ([[{self.name(key)}]]); got {value!r}")
            return []
        return [Fields(v, f"{self.name(key)}[{i}]", self.problems) for i, v in enumerate(value)]

    def done(self) -> None:
        """Report every key of this table that no getter asked for."""
        for key in self.raw:
            if key not in self._seen:
                known = ", ".join(sorted(self._seen)) or "none"
                self._fail(key, f"unknown field (known fields here: {known})")
