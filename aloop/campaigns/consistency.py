"""Whether what is about to be used or written agrees with the campaign's log as it stands.

Checks against the recorded events:

* ``check_objectives``: the definition file may be edited between runs, but every
  ``measured`` event keeps the objective names and units it was recorded under. Renaming,
  adding or removing an objective would silently drop every earlier measurement from training
  (while they still count as measured), and changing its units would silently relabel the
  recorded values, so such edits are refused. Everything else (directions, targets and windows,
  transforms, featurizer, surrogate, acquisition and their options, batch and initial-design
  sizes, seed) only changes how future batches are chosen and stays allowed.
* ``check_free``: a batch may only name compositions that are not pending, measured or
  rejected. The log runs it inside the write transaction, so two processes that picked their
  batches from the same state never both propose a composition.
* ``check_pending`` and ``check_retractions``: an outcome (failed, rejected, cancelled) only
  for a pending proposal; a retraction only for a measurement not yet retracted, named by
  its id or by the id of a proposal that has exactly one, or for a proposal's outcome set by
  mistake (named by the proposal's id or the outcome's), unless the composition has since been
  measured or proposed again. Both run inside the write transaction.

Whether a value about to be recorded looks wrong is ``aloop.campaigns.outliers``' question.

Units and header names are compared after Unicode NFKC normalisation (``canonical``), so the
micro sign U+00B5 and the Greek mu U+03BC, which look the same, are the same.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from aloop.campaigns._fields import ConfigError
from aloop.campaigns._store import CampaignLogError
from aloop.campaigns.entries import Proposal
from aloop.campaigns.schema import CLOSING_KINDS, OUTCOME_KINDS
from aloop.campaigns.state import Event, proposal_status, retracted, undone

if TYPE_CHECKING:
    from aloop.campaigns.config import CampaignConfig

def canonical(text: str) -> str:
    """``text`` in Unicode NFKC without surrounding blanks: the form headers, names and units are compared in."""
    return unicodedata.normalize("NFKC", text).strip()


class DefinitionMismatchError(ConfigError):
    """The definition file's objectives (names or units) differ from those the log recorded measurements of."""

    def __init__(self, message: str) -> None:
        super().__init__([message])


class ProposalConflictError(CampaignLogError):
    """A batch names compositions pending, measured or rejected in the log by the time it is written (``keys``).

    Batches picked from an older view of the log (another process wrote meanwhile) end here;
    picking again from the current log resolves it.
    """

    def __init__(self, message: str, keys: frozenset[str]) -> None:
        self.keys = keys
        super().__init__(message)


def check_free(props: Sequence[Proposal], history: Sequence[Event]) -> None:
    """Refuse (``ProposalConflictError``) proposals of compositions rejected, measured or pending in ``history``."""
    status = proposal_status(history)
    gone = retracted(history)
    withdrawn = undone(history)
    rejected = {e.composition_key for e in history if e.kind == "rejected" and e.id not in withdrawn}
    measured = {e.composition_key for e in history if e.kind == "measured" and e.id not in gone} - rejected
    waiting = {e.composition_key: e.id for e in history if e.kind == "proposed" and status[e.id] == "pending"}
    pending = set(waiting) - rejected - measured
    groups = {"rejected compositions cannot be proposed again": rejected, "already measured": measured,
              "already pending": pending}

    def named(p: Proposal) -> str:
        return f"{p.formula} (proposal {waiting[p.key]})" if p.key in pending else p.formula

    parts = [f"{why}: {', '.join(named(p) for p in props if p.key in keys)}"
             for why, keys in groups.items() if any(p.key in keys for p in props)]
    if parts:
        taken = frozenset(p.key for p in props if p.key in rejected | measured | pending)
        raise ProposalConflictError("proposals not written: " + "; ".join(parts), taken)


