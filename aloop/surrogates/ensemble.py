"""Ensemble surrogates in BoTorch's ``EnsembleModel`` pattern: the shared base, calibration, MLP deep ensembles."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Self

import numpy as np
import torch
from botorch.acquisition.objective import PosteriorTransform
from botorch.models.ensemble import EnsembleModel
from botorch.posteriors.ensemble import EnsemblePosterior
from scipy.optimize import minimize
from torch import Tensor, nn

from aloop.training import train_network
from aloop.surrogates.base import NotFittedError, Surrogate, check_posterior_input, check_training_data

#: The smallest noise variance calibration may give, relative to the held-out residuals' mean square: where many
#: residuals and spreads are exactly 0 (measured band gaps of metals) the likelihood grows without bound as the
#: noise goes to 0, and intervals of 1e-69 eV came out.
B_MIN = 1e-4


def fit_variance_calibration(
    resid: np.ndarray, spread: np.ndarray, offset: np.ndarray, noise_shape: np.ndarray, a_min: float = 0.0
) -> tuple[float, float]:
    """Maximum-likelihood ``a ≥ a_min, b ≥ 0`` in ``resid ~ N(0, (a + offset)·spread + b·noise_shape)``.

    ``a`` inflates (or shrinks) the ensemble spread into the latent variance; ``b`` scales
    the observation noise (``noise_shape`` = 1 for homoscedastic noise). ``offset`` is
    ``1/k − 1/s`` for a residual of the mean of ``k`` held-out members of an ensemble of
    ``s``: if members scatter independently with the spread's variance, a mean of ``k``
    members carries ``1/k − 1/s`` more of it than the full ensemble mean.

    Args:
        resid, spread, offset, noise_shape: ``n`` arrays.
    """
    scale = float(np.mean(resid**2)) or 1.0
    r2, v, u = resid**2 / scale, spread / scale, noise_shape / np.mean(noise_shape)

    def nll(theta: np.ndarray) -> float:
        var = (a_min + np.exp(theta[0]) + offset) * v + (B_MIN + np.exp(theta[1])) * u
        return float(np.mean(np.log(var) + r2 / var))

    best = min(
        (minimize(nll, np.log([a0, b0]), method="Nelder-Mead") for a0 in (1.0, 0.1) for b0 in (0.5, 0.01)),
        key=lambda res: res.fun,
    )
    a, b = a_min + float(np.exp(best.x[0])), B_MIN + float(np.exp(best.x[1]))
    return a, b * scale / float(np.mean(noise_shape))


class EnsembleSurrogate(Surrogate, EnsembleModel):
    """Base of ensemble surrogates: ``s`` member predictions → ``EnsemblePosterior``.

    Subclasses implement ``_members`` (raw member predictions) and ``fit``; this class
    turns them into ``forward`` (``batch_shape × s × q × m``), chunked ``predict``,
    ``covariance`` and ``member_predictions``. The latent variance is the unbiased spread of
    the members (as ``EnsemblePosterior.variance``) times a calibration factor ``a`` per
    output, applied by scaling each member's deviation from the ensemble mean by ``√a``,
    so the posterior, ``predict`` and query-by-committee see the same numbers. ``a`` and
    an observation-noise variance are fitted on held-out residuals
    (``fit_variance_calibration``); with ``calibrate=False``, ``a = 1``.
    """

    #: Calibrate against the spread of the held-out members only (needs many held-out members per
    #: row, as out-of-bag trees give); otherwise the spread of all members at the row is used.
    _heldout_spread: bool = False

    def __init__(self, calibrate: bool = True) -> None:
        super().__init__()
        self.calibrate = calibrate
        self._var_scale: Tensor | None = None  # m
        self._noise_scale: Tensor | None = None  # m

    @abstractmethod
    def _members(self, X: Tensor) -> Tensor:
        """Raw member predictions: ``N × d`` float64 → ``s × N × m`` float64 (original units)."""

    def _aleatoric(self, X: Tensor) -> Tensor | None:
        """Shape of the observation noise ``N × m`` (None: homoscedastic)."""
        return None

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def _check_tensor(self, X: Tensor) -> None:
        if self._var_scale is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        check_posterior_input(self, X, self.n_features)

    def _calibrated(self, X: Tensor) -> Tensor:
        raw = self._members(X)
        mean = raw.mean(dim=0, keepdim=True)
        return mean + (raw - mean) * self._var_scale.sqrt()

    def forward(self, X: Tensor) -> Tensor:
        """``batch_shape × q × d`` → ``batch_shape × s × q × m`` (calibrated member values)."""
        self._check_tensor(X)
        values = self._calibrated(X.to(torch.float64).reshape(-1, X.shape[-1]))
        return values.reshape(values.shape[0], *X.shape[:-1], values.shape[-1]).movedim(0, -3)

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        posterior_transform: PosteriorTransform | None = None,
        **kwargs: Any,
    ) -> EnsemblePosterior:
        """``EnsemblePosterior`` over ``batch_shape × q × m`` at ``X`` (``batch_shape × q × d``): the latent
        function as the members see it (``observation_noise`` is refused; ``predict`` adds the noise)."""
        self._check_tensor(X)
        if kwargs.pop("observation_noise", False) is not False:
            raise ValueError(f"{type(self).__name__}.posterior is the members' latent function and has no "
                             "observation_noise; use predict(X, observation_noise=True) for the variance of a new measurement")
        return EnsembleModel.posterior(self, X, output_indices, posterior_transform, **kwargs)

    @torch.no_grad()
    def member_predictions(self, X: np.ndarray, batch_size: int = 20_000) -> np.ndarray:
        """Calibrated member predictions ``s × N × m`` (for query-by-committee)."""
        X = self._check_predict_input(X)
        if len(X) == 0:
            return self._calibrated(self._as_tensor(np.zeros((1, self.n_features))))[:, :0].numpy()  # s × 0 × m
        chunks = [self._calibrated(self._as_tensor(X[i : i + batch_size])) for i in range(0, X.shape[0], batch_size)]
        return torch.cat(chunks, dim=1).numpy()

    @torch.no_grad()
    def predict(
        self, X: np.ndarray, batch_size: int = 20_000, observation_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``N × d`` → ``(mean, var)``, each ``N × m``; ``observation_noise=True`` adds the noise variance."""
        X = self._check_predict_input(X, batch_size)
        if len(X) == 0:
            return self._empty_prediction()
        means, variances = [], []
        for start in range(0, X.shape[0], batch_size):
            Xc = self._as_tensor(X[start : start + batch_size])
            values = self._calibrated(Xc)
            var = values.var(dim=0) if values.shape[0] > 1 else torch.zeros_like(values[0])
            if observation_noise:
                var = var + self._noise(Xc)
            means.append(values.mean(dim=0))
            variances.append(var)
        return torch.cat(means).numpy(), torch.cat(variances).numpy()

    @torch.no_grad()
    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent covariance ``m × na × nb``: the members' (calibrated) cross-covariance."""
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        Da, Db = (self._calibrated(self._as_tensor(Z)) for Z in (Xa, Xb))
        Da, Db = Da - Da.mean(dim=0), Db - Db.mean(dim=0)
        s = max(Da.shape[0] - 1, 1)
        return (torch.einsum("sam,sbm->mab", Da, Db) / s).numpy()

    def scalarized_predict(self, X: np.ndarray, weights: np.ndarray,
                           batch_size: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
        """Mean and latent variance (``N`` each) of ``wᵀf`` from the members' weighted sums, so the
        members' correlation between outputs counts."""
        w = self._check_weights(weights)
        values = self.member_predictions(X, batch_size) @ w  # s × N
        var = values.var(axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1])
        return values.mean(axis=0), var

    @torch.no_grad()
    def scalarized_covariance(self, Xa: np.ndarray, Xb: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Latent covariance ``na × nb`` of ``wᵀf``: the members' cross-covariance of their weighted sums."""
        w = torch.as_tensor(self._check_weights(weights))
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        Da, Db = (self._calibrated(self._as_tensor(Z)) @ w for Z in (Xa, Xb))  # s × na, s × nb
        Da, Db = Da - Da.mean(dim=0), Db - Db.mean(dim=0)
        return (Da.T @ Db / max(Da.shape[0] - 1, 1)).numpy()

    def noise_variance(self) -> np.ndarray:
        """Observation-noise variance per output (``m``); learned aleatoric noise: its mean over the training rows."""
        if self._var_scale is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return self._mean_noise.numpy()

    def _noise(self, X: Tensor) -> Tensor:
        shape = self._aleatoric(X)
        if shape is None:
            shape = torch.ones(X.shape[0], self.num_outputs, dtype=torch.float64)
        return self._noise_scale * shape

    @torch.no_grad()
    def _fit_calibration(self, X: np.ndarray, y: np.ndarray, held_out: np.ndarray) -> None:
        """Fit ``a``, ``b`` per output from member-held-out rows (``held_out``: ``s × n`` bool)."""
        m = y.shape[1]
        s = held_out.shape[0]
        held_out = held_out_compositions(X, held_out)
        self._var_scale = torch.ones(m, dtype=torch.float64)
        self._noise_scale = torch.zeros(m, dtype=torch.float64)
        Xt = self._as_tensor(X)
        raw = torch.cat([self._members(Xt[i : i + 20_000]) for i in range(0, len(X), 20_000)], dim=1).numpy()
        shape = self._aleatoric(Xt)
        self._mean_noise = torch.zeros(m, dtype=torch.float64) if shape is None else shape.mean(dim=0)
        k = held_out.sum(axis=0)
        # With the held-out spread (as at a new point) a row needs two held-out members.
        rows = k >= (2 if self._heldout_spread else 1)
        if not self.calibrate or s < 2 or rows.sum() < 5:
            if shape is not None:
                self._noise_scale = torch.ones(m, dtype=torch.float64)
            return
        w = held_out[:, rows, None]
        held_mean = (raw[:, rows] * w).sum(axis=0) / k[rows, None]  # n' × m
        if self._heldout_spread:
            spread = (((raw[:, rows] - held_mean) * w) ** 2).sum(axis=0) / (k[rows, None] - 1)
        else:
            spread = raw[:, rows].var(axis=0, ddof=1)
        offset = 1.0 / k[rows] - 1.0 / s
        noise = np.ones((int(rows.sum()), m)) if shape is None else shape.numpy()[rows]
        for j in range(m):
            resid = y[rows, j] - held_mean[:, j]
            a, b = fit_variance_calibration(resid, spread[:, j], offset, noise[:, j], a_min=1.0 / s)
            self._var_scale[j], self._noise_scale[j] = a, b
        self._mean_noise = self._noise_scale * (1.0 if shape is None else shape.mean(dim=0))


def held_out_compositions(X: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """``held_out`` (``s × n``) with a row counted as held out of a member only if every row with the same
    features (a replicate of its composition) is: a member that trained on one replicate has seen the others."""
    codes = np.unique(X, axis=0, return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups == codes.size:
        return held_out
    seen = np.zeros((held_out.shape[0], n_groups), dtype=bool)
    for i in range(held_out.shape[0]):
        seen[i, codes[~held_out[i]]] = True
    return held_out & ~seen[:, codes]


def split_rows(
    n: int, rng: np.random.Generator, bootstrap: bool, val_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (a bootstrap sample or a random 1 − val_fraction) and held-out rows."""
    if bootstrap:
        train = rng.integers(0, n, n)
        held = np.setdiff1d(np.arange(n), train)
    else:
        perm = rng.permutation(n)
        n_val = int(round(val_fraction * n)) if n >= 10 else 0
        train, held = perm[n_val:], perm[:n_val]
    # Too few rows to hold any out: early-stop on the training rows themselves.
    return train, (held if len(held) else train)


def module_dtype(module: nn.Module) -> torch.dtype:
    """dtype of the first parameter of ``module``."""
    return next(module.parameters()).dtype


def standardise(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (1 where a column is constant)."""
    mean, std = y.mean(axis=0), y.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


# --------------------------------------------------------------------------------------- MLPs
class MLPEnsembleSurrogate(EnsembleSurrogate):
    """Deep ensemble of small MLPs on features (Lakshminarayanan et al. 2017).

    Each member trains on its own bootstrap sample (seed ``seed + i``) with Adam and early
    stopping on its out-of-bag rows; features and targets are standardised. The latent
    variance is the calibrated spread of the members; with ``aleatoric=True`` each member
    also learns a noise variance by Gaussian NLL and the observation noise is their mean
    (scaled by the calibration). Calibration uses the out-of-bag residuals.

    Example:
        >>> X = np.random.default_rng(0).uniform(size=(80, 3))
        >>> ens = MLPEnsembleSurrogate(n_members=3, max_epochs=20).fit(X, X.sum(1))
        >>> ens.member_predictions(X[:4]).shape
        (3, 4, 1)
    """

    def __init__(
        self,
        n_members: int = 5,
        hidden: tuple[int, ...] = (64, 64),
        aleatoric: bool = False,
        bootstrap: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        max_epochs: int = 500,
        patience: int = 30,
        calibrate: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(calibrate=calibrate)
        if n_members < 1:
            raise ValueError(f"n_members must be ≥ 1, got {n_members}")
        self.n_members, self.hidden, self.aleatoric, self.bootstrap = n_members, tuple(hidden), aleatoric, bootstrap
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_epochs, self.patience, self.seed = max_epochs, patience, seed
        self.nets = nn.ModuleList()

    def _make_net(self, d: int, m: int) -> nn.Sequential:
        widths = (d, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], 2 * m if self.aleatoric else m))

    def _loss(self, out: Tensor, target: Tensor) -> Tensor:
        m = target.shape[-1]
        if not self.aleatoric:
            return nn.functional.mse_loss(out, target)
        var = nn.functional.softplus(out[..., m:]) + 1e-6
        return nn.functional.gaussian_nll_loss(out[..., :m], target, var)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on ``n × d`` features and ``n`` / ``n × m`` targets."""
        X, y = check_training_data(X, y)
        n, d = X.shape
        m = y.shape[1]
        self._x_mean, x_std = X.mean(axis=0), X.std(axis=0)
        self._x_std = np.where(x_std > 1e-12, x_std, 1.0)
        self._y_mean, self._y_std = standardise(y)
        Xs = torch.as_tensor((X - self._x_mean) / self._x_std, dtype=torch.float32)
        ys = torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float32)
        self.nets = nn.ModuleList()
        held_out = np.zeros((self.n_members, n), dtype=bool)
        for i in range(self.n_members):
            train, held = split_rows(n, np.random.default_rng(self.seed + i), self.bootstrap, 0.1)
            held_out[i, held] = not np.array_equal(held, train)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed + i)
                net = self._make_net(d, m)
            train_network(net, Xs[train], ys[train], Xs[held], ys[held], self._loss, self.lr, self.batch_size,
                          self.max_epochs, self.patience, self.weight_decay, seed=self.seed + i)
            self.nets.append(net)
        self.n_features, self._num_outputs = d, m
        self._fit_calibration(X, y, held_out)
        return self

    def _outputs(self, X: Tensor) -> Tensor:
        # Cast to the members' dtype (float32 unless someone called .double() on the model, as BoTorch may).
        Xs = ((X - torch.as_tensor(self._x_mean)) / torch.as_tensor(self._x_std)).to(module_dtype(self.nets))
        return torch.stack([net(Xs) for net in self.nets]).to(torch.float64)  # s × N × (m or 2m)

    def _members(self, X: Tensor) -> Tensor:
        return self._outputs(X)[..., : self._num_outputs] * torch.as_tensor(self._y_std) + torch.as_tensor(self._y_mean)

    def _aleatoric(self, X: Tensor) -> Tensor | None:
        if not self.aleatoric:
            return None
        raw = self._outputs(X)[..., self._num_outputs :]
        return (nn.functional.softplus(raw) + 1e-6).mean(dim=0) * torch.as_tensor(self._y_std) ** 2
