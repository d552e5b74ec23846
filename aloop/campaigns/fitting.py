"""Which surrogate serves a campaign's observations: one model version per training set, recorded in the log.

A fit is identified by the digest of its training data (the ids of the measurement events it
learns from) and the modelling set-up. Each new digest is recorded as a ``model_fitted`` event
(``v1``, ``v2`` …) carrying that digest, so a version is added only when results arrived or were
retracted, or the set-up changed, and a reopened campaign finds its version instead of adding one.

With ``refit_growth = g`` (a GP, alone or in a gp_forest mixture) the hyperparameters are re-fitted only once the
observations have grown by a factor ``1 + g`` since the last hyperparameter fit; in between the
GP is conditioned on every observation with those hyperparameters. Each version records the size
and hyperparameters of its fit, so a reopened campaign rebuilds the same model without optimising.
Hyperparameters fitted on a measurement that has since been retracted (a typo can inflate the
noise or shrink the lengthscales) are refitted at once, not kept until the next growth step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aloop.campaigns import state
from aloop.campaigns.log import CampaignLog, CampaignLogError
from aloop.campaigns.pool import CampaignError

#: Fits a new surrogate: ``new_model(X, Y, warm_start=None, hyperparameters=None)``.
NewModel = Callable[..., object]


@dataclass
class Fit:
    """A surrogate fitted on ``X``, ``Y`` and the model version it is recorded as."""

    model: object
    version: str
    digest: str
    retrained: bool  # a new version was recorded by this fit
    X: np.ndarray
    Y: np.ndarray
    hyper_n: int  # the first rows the hyperparameters were fitted on


class SurrogateFitter:
    """Fits (or reuses) the surrogate for a training set and records new model versions in ``log``.

    ``new_model`` builds and fits a surrogate (the campaign knows its pool and options);
    ``refit_growth`` is the definition's ``refit_growth`` or ``None`` (refit every time).
    """

    def __init__(self, log: CampaignLog, new_model: NewModel, refit_growth: float | None) -> None:
        self.log = log
        self.refit_growth = refit_growth
        self._new_model = new_model
        self._cache: Fit | None = None
        # The measurement events the last hyperparameter fit learned from (the first rows, in order) and its model.
        self._hyper: tuple[tuple[int, ...], object] | None = None

    def fit(self, events: Sequence[state.Event], X: np.ndarray, Y: np.ndarray, digest: str,
            details: Mapping[str, Any], event_ids: Sequence[int]) -> Fit:
        """The surrogate on ``X``, ``Y`` (training-set ``digest``); a new version only for a new digest.

        ``details`` (featurizer, surrogate kind, transforms) are stored with a new version;
        ``event_ids`` are the measurement events of the rows of ``X``, in order.
        """
        versions = state.model_versions(events)
        cached = self._cache if self._cache and self._cache.digest == digest else None
        ids = tuple(int(i) for i in event_ids)
        model, hyper_n = (cached.model, cached.hyper_n) if cached else self._model(versions, X, Y, ids)
        same = [r for r in versions.itertuples() if (r.details or {}).get("data_digest") == digest]
        if same:
            fit = Fit(model, same[-1].model_version, digest, False, X, Y, hyper_n)
        else:
            version = self._record(len(versions), digest, len(Y), hyper_n, details)
            fit = Fit(model, version, digest, True, X, Y, hyper_n)
        self._cache = fit
        return fit

    def _model(self, versions: pd.DataFrame, X: np.ndarray, Y: np.ndarray,
               ids: tuple[int, ...]) -> tuple[object, int]:
        """A surrogate on all rows and the number of (first) rows its hyperparameters were fitted on.

        With ``refit_growth`` a refit starts from the previous fit's hyperparameters when this
        object holds it; otherwise the last version's recorded hyperparameters are loaded. Either
        serves only while its rows are still the first rows of the training set (none retracted).
        """
        n = len(Y)
        if self.refit_growth is None:
            return self._new_model(X, Y), n
        held = self._hyper
        base = (len(held[0]), held[1]) if held and held[0] == ids[: len(held[0])] else None
        if base is None:
            saved = [d for d in versions["details"] if _fitted_on_these(d or {}, ids)]
            if saved:
                k = int(saved[-1]["hyperparameters_fitted_on"])
                base = (k, self._new_model(X[:k], Y[:k], hyperparameters=saved[-1]["hyperparameters"]))
        if base is None or n >= base[0] * (1.0 + self.refit_growth):
            base = (n, self._new_model(X, Y, warm_start=base[1] if base else None))
        self._hyper = (ids[: base[0]], base[1])
        model = base[1] if base[0] == n else base[1].condition(X, Y)  # type: ignore[attr-defined]
        return model, base[0]

    def _record(self, known: int, digest: str, n: int, hyper_n: int, details: Mapping[str, Any]) -> str:
        """Record a new model version after the ``known`` ones; returns its name."""
        details = {"data_digest": digest, **details}
        if self.refit_growth is not None and self._hyper is not None:
            details["hyperparameters_fitted_on"] = hyper_n
            details["hyperparameters_events"] = _events_digest(self._hyper[0])
            details["hyperparameters"] = self._hyper[1].hyperparameters()  # type: ignore[attr-defined]
        for attempt in range(1, 6):
            version = f"v{known + attempt}"
            try:
                self.log.record_model_fit(version, n, details=details)
                return version
            except CampaignLogError:
                # Another process may have fitted the same data meanwhile, or taken this number.
                current = self.log.model_versions()
                for r in current.itertuples():
                    if (r.details or {}).get("data_digest") == digest:
                        return str(r.model_version)
                if version not in set(current["model_version"]):
                    raise
        raise CampaignError("could not record the model fit: too many concurrent fits")


def _events_digest(ids: Sequence[int]) -> str:
    """Short identity of the measurement events a hyperparameter fit learned from, in order."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _fitted_on_these(details: Mapping[str, Any], ids: tuple[int, ...]) -> bool:
    """Whether a version's recorded hyperparameters were fitted on the first rows of ``ids`` (the
    training set now). Logs written before the events were recorded are trusted, as they were."""
    if "hyperparameters" not in details:
        return False
    k, recorded = int(details["hyperparameters_fitted_on"]), details.get("hyperparameters_events")
    return k <= len(ids) and (recorded is None or recorded == _events_digest(ids[:k]))
