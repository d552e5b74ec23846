"""Parity of MagpieFeaturizer with matminer's ElementProperty.from_preset("magpie")."""

from __future__ import annotations

import numpy as np
import pytest
from matminer.featurizers.composition import ElementProperty
from matminer.utils.data import MagpieData
from pymatgen.core.periodic_table import Element

from aloop.chem import ELEMENT_INDEX, ELEMNET_ELEMENTS, parse_formula, to_composition
from aloop.datasets import DatasetError, load
from aloop.features import MagpieFeaturizer, get_featurizer
from aloop.features.magpie import MAGPIE_STATS, element_table, magpie_data_dir

# float32 output is within 6e-8 relative of the float64 statistics; input fractions rounded to
# float32 add ~1e-7 relative. atol covers matminer's rounding noise around exact zeros.
RTOL = 1e-6
ATOL = 1e-6
SAMPLE_PER_DATASET = 500
DATASETS = ["expt-bandgap", "expt-formation-enthalpy", "matbench-expt-gap", "ucsb-thermoelectrics"]
# Properties with missing values for elements of the 86-element vocabulary (the preset's 22 have none).
PROPERTIES_WITH_GAPS = ("BulkModulus", "VdWRadius", "ShearModulus", "ElectronAffinity", "HHIp")


@pytest.fixture(scope="module")
def matminer_magpie() -> ElementProperty:
    return ElementProperty.from_preset("magpie")


@pytest.fixture(scope="module")
def magpie() -> MagpieFeaturizer:
    return MagpieFeaturizer()


def matminer_features(ep: ElementProperty, formulas: list[str]) -> np.ndarray:
    """Reference features, one pymatgen Composition at a time (``n × d`` float64)."""
    return np.array([ep.featurize(to_composition(f)) for f in formulas], dtype=np.float64)


def fractions64(formulas: list[str]) -> np.ndarray:
    """Exact (float64) ``n × 86`` fractions, for checks that must not see float32 rounding."""
    X = np.zeros((len(formulas), len(ELEMNET_ELEMENTS)))
    for i, f in enumerate(formulas):
        amounts = parse_formula(f)
        total = sum(amounts.values())
        for el, amt in amounts.items():
            X[i, ELEMENT_INDEX[el]] = amt / total
    return X


def test_names_and_order_match_matminer(magpie: MagpieFeaturizer, matminer_magpie: ElementProperty) -> None:
    assert magpie.feature_names == matminer_magpie.feature_labels()
    assert magpie.n_features == 132
    assert magpie.name == "magpie"


@pytest.mark.parametrize("impute_nan", [True, False])
def test_element_table_is_matminers(impute_nan: bool) -> None:
    data = MagpieData(impute_nan=impute_nan)
    props = tuple(sorted(p.stem for p in magpie_data_dir().glob("*.table") if p.stem != "OxidationStates"))
    ours = element_table(props, impute_nan)
    ref = np.array(
        [[data.get_elemental_property(Element(el), p) for p in props] for el in ELEMNET_ELEMENTS], dtype=np.float64
    )
    assert ours.shape == (86, len(props))
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("dataset", DATASETS)
def test_parity_on_experimental_formulas(
    dataset: str, magpie: MagpieFeaturizer, matminer_magpie: ElementProperty
) -> None:
    try:
        frame = load(dataset)
    except DatasetError as exc:
        pytest.skip(f"needs dataset {dataset!r}: {exc}")
    formulas = sorted(set(frame["formula"]))
    rng = np.random.default_rng(20240607)
    sample = [formulas[i] for i in rng.choice(len(formulas), min(SAMPLE_PER_DATASET, len(formulas)), replace=False)]
    ours = magpie.transform(sample)
    assert ours.dtype == np.float32 and ours.shape == (len(sample), 132)
    np.testing.assert_allclose(ours, matminer_features(matminer_magpie, sample), rtol=RTOL, atol=ATOL)


def test_doped_compositions(magpie: MagpieFeaturizer, matminer_magpie: ElementProperty) -> None:
    formulas = ["Ti0.99Nb0.01NiSn", "Ti0.999Nb0.001NiSn", "Si0.9999Ge0.0001", "W1C1e-7", "Bi2Te2.7Se0.3"]
    np.testing.assert_allclose(magpie.transform(formulas), matminer_features(matminer_magpie, formulas), rtol=RTOL, atol=ATOL)


def test_every_single_element(magpie: MagpieFeaturizer, matminer_magpie: ElementProperty) -> None:
    formulas = list(ELEMNET_ELEMENTS)
    ours = magpie.transform(formulas)
    np.testing.assert_allclose(ours, matminer_features(matminer_magpie, formulas), rtol=RTOL, atol=ATOL)
    names = magpie.feature_names
    # One element: min = max = mean = mode = its value, range = avg_dev = 0.
    assert np.all(ours[:, [i for i, n in enumerate(names) if " avg_dev " in n or " range " in n]] == 0)
    np.testing.assert_array_equal(ours[:, names.index("MagpieData mode Number")], magpie.table[:, 0].astype(np.float32))


