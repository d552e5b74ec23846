"""Multi-task GP surrogate for correlated properties measured on the same compositions, with missing entries."""

from __future__ import annotations

from typing import Any, Self

import gpytorch
import numpy as np
import torch
from botorch.acquisition.objective import PosteriorTransform, ScalarizedPosteriorTransform
from botorch.fit import fit_gpytorch_mll
from botorch.models import MultiTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.posteriors import Posterior
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from aloop.surrogates.base import NotFittedError, Surrogate, check_posterior_input, check_training_data
from aloop.surrogates.gp import MAX_CHOLESKY_SIZE
from aloop.surrogates.gp_model import min_stdv
from aloop.surrogates.projection import PCAProjection


class MultiTaskGPSurrogate(Surrogate):
    """ICM multi-task GP (BoTorch ``MultiTaskGP``): one Matérn-5/2 ARD kernel on features × a task covariance.

    ``y`` is ``n × m`` with ``NaN`` marking properties not measured on a row (each
    property needs at least one value); the model is fitted on the observed
    ``(row, property)`` pairs only, so a property measured on few rows borrows strength
    from correlated ones. Outcomes are standardised per property
    (``StratifiedStandardize``), each property has its own learned noise, the feature
    kernel uses BoTorch's dimension-scaled lengthscale prior, and the task correlations a
    ``BetaPrior`` that favours positive correlation (BoTorch's default). ``predict`` calls
    the posterior chunk by chunk (GPyTorch caches the training solves after the first call).

    Args:
        projection, n_components: optional PCA of wide features, as in ``GPSurrogate``.
        rank: rank of the task covariance (None: full rank).
        seed: seeds the random initial task covariance, so a fit is reproducible (torch's
            global random state is left as it was).

    Example:
        >>> X = np.random.default_rng(0).uniform(size=(30, 2))
        >>> Y = np.stack([X.sum(1), X.sum(1) ** 2], 1); Y[::3, 1] = np.nan
        >>> MultiTaskGPSurrogate().fit(X, Y).predict(X[:4])[0].shape
        (4, 2)
    """

    def __init__(self, projection: str | None = "auto", n_components: int = 24, rank: int | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        if projection not in ("auto", "pca", None):
            raise ValueError(f"projection must be 'auto', 'pca' or None, got {projection!r}")
        self.projection, self.n_components, self.rank, self.seed = projection, n_components, rank, seed
        self.projection_: PCAProjection | None = None
        self.gp: MultiTaskGP | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on ``n × d`` features and ``n × m`` targets (NaN = not measured)."""
        y = np.asarray(y, dtype=np.float64)
        missing = np.isnan(y)
        X, y = check_training_data(X, np.where(missing, 0.0, y))  # still rejects inf
        missing = missing.reshape(y.shape)
        empty = np.flatnonzero(missing.all(axis=0)).tolist()
        if empty:
            raise ValueError(f"properties (columns) {empty} of y have no measured values")
        d, m = X.shape[1], y.shape[1]
        self.projection_ = None
        if (self.projection == "pca" or (self.projection == "auto" and d > self.n_components)) and len(X) >= 2:
            self.projection_ = PCAProjection(self.n_components).fit(X)
        Z = self._features(torch.as_tensor(X))
        k = Z.shape[-1]
        rows, tasks = np.nonzero(~missing)
        train_X = torch.cat([Z[rows], torch.as_tensor(tasks, dtype=torch.float64).unsqueeze(-1)], dim=-1)
        # Per-property standardisation done here (BoTorch's StratifiedStandardize cannot untransform
        # the all-properties posterior), undone by a Standardize(m) on that posterior.
        y_obs = np.where(missing, np.nan, y)
        y_mean = np.nanmean(y_obs, axis=0)
        y_std = np.nan_to_num(np.nanstd(y_obs, axis=0, ddof=1), nan=1.0)
        y_std = np.array([sd if sd >= min_stdv(y_obs[:, j]) else 1.0 for j, sd in enumerate(y_std)])
        train_Y = torch.as_tensor(((y - y_mean) / y_std)[rows, tasks]).unsqueeze(-1)
        self.outcome_tf = Standardize(m=m)
        self.outcome_tf.load_state_dict({
            "means": torch.as_tensor(y_mean).reshape(1, m),
            "stdvs": torch.as_tensor(y_std).reshape(1, m),
            "_stdvs_sq": torch.as_tensor(y_std**2).reshape(1, m),
            "_is_trained": torch.tensor(True),
        })
        self.outcome_tf.eval()
        lo, hi = Z.min(dim=0).values, Z.max(dim=0).values
        hi = torch.where(hi - lo < 1e-8, lo + 1.0, hi)
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self._gp_data = (train_X, train_Y, k, m, lo, hi)
            self.gp = self._make_gp(*self._gp_data)
            with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
                fit_gpytorch_mll(ExactMarginalLogLikelihood(self.gp.likelihood, self.gp))
            self.gp.eval()
        self.n_features, self._num_outputs = d, m
        return self

    def __getstate__(self) -> dict:
        # BoTorch's task kernel holds a lambda, which pickle refuses: keep the GP's data and fitted parameters.
        state = self.__dict__.copy()
        modules = dict(state["_modules"])
        gp = modules.pop("gp", None)
        state["_modules"], state["_gp_parameters"] = modules, None if gp is None else gp.state_dict()
        return state

    def __setstate__(self, state: dict) -> None:
        parameters = state.pop("_gp_parameters", None)
        self.__dict__.update(state)
        if parameters is not None:
            self.gp = self._make_gp(*self._gp_data)
            self.gp.load_state_dict(parameters)
            self.gp.eval()

    def _make_gp(self, train_X: Tensor, train_Y: Tensor, k: int, m: int, lo: Tensor, hi: Tensor) -> MultiTaskGP:
        """The (unfitted) ``MultiTaskGP`` on ``(row features, task)`` pairs."""
        return MultiTaskGP(
            train_X,
            train_Y,
            task_feature=k,
            covar_module=get_covar_module_with_dim_scaled_prior(
                ard_num_dims=k, active_dims=list(range(k)), use_rbf_kernel=False
            ),
            rank=self.rank,
            all_tasks=list(range(m)),
            input_transform=Normalize(d=k + 1, indices=list(range(k)), bounds=torch.stack([lo, hi])),
            outcome_transform=None,
        )

    def _features(self, X: Tensor) -> Tensor:
        X = X.to(torch.float64)
        return X if self.projection_ is None else self.projection_(X)

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        posterior_transform: PosteriorTransform | None = None,
        **kwargs: Any,
    ) -> Posterior:
        """Posterior over ``batch_shape × q × m`` (all properties) at ``X`` (``batch_shape × q × d``)."""
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        check_posterior_input(self, X, self.n_features)
        tf = self.outcome_tf if output_indices is None else self.outcome_tf.subset_output(output_indices)
        with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
            post = tf.untransform_posterior(self.gp.posterior(self._features(X), output_indices=output_indices, **kwargs))
        # MultiTaskGP refuses posterior transforms; applied here to the untransformed posterior instead.
        return post if posterior_transform is None else posterior_transform(post)

    @torch.no_grad()
    def predict(
        self, X: np.ndarray, batch_size: int = 5_000, observation_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``N × d`` → ``(mean, var)``, each ``N × m`` (latent variance unless ``observation_noise``)."""
        X = self._check_predict_input(X, batch_size)
        if len(X) == 0:
            return self._empty_prediction()
        means, variances = [], []
        mu, sd = self.outcome_tf.means[0], self.outcome_tf.stdvs[0]
        for start in range(0, len(X), batch_size):
            # Moments in standardised units, then scaled: gpytorch floors variances at 1e-10 in whatever units
            # it is given, which would swamp a property measured in tiny units (1e-9 S/cm).
            with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
                post = self.gp.posterior(self._features(self._as_tensor(X[start : start + batch_size])))
            post_mean, var = post.mean * sd + mu, post.variance * sd**2
            if observation_noise:
                var = var + torch.as_tensor(self.noise_variance())
            means.append(post_mean)
            variances.append(var)
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent posterior covariance ``m × na × nb`` between the points, per property."""
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        Z = self._features(self._as_tensor(np.vstack([Xa, Xb])))
        out = []
        for t in range(self.num_outputs):
            Zt = torch.cat([Z, torch.full((len(Z), 1), float(t), dtype=torch.float64)], dim=-1)
            with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
                cov = self.gp.posterior(Zt).distribution.covariance_matrix
            out.append(cov[: len(Xa), len(Xa) :] * self.outcome_tf.stdvs[0, t] ** 2)
        return torch.stack(out).numpy()

    @torch.no_grad()
    def scalarized_predict(self, X: np.ndarray, weights: np.ndarray,
                           batch_size: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent variance (``N`` each) of ``wᵀf`` from the joint posterior over the
        properties at each row, so their learned correlation counts."""
        transform = ScalarizedPosteriorTransform(torch.as_tensor(self._check_weights(weights)))
        X = self._check_predict_input(X)
        means, variances = [np.zeros(0)], [np.zeros(0)]
        for start in range(0, len(X), batch_size):  # one point per batch: N × 1 × m joint posteriors
            post = self.posterior(self._as_tensor(X[start : start + batch_size]).unsqueeze(-2),
                                  posterior_transform=transform)
            means.append(post.mean.reshape(-1).numpy())
            variances.append(post.variance.reshape(-1).numpy())
        return np.concatenate(means), np.concatenate(variances)

    @torch.no_grad()
    def scalarized_covariance(self, Xa: np.ndarray, Xb: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Latent covariance ``na × nb`` of ``wᵀf`` from the joint posterior over points and properties."""
        transform = ScalarizedPosteriorTransform(torch.as_tensor(self._check_weights(weights)))
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        post = self.posterior(self._as_tensor(np.vstack([Xa, Xb])), posterior_transform=transform)
        return post.distribution.covariance_matrix[: len(Xa), len(Xa) :].numpy()

    def noise_variance(self) -> np.ndarray:
        """Learned noise variance per property (``m``), in units of ``y`` squared."""
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        noise = self.gp.likelihood.noise.detach().reshape(-1)
        return (noise * self.outcome_tf.stdvs.reshape(-1) ** 2).numpy()
