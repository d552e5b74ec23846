"""What becomes of a proposal other than a result: failed, retried, rejected, cancelled, or an outcome retracted."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from aloop.campaigns import state
from aloop.campaigns.consistency import check_pending
from aloop.campaigns.entries import Proposal, id_list
from aloop.campaigns.pool import CampaignError, CampaignWarning

if TYPE_CHECKING:
    from aloop.campaigns.loop import Campaign

__all__ = ["Outcomes"]


class Outcomes:
    """The outcome verbs of :class:`~aloop.campaigns.Campaign` (a mixin: it works on the campaign's log and model)."""

    def fail(self: Campaign, proposal_ids: int | Sequence[int], reason: str) -> list[int]:
        """Mark pending proposals as failed syntheses (they inform the feasibility model)."""
        return self.log.fail(proposal_ids, reason)

    def retry(self: Campaign, proposal_ids: int | Sequence[int], reason: str = "") -> list[int]:
        """Try failed proposals again: one new pending proposal each, which takes the result; returns their ids.

        The failure stays: it is kept in the log, listed by ``log.failures()`` and still lowers P(success) near
        the composition, beside the retry's measurement once there is one.
        """
        ids = id_list(proposal_ids, "retry", "proposal")
        if not isinstance(reason, str):
            raise CampaignError(f"retry: the reason must be text, got {type(reason).__name__} {reason!r}")
        events = self._events()
        failed = check_pending("retried", ids, events, self.name, need="failed")  # the log checks again under its lock
        note = f": {reason.strip()}" if reason.strip() else ""
        new = [Proposal(failed[p].payload["formula"], str(failed[p].composition_key),
                        reason=f"retry of failed proposal {p}{note}") for p in ids]
        new, version = self._predicted(events, new)
        return list(self.log.append_proposals(new, model_version=version, retry_of=ids).proposal_ids)

    def _predicted(self: Campaign, events: tuple[state.Event, ...],
                   props: list[Proposal]) -> tuple[list[Proposal], str | None]:
        """``props`` with the model's prediction (once it is fitted) and P(success) (once failures or vetoes exist),
        as ``propose`` gives them; and the model version (``None`` during the initial design)."""
        try:
            X = self.features([p.formula for p in props], [p.key for p in props])
        except CampaignError as exc:  # no candidate list (moved?): the proposals are still worth writing
            warnings.warn(f"{exc} (written without the model's prediction and P(success))", CampaignWarning,
                          stacklevel=3)
            return props, None
        obs = self._observations(events)
        feas = self._feasibility(events, self.features(obs["formula"].tolist(), obs["key"].tolist()),
                                 self._next_batch_seed(events))
        p_ok = feas.prob(X) if feas is not None and feas.classifier_ is not None else [None] * len(props)
        props = [replace(p, p_success=None if q is None else float(q)) for p, q in zip(props, p_ok, strict=True)]
        if len(obs) < self._min_observations():
            return props, None
        fit = self._fit(events, obs)
        mean, var = fit.model.predict(X)  # type: ignore[attr-defined]
        return [Proposal.predicted(p.formula, p.key, self.space.labels, mean[i], var[i], reason=p.reason,
                                   p_success=p.p_success) for i, p in enumerate(props)], fit.version

    def reject(self: Campaign, proposal_ids: int | Sequence[int], reason: str) -> list[int]:
        """Veto pending proposals: never proposed again; they inform the feasibility model."""
        return self.log.reject(proposal_ids, reason)

    def cancel(self: Campaign, proposal_ids: int | Sequence[int] | None = None, reason: str = "", *,
               batch: int | None = None) -> list[int]:
        """Withdraw pending proposals, or with ``batch`` every pending proposal of that batch; their compositions
        may be proposed again."""
        if (proposal_ids is None) == (batch is None):
            raise CampaignError("cancel: give the proposal ids to cancel, or a batch for every pending proposal of "
                                "it (not both)")
        return self.log.cancel(self.pending_of_batch(batch) if batch is not None else proposal_ids, reason)

    def pending_of_batch(self: Campaign, batch: int) -> list[int]:
        """The ids of a batch's pending proposals (``CampaignError`` if there is no such batch or none is pending)."""
        props = self.log.proposals()
        if batch not in set(props["batch_id"]):
            raise CampaignError(f"batch {batch}: campaign {self.name!r} has no batch {batch} (batches: "
                                f"{', '.join(map(str, sorted(set(props['batch_id'])))) or 'none yet'})")
        ids = props[(props["batch_id"] == batch) & (props["status"] == "pending")]["proposal_id"].tolist()
        if not ids:
            raise CampaignError(f"batch {batch}: none of its proposals is pending; nothing cancelled")
        return [int(i) for i in ids]

    def retract(self: Campaign, ids: int | Sequence[int], reason: str, operator: str | None = None) -> list[int]:
        """Withdraw wrongly recorded measurements or outcomes, keeping them in the log with ``reason`` and ``operator``.

        ``ids``: measurement ids (``event_id`` in ``log.observations()``, listed by ``status()["best"]``) or ids
        of proposals with one measurement, or marked failed, rejected or cancelled by mistake. A retracted value
        leaves the training data, the best, the status and the report; the proposal, left without measurements
        or outcome, is pending again. Returns the retraction event ids (see ``CampaignLog.retract``).
        """
        return self.log.retract(ids, reason, operator)
