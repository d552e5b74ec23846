"""The ElemNet network (Jha et al. 2018) in PyTorch: 86 fractions → 16 hidden ReLU layers → 1 output."""

from __future__ import annotations

import torch
from torch import nn

from aloop.chem.elements import N_ELEMENTS

#: Hidden-layer widths of the published architecture (17 linear layers with the output).
HIDDEN_WIDTHS: tuple[int, ...] = (1024,) * 4 + (512,) * 3 + (256,) * 3 + (128,) * 3 + (64,) * 2 + (32,)
#: Dropout after hidden layers 4, 7, 10 and 13 (1-based) with these drop rates
#: (the original TensorFlow code passes keep-probabilities 0.8/0.9/0.7/0.8).
DROPOUT_AFTER: dict[int, float] = {4: 0.2, 7: 0.1, 10: 0.3, 13: 0.2}


class ElemNet(nn.Module):
    """ElemNet: a 17-layer fully connected network on elemental fractions.

    Args:
        dropout: apply the published dropout (Gupta et al. 2021 disable it for stable
            features and lower error).
        hidden_widths: layer widths; the default is the published architecture.

    Example:
        >>> net = ElemNet()
        >>> net(torch.rand(5, 86)).shape
        torch.Size([5, 1])
    """

    def __init__(self, dropout: bool = False, hidden_widths: tuple[int, ...] = HIDDEN_WIDTHS) -> None:
        super().__init__()
        self.dropout = dropout
        self.hidden_widths = tuple(hidden_widths)
        widths = (N_ELEMENTS, *self.hidden_widths)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.drops = nn.ModuleDict(
            {str(k): nn.Dropout(p) for k, p in DROPOUT_AFTER.items() if dropout and k <= len(self.hidden)}
        )
        self.output = nn.Linear(widths[-1], 1)

    @property
    def n_hidden(self) -> int:
        return len(self.hidden)

    def activations(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """Post-ReLU activations of hidden layer ``layer`` (1-based): ``n × 86`` → ``n × width``."""
        if not 1 <= layer <= self.n_hidden:
            raise ValueError(f"layer must be in 1..{self.n_hidden}, got {layer}")
        for k, lin in enumerate(self.hidden[:layer], start=1):
            x = torch.relu(lin(x))
            if k < layer and str(k) in self.drops:
                x = self.drops[str(k)](x)
        return x

    def all_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU activations of every hidden layer, in order (for dead-unit statistics)."""
        out = []
        for k, lin in enumerate(self.hidden, start=1):
            x = torch.relu(lin(x))
            out.append(x)
            if str(k) in self.drops:
                x = self.drops[str(k)](x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``n × 86`` fractions → ``n × 1`` predictions."""
        h = self.activations(x, self.n_hidden)
        if str(self.n_hidden) in self.drops:
            h = self.drops[str(self.n_hidden)](h)
        return self.output(h)


@torch.no_grad()
def he_init(net: ElemNet) -> None:
    """He (Kaiming-normal) weights and zero biases: keeps a deep ReLU stack trainable from scratch."""
    for lin in [*net.hidden, net.output]:
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)


@torch.no_grad()
def dead_unit_fractions(net: ElemNet, X: torch.Tensor, batch_size: int = 8192) -> list[float]:
    """Fraction of units per hidden layer that are never active (> 0) on the rows of ``X`` (``n × 86``)."""
    was_training = net.training
    net.eval()
    alive = [torch.zeros(w, dtype=torch.bool) for w in net.hidden_widths]
    for start in range(0, len(X), batch_size):
        for k, act in enumerate(net.all_activations(X[start : start + batch_size])):
            alive[k] |= (act > 0).any(dim=0)
    net.train(was_training)
    return [1.0 - float(a.float().mean()) for a in alive]
