"""Tests of design spaces: grid counts and streaming, constraints, charge balance, candidate lists."""

from __future__ import annotations

import doctest
import itertools
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aloop.chem.space
from aloop.chem import (
    ELEMENT_INDEX,
    GridSpace,
    InvalidFormulasError,
    charge_balanced,
    composition_key,
    dedupe,
    exclude_measured,
    filter_chunks,
    formulas_from_matrix,
    keys_from_matrix,
    load_candidates_csv,
    oxidation_state_list,
    to_fraction_matrix,
)
from aloop.datasets import data_dir, load


def _brute_force(space: GridSpace) -> set[tuple[float, ...]]:
    """Every grid point of ``space`` by exhaustive search, as rounded full-composition tuples."""
    n = space.n_units
    points = set()
    for units in itertools.product(range(n + 1), repeat=len(space.elements)):
        present = [u for u in units if u]
        if sum(units) != n or len(present) > space.max_elements:
            continue
        fr = dict(zip(space.elements, (u / n for u in units), strict=True))
        if any(not lo - 1e-9 <= fr[el] <= hi + 1e-9 for el, (lo, hi) in space.bounds.items()):
            continue
        row = np.zeros(86)
        for el, f in fr.items():
            row[ELEMENT_INDEX[el]] = f * space.free_fraction
        for el, f in space.fixed.items():
            row[ELEMENT_INDEX[el]] = f
        points.add(tuple(np.round(row, 5)))
    return points


def _streamed(space: GridSpace, chunk_size: int) -> np.ndarray:
    return np.concatenate(list(space.iter_chunks(chunk_size)))


SMALL_SPACES = [
    GridSpace(["Fe", "Ni", "Co"], step=0.1),
    GridSpace(["Fe", "Ni", "Co", "Mn"], step=0.2, max_elements=2),
    GridSpace(["Fe", "Ni", "Co", "Mn", "Cu"], step=0.25, max_elements=3),
    GridSpace(["Fe", "Ni", "Co", "Mn"], step=0.1, max_elements=3, bounds={"Fe": (0.2, 0.6), "Ni": (0, 0.3)}),
    GridSpace(["Fe", "Ni", "Co"], step=0.05, bounds={"Co": (0.1, 0.1)}),
    GridSpace(["Fe", "Ni", "Co"], step=0.1, fixed={"O": 0.6}),
    GridSpace(["La", "Sr", "Co", "Fe"], step=1 / 3, max_elements=2, fixed={"O": 0.5, "F": 0.1}),
    GridSpace(["Cu"], step=0.5),
]


@pytest.mark.parametrize("space", SMALL_SPACES, ids=repr)
def test_count_and_stream_match_brute_force(space: GridSpace) -> None:
    expected = _brute_force(space)
    assert space.count() == len(expected)
    X = _streamed(space, chunk_size=7)
    assert X.shape == (len(expected), 86) and X.dtype == np.float32
    assert {tuple(np.round(r, 5)) for r in X.astype(np.float64)} == expected
    np.testing.assert_allclose(X.sum(axis=1), 1.0, rtol=1e-6)
    assert len(set(keys_from_matrix(X))) == len(X)  # no duplicates


def test_count_formula_without_bounds() -> None:
    # sum over k of C(E, k) · C(n - 1, k - 1): subsets times compositions into k positive parts
    space = GridSpace(["Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Ti", "Zr", "Fe"], step=0.05, max_elements=4)
    assert space.count() == sum(math.comb(10, k) * math.comb(19, k - 1) for k in range(1, 5))
    assert space.count() == 224_875


def test_chunk_sizes_are_respected() -> None:
    space = GridSpace(["Fe", "Ni", "Co", "Mn", "Cu"], step=0.1, max_elements=3)
    total = space.count()
    for chunk_size in (1, 13, 100, total, total + 5):
        sizes = [len(X) for X in space.iter_chunks(chunk_size)]
        assert sum(sizes) == total
        assert all(s == chunk_size for s in sizes[:-1]) and 0 < sizes[-1] <= chunk_size
    assert sum(len(X) for X in space) == total  # __iter__ uses the default chunk size
    with pytest.raises(ValueError, match="chunk_size"):
        next(space.iter_chunks(0))