def test_mode_ties_pick_the_smallest_value(magpie: MagpieFeaturizer, matminer_magpie: ElementProperty) -> None:
    formulas = [
        "NaCl",  # exact tie: Na (11) and Cl (17) → 11
        "ClNa",
        "FeNiCo",
        "Fe2O3",  # no tie: O has the largest fraction → 8
        "Mg0.3333333Al0.3333334Si0.3333333",  # np.isclose counts 1e-7 relative as tied
        "FeO0.999999999",
        "Fe1.000005O1",  # relative difference 5e-6: inside np.isclose's rtol of 1e-5
        "Fe1.0001O1",  # outside: Fe alone is the mode
        "Li2Fe2P2O8",
    ]
    ours = magpie.transform(formulas)
    np.testing.assert_allclose(ours, matminer_features(matminer_magpie, formulas), rtol=RTOL, atol=ATOL)
    mode_z = ours[:, magpie.feature_names.index("MagpieData mode Number")]
    np.testing.assert_array_equal(mode_z[:8], [11, 11, 26, 8, 12, 8, 8, 26])


def test_mode_ties_are_scale_invariant_unlike_matminer(
    magpie: MagpieFeaturizer, matminer_magpie: ElementProperty
) -> None:
    # matminer's np.isclose(atol=1e-8) acts on the amounts as written, so writing the same
    # composition with tiny amounts turns a near-tie into a tie; aloop works on fractions.
    j = magpie.feature_names.index("MagpieData mode Number")
    same = ["Fe1.00005O1", "Fe0.0000100005O0.00001", "Fe100005O100000"]
    np.testing.assert_array_equal(magpie.transform(same)[:, j], [26, 26, 26])
    assert matminer_features(matminer_magpie, same)[:, j].tolist() == [26, 8, 26]


@pytest.mark.parametrize("impute_nan", [True, False])
def test_missing_element_values_match_matminer(impute_nan: bool) -> None:
    ep = ElementProperty("magpie", list(PROPERTIES_WITH_GAPS), list(MAGPIE_STATS), impute_nan=impute_nan)
    feat = MagpieFeaturizer(properties=PROPERTIES_WITH_GAPS, impute_nan=impute_nan)
    assert feat.feature_names == ep.feature_labels()
    # H, N, O, Ti, Fe, U, Pu and Tc each miss at least one of these properties.
    formulas = ["H2O", "Fe3N", "TiFe", "UO2", "PuO2", "Tc", "NaCl", "Ti0.99Nb0.01NiSn", "U0.5Fe0.5", "Cu"]
    ours = feat.transform(formulas)
    ref = matminer_features(ep, formulas)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    assert np.isnan(ref).any() != impute_nan
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)


def test_float64_fractions_agree_tighter(magpie: MagpieFeaturizer, matminer_magpie: ElementProperty) -> None:
    formulas = ["Ti0.99Nb0.01NiSn", "La3ZrSb5", "Si0.0645Ge0.9355", "Cu2ZnSnS4"]
    ours = magpie.transform_fractions(fractions64(formulas))
    np.testing.assert_allclose(ours, matminer_features(matminer_magpie, formulas), rtol=2e-7, atol=1e-9)


def test_chunking_and_row_order_do_not_matter(magpie: MagpieFeaturizer) -> None:
    formulas = ["Fe2O3", "Ti0.99Nb0.01NiSn", "Cu", "LiCoO2", "Bi2Te3", "NaCl", "SiO2"] * 5
    X = fractions64(formulas)
    whole = magpie.transform_fractions(X)
    np.testing.assert_array_equal(MagpieFeaturizer(chunk_size=3).transform_fractions(X), whole)
    perm = np.random.default_rng(0).permutation(len(formulas))
    np.testing.assert_array_equal(magpie.transform_fractions(X[perm]), whole[perm])


def test_unnormalised_rows_are_fractions_of_their_sum(magpie: MagpieFeaturizer) -> None:
    X = fractions64(["Fe2O3"])
    np.testing.assert_allclose(magpie.transform_fractions(5 * X), magpie.transform_fractions(X), rtol=1e-7)


def test_empty_row_gives_nan_and_bad_values_raise(magpie: MagpieFeaturizer) -> None:
    X = fractions64(["Fe2O3", "Cu"])
    X[1] = 0
    Z = magpie.transform_fractions(X)
    assert np.isfinite(Z[0]).all() and np.isnan(Z[1]).all()
    X[1, 0] = -0.5
    with pytest.raises(ValueError, match="negative or non-finite"):
        magpie.transform_fractions(X)
    assert magpie.transform_fractions(np.zeros((0, 86))).shape == (0, 132)


def test_options_and_errors() -> None:
    feat = get_featurizer("magpie", properties=["MeltingT"], stats=["mode", "mean"])
    assert feat.feature_names == ["MagpieData mode MeltingT", "MagpieData mean MeltingT"]
    Z = feat.transform(["NaCl"])
    na, cl = feat.table[ELEMENT_INDEX["Na"], 0], feat.table[ELEMENT_INDEX["Cl"], 0]
    np.testing.assert_allclose(Z[0], [min(na, cl), (na + cl) / 2], rtol=1e-7)
    with pytest.raises(ValueError, match="unknown Magpie property 'Nope'"):
        MagpieFeaturizer(properties=["Nope"])
    with pytest.raises(ValueError, match="holds a list"):
        MagpieFeaturizer(properties=["OxidationStates"])
    with pytest.raises(ValueError, match="at least one property"):
        MagpieFeaturizer(properties=[])
    with pytest.raises(ValueError, match="unknown statistics"):
        MagpieFeaturizer(stats=["std_dev"])
