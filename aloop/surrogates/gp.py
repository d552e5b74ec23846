"""Exact GP surrogate: a BoTorch ``SingleTaskGP`` with a cached-Cholesky fast path for huge candidate pools."""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, Self

import gpytorch
import numpy as np
import torch
from botorch.acquisition.objective import PosteriorTransform
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.posteriors import Posterior
from gpytorch.kernels import MaternKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from aloop.surrogates.base import NotFittedError, Surrogate, check_posterior_input, check_training_data
# GP construction lives in gp_model; its names (tests use _make_gp, _matern_kernel) stay importable from here.
from aloop.surrogates.gp_model import (  # noqa: F401
    LengthscalePrior,
    _condition_in_fitted_units,
    _condition_on_all,
    _load_hyperparameters,
    _make_gp,
    _matern_kernel,
    _warm_start,
)
from aloop.surrogates.mll import matern_ard_closure
from aloop.surrogates.projection import ColumnSelection, PCAProjection

#: Exact (Cholesky) inference up to this many observations, in fitting and in ``posterior``
#: (GPyTorch's default of 800 would switch to iterative solves beyond it).
MAX_CHOLESKY_SIZE = 20_000
#: Cache an explicit ``L⁻¹`` (``m × n × n``) up to this many observations; beyond, solve per chunk.
EXPLICIT_INVERSE_MAX_N = 6_000
#: L-BFGS iterations of a warm-started fit (a cold fit runs to convergence): starting from the
#: previous fit's optimum on a little less data, the first steps do nearly all of the work.
WARM_START_MAXITER = 40
#: L-BFGS-B memory (scipy's default is 10). The MAP objective over ~k + 2 hyperparameters is
#: badly scaled (lengthscales in linear units); a longer memory reaches the same optimum in
#: 1.7–8× fewer evaluations on 500-row fits here (see BENCHMARKS.md, "Proposal latency").
LBFGS_MAXCOR = 40
#: ``predict`` works in blocks of about this many ``candidate × training-row`` kernel entries
#: (1 MB of float64 per temporary), but at least ``PREDICT_MIN_BLOCK`` rows so that ``L⁻¹`` is
#: not re-read for a handful of rows. Larger blocks are slower, not faster: every temporary
#: above glibc's mmap threshold is a fresh mapping whose pages fault in one by one (100k
#: candidates, n = 500, 1 thread: 2.7–5.2 s in one 65,536-row block, 1.7–2.2 s in 262-row
#: blocks, the difference being system time).
PREDICT_BLOCK_ELEMENTS = 1 << 17
PREDICT_MIN_BLOCK = 256

#: Rows of ``X_pool`` projected at a time when the input bounds come from the pool.
POOL_BOUNDS_BLOCK = 65_536


class UnseenFeatureWarning(UserWarning):
    """Rows to predict differ from the fitting rows in features the GP dropped as constant."""