def check_pending(kind: str, ids: Sequence[int], history: Sequence[Event], campaign: str,
                  need: str = "pending") -> dict[int, Event]:
    """The ``proposed`` events of ``ids`` (all of status ``need``), or ``CampaignLogError`` listing every problem."""
    proposed = {e.id: e for e in history if e.kind == "proposed"}
    status = proposal_status(history)
    problems = []
    for i, pid in enumerate(ids):
        if pid not in proposed:
            problems.append(f"proposal {pid} does not exist in campaign {campaign!r}")
        elif pid in ids[:i]:
            problems.append(f"proposal {pid} is listed twice")
        elif status[pid] != need:
            problems.append(f"proposal {pid} ({proposed[pid].payload['formula']}) is not {need}: it "
                            f"{'was' if status[pid] != 'pending' else 'is'} {status[pid]}")
    if problems:
        raise CampaignLogError(f"nothing {'marked ' if need == 'pending' else ''}{kind}:\n  " + "\n  ".join(problems))
    return {pid: proposed[pid] for pid in ids}


def _measurement(e: Event) -> str:
    values = ", ".join(f"{n} = {float(v):g}" for n, v in e.payload["values"].items())
    return f"measurement {e.id} ({e.payload.get('formula')}: {values})"


def check_retractions(ids: Sequence[int], history: Sequence[Event], campaign: str) -> list[Event]:
    """The events that ``ids`` name for retraction (``measured``, or a proposal's latest ``failed`` /
    ``rejected`` / ``cancelled``), or ``CampaignLogError`` listing every problem.

    An id is a measurement's event id, an outcome's event id, or the id of a proposal with exactly
    one measurement not retracted yet (with replicates, the message lists them to choose from) or,
    without measurements, with an outcome. An outcome is retracted only while it is its proposal's
    status and no other proposal or measurement of the composition came after it, since the
    proposal becomes pending again.
    """
    by_id = {e.id: e for e in history}
    gone = retracted(history)
    status = proposal_status(history)
    latest: dict[int, Event] = {}  # proposal → its latest outcome event
    of_proposal: dict[int, list[Event]] = {}
    for e in history:
        if e.kind in OUTCOME_KINDS and e.proposal_id is not None:
            latest[e.proposal_id] = e
        if e.kind == "measured" and e.proposal_id is not None:
            of_proposal.setdefault(e.proposal_id, []).append(e)
    chosen: list[Event] = []
    problems = []
    for i in ids:
        e = by_id.get(i)
        if e is not None and e.kind == "proposed":
            valid = [m for m in of_proposal.get(i, []) if m.id not in gone]
            which = f"proposal {i} ({e.payload['formula']})"
            if len(valid) > 1:
                problems.append(f"{which} has {len(valid)} measurements — "
                                f"{'; '.join(map(_measurement, valid))}: give the id of the one to retract")
                continue
            if valid:
                e = valid[0]
            elif status[i] in CLOSING_KINDS:
                e = latest[i]
            else:
                done = ", ".join(f"measurement {m.id}" for m in of_proposal.get(i, []))
                why = f"already retracted: {done}" if done else f"it is {status[i]}"
                problems.append(f"{which} has no measurement to retract ({why})")
                continue
        if e is not None and e.kind in CLOSING_KINDS:
            if problem := _outcome_problem(e, history, by_id, status, latest):
                problems.append(problem)
            elif e in chosen:
                problems.append(f"{_outcome(e, by_id)} is named twice")
            else:
                chosen.append(e)
            continue
        if e is None or e.kind != "measured":
            what = "no such event" if e is None else f"event {i} is a {e.kind!r} event"
            problems.append(f"{i}: not a measurement, outcome or proposal of campaign {campaign!r} ({what})")
        elif e.id in gone:
            r = gone[e.id]
            problems.append(f"{_measurement(e)} was already retracted on {r.created_at:%Y-%m-%d %H:%M} UTC"
                            f"{' by ' + r.payload['operator'] if r.payload.get('operator') else ''} "
                            f"({r.payload.get('reason', '')!r})")
        elif e in chosen:
            problems.append(f"{_measurement(e)} is named twice")
        else:
            chosen.append(e)
    if problems:
        raise CampaignLogError("nothing retracted:\n  " + "\n  ".join(problems))
    return chosen


