"""Several objectives at once: BoTorch's qLogNEHVI on a preselected shortlist, and a cheap scalarised log-EI.

``log_nehvi`` is exact BoTorch (``qLogNoisyExpectedHypervolumeImprovement`` with the
objectives' utilities as an MC objective, pending points as ``X_pending``), but a joint
Monte-Carlo posterior per candidate is too slow for a pool of millions. So the pool is
first cut to ``shortlist`` candidates by a cheap criterion: the top of each objective's
UCB, then the first Pareto layers of the UCB vectors. Greedy sequential selection follows
BoTorch's ``optimize_acqf_discrete`` (each pick becomes pending for the next).

``scalarized_log_ei`` maps a weighted sum of (standardised) Maximize/Minimize utilities
to one Gaussian output and runs the single-objective greedy: fast on any pool, but a
linear scalarisation only reaches the convex part of a Pareto front.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from botorch.acquisition.multi_objective import logei as botorch_logei
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.models.model import Model
from botorch.sampling.get_sampler import get_sampler
from botorch.utils.multi_objective.pareto import is_non_dominated

from aloop.acquisition.batch import BatchResult, Exclusions
from aloop.acquisition.objectives import Maximize, MultiObjective, Objective, _Linear
from aloop.acquisition.policies import Policy


@dataclass(frozen=True)
class LogNEHVI(Policy):
    """Log noisy expected hypervolume improvement (BoTorch) over a UCB-preselected shortlist."""

    shortlist: int = 256
    mc_samples: int = 128
    beta: float = 4.0
    #: Let BoTorch JIT-compile its fused C++ hypervolume kernel (≈3× faster, but the first
    #: call compiles for minutes on a fresh machine, so it is opt-in).
    fused_kernel: bool = False
    name: ClassVar[str] = "log_nehvi"
    multi_objective: ClassVar[bool] = True

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return "grows the Pareto front: high expected hypervolume improvement"


@dataclass(frozen=True)
class ScalarizedLogEI(Policy):
    """Log-EI of a weighted sum of standardised utilities (Maximize/Minimize objectives only)."""

    weights: Sequence[float] | None = None
    name: ClassVar[str] = "scalarized_log_ei"
    multi_objective: ClassVar[bool] = True

    def needs_best(self, objective: Objective) -> bool:
        return True

    def score(self, mean: np.ndarray, var: np.ndarray, objective: Objective, best: float) -> np.ndarray:
        return objective.log_ei(mean, np.sqrt(np.maximum(var, 0.0)), best)

    def reason(self, objective: Objective, mean: float, std: float, best: float | None) -> str:
        return f"high EI of the weighted objectives: score {mean:.3g} ± {std:.2g}, best {best:.3g}"

    def coefficients(self, objective: MultiObjective, m: int, y_observed: np.ndarray | None) -> np.ndarray:
        """``m`` output coefficients ``a`` so that the scalarised utility is ``Y @ a``."""
        objs = objective.objectives
        if not all(isinstance(o, _Linear) for o in objs):
            raise ValueError("scalarized_log_ei needs Maximize/Minimize objectives; use log_nehvi for targets and windows")
        w = np.full(len(objs), 1.0 / len(objs)) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        if w.shape != (len(objs),) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(objs)} nonnegative numbers, not all zero; got {self.weights}")
        scale = np.ones(len(objs))
        if y_observed is not None and y_observed.shape[0] > 1:
            U = objective.utilities(y_observed)
            spread, size = U.std(axis=0), np.abs(U).max(axis=0)
            # An objective constant so far (its spread lost in rounding) would take all the weight: use its size.
            scale = np.where(spread > 1e-6 * size, spread, np.where(size > 0, size, 1.0))
        a = np.zeros(m)
        for o, wj, sj in zip(objs, w, scale, strict=True):
            a[o.output] += wj * o.sign / sj
        return a


SCALARIZED = Maximize(name="weighted utility")


def preselect(
    objective: MultiObjective, mean: np.ndarray, var: np.ndarray, eligible: np.ndarray, size: int, beta: float
) -> np.ndarray:
    """Pool ids of ``size`` promising candidates: per-objective UCB tops, then Pareto layers of UCB vectors."""
    cand = np.flatnonzero(eligible)
    std = np.sqrt(np.maximum(var[cand], 0.0))
    U = np.stack([o.ucb(mean[cand, o.output], std[:, o.output], beta) for o in objective.objectives], axis=1)
    if cand.size > 2 * size * U.shape[1]:
        keep = np.unique(np.concatenate([np.argpartition(-U[:, j], 2 * size)[: 2 * size] for j in range(U.shape[1])]))
        cand, U = cand[keep], U[keep]
    chosen: list[np.ndarray] = []
    left = np.arange(cand.size)
    while left.size and sum(c.size for c in chosen) < size:
        front = is_non_dominated(torch.from_numpy(U[left]), deduplicate=False).numpy()
        chosen.append(left[front])
        left = left[~front]
    return cand[np.concatenate(chosen)[:size]] if chosen else cand[:0]


def nehvi_batch(
    policy: LogNEHVI,
    surrogate: Model,
    objective: MultiObjective,
    X_pool: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    q: int,
    eligible: np.ndarray,
    X_observed: np.ndarray,
    y_observed: np.ndarray,
    X_pending: np.ndarray | None = None,
    log_feas: np.ndarray | None = None,
    exclusions: Exclusions | None = None,
    seed: int = 0,
) -> BatchResult:
    """Greedy qLogNEHVI batch; ``mean``/``var`` are the pool's ``N × m`` predictions."""
    exclusions = exclusions or Exclusions()
    if not policy.fused_kernel and hasattr(botorch_logei, "_load_attempted"):
        botorch_logei._load_attempted = True  # skip the compile; the pure-PyTorch path is used
    S = preselect(objective, mean, var, eligible, max(policy.shortlist, q), policy.beta)
    ref = torch.from_numpy(objective.reference_point(y_observed))
    if objective.ref_point is not None and y_observed.shape[0] and objective.hypervolume(y_observed) == 0.0:
        warnings.warn("no measured composition beats the reference point on every objective yet: until one does, "
                      "the hypervolume is 0 and proposals chase the reference; check that it is reachable",
                      stacklevel=3)
    mc_objective = GenericMCMultiOutputObjective(lambda samples, X=None: objective.utilities_torch(samples))
    pending = torch.as_tensor(np.zeros((0, X_pool.shape[1])) if X_pending is None else X_pending, dtype=torch.float64)
    baseline = torch.as_tensor(X_observed, dtype=torch.float64)
    with torch.no_grad():  # the sampler the posterior calls for: QMC normal draws for a GP, members for an ensemble
        sampler = get_sampler(surrogate.posterior(baseline[:1]), sample_shape=torch.Size([policy.mc_samples]), seed=seed)
    acq = qLogNoisyExpectedHypervolumeImprovement(
        model=surrogate,
        ref_point=ref,
        X_baseline=baseline,
        sampler=sampler,
        objective=mc_objective,
        prune_baseline=True,
        cache_root=False,
    )
    choices = torch.as_tensor(np.asarray(X_pool[S]), dtype=torch.float64)
    elig = np.ones(S.size, dtype=bool)
    picks, scores = [], []
    for _ in range(q):
        acq.set_X_pending(pending if pending.shape[0] else None)
        with torch.no_grad():
            values = torch.cat([acq(c.unsqueeze(-2)) for c in choices.split(512)]).numpy().astype(np.float64)
        if log_feas is not None:
            values = values + log_feas[S]
        values[~elig] = -np.inf
        i = int(np.argmax(values))
        if values[i] == -np.inf:
            raise ValueError(f"only {len(picks)} of q={q} candidates remain after the diversity/duplicate exclusions")
        picks.append(int(S[i]))
        scores.append(float(values[i]))
        exclusions.apply(S, elig, int(S[i]))
        pending = torch.cat([pending, choices[i : i + 1]])
    return BatchResult(np.array(picks, dtype=np.int64), np.array(scores), int(S.size), False)
