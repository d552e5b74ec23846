"""Replay of a campaign against a fully measured pool: the lab is a lookup table, the loop is a real campaign.

A :class:`Task` is a pool of compositions whose objective is known for every row (a
registry dataset or a user's CSV). A :class:`Strategy` is a featurizer × surrogate ×
acquisition choice. :func:`run_replay` creates an ordinary :class:`~aloop.campaigns.Campaign`
(definition file + SQLite event log) in a work folder and drives it exactly as a lab would:
``propose`` → look the values up → ``record``, until the budget is spent. After every model
fit it also scores the surrogate on the still-unmeasured pool (MAE, 68%/95% interval coverage).
"""

from __future__ import annotations

import json
import math
import numbers
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aloop.benchmark.task import ReplayError, Task
from aloop.campaigns.outliers import OutlierWarning
from aloop.campaigns.config import (
    ACQUISITION_KINDS,
    ELEMNET_HIDDEN_LAYERS,
    FEATURIZER_KINDS,
    GP_SURROGATE_KINDS,
    INITIAL_DESIGN_KINDS,
    SURROGATE_KINDS,
)
from aloop.campaigns.modeling import filled_defaults

#: Default hyperparameter schedule of replays: refit when the data grew by 25% (see ``refit_growth``).
REPLAY_REFIT_GROWTH = 0.25


@dataclass(frozen=True)
class Strategy:
    """A featurizer × surrogate × acquisition choice, written ``FEATURIZER[/LAYER]-SURROGATE-ACQUISITION``.

    ``"random"`` alone is the random strategy (random initial design and random picks).
    Examples: ``ef-gp-log_ei``, ``magpie-ensemble-ucb``, ``elemnet/2-gp-log_ei``.
    """

    featurizer: str = "elemnet"
    surrogate: str = "gp"
    acquisition: str = "ucb"  # a campaign's default for one objective to maximise or minimise
    layer: int | None = None
    source: str | None = None
    surrogate_options: Mapping[str, Any] = field(default_factory=dict)
    acquisition_options: Mapping[str, Any] = field(default_factory=dict)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.featurizer not in FEATURIZER_KINDS:
            raise ReplayError(f"strategy: featurizer must be one of {', '.join(FEATURIZER_KINDS)}, got {self.featurizer!r}")
        if self.surrogate not in SURROGATE_KINDS:
            raise ReplayError(f"strategy: surrogate must be one of {', '.join(SURROGATE_KINDS)}, got {self.surrogate!r}")
        if self.acquisition not in ACQUISITION_KINDS:
            raise ReplayError(f"strategy: acquisition must be one of {', '.join(ACQUISITION_KINDS)}, got {self.acquisition!r}")
        if (self.layer is not None or self.source is not None) and self.featurizer != "elemnet":
            raise ReplayError("strategy: a layer or source only goes with the elemnet featurizer")
        if self.layer is not None and (isinstance(self.layer, bool) or not isinstance(self.layer, numbers.Integral)
                                       or not 1 <= self.layer <= ELEMNET_HIDDEN_LAYERS):
            raise ReplayError(f"strategy {self.name!r}: the ElemNet layer must be a whole number from 1 to "
                              f"{ELEMNET_HIDDEN_LAYERS}, got {self.layer!r}")

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        if self.acquisition == "random":
            return "random"
        feat = self.featurizer + (f"/{self.layer}" if self.layer is not None else "")
        return f"{feat}-{self.surrogate}-{self.acquisition}"

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """``"magpie-gp-log_ei"`` → ``Strategy``; ``"random"`` → the random strategy (EF features, unused)."""
        text = text.strip()
        if text == "random":
            return cls("ef", "gp", "random")
        parts = text.split("-")
        if len(parts) != 3:
            raise ReplayError(f"strategy {text!r}: write FEATURIZER[/LAYER]-SURROGATE-ACQUISITION, e.g. magpie-gp-log_ei")
        feat, layer = parts[0], None
        if "/" in feat:
            feat, _, layer_text = feat.partition("/")
            if not layer_text.isdigit():
                raise ReplayError(f"strategy {text!r}: the ElemNet layer must be a number, got {layer_text!r}")
            layer = int(layer_text)
        return cls(feat, parts[1], parts[2], layer=layer)

    def features_version(self) -> str | None:
        """sha256 of the ElemNet source weights this strategy featurizes with (``None`` for EF/Magpie).

        A study reruns a finished run whose record names other weights, so its figures
        always belong to the shipped model.
        """
        if self.featurizer != "elemnet":
            return None
        from aloop.campaigns.config import DEFAULT_SOURCE
        from aloop.elemnet.sources import weights_digest

        return weights_digest(self.source or DEFAULT_SOURCE)

    def spec(self) -> dict[str, Any]:
        """Everything that makes this strategy's runs what they are, as plain JSON data.

        Stored with each run record: a study refuses to mix runs of one name made with
        different choices (the name alone hides options and, with a label, everything else).
        """
        data = {"featurizer": self.featurizer, "surrogate": self.surrogate, "acquisition": self.acquisition,
                "layer": self.layer, "source": self.source, "surrogate_options": dict(self.surrogate_options),
                "acquisition_options": dict(self.acquisition_options)}
        if self.acquisition != "random":
            # What the campaign fills in: runs made before a campaign default changed are not this strategy's.
            if filled := filled_defaults(self.surrogate, self.surrogate_options):
                data["campaign_defaults"] = filled
        try:
            return json.loads(json.dumps(data, sort_keys=True, default=_plain))
        except (TypeError, ValueError) as exc:
            raise ReplayError(f"strategy {self.name!r}: options must be numbers, text, lists or tables ({exc})") from None

    def flags(self) -> dict[str, Any]:
        """``Campaign.init`` flags of this strategy."""
        out: dict[str, Any] = {"featurizer": self.featurizer, "surrogate": self.surrogate, "acquisition": self.acquisition}
        if self.layer is not None:
            out["layer"] = self.layer
        if self.source is not None:
            out["source"] = self.source
        return out