def _outcome(e: Event, by_id: Mapping[int, Event]) -> str:
    formula = by_id[e.proposal_id].payload.get("formula") if e.proposal_id in by_id else None
    return f"proposal {e.proposal_id} ({formula}) marked {e.kind}"


def _outcome_problem(e: Event, history: Sequence[Event], by_id: Mapping[int, Event], status: Mapping[int, str],
                     latest: Mapping[int, Event]) -> str | None:
    """Why outcome ``e`` cannot be retracted (its proposal would become pending again), or None."""
    what = _outcome(e, by_id)
    if latest.get(e.proposal_id) is not e or status.get(e.proposal_id) != e.kind:
        return f"{what}: that outcome was already retracted" if e.id in undone(history) else \
            f"{what}: that is not the proposal's status any more (it is {status.get(e.proposal_id)})"
    gone = retracted(history)
    for later in history:
        if later.id <= e.id or later.composition_key != e.composition_key:
            continue
        if later.kind == "measured" and later.id not in gone:
            return (f"{what}: the composition was measured since ({_measurement(later)}); "
                    f"reopening the proposal would leave a second result pending")
        if later.kind == "proposed" and status.get(later.id) == "pending":
            return (f"{what}: the composition was proposed again since, as proposal {later.id} "
                    f"(pending); record its result there")
    return None


def recorded_objectives(events: Sequence[Event]) -> dict[str, tuple[list[str], int]]:
    """Objective name → (distinct units recorded, number of measurements), in order of first appearance.

    Units a measurement did not state (possible through the log's Python API) are not listed.
    """
    found: dict[str, tuple[list[str], int]] = {}
    for e in events:
        if e.kind != "measured":
            continue
        units = e.payload.get("units") or {}
        for name in e.payload.get("values") or {}:
            seen, n = found.get(name, ([], 0))
            if name in units and units[name] not in seen:
                seen.append(units[name])
            found[name] = (seen, n + 1)
    return found


def _describe(objectives: Mapping[str, Sequence[str]], counts: Mapping[str, int] | None = None) -> str:
    """``objective 'gap' in eV (7 measurements)`` / ``objectives 'zT' (dimensionless) and 'kappa' in W/m/K``."""

    def one(name: str, units: Sequence[str]) -> str:
        parts = [repr(name)]
        if units:
            parts.append(" or ".join(f"in {u}" if u else "(dimensionless)" for u in units))
        if counts is not None:
            parts.append(f"({counts[name]} measurement{'s' if counts[name] != 1 else ''})")
        return " ".join(parts)

    items = [one(n, u) for n, u in objectives.items()]
    listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return f"objective{'s' if len(items) > 1 else ''} {listed}"


def check_objectives(config: CampaignConfig, events: Sequence[Event], log_name: str) -> None:
    """Refuse (``DefinitionMismatchError``) a definition without exactly the objectives and units of the measurements.

    A log without measurements matches any definition. ``log_name`` names the log in the message.
    """
    recorded = recorded_objectives(events)
    if not recorded:
        return
    defined = {o.name: o.units for o in config.objectives}
    same_units = all({canonical(x) for x in u} <= {canonical(defined[n])} for n, (u, _) in recorded.items()
                     if n in defined)  # 'µW' (micro sign) and 'μW' (Greek mu) are one unit
    if set(recorded) == set(defined) and same_units:
        return
    where = f"the definition file {config.path}" if config.path is not None else "the campaign definition"
    logged = _describe({n: u for n, (u, _) in recorded.items()}, {n: k for n, (_, k) in recorded.items()})
    raise DefinitionMismatchError(
        f"{where} does not match the campaign log {log_name}: the log records {logged}, the definition says "
        f"{_describe({n: [u] for n, u in defined.items()})}. Renaming, adding or removing an objective or changing "
        "its units would drop or relabel the recorded measurements: undo that edit to [[objectives]] (other "
        "settings may change), or start a new campaign for the new objectives"
    )
