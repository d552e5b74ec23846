"""What a campaign has found: measurements merged per composition, and the best composition per objective.

Replicates of one composition are noisy repeats of one quantity, so a composition counts
with the mean of its measurements (``n`` of them), and "best" is the composition whose mean
has the highest utility (for a window: inside it, or nearest to it). Picking the single
best measurement instead would let the luckiest of several repeats win (the winner's curse).
The mean is taken on the recorded scale, also for objectives modelled as ``log10``.
Ties go to the composition measured first. Retracted measurements are not observations,
so they never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aloop.acquisition import MultiObjective, Window

if TYPE_CHECKING:
    from aloop.campaigns.loop import Campaign


def objectives(campaign: Campaign) -> list[Any]:
    """The campaign's objectives on the recorded scale (``aloop.acquisition`` objectives, one per definition entry)."""
    raw = campaign._raw_objective
    return list(raw.objectives) if isinstance(raw, MultiObjective) else [raw]


def by_composition(obs: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """One row per measured composition, in the order of its first measurement.

    Columns: ``key``, ``formula`` (as first recorded), ``proposal_id`` (the latest proposal
    measured, ``<NA>`` if only unsolicited), ``n`` (measurements), the mean of each objective in
    ``names``, ``values_<name>`` (every value, in recorded order) and ``measurements`` (their event ids).
    """
    cols = ["key", "formula", "proposal_id", "n", *names, *(f"values_{n}" for n in names), "measurements"]
    if obs.empty:
        return pd.DataFrame(columns=cols)
    groups = obs.groupby("key", sort=False)
    out = groups.agg(formula=("formula", "first"), proposal_id=("proposal_id", "last"), n=("event_id", "size"),
                     **{n: (n, "mean") for n in names}, **{f"values_{n}": (n, list) for n in names},
                     measurements=("event_id", list))
    return out.reset_index()[cols]


def best_so_far(campaign: Campaign, obs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per objective: the best composition by the mean of its replicates, and for windows the count inside.

    Each entry: ``value`` (the mean), ``n``, ``values`` (the replicates), ``units``,
    ``direction``, ``formula``, ``proposal_id`` and ``measurements`` (event ids, what
    ``retract`` takes). ``hits`` (windows only) counts compositions whose mean is in the window;
    ``from_target`` (targets only) is the best mean's distance from the target.
    """
    if obs.empty:
        return {}
    names = [o.name for o in campaign.config.objectives]
    table = by_composition(obs, names)
    out: dict[str, dict[str, Any]] = {}
    for o, spec in zip(objectives(campaign), campaign.config.objectives, strict=True):
        u = o.utility(table[spec.name].to_numpy(dtype=np.float64))
        r = table.iloc[int(np.argmax(u))]
        out[spec.name] = {
            "value": float(r[spec.name]), "n": int(r["n"]), "values": [float(v) for v in r[f"values_{spec.name}"]],
            "units": spec.units, "direction": spec.direction, "formula": str(r["formula"]),
            "proposal_id": None if pd.isna(r["proposal_id"]) else int(r["proposal_id"]),
            "measurements": [int(i) for i in r["measurements"]],
        }
        if isinstance(o, Window):
            out[spec.name]["hits"] = int((u >= 0).sum())
        if spec.direction == "target":
            out[spec.name]["from_target"] = abs(float(r[spec.name]) - float(spec.target))  # type: ignore[arg-type]
    return out


def pareto_layers(utilities: np.ndarray) -> np.ndarray:
    """Each row's Pareto layer (``n``; 1 = non-dominated, 2 = non-dominated once layer 1 is removed, …) of an
    ``n × k`` utility table (higher is better in every column)."""
    import torch
    from botorch.utils.multi_objective.pareto import is_non_dominated

    layer = np.zeros(len(utilities), dtype=int)
    left, k = np.arange(len(utilities)), 1
    while left.size:
        front = is_non_dominated(torch.from_numpy(np.asarray(utilities[left], dtype=np.float64)), deduplicate=False)
        layer[left[front.numpy()]] = k
        left, k = left[~front.numpy()], k + 1
    return layer


def ranked(campaign: Campaign, table: pd.DataFrame) -> pd.DataFrame:
    """``by_composition`` rows best first: by the objective's utility, or with several objectives by Pareto layer
    (column ``pareto_layer``; 1 = on the front), then by the first objective within a layer."""
    raw = campaign._raw_objective
    Y = table[[o.name for o in campaign.config.objectives]].to_numpy(dtype=np.float64)
    if not isinstance(raw, MultiObjective):
        return table.iloc[np.argsort(-raw.utility(Y[:, 0]), kind="stable")]
    U = raw.utilities(Y)
    layer = pareto_layers(U)
    return table.assign(pareto_layer=layer).iloc[np.lexsort((-U[:, 0], layer))]


def running_best(keys: Sequence[str], y: np.ndarray, objective: Any) -> np.ndarray:
    """After each measurement (in recorded order): the mean of the best composition so far.

    The curve can step down: a replicate that lowers the leading composition's mean can
    hand the lead to another composition, or leave a lower best.
    """
    slot: dict[str, int] = {}
    sums = np.zeros(len(y))
    counts = np.zeros(len(y))
    utility = np.full(len(y), -np.inf)
    out = np.empty(len(y))
    for i, (k, v) in enumerate(zip(keys, np.asarray(y, dtype=np.float64), strict=True)):
        j = slot.setdefault(k, len(slot))
        sums[j] += v
        counts[j] += 1
        utility[j] = objective.utility(np.array([sums[j] / counts[j]]))[0]
        b = int(np.argmax(utility[: len(slot)]))
        out[i] = sums[b] / counts[b]
    return out