def run_replay(task: Task, strategy: Strategy, seed: int, *, n_init: int = 5, batch_size: int = 1,
               budget: int = 100, workdir: str | Path | None = None, refit_growth: float | None = REPLAY_REFIT_GROWTH,
               study: str = "", initial_design: str = "random") -> dict[str, Any]:
    """Run one campaign against ``task`` and return its run record (see :mod:`aloop.benchmark.summary`).

    The campaign's definition and SQLite log are written to ``workdir`` (a temporary
    folder, deleted afterwards, when ``None``). The first ``n_init`` proposals are the
    campaign's initial design (``"random"``, the field's protocol, or ``"diverse"``, a live campaign's default:
    k-means on the strategy's features; the random strategy's is always random); then batches of ``batch_size``
    until ``budget`` measurements (initial ones included). ``order`` holds task row indices, ``formulas`` and
    ``values`` the compositions and values they picked, in that order.
    """
    if not (isinstance(n_init, int) and isinstance(batch_size, int) and isinstance(budget, int)):
        raise ReplayError("n_init, batch_size and budget must be integers")
    if n_init < 1 or batch_size < 1:
        raise ReplayError(f"n_init and batch_size must be ≥ 1, got {n_init} and {batch_size}")
    if not n_init <= budget <= len(task):
        raise ReplayError(f"budget must be between n_init ({n_init}) and the pool size ({len(task)}), got {budget}")
    check_batch_size(n_init, batch_size, budget)
    check_initial_design(initial_design)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="aloop-replay-") as tmp:
            return run_replay(task, strategy, seed, n_init=n_init, batch_size=batch_size, budget=budget,
                              workdir=tmp, refit_growth=refit_growth, study=study, initial_design=initial_design)
    from aloop.campaigns import Campaign

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    pool_csv = task.pool_csv(work / "pool.csv")
    row_of = {k: i for i, k in enumerate(task.keys)}
    column = f"{task.objective} [{task.units}]" if task.units else task.objective
    order: list[int] = []
    batches: list[int] = []
    fits: list[dict[str, float]] = []
    start = time.perf_counter()
    args = _campaign_args(task, strategy, seed, n_init, batch_size, refit_growth, pool_csv, initial_design)
    with Campaign.init(work / "campaign.toml", progress=False, **args) as campaign:
        batch_no = 0
        while len(order) < budget:
            q = n_init if batch_no == 0 else min(batch_size, budget - len(order))
            t0 = time.perf_counter()
            proposals = campaign.propose(q)
            seconds = time.perf_counter() - t0
            rows = [row_of[k] for k in proposals["key"]]
            if batch_no > 0:
                fits.append(_pool_scores(campaign, task, order, seconds))
            with warnings.catch_warnings():  # a lab's outlier check; the lookup table's values are the data
                warnings.simplefilter("ignore", OutlierWarning)
                campaign.record(pd.DataFrame({"proposal_id": proposals["proposal_id"], column: task.y[rows]}))
            order += rows
            batches += [batch_no] * len(rows)
            batch_no += 1
    return {
        "study": study, "task": task.name, "strategy": strategy.name, "seed": int(seed), "batch_size": batch_size,
        "n_init": n_init, "budget": budget, "pool_size": len(task), "order": order, "batch": batches,
        "values": task.y[order].tolist(), "formulas": [str(task.formulas[i]) for i in order], "fits": fits,
        "seconds": time.perf_counter() - start,
        "refit_growth": refit_growth, "spec": strategy.spec(), "initial_design": args["initial_design"],
    }


