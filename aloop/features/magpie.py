"""Magpie composition features (matminer's ``ElementProperty.from_preset("magpie")``) as array operations.

The numbers are matminer's, computed from matminer's own Magpie element tables, but for a
whole ``n × 86`` fraction matrix at once instead of one pymatgen ``Composition`` at a time.

Definitions replicated from matminer 0.10 (``PropertyStats`` and ``MagpieData``):

- ``minimum``/``maximum``/``range``: over the elements present (fraction > 0), NaN if any
  present element's value is NaN (only possible with ``impute_nan=False``).
- ``mean``: fraction-weighted mean (``np.average`` with the amounts as weights).
- ``avg_dev``: fraction-weighted mean of ``|value - mean|``.
- ``mode``: the value of the element with the largest fraction; elements whose fraction
  is ``np.isclose`` (rtol 1e-5, atol 1e-8) to the largest all count as tied, and the
  *smallest value* among the tied wins (not the first element, not the mean).
  One deliberate difference: matminer applies ``np.isclose`` to the amounts as written,
  so its atol makes the mode depend on the formula's scale (``Fe0.0000100005O0.00001``
  ties, ``Fe1.00005O1`` does not); a fraction matrix has no scale, so aloop applies the
  tolerances to fractions. Only formulas with amounts below ~1e-3 can differ.
- Missing element values: ``MagpieData`` reads each ``<property>.table`` line with
  ``float()``; unreadable lines ("Missing") and absent lines (Z beyond the file) are NaN.
  With ``impute_nan=True`` (the ``from_preset`` default) each NaN becomes the mean of the
  property over all elements of Z = 1–118 that have a value.

Precision: statistics are computed in float64 and returned as float32 (the featurizer
protocol), within 6e-8 relative of the float64 values. Input fractions rounded to float32
(what ``to_fraction_matrix`` produces) add ~1e-7 relative: over all 11,451 formulas of the
four experimental datasets every feature is within ``1e-7 · (1 + |value|)`` of matminer.
``transform_fractions`` also takes float64 fractions, for agreement to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from aloop.chem.elements import ELEMNET_ELEMENTS, N_ELEMENTS
from aloop.features.base import Featurizer, check_fractions

#: The 22 element properties of matminer's "magpie" preset, in matminer's order.
MAGPIE_PROPERTIES: tuple[str, ...] = (
    "Number",
    "MendeleevNumber",
    "AtomicWeight",
    "MeltingT",
    "Column",
    "Row",
    "CovalentRadius",
    "Electronegativity",
    "NsValence",
    "NpValence",
    "NdValence",
    "NfValence",
    "NValence",
    "NsUnfilled",
    "NpUnfilled",
    "NdUnfilled",
    "NfUnfilled",
    "NUnfilled",
    "GSvolume_pa",
    "GSbandgap",
    "GSmagmom",
    "SpaceGroupNumber",
)

#: The six statistics of the preset, in matminer's order (the inner loop of the feature order).
MAGPIE_STATS: tuple[str, ...] = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")

_LIST_VALUED = frozenset({"OxidationStates"})
_MAX_Z = 118  # MagpieData reads (and imputes over) Z = 1..118
_MODE_RTOL = 1e-5  # np.isclose defaults, as used by PropertyStats.mode
_MODE_ATOL = 1e-8


def magpie_data_dir() -> Path:
    """The folder of Magpie ``<property>.table`` files shipped inside the matminer package."""
    return Path(str(files("matminer") / "utils" / "data_files" / "magpie_elementdata"))


@lru_cache(maxsize=None)
def _raw_column(prop: str) -> np.ndarray:
    """Values of one property for Z = 1..118 (shape ``118``), NaN where MagpieData reads NaN."""
    path = magpie_data_dir() / f"{prop}.table"
    if not path.is_file():
        known = sorted(p.stem for p in magpie_data_dir().glob("*.table"))
        raise ValueError(f"unknown Magpie property {prop!r}; known properties: {', '.join(known)}")
    if prop in _LIST_VALUED:
        raise ValueError(f"Magpie property {prop!r} holds a list per element; only scalar properties are supported")
    lines = path.read_text().splitlines()
    values = np.full(_MAX_Z, np.nan)
    for z in range(min(len(lines), _MAX_Z)):
        try:
            values[z] = float(lines[z])
        except ValueError:  # "Missing", blank lines and list-valued lines are NaN in MagpieData
            pass
    return values


def table_digest() -> str:
    """sha256 of the Magpie element table in use: it changes when an upgraded matminer ships other values, so
    caches of Magpie features are keyed by it."""
    import hashlib

    return hashlib.sha256(element_table().tobytes()).hexdigest()


@lru_cache(maxsize=32)
def element_table(properties: tuple[str, ...] = MAGPIE_PROPERTIES, impute_nan: bool = True) -> np.ndarray:
    """The ``86 × P`` float64 table of Magpie values, rows in ElemNet vocabulary order.

    Args:
        properties: ``P`` Magpie property names (file stems of ``magpie_data_dir()``).
        impute_nan: replace NaN by the property's mean over Z = 1–118, as ``MagpieData`` does.

    Returns:
        A read-only array of shape ``86 × P`` (cached: built once per argument tuple).
    """
    from pymatgen.core.periodic_table import Element

    rows = np.array([Element(symbol).Z - 1 for symbol in ELEMNET_ELEMENTS])
    columns = []
    for prop in properties:
        full = _raw_column(prop)
        if impute_nan:
            full = np.where(np.isnan(full), np.nanmean(full), full)
        columns.append(full[rows])
    table = np.stack(columns, axis=1) if columns else np.zeros((N_ELEMENTS, 0))
    table.setflags(write=False)
    return table


def _packed(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pack the non-zero entries of each row to the left.

    Args:
        F: ``m × 86`` non-negative fractions.

    Returns:
        ``(W, idx)``, each ``m × k`` with ``k`` the largest number of elements in a row: the
        float64 fractions (0 in padding) and their column indices. Padding slots repeat the
        row's first element, so min/max/NaN checks over all ``k`` slots see only present
        elements and no mask is needed; their zero weight keeps them out of mean and mode.
    """
    m = F.shape[0]
    rows, cols = np.nonzero(F)  # row-major, so each row's entries are contiguous
    counts = np.bincount(rows, minlength=m)
    k = max(int(counts.max(initial=0)), 1)
    starts = np.cumsum(counts) - counts
    slot = np.arange(rows.size) - starts[rows]
    W = np.zeros((m, k))
    W[rows, slot] = F[rows, cols]
    first = np.zeros(m, dtype=np.intp)
    first[counts > 0] = cols[starts[counts > 0]]
    idx = np.repeat(first[:, None], k, axis=1)
    idx[rows, slot] = cols
    return W, idx


