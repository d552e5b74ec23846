"""GPSurrogate specifics: replicates, several outputs, subset fitting, projection, noise, original units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aloop.surrogates import GPSurrogate
from aloop.surrogates.base import NotFittedError, SmallTargetWarning, check_training_data


def _toy(n: int, d: int = 3, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d))
    return X, np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + noise * rng.normal(size=n)


def _assert_agrees(gp: GPSurrogate, X: np.ndarray, **kw: bool) -> None:
    mean, var = gp.predict(X, batch_size=13, **kw)
    post = gp.posterior(torch.as_tensor(X), **kw)
    np.testing.assert_allclose(mean, post.mean.detach().numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(var, post.variance.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_replicate_rows_learn_the_noise() -> None:
    X, y = _toy(30, noise=0.0)
    rng = np.random.default_rng(1)
    X_rep = np.repeat(X, 3, axis=0)
    y_rep = np.repeat(y, 3) + 0.1 * rng.normal(size=90)
    gp = GPSurrogate().fit(X_rep, y_rep)
    assert 0.1**2 / 3 < gp.noise_variance()[0] < 0.1**2 * 3
    _assert_agrees(gp, X[:10])
    _assert_agrees(gp, X[:10], observation_noise=True)
    latent = gp.predict(X[:10])[1]
    noisy = gp.predict(X[:10], observation_noise=True)[1]
    np.testing.assert_allclose(noisy - latent, np.full_like(latent, gp.noise_variance()[0]))


def test_several_outputs_are_independent_gps_in_original_units() -> None:
    X, y = _toy(60)
    Y = np.stack([y, 1000.0 * y + 5000.0], axis=1)  # very different units
    gp = GPSurrogate().fit(X, Y)
    assert gp.num_outputs == 2
    mean, var = gp.predict(X)
    assert mean.shape == var.shape == (60, 2)
    assert np.abs(mean[:, 1] - Y[:, 1]).mean() < 0.1 * Y[:, 1].std()
    np.testing.assert_allclose(var[:, 1] / var[:, 0], 1e6, rtol=0.3)
    _assert_agrees(gp, X[:20] + 0.01)
    assert gp.covariance(X[:4], X[:5]).shape == (2, 4, 5)


def test_hyperparameters_on_a_subset_then_exact_conditioning_on_all_rows() -> None:
    X, y = _toy(150)
    gp = GPSurrogate(max_fit_rows=60).fit(X, y)
    assert gp.gp.train_inputs[0].shape[-2] == 150
    _assert_agrees(gp, _toy(25, seed=3)[0])
    mean, _ = gp.predict(X)
    assert np.abs(mean[:, 0] - y).mean() < 0.1


def test_a_subset_fit_keeps_its_noise_and_mean_in_y_units_when_conditioned_on_all_rows() -> None:
    """Hyperparameters fitted on 60 of 150 rows, re-expressed for the standardisation of all 150: the noise variance
    and the prior mean (what the GP predicts far from every row) are those of the fit on the 60, in y's units."""
    X, y = _toy(150, noise=0.2)
    y = 10.0 * y + 3.0
    full = GPSurrogate(projection=None, max_fit_rows=60, input_bounds="pool").fit(X, y, X_pool=X)
    rows = torch.randperm(150, generator=torch.Generator().manual_seed(0))[:60].numpy()
    subset = GPSurrogate(projection=None, max_fit_rows=None, input_bounds="pool").fit(X[rows], y[rows], X_pool=X)
    assert y[rows].std() != pytest.approx(y.std(), rel=1e-3)  # the two standardisations differ
    np.testing.assert_allclose(full.noise_variance(), subset.noise_variance(), rtol=1e-6)
    far = np.full((1, 3), 1e4)
    np.testing.assert_allclose(full.predict(far)[0], subset.predict(far)[0], rtol=1e-6)


