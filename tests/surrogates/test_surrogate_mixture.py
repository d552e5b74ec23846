"""GPForestMixture: the moments of the GP/forest mixture, conditioning between refits, warm starts, bad options."""

from __future__ import annotations

import numpy as np
import pytest
from _surrogate_cases import get_data, get_fitted

from aloop.surrogates import GPForestMixture, GPSurrogate, TreeEnsembleSurrogate


def test_mean_and_variance_are_the_moments_of_the_equal_weight_mixture() -> None:
    model, data = get_fitted("gp-forest")
    X = data.X_test[:30]
    (mg, vg), (mf, vf) = model.gp_.predict(X), model.forest_.predict(X)
    mean, var = model.predict(X)
    np.testing.assert_allclose(mean, (mg + mf) / 2)
    np.testing.assert_allclose(var, (vg + vf) / 2 + (mg - mf) ** 2 / 4)
    assert (np.abs(mg - mf) > 0.01).any()  # the parts disagree somewhere on real data, so the spread term matters
    # The parts are the surrogates a campaign would fit on their own: same data, same seed.
    alone = TreeEnsembleSurrogate(n_estimators=60).fit(data.X_train, data.y_train).predict(X)
    np.testing.assert_allclose(mf, alone[0])
    np.testing.assert_allclose(mg, GPSurrogate().fit(data.X_train, data.y_train).predict(X)[0], rtol=1e-6)


def test_covariance_adds_the_outer_product_of_the_parts_disagreement() -> None:
    model, data = get_fitted("gp-forest")
    Xa, Xb = data.X_test[:5], data.X_test[5:9]
    da = model.gp_.predict(Xa)[0] - model.forest_.predict(Xa)[0]
    db = model.gp_.predict(Xb)[0] - model.forest_.predict(Xb)[0]
    parts = (model.gp_.covariance(Xa, Xb) + model.forest_.covariance(Xa, Xb)) / 2
    np.testing.assert_allclose(model.covariance(Xa, Xb), parts + np.outer(da[:, 0], db[:, 0])[None] / 4)


def test_condition_keeps_the_gps_hyperparameters_and_refits_the_forest() -> None:
    data = get_data("oer-raw")
    X, y = data.X_train, data.y_train
    model = GPForestMixture(forest={"n_estimators": 40}, seed=2).fit(X[:60], y[:60])
    grown = model.condition(X[:90], y[:90])
    kernel = [k for k in model.hyperparameters() if k.startswith("covar_module")]  # the rest follow y's scaling
    assert kernel and all(grown.hyperparameters()[k] == model.hyperparameters()[k] for k in kernel)
    np.testing.assert_allclose(grown.gp_.predict(X[90:])[0], model.gp_.condition(X[:90], y[:90]).predict(X[90:])[0])
    forest = TreeEnsembleSurrogate(n_estimators=40, seed=2).fit(X[:90], y[:90])
    np.testing.assert_allclose(grown.forest_.predict(X[90:])[0], forest.predict(X[90:])[0])
    assert model.predict(X[:1])[0] != grown.predict(X[:1])[0]
    # A refit may start from a mixture's hyperparameters (a campaign's warm start) or load recorded ones.
    warm = GPForestMixture(forest={"n_estimators": 40}, seed=2).fit(X[:90], y[:90], warm_start=model)
    loaded = GPForestMixture(forest={"n_estimators": 40}, seed=2).fit(X[:60], y[:60],
                                                                      hyperparameters=model.hyperparameters())
    np.testing.assert_allclose(loaded.predict(X[90:])[0], model.predict(X[90:])[0], rtol=1e-6)
    assert np.isfinite(warm.predict(X[90:])[1]).all()


def test_posterior_with_observation_noise_adds_the_mean_noise_on_the_diagonal() -> None:
    import torch

    model, data = get_fitted("gp-forest")
    X = torch.as_tensor(data.X_test[:4])
    latent, noisy = model.posterior(X), model.posterior(X, observation_noise=True)
    np.testing.assert_allclose((noisy.variance - latent.variance).numpy(), np.broadcast_to(model.noise_variance(), (4, 1)))
    with pytest.raises(TypeError, match="observation_noise is True or False"):
        model.posterior(X, observation_noise=torch.ones(4, 1))


def test_bad_options_and_unfitted_use_are_refused() -> None:
    with pytest.raises(TypeError, match="GPForestMixture gp options: .*max_rows"):
        GPForestMixture(gp={"max_rows": 10})
    with pytest.raises(TypeError, match="GPForestMixture forest options: .*trees"):
        GPForestMixture(forest={"trees": 10})
    with pytest.raises(TypeError, match="forest takes a table of options, got int"):
        GPForestMixture(forest=100)
    with pytest.raises(ValueError, match="kind must be 'random_forest' or 'extra_trees'"):
        GPForestMixture(forest={"kind": "boosted"})
    fresh = GPForestMixture()
    for call in (fresh.hyperparameters, fresh.noise_variance, lambda: fresh.condition(np.ones((3, 2)), np.ones(3))):
        with pytest.raises(RuntimeError, match="not fitted"):
            call()
