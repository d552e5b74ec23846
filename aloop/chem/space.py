"""Design spaces: streamed composition grids, charge balance, candidate lists and de-duplication.

A grid space enumerates every composition whose free-element fractions are multiples of
``step`` (optionally with fixed anion content) and streams them as ``n × 86`` float32
fraction matrices, so spaces of millions of candidates never exist as Python objects.

Example:
    >>> space = GridSpace(["Fe", "Ni"], step=0.5, fixed={"O": 0.6})
    >>> space.count()
    3
    >>> [space.formulas(X) for X in space.iter_chunks()]
    [['Fe0.4O0.6', 'Ni0.4O0.6', 'Fe0.2Ni0.2O0.6']]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import combinations, product
from os import PathLike
from typing import Literal

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Element

from aloop.chem.elements import ELEMENT_INDEX, ELEMNET_ELEMENTS, N_ELEMENTS
from aloop.chem.parse import (
    BadRow,
    InvalidFormulasError,
    check_formulas,
    composition_key,
    keys_from_matrix,
    to_fraction_matrix,
)

OxidationStates = Literal["common", "icsd", "all"]


def _check_symbol(symbol: object, what: str) -> str:
    if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
        raise ValueError(f"{what}: unknown element {symbol!r}")
    if symbol not in ELEMENT_INDEX:
        raise ValueError(f"{what}: element {symbol} is outside the 86-element ElemNet vocabulary")
    return symbol


def _cut_compositions(n: int, k: int) -> np.ndarray:
    """All compositions of ``n`` into ``k`` positive parts, ``C(n-1, k-1) × k`` int32, lexicographic."""
    if k == 1:
        return np.array([[n]], dtype=np.int32)
    # Choose k-1 increasing cut points in 1..n-1, one column at a time, vectorised with repeat.
    cuts = np.arange(1, n - k + 2, dtype=np.int32)[:, None]
    for j in range(1, k - 1):
        last = cuts[:, -1]
        counts = (n - (k - 1 - j)) - last
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        offsets = np.arange(int(counts.sum()), dtype=np.int32) - starts + 1
        cuts = np.column_stack([np.repeat(cuts, counts, axis=0), np.repeat(last, counts) + offsets])
    edges = np.column_stack([np.zeros(len(cuts), np.int32), cuts, np.full(len(cuts), n, np.int32)])
    return np.diff(edges, axis=1)


def _composition_blocks(n: int, k: int, max_rows: int) -> Iterator[np.ndarray]:
    """Compositions of ``n`` into ``k`` positive parts in blocks of at most ``max_rows`` rows (if k allows)."""
    if k == 1 or math.comb(n - 1, k - 1) <= max_rows:
        yield _cut_compositions(n, k)
        return
    for first in range(1, n - k + 2):
        for block in _composition_blocks(n - first, k - 1, max_rows):
            yield np.column_stack([np.full(len(block), first, np.int32), block])


@dataclass(frozen=True)
class GridSpace:
    """A composition grid: free elements on multiples of ``step``, optional fixed (anion) content.

    Args:
        elements: symbols of the free (grid) elements, e.g. ``["Ni", "Fe", "Co"]``.
        step: grid spacing of free-part fractions; ``1/step`` must be an integer.
        max_elements: most free elements with a non-zero fraction (default: all).
        bounds: ``{el: (lo, hi)}`` inclusive bounds on an element's free-part fraction,
            rounded inward to the grid; ``lo > 0`` makes the element required.
        fixed: ``{el: fraction}`` of the whole composition held fixed, e.g. ``{"O": 0.6}``:
            the free fractions are scaled into the remaining ``1 - sum(fixed)``.

    Rows of the streamed ``n × 86`` matrices sum to 1. Order: by number of free
    elements, then element subsets (in ``elements`` order), then compositions.
    """

    elements: Sequence[str]
    step: float = 0.1
    max_elements: int | None = None
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    fixed: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        elements = tuple(_check_symbol(e, "elements") for e in self.elements)
        if not elements or len(set(elements)) != len(elements):
            raise ValueError(f"elements: need at least one element and no duplicates, got {list(elements)}")
        object.__setattr__(self, "elements", elements)
        if not 0 < self.step <= 1:
            raise ValueError(f"step must be in (0, 1], got {self.step}")
        if abs(1 / self.step - round(1 / self.step)) > 1e-6:
            raise ValueError(f"step {self.step} does not divide 1 (1/step = {1 / self.step:.6g} is not an integer)")
        max_el = len(elements) if self.max_elements is None else self.max_elements
        if isinstance(max_el, bool) or not isinstance(max_el, int | np.integer) or max_el < 1:
            raise ValueError(f"max_elements must be an integer >= 1, got {self.max_elements!r}")
        object.__setattr__(self, "max_elements", min(int(max_el), len(elements)))
        for el, value in self.fixed.items():
            _check_symbol(el, "fixed")
            if el in elements:
                raise ValueError(f"fixed: {el} is also a grid element; an element is either fixed or free")
            if not 0 < value < 1:
                raise ValueError(f"fixed: fraction of {el} must be in (0, 1), got {value}")
        if sum(self.fixed.values()) >= 1 - 1e-9:
            raise ValueError(f"fixed fractions sum to {sum(self.fixed.values()):g}; they must leave room (< 1)")
        object.__setattr__(self, "fixed", dict(self.fixed))
        n = self.n_units
        for el, (lo, hi) in self.bounds.items():
            if el not in elements:
                raise ValueError(f"bounds: {el!r} is not one of the grid elements {list(elements)}")
            if not 0 <= lo <= hi <= 1:
                problem = f"lo {lo} > hi {hi}" if lo > hi else "must lie within [0, 1]"
                raise ValueError(f"bounds for {el}: ({lo}, {hi}): {problem}")
            if math.ceil(lo * n - 1e-6) > math.floor(hi * n + 1e-6):
                raise ValueError(f"bounds for {el}: ({lo}, {hi}) contain no grid point at step {self.step}")
        object.__setattr__(self, "bounds", dict(self.bounds))
        lo_units, _ = self._unit_bounds()
        required = int(np.count_nonzero(lo_units))
        if required > self.max_elements:
            raise ValueError(f"bounds require {required} elements, more than max_elements={self.max_elements}")
        if lo_units.sum() > n:
            raise ValueError(f"lower bounds sum to {lo_units.sum() / n:g} > 1")

    @property
    def n_units(self) -> int:
        """Grid points per unit of free fraction: ``round(1 / step)``."""
        return int(round(1 / self.step))

    @property
    def free_fraction(self) -> float:
        """Share of the composition left to the grid elements: ``1 - sum(fixed)``."""
        return 1.0 - float(sum(self.fixed.values()))

    def _unit_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-element ``(lo, hi)`` in grid units, each of shape ``len(elements)``."""
        n = self.n_units
        pairs = [self.bounds.get(el, (0.0, 1.0)) for el in self.elements]
        lo = np.array([math.ceil(b_lo * n - 1e-6) for b_lo, _ in pairs], dtype=np.int64)
        hi = np.array([math.floor(b_hi * n + 1e-6) for _, b_hi in pairs], dtype=np.int64)
        return lo, hi

    def count(self) -> int:
        """Exact number of candidates, by a generating-function count (no enumeration)."""
        n, kmax = self.n_units, self.max_elements
        lo, hi = self._unit_bounds()
        # poly[k, u]: number of ways to pick k present elements using u grid units so far.
        poly = np.zeros((kmax + 1, n + 1), dtype=object)
        poly[0, 0] = 1
        for required, a, b in zip(lo > 0, np.maximum(lo, 1), hi, strict=True):
            prefix = np.concatenate([np.zeros((kmax + 1, 1), dtype=object), np.cumsum(poly, axis=1)], axis=1)
            take = np.zeros_like(poly)
            if a <= b:
                u = np.arange(a, n + 1)
                # take[k + 1, u] = sum of poly[k, u - b .. u - a]  (this element gets a..b units)
                take[1:, u] = prefix[:-1, u - a + 1] - prefix[:-1, np.maximum(u - b, 0)]
            poly = take if required else poly + take
        return int(sum(poly[1:, n]))

    def _blocks(self, max_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per element subset: its ``k`` matrix columns and an ``m × k`` block of grid-unit compositions."""
        n = self.n_units
        lo, hi = self._unit_bounds()
        required = [i for i in range(len(self.elements)) if lo[i] > 0]
        optional = [i for i in range(len(self.elements)) if lo[i] == 0 and hi[i] > 0]
        for k in range(max(len(required), 1), self.max_elements + 1):
            cached = list(_composition_blocks(n, k, max_rows)) if math.comb(n - 1, k - 1) <= max_rows else None
            for extra in combinations(optional, k - len(required)):
                pos = np.array(sorted([*required, *extra]))
                s_lo, s_hi = np.maximum(lo[pos], 1), hi[pos]
                if s_lo.sum() > n or s_hi.sum() < n:
                    continue
                cols = np.array([ELEMENT_INDEX[self.elements[i]] for i in pos])
                bounded = bool((s_lo > 1).any() or (s_hi < n - k + 1).any())
                for block in cached or _composition_blocks(n, k, max_rows):
                    yield cols, block[((block >= s_lo) & (block <= s_hi)).all(axis=1)] if bounded else block

    def iter_chunks(self, chunk_size: int = 100_000) -> Iterator[np.ndarray]:
        """Stream the space as ``n × 86`` float32 fraction matrices with ``n <= chunk_size``.

        Every chunk but the last has exactly ``chunk_size`` rows.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        scale = self.free_fraction / self.n_units
        fixed_cols = np.array([ELEMENT_INDEX[el] for el in self.fixed], dtype=np.int64)
        fixed_vals = np.array(list(self.fixed.values()), dtype=np.float32)
        out, filled = np.zeros((chunk_size, N_ELEMENTS), np.float32), 0
        for cols, block in self._blocks(max(chunk_size, 1 << 16)):
            start = 0
            while start < len(block):
                take = min(len(block) - start, chunk_size - filled)
                out[filled : filled + take, cols] = block[start : start + take] * scale
                filled, start = filled + take, start + take
                if filled == chunk_size:
                    out[:, fixed_cols] = fixed_vals
                    yield out
                    out, filled = np.zeros((chunk_size, N_ELEMENTS), np.float32), 0
        if filled:
            out[:filled, fixed_cols] = fixed_vals
            yield out[:filled]

    def __iter__(self) -> Iterator[np.ndarray]:
        """Chunks of the default size (see ``iter_chunks``)."""
        return self.iter_chunks()

    def formulas(self, X: np.ndarray, decimals: int = 6) -> list[str]:
        """Readable formulas of rows of ``X`` (``n × 86``): grid elements, then fixed ones."""
        return formulas_from_matrix(X, order=[*self.elements, *self.fixed], decimals=decimals)


def formulas_from_matrix(X: np.ndarray, order: Sequence[str] | None = None, decimals: int = 6) -> list[str]:
    """Formulas like ``"Fe0.08Ni0.32O0.6"`` for rows of an ``n × 86`` fraction matrix.

    Elements appear in ``order``, then unlisted ones by atomic number; fractions are rounded
    to ``decimals`` and ``:g``-formatted.
    """
    listed = list(order or [])
    cols = [ELEMENT_INDEX[el] for el in listed]
    cols += [i for i, el in enumerate(ELEMNET_ELEMENTS) if el not in listed]
    names = np.asarray(ELEMNET_ELEMENTS)[cols]
    values = np.round(np.asarray(X, dtype=np.float64)[:, cols], decimals)
    return ["".join(f"{names[j]}{row[j]:g}" for j in np.flatnonzero(row)) for row in values]


# --- charge balance --------------------------------------------------------------------------------


@cache
def oxidation_state_list(symbol: str, which: OxidationStates = "common") -> tuple[int, ...]:
    """Oxidation states of an element from pymatgen's lists.

    ``"common"``: ``Element.common_oxidation_states``; ``"icsd"``: states seen in the ICSD
    (pymatgen's default for ``oxi_state_guesses``); ``"all"``: ``Element.oxidation_states``,
    very inclusive (FeNi balances). An empty list falls back to the common one.
    """
    if which not in ("common", "icsd", "all"):
        raise ValueError(f"oxidation_states must be 'common', 'icsd' or 'all', got {which!r}")
    el = Element(symbol)
    states = {"common": el.common_oxidation_states, "icsd": el.icsd_oxidation_states, "all": el.oxidation_states}
    return tuple(sorted(states[which] or el.common_oxidation_states))


def _as_matrix(X_or_formulas: np.ndarray | Sequence[str]) -> np.ndarray:
    if isinstance(X_or_formulas, np.ndarray) and X_or_formulas.ndim == 2:
        if X_or_formulas.shape[1] != N_ELEMENTS:
            raise ValueError(f"expected an n × {N_ELEMENTS} fraction matrix, got shape {X_or_formulas.shape}")
        return X_or_formulas
    if isinstance(X_or_formulas, str):
        raise TypeError("pass a sequence of formulas, not a single string")
    return to_fraction_matrix(list(X_or_formulas), errors="raise")[0]


def _support_words(support: np.ndarray) -> np.ndarray:
    """Each row's element set (``n × 86`` bool) as a pair of integers, ``n × 2`` uint64."""
    packed = np.zeros((len(support), 16), np.uint8)
    packed[:, :11] = np.packbits(support, axis=1)
    return packed.view(np.uint64)


def _balanced_fast(X: np.ndarray, which: OxidationStates, tol: float) -> np.ndarray:
    Xd = np.asarray(X, dtype=np.float64)
    support = Xd > 0
    mask = np.zeros(len(Xd), dtype=bool)
    # Rows with the same set of elements share one table of state assignments.
    words = _support_words(support)
    order = np.lexsort((words[:, 1], words[:, 0]))
    new_group = (np.diff(words[order], axis=0) != 0).any(axis=1)
    for rows in np.split(order, np.flatnonzero(new_group) + 1):
        cols = np.flatnonzero(support[rows[0]])
        if len(cols) <= 1:
            mask[rows] = len(cols) == 1  # a pure element is neutral (as pymatgen says)
            continue
        states = np.array(list(product(*(oxidation_state_list(ELEMNET_ELEMENTS[c], which) for c in cols))), float)
        block = max(1, 4_000_000 // len(states))
        for start in range(0, len(rows), block):
            r = rows[start : start + block]
            charge = Xd[np.ix_(r, cols)] @ states.T  # len(r) × n_assignments
            mask[r] = (np.abs(charge) <= tol).any(axis=1)
    return mask


@lru_cache(maxsize=200_000)
def _balanced_pymatgen(key: str, which: OxidationStates, max_combinations: int) -> bool:
    comp = Composition(key.replace(" ", ""))
    if len(comp) == 1:
        return True
    formula, _ = comp.get_integer_formula_and_factor()
    comp = Composition(formula)
    override = {el.symbol: list(oxidation_state_list(el.symbol, which)) for el in comp}
    for el, amt in comp.get_el_amt_dict().items():
        # pymatgen enumerates combinations_with_replacement(states, count) per element
        if math.comb(int(amt) + len(override[el]) - 1, int(amt)) > max_combinations:
            raise ValueError(f"{formula}: too many oxidation-state combinations for pymatgen; use method='fast'")
    return bool(comp.oxi_state_guesses(oxi_states_override=override))


def charge_balanced(
    X_or_formulas: np.ndarray | Sequence[str],
    oxidation_states: OxidationStates = "common",
    method: Literal["fast", "pymatgen"] = "fast",
    tol: float = 1e-4,
    max_combinations: int = 100_000,
) -> np.ndarray:
    """Which compositions can be charge balanced with the given oxidation-state lists.

    ``method="fast"`` (vectorised, exact on grids) gives every element ONE oxidation
    state and asks whether the fraction-weighted charge sum is zero within ``tol``
    (the SMACT-style test: Fe2O3 and FeO pass, Fe3O4 needs mixed valence and fails).
    ``method="pymatgen"`` runs ``Composition.oxi_state_guesses`` on the reduced integer
    formula (mixed valence allowed, Fe3O4 passes), cached by composition key; slow.
    Pure elements count as balanced. Both use the lists of :func:`oxidation_state_list`.

    Args:
        X_or_formulas: an ``n × 86`` fraction matrix or ``n`` formulas.
        oxidation_states: ``"common"`` (default), ``"icsd"`` or ``"all"``.
        method: ``"fast"`` or ``"pymatgen"``.
        tol: charge tolerance per atom for ``"fast"``.
        max_combinations: refuse (ValueError) pymatgen searches larger than this per element.

    Returns:
        Boolean mask of shape ``n``.
    """
    oxidation_state_list("H", oxidation_states)  # rejects an unknown list name before any work
    X = _as_matrix(X_or_formulas)
    if method == "fast":
        return _balanced_fast(X, oxidation_states, tol)
    if method == "pymatgen":
        keys = keys_from_matrix(X, decimals=6)  # 4 decimals would garble integer formulas like CuH10SO9
        return np.array([_balanced_pymatgen(k, oxidation_states, max_combinations) if k else False for k in keys])
    raise ValueError(f"method must be 'fast' or 'pymatgen', got {method!r}")


def filter_chunks(chunks: Iterable[np.ndarray], mask_fn: Callable[[np.ndarray], np.ndarray]) -> Iterator[np.ndarray]:
    """Keep the rows of each ``n × 86`` chunk where ``mask_fn(chunk)`` is true; empty chunks are skipped."""
    for X in chunks:
        keep = np.asarray(mask_fn(X), dtype=bool)
        if keep.any():
            yield X[keep]


# --- candidate lists, de-duplication ---------------------------------------------------------------


def dedupe(X: np.ndarray, seen: set[str] | None = None) -> np.ndarray:
    """Rows of ``X`` (``n × 86``) whose canonical key is new; pass ``seen`` to dedupe across chunks (it is updated)."""
    seen = set() if seen is None else seen
    keep = np.zeros(len(X), dtype=bool)
    for i, key in enumerate(keys_from_matrix(X)):
        keep[i] = key not in seen
        seen.add(key)
    return X[keep]


def exclude_measured(X: np.ndarray, measured_keys: Collection[str]) -> np.ndarray:
    """Rows of ``X`` (``n × 86``) not already measured; keys from ``composition_key``/``keys_from_matrix``."""
    if not measured_keys or not len(X):
        return X
    keep = np.ones(len(X), dtype=bool)
    support = np.zeros((len(measured_keys), N_ELEMENTS), dtype=bool)
    for i, key in enumerate(measured_keys):  # read the element set off the key: "Nb0" (a trace) is no formula
        try:
            support[i, [ELEMENT_INDEX[token.rstrip("0123456789.")] for token in str(key).split()]] = True
        except KeyError:
            raise ValueError(f"{key!r} is not a composition key (e.g. 'Fe0.4 O0.6')") from None
    measured = _support_words(support)
    words = _support_words(np.asarray(X) > 0)
    # Only rows whose element set occurs among the measured ones need the (slow) exact key.
    suspects = np.flatnonzero(np.isin(words[:, 0], measured[:, 0]) & np.isin(words[:, 1], measured[:, 1]))
    keep[suspects] = [k not in measured_keys for k in keys_from_matrix(X[suspects])]
    return X[keep]


def load_candidates_csv(
    path: str | PathLike[str],
    formula_column: str = "formula",
    errors: Literal["raise", "collect"] = "raise",
    drop_duplicates: bool = True,
) -> pd.DataFrame:
    """Read a CSV of candidate formulas into a DataFrame of valid, de-duplicated candidates.

    The frame keeps the file's columns, names stripped of surrounding spaces (index = data-row
    number, 0-based), and adds ``key`` (the canonical composition key). Formula cells are read
    as text ("NaN" stays a formula).
    ``errors="raise"`` raises ``InvalidFormulasError`` listing every bad row; ``"collect"``
    drops them and lists them in ``frame.attrs["bad_rows"]``. With ``drop_duplicates`` only
    the first row of each composition is kept (the others in ``frame.attrs["duplicate_rows"]``).
    """
    if errors not in ("raise", "collect"):
        raise ValueError(f"errors must be 'raise' or 'collect', got {errors!r}")
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]  # "formula ," heads the column "formula"
    if formula_column not in frame.columns:
        raise ValueError(f"{path}: no column {formula_column!r}; columns present: {list(frame.columns)}")
    position = [i for i, c in enumerate(frame.columns) if c == formula_column]
    if len(position) > 1:
        raise ValueError(f"{path}: {len(position)} columns are headed {formula_column!r}; keep one")
    # Re-read the formula column as raw text: pandas would turn the formula "NaN" into a float.
    formulas = pd.read_csv(path, usecols=position, dtype=str, keep_default_na=False).iloc[:, 0]
    frame[formula_column] = formulas.to_numpy()
    bad: list[BadRow] = check_formulas(frame[formula_column].tolist())
    if bad and errors == "raise":
        raise InvalidFormulasError(bad, len(frame))
    frame = frame.drop(index=[b.index for b in bad])
    frame["key"] = [composition_key(f) for f in frame[formula_column]]
    duplicated = frame["key"].duplicated() & drop_duplicates
    duplicates = [int(i) for i in frame.index[duplicated]]
    frame = frame[~duplicated].copy()
    frame.attrs["bad_rows"] = bad
    frame.attrs["duplicate_rows"] = duplicates
    return frame