def test_large_blocks_are_split_but_complete() -> None:
    # step 0.01 with 4 elements: C(99, 3) = 156,849 compositions per subset, more than one block
    space = GridSpace(["Fe", "Ni", "Co", "Mn"], step=0.01, bounds={"Fe": (0.5, 1.0)})
    total = 0
    for X in space.iter_chunks(50_000):
        assert (X[:, ELEMENT_INDEX["Fe"]] >= 0.5 - 1e-6).all()
        assert (np.unique(X, axis=0).shape[0]) == len(X)
        total += len(X)
    # Fe takes 50 + r units; the other r <= 50 units go to j of the 3 others: sum_j C(3, j) C(50, j)
    assert total == space.count() == sum(math.comb(3, j) * math.comb(50, j) for j in range(4))


def test_max_elements_and_bounds_are_honoured() -> None:
    space = GridSpace(["Fe", "Ni", "Co", "Mn", "Cu"], step=0.1, max_elements=2, bounds={"Ni": (0.3, 0.7)})
    X = _streamed(space, 1000)
    assert ((X > 0).sum(axis=1) <= 2).all()
    ni = X[:, ELEMENT_INDEX["Ni"]]
    assert ((ni >= 0.3 - 1e-6) & (ni <= 0.7 + 1e-6)).all()  # lo > 0 makes Ni required
    # bounds are rounded inward to the grid: (0.25, 0.35) at step 0.1 means exactly 0.3
    narrow = _streamed(GridSpace(["Fe", "Ni"], step=0.1, bounds={"Ni": (0.25, 0.35)}), 10)
    assert formulas_from_matrix(narrow) == ["Fe0.7Ni0.3"]


def test_fixed_anion_content() -> None:
    space = GridSpace(["Fe", "Ni"], step=0.2, fixed={"O": 0.6})
    X = _streamed(space, 100)
    assert (X[:, ELEMENT_INDEX["O"]] == np.float32(0.6)).all()
    np.testing.assert_allclose(X[:, [ELEMENT_INDEX["Fe"], ELEMENT_INDEX["Ni"]]].sum(axis=1), 0.4, rtol=1e-6)
    formulas = space.formulas(X)
    assert formulas[:2] == ["Fe0.4O0.6", "Ni0.4O0.6"]
    assert "Fe0.08Ni0.32O0.6" in formulas
    # the formulas read back to the same matrix
    np.testing.assert_allclose(to_fraction_matrix(formulas)[0], X, atol=1e-6)
    assert formulas_from_matrix(X[:1]) == ["O0.6Fe0.4"]  # default order: atomic number


def test_oer_plate_space_is_the_measured_library() -> None:
    """Rohr et al.'s plate 3496: 6 metals, 10% steps, up to 4 metals, every point measured."""
    space = GridSpace(["Ni", "Fe", "Co", "Mn", "Ce", "La"], step=0.1, max_elements=4)
    assert space.count() == 2121
    data = data_dir() / "campaigns/olympus_oer_plate_3496.csv"
    if not data.is_file():
        pytest.skip(f"{data} not available (set ALOOP_DATA_DIR to the shared data folder)")
    measured = {composition_key(f) for f in load("oer-plate-3496")["formula"]}
    grid = set(keys_from_matrix(_streamed(space, 1000)))
    assert grid == measured
    assert sum(len(exclude_measured(X, measured)) for X in space.iter_chunks(500)) == 0


