"""Surrogates built on fine-tuned ElemNets: the fine-tuning routine, an ElemNet deep ensemble, a deep-kernel GP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import torch
from botorch.posteriors import Posterior
from torch import Tensor, nn

from aloop.chem.elements import N_ELEMENTS
from aloop.elemnet.model import HIDDEN_WIDTHS, ElemNet
from aloop.elemnet.transfer import FineTuneConfig, finetune
from aloop.features.base import check_fractions
from aloop.surrogates.base import NotFittedError, Surrogate, check_posterior_input, check_training_data
from aloop.surrogates.ensemble import EnsembleSurrogate, module_dtype, split_rows, standardise
from aloop.surrogates.gp import GPSurrogate


@dataclass
class FineTuned:
    """A fine-tuned ElemNet that predicts ``y`` as ``net(x) · y_std + y_mean``; ``val_rows`` were held out."""

    net: ElemNet
    y_mean: np.ndarray
    y_std: np.ndarray
    val_rows: np.ndarray


def fine_tune_elemnet(
    source: nn.Module | None,
    X: np.ndarray,
    y: np.ndarray,
    hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS,
    lr: float = 1e-4,
    batch_size: int = 32,
    max_epochs: int = 200,
    patience: int = 20,
    val_fraction: float = 0.1,
    loss: Literal["l1", "mse"] = "l1",
    seed: int = 0,
) -> FineTuned:
    """Fine-tune a copy of ``source`` (an ``ElemNet``; None: a fresh one with ``hidden_widths``) on ``n × 86`` fractions.

    ``aloop.elemnet.transfer.finetune`` in ModFineTune mode (scratch when ``source`` is None):
    all layers train (Adam, ``lr``) with a fresh ``m``-output layer on standardised targets,
    early-stopped on a random ``val_fraction`` of the rows. ``source`` is left untouched.
    """
    X, y = check_training_data(X, y)
    if X.shape[1] != N_ELEMENTS:
        raise ValueError(f"ElemNet input must be the n × {N_ELEMENTS} fraction matrix, got {X.shape[1]} columns")
    if source is not None and not isinstance(getattr(source, "output", None), nn.Linear):
        raise TypeError(f"source must be an ElemNet (a module with a Linear `output` layer), got {type(source).__name__}")
    train, val = split_rows(len(X), np.random.default_rng(seed), False, val_fraction)
    config = FineTuneConfig(mode="scratch" if source is None else "modfinetune", lr=lr, batch_size=batch_size,
                            max_epochs=max_epochs, patience=patience, seed=seed, loss=loss)
    with torch.random.fork_rng():
        net, _ = finetune(X[train], y[train], source, config, hidden_widths=hidden_widths,  # type: ignore[arg-type]
                          validation=(X[val], y[val]))
    # finetune() folds the target scaling into the output layer; express the net in
    # standardised units again so members' outputs stay O(1) in float32 and the affine map
    # back to raw units happens in float64 (as the ensemble's variance needs).
    y_mean, y_std = standardise(y[train])
    with torch.no_grad():
        w, b = net.output.weight.double(), net.output.bias.double()
        mu, sd = torch.as_tensor(y_mean, dtype=torch.float64), torch.as_tensor(y_std, dtype=torch.float64)
        net.output.weight.copy_(w / sd.unsqueeze(1))
        net.output.bias.copy_((b - mu) / sd)
    net.requires_grad_(True)
    return FineTuned(net, y_mean, y_std, val if not np.array_equal(val, train) else np.array([], dtype=int))


class _FractionInputs:
    """ElemNet surrogates read ``n × 86`` fractions: rows of amounts are rescaled as the featurizers do."""

    def _check_predict_input(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        return check_fractions(super()._check_predict_input(X, batch_size), type(self).__name__)  # type: ignore[misc]


class ElemNetEnsembleSurrogate(_FractionInputs, EnsembleSurrogate):
    """Deep ensemble of ElemNets fine-tuned from one source network on the ``n × 86`` fraction matrix.

    Member ``i`` starts from ``source`` (None: from scratch with ``hidden_widths``), gets a
    fresh output layer and its own seed (``seed + i``: output-layer initialisation,
    validation split, batch order), and is fine-tuned by ``fine_tune_elemnet``. The
    members' spread is calibrated on their validation rows.

    Example:
        >>> X = np.random.default_rng(0).dirichlet(np.ones(86), size=60)
        >>> ens = ElemNetEnsembleSurrogate(n_members=2, hidden_widths=(16, 8), max_epochs=5).fit(X, X[:, 0])
        >>> ens.predict(X[:3])[0].shape
        (3, 1)
    """

    def __init__(
        self,
        source: nn.Module | None = None,
        n_members: int = 5,
        hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS,
        lr: float = 1e-4,
        batch_size: int = 32,
        max_epochs: int = 200,
        patience: int = 20,
        val_fraction: float = 0.1,
        loss: Literal["l1", "mse"] = "l1",
        calibrate: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(calibrate=calibrate)
        # Kept out of the module tree: the source is the caller's network, not part of this model.
        self._source = {"net": source}
        self.n_members = n_members
        self.train_kwargs = dict(hidden_widths=tuple(hidden_widths), lr=lr, batch_size=batch_size,
                                 max_epochs=max_epochs, patience=patience, val_fraction=val_fraction, loss=loss)
        self.seed = seed
        self.nets = nn.ModuleList()

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on ``n × 86`` fractions and ``n`` / ``n × m`` targets."""
        X, y = check_training_data(X, y)
        X = check_fractions(X, type(self).__name__)
        held_out = np.zeros((self.n_members, len(X)), dtype=bool)
        tuned = []
        for i in range(self.n_members):
            tuned.append(fine_tune_elemnet(self._source["net"], X, y, seed=self.seed + i, **self.train_kwargs))
            held_out[i, tuned[-1].val_rows] = True
        self.nets = nn.ModuleList(t.net for t in tuned)
        self._y_mean, self._y_std = tuned[0].y_mean, tuned[0].y_std
        self.n_features, self._num_outputs = X.shape[1], y.shape[1]
        self._fit_calibration(X, y, held_out)
        return self

    def _members(self, X: Tensor) -> Tensor:
        Xf = X.to(module_dtype(self.nets))
        out = torch.stack([net(Xf) for net in self.nets]).to(torch.float64)
        return out * torch.as_tensor(self._y_std) + torch.as_tensor(self._y_mean)


