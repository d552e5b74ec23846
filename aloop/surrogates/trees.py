"""Tree-ensemble surrogates: scikit-learn random forests / extra trees as BoTorch ensemble models."""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from torch import Tensor

from aloop.surrogates.base import check_training_data
from aloop.surrogates.ensemble import EnsembleSurrogate


class TreeEnsembleSurrogate(EnsembleSurrogate):
    """Random forest or extra trees whose trees are the ensemble members.

    Every tree is a member, so the posterior is an ``EnsemblePosterior`` over
    ``n_estimators`` members and query-by-committee reads the trees. The raw spread across
    trees is not a calibrated uncertainty (bagged trees are strongly correlated and fit
    the noise of their bootstrap sample), so by default it is recalibrated on the
    out-of-bag rows: with ``k`` the number of trees that did not see a row, ``r`` the
    residual of their mean and ``v`` their spread there (as at a new point),
    ``r ~ N(0, (a + 1/k − 1/s)·v + b)`` is fitted by maximum likelihood; ``a·v`` becomes
    the latent variance and ``b`` the observation noise (which also absorbs the
    within-leaf variance, so no separate leaf-variance term is added). Both kinds use
    bootstrap samples, which the out-of-bag calibration needs. On the band-gap and OER
    benchmarks this moved 95% coverage of held-out points to 0.92–0.97; the central
    intervals stay too wide on heavy-tailed errors (68% coverage 0.70–0.87).

    Args:
        kind: ``"random_forest"`` or ``"extra_trees"``.
        n_estimators: number of trees (members).
        max_features: features tried per split (fraction or count; 1/3 is Breiman's
            regression default and decorrelates the trees).
        min_samples_leaf: minimum rows per leaf.
        calibrate: fit the out-of-bag variance calibration (else ``a = 1``, ``b = 0``).

    Example:
        >>> X = np.random.default_rng(0).uniform(size=(100, 4))
        >>> rf = TreeEnsembleSurrogate(n_estimators=50).fit(X, X[:, 0] + X[:, 1])
        >>> rf.member_predictions(X[:3]).shape
        (50, 3, 1)
    """

    _heldout_spread = True

    def __init__(
        self,
        kind: Literal["random_forest", "extra_trees"] = "random_forest",
        n_estimators: int = 200,
        max_features: float | int = 1 / 3,
        min_samples_leaf: int = 1,
        calibrate: bool = True,
        n_jobs: int | None = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(calibrate=calibrate)
        if kind not in ("random_forest", "extra_trees"):
            raise ValueError(f"kind must be 'random_forest' or 'extra_trees', got {kind!r}")
        self.kind = kind
        self.n_estimators, self.max_features, self.min_samples_leaf = n_estimators, max_features, min_samples_leaf
        self.n_jobs, self.seed = n_jobs, seed
        self.forest_: RandomForestRegressor | ExtraTreesRegressor | None = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on ``n × d`` features and ``n`` / ``n × m`` targets."""
        X, y = check_training_data(X, y)
        cls = RandomForestRegressor if self.kind == "random_forest" else ExtraTreesRegressor
        forest = cls(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            bootstrap=True,
            n_jobs=self.n_jobs,
            random_state=self.seed,
        )
        # Standardised: scikit-learn stops splitting below a variance of ~2e-16 in y's units, so a target in
        # small units (a conductivity of 1e-9 S/cm) would give one-node trees.
        self._y_shift, scale = y.mean(axis=0), y.std(axis=0)
        self._y_scale = np.where(scale > 0, scale, 1.0)
        z = (y - self._y_shift) / self._y_scale
        forest.fit(X, z if z.shape[1] > 1 else z[:, 0])
        self.forest_ = forest
        self.n_features, self._num_outputs = X.shape[1], y.shape[1]
        held_out = np.ones((self.n_estimators, X.shape[0]), dtype=bool)
        for i, in_bag in enumerate(forest.estimators_samples_):
            held_out[i, in_bag] = False
        self._fit_calibration(X, y, held_out)
        return self

    def _members(self, X: Tensor) -> Tensor:
        X32 = np.ascontiguousarray(X.detach().numpy(), dtype=np.float32)
        out = np.stack([tree.predict(X32, check_input=False) for tree in self.forest_.estimators_])
        out = out.reshape(len(out), X32.shape[0], self._num_outputs) * self._y_scale + self._y_shift
        return torch.as_tensor(out, dtype=torch.float64)