@pytest.mark.parametrize("max_fit_rows", [None, 60])
def test_saved_hyperparameters_rebuild_the_same_model(max_fit_rows: int | None) -> None:
    X, y = _toy(150)
    gp = GPSurrogate(max_fit_rows=max_fit_rows).fit(X, y)
    again = GPSurrogate(max_fit_rows=max_fit_rows).fit(X, y, hyperparameters=gp.hyperparameters())
    np.testing.assert_allclose(again.noise_variance(), gp.noise_variance(), rtol=1e-12)
    Xq = _toy(40, seed=5)[0]
    for a, b in zip(again.predict(Xq), gp.predict(Xq)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="hyperparameters must give"):
        GPSurrogate().fit(X, y, hyperparameters={"noise": [0.1]})


def test_condition_keeps_hyperparameters_and_learns_from_new_rows() -> None:
    X, y = _toy(120)
    small = GPSurrogate().fit(X[:40], y[:40])
    grown = small.condition(X, y)
    assert grown.gp.train_inputs[0].shape[-2] == 120 and small.gp.train_inputs[0].shape[-2] == 40
    torch.testing.assert_close(grown.gp.covar_module.lengthscale, small.gp.covar_module.lengthscale)
    _assert_agrees(grown, _toy(25, seed=3)[0])
    X_test, y_test = _toy(400, seed=5)
    err = [np.abs(m.predict(X_test)[0][:, 0] - y_test).mean() for m in (small, grown)]
    assert err[1] < err[0]
    Y2 = np.c_[y, -y]
    two = GPSurrogate().fit(X[:40], Y2[:40]).condition(X, Y2)
    assert two.num_outputs == 2 and two.predict(X_test)[0].shape == (400, 2)
    with pytest.raises(ValueError, match="fitted on 3 features"):
        small.condition(X[:, :2], y)
    with pytest.raises(ValueError, match="fitted on 1 outputs"):
        small.condition(X, Y2)
    with pytest.raises(NotFittedError):
        GPSurrogate().condition(X, y)


def test_condition_keeps_the_fitted_signal_and_noise_variance_in_y_units() -> None:
    """Adding a campaign's best rows shrinks the sample spread; re-standardising on it shrank the model's
    signal variance too, so the conditioned posterior was no longer the fitted model's."""
    X, y = _toy(80)
    fitted = GPSurrogate().fit(X[:40], y[:40])
    best = np.argsort(y)[-40:]
    grown = fitted.condition(np.r_[X[:40], X[best]], np.r_[y[:40], y[best]])
    far = np.full((1, X.shape[1]), 50.0)  # beyond every kernel's reach: the prior variance, in y's units
    np.testing.assert_allclose(grown.predict(far)[1], fitted.predict(far)[1], rtol=1e-6)
    np.testing.assert_allclose(grown.noise_variance(), fitted.noise_variance(), rtol=1e-9)
    again = fitted.condition(X[:40], y[:40])  # conditioning on the fit's own rows gives the fit back
    for a, b in zip(again.predict(X[40:]), fitted.predict(X[40:]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_pca_projection_uses_the_pool_and_handles_wide_inputs() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 300))
    y = X[:, :5].sum(axis=1)
    pool = rng.normal(size=(400, 300))
    gp = GPSurrogate(projection="pca", n_components=16).fit(X, y, X_pool=pool)
    assert gp.projection_.n_components_ == 16
    np.testing.assert_allclose(gp.projection_.mean_.numpy(), np.vstack([X, pool]).mean(axis=0))
    _assert_agrees(gp, pool[:30])
    assert GPSurrogate(projection=None).fit(X[:, :4], y).projection_ is None
    assert GPSurrogate(projection="auto", n_components=24).fit(X[:, :20], y).projection_ is None
    with pytest.raises(ValueError, match="X_pool"):
        GPSurrogate().fit(X, y, X_pool=pool[:, :10])


def test_auto_keeps_the_few_varying_columns_of_wide_sparse_inputs() -> None:
    """86-wide elemental fractions of a 4-metal system: the 4 fraction columns, not a PCA rotation of them."""
    rng = np.random.default_rng(1)
    F = rng.dirichlet(np.ones(4), size=60)
    X = np.zeros((60, 86))
    X[:, [27, 25, 24, 26]] = F  # Ni, Co, Fe, Mn-like columns
    y = np.sin(4 * F[:, 0]) + F[:, 1]
    gp = GPSurrogate().fit(X, y)
    assert gp.projection_.columns_.tolist() == [24, 25, 26, 27]
    assert gp.gp.covar_module.lengthscale.shape[-1] == 4
    _assert_agrees(gp, X[:7])
    np.testing.assert_allclose(gp.condition(X, y).predict(X[:5])[0], gp.predict(X[:5])[0], rtol=1e-4)
    wide = rng.normal(size=(60, 86))
    assert gp.__class__().fit(wide, y).projection_.n_components_ == 24  # many varying columns: PCA