class DeepKernelGP(_FractionInputs, Surrogate):
    """Exact GP on the last-hidden-layer activations of an ElemNet fine-tuned on the same data.

    The network (``source``, or a fresh ElemNet with ``hidden_widths`` when None) is
    fine-tuned on the ``n × 86`` fraction matrix by ``fine_tune_elemnet``, then frozen; a
    ``GPSurrogate`` with PCA projection is fitted on the activations of hidden layer
    ``layer`` (default: the last). The feature map stays differentiable, so
    ``posterior`` supports gradient-based acquisition optimisation on fractions.

    Example:
        >>> X = np.random.default_rng(0).dirichlet(np.ones(86), size=50)
        >>> dk = DeepKernelGP(hidden_widths=(16, 8), finetune={"max_epochs": 5}).fit(X, X[:, 0])
        >>> dk.predict(X[:2])[1].shape
        (2, 1)
    """

    def __init__(
        self,
        source: torch.nn.Module | None = None,
        hidden_widths: tuple[int, ...] | None = None,
        layer: int | None = None,
        n_components: int = 16,
        finetune: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self._source = {"net": source}  # the caller's network: not part of this module tree
        self.hidden_widths = hidden_widths
        self.layer = layer
        self.n_components = n_components
        self.finetune = dict(finetune or {})
        self.seed = seed
        self.net: torch.nn.Module | None = None
        self.gp_: GPSurrogate | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, X_pool: np.ndarray | None = None) -> Self:
        """Fit on ``n × 86`` fractions and ``n`` / ``n × m`` targets (``X_pool``: fractions for the PCA)."""
        X, y = check_training_data(X, y)
        X = check_fractions(X, type(self).__name__)
        kwargs = dict(self.finetune)
        if self.hidden_widths is not None:
            kwargs["hidden_widths"] = tuple(self.hidden_widths)
        tuned = fine_tune_elemnet(self._source["net"], X, y, seed=self.seed, **kwargs)
        self.net = tuned.net.requires_grad_(False).eval()
        self._layer = self.layer or self.net.n_hidden
        self.n_features = X.shape[1]
        pool = None if X_pool is None else self._activations_np(self._check_predict_input(X_pool))
        self.gp_ = GPSurrogate(projection="pca", n_components=self.n_components, seed=self.seed)
        self.gp_.fit(self._activations_np(X), y, X_pool=pool)
        self._num_outputs = y.shape[1]
        return self

    def features(self, X: Tensor) -> Tensor:
        """``batch_shape × q × 86`` fractions → ``batch_shape × q × width`` activations (float64)."""
        return self.net.activations(X.to(next(self.net.parameters()).dtype), self._layer).to(torch.float64)

    @torch.no_grad()
    def _activations_np(self, X: np.ndarray, batch_size: int = 20_000) -> np.ndarray:
        return np.concatenate(
            [self.features(self._as_tensor(X[i : i + batch_size])).numpy() for i in range(0, len(X), batch_size)]
        )

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(self, X: Tensor, output_indices: list[int] | None = None, **kwargs: Any) -> Posterior:
        """Posterior over ``batch_shape × q × m`` at fractions ``X`` (``batch_shape × q × 86``)."""
        if self.gp_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        check_posterior_input(self, X, self.n_features)
        return self.gp_.posterior(self.features(X), output_indices=output_indices, **kwargs)

    def predict(
        self, X: np.ndarray, batch_size: int = 20_000, observation_noise: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """``N × 86`` → ``(mean, var)``, each ``N × m`` (latent variance unless ``observation_noise``)."""
        X = self._check_predict_input(X, batch_size)
        if len(X) == 0:
            return self._empty_prediction()
        parts = [
            self.gp_.predict(self._activations_np(X[i : i + batch_size]), batch_size, observation_noise)
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def covariance(self, Xa: np.ndarray, Xb: np.ndarray) -> np.ndarray:
        """Latent posterior covariance ``m × na × nb``."""
        Xa, Xb = self._check_predict_input(Xa), self._check_predict_input(Xb)
        return self.gp_.covariance(self._activations_np(Xa), self._activations_np(Xb))

    def noise_variance(self) -> np.ndarray:
        """Learned observation-noise variance per output (``m``) of the GP on the activations."""
        if self.gp_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(X, y) first")
        return self.gp_.noise_variance()
