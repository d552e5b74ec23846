"""Charge balance: oxidation-state lists and which compositions can be charge neutral.

``charge_balanced`` tests a fraction matrix (or formulas) either with one oxidation
state per element, vectorised over rows that share an element set, or with pymatgen's
``oxi_state_guesses`` (mixed valence allowed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache, lru_cache
from itertools import product
from typing import Literal

import numpy as np
from pymatgen.core import Composition, Element

from aloop.chem.elements import ELEMNET_ELEMENTS, N_ELEMENTS
from aloop.chem.parse import keys_from_matrix, to_fraction_matrix

OxidationStates = Literal["common", "icsd", "all"]


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