def test_chunking_does_not_change_the_answer() -> None:
    X, y = _toy(50)
    gp = GPSurrogate().fit(X, y)
    Xc = _toy(1000, seed=5)[0]
    a = gp.predict(Xc, batch_size=1000)
    b = gp.predict(Xc, batch_size=37)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-12)  # BLAS blocking may differ by ulps
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-12)


def test_single_observation_and_constant_targets() -> None:
    gp = GPSurrogate().fit(np.array([[0.2, 0.4]]), np.array([1.5]))
    mean, var = gp.predict(np.array([[0.2, 0.4], [5.0, 5.0]]))
    assert np.isfinite(mean).all() and np.isfinite(var).all()
    X, _ = _toy(10)
    with pytest.warns(SmallTargetWarning, match=r"y is 3 in all 10 rows: nothing sets its scale"):
        gp = GPSurrogate().fit(X, np.full(10, 3.0))
    np.testing.assert_allclose(gp.predict(X)[0], 3.0, atol=1e-6)
    with pytest.warns(SmallTargetWarning, match=r"column 1 of y is -2 in all 10 rows"):
        check_training_data(X, np.column_stack([np.arange(10.0), np.full(10, -2.0)]))


def test_replicates_of_one_composition_are_refused_with_a_reason() -> None:
    X = np.zeros((4, 86))
    X[:, [27, 25]] = 0.5  # Ni0.5Fe0.5, measured four times
    y = np.array([0.41, 0.43, 0.40, 0.42])
    with pytest.raises(ValueError, match="same features"):
        GPSurrogate().fit(X, y)
    pool = np.random.default_rng(0).dirichlet(np.ones(86), size=20)
    mean, _ = GPSurrogate().fit(X, y, X_pool=pool).predict(X[:1])  # a varied pool gives the projection its axes
    assert abs(mean[0, 0] - y.mean()) < 0.02


def test_bad_projection_argument() -> None:
    with pytest.raises(ValueError, match="projection"):
        GPSurrogate(projection="umap")  # type: ignore[arg-type]


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_bad_max_fit_rows(rows: object) -> None:
    with pytest.raises(ValueError, match="max_fit_rows must be a whole number >= 1"):
        GPSurrogate(max_fit_rows=rows)  # type: ignore[arg-type]


def test_targets_beyond_float64_reach_are_refused() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 2))
    with pytest.raises(ValueError, match=r"y has values up to 1e\+155, beyond ±1e\+100"):
        GPSurrogate().fit(X, np.r_[np.ones(11), 1e155])


def test_gamma_lengthscale_prior_shares_the_mode_but_not_the_tail() -> None:
    from gpytorch.priors import GammaPrior

    from aloop.surrogates.gp import _matern_kernel

    k = 6
    mode = np.exp(np.sqrt(2) - 3) * np.sqrt(k)
    ls = torch.tensor([0.9 * mode, mode, 1.1 * mode, 10 * mode], dtype=torch.float64)
    logp = {}
    for kind in ("lognormal", "gamma"):
        prior = _matern_kernel(k, 1, kind).lengthscale_prior  # type: ignore[arg-type]
        logp[kind] = prior.log_prob(ls)
        assert logp[kind][1] > logp[kind][0] and logp[kind][1] > logp[kind][2]  # both peak at the same mode
    assert isinstance(_matern_kernel(k, 1, "gamma").lengthscale_prior, GammaPrior)
    # Ten times the mode: the Gamma penalises it far more (relative to its mode) than the LogNormal.
    drop = {kind: (v[1] - v[3]).item() for kind, v in logp.items()}
    assert drop["gamma"] > drop["lognormal"] + 5


