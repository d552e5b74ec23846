"""The search space of a campaign definition: its dataclass, its validation and the grid it spans.

A definition's ``[search_space]`` is either an element grid or a CSV of candidate formulas.
Besides checking each field, validation counts the grid (a generating-function count, no
enumeration) and refuses one above ``MAX_GRID_CANDIDATES``: the pool is enumerated,
featurised and scored whole in memory, so a grid of a billion compositions would fill the
memory of any machine at the first ``propose`` instead of failing cleanly here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from aloop.campaigns._fields import Fields
from aloop.chem import GridSpace
from aloop.chem.elements import ELEMENT_INDEX
from aloop.chem.parse import KEY_DECIMALS

#: Most compositions a grid may hold (counted before charge balance). Proposing from a pool of
#: 1,000,000 takes ~18 s and 0.74 GB with 32 features on a 2-core laptop (BENCHMARKS.md,
#: "Proposal latency"); the pool's fractions and features (1,024 float32 per composition for
#: the default ElemNet layer 2) grow linearly, so twice that is where a laptop still copes.
MAX_GRID_CANDIDATES = 2_000_000

# Finer steps would only make grid points that share a composition key (and would make counting slow).
_MIN_STEP = 10.0**-KEY_DECIMALS

__all__ = ["MAX_GRID_CANDIDATES", "SearchSpace", "grid_space", "parse_search_space"]


@dataclass(frozen=True)
class SearchSpace:
    """Where candidates come from: an element grid or a CSV of candidate formulas.

    Grid mode: atomic fractions (of the whole formula unit) of ``elements`` are multiples
    of ``step``; at most ``max_elements`` of them appear at once; ``bounds`` limits single
    elements to ``[lo, hi]``; ``fixed`` pins elements (typically the anion) to a fraction;
    ``charge_balanced`` keeps only compositions with a neutral oxidation-state assignment.
    Candidate mode: ``candidates_csv`` with formulas in ``formula_column``; ``candidates_sha256``
    and ``candidates_count`` record the file as it was when the campaign was created (``aloop
    init`` writes them; older definitions lack them), so a later change can be pointed out.
    """

    elements: tuple[str, ...] = ()
    step: float | None = None
    max_elements: int | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    charge_balanced: bool = False
    candidates_csv: Path | None = None
    formula_column: str = "formula"
    candidates_sha256: str | None = None
    candidates_count: int | None = None

    @property
    def kind(self) -> str:
        """``"candidates"`` or ``"grid"``."""
        return "candidates" if self.candidates_csv is not None else "grid"


def grid_space(s: SearchSpace) -> GridSpace:
    """The ``GridSpace`` of a grid definition (whole-formula fractions → free-part fractions)."""
    free = 1.0 - sum(s.fixed.values())
    fixed = ", ".join(f"{f} {v:g}" for f, v in s.fixed.items())
    for el, (lo, hi) in s.bounds.items():  # bad bounds said as written, before the free-part conversion
        if not s.fixed or not 0 <= lo <= hi:
            continue  # GridSpace's own words are those of the definition then
        if lo > free + 1e-9:
            raise ValueError(f"bounds for {el}: ({lo:g}, {hi:g}): lo {lo:g} is more than the {free:g} that the fixed "
                             f"{fixed} leave(s) to the grid elements")
        if math.ceil(lo / s.step - 1e-6) > math.floor(min(hi, free) / s.step + 1e-6):
            raise ValueError(f"bounds for {el}: ({lo:g}, {hi:g}) contain no grid point at step {s.step:g}")
    bounds = {el: (lo / free, min(hi / free, 1.0)) for el, (lo, hi) in s.bounds.items()}
    return GridSpace(s.elements, step=float(s.step) / free, max_elements=s.max_elements, bounds=bounds, fixed=s.fixed)  # type: ignore[arg-type]


def _grid_size_problem(s: SearchSpace) -> str | None:
    """Why the (otherwise valid) grid cannot be a campaign's pool: empty, or above ``MAX_GRID_CANDIDATES``."""
    shrink = "use a larger step, fewer elements, a lower max_elements or tighter bounds"
    try:
        grid = grid_space(s)
    except ValueError as exc:
        return str(exc)
    count = grid.count()
    if count == 0:
        return "the grid holds no candidates (check bounds and fixed)"
    if count > MAX_GRID_CANDIDATES:
        before = " before charge balance" if s.charge_balanced else ""
        return (f"the grid holds {count:,} compositions{before}, more than the limit of {MAX_GRID_CANDIDATES:,} "
                f"(every candidate is featurised and scored in memory); {shrink}")
    return None


