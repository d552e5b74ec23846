"""The closed loop of a campaign: propose, record, retrain — a stateful shell over the log and stateless models.

``Campaign`` holds a definition (TOML) and its event log; every call derives the state
(observations, pending proposals, failures, model versions) from the log, so a crash
between two steps loses nothing and a restart resumes where the log says. Models are
refitted deterministically from the log (``aloop.campaigns.fitting``): a new model version is
recorded only for training data no version was fitted on (results arrived or were retracted,
or the modelling set-up changed).

Example::

    campaign = Campaign.init("pf.toml", candidates_csv="candidates.csv", objective="PF_p",
                             units="μW/(cm·K²)", featurizer="magpie", transform="log10")
    batch = campaign.propose(8)          # DataFrame: proposal_id, formula, mean ± std, reason …
    campaign.record("results.csv")       # all rows or none
    campaign.status()["best"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import aloop.acquisition as acq
from aloop.campaigns import state
from aloop.campaigns._store import describe
from aloop.campaigns.config import CampaignConfig, load_config
from aloop.campaigns.consistency import DefinitionMismatchError, check_objectives
from aloop.campaigns.entries import AppendResult, Proposal
from aloop.campaigns.files import find_definition, results_table, write_definition
from aloop.campaigns.fitting import Fit, SurrogateFitter
from aloop.campaigns.initial_design import initial_design
from aloop.campaigns.log import CampaignLog, ProposalConflictError
from aloop.campaigns.modeling import (MIN_OBSERVATIONS_TO_FIT, CVResult, batch_seed, cross_validate, data_digest,
                                     fit_surrogate, make_surrogate, modelling, pool_sample, replicate_means)
from aloop.campaigns.outcomes import Outcomes
from aloop.campaigns.pool import (
    CampaignError,
    CampaignWarning,
    CandidatePool,
    NothingToProposeError,
    cache_path,
    load_pool,
    resolve_featurizer,
    warn_outside_candidates,
)
from aloop.campaigns.records import validate_results

__all__ = ["Campaign", "CampaignError", "CampaignWarning", "DefinitionMismatchError", "NothingToProposeError",
           "find_definition"]


class Campaign(Outcomes):
    """One campaign: its definition, its durable log and the propose → record → retrain loop.

    Open with :meth:`init` (new) or :meth:`open` (existing); close with :meth:`close` or a
    ``with`` block. ``progress`` shows tqdm bars (``None``: only on a terminal). Every use checks that the
    definition still has the objectives and units of the logged measurements (``DefinitionMismatchError``).
    """

    def __init__(self, config: CampaignConfig, log: CampaignLog, progress: bool | None = None) -> None:
        self.config = config
        self.log = log
        self.progress = progress
        self._checked: tuple[state.Event, ...] | None = None  # the events last found to match the definition
        self._events()
        m = modelling(config)  # every option checked on opening: a typo never gets as far as a model fit
        self.space, self._surrogate_options, self._refit_growth = m.space, m.surrogate_options, m.refit_growth
        self._objective, self._raw_objective = m.objective, m.raw_objective
        self._policy, self._propose_options = m.policy, m.propose_options
        self._pool: CandidatePool | None = None
        self._featurizer: Any = None
        self._featurizer_id: str | None = None
        self._fitter = SurrogateFitter(log, self._new_model, self._refit_growth)
        self._cv_cache: tuple[str, CVResult | None] | None = None

    # --- opening ----------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path, *, transform: str | Mapping[str, str] | None = None,
             surrogate_options: Mapping[str, Any] | None = None,
             acquisition_options: Mapping[str, Any] | None = None, progress: bool | None = None,
             **flags: Any) -> Campaign:
        """Write a new definition at ``path`` (``write_template`` flags) and create its log.

        ``name`` defaults to the file's stem; a relative ``candidates_csv`` is taken relative
        to the current directory. ``transform="log10"`` models the objectives on a log scale.

        Raises:
            ConfigError: invalid flags. CampaignError: the file or the campaign exists already.
            CampaignLogError: the log cannot be created. Nothing is left behind on error.
        """
        path = Path(path)
        config = write_definition(path, transform, surrogate_options, acquisition_options, **flags)
        try:
            log = CampaignLog.open(config.database_url, config.name, create=True, definition=config.to_dict())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return cls(config, log, progress)

    @classmethod
    def open(cls, path: str | Path, *, create: bool = False, progress: bool | None = None) -> Campaign:
        """Open the campaign defined in ``path`` (a TOML file, or a folder holding exactly one).

        ``create=True`` also creates the log of a hand-written definition.
        """
        path = find_definition(path)
        config = load_config(path, check_files=create)
        if create:
            modelling(config)  # every option checked before the log exists: a refused definition leaves nothing
        log = CampaignLog.open(config.database_url, config.name, create=create, definition=config.to_dict())
        try:
            return cls(config, log, progress)
        except BaseException:
            log.close()
            raise

    def close(self) -> None:
        """Release the log's connections."""
        self.log.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Campaign({self.config.name!r}, definition={str(self.config.path)!r})"

    @property
    def name(self) -> str:
        return self.config.name

    def _events(self) -> tuple[state.Event, ...]:
        """The log's events, once the definition is known to match them (``DefinitionMismatchError`` if not)."""
        events = self.log.events()
        if events is not self._checked:  # the same tuple while the log is unchanged
            check_objectives(self.config, events, describe(self.log.url))
            self._checked = events
        return events

    # --- candidates and features --------------------------------------------------------

    @property
    def pool(self) -> CandidatePool:
        """Every candidate with its features (built once, then loaded from ``<name>.features.npz``).

        A candidates file changed since the campaign was created gets a ``CampaignWarning`` (naming
        pending proposals no longer in it); a missing one a ``CampaignError``.
        """
        if self._pool is None:
            props, ident = state.proposals(self._events()), self._featurizer_ident()
            self._pool = load_pool(self.config, self._featurizer, ident, self.progress, props[props["status"] == "pending"])
        return self._pool

    def _featurizer_ident(self) -> str:
        """The featurizer's cache identifier (the definition's featurizer is resolved once, into ``_featurizer``)."""
        if self._featurizer_id is None:
            self._featurizer, self._featurizer_id = resolve_featurizer(self.config.featurizer)
        return self._featurizer_id

    def features(self, formulas: Sequence[str], keys: Sequence[str] | None = None) -> np.ndarray:
        """Features of compositions: pool rows by key where possible, else computed."""
        return self.pool.features_of(formulas, keys, self._featurizer)

    # --- the loop -----------------------------------------------------------------------

    def propose(self, n: int | None = None, *, allow_fewer: bool | None = None) -> pd.DataFrame:
        """Propose ``n`` (default: ``batch_size``) new compositions and write them to the log as pending.

        When fewer than ``n`` candidates are left, the default batch (``n=None``, or ``allow_fewer=True``)
        is the ones left (``attrs["requested"]`` keeps ``n``); an explicit ``n`` raises ``CampaignError``.
        With none left: ``NothingToProposeError`` (a ``CampaignError``; nothing written). Cold start (fewer observations than the initial design size): random or diverse
        picks. Otherwise the surrogate is fitted on every observation (a new model version
        is recorded when results arrived since the last fit), a feasibility model is
        trained when failures or rejections exist, and the acquisition policy picks the
        batch, conditioned on pending proposals and never repeating measured, pending,
        failed or rejected compositions. If another process writes to the log between the
        pick and the write, the batch is picked again from the log as it is then; should
        that clash too, ``CampaignError`` says to re-run (nothing written either way).

        Returns:
            One row per proposal: ``proposal_id``, ``batch_id``, ``formula``, ``key``,
            ``mean_<label>``/``std_<label>`` per objective (model space), ``acquisition_value``,
            ``p_success`` (P(success) once failures or vetoes exist), ``reason``, ``model_version``. ``attrs``: ``mode``, ``model_version``, ``retrained``, ``training_size``, ``requested``.
        """
        if allow_fewer is not None and not isinstance(allow_fewer, bool | np.bool_):
            raise CampaignError(f"allow_fewer must be True, False or None, got {allow_fewer!r}")
        allow_fewer = n is None if allow_fewer is None else bool(allow_fewer)
        n = self.config.batch_size if n is None else n
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise CampaignError(f"the number of proposals must be a positive integer, got {n!r}")
        retrained = False
        for attempt in (1, 2):
            props, fit, mode, n_obs = self._pick(self._events(), int(n), allow_fewer)
            retrained = retrained or bool(fit and fit.retrained)
            try:
                batch = self.log.append_proposals(props, model_version=fit.version if fit else None)
                break
            except ProposalConflictError as exc:  # another process wrote after the pick: pick again from the log now
                if attempt == 2:
                    raise CampaignError(f"{exc} — other processes keep writing to campaign {self.name!r} while "
                                        "a batch is being chosen; nothing was written: run propose again") from None
        table = batch.table(props, self.space.labels, fit.version if fit else None)
        table.attrs.update(mode=mode, model_version=fit.version if fit else None, retrained=retrained,
                           training_size=n_obs, requested=int(n))
        return table

    def _pick(self, events: tuple[state.Event, ...], n: int,
              allow_fewer: bool = False) -> tuple[list[Proposal], Fit | None, str, int]:
        """``n`` proposals picked from the log state ``events``: (proposals, fit or ``None``, mode, #observations)."""
        pool = self.pool
        excluded = state.excluded_keys(events)
        eligible = ~np.isin(pool.keys.astype(str), np.asarray(sorted(excluded), dtype=str))  # no cut to pool width
        left = int(eligible.sum())
        if left == 0:
            raise NothingToProposeError(f"nothing left to propose: each of the {len(pool):,} candidates is measured, "
                                        "pending, failed or rejected")
        if n > left and not allow_fewer:
            raise CampaignError(f"asked for {n} proposals but only {left} of {len(pool)} candidates "
                                f"are still available (the others are measured, pending, failed or rejected): "
                                f"ask for at most {left}; nothing proposed")
        n = min(n, left)
        seed = self._next_batch_seed(events)
        obs = self._observations(events)
        threshold = self._min_observations()
        if len(obs) < threshold:  # an initial design too leaves out compositions the failures so far make unlikely
            feas = self._feasibility(events, self.features(obs["formula"].tolist(), obs["key"].tolist()), seed)
            p_ok = feas.prob(pool.features) if feas is not None and feas.classifier_ is not None else None
            if p_ok is not None:
                eligible = acq.likely_enough(eligible, p_ok, self._propose_options.get(
                    "min_success", acq.feasibility.MIN_SUCCESS), n)
            rows, reasons = initial_design(self.config.initial_design.kind, pool.features, eligible, n, seed)
            props = [Proposal(str(pool.formulas[r]), str(pool.keys[r]), reason=why,
                              p_success=None if p_ok is None else float(p_ok[r])) for r, why in zip(rows, reasons, strict=True)]
            mode = f"initial design ({self.config.initial_design.kind}, {len(obs)} of {threshold} observations)"
            return props, None, mode, len(obs)
        fit = self._fit(events, obs)
        picks = self._acquire(fit, obs["key"].tolist(), events, n, seed)
        mean, var = fit.model.predict(pool.features[[p.index for p in picks]])  # type: ignore[attr-defined]
        props = [Proposal.predicted(str(pool.formulas[p.index]), str(pool.keys[p.index]), self.space.labels, mean[i],
                                    var[i], acquisition_value=float(p.score), reason=p.reason, p_success=p.p_feasible)
                 for i, p in enumerate(picks)]
        return props, fit, f"model {fit.version} ({self.config.acquisition.kind})", len(obs)

    def _observations(self, events: Sequence[state.Event]) -> pd.DataFrame:
        obs = state.observations(events)
        for name in self.space.names:
            if name not in obs.columns:
                obs[name] = np.nan
        return obs[obs[list(self.space.names)].notna().all(axis=1)].reset_index(drop=True)

    def _training(self, obs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
        X = self.features(obs["formula"].tolist(), obs["key"].tolist())
        Y = self.space.forward(obs[list(self.space.names)].to_numpy(dtype=np.float64),
                               [f"measurement {i} ({f})" for i, f in zip(obs["event_id"], obs["formula"], strict=True)])
        return X, Y, self._digest(obs)

    def _digest(self, obs: pd.DataFrame) -> str:
        """What identifies a model fitted on ``obs`` with this set-up (needs no features)."""
        setup = {"featurizer": self._featurizer_ident(), "surrogate": self.config.surrogate.kind,
                 "options": self._surrogate_options, "refit_growth": self._refit_growth, "transforms": self.space.transforms, "seed": self.config.seed}
        return data_digest(obs["event_id"].tolist(), setup)

    def _new_model(self, X: np.ndarray, Y: np.ndarray, warm_start: object | None = None,
                   hyperparameters: dict | None = None) -> object:
        X_pool = pool_sample(self.pool.features, seed=self.config.seed)
        return fit_surrogate(lambda: make_surrogate(self.config, self._surrogate_options), X, Y, X_pool, warm_start,
                             hyperparameters)

    def surrogate(self) -> object | None:
        """The surrogate fitted on every current observation (``None`` during the initial design)."""
        events = self._events()
        obs = self._observations(events)
        if len(obs) < self._min_observations():
            return None
        return self._fit(events, obs).model

    def _min_observations(self) -> int:
        """Observations before the model takes over from the initial design."""
        return max(self.config.initial_design.size, MIN_OBSERVATIONS_TO_FIT)

    def _next_batch_seed(self, events: Sequence[state.Event]) -> int:
        """The random seed of the next batch written after ``events``."""
        return batch_seed(self.config.seed, 1 + max((e.batch_id or 0 for e in events), default=0))

    def _fit(self, events: Sequence[state.Event], obs: pd.DataFrame) -> Fit:
        """The surrogate on every observation; a new version only when the training data changed."""
        X, Y, digest = self._training(obs)
        details = {"featurizer": self._featurizer_id, "surrogate": self.config.surrogate.kind,
                   "transforms": dict(zip(self.space.names, self.space.transforms, strict=True))}
        return self._fitter.fit(events, X, Y, digest, details, obs["event_id"].tolist())

    def _acquire(self, fit: Fit, keys: list[str], events: Sequence[state.Event], n: int,
                 seed: int) -> list[acq.Proposal]:
        pool = self.pool
        X_obs, Y = replicate_means(keys, fit.X, fit.Y, self.space)
        pending = state.proposals(events)
        pending = pending[pending["status"] == "pending"]
        rows = pool.rows(pending["key"])
        outside = pending[rows < 0]
        X_pend = self.features(outside["formula"].tolist(), outside["key"].tolist()) if len(outside) else None
        objective = self._objective
        if isinstance(objective, acq.MultiObjective) and isinstance(self._policy, acq.Random):
            objective = objective.objectives[0]  # random picks ignore the objective
        return acq.propose(
            fit.model, pool.features, objective, self._policy, q=n, y_observed=Y, X_observed=X_obs,
            pending=rows[rows >= 0], X_pending=X_pend, pool_keys=pool.keys, exclude_keys=state.excluded_keys(events),
            feasibility=self._feasibility(events, X_obs, seed), seed=seed, **self._propose_options,
        )

    def _feasibility(self, events: Sequence[state.Event], X_ok: np.ndarray, seed: int) -> acq.FeasibilityModel | None:
        bad = state.negatives(events)
        if not len(bad):
            return None
        X_bad = self.features(bad["formula"].tolist(), bad["key"].tolist())
        return acq.FeasibilityModel.from_records(X_ok, X_bad, random_state=seed)

    def record(self, results: pd.DataFrame | str | Path) -> AppendResult:
        """Record a results table (a DataFrame, or a CSV path) — every row or none.

        See :mod:`aloop.campaigns.records` for the columns. Rows naming compositions never proposed are accepted,
        flagged ``unsolicited`` (a ``CampaignWarning`` names those outside the search space); repeats are skipped.

        Raises:
            RecordError: listing every bad row (nothing written). CampaignLogError: the log refused.
        """
        df = results_table(results)
        self._events()  # refuses results while the definition contradicts the log
        rows = validate_results(df, self.config, self.log)
        result = self.log.append_measurements(rows)
        if result.unsolicited and (self._pool is not None or cache_path(self.config).is_file()):  # no featurising
            warn_outside_candidates(lambda: self.pool, rows)
        return result

    # --- where we stand -------------------------------------------------------------------

    def cross_validate(self, k: int = 5) -> CVResult | None:
        """Grouped k-fold CV of the current surrogate set-up on every observation (``None`` below 5)."""
        obs = self._observations(self._events())
        if len(obs) < 5:
            return None
        X, Y, digest = self._training(obs)
        if self._cv_cache is None or self._cv_cache[0] != f"{digest}:{k}":
            X_pool = pool_sample(self.pool.features, seed=self.config.seed)
            result = cross_validate(lambda: make_surrogate(self.config, self._surrogate_options), X, Y,
                                    obs["key"].tolist(), self.space.labels, X_pool, k, self.config.seed, self.progress)
            self._cv_cache = (f"{digest}:{k}", result)
        return self._cv_cache[1]

    def status(self, cv: bool = True) -> dict[str, Any]:
        """Counts, best composition per objective (mean of replicates), pending proposals, model quality (k-fold CV).

        Works without the candidates file (counts of candidates and the CV are then left out, with a warning).
        """
        from aloop.campaigns.report import status_dict

        if not isinstance(cv, bool | np.bool_):  # "no" would be truthy and run the cross-validation
            raise CampaignError(f"cv must be True or False, got {cv!r}")
        return status_dict(self, self._events(), bool(cv))

    def report(self, out_dir: str | Path = "report") -> dict[str, Path]:
        """Write ``report.html`` (self-contained) and ``report.md`` (+ PNGs) to ``out_dir``; returns the paths."""
        from aloop.campaigns.report import write_report

        return write_report(self, self._events(), Path(out_dir))

    def export(self, path: str | Path, table: str = "events") -> Path:
        """Write every event (``table="events"``) or every observation (``"observations"``) as CSV or Parquet."""
        from aloop.campaigns.report import export_table

        return export_table(self, self._events(), Path(path), table)