def test_gamma_prior_fits_conditions_and_warm_starts() -> None:
    X, y = _toy(80)
    gp = GPSurrogate(lengthscale_prior="gamma").fit(X[:50], y[:50])
    grown = gp.condition(X, y)
    assert grown.lengthscale_prior == "gamma"
    torch.testing.assert_close(grown.gp.covar_module.lengthscale, gp.gp.covar_module.lengthscale)
    again = GPSurrogate(lengthscale_prior="gamma").fit(X, y, warm_start=gp)
    X_test, y_test = _toy(300, seed=7)
    assert np.abs(again.predict(X_test)[0][:, 0] - y_test).mean() < 0.15
    # A warm start from a model with the other prior only seeds the lengthscales.
    GPSurrogate().fit(X, y, warm_start=gp)


def test_bad_lengthscale_prior_argument() -> None:
    with pytest.raises(ValueError, match="lengthscale_prior"):
        GPSurrogate(lengthscale_prior="cauchy")  # type: ignore[arg-type]
    for sd in (0, -0.1, 10, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match=r"lengthscale_sd must be a number in \(0, 10\)"):
            GPSurrogate(lengthscale_sd=sd)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="it does not go with 'gamma'"):
        GPSurrogate(lengthscale_prior="gamma", lengthscale_sd=0.2)


def test_a_tight_lengthscale_prior_keeps_the_mode_and_holds_few_rows_to_it() -> None:
    from aloop.surrogates.gp import _matern_kernel

    k = 2
    mode = np.exp(np.sqrt(2) - 3) * np.sqrt(k)
    ls = torch.tensor([0.8 * mode, mode, 1.25 * mode], dtype=torch.float64)
    logp = _matern_kernel(k, 1, "lognormal", 0.15).lengthscale_prior.log_prob(ls)
    assert logp[1] > logp[0] and logp[1] > logp[2]  # the same mode as BoTorch's √3 prior
    X, y = _toy(80)
    free = GPSurrogate().fit(X[:8], y[:8])
    held = GPSurrogate(lengthscale_sd=0.15).fit(X[:8], y[:8])
    spread = {name: np.abs(np.log(gp.gp.covar_module.lengthscale.detach().numpy() / mode)).max()
              for name, gp in (("free", free), ("held", held))}
    assert spread["held"] < 0.3 < spread["free"]  # eight rows: free lengthscales wander, held ones stay near the mode
    grown = held.condition(X, y)
    assert grown.lengthscale_sd == 0.15
    torch.testing.assert_close(grown.gp.covar_module.lengthscale, held.gp.covar_module.lengthscale)
    X_test, y_test = _toy(300, seed=7)
    assert np.abs(GPSurrogate(lengthscale_sd=0.15).fit(X, y).predict(X_test)[0][:, 0] - y_test).mean() < 0.15


def test_pool_input_bounds_cover_the_pool_and_change_only_the_box() -> None:
    X, y = _toy(40)
    rng = np.random.default_rng(1)
    pool = rng.uniform(-1.0, 2.0, size=(300, 3))
    boxed = GPSurrogate(input_bounds="pool").fit(X, y, X_pool=pool)
    lo, hi = boxed._bounds
    np.testing.assert_allclose(lo.numpy(), np.minimum(X.min(0), pool.min(0)))
    np.testing.assert_allclose(hi.numpy(), np.maximum(X.max(0), pool.max(0)))
    train_box = GPSurrogate().fit(X, y, X_pool=pool)
    np.testing.assert_allclose(train_box._bounds[0].numpy(), X.min(0))
    assert GPSurrogate(input_bounds="pool").fit(X, y)._bounds.shape == (2, 3)  # no pool: the training rows
    grown = boxed.condition(np.vstack([X, pool[:5]]), np.r_[y, np.zeros(5)])
    torch.testing.assert_close(grown._bounds, boxed._bounds)
    _assert_agrees(boxed, pool[:20])
    with pytest.raises(ValueError, match="X_pool must have 3 columns"):
        GPSurrogate(input_bounds="pool").fit(X, y, X_pool=pool[:, :2])
    with pytest.raises(ValueError, match="input_bounds"):
        GPSurrogate(input_bounds="space")  # type: ignore[arg-type]