def parse_search_space(space: Fields, problems: list[str], base: Path, check_files: bool = True) -> SearchSpace:
    """Validate ``[search_space]``; relative ``candidates_csv`` paths are resolved against ``base``.

    ``check_files``: a candidates file that does not exist is a problem (else it is left to whoever needs it).
    """
    before = len(problems)
    elements = space.strings("elements", default=None)
    csv_name = space.text("candidates_csv", default=None)
    column = space.text("formula_column", default="formula")
    sha = space.text("candidates_sha256", default=None, check=_check_sha256)
    count = space.integer("candidates_count", default=None, minimum=1)
    step = space.number("step", default=None)
    max_elements = space.integer("max_elements", default=None, minimum=1)
    bounds_t = space.table("bounds", default={})
    fixed_t = space.table("fixed", default={})
    charge_balanced = space.boolean("charge_balanced", default=False)
    w = space.where
    if not space.raw and any(p.startswith(f"{w}: ") for p in problems):  # missing or not a table: said once
        return SearchSpace()
    if ("elements" in space.raw) == ("candidates_csv" in space.raw):
        which = "both" if "candidates_csv" in space.raw else "neither"
        problems.append(f"{w}: give either elements (an element grid) or candidates_csv (a formula list), not {which}")
        space.done()
        return SearchSpace()
    if "candidates_csv" in space.raw:
        for key in ("step", "max_elements", "bounds", "fixed", "charge_balanced"):
            if key in space.raw:
                problems.append(f"{w}.{key}: only for an element grid, not with candidates_csv")
        if csv_name is None:  # not text: said already
            space.done()
            return SearchSpace()
        csv_path = base / csv_name
        if csv_path.is_dir() or (check_files and not csv_path.exists()):
            problems.append(f"{w}.candidates_csv: {'is a folder' if csv_path.is_dir() else 'file not found'}: {csv_path}")
        elif csv_path.is_file():
            try:
                with csv_path.open(encoding="utf-8-sig", newline="") as fh:
                    columns = [h.strip() for h in next(csv.reader(fh), [])]
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                problems.append(f"{w}.candidates_csv: cannot read {csv_path}: {exc}")
                columns = [column]
            if column not in columns:
                problems.append(
                    f"{w}.formula_column: {column!r} is not a column of {csv_name}; columns: {', '.join(columns)}"
                )
        space.done()
        return SearchSpace(candidates_csv=Path(csv_name), formula_column=column, candidates_sha256=sha,
                           candidates_count=count)
    for key in ("formula_column", "candidates_sha256", "candidates_count"):
        if key in space.raw:
            problems.append(f"{w}.{key}: only with candidates_csv")
    if elements == []:  # (not a list of text: said already)
        problems.append(f"{w}.elements: must list at least one element")
    elements = elements or []
    for i, el in enumerate(elements):
        _element(el, f"{w}.elements[{i}]", problems)
    if len(set(elements)) != len(elements):
        problems.append(f"{w}.elements: repeats an element")
    fixed: dict[str, float] = {}
    for el, frac in fixed_t.raw.items():
        if not _element(el, f"{w}.fixed.{el}", problems):
            continue
        if el in elements:
            problems.append(f"{w}.fixed.{el}: a fixed element cannot also be in elements")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            problems.append(f"{w}.fixed.{el}: must be an atomic fraction strictly between 0 and 1; got {frac!r}")
            continue
        fixed[el] = float(frac)
    free = 1.0 - sum(fixed.values())
    if fixed and free <= 0:
        problems.append(
            f"{w}.fixed: fixed fractions sum to {sum(fixed.values()):g}; they must leave room for the elements"
        )
    if step is None:
        if "step" not in space.raw:  # an invalid step has its own problem already
            problems.append(f"{w}.step: required with elements (grid spacing of atomic fractions, e.g. 0.05)")
    elif not 0 < step <= 1:
        problems.append(f"{w}.step: must be in (0, 1]; got {step!r}")
    elif step < _MIN_STEP - 1e-12:
        problems.append(f"{w}.step: must be at least {_MIN_STEP:g} (compositions are told apart to "
                        f"{KEY_DECIMALS} decimals); got {step:g}")
    elif free > 0 and abs(free / step - round(free / step)) > 1e-6:
        problems.append(f"{w}.step: {step:g} does not divide the free fraction {free:g} (1 minus the fixed fractions)")
    if max_elements is not None and elements and max_elements > len(elements):
        problems.append(f"{w}.max_elements: {max_elements} exceeds the {len(elements)} listed elements")
    bounds: dict[str, tuple[float, float]] = {}
    for el, pair in bounds_t.raw.items():
        where = f"{w}.bounds.{el}"
        if el not in elements:
            problems.append(f"{where}: {el!r} is not one of search_space.elements")
            continue
        ok = isinstance(pair, list) and len(pair) == 2 and all(_is_number(x) for x in pair)
        if not ok or not 0 <= pair[0] <= pair[1] <= 1:
            problems.append(f"{where}: must be [lo, hi] with 0 <= lo <= hi <= 1; got {pair!r}")
            continue
        bounds[el] = (float(pair[0]), float(pair[1]))
    space.done()
    result = SearchSpace(
        elements=tuple(elements),
        step=step,
        max_elements=max_elements if max_elements is not None else len(elements) or None,
        bounds=bounds,
        fixed=fixed,
        charge_balanced=charge_balanced,
    )
    if len(problems) == before and (problem := _grid_size_problem(result)):
        problems.append(f"{w}: {problem}")
    return result


def _check_sha256(value: str) -> str | None:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        return f"must be the 64 lower-case hex digits of a sha256; got {value!r}"
    return None


def _element(value: object, where: str, problems: list[str]) -> bool:
    if not isinstance(value, str) or value not in ELEMENT_INDEX:
        problems.append(f"{where}: {value!r} is not an element of the 86-element ElemNet vocabulary")
        return False
    return True


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
