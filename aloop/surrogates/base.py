"""The surrogate contract: fitted from arrays, answers BoTorch ``posterior(X)`` and a fast chunked ``predict``."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Self

import numpy as np
import torch
from botorch.models.model import Model

#: Rows per block when checking prediction inputs for NaN/inf (bounds the temporary mask's memory).
_FINITE_CHECK_ROWS = 65536


class NotFittedError(RuntimeError):
    """A surrogate was asked for predictions before ``fit``."""


#: Largest target magnitude a surrogate accepts: standardising sums squares, so n·|y|² must stay below float64's
#: ~1.8e308 (the campaign log refuses the same values at record time).
MAX_MAGNITUDE = 1e100
#: Below this standard deviation of a target (in its own units) a ``SmallTargetWarning`` is given: BoTorch
#: posteriors floor variances at 1e-10 in the target's units (a standard deviation of 1e-5), which then
#: swamps the uncertainty the acquisition functions read.
MIN_TARGET_SPREAD = 1e-3


class SmallTargetWarning(UserWarning):
    """A target varies so little in its units (or not at all) that the posterior's scale cannot be trusted."""


def check_posterior_input(model: object, X: object, n_features: int) -> None:
    """Refuse an input to ``posterior`` that is not a tensor ``… × d`` of ``n_features`` finite features."""
    name = type(model).__name__
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name}.posterior takes a torch tensor (batch × q × d), got {type(X).__name__}; use "
                        "predict(X) for a numpy array")
    if X.dim() < 2:
        raise ValueError(f"{name}.posterior takes a tensor of at least 2 dimensions (q × d, or batch × q × d), got "
                         f"shape {tuple(X.shape)}; for one point use X.unsqueeze(0)")
    if X.shape[-1] != n_features:
        raise ValueError(f"{name} was fitted on {n_features} features, got {X.shape[-1]}")
    if not torch.isfinite(X).all():  # a tree routes NaN somewhere and answers as if it were a number
        raise ValueError(f"X has {int((~torch.isfinite(X)).sum())} NaN/inf values")


def check_training_data(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``X`` (``n × d``) and ``y`` (``n`` or ``n × m``); return float64 arrays with ``y`` as ``n × m``."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n × d), got shape {X.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one row per row of X ({X.shape[0]}), got shape {y.shape}")
    if X.shape[0] == 0:
        raise ValueError("cannot fit a surrogate on zero observations")
    if not np.isfinite(X).all():
        raise ValueError(f"X has {int((~np.isfinite(X)).sum())} NaN/inf entries")
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:10].tolist()
        raise ValueError(f"y has {int(bad.sum())} NaN/inf values (rows {rows}…); drop or fix them before fitting")
    if (big := np.abs(y).max()) > MAX_MAGNITUDE:  # its squares, summed when standardising, overflow float64
        raise ValueError(f"y has values up to {big:.3g}, beyond ±{MAX_MAGNITUDE:g}: no surrogate can model them in "
                         "float64; rescale the target (other units)")
    spread = y.std(axis=0)
    if ((spread > 0) & (spread < MIN_TARGET_SPREAD)).any():
        warnings.warn(f"y varies by only {spread.min():.3g} (standard deviation): BoTorch posteriors floor variances "
                      "at 1e-10 in y's units, so uncertainties below ~1e-5 are lost to acquisition functions (predict "
                      "is unaffected); give y in smaller units (e.g. mS/cm instead of S/cm) or model log10(y)",
                      SmallTargetWarning, stacklevel=3)
    if len(y) > 1 and (spread == 0).any():
        j = int(np.flatnonzero(spread == 0)[0])
        which = f"column {j} of y" if y.shape[1] > 1 else "y"
        warnings.warn(f"{which} is {y[0, j]:.6g} in all {len(y)} rows: nothing sets its scale, so uncertainties are on a "
                      "scale of 1 in y's units (whatever those are) until a measurement differs", SmallTargetWarning,
                      stacklevel=3)
    return X, y