def check_batch_size(n_init: int, batch_size: int, budget: int,
                     names: tuple[str, str, str] = ("batch size", "budget", "n_init")) -> None:
    """Refuse (``ReplayError``) a batch larger than the measurements left after the initial design:
    the run would only ever propose smaller batches, and its results would name a batch size it never used.
    ``names`` of the batch size, budget and initial design in the message (the CLI's flags there)."""
    q, total, init = names
    if budget > n_init and batch_size > budget - n_init:
        raise ReplayError(f"{q} {batch_size} is more than the {budget - n_init} measurements left after the "
                          f"initial design ({total} {budget} − {init} {n_init}); give a {q} of at most "
                          f"{budget - n_init} or a larger {total}")


def check_initial_design(kind: object) -> None:
    """Refuse (``ReplayError``) an initial design a campaign does not know."""
    if kind not in INITIAL_DESIGN_KINDS:
        raise ReplayError(f"initial design must be one of {', '.join(INITIAL_DESIGN_KINDS)}, got {kind!r}")


def check_strategy(task: Task, strategy: Strategy, *, n_init: int = 5, batch_size: int = 1,
                   refit_growth: float | None = REPLAY_REFIT_GROWTH) -> None:
    """Refuse (``ReplayError``) a strategy whose replay campaign would be refused, before any run starts.

    The campaign definition a replay would write is validated in a temporary folder, on a few
    pool rows; for ElemNet, the source model must exist.
    """
    from aloop.campaigns import ConfigError
    from aloop.campaigns.files import write_definition
    from aloop.campaigns.pool import CampaignError
    from aloop.elemnet.sources import SourceModelError

    try:
        strategy.features_version()
        with tempfile.TemporaryDirectory(prefix="aloop-check-") as tmp:
            pool = Path(tmp) / "pool.csv"
            pd.DataFrame({"formula": task.formulas[:50]}).to_csv(pool, index=False)
            write_definition(Path(tmp) / "check.toml",
                             **_campaign_args(task, strategy, 0, n_init, batch_size, refit_growth, pool))
    except (ConfigError, CampaignError, SourceModelError) as exc:
        why = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)  # not the temporary file's name
        raise ReplayError(f"strategy {strategy.name!r} cannot replay this task: {why}") from None


def _campaign_args(task: Task, strategy: Strategy, seed: int, n_init: int, batch_size: int,
                   refit_growth: float | None, pool_csv: Path, initial_design: str = "random") -> dict[str, Any]:
    """``Campaign.init`` arguments of a replay (besides the definition's path)."""
    objective: dict[str, Any] = {"objective": task.objective, "units": task.units, "direction": task.direction}
    if task.window is not None:
        objective["window"] = list(task.window)
    surrogate_options = dict(strategy.surrogate_options)
    if refit_growth is not None and strategy.surrogate in GP_SURROGATE_KINDS:
        surrogate_options.setdefault("refit_growth", refit_growth)
    return {"candidates_csv": str(pool_csv), "name": "replay", "seed": seed, "batch_size": batch_size,
            "initial_design": "random" if strategy.acquisition == "random" else initial_design, "initial_size": n_init,
            "surrogate_options": surrogate_options or None,
            "acquisition_options": dict(strategy.acquisition_options) or None, **objective, **strategy.flags()}


def _plain(value: Any) -> Any:
    """numpy numbers and tuples as plain JSON values (for :meth:`Strategy.spec`)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set, np.ndarray)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _pool_scores(campaign: Any, task: Task, measured: list[int], seconds: float) -> dict[str, float]:
    """MAE and 68%/95% coverage of the campaign's current surrogate on the unmeasured pool (raw units)."""
    from scipy.stats import norm

    from aloop.acquisition import noise_variance

    model = campaign.surrogate()
    out = {"n_train": float(len(measured)), "seconds": seconds}
    if model is None or campaign.space.transforms[0] != "none":
        return out | {"pool_mae": math.nan, "pool_cov68": math.nan, "pool_cov95": math.nan}
    pool = campaign.pool
    rows = np.setdiff1d(np.arange(len(task)), np.asarray(measured, dtype=int))
    feats = campaign.features(list(task.formulas[rows]), list(task.keys[rows])) if len(pool) != len(task) \
        else pool.features[pool.rows(task.keys[rows])]
    mean, var = model.predict(feats)
    sd = np.sqrt(np.maximum(var[:, 0] + noise_variance(model, 1)[0], 1e-300))
    err = np.abs(mean[:, 0] - task.y[rows])
    z68, z95 = norm.ppf(0.84), norm.ppf(0.975)
    return out | {"pool_mae": float(err.mean()), "pool_cov68": float((err <= z68 * sd).mean()),
                  "pool_cov95": float((err <= z95 * sd).mean())}