class GPSurrogate(Surrogate):
    """Exact GP (BoTorch ``SingleTaskGP``) with Matérn-5/2 ARD kernel, learned noise and optional PCA.

    Model: inputs are optionally PCA-projected (whitened), then ``Normalize``-d to the unit
    cube; outcomes are ``Standardize``-d; the kernel is a Matérn-5/2 with one lengthscale
    per input dimension and BoTorch's dimension-scaled priors (Hvarfner et al. 2024:
    lengthscale ~ LogNormal(√2 + ½ log k, √3), noise ~ LogNormal(−4, 1), no outputscale
    since outcomes are standardised). Hyperparameters are MAP-fitted with
    ``fit_gpytorch_mll`` (single output: with the analytic-gradient closure of
    :mod:`aloop.surrogates.mll`, same objective, 3–4× cheaper per step). Noise is a
    learned homoscedastic variance, so replicate rows of ``X`` are fine. ``y`` with ``m``
    columns gives ``m`` independent GPs (a batched model sharing the inputs).

    After ``fit`` the Cholesky factor ``L`` of ``K + σ²I`` and ``α = (K + σ²I)⁻¹(y − μ)``
    are cached, so ``predict`` evaluates ``mean = μ + K*α`` and
    ``var = k** − ‖L⁻¹K*ᵀ‖²`` chunk by chunk with one factorisation (float64). The
    results are in the original units of ``y``.

    Args:
        projection: ``"pca"`` (always project), ``None`` (never) or ``"auto"``: inputs
            wider than ``n_components`` are PCA-projected unless at most ``n_components``
            of their columns vary on the fitting rows (training rows and ``X_pool``), in
            which case just those columns are kept (elemental fractions of a small
            element system keep one ARD lengthscale per element).
        n_components: number of PCA components kept.
        whiten: whiten the PCA components.
        standardize: scale feature columns to unit variance before the PCA (needed for
            features in mixed units such as Magpie; on the band-gap data it also helped
            elemental fractions with the full training set, but hurt them with 300 rows).
        max_fit_rows: MAP-fit the hyperparameters on a random subset of at most this many
            rows (the cost per optimiser step is cubic in the rows), then condition the GP
            exactly on all rows with those hyperparameters. ``None`` fits on all rows.
        seed: seed of that subset.
        lengthscale_prior: ``"lognormal"`` (BoTorch's dimension-scaled LogNormal) or
            ``"gamma"`` (same mode, light-tailed; see :func:`_matern_kernel`).
        lengthscale_sd: the LogNormal prior's log-sd, keeping its mode (``None``: BoTorch's √3, which
            leaves MAP lengthscales free over orders of magnitude; a small value such as 0.15 holds them
            near the mode, ``exp(√2 − 3)·√k`` in the unit box, from few rows). Only with ``"lognormal"``.
        input_bounds: the box ``Normalize`` maps to the unit cube: ``"train"`` (the
            training rows) or ``"pool"`` (training rows and ``X_pool``, i.e. the search
            space, as BoTorch recommends; without ``X_pool`` the training rows).

    Example:
        >>> X = np.random.default_rng(0).uniform(size=(40, 3))
        >>> gp = GPSurrogate().fit(X, np.sin(6 * X[:, 0]))
        >>> mean, var = gp.predict(X[:5])
        >>> mean.shape, var.shape
        ((5, 1), (5, 1))
    """

    def __init__(
        self,
        projection: Literal["auto", "pca"] | None = "auto",
        n_components: int = 24,
        whiten: bool = True,
        standardize: bool = True,
        max_fit_rows: int | None = 800,
        seed: int = 0,
        lengthscale_prior: LengthscalePrior = "lognormal",
        input_bounds: Literal["train", "pool"] = "train",
        lengthscale_sd: float | None = None,
    ) -> None:
        super().__init__()
        if projection not in ("auto", "pca", None):
            raise ValueError(f"projection must be 'auto', 'pca' or None, got {projection!r}")
        if lengthscale_prior not in ("lognormal", "gamma"):
            raise ValueError(f"lengthscale_prior must be 'lognormal' or 'gamma', got {lengthscale_prior!r}")
        self.lengthscale_prior = lengthscale_prior
        if lengthscale_sd is not None and (isinstance(lengthscale_sd, bool) or not isinstance(lengthscale_sd, int | float)
                                           or not 0 < lengthscale_sd < 10):
            raise ValueError(f"lengthscale_sd must be a number in (0, 10) (or None: BoTorch's √3), got {lengthscale_sd!r}")
        if lengthscale_sd is not None and lengthscale_prior != "lognormal":
            raise ValueError(f"lengthscale_sd sets the LogNormal prior's spread; it does not go with {lengthscale_prior!r}")
        self.lengthscale_sd = None if lengthscale_sd is None else float(lengthscale_sd)
        if input_bounds not in ("train", "pool"):
            raise ValueError(f"input_bounds must be 'train' or 'pool', got {input_bounds!r}")
        self.input_bounds = input_bounds
        self.projection = projection
        self.n_components = n_components
        self.whiten = whiten
        self.standardize = standardize
        if max_fit_rows is not None and (isinstance(max_fit_rows, bool) or not isinstance(max_fit_rows, int)
                                         or max_fit_rows < 1):
            raise ValueError(f"max_fit_rows must be a whole number >= 1 (or None: every row), got {max_fit_rows!r}")
        self.max_fit_rows = max_fit_rows
        self.seed = seed
        self.projection_: PCAProjection | ColumnSelection | None = None
        self.gp: SingleTaskGP | None = None

    # ----------------------------------------------------------------------------- fitting
    def fit(self, X: np.ndarray, y: np.ndarray, X_pool: np.ndarray | None = None,
            warm_start: GPSurrogate | None = None, hyperparameters: dict[str, list] | None = None) -> Self:
        """Fit on ``n × d`` features and ``n`` / ``n × m`` targets.

        Args:
            X_pool: optional unlabeled ``N × d`` candidates: used to fit the PCA projection
                and, with ``input_bounds="pool"``, for the input box.
            warm_start: a fitted GP of the same shape whose hyperparameters start the
                optimisation (a campaign refitting on a little more data converges in far
                fewer L-BFGS steps). Ignored when the input or output widths differ.
            hyperparameters: values from :meth:`hyperparameters` of an earlier fit on the
                same data: loaded instead of optimised, which rebuilds that model exactly.
        """
        X, y = check_training_data(X, y)
        d = X.shape[1]
        if X_pool is not None:
            X_pool = np.asarray(X_pool, dtype=np.float64)
            if X_pool.ndim != 2 or X_pool.shape[1] != d:
                raise ValueError(f"X_pool must have {d} columns like X, got shape {X_pool.shape}")
            for start in range(0, len(X_pool), POOL_BOUNDS_BLOCK):
                bad = ~np.isfinite(X_pool[start : start + POOL_BOUNDS_BLOCK]).all(axis=1)
                if bad.any():
                    raise ValueError(f"X_pool has NaN/inf features (rows {(start + np.flatnonzero(bad))[:10].tolist()})")
        self.projection_ = None
        if self.projection == "pca" or (self.projection == "auto" and d > self.n_components):
            fit_rows = X if X_pool is None else np.vstack([X, X_pool])
            if self.projection == "auto":
                varying = ColumnSelection().fit(fit_rows)
                if 0 < varying.n_components_ <= self.n_components:
                    self.projection_ = varying
            if self.projection_ is None and fit_rows.shape[0] >= 2:
                self.projection_ = PCAProjection(self.n_components, self.whiten, self.standardize).fit(fit_rows)
            if self.projection_ is not None and self.projection_.n_components_ == 0:
                raise ValueError(f"all {fit_rows.shape[0]} fitting rows have the same features (replicates of one "
                                 "composition?), so there is nothing to project; fit on at least two different "
                                 "compositions or pass a varied X_pool")
        Z = torch.as_tensor(X) if self.projection_ is None else self.projection_(torch.as_tensor(X))
        Y = torch.as_tensor(y)
        lo, hi = Z.min(dim=0).values, Z.max(dim=0).values
        if self.input_bounds == "pool" and X_pool is not None:
            for start in range(0, X_pool.shape[0], POOL_BOUNDS_BLOCK):
                block = torch.as_tensor(X_pool[start:start + POOL_BOUNDS_BLOCK])
                block = block if self.projection_ is None else self.projection_(block)
                lo, hi = torch.minimum(lo, block.min(dim=0).values), torch.maximum(hi, block.max(dim=0).values)
        # Constant columns map to x − lo (as BoTorch's learned Normalize does) instead of dividing by ~0.
        hi = torch.where(hi - lo < 1e-8, lo + 1.0, hi)
        bounds = torch.stack([lo, hi])
        rows = None
        # Saved hyperparameters belong to the GP on all rows (``hyperparameters()`` of a fitted model),
        # so they are loaded into that GP directly rather than into a subset one.
        if self.max_fit_rows is not None and Z.shape[0] > self.max_fit_rows and hyperparameters is None:
            gen = torch.Generator().manual_seed(self.seed)
            rows = torch.randperm(Z.shape[0], generator=gen)[: self.max_fit_rows]
        gp = _make_gp(Z if rows is None else Z[rows], Y if rows is None else Y[rows], bounds, self.lengthscale_prior,
                      self.lengthscale_sd)
        scipy_options: dict[str, Any] = {"maxcor": LBFGS_MAXCOR}
        if warm_start is not None and warm_start.gp is not None and _warm_start(gp, warm_start.gp):
            scipy_options["maxiter"] = WARM_START_MAXITER
        if hyperparameters is not None:
            _load_hyperparameters(gp, hyperparameters)
        else:
            mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
            with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
                fit_gpytorch_mll(mll, closure=matern_ard_closure(mll.train()),
                                 optimizer_kwargs={"options": scipy_options})
        if rows is not None:
            gp = _condition_on_all(gp, Z, Y, bounds, self.lengthscale_prior, self.lengthscale_sd)
        self._set_gp(gp, Z, bounds, Y.shape[-1])
        self.n_features = d
        return self

    def hyperparameters(self) -> dict[str, list]:
        """The fitted GP's raw hyperparameters as JSON-able lists (for :meth:`fit`'s ``hyperparameters``)."""
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return {name: p.detach().reshape(-1).tolist() for name, p in self.gp.named_parameters()}

    def condition(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        """A new surrogate on ``n × d`` / ``n × m`` data with this fit's hyperparameters (no optimisation).

        The projection, input bounds, kernel hyperparameters, noise and outcome standardisation are
        kept, so the signal and noise variances stay what the fit found in ``y``'s units. A campaign
        uses it to add observations between hyperparameter refits: milliseconds instead of an L-BFGS fit.
        """
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        X, y = check_training_data(X, y)
        if X.shape[1] != self.n_features:
            raise ValueError(f"{type(self).__name__} was fitted on {self.n_features} features, got {X.shape[1]}")
        Y = torch.as_tensor(y)
        if Y.shape[-1] != self.num_outputs:
            raise ValueError(f"{type(self).__name__} was fitted on {self.num_outputs} outputs, got {Y.shape[-1]}")
        new = type(self)(self.projection, self.n_components, self.whiten, self.standardize, self.max_fit_rows,
                         self.seed, self.lengthscale_prior, self.input_bounds, self.lengthscale_sd)
        new.projection_ = self.projection_
        new.n_features = self.n_features
        Z = torch.as_tensor(X) if self.projection_ is None else self.projection_(torch.as_tensor(X))
        new._set_gp(_condition_in_fitted_units(self.gp, Z, Y, self._bounds, self.lengthscale_prior, self.lengthscale_sd),
                    Z, self._bounds,
                    Y.shape[-1])
        return new

    def _set_gp(self, gp: SingleTaskGP, Z: Tensor, bounds: Tensor, m: int) -> None:
        gp.eval()
        self.gp = gp
        self._num_outputs = m
        self._train_Z = Z
        self._bounds = bounds
        self._build_cache()

    @torch.no_grad()
    def _build_cache(self) -> None:
        gp = self.gp
        Xn = gp.input_transform(self._train_Z)
        K = gp.covar_module(Xn).to_dense()
        K = K if K.dim() == 3 else K.unsqueeze(0)  # m × n × n
        noise = gp.likelihood.noise.detach().reshape(-1, 1).expand(K.shape[0], K.shape[1])
        L = psd_safe_cholesky(K + torch.diag_embed(noise))
        resid = gp.train_targets.reshape(K.shape[0], -1) - gp.mean_module(Xn).reshape(K.shape[0], -1)
        self._Xn = Xn
        cm = gp.covar_module
        self._fast_kernel = isinstance(cm, MaternKernel) and cm.nu == 2.5
        if self._fast_kernel:
            # Training rows centred and divided by the lengthscales (m × n × k), for _cross_kernel.
            self._center = Xn.mean(dim=0)
            self._lengthscale = cm.lengthscale.detach().reshape(-1, 1, Xn.shape[-1])  # m × 1 × k
            self._train_scaled = (Xn - self._center) / self._lengthscale
            self._train_sq = self._train_scaled.pow(2).sum(-1).unsqueeze(-2)  # m × 1 × n
        self._alpha = torch.cholesky_solve(resid.unsqueeze(-1), L)  # m × n × 1
        self._L = L
        self._Linv = None
        if L.shape[-1] <= EXPLICIT_INVERSE_MAX_N:
            # An explicit L⁻¹ turns the per-chunk triangular solve into one GEMM (faster on CPU).
            eye = torch.eye(L.shape[-1], dtype=L.dtype).expand_as(L)
            self._Linv = torch.linalg.solve_triangular(L, eye, upper=False)  # m × n × n
        self._noise = gp.likelihood.noise.detach().reshape(-1).clone()  # m (standardised units)
        tf = gp.outcome_transform
        self._y_mean = tf.means.reshape(-1)
        self._y_std = tf.stdvs.reshape(-1)

    # ----------------------------------------------------------------------------- BoTorch
    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def features(self, X: Tensor) -> Tensor:
        """Apply the fitted projection: ``batch_shape × q × d`` → ``batch_shape × q × k``."""
        X = X.to(torch.float64)
        return X if self.projection_ is None else self.projection_(X)

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: PosteriorTransform | None = None,
        **kwargs: Any,
    ) -> Posterior:
        """Posterior over ``batch_shape × q × m`` at ``X`` (``batch_shape × q × d``), in original units."""
        self._check_tensor(X)
        with gpytorch.settings.max_cholesky_size(MAX_CHOLESKY_SIZE):
            return self.gp.posterior(
                self.features(X),
                output_indices=output_indices,
                observation_noise=observation_noise,
                posterior_transform=posterior_transform,
                **kwargs,
            )

    def _check_tensor(self, X: Tensor) -> None:
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        check_posterior_input(self, X, self.n_features)

    # ----------------------------------------------------------------------------- fast path
    @torch.no_grad()
    def _latent(self, X: Tensor, var: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
        """Standardised latent mean ``m × c``, variance ``m × c`` and ``W = K* L⁻ᵀ`` (``m × c × n``)."""
        gp = self.gp
        Xn = gp.input_transform(self.features(X))
        Ks = self._cross_kernel(Xn)
        mean = gp.mean_module(Xn).reshape(Ks.shape[0], -1) + (Ks @ self._alpha).squeeze(-1)
        if self._Linv is not None:
            W = Ks @ self._Linv.transpose(-1, -2)
        else:
            W = torch.linalg.solve_triangular(self._L, Ks.transpose(-1, -2), upper=False).transpose(-1, -2)
        v = None
        if var:
            kss = gp.covar_module(Xn, diag=True).reshape(Ks.shape[0], -1)
            v = (kss - (W * W).sum(-1)).clamp_min(0.0)
        return mean, v, W

    def _cross_kernel(self, Xn: Tensor) -> Tensor:
        """``k(Xn, X_train)``: ``c × k`` normalised inputs → ``m × c × n``.

        The Matérn-5/2 is evaluated here with one GEMM for the squared distances and
        in-place elementwise steps: GPyTorch's generic path allocates several ``c × n``
        temporaries and made up half of the time of ``predict``. Other kernels use GPyTorch.
        """
        if not self._fast_kernel:
            Ks = self.gp.covar_module(Xn, self._Xn).to_dense()
            return Ks if Ks.dim() == 3 else Ks.unsqueeze(0)
        A = (Xn - self._center) / self._lengthscale  # m × c × k
        d2 = torch.baddbmm(self._train_sq, A, self._train_scaled.transpose(-1, -2), alpha=-2.0)
        d2.add_(A.pow(2).sum(-1, keepdim=True))
        s = d2.clamp_min_(0.0).sqrt_().mul_(math.sqrt(5.0))  # √5·r, in place of d2
        k = s.pow(2).div_(3.0).add_(s).add_(1.0)
        return k.mul_(s.neg_().exp_())

    def predict(
        self, X: np.ndarray, batch_size: int = 20_000, observation_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``N × d`` → ``(mean, var)``, each ``N × m`` in the units of ``y``.

        ``var`` is the latent-function variance; ``observation_noise=True`` adds the
        learned noise variance (the predictive variance of a new measurement).
        """
        X = self._check_predict_input(X, batch_size)
        if isinstance(self.projection_, ColumnSelection):
            rows, cols = self.projection_.unseen(X)
            if rows.any():
                warnings.warn(f"{int(rows.sum())} of {len(X)} rows vary in features that were constant on the fitting "
                              f"rows (columns {cols[:10].tolist()}): the GP keeps only the columns that varied, so it "
                              "predicts those rows as if the difference were not there; fit with X_pool covering them",
                              UnseenFeatureWarning, stacklevel=2)
        m = self.num_outputs
        mean_out = np.empty((X.shape[0], m))
        var_out = np.empty((X.shape[0], m))
        block = max(PREDICT_MIN_BLOCK, PREDICT_BLOCK_ELEMENTS // (m * self._train_Z.shape[0]))
        batch_size = max(1, min(batch_size, block))
        for start in range(0, X.shape[0], batch_size):
            mean, var, _ = self._latent(self._as_tensor(X[start : start + batch_size]))
            if observation_noise:
                var = var + self._noise.unsqueeze(-1)
            mean_out[start : start + batch_size] = (mean.T * self._y_std + self._y_mean).numpy()
            var_out[start : start + batch_size] = (var.T * self._y_std**2).numpy()
        return mean_out, var_out

    @torch.no_grad()
    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent posterior covariance ``m × na × nb`` (units of ``y`` squared)."""
        Xa, Xb = self._as_tensor(self._check_predict_input(Xa)), self._as_tensor(self._check_predict_input(Xb))
        _, _, Wa = self._latent(Xa, var=False)
        _, _, Wb = self._latent(Xb, var=False)
        gp = self.gp
        kab = gp.covar_module(gp.input_transform(self.features(Xa)), gp.input_transform(self.features(Xb))).to_dense()
        kab = kab if kab.dim() == 3 else kab.unsqueeze(0)
        cov = kab - Wa @ Wb.transpose(-1, -2)
        return (cov * (self._y_std**2)[:, None, None]).numpy()

    def noise_variance(self) -> np.ndarray:
        """Learned observation-noise variance per output (``m``), in units of ``y`` squared."""
        if self.gp is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return (self._noise * self._y_std**2).numpy()