class Surrogate(Model):
    """Base class of every aloop surrogate: a BoTorch ``Model`` fitted from numpy arrays.

    Contract (what campaigns and acquisition rely on):

    * ``fit(X, y)`` with ``X``: ``n × d`` features, ``y``: ``n`` or ``n × m`` targets
      (raises ``ValueError`` on NaN/inf, empty data or mismatched shapes); returns ``self``.
    * ``posterior(X)`` (BoTorch): ``batch_shape × q × d`` tensor → posterior over
      ``batch_shape × q × m``, so every BoTorch acquisition function works.
    * ``predict(X, batch_size, observation_noise=False)``: the fast path for large pools:
      ``N × d`` numpy → ``(mean, var)``, both ``N × m`` float64, computed in chunks so
      memory stays bounded. ``var`` is the latent variance, plus the learned observation
      noise when ``observation_noise`` (what a new measurement would scatter by).
    * ``noise_variance()``: the learned observation-noise variance, ``m`` values.
    * ``covariance(Xa, Xb)``: posterior covariance of the latent function between two
      small sets: ``(na × d, nb × d)`` → ``m × na × nb``; used to condition a batch on
      pending points.
    * ``scalarized_predict(X, weights)`` / ``scalarized_covariance(Xa, Xb, weights)``: the
      same for the weighted sum ``wᵀf`` of the outputs (several objectives scalarised).
      The defaults treat the outputs as independent; surrogates whose outputs are
      correlated (multi-task GP, multi-output ensembles) override them.
    * ``n_features`` is fixed at ``fit``; other widths raise ``ValueError``.
    """

    _num_outputs: int = 1
    n_features: int | None = None

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on ``n × d`` features and ``n`` / ``n × m`` targets."""

    @abstractmethod
    def predict(
        self, X: np.ndarray, batch_size: int = 65536, observation_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``N × d`` → ``(mean, var)``, each ``N × m``, chunked."""

    @abstractmethod
    def noise_variance(self) -> np.ndarray:
        """Observation-noise variance per output, shape ``m``."""

    @abstractmethod
    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent posterior covariance ``m × na × nb`` between two small point sets."""

    def _check_predict_input(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        if self.n_features is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer)
                                       or batch_size < 1):
            raise ValueError(f"{type(self).__name__}.predict: batch_size must be a whole number ≥ 1, got {batch_size!r}")
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_features} features, got array of shape {X.shape}"
            )
        for start in range(0, X.shape[0], _FINITE_CHECK_ROWS):  # in blocks: a pool can be millions of rows wide
            block = X[start : start + _FINITE_CHECK_ROWS]
            if not np.isfinite(block).all():
                row = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
                raise ValueError(f"{type(self).__name__}.predict: row {row} of X has NaN or infinite features")
        return X

    def _check_weights(self, weights: np.ndarray) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != (self.num_outputs,) or not np.isfinite(w).all():
            raise ValueError(f"weights must be {self.num_outputs} finite numbers (one per output), got {weights!r}")
        return w

    def scalarized_predict(self, X: np.ndarray, weights: np.ndarray,
                           batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent variance of ``wᵀf(x)``, each ``N``, for ``N × d`` rows and ``m`` weights.
        Exact when the outputs are independent given the data (this default)."""
        w = self._check_weights(weights)
        mean, var = self.predict(X, batch_size)
        return mean @ w, var @ w**2

    def scalarized_covariance(self, Xa: np.ndarray, Xb: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Latent covariance ``na × nb`` of ``wᵀf`` between two small point sets (outputs independent here)."""
        w = self._check_weights(weights)
        return np.tensordot(w**2, self.covariance(Xa, Xb), axes=1)

    def _empty_prediction(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, var)`` for zero rows: two ``0 × m`` arrays."""
        return np.zeros((0, self.num_outputs)), np.zeros((0, self.num_outputs))

    @staticmethod
    def _as_tensor(X: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=torch.float64)