def test_a_target_in_tiny_units_is_modelled_as_in_large_ones_and_warned_about(band_gap) -> None:
    """A gap in units 2**30 times larger (about GeV): the same predictions and uncertainty relative to the unit
    (BoTorch's fixed 1e-8 outcome-standardisation floor put unit-scale uncertainty on it), and a warning about
    posteriors. A power of two scales exactly, so the hyperparameter optimiser takes the very same path."""
    from aloop.surrogates import MultiTaskGPSurrogate, SmallTargetWarning

    X, y = band_gap
    Y = np.c_[y, np.sqrt(y)]
    SCALE = 2.0**-30
    ev = GPSurrogate().fit(X[:80], y[:80]).predict(X[80:100])
    ev2 = MultiTaskGPSurrogate().fit(X[:80], Y[:80]).predict(X[80:100])
    with pytest.warns(SmallTargetWarning, match=r"y varies by only .* give y in smaller units"):
        gev = GPSurrogate().fit(X[:80], y[:80] * SCALE).predict(X[80:100])
    with pytest.warns(SmallTargetWarning):
        gev2 = MultiTaskGPSurrogate().fit(X[:80], Y[:80] * SCALE).predict(X[80:100])
    for big, small in ((ev, gev), (ev2, gev2)):
        np.testing.assert_allclose(small[0] / SCALE, big[0], rtol=1e-6)
        np.testing.assert_allclose(np.sqrt(small[1]) / SCALE, np.sqrt(big[1]), rtol=1e-6)


def test_rows_that_differ_in_dropped_columns_are_warned_about_and_x_pool_is_checked() -> None:
    """The default projection keeps the columns that varied (here 2 of 30, as elemental fractions of a
    2-metal library would): a row new in a third cannot be told apart, so predict says so; a NaN in X_pool
    is refused instead of silently dropping its column."""
    from aloop.surrogates.gp import UnseenFeatureWarning

    X, y = _toy(20, d=30)
    X[:, 2:] = 0.0
    gp = GPSurrogate().fit(X, y)
    assert gp.projection_.columns_.tolist() == [0, 1]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenFeatureWarning)
        gp.predict(X[:5])
    new = X[:5].copy()
    new[1:3, 2] = 0.5
    with pytest.warns(UnseenFeatureWarning, match=r"2 of 5 rows vary in features that were constant .*columns \[2\]"):
        gp.predict(new)
    covered = GPSurrogate().fit(X, y, X_pool=new)  # the pool covers them: the column is kept
    assert covered.projection_.columns_.tolist() == [0, 1, 2]
    pool = new.copy()
    pool[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"X_pool has NaN/inf features \(rows \[3\]\)"):
        GPSurrogate().fit(X, y, X_pool=pool)


def test_a_column_constant_on_the_fitting_rows_maps_to_its_offset_not_to_a_blown_up_ratio() -> None:
    """A feature that never varied in training (one dopant level) barely moves predictions when it differs a little."""
    X, y = _toy(40, d=2)
    X = np.c_[X, np.full(40, 0.5)]
    gp = GPSurrogate(projection=None).fit(X, y)
    shifted = X[:5].copy()
    shifted[:, 2] = 0.51
    np.testing.assert_allclose(gp.predict(shifted)[0], gp.predict(X[:5])[0], atol=0.05)
    _assert_agrees(gp, shifted)


def test_the_per_chunk_solve_of_a_large_training_set_gives_the_explicit_inverse_s_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beyond EXPLICIT_INVERSE_MAX_N observations predict solves against L per chunk; both paths are the posterior."""
    from aloop.surrogates import gp as gp_module

    X, y = _toy(40)
    Xc = _toy(30, seed=4)[0]
    explicit = GPSurrogate().fit(X, y)
    monkeypatch.setattr(gp_module, "EXPLICIT_INVERSE_MAX_N", 10)
    solved = GPSurrogate().fit(X, y, hyperparameters=explicit.hyperparameters())
    assert solved._Linv is None and explicit._Linv is not None
    for a, b in zip(solved.predict(Xc), explicit.predict(Xc), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(solved.covariance(Xc[:4], Xc[:6]), explicit.covariance(Xc[:4], Xc[:6]), atol=1e-10)
    _assert_agrees(solved, Xc)
