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
* ``magnitude_problem`` and ``find_outliers``: a value no surrogate can model is refused; one
  far outside the spread of the values recorded so far (of their log10, for an objective
  modelled as log10) is recorded with an ``OutlierWarning``.

Units and header names are compared after Unicode NFKC normalisation (``canonical``), so the
micro sign U+00B5 and the Greek mu U+03BC, which look the same, are the same.
"""

from __future__ import annotations

import math
import statistics
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aloop.campaigns._fields import ConfigError
from aloop.campaigns._store import CampaignLogError
from aloop.campaigns.entries import Proposal
from aloop.campaigns.schema import CLOSING_KINDS, OUTCOME_KINDS
from aloop.campaigns.state import Event, proposal_status, retracted, undone
from aloop.surrogates.base import MAX_MAGNITUDE

if TYPE_CHECKING:
    from aloop.campaigns.config import CampaignConfig

# Values beyond ±MAX_MAGNITUDE (1e100) are refused at record time: no measured quantity comes near it in any
# unit, so such a value is a typo (1e200 for 0.32), and one in the log would make every later fit overflow.

#: A recorded value more than this many robust spreads (1.4826 × median absolute deviation)
#: from the median of the objective's values already recorded is flagged (``OutlierWarning``):
#: a decimal slip (320 for 0.32) is thousands of spreads out, the best sample of a campaign tens.
OUTLIER_SPREADS = 1000.0
#: For an objective modelled as log10 the spread is that of log10(values): a value more than this
#: many of those spreads from their median, and at least ``OUTLIER_SPREADS`` times (or 1/that) the
#: median, is flagged (``robust_spread``). On the raw scale, values spread over decades would flag
#: any new high one and never a low one.
OUTLIER_LOG_SPREADS = 10.0
#: A value of an objective recorded positive so far that is more than this many times the largest
#: recorded value, or less than the smallest divided by it, is flagged too: a slipped decimal point
#: (4.1 for 0.41) is only some 100 spreads out when the values are tightly clustered.
OUTLIER_RATIO = 8.0
#: Below this many recorded values of an objective, no spread is trusted and nothing is flagged.
OUTLIER_MIN_VALUES = 5
#: Share of recorded values of one sign above which the sign and ratio rules apply (a stray typo keeps them on).
SIGN_SHARE = 0.8


class OutlierWarning(UserWarning):
    """Values recorded far outside the spread of those recorded before them (typos?), with how to retract them."""


def canonical(text: str) -> str:
    """``text`` in Unicode NFKC without surrounding blanks: the form headers, names and units are compared in."""
    return unicodedata.normalize("NFKC", text).strip()


def magnitude_problem(value: float, shown: str | None = None) -> str | None:
    """Why ``value`` (as the user wrote it: ``shown``) cannot be recorded (beyond ``MAX_MAGNITUDE``), or ``None``."""
    if abs(value) <= MAX_MAGNITUDE:
        return None
    return (f"value {shown or format(value, 'g')} is beyond ±{MAX_MAGNITUDE:g}, more than any surrogate can model "
            "in float64 (a typo?): give the measured value in the column's units")


def robust_spread(values: Sequence[float], log: bool = False) -> float | None:
    """The spread of ``values`` that outliers do not inflate: 1.4826·MAD, else 1.2533·mean absolute deviation.

    Both estimate the standard deviation of normal data. If all values are equal, the spread
    is ``|median|`` (a relative tolerance), and ``None`` (unknown) when that is 0 too. With
    ``log`` (values are log10 of the measured ones) it is at least log10(``OUTLIER_SPREADS``) /
    ``OUTLIER_LOG_SPREADS``: nothing within a factor ``OUTLIER_SPREADS`` of the median stands out.
    """
    med = statistics.median(values)
    deviations = [abs(v - med) for v in values]
    spread = 1.4826 * statistics.median(deviations) or 1.2533 * statistics.fmean(deviations)
    if log:
        return max(spread, math.log10(OUTLIER_SPREADS) / OUTLIER_LOG_SPREADS)
    return spread or abs(med) or None


@dataclass(frozen=True)
class Outlier:
    """A new value of objective ``name`` lying ``spreads`` robust spreads from the ``median`` of ``n`` recorded ones.

    ``log``: the spreads are those of log10 of the values (an objective modelled as log10).
    """

    index: int
    name: str
    value: float
    median: float
    spreads: float
    n: int
    log: bool = False
    extreme: float | None = None  # the largest (or smallest) recorded value, when flagged by OUTLIER_RATIO
    same_sign: int = 0  # flagged for its sign: how many recorded values have the other one

    def describe(self) -> str:
        """The warning's text for this value: ``zT = 320 is 2.1e+03 robust spreads from the median (0.42) of …``."""
        if self.same_sign:
            signs = ("negative", "positive") if self.value < 0 else ("positive", "negative")
            return (f"{self.name} = {self.value:g} is {signs[0]}, while {self.same_sign} of the {self.n} values "
                    f"recorded before are {signs[1]} (median {self.median:.4g}): a slipped minus sign?")
        if self.extreme is not None:
            v, x = self.value, self.extreme
            times = f"{v / x:.3g}× the largest" if abs(v) > abs(x) else f"1/{x / v:.3g} of the smallest"
            return (f"{self.name} = {v:g} is {times}{'' if x > 0 else ' in magnitude'} ({x:.4g}) of the {self.n} values "
                    "recorded before")
        spreads = f"robust spreads of log10({self.name})" if self.log else "robust spreads"
        return (f"{self.name} = {self.value:g} is {self.spreads:.3g} {spreads} from the median ({self.median:.4g}) "
                f"of the {self.n} values recorded before")


