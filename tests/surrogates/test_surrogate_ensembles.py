"""Ensemble surrogates: EnsembleModel shapes, members for query-by-committee, calibration, ElemNet sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _surrogate_cases import get_fitted
from botorch.posteriors.ensemble import EnsemblePosterior

from aloop.elemnet.model import ElemNet
from aloop.surrogates import (
    DeepKernelGP,
    ElemNetEnsembleSurrogate,
    MLPEnsembleSurrogate,
    TreeEnsembleSurrogate,
    fine_tune_elemnet,
)
from aloop.surrogates.ensemble import fit_variance_calibration


@pytest.mark.parametrize("case", ["random-forest", "extra-trees", "mlp-ensemble", "elemnet-ensemble"])
def test_forward_posterior_and_members_have_ensemble_shapes(case: str) -> None:
    model, data = get_fitted(case)
    X = torch.as_tensor(data.X_test[:12]).reshape(3, 4, -1)
    values = model(X)  # forward: batch × s × q × m
    s = values.shape[1]
    assert values.shape == (3, s, 4, 1)
    post = model.posterior(X)
    assert isinstance(post, EnsemblePosterior) and post.ensemble_size == s
    members = model.member_predictions(data.X_test[:12])
    assert members.shape == (s, 12, 1)
    np.testing.assert_allclose(members.mean(axis=0), model.predict(data.X_test[:12])[0])
    np.testing.assert_allclose(members.var(axis=0, ddof=1), model.predict(data.X_test[:12])[1], rtol=1e-9)


def test_fit_variance_calibration_recovers_a_known_scale_and_noise() -> None:
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.1, 2.0, size=20_000)
    resid = rng.normal(size=20_000) * np.sqrt(3.0 * spread + 0.5)
    a, b = fit_variance_calibration(resid, spread, np.zeros_like(spread), np.ones_like(spread))
    assert a == pytest.approx(3.0, rel=0.1) and b == pytest.approx(0.5, rel=0.15)


def test_tree_calibration_improves_held_out_coverage(tmp_path: object) -> None:
    _, data = get_fitted("random-forest")
    raw = TreeEnsembleSurrogate(n_estimators=60, calibrate=False).fit(data.X_train, data.y_train)
    cal, _ = get_fitted("random-forest")
    assert raw._var_scale.item() == 1.0 and raw._noise_scale.item() == 0.0
    z_raw, z_cal = [], []
    for model, z in ((raw, z_raw), (cal, z_cal)):
        mean, var = model.predict(data.X_test, observation_noise=True)
        z.append(np.abs(mean - data.y_test) / np.sqrt(np.maximum(var, 1e-12)))
    cover_raw = float((z_raw[0] <= 1.96).mean())
    cover_cal = float((z_cal[0] <= 1.96).mean())
    assert abs(cover_cal - 0.95) < abs(cover_raw - 0.95) or abs(cover_cal - 0.95) < 0.04


def test_mlp_with_learned_aleatoric_noise() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(150, 2))
    y = X[:, 0] + 0.2 * X[:, 0] * rng.normal(size=150)  # noise grows with x0
    ens = MLPEnsembleSurrogate(n_members=3, hidden=(16,), aleatoric=True, max_epochs=80, patience=15).fit(X, y)
    grid = np.array([[0.05, 0.5], [0.95, 0.5]])
    latent = ens.predict(grid)[1]
    noisy = ens.predict(grid, observation_noise=True)[1]
    noise = noisy - latent
    assert (noise > 0).all() and noise[1, 0] > noise[0, 0]


def test_elemnet_fine_tuning_leaves_the_source_untouched_and_out_of_the_module_tree() -> None:
    source = ElemNet(hidden_widths=(16, 8)).requires_grad_(False)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    rng = np.random.default_rng(0)
    X = rng.dirichlet(np.ones(86) * 0.2, size=60)
    y = X[:, 0] - X[:, 1]
    ens = ElemNetEnsembleSurrogate(source=source, n_members=2, max_epochs=3).fit(X, y)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())
    n_params = sum(p.numel() for p in ens.parameters())
    assert n_params == 2 * sum(p.numel() for p in source.parameters())  # two members, not the source
    tuned = fine_tune_elemnet(source, X, y, max_epochs=2, seed=1)
    assert tuned.net.output is not source.output and len(tuned.val_rows) == 6
    with pytest.raises(ValueError, match="86"):
        ens.fit(X[:, :10], y)
    with pytest.raises(TypeError, match="ElemNet"):
        fine_tune_elemnet(torch.nn.Linear(86, 1), X, y)


def test_deep_kernel_gp_is_differentiable_in_the_fractions() -> None:
    model, data = get_fitted("deep-kernel-gp")
    X = torch.as_tensor(data.X_test[:5]).requires_grad_(True)
    model.posterior(X).mean.sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    assert isinstance(model, DeepKernelGP) and model.gp_.projection_ is not None


@pytest.mark.parametrize("case", ["elemnet-ensemble", "deep-kernel-gp"])
def test_elemnet_surrogates_read_amounts_as_the_fractions_they_stand_for(case: str) -> None:
    """The featurizers rescale rows of amounts (Fe2O3 as 2, 3); so do the ElemNet surrogates, and they refuse
    negative amounts."""
    model, data = get_fitted(case)
    X = data.X_test[:8]
    for a, b in zip(model.predict(X), model.predict(5.0 * X), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    negative = X.copy()
    negative[0, np.flatnonzero(X[0])[0]] *= -1
    with pytest.raises(ValueError, match="negative or non-finite fractions in 1 rows"):
        model.predict(negative)


def test_replicates_do_not_leak_into_the_held_out_calibration_rows() -> None:
    # Three noisy replicates of 40 real OER compositions: a tree that trained on one replicate has seen the others,
    # so counting it as held out made the calibrated intervals far too narrow (95% coverage 0.67 in grouped CV).
    from aloop.campaigns.modeling import cross_validate
    from aloop.datasets import load
    from aloop.surrogates.ensemble import held_out_compositions

    frame = load("oer-plate-3496").sample(40, random_state=3)
    rng = np.random.default_rng(0)
    X = np.repeat(frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(float), 3, axis=0)
    y = np.repeat(frame["overpotential_V"].to_numpy(float), 3) + rng.normal(0, 0.01, 120)
    cv = cross_validate(lambda: TreeEnsembleSurrogate(n_estimators=100), X, y[:, None],
                        np.repeat(frame["formula"].to_numpy(), 3), ["eta"], progress=False)
    assert cv.metrics["eta"]["coverage_95"] >= 0.85
    held = np.array([[True, True, False, True], [True, True, True, True]])
    np.testing.assert_array_equal(held_out_compositions(X[[0, 1, 2, 3]], held), [[False, False, False, True], held[1]])


def test_a_forest_in_small_units_is_the_same_forest() -> None:
    """scikit-learn stops splitting below a variance of ~2e-16: y·1e-9 gave one-node trees and a constant."""
    from aloop.datasets import load

    frame = load("oer-plate-3851").sample(120, random_state=0)
    X = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(float)
    y = frame["overpotential_V"].to_numpy(float)
    base = TreeEnsembleSurrogate(n_estimators=50, seed=0).fit(X, y)
    for units in (1e-9, 1e6):
        scaled = TreeEnsembleSurrogate(n_estimators=50, seed=0).fit(X, y * units)
        mean, var = scaled.predict(X)
        # the same trees up to ties that rounding in the last bits breaks differently (one node per tree before)
        assert np.abs(mean[:, 0] / units - base.predict(X)[0][:, 0]).max() < 0.1 * y.std()
        assert 0.5 < np.median(var / units**2 / base.predict(X)[1]) < 2


def test_exact_zeros_do_not_calibrate_the_noise_away(band_gap) -> None:
    """Measured band gaps of metals are exactly 0, as are many trees' predictions there: the noise went to 1e-137."""
    X, y = band_gap
    forest = TreeEnsembleSurrogate(seed=0).fit(X, y)
    _, var = forest.predict(X, observation_noise=True)
    assert np.sqrt(var.min()) > 1e-3 * np.sqrt(np.mean((forest.predict(X)[0][:, 0] - y) ** 2))