def magpie_stats(F: np.ndarray, table: np.ndarray, stats: Sequence[str] = MAGPIE_STATS) -> np.ndarray:
    """Matminer's weighted property statistics for one block of rows.

    Args:
        F: ``m × 86`` non-negative fractions (any row scale; an all-zero row gives NaN).
        table: ``86 × P`` float64 element values.
        stats: names from ``MAGPIE_STATS``.

    Returns:
        ``m × P × S`` float64 statistics.
    """
    W, idx = _packed(F)
    total = W.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        W /= total
    # Slot-major (k × m × P): reductions over slots then run over contiguous m × P planes.
    W = np.ascontiguousarray(W.T)
    V = table[idx.T]
    mean = np.einsum("km,kmp->mp", W, V)
    named: dict[str, np.ndarray] = {"mean": mean}
    if "avg_dev" in stats:
        named["avg_dev"] = np.einsum("km,kmp->mp", W, np.abs(V - mean))
    if {"minimum", "maximum", "range"} & set(stats):
        # np.min / np.max propagate NaN, as matminer's explicit NaN check does.
        named["minimum"], named["maximum"] = V.min(axis=0), V.max(axis=0)
        named["range"] = named["maximum"] - named["minimum"]
    if "mode" in stats:
        # PropertyStats.mode: np.isclose(w, w.max()) marks ties; the smallest tied value wins.
        wmax = W.max(axis=0)
        tied = np.abs(W - wmax) <= _MODE_ATOL + _MODE_RTOL * wmax
        named["mode"] = np.where(tied[:, :, None], V, np.inf).min(axis=0)
    out = np.stack([named[s] for s in stats], axis=2)
    out[empty] = np.nan
    return out


