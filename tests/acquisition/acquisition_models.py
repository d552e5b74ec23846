"""Test-only surrogates for the acquisition tests: a BoTorch GP wrapper and a lookup table.

A module of its own (not conftest.py), so that test files import it by a name no other test folder uses."""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.posteriors import Posterior
from gpytorch.mlls import ExactMarginalLogLikelihood

from aloop.surrogates.base import Surrogate, check_training_data


class TorchGP(Surrogate):
    """One BoTorch ``SingleTaskGP`` per output; ``predict``/``covariance`` straight from BoTorch posteriors."""

    def __init__(self, standardize: bool = True, fit_hypers: bool = True) -> None:
        super().__init__()
        self.standardize, self.fit_hypers = standardize, fit_hypers
        self.models: list[SingleTaskGP] = []

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        X, y = check_training_data(X, y)
        self.models = []
        for j in range(y.shape[1]):
            kw: dict[str, Any] = {} if self.standardize else {"outcome_transform": None}
            gp = SingleTaskGP(torch.as_tensor(X), torch.as_tensor(y[:, j : j + 1]), **kw)
            if self.fit_hypers:
                fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            else:
                gp.covar_module.lengthscale = 0.3
                gp.likelihood.noise = 1e-2
            gp.eval()
            self.models.append(gp)
        self.n_features, self._num_outputs = X.shape[1], y.shape[1]
        return self

    @property
    def model(self) -> SingleTaskGP | ModelListGP:
        return self.models[0] if len(self.models) == 1 else ModelListGP(*self.models)

    def posterior(self, X: torch.Tensor, output_indices: Any = None, observation_noise: Any = False,
                  posterior_transform: Any = None, **kwargs: Any) -> Posterior:
        return self.model.posterior(X, output_indices=output_indices, observation_noise=observation_noise,
                                    posterior_transform=posterior_transform, **kwargs)

    @torch.no_grad()
    def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_predict_input(X)
        means, variances = [], []
        for gp in self.models:
            post = gp.posterior(torch.as_tensor(X, dtype=torch.float64))
            means.append(post.mean.squeeze(-1).numpy())
            variances.append(post.variance.squeeze(-1).numpy())
        return np.stack(means, axis=1), np.stack(variances, axis=1)

    @torch.no_grad()
    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        X = torch.as_tensor(np.vstack([Xa, Xb]), dtype=torch.float64)
        out = []
        for gp in self.models:
            C = gp.posterior(X).distribution.covariance_matrix
            out.append(C[: len(Xa), len(Xa) :].numpy())
        return np.stack(out)

    def noise_variance(self) -> np.ndarray:
        out = []
        for gp in self.models:
            noise = float(gp.likelihood.noise.item())
            if self.standardize:
                noise *= float(gp.outcome_transform.stdvs.item()) ** 2
            out.append(noise)
        return np.array(out)


class TableSurrogate(Surrogate):
    """Posterior given as a table: feature 0 of a row is its id; mean ``N × m``, covariance ``N × N`` (one output)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray, noise: float = 0.0) -> None:
        super().__init__()
        self.mean_table = np.asarray(mean, dtype=np.float64).reshape(len(mean), -1)
        self.cov_table = np.asarray(cov, dtype=np.float64)
        self.noise = noise
        self.n_features, self._num_outputs = 1, self.mean_table.shape[1]

    @staticmethod
    def pool(n: int) -> np.ndarray:
        return np.arange(n, dtype=np.float64)[:, None]

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        return self

    def noise_variance(self) -> np.ndarray:
        return np.full(self._num_outputs, self.noise)

    def posterior(self, X: torch.Tensor, **kwargs: Any) -> Posterior:
        raise NotImplementedError

    def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        ids = self._check_predict_input(X)[:, 0].astype(int)
        var = np.diag(self.cov_table)[ids]
        return self.mean_table[ids], np.repeat(var[:, None], self._num_outputs, axis=1)

    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        a = self._check_predict_input(Xa)[:, 0].astype(int)
        b = self._check_predict_input(Xb)[:, 0].astype(int)
        return np.repeat(self.cov_table[np.ix_(a, b)][None], self._num_outputs, axis=0)


def random_table(n: int, seed: int, lengthscale: float = 0.15, d: int = 2) -> TableSurrogate:
    """A GP-like table: smooth random means and a squared-exponential posterior covariance."""
    rng = np.random.default_rng(seed)
    Z = rng.uniform(size=(n, d))
    D2 = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    K = np.exp(-0.5 * D2 / lengthscale**2)
    scale = rng.uniform(0.2, 1.0, size=n)
    cov = K * np.outer(scale, scale)
    mean = rng.multivariate_normal(np.zeros(n), K + 1e-8 * np.eye(n))
    return TableSurrogate(mean, cov, noise=1e-3)
