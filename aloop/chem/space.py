"""Design spaces: streamed composition grids (``GridSpace``) and readable formulas of fraction rows.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from pymatgen.core import Element

# Charge balance and candidate lists have their own modules; their names stay importable from here.
from aloop.chem.candidates import dedupe, exclude_measured, filter_chunks, load_candidates_csv  # noqa: F401
from aloop.chem.charge import OxidationStates, charge_balanced, oxidation_state_list  # noqa: F401
from aloop.chem.elements import ELEMENT_INDEX, ELEMNET_ELEMENTS, N_ELEMENTS


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
        if isinstance(self.elements, str):  # would be read one character per element
            raise TypeError(f"elements must be a list of symbols such as ['Ni', 'Fe'], got one string {self.elements!r}")
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
        for el, pair in self.bounds.items():
            if isinstance(pair, str) or not hasattr(pair, "__len__") or len(pair) != 2:
                raise ValueError(f"bounds for {el}: give (lo, hi), the lowest and highest fraction, got {pair!r}")
            lo, hi = pair
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
