"""MultiTaskGPSurrogate: missing entries, borrowing strength across correlated properties, output subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _surrogate_cases import get_fitted

from aloop.surrogates import MultiTaskGPSurrogate


def test_missing_entries_and_output_subsets() -> None:
    model, data = get_fitted("multitask-gp")
    assert np.isnan(data.y_train).any()
    assert model.num_outputs == 2 and model.noise_variance().shape == (2,)
    X = torch.as_tensor(data.X_test[:6])
    full = model.posterior(X)
    second = model.posterior(X, output_indices=[1])
    assert second.mean.shape == (6, 1)
    torch.testing.assert_close(second.mean[:, 0], full.mean[:, 1])
    torch.testing.assert_close(second.variance[:, 0], full.variance[:, 1])


def test_a_sparsely_measured_property_borrows_from_a_correlated_one() -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(50, 2))
    f = np.sin(4 * X[:, 0]) + X[:, 1]
    Y = np.stack([f, 2.0 * f + 1.0], axis=1) + 0.02 * rng.normal(size=(50, 2))
    Y[8:, 1] = np.nan  # property 1 measured on 8 rows only
    model = MultiTaskGPSurrogate().fit(X, Y)
    Xt = rng.uniform(size=(50, 2))
    ft = 2.0 * (np.sin(4 * Xt[:, 0]) + Xt[:, 1]) + 1.0
    mae_mt = np.abs(model.predict(Xt)[0][:, 1] - ft).mean()
    mae_mean = np.abs(np.nanmean(Y[:, 1]) - ft).mean()
    assert mae_mt < 0.3 * mae_mean


def test_errors_for_unmeasured_properties_and_inf() -> None:
    X = np.random.default_rng(0).uniform(size=(5, 2))
    Y = np.ones((5, 2))
    Y[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"\[1\] of y have no measured values"):
        MultiTaskGPSurrogate().fit(X, Y)
    Y[0, 1] = -np.inf
    with pytest.raises(ValueError, match="NaN/inf"):
        MultiTaskGPSurrogate().fit(X, Y)


def test_fits_are_reproducible_and_leave_torchs_random_state_alone() -> None:
    _, data = get_fitted("multitask-gp")
    X, Y = data.X_train[:60], data.y_train[:60]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = MultiTaskGPSurrogate().fit(X, Y).predict(data.X_test[:10])
    assert torch.rand(1) == before
    torch.manual_seed(7)  # another global state: the same model
    b = MultiTaskGPSurrogate().fit(X, Y).predict(data.X_test[:10])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = MultiTaskGPSurrogate(seed=1).fit(X, Y).predict(data.X_test[:10])
    assert np.isfinite(c[1]).all()
