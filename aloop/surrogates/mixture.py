"""A GP and a random forest averaged into one surrogate: the two posteriors as an equal-weight mixture.

Replaying the OER plates, the GP was the better surrogate on one plate and the forest on the
other (BENCHMARKS.md, "Random forests instead of the GP"); neither can be known to be the better
one before a campaign starts. The mixture keeps both: at every point the posterior is the
equal-weight mixture of the GP's and the forest's Gaussians, matched by its first two moments,

    mean = (μ_gp + μ_rf) / 2,    Cov = (Σ_gp + Σ_rf) / 2 + (μ_gp − μ_rf)(μ_gp − μ_rf)ᵀ / 4,

so where the two models disagree the disagreement adds to the uncertainty (and UCB explores there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
import torch
from botorch.acquisition.objective import PosteriorTransform
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
from torch import Tensor

from aloop.surrogates.base import NotFittedError, Surrogate, check_posterior_input, check_training_data
from aloop.surrogates.gp import GPSurrogate
from aloop.surrogates.trees import TreeEnsembleSurrogate


class GPForestMixture(Surrogate):
    """A ``GPSurrogate`` and a ``TreeEnsembleSurrogate`` fitted on the same data, their posteriors mixed 50/50.

    Args:
        gp: options of the ``GPSurrogate`` (e.g. ``{"max_fit_rows": 2000}``).
        forest: options of the ``TreeEnsembleSurrogate`` (e.g. ``{"n_estimators": 100}``).
        seed: seed of both parts unless their options name one.

    ``fit`` takes the GP's ``X_pool``, ``warm_start`` (a previous mixture or GP) and
    ``hyperparameters``; ``condition`` keeps the GP's hyperparameters and refits the forest
    (a few hundred milliseconds), so a campaign's ``refit_growth`` schedule applies to the GP.
    ``predict``'s variance of one output is ``(v_gp + v_rf)/2 + ((μ_gp − μ_rf)/2)²``; with
    ``observation_noise`` each part adds its own noise. ``posterior`` is the moment-matched
    multivariate normal (outputs independent), for BoTorch's acquisition functions.

    Example:
        >>> X = np.random.default_rng(0).uniform(size=(40, 3))
        >>> model = GPForestMixture(forest={"n_estimators": 20}).fit(X, X[:, 0] - X[:, 1])
        >>> mean, var = model.predict(X[:2])
        >>> mean.shape, var.shape
        ((2, 1), (2, 1))
    """

    def __init__(self, gp: Mapping[str, Any] | None = None, forest: Mapping[str, Any] | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        for name, opts in (("gp", gp), ("forest", forest)):
            if opts is not None and not isinstance(opts, Mapping):
                raise TypeError(f"GPForestMixture: {name} takes a table of options, got {type(opts).__name__}")
        self.gp_options, self.forest_options, self.seed = dict(gp or {}), dict(forest or {}), seed
        self.gp_: GPSurrogate | None = None
        self.forest_: TreeEnsembleSurrogate | None = None
        self._new_gp(), self._new_forest()  # refuse bad options now, not at the first fit

    def _new_gp(self) -> GPSurrogate:
        try:
            return GPSurrogate(**{"seed": self.seed, **self.gp_options})
        except TypeError as exc:
            raise TypeError(f"GPForestMixture gp options: {exc}") from None

    def _new_forest(self) -> TreeEnsembleSurrogate:
        try:
            return TreeEnsembleSurrogate(**{"seed": self.seed, **self.forest_options})
        except TypeError as exc:
            raise TypeError(f"GPForestMixture forest options: {exc}") from None

    def fit(self, X: np.ndarray, y: np.ndarray, X_pool: np.ndarray | None = None,
            warm_start: GPForestMixture | GPSurrogate | None = None,
            hyperparameters: dict[str, list] | None = None) -> Self:
        """Fit both parts on ``n × d`` features and ``n`` / ``n × m`` targets (``X_pool`` etc. go to the GP)."""
        X, y = check_training_data(X, y)
        if isinstance(warm_start, GPForestMixture):
            warm_start = warm_start.gp_
        self.gp_ = self._new_gp().fit(X, y, X_pool=X_pool, warm_start=warm_start, hyperparameters=hyperparameters)
        self.forest_ = self._new_forest().fit(X, y)
        self.n_features, self._num_outputs = X.shape[1], y.shape[1]
        return self

    def hyperparameters(self) -> dict[str, list]:
        """The GP's fitted hyperparameters (the forest has none to keep)."""
        return self._gp().hyperparameters()

    def condition(self, X: np.ndarray, y: np.ndarray) -> GPForestMixture:
        """A new mixture on ``n × d`` / ``n × m`` data: the GP conditioned with its hyperparameters, the forest refitted."""
        X, y = check_training_data(X, y)
        new = type(self)(self.gp_options, self.forest_options, self.seed)
        new.gp_ = self._gp().condition(X, y)
        new.forest_ = self._new_forest().fit(X, y)
        new.n_features, new._num_outputs = self.n_features, self.num_outputs
        return new

    def _gp(self) -> GPSurrogate:
        if self.gp_ is None or self.forest_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return self.gp_

    # ----------------------------------------------------------------------------- fast path
    def predict(self, X: np.ndarray, batch_size: int = 20_000,
                observation_noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``N × d`` → ``(mean, var)``, each ``N × m``: the mixture's mean and variance."""
        self._gp()
        X = self._check_predict_input(X, batch_size)
        mg, vg = self.gp_.predict(X, batch_size, observation_noise)
        mf, vf = self.forest_.predict(X, batch_size, observation_noise)
        return (mg + mf) / 2, (vg + vf) / 2 + ((mg - mf) / 2) ** 2

    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent covariance ``m × na × nb`` of the mixture between two small point sets."""
        self._gp()
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        da = self.gp_.predict(Xa)[0] - self.forest_.predict(Xa)[0]  # na × m
        db = self.gp_.predict(Xb)[0] - self.forest_.predict(Xb)[0]
        spread = np.einsum("am,bm->mab", da, db) / 4
        return (self.gp_.covariance(Xa, Xb) + self.forest_.covariance(Xa, Xb)) / 2 + spread

    def noise_variance(self) -> np.ndarray:
        """Observation-noise variance per output (``m``): the mean of the two parts'."""
        self._gp()
        return (self.gp_.noise_variance() + self.forest_.noise_variance()) / 2

    # ----------------------------------------------------------------------------- BoTorch
    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X: Tensor, output_indices: list[int] | None = None, observation_noise: bool | Tensor = False,
                  posterior_transform: PosteriorTransform | None = None, **kwargs: Any) -> GPyTorchPosterior:
        """Moment-matched normal posterior over ``batch_shape × q × m`` at ``X`` (``batch_shape × q × d``).

        Not differentiable in ``X`` (the forest is piecewise constant): for scoring given candidates.
        """
        self._gp()
        check_posterior_input(self, X, self.n_features)
        outputs = list(range(self.num_outputs)) if output_indices is None else list(output_indices)
        flat = X.detach().to(torch.float64).reshape(-1, X.shape[-2], X.shape[-1]).numpy()
        if isinstance(observation_noise, Tensor):
            raise TypeError("GPForestMixture.posterior: observation_noise is True or False (each part learns its own "
                            "noise); given noise levels are not supported")
        noise = self.noise_variance() if observation_noise else None
        means, covs = [], []
        for Xq in flat:
            mean = self.predict(Xq)[0][:, outputs]  # q × m'
            cov = self.covariance(Xq, Xq)[outputs]  # m' × q × q
            if noise is not None:
                cov = cov + noise[outputs, None, None] * np.eye(len(Xq))
            means.append(mean)
            covs.append(cov)
        shape = X.shape[:-2]
        mean = torch.as_tensor(np.stack(means)).reshape(*shape, X.shape[-2], len(outputs))
        cov = torch.as_tensor(_nearest_psd(np.stack(covs))).reshape(*shape, len(outputs), X.shape[-2], X.shape[-2])
        mvns = [MultivariateNormal(mean[..., j], cov[..., j, :, :]) for j in range(len(outputs))]
        dist = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        post = GPyTorchPosterior(dist)
        return posterior_transform(post) if posterior_transform is not None else post


def _nearest_psd(cov: np.ndarray) -> np.ndarray:
    """``… × q × q`` covariances with negative eigenvalues (rounding in the GP part at measured points, where
    both parts are near zero) raised to a floor of 1e-10 × the largest variance, so they factorise for sampling."""
    cov = (cov + np.swapaxes(cov, -1, -2)) / 2
    w, v = np.linalg.eigh(cov)
    floor = 1e-10 * np.maximum(np.abs(np.diagonal(cov, axis1=-2, axis2=-1)).max(axis=-1, keepdims=True), 1e-300)
    if (w >= floor).all():
        return cov
    return (v * np.maximum(w, floor)[..., None, :]) @ np.swapaxes(v, -1, -2)
