"""Linear projections that shrink wide feature matrices (ElemNet activations, Magpie) before a GP."""

from __future__ import annotations

from typing import Self

import numpy as np
import torch

from aloop.surrogates.base import NotFittedError


class PCAProjection:
    """Principal-component projection with optional whitening, applied as a differentiable torch map.

    Fitted from numpy rows (training features, optionally stacked with an unlabeled
    candidate pool so the components describe the space the campaign searches); applied
    as ``Z = (X − mean) @ W`` with ``W``: ``d × k``. With ``standardize=True`` the columns
    are first scaled to unit variance (PCA of the correlation matrix), so features in
    large units (Magpie melting points in K) do not swamp the others. With ``whiten=True`` the columns of
    ``W`` are scaled by ``1/√eigenvalue`` so every component has unit variance on the
    fitting rows, and ARD lengthscales start on a common scale.

    Args:
        n_components: keep at most this many components (fewer if the rank is lower).
        whiten: scale components to unit variance.
        standardize: scale columns to unit variance before the decomposition.
        max_rows: fit on at most this many rows (a fixed-seed subsample beyond that), so
            a million-row pool costs no more than a large sample of it.
        seed: seed of that subsample.

    Example:
        >>> X = np.random.default_rng(0).normal(size=(100, 50))
        >>> PCAProjection(n_components=8).fit(X).transform(X).shape
        (100, 8)
    """

    def __init__(
        self, n_components: int = 24, whiten: bool = True, standardize: bool = True, max_rows: int = 50_000, seed: int = 0
    ) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be ≥ 1, got {n_components}")
        self.n_components = n_components
        self.whiten = whiten
        self.standardize = standardize
        self.max_rows = max_rows
        self.seed = seed
        self.mean_: torch.Tensor | None = None
        self.weights_: torch.Tensor | None = None
        self.explained_variance_: np.ndarray | None = None

    @property
    def n_features_in(self) -> int:
        self._check_fitted()
        return int(self.weights_.shape[0])

    @property
    def n_components_(self) -> int:
        self._check_fitted()
        return int(self.weights_.shape[1])

    def fit(self, X: np.ndarray) -> Self:
        """Fit on ``n × d`` rows (finite values, at least two rows)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise ValueError(f"PCA needs a 2-D array with at least 2 rows, got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("PCA input has NaN/inf entries")
        if X.shape[0] > self.max_rows:
            rows = np.random.default_rng(self.seed).choice(X.shape[0], self.max_rows, replace=False)
            X = X[rows]
        mean = X.mean(axis=0)
        scale = X.std(axis=0) if self.standardize else np.ones(X.shape[1])
        scale = np.where(scale > 1e-12, scale, 1.0)
        Xc = (X - mean) / scale
        # Eigen-decomposition of the d × d scatter is cheap for d ≤ a few thousand and n large.
        evals, evecs = np.linalg.eigh(Xc.T @ Xc / (X.shape[0] - 1))
        order = np.argsort(evals)[::-1]
        evals, evecs = evals[order], evecs[:, order]
        keep = evals > max(evals[0], 1e-300) * 1e-9
        k = int(min(self.n_components, keep.sum()))
        evals, evecs = evals[:k], evecs[:, :k]
        # Deterministic signs (largest |loading| positive) so refits give the same map.
        signs = np.sign(evecs[np.abs(evecs).argmax(axis=0), np.arange(k)])
        evecs = evecs * np.where(signs == 0, 1.0, signs)
        W = (evecs / np.sqrt(evals) if self.whiten else evecs) / scale[:, None]
        self.mean_ = torch.as_tensor(mean, dtype=torch.float64)
        self.weights_ = torch.as_tensor(W, dtype=torch.float64)
        self.explained_variance_ = evals
        return self

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``batch_shape × n × d`` → ``batch_shape × n × k`` (differentiable)."""
        self._check_fitted()
        return (X.to(self.weights_) - self.mean_) @ self.weights_

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``n × d`` numpy → ``n × k`` numpy (float64)."""
        return self(torch.as_tensor(np.asarray(X), dtype=torch.float64)).numpy()

    def _check_fitted(self) -> None:
        if self.weights_ is None:
            raise NotFittedError("PCAProjection is not fitted; call fit(X) first")


class ColumnSelection:
    """Keeps the columns that vary on the fitting rows, unchanged (``Z = X[:, cols]``), as a torch map.

    For features whose informative part is narrow — elemental fractions of a six-metal
    library are 86 columns of which 6 vary — this keeps each column its own ARD
    lengthscale, where a PCA would rotate them into mixtures.
    """

    def __init__(self) -> None:
        self.columns_: np.ndarray | None = None
        self.n_in_: int | None = None
        self.constants_: np.ndarray | None = None  # the value of each dropped column on the fitting rows

    @property
    def n_components_(self) -> int:
        self._check_fitted()
        return len(self.columns_)  # type: ignore[arg-type]

    def fit(self, X: np.ndarray) -> Self:
        """Fit on ``n × d`` rows: keep the columns whose values are not all equal."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 1:
            raise ValueError(f"ColumnSelection needs a 2-D array with rows, got shape {X.shape}")
        spread = X.max(axis=0) - X.min(axis=0)
        self.columns_ = np.flatnonzero(spread > 1e-12)
        self.n_in_ = X.shape[1]
        self.constants_ = X[0, spread <= 1e-12]
        return self

    def unseen(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``n × d`` ``X`` that differ from the fitting rows in a dropped (constant) column, and those
        columns: a model on the kept columns cannot tell such rows from their projection."""
        self._check_fitted()
        dropped = np.setdiff1d(np.arange(self.n_in_), self.columns_)  # type: ignore[arg-type]
        constants = getattr(self, "constants_", None)  # absent from a model pickled before it was recorded
        if dropped.size == 0 or constants is None:
            return np.zeros(len(X), dtype=bool), dropped
        rows, cols = np.zeros(len(X), dtype=bool), np.zeros(dropped.size, dtype=bool)
        for start in range(0, len(X), 65_536):  # in blocks: a pool may have millions of rows
            differs = np.abs(np.asarray(X[start : start + 65_536])[:, dropped] - constants) > 1e-12
            rows[start : start + 65_536] = differs.any(axis=1)
            cols |= differs.any(axis=0)
        return rows, dropped[cols]

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``batch_shape × n × d`` → ``batch_shape × n × k``."""
        self._check_fitted()
        return X.to(torch.float64)[..., torch.as_tensor(self.columns_)]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``n × d`` numpy → ``n × k`` numpy (float64)."""
        return self(torch.as_tensor(np.asarray(X), dtype=torch.float64)).numpy()

    def _check_fitted(self) -> None:
        if self.columns_ is None:
            raise NotFittedError("ColumnSelection is not fitted; call fit(X) first")
