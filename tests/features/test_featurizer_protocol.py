"""The featurizer protocol: input validation, formula vs fraction-matrix input, the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aloop.chem import ELEMENT_INDEX, ELEMNET_ELEMENTS, InvalidFormulasError, check_formulas, to_fraction_matrix
from aloop.features import FEATURIZERS, ElementFractions, Featurizer, MagpieFeaturizer, get_featurizer

FORMULAS = ["Fe2O3", "Ti0.99Nb0.01NiSn", "Cu", "LiCoO2", "Bi2Te2.7Se0.3", "NaCl"]
BUILT_IN = ["ef", "magpie"]


def test_element_fractions_output() -> None:
    ef = ElementFractions()
    assert ef.name == "ef"
    assert ef.n_features == 86
    assert ef.feature_names == [f"frac_{el}" for el in ELEMNET_ELEMENTS]
    Z = ef.transform(["Fe2O3", "Cu"])
    assert Z.shape == (2, 86) and Z.dtype == np.float32
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, rtol=1e-6)
    assert Z[0, ELEMENT_INDEX["Fe"]] == pytest.approx(0.4) and Z[0, ELEMENT_INDEX["O"]] == pytest.approx(0.6)
    assert Z[1, ELEMENT_INDEX["Cu"]] == 1.0 and np.count_nonzero(Z) == 3


@pytest.mark.parametrize("name", BUILT_IN)
def test_formulas_and_fraction_matrix_give_identical_features(name: str) -> None:
    feat = get_featurizer(name)
    X, bad = to_fraction_matrix(FORMULAS)
    assert not bad
    from_text = feat.transform(FORMULAS)
    assert from_text.shape == (len(FORMULAS), feat.n_features) and from_text.dtype == np.float32
    np.testing.assert_array_equal(from_text, feat.transform(X))
    np.testing.assert_array_equal(from_text, feat.transform(X.astype(np.float64)))
    # Any sequence of formulas, not only lists.
    np.testing.assert_array_equal(from_text, feat.transform(tuple(FORMULAS)))
    np.testing.assert_array_equal(from_text, feat.transform(np.array(FORMULAS)))
    # The matrix as a torch tensor or a DataFrame of 86 numeric columns is a matrix, not formulas.
    import torch

    np.testing.assert_array_equal(from_text, feat.transform(torch.as_tensor(X)))
    np.testing.assert_array_equal(from_text, feat.transform(pd.DataFrame(X)))
    # Columns named by element are read by name, in any order (a matminer-style or alphabetical table).
    from aloop.chem import ELEMNET_ELEMENTS

    named = pd.DataFrame(X, columns=ELEMNET_ELEMENTS)
    np.testing.assert_array_equal(from_text, feat.transform(named[sorted(ELEMNET_ELEMENTS)]))
    with pytest.raises(ValueError, match="columns named by element symbol .* got columns such as 'x0', 'x1'"):
        feat.transform(pd.DataFrame(X, columns=[f"x{i}" for i in range(86)]))


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("width", [85, 87, 118])
def test_wrong_fraction_matrix_width_raises(name: str, width: int) -> None:
    with pytest.raises(ValueError, match=rf"86 columns, got {width}"):
        get_featurizer(name).transform(np.zeros((3, width), dtype=np.float32))


@pytest.mark.parametrize("name", BUILT_IN)
def test_single_string_raises_type_error(name: str) -> None:
    with pytest.raises(TypeError, match="one string"):
        get_featurizer(name).transform("Fe2O3")


@pytest.mark.parametrize("name", BUILT_IN)
def test_a_table_or_a_vector_is_not_a_list_of_formulas(name: str) -> None:
    feat = get_featurizer(name)
    table = pd.DataFrame({"HO": ["Fe2O3", "NaCl"]})  # iterating a DataFrame gives its column names
    with pytest.raises(TypeError, match=r"got a table \(columns HO\); pass its formula column"):
        feat.transform(table)
    assert feat.transform(table["HO"]).shape == (2, feat.n_features)
    assert feat.transform(f for f in ["Fe2O3", "NaCl"]).shape == (2, feat.n_features)  # a generator is fine
    with pytest.raises(ValueError, match="1-D array of numbers is not a list of formulas"):
        feat.transform(np.ones(86) / 86)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_bad_formula_is_reported(name: str) -> None:
    formulas = ["Fe2O3", "Xx2O", "", "NaCl", "Fe-1O", "He", "Cu"]
    with pytest.raises(InvalidFormulasError) as info:
        get_featurizer(name).transform(formulas)
    assert [row.index for row in info.value.rows] == [1, 2, 4, 5]
    assert [row.formula for row in info.value.rows] == ["Xx2O", "", "Fe-1O", "He"]
    message = str(info.value)
    assert "4 of 7 formulas are invalid" in message
    for i in (1, 2, 4, 5):
        assert f"index {i}:" in message


def test_registry() -> None:
    assert {"ef", "magpie"} <= set(FEATURIZERS)
    assert isinstance(get_featurizer("ef"), ElementFractions)
    magpie = get_featurizer("magpie", stats=["mean"])
    assert isinstance(magpie, MagpieFeaturizer) and magpie.n_features == 22
    for name, factory in FEATURIZERS.items():
        if name in BUILT_IN:
            feat = factory()
            assert isinstance(feat, Featurizer) and feat.name == name


def test_unknown_featurizer_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown featurizer 'magpy'") as info:
        get_featurizer("magpy")
    for known in BUILT_IN:
        assert repr(known) in str(info.value)


@pytest.mark.parametrize("name", ["ef", "magpie", "elemnet"])
def test_fraction_rows_are_checked_and_amounts_rescaled_alike(name: str) -> None:
    feat = get_featurizer(name)
    X, _ = to_fraction_matrix(["Fe2O3", "NaCl"])
    np.testing.assert_allclose(feat.transform(3 * X), feat.transform(X), rtol=1e-6, atol=1e-7)  # amounts, not fractions
    for bad in (np.nan, -0.2, np.inf):
        Y = X.copy()
        Y[1, 0] = bad
        with pytest.raises(ValueError, match=r"negative or non-finite fractions in 1 rows, e.g. rows \[1\]"):
            feat.transform(Y)


def test_one_string_is_not_a_sequence_of_formulas() -> None:
    with pytest.raises(TypeError, match="one string 'CNO'"):
        to_fraction_matrix("CNO")
    with pytest.raises(TypeError, match="check_formulas expects a sequence of formulas, got one string 'Fe2O3'"):
        check_formulas("Fe2O3")


def test_string_and_type_mistakes_in_featurizer_options() -> None:
    from aloop.chem import GridSpace

    with pytest.raises(TypeError, match="stats must be a list of names, got one string 'mean'"):
        get_featurizer("magpie", stats="mean")
    with pytest.raises(TypeError, match="elements must be a list of symbols"):
        GridSpace("Ni,Fe", step=0.5)
    with pytest.raises(TypeError, match="layer must be a whole number 1..16, got 2.5"):
        get_featurizer("elemnet", layer=2.5)
    with pytest.raises(TypeError, match="network must be an ElemNet"):
        get_featurizer("elemnet", network="oqmd-bandgap")
    assert get_featurizer("elemnet", layer=np.int64(3)).layer == 3


def test_transformer_takes_formulas_or_fractions_and_names_its_columns() -> None:
    """A Pipeline can start from formulas (a list, a Series, a one-column frame) as from fractions."""
    from aloop.features.base import FeaturizerTransformer

    step = FeaturizerTransformer(MagpieFeaturizer(stats=["mean"]))
    X, _ = to_fraction_matrix(FORMULAS)
    expected = step.fit_transform(X)
    assert expected.shape == (len(FORMULAS), len(step.get_feature_names_out()))
    assert list(step.get_feature_names_out()) == step.featurizer.feature_names
    frame = pd.DataFrame({"formula": FORMULAS, "gap": np.arange(len(FORMULAS))})
    for formulas in (FORMULAS, np.array(FORMULAS), frame["formula"], frame[["formula"]], np.array(FORMULAS)[:, None]):
        np.testing.assert_array_equal(step.transform(formulas), expected)
    with pytest.raises(ValueError, match=r"index 1: 'Xx2': unknown element"):
        step.transform(["Fe2O3", "Xx2"])
    # an empty first cell is a missing formula, not a sign that the column holds numbers
    with pytest.raises(ValueError, match=r"index 0: nan: missing formula \(an empty cell\)"):
        step.transform(pd.Series([np.nan, "Fe2O3"]))
    with pytest.raises(ValueError, match=r"got 'Fe2O3' in it; .*to_fraction_matrix\(formulas\)"):
        step.transform(frame)  # two columns: neither formulas alone nor a fraction matrix
    with pytest.raises(ValueError, match="no option 'layer'"):
        step.set_params(featurizer__layer=2)
    with pytest.raises(TypeError, match=r"needs a Featurizer, e.g. get_featurizer\('magpie'\), got 'magpie'"):
        FeaturizerTransformer("magpie").transform(X)  # type: ignore[arg-type]
