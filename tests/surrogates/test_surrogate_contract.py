"""Every surrogate honours the contract: learns real data, predict = posterior, PSD covariance, BoTorch seam, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _surrogate_cases import CASES, get_data, get_fitted
from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
from botorch.acquisition.objective import ScalarizedPosteriorTransform

from aloop.surrogates import NotFittedError

ALL = list(CASES)


@pytest.mark.parametrize("case", ALL)
def test_beats_predicting_the_mean_on_held_out_rows(case: str) -> None:
    model, data = get_fitted(case)
    mean, var = model.predict(data.X_test)
    assert mean.shape == var.shape == data.y_test.shape
    assert np.isfinite(mean).all() and (var >= 0).all()
    mae = np.abs(mean - data.y_test).mean(axis=0)
    baseline = np.abs(np.nanmean(data.y_train, axis=0) - data.y_test).mean(axis=0)
    assert (mae < 0.9 * baseline).all(), f"{case}: MAE {mae} vs mean-predictor {baseline}"


@pytest.mark.parametrize("case", ALL)
def test_predict_agrees_with_posterior(case: str) -> None:
    model, data = get_fitted(case)
    X = data.X_test[:40]
    mean, var = model.predict(X, batch_size=7)  # several chunks
    post = model.posterior(torch.as_tensor(X))
    # chunks of 7 and one batch of 40 take different float32 BLAS paths: agree to ~1e-6, not bit for bit
    np.testing.assert_allclose(mean, post.mean.detach().numpy(), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(var, post.variance.detach().numpy(), rtol=1e-5, atol=1e-9)
    batched = model.posterior(torch.as_tensor(X).reshape(10, 4, -1))  # batch_shape × q × d
    assert batched.mean.shape == (10, 4, model.num_outputs)


@pytest.mark.parametrize("case", ALL)
def test_observation_noise_adds_the_learned_noise_variance(case: str) -> None:
    model, data = get_fitted(case)
    noise = model.noise_variance()
    assert noise.shape == (model.num_outputs,) and np.isfinite(noise).all() and (noise >= 0).all()
    latent = model.predict(data.X_test[:10])[1]
    noisy = model.predict(data.X_test[:10], observation_noise=True)[1]
    np.testing.assert_allclose(noisy - latent, np.broadcast_to(noise, latent.shape), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("case", ALL)
def test_posterior_adds_observation_noise_or_refuses_it(case: str) -> None:
    """Never silently the latent variance when the noisy one was asked for."""
    model, data = get_fitted(case)
    X = data.X_test[:6]
    try:
        post = model.posterior(torch.as_tensor(X), observation_noise=True)
    except ValueError as exc:
        assert "observation_noise" in str(exc) and "predict(X, observation_noise=True)" in str(exc)
        return
    noisy = model.predict(X, observation_noise=True)[1]
    np.testing.assert_allclose(post.variance.detach().numpy(), noisy, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("case", ALL)
def test_covariance_is_symmetric_psd_with_predict_variance_on_the_diagonal(case: str) -> None:
    model, data = get_fitted(case)
    X = data.X_test[:12]
    cov = model.covariance(X, X)
    m = model.num_outputs
    assert cov.shape == (m, 12, 12)
    np.testing.assert_allclose(cov, cov.transpose(0, 2, 1), atol=1e-10 * max(1.0, np.abs(cov).max()))
    for c in cov:
        assert np.linalg.eigvalsh(c).min() >= -1e-8 * max(1.0, np.abs(c).max())
    _, var = model.predict(X)
    tol = dict(rtol=1e-5, atol=1e-6 * np.abs(cov).max())  # float32 paths differ with the block shapes
    np.testing.assert_allclose(np.diagonal(cov, axis1=1, axis2=2).T, var, **tol)
    cross = model.covariance(X[:3], X[3:8])
    np.testing.assert_allclose(cross, cov[:, :3, 3:8], **tol)


@pytest.mark.parametrize("case", ALL)
def test_botorch_log_ei_and_q_log_ei_evaluate(case: str) -> None:
    model, data = get_fitted(case)
    m = model.num_outputs
    transform = ScalarizedPosteriorTransform(weights=torch.ones(m, dtype=torch.float64) / m) if m > 1 else None
    best = float(np.nanmax(np.nanmean(data.y_train, axis=1)))
    X = torch.as_tensor(data.X_test[:8])
    ei = LogExpectedImprovement(model, best_f=best, posterior_transform=transform)(X.unsqueeze(1))
    assert ei.shape == (8,) and torch.isfinite(ei).all()
    qei = qLogExpectedImprovement(model, best_f=best, posterior_transform=transform)(X.reshape(4, 2, -1))
    assert qei.shape == (4,) and torch.isfinite(qei).all()


@pytest.mark.parametrize("case", ALL)
def test_bad_inputs_give_clear_errors(case: str) -> None:
    factory, data_name = CASES[case]
    data = get_data(data_name)
    X, y = data.X_train[:20], data.y_train[:20].copy()
    fresh = factory()
    with pytest.raises(NotFittedError, match="not fitted"):
        fresh.predict(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        fresh.posterior(torch.as_tensor(X))
    bad = y.copy()
    bad[3, 0] = np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        factory().fit(X, bad)
    if case != "multitask-gp":  # NaN marks a missing property there
        bad[3, 0] = np.nan
        with pytest.raises(ValueError, match="NaN/inf"):
            factory().fit(X, bad)
    with pytest.raises(ValueError, match="zero observations"):
        factory().fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="one row per row"):
        factory().fit(X, y[:-1])
    model, _ = get_fitted(case)
    with pytest.raises(ValueError, match=f"fitted on {X.shape[1]} features"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match=f"fitted on {X.shape[1]} features"):
        model.posterior(torch.as_tensor(X[:, :-1]))
    bad_X = X.astype(np.float64).copy()
    bad_X[2, 0] = np.nan
    with pytest.raises(ValueError, match="row 2 of X has NaN or infinite"):
        model.predict(bad_X)
    with pytest.raises(ValueError, match="NaN/inf values"):  # BoTorch's path too, not only predict
        model.posterior(torch.as_tensor(bad_X))
    with pytest.raises(TypeError, match="posterior takes a torch tensor"):
        model.posterior(bad_X)
    with pytest.raises(ValueError, match=r"at least 2 dimensions .*use X.unsqueeze\(0\)"):
        model.posterior(torch.as_tensor(X[0]))
    for size in (0, 2.5):
        with pytest.raises(ValueError, match=f"batch_size must be a whole number ≥ 1, got {size}"):
            model.predict(X, batch_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ALL)
def test_zero_rows_give_empty_predictions(case: str) -> None:
    model, data = get_fitted(case)
    mean, var = model.predict(data.X_test[:0])
    assert mean.shape == var.shape == (0, model.num_outputs)
    if hasattr(model, "member_predictions"):
        members = model.member_predictions(data.X_test[:0])
        assert members.shape[1:] == (0, model.num_outputs) and members.shape[0] >= 2


@pytest.mark.parametrize("case", ALL)
def test_scalarized_prediction_of_one_output_is_that_output(case: str) -> None:
    model, data = get_fitted(case)
    X = data.X_test[:15]
    w = np.zeros(model.num_outputs)
    w[-1] = 2.0
    mean, var = model.predict(X)
    s_mean, s_var = model.scalarized_predict(X, w)
    np.testing.assert_allclose(s_mean, 2.0 * mean[:, -1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(s_var, 4.0 * var[:, -1], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(model.scalarized_covariance(X[:4], X[:6], w), 4.0 * model.covariance(X[:4], X[:6])[-1],
                               rtol=1e-5, atol=1e-12)
    with pytest.raises(ValueError, match=f"weights must be {model.num_outputs} finite numbers"):
        model.scalarized_predict(X, np.ones(model.num_outputs + 1))


def test_scalarized_variance_counts_correlated_outputs() -> None:
    """Plates 3496 and 3851 share compositions and chemistry: the multi-task GP learns that, so the
    difference of their overpotentials varies less than the sum of its parts; a two-output forest's
    members carry their own correlation. Both agree with their BoTorch posteriors."""
    from botorch.acquisition.objective import ScalarizedPosteriorTransform

    from aloop.surrogates import TreeEnsembleSurrogate

    mtgp, data = get_fitted("multitask-gp")
    X, w = data.X_test[:8], np.array([1.0, -1.0])
    reference = mtgp.posterior(torch.as_tensor(X).unsqueeze(-2),
                               posterior_transform=ScalarizedPosteriorTransform(torch.as_tensor(w)))
    mean, var = mtgp.scalarized_predict(X, w)
    np.testing.assert_allclose(var, reference.variance.detach().reshape(-1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(mean, reference.mean.detach().reshape(-1).numpy(), rtol=1e-6, atol=1e-9)
    assert (var < 0.9 * (mtgp.predict(X)[1] @ w**2)).all()
    np.testing.assert_allclose(np.diag(mtgp.scalarized_covariance(X, X, w)), var, rtol=1e-5)

    forest = TreeEnsembleSurrogate(n_estimators=60).fit(data.X_test, data.y_test)  # fully measured rows
    values = forest.posterior(torch.as_tensor(X[:5])).values.detach().numpy() @ w  # s × 5
    mean, var = forest.scalarized_predict(X[:5], w)
    np.testing.assert_allclose(var, values.var(axis=0, ddof=1), rtol=1e-6)
    assert not np.allclose(var, forest.predict(X[:5])[1] @ w**2, rtol=0.05)  # the members' correlation counts
    np.testing.assert_allclose(np.diag(forest.scalarized_covariance(X[:5], X[:5], w)), var, rtol=1e-6)


@pytest.mark.parametrize("case", ALL)
def test_a_fitted_surrogate_pickles_and_predicts_the_same(case: str) -> None:
    """What joblib or Ray workers and a saved model do; BoTorch's multi-task kernel holds a lambda pickle refuses."""
    import pickle

    model, data = get_fitted(case)
    copy = pickle.loads(pickle.dumps(model))
    for a, b in zip(model.predict(data.X_test[:20]), copy.predict(data.X_test[:20]), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.noise_variance(), copy.noise_variance())
    fresh = pickle.loads(pickle.dumps(CASES[case][0]()))  # unfitted too
    with pytest.raises(NotFittedError):
        fresh.predict(data.X_test[:2])
