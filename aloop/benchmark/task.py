"""A replay task: a pool of compositions whose objective is known for every one, from a table or the registry.

Rows that share a composition (polymorphs, replicates) are merged into one pool member
whose value is their mean: a lab that synthesises a composition measures one value.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: A target column headed ``name [units]``.
_UNITS_SUFFIX = re.compile(r"^(?P<name>[^\[\]]*?)\s*\[(?P<units>[^\[\]]*)\]\s*$")


class ReplayError(ValueError):
    """A replay task or strategy is invalid."""


class TaskWarning(UserWarning):
    """Rows of a table were left out of a task's pool (``Task.dropped`` lists them)."""


@dataclass(frozen=True)
class Task:
    """A fully measured pool: ``N`` unique compositions and the objective value of each.

    ``direction`` is ``"maximize"``, ``"minimize"`` or ``"window"`` (with ``window=(lo, hi)``).
    ``formulas``/``keys``/``y`` are ``(N,)`` arrays; ``extra`` holds numeric columns of the
    source table (e.g. the raw metal fractions of the OER plates), one row per pool member;
    ``source_rows`` is the number of table rows merged into the pool (``None`` if not from a table);
    ``dropped`` lists the table rows left out, as ``(0-based position, formula, reason)``.
    """

    name: str
    formulas: np.ndarray
    keys: np.ndarray
    y: np.ndarray
    objective: str
    units: str
    direction: str
    window: tuple[float, float] | None = None
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)
    source_rows: int | None = None
    dropped: tuple[tuple[int, str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize", "window"):
            raise ReplayError(f"task {self.name!r}: direction must be maximize, minimize or window, got {self.direction!r}")
        if (self.direction == "window") != (self.window is not None):
            raise ReplayError(f"task {self.name!r}: a window (lo, hi) goes with direction = 'window' and only then")
        if self.window is not None and not (self.window[0] < self.window[1]):
            raise ReplayError(f"task {self.name!r}: window lower edge must be below the upper edge, got {self.window}")
        n = len(self.y)
        if len(self.formulas) != n or len(self.keys) != n:
            raise ReplayError(f"task {self.name!r}: formulas, keys and values must have one entry per pool member")
        if n < 10:
            raise ReplayError(f"task {self.name!r}: the pool has {n} compositions; a replay needs at least 10")
        if not np.isfinite(self.y).all():
            raise ReplayError(f"task {self.name!r}: objective values must be finite")
        if not isinstance(self.objective, str) or not self.objective.strip() or "[" in self.objective \
                or self.objective != self.objective.strip():
            raise ReplayError(f"task {self.name!r}: objective name {self.objective!r} must be non-empty text without "
                              "'[' or surrounding spaces (results files head its column 'NAME [UNITS]'); a column "
                              "headed 'NAME [UNITS]' is split by Task.from_frame, otherwise rename the column")
        if np.ptp(self.y) == 0:
            raise ReplayError(f"task {self.name!r}: all {n} values of {self.objective!r} are {self.y[0]:g}: "
                              "there is nothing to find; choose another target")
        if self.window is not None and not ((self.y >= self.window[0]) & (self.y <= self.window[1])).any():
            raise ReplayError(f"task {self.name!r}: no pool value of {self.objective!r} lies in the window "
                              f"{self.window[0]:g}–{self.window[1]:g} (they range from {self.y.min():g} to "
                              f"{self.y.max():g}), so no strategy can find a hit; choose a window that holds some")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        goal = f"window {self.window[0]:g}–{self.window[1]:g}" if self.window is not None else self.direction
        units = f" [{self.units}]" if self.units else ""
        rows = f", from {self.source_rows} rows" if self.source_rows is not None else ""
        left = f", {len(self.dropped)} rows left out" if self.dropped else ""
        return (f"Task({self.name!r}: {len(self)} compositions{rows}{left}; {goal} {self.objective}{units}, "
                f"{self.y.min():g} to {self.y.max():g})")

    def digest(self) -> str:
        """sha256 of the pool's keys and values in row order: run records index rows, so order counts."""
        h = hashlib.sha256("\n".join(map(str, self.keys)).encode())
        h.update(np.ascontiguousarray(self.y, dtype="<f8").tobytes())
        return h.hexdigest()

    @classmethod
    def from_frame(cls, name: str, frame: pd.DataFrame, target: str, *, formula_column: str = "formula",
                   units: str = "", direction: str | None = None,
                   window: tuple[float, float] | None = None) -> Task:
        """A task from a table with a formula column and a numeric target column.

        A table does not say which way is better, so ``direction`` is required (``"window"``
        is implied by a ``window``). Rows whose formula does not parse or whose target is
        missing are dropped with a ``TaskWarning`` (listed in ``dropped``; counted in the error if
        nothing is left); rows of one
        composition are averaged (``source_rows`` counts the rows kept). A target column headed
        ``NAME [UNITS]`` gives the objective ``NAME`` (see :func:`objective_name`).
        """
        from aloop.chem import keys_from_matrix

        if direction is None and window is not None:
            direction = "window"
        if direction is None:
            raise ReplayError(f"task {name!r}: say which way is better for {target!r}: direction='maximize', "
                              "'minimize' or 'window' (with window=(lo, hi))")
        objective, units = objective_name(target, units)
        ok, X, dropped = _usable(frame, target, formula_column, name)
        if dropped and ok.any():
            i, formula, reason = dropped[0]
            warnings.warn(f"task {name!r}: {len(dropped)} of {len(frame)} rows left out of the pool (a formula that "
                          f"does not parse or no numeric {target!r}), e.g. row {i + 1} {formula!r}: {reason}; "
                          "Task.dropped lists them", TaskWarning, stacklevel=2)
        frame = frame.loc[ok].reset_index(drop=True)
        if len(frame) == 0:
            raise ReplayError(f"task {name!r}: no row has a parseable formula and a numeric {target!r}")
        frame = frame.assign(_key=keys_from_matrix(X), _y=pd.to_numeric(frame[target]))
        numeric = [c for c in frame.columns if c not in (formula_column, target, "_key", "_y")
                   and pd.api.types.is_numeric_dtype(frame[c])]
        grouped = frame.groupby("_key", sort=False)
        merged = grouped.agg(formula=(formula_column, "first"), y=("_y", "mean"))
        varying = [c for c in numeric if _TEMPERATURE.match(str(c)) and (grouped[c].nunique() > 1).any()]
        if varying:  # e.g. a thermoelectric's zT at several temperatures: the mean depends on which were measured
            c = varying[0]
            warnings.warn(f"task {name!r}: rows of one composition were measured at several temperatures ({c!r} "
                          f"{frame[c].min():g} to {frame[c].max():g}), and their {target!r} values are averaged; to "
                          "compare at one temperature, keep only its rows (a filtered CSV)", TaskWarning, stacklevel=2)
        extra = grouped[numeric].mean().reset_index(drop=True) if numeric else pd.DataFrame(index=range(len(merged)))
        return cls(name, merged["formula"].to_numpy(dtype=object), merged.index.to_numpy(dtype=object),
                   merged["y"].to_numpy(dtype=np.float64), objective, units, direction,
                   None if window is None else (float(window[0]), float(window[1])), extra, len(frame),
                   tuple(dropped))

    @classmethod
    def from_dataset(cls, dataset: str, target: str | None = None, *, direction: str | None = None,
                     window: tuple[float, float] | None = None) -> Task:
        """A task from a registry dataset (units from the registry; the first target by default).

        ``direction=None`` takes the registry's direction for the target (``DatasetSpec.directions``,
        e.g. lower overpotential is better), ``"window"`` if a ``window`` is given, and otherwise
        raises a ``ReplayError`` asking for one.
        """
        from aloop.datasets import get_spec, load

        try:
            spec = get_spec(dataset)
        except KeyError as exc:
            raise ReplayError(str(exc.args[0])) from None
        target = target or next(iter(spec.targets))
        if target not in spec.targets:
            raise ReplayError(f"dataset {dataset!r} has no target {target!r}; targets: {', '.join(spec.targets)}")
        if direction is None and window is None:
            direction = spec.direction(target)
            if direction is None:
                raise ReplayError(f"dataset {dataset!r} does not record whether a higher or lower {target!r} is "
                                  "better; give the direction: 'maximize', 'minimize' or 'window' (with a window)")
        return cls.from_frame(dataset, load(dataset), target, units=spec.targets[target],
                              direction=direction, window=window)

    def pool_csv(self, path: Path) -> Path:
        """Write the candidates (``formula`` column only: the campaign must not see the values)."""
        pd.DataFrame({"formula": self.formulas}).to_csv(path, index=False)
        return path


def objective_name(column: str, units: str = "") -> tuple[str, str]:
    """The objective name and units for a target column.

    A column headed ``NAME [UNITS]`` gives ``NAME`` (an objective name cannot hold '[': results
    files head its column ``NAME [UNITS]``) and ``UNITS`` unless ``units`` is given; other
    names are kept as they are.
    """
    match = _UNITS_SUFFIX.match(column)
    if match is None or not match["name"].strip():
        return column, units
    return match["name"].strip(), units or match["units"].strip()


#: A temperature column ("T", "T [K]", "temperature (K)"): rows of one composition at several of them are a series.
_TEMPERATURE = re.compile(r"^\s*(?:T|(?i:temp(?:erature)?))\b")


def dropped_rows(frame: pd.DataFrame, target: str, formula_column: str = "formula",
                 name: str = "table") -> list[tuple[int, str, str]]:
    """The rows ``Task.from_frame`` leaves out, as ``(0-based position in frame, formula, reason)``;
    ``name`` is the task's, for errors."""
    return _usable(frame, target, formula_column, name)[2]


def _usable(frame: pd.DataFrame, target: str, formula_column: str,
            name: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
    """``(mask of usable rows, their n × 86 fractions, dropped rows)``: a row needs a finite target and a formula."""
    from aloop.chem import to_fraction_matrix
    from aloop.surrogates.base import MAX_MAGNITUDE

    for col in (formula_column, target):
        if col not in frame.columns:
            near = [str(c) for c in frame.columns if objective_name(str(c))[0] == col]
            hint = f"; did you mean {near[0]!r} (give the header as it is)?" if near else ""
            raise ReplayError(f"task {name!r}: no column {col!r}; columns: {', '.join(map(str, frame.columns))}{hint}")
    values = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    given = frame[target].notna() & (frame[target].astype(str).str.strip() != "")
    if given.any() and not np.isfinite(values[given.to_numpy()]).any():
        raise ReplayError(f"task {name!r}: column {target!r} holds no numbers (e.g. {frame[target][given].iloc[0]!r}); "
                          "name the column of measured values")
    # An empty cell is read as NaN (or None): report it as the empty formula it is.
    formulas = ["" if f is None or (isinstance(f, float) and math.isnan(f)) else f for f in frame[formula_column]]
    X, bad = to_fraction_matrix(formulas, errors="collect")
    why = {int(i): (formulas[i], f"{target!r} is missing or not a finite number")
           for i in np.flatnonzero(~np.isfinite(values))}
    for i in np.flatnonzero(np.isfinite(values) & (np.abs(values) > MAX_MAGNITUDE)):  # a replay records every value
        why[int(i)] = (formulas[i], f"{target!r} = {values[i]:g} is beyond ±{MAX_MAGNITUDE:g}, more than a campaign "
                                    "records (a typo?)")
    for b in bad:
        why.setdefault(b.index, (b.formula, b.reason))
    ok = np.ones(len(frame), dtype=bool)
    ok[list(why)] = False
    return ok, X[ok], [(i, f, r) for i, (f, r) in sorted(why.items())]
