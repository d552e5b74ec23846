"""Compositions: formula parsing, the ElemNet vocabulary, fraction matrices, design spaces."""

from aloop.chem.candidates import dedupe, exclude_measured, filter_chunks, load_candidates_csv
from aloop.chem.charge import charge_balanced, oxidation_state_list
from aloop.chem.elements import ELEMENT_INDEX, ELEMNET_ELEMENTS, N_ELEMENTS
from aloop.chem.parse import (
    BadRow,
    CompositionError,
    InvalidFormulasError,
    check_formula_batch,
    check_formulas,
    composition_key,
    fractions,
    keys_from_matrix,
    parse_formula,
    to_composition,
    to_fraction_matrix,
)
from aloop.chem.space import GridSpace, formulas_from_matrix

__all__ = [
    "ELEMENT_INDEX",
    "ELEMNET_ELEMENTS",
    "N_ELEMENTS",
    "BadRow",
    "CompositionError",
    "InvalidFormulasError",
    "check_formula_batch",
    "check_formulas",
    "composition_key",
    "fractions",
    "keys_from_matrix",
    "parse_formula",
    "to_composition",
    "to_fraction_matrix",
    "GridSpace",
    "charge_balanced",
    "dedupe",
    "exclude_measured",
    "filter_chunks",
    "formulas_from_matrix",
    "load_candidates_csv",
    "oxidation_state_list",
]