def find_outliers(
    new: Sequence[Mapping[str, float]], history: Sequence[Event], log_scale: Collection[str] = ()
) -> list[Outlier]:
    """The values of ``new`` rows more than ``OUTLIER_SPREADS`` robust spreads from the median of the recorded ones.

    Compared, per objective, with the measurements of ``history`` that are not retracted, once
    there are at least ``OUTLIER_MIN_VALUES`` of them. Objectives in ``log_scale`` (modelled as
    log10) are compared in log10 (``OUTLIER_LOG_SPREADS``; values <= 0 are left out), so a value
    1e-12 among ones near 1e-4 is flagged, and one 20× the highest of values spread over decades is not.
    """
    gone = retracted(history)
    recorded: dict[str, list[float]] = {}
    for e in history:
        if e.kind == "measured" and e.id not in gone:
            for name, v in (e.payload.get("values") or {}).items():
                recorded.setdefault(name, []).append(float(v))
    found = []
    for name, old in recorded.items():
        log = name in log_scale
        scale = [math.log10(v) for v in old if v > 0] if log else old
        if len(scale) < OUTLIER_MIN_VALUES or (spread := robust_spread(scale, log)) is None:
            continue
        med = statistics.median(scale)
        # Values of one sign (all but a stray typo or two): a new value of the other sign, or one far off in
        # ratio to them, is flagged even where the spread rule is too wide to see it.
        share = SIGN_SHARE * len(old)
        sign = 1.0 if sum(x > 0 for x in old) >= share else -1.0 if sum(x < 0 for x in old) >= share else 0.0
        one_sign = [sign * x for x in old if sign * x > 0]  # magnitudes of the values of the common sign
        for i, row in enumerate(new):
            if name not in row or (log and row[name] <= 0):
                continue
            v = float(row[name])
            k = abs((math.log10(v) if log else v) - med) / spread
            if k > (OUTLIER_LOG_SPREADS if log else OUTLIER_SPREADS):
                found.append(Outlier(i, name, v, 10**med if log else med, k, len(scale), log))
            elif log or not one_sign:
                continue
            elif sign * v < 0:  # zero is left alone: a metal's band gap, say
                found.append(Outlier(i, name, v, med, k, len(scale), same_sign=len(one_sign)))
            elif (a := sign * v) > 0 and (a > OUTLIER_RATIO * max(one_sign) or a < min(one_sign) / OUTLIER_RATIO):
                x = sign * (max(one_sign) if a > max(one_sign) else min(one_sign))
                found.append(Outlier(i, name, v, med, k, len(scale), extreme=x))
    return sorted(found, key=lambda o: o.index)


def outliers_message(found: Sequence[Outlier], where: Sequence[str], undo: Sequence[str]) -> str:
    """The ``OutlierWarning`` text: each value with its row (``where``) and the command that retracts it (``undo``)."""
    lines = [f"{row}: {o.describe()}; undo: {cmd}" for o, row, cmd in zip(found[:20], where, undo, strict=False)]
    if len(found) > 20:
        lines.append(f"… and {len(found) - 20} more")
    log = (f"; for one modelled as log10: more than {OUTLIER_LOG_SPREADS:g} robust spreads of its log10, and over "
           f"{OUTLIER_SPREADS:g}× or under 1/{OUTLIER_SPREADS:g} of the median" if any(o.log for o in found) else "")
    return (f"{len(found)} value(s) recorded far outside the spread of the campaign's earlier values "
            f"(more than {OUTLIER_SPREADS:g} robust spreads from their median; or, where they have one sign, the other "
            f"sign, over {OUTLIER_RATIO:g}× the largest or under 1/{OUTLIER_RATIO:g} of the smallest{log}) — a typo or "
            "wrong units? If a "
            "value is wrong, retract it with `aloop retract ID --reason ...` (it leaves the model and the best) and "
            "record the right one:\n  " + "\n  ".join(lines))


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
    pending = {e.composition_key for e in history if e.kind == "proposed" and status[e.id] == "pending"}
    pending -= rejected | measured
    groups = {"rejected compositions cannot be proposed again": rejected, "already measured": measured,
              "already pending": pending}
    parts = [f"{why}: {', '.join(p.formula for p in props if p.key in keys)}"
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
