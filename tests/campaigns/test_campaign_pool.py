"""The candidate pool: its feature cache is only reused for the same candidates and featurizer; outside-pool checks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from aloop.campaigns import CampaignWarning, Measurement, parse_config
from aloop.campaigns.pool import load_pool, warn_outside_candidates
from aloop.chem import charge_balanced, composition_key
from aloop.features import get_featurizer


def _grid(tmp_path: Path, **space: object):  # type: ignore[no-untyped-def]
    data = {"name": "fe-o", "search_space": {"elements": ["Fe", "O"], "step": 0.1, **space},
            "objectives": [{"name": "gap", "units": "eV", "direction": "maximize"}]}
    return parse_config(data, path=tmp_path / "fe-o.toml")


def test_turning_on_charge_balance_rebuilds_the_cached_pool(tmp_path: Path) -> None:
    ef = get_featurizer("ef")
    everything = load_pool(_grid(tmp_path), ef, "ef")
    balanced = load_pool(_grid(tmp_path, charge_balanced=True), ef, "ef")
    assert len(balanced) < len(everything) == 11
    assert charge_balanced(balanced.fractions).all()
    assert composition_key("Fe2O3") in set(balanced.keys) and composition_key("FeO9") not in set(balanced.keys)


def test_another_featurizer_never_gets_the_cached_features_of_the_first(tmp_path: Path) -> None:
    config = _grid(tmp_path)
    assert load_pool(config, get_featurizer("ef"), "ef").features.shape == (11, 86)
    magpie = load_pool(config, get_featurizer("magpie"), "magpie-test")
    assert magpie.features.shape == (11, 132) and magpie.featurizer == "magpie-test"
    np.testing.assert_array_equal(magpie.features, get_featurizer("magpie").transform_fractions(magpie.fractions))


def test_the_first_candidate_is_inside_the_search_space(tmp_path: Path) -> None:
    pool = load_pool(_grid(tmp_path), get_featurizer("ef"), "ef")
    inside = Measurement({"gap": 1.0}, {"gap": "eV"}, formula=str(pool.formulas[0]), key=str(pool.keys[0]))
    outside = Measurement({"gap": 1.0}, {"gap": "eV"}, formula="NiO", key=composition_key("NiO"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CampaignWarning)
        warn_outside_candidates(lambda: pool, [inside])
    with pytest.warns(CampaignWarning, match=r"1 recorded composition\(s\) are not in the campaign's search space "
                                             r"\(NiO\)"):
        warn_outside_candidates(lambda: pool, [inside, outside])
