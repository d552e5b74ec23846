"""ElemNet features as scikit-learn parameters: grid searches, clones and fixed layers, on real band gaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from aloop.elemnet.model import ElemNet
from aloop.features.base import FeaturizerTransformer
from aloop.features.elemnet import ElemNetFeatures


def _network() -> ElemNet:
    torch.manual_seed(1)
    return ElemNet(hidden_widths=(32, 16, 16))


def test_grid_search_over_the_layer_uses_each_layer(band_gap) -> None:
    X, y = band_gap
    pipe = make_pipeline(FeaturizerTransformer(ElemNetFeatures(network=_network(), layer=1)), Ridge())
    search = GridSearchCV(pipe, {"featurizertransformer__featurizer__layer": [1, 2, 3]}, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(set(np.round(scores, 12))) == 3  # each layer's features, not layer 1's three times
    best = search.best_estimator_[0]
    assert best.featurizer.layer == search.best_params_["featurizertransformer__featurizer__layer"]
    assert best.transform(X[:2]).shape[1] == (32, 16, 16)[best.featurizer.layer - 1]
    assert list(best.get_feature_names_out()) == best.featurizer.feature_names


def test_set_params_rebuilds_and_attributes_stay_fixed(band_gap) -> None:
    X, _ = band_gap
    net = _network()
    feats = ElemNetFeatures(network=net, layer=1)
    feats.transform_fractions(X[:5])  # fills the cache with layer-1 rows
    assert feats.set_params(layer=3) is feats and feats.layer == 3
    with torch.no_grad():
        assert np.allclose(feats.transform_fractions(X[:5]), net.activations(torch.from_numpy(X[:5]), 3).numpy(), atol=1e-6)
    with pytest.raises(AttributeError, match=r"set_params\(layer=...\)"):
        feats.layer = 2
    with pytest.raises(ValueError, match="layer must be in 1..3"):
        feats.set_params(layer=4)
    assert feats.layer == 3  # a refused value leaves it unchanged
    with pytest.raises(ValueError, match="no option 'depth'"):
        feats.set_params(depth=2)
    copy = clone(feats)
    assert copy.layer == 3 and copy.source == "custom" and np.allclose(copy.transform_fractions(X), feats.transform_fractions(X))
    shipped = clone(ElemNetFeatures(layer=2))
    assert shipped.source == "oqmd-formation-enthalpy" and shipped.get_params()["network"] is None


def test_batch_and_cache_sizes_must_be_whole_numbers() -> None:
    for options in ({"batch_size": 1e3}, {"batch_size": 0}, {"cache_size": -1}, {"cache_size": 10.5}):
        with pytest.raises(ValueError, match="batch_size must be a whole number ≥ 1 and cache_size one ≥ 0"):
            ElemNetFeatures(network=_network(), layer=1, **options)


def test_cached_rows_follow_a_network_trained_or_loaded_in_place(band_gap) -> None:
    X, y = band_gap
    net = _network()
    feats = ElemNetFeatures(network=net, layer=2)
    before = feats.transform_fractions(X[:20])
    assert np.array_equal(feats.transform_fractions(X[:20]), before)  # unchanged weights: served from the cache
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1)  # one training step, in place
    loss = (net(torch.from_numpy(X[:20])).squeeze(1) - torch.from_numpy(y[:20]).float()).pow(2).mean()
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        expected = net.activations(torch.from_numpy(X[:20]), 2).numpy()
    after = feats.transform_fractions(X[:20])
    assert not np.allclose(after, before) and np.allclose(after, expected, atol=1e-6)
    net.load_state_dict(_network().state_dict())  # weights loaded in place
    assert np.allclose(feats.transform_fractions(X[:20]), before, atol=1e-6)


def test_a_pickled_featurizer_leaves_its_cache_behind(band_gap) -> None:
    import pickle

    X, _ = band_gap
    feat = ElemNetFeatures(network=ElemNet(hidden_widths=(64, 32)), layer=1)
    before = feat.transform(X)
    assert len(feat._cache) == len(np.unique(X.round(4), axis=0)) > 100
    again = pickle.loads(pickle.dumps(feat))
    assert again._cache == {} and len(feat._cache) > 100  # the original keeps its own
    np.testing.assert_array_equal(again.transform(X), before)
