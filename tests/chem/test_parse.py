"""Tests of formula parsing, the ElemNet vocabulary, fraction matrices and canonical keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aloop.chem import (
    ELEMENT_INDEX,
    ELEMNET_ELEMENTS,
    N_ELEMENTS,
    CompositionError,
    InvalidFormulasError,
    check_formulas,
    composition_key,
    fractions,
    keys_from_matrix,
    parse_formula,
    to_composition,
    to_fraction_matrix,
)
from aloop.datasets import data_dir, load


@pytest.mark.parametrize(
    ("formula", "amounts"),
    [
        ("Fe2O3", {"Fe": 2, "O": 3}),
        ("Mn(BW)2", {"Mn": 1, "B": 2, "W": 2}),
        ("La1Pb1Re2", {"La": 1, "Pb": 1, "Re": 2}),
        ("Ti0.99Nb0.01NiSn", {"Ti": 0.99, "Nb": 0.01, "Ni": 1, "Sn": 1}),
        ("CuSO4·5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("CuSO4*5H2O", {"Cu": 1, "S": 1, "O": 9, "H": 10}),
        ("Fe 2 O 3", {"Fe": 2, "O": 3}),
        ("D2O", {"H": 2, "O": 1}),
        ("O3Fe2", {"Fe": 2, "O": 3}),
    ],
)
def test_good_formulas(formula: str, amounts: dict[str, float]) -> None:
    assert parse_formula(formula) == pytest.approx(amounts)
    total = sum(amounts.values())
    assert fractions(formula) == pytest.approx({el: a / total for el, a in amounts.items()})
    assert to_composition(formula).almost_equals(to_composition(" ".join(f"{e}{a}" for e, a in amounts.items())))


@pytest.mark.parametrize(
    ("formula", "reason"),
    [
        ("", "empty formula"),
        ("   ", "empty formula"),
        ("Xx2", "unknown element 'Xx'"),
        ("He2", "He is outside the 86-element ElemNet vocabulary"),
        ("Am", "Am is outside the 86-element ElemNet vocabulary"),
        ("Fe-1O", "negative amount"),
        ("Fe0O", "zero amount for Fe"),
        ("FeO0.0", "zero amount for O"),
        ("Fe2O3)", "unparsable"),
        ("fe2o3", "unparsable"),
        ("2-Feb", "unparsable"),
        ("CuSO4·", "empty part after an adduct separator"),
        # a hydrate written with a period reads as O4.5 H2 O: refused, with the way to write it
        ("CuSO4.5H2O", "the period in '4.5H2O' would be read as a decimal point; write a hydrate as CuSO4·5H2O"),
        ("Na2CO3.10H2O", "write a hydrate as Na2CO3·10H2O"),
        ("Cu(SO4).5H2O", "write a hydrate as Cu(SO4)·5H2O"),
        ("CuCl2.2NH3", "the period in '2.2NH3' would be read as a decimal point; write an ammine as CuCl2·2NH3"),
        (3, "expected text, got int"),
        (None, "missing formula (an empty cell)"),
        (float("nan"), "missing formula (an empty cell)"),
        ("Fe1e308O1e308", "the amounts are too large: their sum overflows"),  # was a silent all-zero row
        ("Fe1E-3O", "unknown element 'E'; scientific notation needs a lowercase e"),  # was "negative amount"
        # pymatgen drops amounts ≤ 1e-8; the fast path for plain formulas now does the same, and both say so
        ("Fe1e-9O", "zero amount for Fe (amounts of at most 1e-08 count as zero)"),
        ("Fe0.000000001O", "zero amount for Fe (amounts of at most 1e-08 count as zero)"),
        ("Fe2+", "a charge is not part of a composition"),
        ("SO4^2-", "a charge is not part of a composition"),
    ],
)
def test_bad_formulas_name_the_reason(formula: object, reason: str) -> None:
    with pytest.raises(CompositionError) as info:
        parse_formula(formula)
    assert reason in info.value.reason
    assert info.value.formula == formula or formula != formula  # nan != nan
    assert isinstance(info.value, ValueError)  # callers may catch ValueError


def test_a_decimal_amount_before_water_is_still_a_decimal() -> None:
    assert parse_formula("Fe0.5H2O") == pytest.approx({"Fe": 0.5, "H": 2.0, "O": 1.0})
    assert parse_formula("Ti0.99Nb0.01NiSn") == pytest.approx({"Ti": 0.99, "Nb": 0.01, "Ni": 1.0, "Sn": 1.0})
    assert parse_formula("Fe1e-3O") == pytest.approx({"Fe": 0.001, "O": 1.0})


@pytest.mark.parametrize(("formula", "amounts"), [
    ("CaSO4·1.5H2O", {"Ca": 1, "S": 1, "O": 5.5, "H": 3}),  # was refused with the hint "CaSO4·1·5H2O"
    ("CuSO4*5.5H2O", {"Cu": 1, "S": 1, "O": 9.5, "H": 11}),
    ("CaSO4·0.5H2O", {"Ca": 1, "S": 1, "O": 4.5, "H": 1}),
])
def test_a_decimal_count_of_an_adduct_is_read_as_written(formula: str, amounts: dict[str, float]) -> None:
    assert parse_formula(formula) == pytest.approx(amounts)


@pytest.mark.parametrize("formula", ["Bi1.2S1.2Ti2S4", "W0.9O2.7Co0.2O0.3", "Ti0.99Nb0.01NiSn", "Fe2.5O3.5"])
def test_decimal_formulas_that_repeat_an_element_on_purpose_are_not_warned_about(formula: str) -> None:
    """Real rows of citrine's and UCSB's data: with other decimal amounts, the period is a decimal point."""
    import warnings

    from aloop.chem.parse import clear_parse_cache

    clear_parse_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_formula(formula)


@pytest.mark.parametrize(("formula", "amounts", "advice"), [
    ("Al2O3.2SiO2", {"Al": 2, "O": 5.2, "Si": 1}, "write Al2O3·2SiO2"),
    ("Na2SO4.2NaCl", {"Na": 3, "S": 1, "O": 4.2, "Cl": 1}, "write Na2SO4·2NaCl"),
    ("CaTiO3.2CaO", {"Ca": 2, "Ti": 1, "O": 4.2}, "write CaTiO3·2CaO"),
])
def test_a_period_that_may_separate_an_adduct_is_warned_about(formula: str, amounts: dict, advice: str) -> None:
    from aloop.chem.parse import clear_parse_cache

    clear_parse_cache()  # the warning comes with the first parse of a formula
    with pytest.warns(UserWarning, match=f"formula '{formula}': read with .* as a decimal number.*{advice}"):
        assert parse_formula(formula) == pytest.approx(amounts)


def test_batch_reports_every_bad_row_at_once() -> None:
    formulas = ["Fe2O3", "", "NaCl", "Xx2", "He", "Fe0O", None]
    with pytest.raises(InvalidFormulasError) as info:
        to_fraction_matrix(formulas, errors="raise")
    rows = info.value.rows
    assert [r.index for r in rows] == [1, 3, 4, 5, 6]
    assert [r.formula for r in rows] == ["", "Xx2", "He", "Fe0O", None]
    message = str(info.value)
    assert "5 of 7 formulas are invalid" in message
    # positions in the list given, 0-based, named as such (not "row 3", read as the third)
    assert "index 3: 'Xx2': unknown element" in message and "index 1: ''" in message
    assert "row " not in message

    X, bad = to_fraction_matrix(formulas, errors="collect")
    assert [b.index for b in bad] == [1, 3, 4, 5, 6]
    assert X.shape == (7, N_ELEMENTS)
    assert not X[[1, 3, 4, 5, 6]].any()  # bad rows left as zeros
    assert X[0, ELEMENT_INDEX["Fe"]] == pytest.approx(0.4)
    assert check_formulas(formulas) == bad
    with pytest.raises(ValueError, match="errors must be"):
        to_fraction_matrix(formulas, errors="ignore")


def test_batch_error_message_is_bounded_for_many_bad_rows() -> None:
    with pytest.raises(InvalidFormulasError) as info:
        to_fraction_matrix(["Xx"] * 50)
    assert len(info.value.rows) == 50
    assert "and 30 more" in str(info.value)


def test_fraction_matrix_rows_sum_to_one() -> None:
    formulas = ["Fe2O3", "Mn(BW)2", "Ti0.99Nb0.01NiSn", "CuSO4·5H2O", "Pu", "H2O"]
    X, bad = to_fraction_matrix(formulas)
    assert bad == []
    assert X.dtype == np.float32 and X.shape == (len(formulas), 86)
    np.testing.assert_allclose(X.sum(axis=1), 1.0, rtol=1e-6)
    assert (X >= 0).all()
    assert X[4, ELEMENT_INDEX["Pu"]] == 1.0
    assert to_fraction_matrix([])[0].shape == (0, 86)


def test_vocabulary() -> None:
    assert N_ELEMENTS == len(ELEMNET_ELEMENTS) == 86
    assert ELEMNET_ELEMENTS[0] == "H" and ELEMNET_ELEMENTS[-1] == "Pu"
    for excluded in ("He", "Ne", "Ar", "Po", "At", "Rn", "Fr", "Ra"):
        assert excluded not in ELEMENT_INDEX
    assert list(ELEMENT_INDEX) == list(ELEMNET_ELEMENTS)
    assert [ELEMENT_INDEX[e] for e in ELEMNET_ELEMENTS] == list(range(86))


def test_canonical_keys() -> None:
    assert composition_key("Fe2O3") == composition_key("Fe4O6") == composition_key("O3Fe2") == "Fe0.4 O0.6"
    assert composition_key("Fe2O3") != composition_key("Fe3O4")
    assert composition_key("D2O") == composition_key("H2O")
    formulas = ["Fe2O3", "Mn(BW)2", "Ti0.99Nb0.01NiSn", "CuSO4·5H2O", "La1Pb1Re2", "Pu"]
    X, _ = to_fraction_matrix(formulas)
    assert keys_from_matrix(X) == [composition_key(f) for f in formulas]
    assert keys_from_matrix(X, decimals=2) == [composition_key(f, decimals=2) for f in formulas]


def test_text_and_matrix_keys_agree_where_float32_rounding_decides_the_last_digit() -> None:
    """A formula's key and its fraction-matrix row's key must be one key, or a measured composition is proposed again.

    1/160 is 0.00625 in float64 but 0.0062500000931 in float32: rounded as float64 it gives Be0.0062, as float32
    (what the matrix holds) Be0.0063.
    """
    formulas = ["Be1O159", "Be7O153", "Be17O143"]
    X, _ = to_fraction_matrix(formulas)
    assert composition_key("Be1O159") == "Be0.0063 O0.9937"
    assert [composition_key(f) for f in formulas] == keys_from_matrix(X)


# --- property-based -------------------------------------------------------------------------------

_amounts = st.dictionaries(
    st.sampled_from(ELEMNET_ELEMENTS),
    st.one_of(st.integers(1, 50).map(float), st.floats(0.01, 100, allow_nan=False).map(lambda x: round(x, 3))),
    min_size=1,
    max_size=6,
).filter(lambda d: all(v > 0 for v in d.values()))


@settings(max_examples=300, deadline=None)
@given(_amounts)
def test_formula_text_round_trips(amounts: dict[str, float]) -> None:
    text = "".join(f"{el}{amt:g}" for el, amt in amounts.items())
    total = sum(amounts.values())
    assert parse_formula(text) == pytest.approx(amounts)
    assert fractions(text) == pytest.approx({el: a / total for el, a in amounts.items()})
    X, _ = to_fraction_matrix([text])
    expected = np.zeros(86)
    for el, a in amounts.items():
        expected[ELEMENT_INDEX[el]] = a / total
    np.testing.assert_allclose(X[0], expected, atol=1e-6)


_FORMULA_PIECES = [*"()[]{}0123456789.·*-+ e,/\t", "Fe", "O", "H", "D", "He", "Am", "Xx", "nan", "inf", "1e999"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=20), st.lists(st.sampled_from(_FORMULA_PIECES), max_size=12).map("".join)))
def test_random_text_raises_only_composition_error(text: str) -> None:
    try:
        amounts = parse_formula(text)
    except CompositionError as exc:
        assert exc.reason
        return
    assert amounts and all(np.isfinite(a) and a > 0 for a in amounts.values())
    assert set(amounts) <= set(ELEMENT_INDEX)


# --- real datasets --------------------------------------------------------------------------------

_DATA = data_dir()


@pytest.mark.skipif(not (_DATA / "jarvis").is_dir(), reason="ALOOP_DATA_DIR does not hold the shared data")
@pytest.mark.parametrize(
    ("name", "expected_bad"),
    [
        ("expt-bandgap", {}),
        ("expt-formation-enthalpy", {}),
        ("matbench-expt-gap", {}),
        ("ucsb-thermoelectrics", {}),
        ("jarvis-slme", {}),
        ("jarvis-mbj-bandgap", {"2-Feb": "unparsable"}),  # Excel turned a formula into a date
        ("jarvis-meps", {"2-Feb": "unparsable", "3-Feb": "unparsable"}),
    ],
)
def test_real_datasets_parse_except_genuinely_bad_rows(name: str, expected_bad: dict[str, str]) -> None:
    formulas = load(name)["formula"].tolist()
    bad = check_formulas(formulas)
    assert {b.formula: b.reason.split(" ")[0] for b in bad} == expected_bad
    X, collected = to_fraction_matrix(formulas, errors="collect")
    good = np.setdiff1d(np.arange(len(formulas)), [b.index for b in collected])
    np.testing.assert_allclose(X[good].sum(axis=1), 1.0, rtol=1e-5)
