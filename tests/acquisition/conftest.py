"""Fixtures of the acquisition tests (the test surrogates live in acquisition_models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acquisition_models import TorchGP


@pytest.fixture(scope="session")
def fitted_gp() -> tuple[TorchGP, np.ndarray, np.ndarray, np.ndarray]:
    """A SingleTaskGP fitted on 30 points of a 3-d test function, with a 300-row pool."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(30, 3))
    y = np.sin(6 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2] + 0.05 * rng.standard_normal(30)
    pool = rng.uniform(size=(300, 3))
    return TorchGP().fit(X, y), X, y, pool