@pytest.mark.parametrize(
    ("formula", "common", "all_states"),
    [
        ("Fe2O3", True, True),
        ("FeO", True, True),
        ("FeO2", False, True),  # needs Fe4+ (or peroxide O-): only in pymatgen's full list
        ("NaCl", True, True),
        ("NaCl2", False, False),
        ("LiFePO4", True, True),
        ("CuSO4·5H2O", True, True),
        ("Fe", True, True),  # a pure element is neutral
        ("FeNi", False, True),  # the full list has Fe-1 / Ni+1: why "all" is not the default
        ("Fe3O4", False, False),  # one state per element cannot make 8/3
    ],
)
def test_charge_balance_known_cases(formula: str, common: bool, all_states: bool) -> None:
    assert charge_balanced([formula])[0] == common
    assert charge_balanced([formula], oxidation_states="all")[0] == all_states


def test_charge_balance_pymatgen_allows_mixed_valence() -> None:
    formulas = ["Fe3O4", "Mn2O3", "Fe2O3", "NaCl2", "FeO2", "Fe", "FeNi"]
    assert charge_balanced(formulas, method="pymatgen").tolist() == [True, True, True, False, False, True, False]
    assert charge_balanced(formulas).tolist() == [False, False, True, False, False, True, False]
    with pytest.raises(ValueError, match="too many oxidation-state combinations"):
        charge_balanced(["Ti0.99Nb0.01NiSn"], oxidation_states="icsd", method="pymatgen")


def test_fast_balance_implies_pymatgen_balance_on_real_formulas() -> None:
    # Single valence is a special case of mixed valence, so "fast" True must mean pymatgen True.
    formulas = (
        "Fe2O3 Al2O3 TiO2 BaTiO3 Li2O GaN ZnS CdTe SiC Bi2Se3 YBa2Cu3O7 KCl MgAl2O4 CsPbI3 Cu2O CuO V2O5 SnO2 "
        "In2O3 La2CuO4 MoS2 WO3"
    ).split()
    fast = charge_balanced(formulas)
    slow = charge_balanced(formulas, method="pymatgen")
    assert not (fast & ~slow).any()
    assert fast.sum() >= 15


def test_charge_balance_on_grid_streams() -> None:
    space = GridSpace(["Fe", "Ni"], step=0.1, fixed={"O": 0.6})
    kept = list(filter_chunks(space.iter_chunks(5), charge_balanced))
    assert [space.formulas(X) for X in kept] == [["Fe0.4O0.6"]]  # Ni2+ cannot reach the mean +3
    space = GridSpace(["Fe", "Ni", "Co", "Mn", "Ce", "La"], step=0.1, max_elements=4, fixed={"O": 0.6})
    X = _streamed(space, 10_000)
    mask = charge_balanced(X)
    assert mask.shape == (len(X),) and mask.dtype == bool
    assert sum(len(c) for c in filter_chunks(space.iter_chunks(300), charge_balanced)) == mask.sum()
    assert set(space.formulas(X[mask])) >= {"Fe0.4O0.6", "La0.4O0.6", "Fe0.2La0.2O0.6", "Ni0.2Ce0.2O0.6"}


def test_charge_balance_bad_inputs() -> None:
    with pytest.raises(ValueError, match="oxidation_states must be"):
        charge_balanced(["Fe2O3"], oxidation_states="rare")
    with pytest.raises(ValueError, match="method must be"):
        charge_balanced(["Fe2O3"], method="guess")
    with pytest.raises(ValueError, match="n × 86"):
        charge_balanced(np.zeros((3, 10)))
    with pytest.raises(TypeError, match="single string"):
        charge_balanced("Fe2O3")
    with pytest.raises(InvalidFormulasError):
        charge_balanced(["Fe2O3", "Xx"])
    assert not charge_balanced(np.zeros((2, 86), np.float32)).any()  # an empty row is not a compound
    assert oxidation_state_list("Fe") == (2, 3)
    assert oxidation_state_list("Os", "icsd") == oxidation_state_list("Os", "common")  # empty list falls back


