"""Acquisition policies: score a whole candidate pool from posterior ``(mean, var)`` arrays, vectorised.

A policy is a small frozen dataclass holding its parameters; :func:`get_policy` turns a
name into one (``get_policy("ucb")`` or ``UCB(beta=9.0)`` directly). Deterministic
policies implement ``score(mean, var, objective, best)`` over ``N`` candidates (``mean`` and
``var`` are the ``N`` values of the objective's output) and ``bound``, the supremum of the
score under any further conditioning (smaller variances, a better incumbent); batch
selection uses ``bound`` to certify that its shortlist is exact.

Two policies are stochastic and select their batch themselves in
:mod:`aloop.acquisition.batch`: ``thompson`` (joint posterior samples over a shortlist drawn
from independent per-candidate samples of the whole pool) and ``random``. The multi-objective
policies live in :mod:`aloop.acquisition.multi`.

>>> from aloop.acquisition.objectives import Maximize
>>> LogEI().score(np.array([1.0]), np.array([0.0]), Maximize(), best=0.0).round(6)
array([0.])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from aloop.acquisition.objectives import Objective, Target, Window


def _std(var: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(var, 0.0))


def _log_var(var: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(var, 1e-300))


@dataclass(frozen=True)
class Policy:
    """Base of every acquisition policy."""

    name: ClassVar[str] = ""
    #: Scores are logs of nonnegative quantities, so a feasibility probability adds as ``log p``.
    log_scale: ClassVar[bool] = True
    #: Conditioning on pending/selected points (smaller variances) changes the scores.
    uses_variance: ClassVar[bool] = True
    #: Scores come from ensemble member predictions (``s × N × m``) instead of ``(mean, var)``.
    needs_members: ClassVar[bool] = False
    #: The policy picks its batch itself (random draws) rather than by greedy scoring.
    stochastic: ClassVar[bool] = False
    #: The policy scores several objectives at once.
    multi_objective: ClassVar[bool] = False

    def needs_best(self, objective: Objective) -> bool:
        return False

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        """``N`` scores, higher is better."""
        raise NotImplementedError(f"{type(self).__name__} selects its batch itself")

    def bound(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        """Supremum of :meth:`score` over any variances ``≤ var`` and incumbents ``≥ best``."""
        return self.score(mean, var, objective, best)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        """A short human-readable reason for picking a candidate."""
        return f"{self.name}: mean {_pm(objective, mean, std)}"


def _pm(objective: Objective, mean: float, std: float) -> str:
    return f"{mean:.3g} ± {std:.2g} {objective.units}".rstrip()


def _versus_best(objective: Objective, mean: float, best: float | None) -> str:
    if best is None or isinstance(objective, Window):
        return ""
    if isinstance(objective, Target):
        return f", {abs(mean - objective.value):.2g} from target {objective.value:g} (best so far {-best:.2g} away)"
    incumbent = best * getattr(objective, "sign", 1.0)
    gain = objective.utility(np.array(mean)) - best
    word = "above" if (gain >= 0) == (getattr(objective, "sign", 1.0) > 0) else "below"
    # "above"/"below" is the number's direction; when that is the wrong side of the best, say why it was picked.
    worse = " (a worse mean: picked for its uncertainty)" if gain < 0 else ""
    if objective.name.startswith("log10("):  # a campaign's log10 model: a percentage of a logarithm means nothing
        return (f", {abs(gain):.2g} {word} best {incumbent:.3g} in {objective.name} (a factor {10 ** abs(gain):.2g})"
                + worse)
    if incumbent != 0 and mean * incumbent > 0:  # a percentage only between values of one sign
        return f", {abs(gain / incumbent):.0%} {word} best {incumbent:.3g}{worse}"
    return f", {abs(gain):.2g} {word} best {incumbent:.3g}{worse}"


@dataclass(frozen=True)
class LogEI(Policy):
    """Log expected improvement (Ament et al. 2023 numerics): exploitation and exploration in one number."""

    name: ClassVar[str] = "log_ei"

    def needs_best(self, objective: Objective) -> bool:
        return objective.needs_best

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.log_ei(mean, _std(var), best)

    def bound(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.log_ei_bound(mean, _std(var), best)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        if isinstance(objective, Window):
            p = math.exp(float(objective.log_ei(np.array([mean]), np.array([std]), 0.0)[0]))
            return f"likely in window: P({objective.lo:g}–{objective.hi:g}) = {p:.0%}, mean {_pm(objective, mean, std)}"
        return f"high EI: mean {_pm(objective, mean, std)}{_versus_best(objective, mean, best)}"


@dataclass(frozen=True)
class LogPI(Policy):
    """Log probability of improving on the incumbent (of a hit, for a window)."""

    name: ClassVar[str] = "log_pi"

    def needs_best(self, objective: Objective) -> bool:
        return objective.needs_best

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.log_pi(mean, _std(var), best)

    def bound(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.log_pi_bound(mean, _std(var), best)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        p = math.exp(float(self.score(np.array([mean]), np.array([std**2]), objective, best or 0.0)[0]))
        return f"likely improves: P = {p:.0%}, mean {_pm(objective, mean, std)}{_versus_best(objective, mean, best)}"


@dataclass(frozen=True)
class UCB(Policy):
    """Upper confidence bound ``μ + √β σ`` (BoTorch's convention for ``beta``)."""

    beta: float = 4.0
    name: ClassVar[str] = "ucb"
    log_scale: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if isinstance(self.beta, bool) or not isinstance(self.beta, Real) or not (
                math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"UCB beta must be a finite number ≥ 0, got {self.beta!r}")

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.ucb(mean, _std(var), self.beta)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        """Explains a UCB pick: the optimistic end of ``μ ± √β σ`` in the objective's units (the upper
        bound when maximising, the lower bound when minimising), or for a target or window the
        optimistic distance ``|μ − c| − √β σ`` to it (its centre ``c``), which UCB ranks by."""
        k = math.sqrt(self.beta)
        head = f"optimistic: mean {_pm(objective, mean, std)}, "
        if isinstance(objective, Target | Window):
            centre, what = ((objective.value, f"target {objective.value:g}") if isinstance(objective, Target)
                            else (objective.centre, f"window {objective.lo:g}–{objective.hi:g} (centre {objective.centre:g})"))
            gap = abs(mean - centre) - k * std
            if gap <= 0:  # a negative "distance" reads wrongly: say that the range reaches the centre
                return head + f"{what} within μ ± {k:.2g}σ (|μ−{centre:g}|−{k:.2g}σ = {objective.fmt(gap)})"
            return head + f"optimistic distance to {what}: |μ−{centre:g}|−{k:.2g}σ = {objective.fmt(gap)}"
        if getattr(objective, "sign", 1.0) < 0:
            return head + f"lower bound μ−{k:.2g}σ = {objective.fmt(mean - k * std)}"
        return head + f"upper bound μ+{k:.2g}σ = {objective.fmt(mean + k * std)}"


@dataclass(frozen=True)
class Exploit(Policy):
    """Pure exploitation: the best predicted value, uncertainty ignored."""

    name: ClassVar[str] = "exploit"
    log_scale: ClassVar[bool] = False
    uses_variance: ClassVar[bool] = False

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.exploit(mean)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"exploits: best predicted mean {_pm(objective, mean, std)}"


@dataclass(frozen=True)
class MaxVariance(Policy):
    """Uncertainty sampling: the largest posterior variance (scored as ``log var``)."""

    name: ClassVar[str] = "max_variance"

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return _log_var(var)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"explores: highest remaining uncertainty, mean {_pm(objective, mean, std)}"


@dataclass(frozen=True)
class QueryByCommittee(Policy):
    """Query by committee: where ensemble members disagree most (``log`` of their variance).

    Batches condition on the members' empirical covariance (a Kriging believer on the
    ensemble) unless the surrogate provides its own ``covariance``.
    """

    name: ClassVar[str] = "qbc"
    needs_members: ClassVar[bool] = True

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return _log_var(var)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"members disagree: spread ±{std:.2g} {objective.units} around {mean:.3g}".rstrip()


@dataclass(frozen=True)
class Thompson(Policy):
    """Thompson sampling: each batch slot is the best candidate of one posterior sample.

    The pool is first screened with ``screen_draws`` independent per-candidate samples
    (cheap, O(N) each); the union of their top candidates (``shortlist`` in all) then gets
    *joint* samples from the posterior covariance, conditioned on pending points. With
    ``joint=False`` (or a surrogate without ``covariance``) the independent samples over
    the whole pool are used directly: correlations are ignored but any pool size works, and pending
    points are only kept out of the batch, not conditioned on.
    """

    shortlist: int = 2000
    screen_draws: int = 16
    joint: bool = True
    name: ClassVar[str] = "thompson"
    log_scale: ClassVar[bool] = False
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for key in ("shortlist", "screen_draws"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"Thompson {key} must be a whole number ≥ 1, got {value!r}")
        if not isinstance(self.joint, bool | np.bool_):
            raise ValueError(f"Thompson joint must be true or false, got {self.joint!r}")

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"Thompson sample: best value in one posterior draw, mean {_pm(objective, mean, std)}"


@dataclass(frozen=True)
class Random(Policy):
    """Uniformly random candidates (weighted by the success probability when feasibility is given)."""

    name: ClassVar[str] = "random"
    uses_variance: ClassVar[bool] = False
    stochastic: ClassVar[bool] = True

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"random pick (mean {_pm(objective, mean, std)})"


def known_policies() -> dict[str, type[Policy]]:
    """Name → policy class, single- and multi-objective."""
    from aloop.acquisition.multi import LogNEHVI, ScalarizedLogEI

    classes: list[type[Policy]] = [LogEI, UCB, LogPI, Thompson, Exploit, MaxVariance, QueryByCommittee, Random]
    return {c.name: c for c in [*classes, LogNEHVI, ScalarizedLogEI]}


def get_policy(policy: str | Policy) -> Policy:
    """A policy instance from a name (default parameters) or the instance itself."""
    if isinstance(policy, Policy):
        return policy
    known = known_policies()
    if policy not in known:
        raise ValueError(f"unknown policy {policy!r}; known policies: {', '.join(sorted(known))}")
    return known[policy]()
