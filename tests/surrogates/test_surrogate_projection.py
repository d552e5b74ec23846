"""PCA projection: whitened components, rank handling, torch and numpy paths agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aloop.surrogates import NotFittedError, PCAProjection


def test_whitened_components_have_unit_variance_and_are_uncorrelated() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 40)) @ rng.normal(size=(40, 40))
    Z = PCAProjection(n_components=10).fit(X).transform(X)
    assert Z.shape == (500, 10)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(10), atol=1e-8)


def test_rank_deficient_input_keeps_only_real_components() -> None:
    rng = np.random.default_rng(1)
    X = np.zeros((50, 86))
    X[:, :3] = rng.dirichlet(np.ones(3), size=50)  # rows sum to 1: rank 2 after centring
    proj = PCAProjection(n_components=24).fit(X)
    assert proj.n_components_ == 2 and proj.n_features_in == 86
    assert np.isfinite(proj.transform(X)).all()


def test_torch_path_is_differentiable_and_matches_numpy() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 6))
    proj = PCAProjection(n_components=3, whiten=False).fit(X)
    Xt = torch.as_tensor(X[None], dtype=torch.float64).requires_grad_(True)  # batch × n × d
    Z = proj(Xt)
    Z.sum().backward()
    np.testing.assert_allclose(Z.detach().numpy()[0], proj.transform(X))
    assert Xt.grad is not None and Xt.grad.shape == Xt.shape


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        PCAProjection().transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        PCAProjection().fit(np.ones((1, 3)))
    with pytest.raises(ValueError, match="n_components"):
        PCAProjection(n_components=0)
