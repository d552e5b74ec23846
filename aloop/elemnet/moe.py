"""Mixture of experts over ElemNet source models (Chang, Wang & Ertekin 2022, npj Comput. Mater. 8:242)."""

from __future__ import annotations

import copy
import numbers
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from torch import nn

from aloop.elemnet.model import ElemNet
from aloop.elemnet.transfer import _check_xy, check_enough_rows, hold_out
from aloop.training import check_seed, train_network


class MixtureOfExperts(nn.Module):
    """Experts' hidden-layer features, gated and summed, then a fresh property head.

    ``h(x) = Σ_i g_i(x) · E_i(x)`` with ``E_i`` the layer-``layer`` activations of expert
    ``i`` (``n × w``, all experts share the width), ``g`` a top-k softmax gate that is either
    input-independent (one learned logit per expert, as in Chang et al.) or computed from
    the fractions by a linear layer; ``y = head(h)`` (``n × 1``).

    Args:
        experts: source ElemNets (deep-copied; frozen unless ``train_experts``).
        layer: hidden layer (1-based) whose activations each expert contributes.
        top_k: number of experts kept by the gate (the others get weight 0).
        gate: ``"fixed"`` (input-independent) or ``"input"`` (input-dependent).
        head_hidden: width of the head's hidden layer (0 = linear head).
        gate_noise: std of Gaussian noise added to the gate logits in training (noisy
            top-k gating, Shazeer et al. 2017) so experts outside the top-k still get tried.
    """

    def __init__(self, experts: list[ElemNet], layer: int = 16, top_k: int = 2,
                 gate: Literal["fixed", "input"] = "fixed", head_hidden: int = 64,
                 train_experts: bool = False, gate_noise: float = 0.5) -> None:
        super().__init__()
        self.gate_noise = gate_noise
        if not experts:
            raise ValueError("a mixture of experts needs at least one expert")
        deepest = min(e.n_hidden for e in experts)
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 1 <= layer <= deepest:
            raise ValueError(f"layer must be a hidden layer of every expert, 1..{deepest}, got {layer!r}")
        check_top_k(top_k, len(experts))
        widths = {e.hidden_widths[layer - 1] for e in experts}
        if len(widths) != 1:
            raise ValueError(f"experts' layer-{layer} widths differ: {sorted(widths)}")
        if gate not in ("fixed", "input"):
            raise ValueError(f"gate must be 'fixed' or 'input', got {gate!r}")
        self.layer, self.gate_kind, self.train_experts = layer, gate, train_experts
        self.top_k = int(top_k)
        self.experts = nn.ModuleList(copy.deepcopy(e) for e in experts)
        self.experts.requires_grad_(train_experts)
        width = widths.pop()
        self.gate_logits = nn.Parameter(torch.zeros(len(experts)))
        self.gate_net = nn.Linear(experts[0].hidden[0].in_features, len(experts)) if gate == "input" else None
        self.head = (nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(), nn.Linear(head_hidden, 1))
                     if head_hidden else nn.Linear(width, 1))

    def expert_features(self, x: torch.Tensor) -> torch.Tensor:
        """``n × 86`` → ``n × n_experts × w`` stacked expert activations."""
        return torch.stack([e.activations(x, self.layer) for e in self.experts], dim=1)

    def gate_weights(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Gate weights ``n × n_experts`` (input gate) or ``n_experts`` (fixed gate); rows sum to 1."""
        logits = self.gate_logits if self.gate_net is None else self.gate_logits + self.gate_net(x)
        if self.training and self.gate_noise > 0:
            logits = logits + self.gate_noise * torch.randn_like(logits)
        top = torch.topk(logits, self.top_k, dim=-1)
        masked = torch.full_like(logits, float("-inf")).scatter(-1, top.indices, top.values)
        return torch.softmax(masked, dim=-1)

    def combine(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Gate-weighted sum of precomputed expert features (``n × E × w``) → ``n × 1``."""
        g = self.gate_weights(x)
        g = g.unsqueeze(-1) if g.ndim == 2 else g.view(1, -1, 1)
        return self.head((g * feats).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.expert_features(x), x)


def check_top_k(top_k: object, n_experts: int) -> None:
    """Refuse a ``top_k`` that is not a whole number in 1..``n_experts``."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise ValueError(f"top_k (experts the gate keeps) must be a whole number ≥ 1, got {top_k!r}")
    if top_k > n_experts:
        raise ValueError(f"top_k={top_k} but the mixture has only {n_experts} expert(s); the gate cannot keep more "
                         f"experts than there are (leave top_k unset for min(2, number of experts))")


class _OnCachedFeatures(nn.Module):
    """Adapter for frozen experts: maps row indices to ``model.combine`` of features computed once."""

    def __init__(self, model: MixtureOfExperts, X: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("feats", model.expert_features(X), persistent=False)
        self.register_buffer("X", X, persistent=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model.combine(self.feats[idx], self.X[idx])


class MoERegressor(RegressorMixin, BaseEstimator):
    """scikit-learn regressor: a mixture of ElemNet source experts with a fresh head, early-stopped.

    With frozen experts (the default) their features are computed once, so training the
    gate and head takes seconds. ``gate_weights_`` reports which sources the target used.
    ``sources=None`` (the default) means the default experts: every shipped source model not
    initialised from another (``aloop.elemnet.sources.moe_experts``).

    ``guard=True`` protects against negative transfer: the same model is also trained on
    each expert alone, and the mixture is kept only if its early-stopping validation MAE
    is at least as good as the best single expert's; otherwise that expert is used
    (``gate_weights_`` then puts weight 1 on it and ``guard_`` says what happened).
    ``top_k=None`` (the default) keeps two experts, or the one there is.
    """

    def __init__(self, sources: tuple[str, ...] | None = None, layer: int = 16, top_k: int | None = None,
                 gate: Literal["fixed", "input"] = "fixed", head_hidden: int = 64, train_experts: bool = False,
                 lr: float = 1e-3, batch_size: int = 64, max_epochs: int = 500, patience: int = 30,
                 val_fraction: float = 0.1, weight_decay: float = 1e-5, seed: int = 0,
                 experts: list[ElemNet] | None = None, guard: bool = True) -> None:
        self.sources, self.layer, self.top_k, self.gate = sources, layer, top_k, gate
        self.head_hidden, self.train_experts, self.lr, self.batch_size = head_hidden, train_experts, lr, batch_size
        self.max_epochs, self.patience, self.val_fraction = max_epochs, patience, val_fraction
        self.weight_decay, self.seed, self.experts, self.guard = weight_decay, seed, experts, guard

    def _experts(self) -> tuple[list[ElemNet], list[str]]:
        """The expert networks and their names."""
        if self.experts is not None and self.sources is not None:
            raise ValueError("give experts (networks) or sources (shipped model names), not both: experts would be "
                             "used and sources ignored")
        if self.experts is not None:
            return list(self.experts), [f"expert{i}" for i in range(len(self.experts))]
        from aloop.elemnet.sources import load_source_model, moe_experts

        if isinstance(self.sources, str):
            raise TypeError(f"sources must be a list of source model names, got one string {self.sources!r}; "
                            f"wrap it in a list")
        names = list(moe_experts() if self.sources is None else self.sources)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"sources name {', '.join(map(repr, repeated))} more than once; give each source once")
        if not names:
            raise ValueError("sources is empty: a mixture needs at least one source model (leave it unset for the "
                             "default experts)")
        return [load_source_model(s) for s in names], names

    def fit(self, X: np.ndarray, y: np.ndarray) -> MoERegressor:
        check_seed(self.seed)
        if isinstance(self.head_hidden, bool) or not isinstance(self.head_hidden, numbers.Integral) \
                or self.head_hidden < 1:
            raise ValueError(f"head_hidden (units of the property head's hidden layer) must be a whole number ≥ 1, "
                             f"got {self.head_hidden!r}")
        Xt, yt = _check_xy(X, y)
        if yt.shape[1] != 1:
            raise ValueError(f"MoERegressor predicts one target; y has {yt.shape[1]} columns (fit one model per target)")
        check_enough_rows(len(Xt))
        self.mean_, self.std_ = float(yt.mean()), float(yt.std()) or 1.0
        experts, names = self._experts()
        top_k = min(2, len(experts)) if self.top_k is None else self.top_k
        check_top_k(top_k, len(experts))
        self.model_, self.val_mae_, self.gate_weights_ = self._fit_one(Xt, yt, experts, names, top_k)
        self.guard_ = {"mixture_val_mae": self.val_mae_, "mixture_gate_weights": self.gate_weights_, "kept": "mixture"}
        if self.guard and len(experts) > 1:
            singles = {name: self._fit_one(Xt, yt, [expert], [name], 1) for name, expert in zip(names, experts, strict=True)}
            self.guard_.update({f"{n}_val_mae": fitted[1] for n, fitted in singles.items()})
            best = min(singles, key=lambda n: singles[n][1])
            if singles[best][1] < self.val_mae_:
                self.model_, self.val_mae_ = singles[best][:2]
                self.gate_weights_ = {n: float(n == best) for n in names}
                self.guard_["kept"] = best
        return self

    def _fit_one(self, Xt: torch.Tensor, yt: torch.Tensor, experts: list[ElemNet],
                 names: list[str], top_k: int) -> tuple[MixtureOfExperts, float, dict[str, float]]:
        """Train a mixture of ``experts`` → (model in eval mode, early-stopping val MAE, gate weight per name)."""
        # Seeded initialisation and gate noise, in a stream of their own: the caller's random state is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(self.seed)
            model = MixtureOfExperts(experts, self.layer, top_k, self.gate, self.head_hidden, self.train_experts)
            ys = (yt - self.mean_) / self.std_
            val_idx, tr_idx = hold_out(len(Xt), self.val_fraction, gen)
            net: nn.Module = model if self.train_experts else _OnCachedFeatures(model, Xt)
            rows = Xt if self.train_experts else torch.arange(len(Xt))
            val_mae = self.std_ * train_network(
                net, rows[tr_idx], ys[tr_idx], rows[val_idx], ys[val_idx], nn.functional.l1_loss, self.lr,
                self.batch_size, self.max_epochs, self.patience, self.weight_decay, self.seed,
            )
        model.eval()
        with torch.no_grad():
            g = model.gate_weights(Xt) if self.gate == "input" else model.gate_weights()
        g = g.mean(0) if g.ndim == 2 else g
        return model, val_mae, dict(zip(names, g.tolist(), strict=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise NotFittedError("MoERegressor is not fitted; call fit(X, y) first")
        Xt, _ = _check_xy(X)
        if len(Xt) == 0:
            return np.zeros(0)
        with torch.inference_mode():
            out = torch.cat([self.model_(Xt[i : i + 16384]).squeeze(1) for i in range(0, len(Xt), 16384)])
        return out.numpy() * self.std_ + self.mean_
