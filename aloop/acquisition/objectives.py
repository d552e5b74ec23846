"""What a campaign optimises: maximise, minimise, hit a target value or a window, or several goals at once.

Each single objective reads one surrogate output (``output``, a column of the ``N × m``
predictions) and defines a *utility* (higher is better) plus the Gaussian scores the
policies need, so every policy works with every objective:

============  ==================  =============================  ===========================
objective     utility u(y)        log-EI / log-PI                UCB / exploit (Thompson)
============  ==================  =============================  ===========================
Maximize      y                   closed form on N(μ, σ²)        μ + √β σ  /  μ
Minimize      −y                  closed form on N(−μ, σ²)       −μ + √β σ  /  −μ
Target t      −|y − t|            EI of closeness (hat           √β σ − |μ − t|  /  −|μ − t|
                                  function), PI = P(|f−t| < d*)
Window lo–hi  −dist(y, [lo, hi])  both log P(lo ≤ f ≤ hi)        √β σ − |μ − c|  /  −|μ − c|
============  ==================  =============================  ===========================

(``d*`` the best distance to the target so far, ``c`` the window centre.) Inside a window
every value is equally good, so the probability of a hit is the natural score whether or
not a hit was already observed: it is the expected number of new hits.

>>> Window(1.1, 1.7, name="band gap", units="eV").utility(np.array([1.0, 1.4, 2.0]))
array([-0.1, -0. , -0.3])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

from aloop.acquisition import gaussian as g


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class Objective:
    """One goal on one surrogate output; subclasses fix the utility and its Gaussian scores."""

    output: int = 0
    name: str = "y"
    units: str = ""
    #: The output's typical spread (raw units): numerical floors (the smallest σ, a target's smallest
    #: distance) are relative to it, so an objective measured in 1e-9 S/cm scores as one in volts.
    #: :func:`aloop.acquisition.propose` sets it from the observations.
    scale: float = field(default=1.0, compare=False, repr=False)

    @property
    def min_std(self) -> float:
        return g.MIN_STD * self.scale

    #: Whether the scores use the incumbent (best utility observed so far).
    needs_best: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.output, bool) or not isinstance(self.output, int | np.integer) or self.output < 0:
            raise ValueError(f"{type(self).__name__} output must be a surrogate output index >= 0, got {self.output!r}")
        if not (isinstance(self.scale, int | float) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"{type(self).__name__} scale must be a finite number > 0, got {self.scale!r}")

    def utility(self, y: np.ndarray) -> np.ndarray:
        """Observed or predicted values (any shape) → utility, higher is better."""
        raise NotImplementedError

    def utility_torch(self, y: torch.Tensor) -> torch.Tensor:
        """The same utility on tensors (for BoTorch Monte-Carlo objectives)."""
        raise NotImplementedError

    def best_utility(self, y: np.ndarray) -> float:
        """The incumbent: the largest utility among observed values ``y`` (``n``)."""
        y = np.asarray(y, dtype=np.float64).ravel()
        if y.size == 0:
            raise ValueError(f"no observations of {self.name!r} to take the best value from")
        if not np.isfinite(y).all():
            raise ValueError(f"observed {self.name!r} has {int((~np.isfinite(y)).sum())} NaN/inf values")
        return float(self.utility(y).max())

    def log_ei(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        raise NotImplementedError

    def log_ei_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        """Supremum (or upper bound) of :meth:`log_ei` over smaller σ and larger ``best``."""
        return self.log_ei(mean, std, best)

    def log_pi(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        raise NotImplementedError

    def log_pi_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        raise NotImplementedError

    def ucb(self, mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
        """Optimistic score: utility at the optimistic end of ``mean ± √β σ``."""
        raise NotImplementedError

    def exploit(self, f: np.ndarray) -> np.ndarray:
        """Score of a point value (a posterior mean, or a Thompson sample): higher is better."""
        return self.utility(f)

    def fmt(self, value: float) -> str:
        """``value`` with the objective's units, for proposal reasons."""
        return f"{value:.3g} {self.units}".rstrip()