def test_million_candidate_grid_streams_in_bounded_memory() -> None:
    elements = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Ba", "Ti", "Zr", "Fe", "Co", "Ni", "Cu", "Zn"]
    space = GridSpace(elements, step=0.05, max_elements=4)
    assert space.count() == 1_033_956
    chunk_size = 50_000
    chunk_bytes = chunk_size * 86 * 4
    tracemalloc.start()
    try:
        start = time.perf_counter()
        total = sum(len(X) for X in space.iter_chunks(chunk_size))
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 1_033_956
    # at most the chunk being filled + the one handed out + small composition tables
    assert peak < 3 * chunk_bytes, f"peak {peak / 1e6:.0f} MB for {chunk_bytes / 1e6:.0f} MB chunks"
    print(f"\n{total:,} candidates streamed in {elapsed:.2f} s ({total / elapsed:,.0f} candidates/s)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"elements": ["Fe", "Xx"]}, "unknown element 'Xx'"),
        ({"elements": ["Fe", "He"]}, "He is outside the 86-element ElemNet vocabulary"),
        ({"elements": []}, "at least one element"),
        ({"elements": ["Fe", "Fe"]}, "duplicates"),
        ({"elements": ["Fe", "Ni"], "step": 0.3}, "does not divide 1"),
        ({"elements": ["Fe", "Ni"], "step": 0}, "step must be in"),
        ({"elements": ["Fe", "Ni"], "step": 1.5}, "step must be in"),
        ({"elements": ["Fe", "Ni"], "max_elements": 0}, "max_elements must be an integer >= 1"),
        ({"elements": ["Fe", "Ni"], "max_elements": 1.5}, "max_elements must be an integer >= 1"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": (0.6, 0.2)}}, "lo 0.6 > hi 0.2"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": 0.5}}, r"bounds for Fe: give \(lo, hi\), .* got 0.5"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": (0.1, 0.2, 0.3)}}, r"bounds for Fe: give \(lo, hi\)"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": (-0.1, 0.2)}}, r"within \[0, 1\]"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Co": (0.1, 0.2)}}, "not one of the grid elements"),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": (0.31, 0.39)}}, "no grid point"),
        (
            {"elements": ["Fe", "Ni", "Co"], "max_elements": 1, "bounds": {"Fe": (0.1, 1), "Ni": (0.1, 1)}},
            "require 2 elements",
        ),
        ({"elements": ["Fe", "Ni"], "bounds": {"Fe": (0.6, 1), "Ni": (0.6, 1)}}, "lower bounds sum"),
        ({"elements": ["Fe", "Ni"], "fixed": {"O": 1.0}}, r"fraction of O must be in \(0, 1\)"),
        ({"elements": ["Fe", "Ni"], "fixed": {"O": 0.6, "F": 0.4}}, "fixed fractions sum to 1"),
        ({"elements": ["Fe", "Ni"], "fixed": {"Fe": 0.5}}, "either fixed or free"),
        ({"elements": ["Fe", "Ni"], "fixed": {"Og": 0.5}}, "unknown element 'Og'|outside the 86-element"),
    ],
)
def test_bad_space_definitions(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GridSpace(**kwargs)


def test_candidates_csv(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    rows = {"formula": ["Fe2O3", "NaN", "Fe4O6", "Xx2", "", "LiFePO4", "He"], "note": list("abcdefg")}
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(InvalidFormulasError) as info:
        load_candidates_csv(path)
    assert [(r.index, r.formula) for r in info.value.rows] == [(3, "Xx2"), (4, ""), (6, "He")]
    # a file's rows as the CLI names them: data rows from 1, file lines counting the header
    message = str(info.value)
    assert f"3 of 7 formulas in {path} are invalid" in message
    assert "row 4 (line 5): 'Xx2': unknown element" in message and "row 7 (line 8): 'He'" in message

    # blank lines, which pandas skips, still count as file lines (the file line was taken as row + 1)
    path.write_text("formula,note\nFe2O3,a\n\n\nXx2,b\n")
    with pytest.raises(InvalidFormulasError, match=r"row 2 \(line 5\): 'Xx2'"):
        load_candidates_csv(path)
    pd.DataFrame(rows).to_csv(path, index=False)

    frame = load_candidates_csv(path, errors="collect")
    assert frame["formula"].tolist() == ["Fe2O3", "NaN", "LiFePO4"]  # "NaN" is sodium nitride, not a float
    assert frame.index.tolist() == [0, 1, 5] and frame["note"].tolist() == ["a", "b", "f"]
    assert frame["key"].tolist() == [composition_key(f) for f in ["Fe2O3", "NaN", "LiFePO4"]]
    assert [b.index for b in frame.attrs["bad_rows"]] == [3, 4, 6]
    assert frame.attrs["duplicate_rows"] == [2]
    assert len(load_candidates_csv(path, errors="collect", drop_duplicates=False)) == 4

    with pytest.raises(ValueError, match=r"no column 'composition'; columns present: \['formula', 'note'\]"):
        load_candidates_csv(path, formula_column="composition")
    with pytest.raises(ValueError, match="errors must be"):
        load_candidates_csv(path, errors="skip")


def test_candidates_csv_header_names_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "candidates.csv"
    path.write_text("formula ,  note\nFe2O3,a\nNaN,b\n")
    frame = load_candidates_csv(path)
    assert list(frame.columns) == ["formula", "note", "key"]
    assert frame["formula"].tolist() == ["Fe2O3", "NaN"] and frame["note"].tolist() == ["a", "b"]
    path.write_text("formula,formula \nFe2O3,NiO\n")
    with pytest.raises(ValueError, match="2 columns are headed 'formula'"):
        load_candidates_csv(path)


def test_dedupe_and_exclude_measured() -> None:
    X, _ = to_fraction_matrix(["Fe2O3", "Fe4O6", "NaCl", "O3Fe2", "Ti0.99Nb0.01NiSn", "NaCl"])
    seen: set[str] = set()
    first = dedupe(X[:3], seen)
    second = dedupe(X[3:], seen)  # across chunks
    assert formulas_from_matrix(first) == ["O0.6Fe0.4", "Na0.5Cl0.5"]
    assert len(second) == 1 and keys_from_matrix(second) == [composition_key("Ti0.99Nb0.01NiSn")]

    measured = {composition_key(f) for f in ["Fe4O6", "Ti0.99Nb0.01NiSn", "Ti1.01Nb0.01NiSn"]}
    rest = exclude_measured(X, measured)
    assert formulas_from_matrix(rest) == ["Na0.5Cl0.5", "Na0.5Cl0.5"]
    assert exclude_measured(X, set()) is X
    assert exclude_measured(X[:0], measured).shape == (0, 86)
    # a trace dopant keeps doped and undoped compositions apart
    doped, _ = to_fraction_matrix(["Ti0.9999Nb0.0001NiSn", "TiNiSn"])
    assert len(exclude_measured(doped, {composition_key("TiNiSn")})) == 1
    # a dopant so dilute its key rounds it to 0 ("Nb0 …") is still excluded by that key
    trace, _ = to_fraction_matrix(["Ti0.99995Nb0.00005NiSn", "TiNiSn"])
    trace_key = composition_key("Ti0.99995Nb0.00005NiSn")
    assert trace_key.startswith("Nb0 ")
    assert keys_from_matrix(exclude_measured(trace, {trace_key})) == [composition_key("TiNiSn")]
    with pytest.raises(ValueError, match="'Qq0.5 O0.5' is not a composition key"):
        exclude_measured(trace, {"Qq0.5 O0.5"})


def test_exclude_measured_keeps_other_proportions_of_a_measured_element_set() -> None:
    """Only the measured composition leaves the pool, not every composition of its elements."""
    X, _ = to_fraction_matrix(["Fe2O3", "Fe3O4", "FeO", "Fe4O6", "NiO"])
    rest = exclude_measured(X, {composition_key("Fe2O3")})
    assert keys_from_matrix(rest) == [composition_key(f) for f in ["Fe3O4", "FeO", "NiO"]]


def test_module_examples() -> None:
    result = doctest.testmod(aloop.chem.space)
    assert result.attempted > 0 and result.failed == 0
