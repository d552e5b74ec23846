"""The ElemNet element vocabulary: 86 elements H–Pu in atomic-number order."""

from __future__ import annotations

from pymatgen.core.periodic_table import Element

#: Elements ElemNet leaves out of H–Pu (noble gases He/Ne/Ar/Rn and the short-lived Po/At/Fr/Ra).
EXCLUDED_FROM_ELEMNET: frozenset[str] = frozenset({"He", "Ne", "Ar", "Po", "At", "Rn", "Fr", "Ra"})

#: The 86 ElemNet input elements, in ElemNet's order (increasing atomic number).
ELEMNET_ELEMENTS: tuple[str, ...] = tuple(
    Element.from_Z(z).symbol for z in range(1, 95) if Element.from_Z(z).symbol not in EXCLUDED_FROM_ELEMNET
)

#: Column index of each vocabulary element in an ``n × 86`` fraction matrix.
ELEMENT_INDEX: dict[str, int] = {symbol: i for i, symbol in enumerate(ELEMNET_ELEMENTS)}

N_ELEMENTS: int = len(ELEMNET_ELEMENTS)
assert N_ELEMENTS == 86