@dataclass(frozen=True, kw_only=True)
class _Linear(Objective):
    sign: ClassVar[float] = 1.0

    def utility(self, y: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(y, dtype=np.float64)

    def utility_torch(self, y: torch.Tensor) -> torch.Tensor:
        return self.sign * y

    def log_ei(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_ei(self.sign * mean, std, best, self.min_std)

    def log_pi(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_pi(self.sign * mean, std, best, self.min_std)

    def log_pi_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_pi_bound(self.sign * mean, std, best, self.min_std)

    def ucb(self, mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
        return self.sign * mean + math.sqrt(beta) * std


@dataclass(frozen=True, kw_only=True)
class Maximize(_Linear):
    """Larger is better (zT, conductivity)."""

    sign: ClassVar[float] = 1.0


@dataclass(frozen=True, kw_only=True)
class Minimize(_Linear):
    """Smaller is better (overpotential, formation energy)."""

    sign: ClassVar[float] = -1.0


@dataclass(frozen=True)
class Target(Objective):
    """Closest to ``value`` is best (a band gap of 1.4 eV); utility ``−|y − value|``."""

    value: float

    #: Smallest best-distance used by EI/PI once the target was hit exactly (relative to ``scale + |value|``).
    min_dist: ClassVar[float] = 1e-9

    def __post_init__(self) -> None:
        super().__post_init__()
        _finite("Target value", self.value)

    def utility(self, y: np.ndarray) -> np.ndarray:
        return -np.abs(np.asarray(y, dtype=np.float64) - self.value)

    def utility_torch(self, y: torch.Tensor) -> torch.Tensor:
        return -(y - self.value).abs()

    def _dist(self, best: float) -> float:
        return max(-best, self.min_dist * (self.scale + abs(self.value)))

    def log_ei(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_target_ei(mean, std, self.value, self._dist(best), self.min_std)

    def log_ei_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_target_ei_bound(mean, std, self.value, self._dist(best), self.min_std)

    def log_pi(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        d = self._dist(best)
        return g.log_window_prob(mean, std, self.value - d, self.value + d, self.min_std)

    def log_pi_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        d = self._dist(best)
        return g.log_window_prob_bound(mean, std, self.value - d, self.value + d, self.min_std)

    def ucb(self, mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
        return math.sqrt(beta) * std - np.abs(mean - self.value)


@dataclass(frozen=True)
class Window(Objective):
    """Any value in ``[lo, hi]`` is a success (band gap 1.1–1.7 eV); scored by the probability of a hit."""

    lo: float
    hi: float

    needs_best: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        lo, hi = _finite("Window lo", self.lo), _finite("Window hi", self.hi)
        if not lo < hi:
            detail = f"got lo={lo} > hi={hi}" if lo > hi else "use Target for one value"
            raise ValueError(f"Window needs lo < hi, {detail}")

    @property
    def centre(self) -> float:
        return 0.5 * (self.lo + self.hi)

    def utility(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return -(np.maximum(self.lo - y, 0.0) + np.maximum(y - self.hi, 0.0))

    def utility_torch(self, y: torch.Tensor) -> torch.Tensor:
        return -((self.lo - y).clamp_min(0.0) + (y - self.hi).clamp_min(0.0))

    def log_ei(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_window_prob(mean, std, self.lo, self.hi, self.min_std)

    def log_ei_bound(self, mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
        return g.log_window_prob_bound(mean, std, self.lo, self.hi, self.min_std)

    log_pi = log_ei
    log_pi_bound = log_ei_bound

    def ucb(self, mean: np.ndarray, std: np.ndarray, beta: float) -> np.ndarray:
        return math.sqrt(beta) * std - np.abs(mean - self.centre)

    def exploit(self, f: np.ndarray) -> np.ndarray:
        # Windows are symmetric about the centre, so this ranks every hit above every miss.
        return -np.abs(np.asarray(f, dtype=np.float64) - self.centre)


@dataclass(frozen=True)
class MultiObjective:
    """Several objectives at once; the answer is a Pareto front in utility space (all maximised).

    ``ref_point`` (utility space, one entry per objective) bounds the hypervolume; by
    default it is inferred from the observations: the Pareto front's nadir less 10 % of each
    objective's observed range (of every observation, so one point dominating the rest still
    leaves room to improve on it).
    """

    objectives: Sequence[Objective]
    ref_point: Sequence[float] | None = None
    _outputs: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        objs = tuple(self.objectives)
        if len(objs) < 2 or not all(isinstance(o, Objective) for o in objs):
            raise ValueError("MultiObjective needs a list of at least two Objective instances")
        if self.ref_point is not None and len(self.ref_point) != len(objs):
            raise ValueError(f"ref_point has {len(self.ref_point)} entries for {len(objs)} objectives")
        object.__setattr__(self, "objectives", objs)
        object.__setattr__(self, "_outputs", tuple(o.output for o in objs))

    @property
    def outputs(self) -> tuple[int, ...]:
        return self._outputs

    def utilities(self, Y: np.ndarray) -> np.ndarray:
        """``n × m`` surrogate outputs → ``n × k`` utilities (one column per objective)."""
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2:
            raise ValueError(f"expected an n × m array of outputs, got shape {Y.shape}")
        return np.stack([o.utility(Y[:, o.output]) for o in self.objectives], axis=1)

    def utilities_torch(self, Y: torch.Tensor) -> torch.Tensor:
        """``... × m`` tensor → ``... × k`` utilities."""
        return torch.stack([o.utility_torch(Y[..., o.output]) for o in self.objectives], dim=-1)

    def pareto_mask(self, Y: np.ndarray) -> np.ndarray:
        """``n`` booleans: which rows of ``Y`` (``n × m`` outputs) are Pareto-optimal."""
        U = torch.from_numpy(self.utilities(Y))
        return is_non_dominated(U, deduplicate=False).numpy()

    def reference_point(self, Y: np.ndarray) -> np.ndarray:
        """The hypervolume reference point in utility space (``k``)."""
        if self.ref_point is not None:
            return np.asarray(self.ref_point, dtype=np.float64)
        U = self.utilities(Y)
        if U.shape[0] == 0:
            raise ValueError("no observations to infer the hypervolume reference point from; pass ref_point")
        nadir = U[is_non_dominated(torch.from_numpy(U)).numpy()].min(axis=0)
        span = U.max(axis=0) - U.min(axis=0)
        # An objective with no spread yet: 10 % of its size, or 1 (utility units) at zero.
        span = np.where(span > 0, span, np.where(nadir != 0, np.abs(nadir), 1.0))
        return nadir - 0.1 * span

    def hypervolume(self, Y: np.ndarray, ref_point: Sequence[float] | None = None) -> float:
        """Hypervolume dominated by ``Y`` (``n × m`` outputs) above the reference point."""
        ref = np.asarray(ref_point, dtype=np.float64) if ref_point is not None else self.reference_point(Y)
        U = torch.from_numpy(self.utilities(Y))
        U = U[is_non_dominated(U)]
        U = U[(U > torch.from_numpy(ref)).all(dim=-1)]
        if U.shape[0] == 0:
            return 0.0
        return float(Hypervolume(torch.from_numpy(ref)).compute(U))