class MagpieFeaturizer(Featurizer):
    """Magpie element-property statistics: 132 features identical to matminer's "magpie" preset.

    Feature ``p * S + s`` is statistic ``s`` of property ``p`` and is named like matminer's
    ``feature_labels()`` (``"MagpieData mean MeltingT"``), so columns line up with
    matminer-featurized frames.

    Args:
        properties: Magpie property names (default: the preset's 22).
        stats: statistics from ``MAGPIE_STATS`` (default: all six, matminer's order).
        impute_nan: fill missing element values with the property mean (matminer's default).
        chunk_size: rows per block, bounding memory to ~``chunk_size × k × P × 8`` bytes.

    Example:
        >>> feat = MagpieFeaturizer()
        >>> Z = feat.transform(["Fe2O3", "Ti0.99Nb0.01NiSn"])
        >>> Z.shape, Z.dtype
        ((2, 132), dtype('float32'))
        >>> round(float(Z[0, feat.feature_names.index("MagpieData mean Number")]), 4)  # (2·26 + 3·8) / 5
        15.2
    """

    name = "magpie"

    def __init__(
        self,
        properties: Sequence[str] | None = None,
        stats: Sequence[str] | None = None,
        impute_nan: bool = True,
        chunk_size: int = 1_024,
    ) -> None:
        for name, value in (("properties", properties), ("stats", stats)):
            if isinstance(value, str):  # would be read one character per name
                raise TypeError(f"{name} must be a list of names, got one string {value!r}; wrap it in a list")
        self.properties = tuple(MAGPIE_PROPERTIES if properties is None else properties)
        self.stats = tuple(MAGPIE_STATS if stats is None else stats)
        if not self.properties or not self.stats:
            raise ValueError("MagpieFeaturizer needs at least one property and one statistic")
        unknown = [s for s in self.stats if s not in MAGPIE_STATS]
        if unknown:
            raise ValueError(f"unknown statistics {unknown}; known: {', '.join(MAGPIE_STATS)}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.impute_nan = impute_nan
        self.chunk_size = chunk_size
        self._table = element_table(self.properties, impute_nan)  # validates property names

    @property
    def feature_names(self) -> list[str]:
        return [f"MagpieData {stat} {prop}" for prop in self.properties for stat in self.stats]

    @property
    def table(self) -> np.ndarray:
        """The ``86 × P`` float64 element-property table the statistics are taken over."""
        return self._table

    def transform_fractions(self, X: np.ndarray) -> np.ndarray:
        """``n × 86`` fractions → ``n × (P·S)`` float32 features (all-zero rows give NaN).

        Raises:
            ValueError: wrong shape, or rows that are not fractions (see ``check_fractions``).
        """
        F = check_fractions(X, "MagpieFeaturizer")
        n, P, S = F.shape[0], len(self.properties), len(self.stats)
        out = np.empty((n, P * S), dtype=np.float32)
        for start in range(0, n, self.chunk_size):
            block = F[start : start + self.chunk_size]
            stats = magpie_stats(block, self._table, self.stats)
            out[start : start + block.shape[0]] = stats.reshape(block.shape[0], P * S)
        return out
