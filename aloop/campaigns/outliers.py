"""Whether a value about to be recorded looks wrong: beyond what a surrogate can model, or far from the values before it.

* ``magnitude_problem``: a value beyond ±``MAX_MAGNITUDE`` is refused.
* ``find_outliers``: one far outside the spread of the values recorded so far (of their log10, for an objective
  modelled as log10), of the other sign than nearly all of them, far beyond their extremes, or a slipped decimal
  point away from them, is recorded with an ``OutlierWarning`` (``outliers_message``) naming how to retract it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from aloop.campaigns.state import Event, retracted
from aloop.surrogates.base import MAX_MAGNITUDE

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
#: Where the recorded values of one sign span less than a factor ``SLIP_RANGE``, a value beyond ``SLIP_RATIO`` times
#: the largest (or under the smallest divided by it) that a shift of its decimal point by one to three places would
#: put among them is flagged as a slipped decimal point (0.0603 for 0.603 among values of 0.34–0.64, 6× from the
#: smallest, which ``OUTLIER_RATIO`` lets pass).
SLIP_RATIO = math.sqrt(10.0)
SLIP_RANGE = 10.0
#: Below this many recorded values of an objective, no spread is trusted and nothing is flagged.
OUTLIER_MIN_VALUES = 5
#: Share of recorded values of one sign above which the sign and ratio rules apply (a stray typo keeps them on).
SIGN_SHARE = 0.8


class OutlierWarning(UserWarning):
    """Values recorded far outside the spread of those recorded before them (typos?), with how to retract them."""


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
    extreme: float | None = None  # the largest (or smallest) recorded value, when flagged by OUTLIER_RATIO or a slip
    slip: int = 0  # flagged as a slipped decimal point: the power of ten that puts the value among the recorded ones
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
            slip = (f", and {v * 10.0**self.slip:.4g} would lie among them: a slipped decimal point?" if self.slip
                    else "")
            return (f"{self.name} = {v:g} is {times}{'' if x > 0 else ' in magnitude'} ({x:.4g}) of the {self.n} values "
                    f"recorded before{slip}")
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
        lo, hi = (min(one_sign), max(one_sign)) if one_sign else (0.0, 0.0)
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
            elif (a := sign * v) > 0:
                far = a > OUTLIER_RATIO * hi or a < lo / OUTLIER_RATIO
                shift = 0 if far else decimal_slip(a, lo, hi)
                if far or shift:
                    x = sign * (hi if a > hi else lo)
                    found.append(Outlier(i, name, v, med, k, len(scale), extreme=x, slip=shift))
    return sorted(found, key=lambda o: o.index)


def decimal_slip(a: float, lo: float, hi: float) -> int:
    """The power of ten (±1 to ±3) that puts magnitude ``a``, lying beyond ``SLIP_RATIO`` × ``hi`` or under ``lo`` /
    ``SLIP_RATIO``, inside the recorded ``[lo, hi]`` (``0 < lo ≤ hi``, spanning less than ``SLIP_RANGE``); else 0."""
    if hi >= SLIP_RANGE * lo or lo / SLIP_RATIO <= a <= SLIP_RATIO * hi:
        return 0
    for power in (-1, -2, -3) if a > hi else (1, 2, 3):
        if lo <= a * 10.0**power <= hi:
            return power
    return 0


def outliers_message(found: Sequence[Outlier], where: Sequence[str], undo: Sequence[str]) -> str:
    """The ``OutlierWarning`` text: each value with its row (``where``) and the command that retracts it (``undo``)."""
    lines = [f"{row}: {o.describe()}; undo: {cmd}" for o, row, cmd in zip(found[:20], where, undo, strict=False)]
    if len(found) > 20:
        lines.append(f"… and {len(found) - 20} more")
    log = (f"; for one modelled as log10: more than {OUTLIER_LOG_SPREADS:g} robust spreads of its log10, and over "
           f"{OUTLIER_SPREADS:g}× or under 1/{OUTLIER_SPREADS:g} of the median" if any(o.log for o in found) else "")
    return (f"{len(found)} value(s) recorded far outside the spread of the campaign's earlier values "
            f"(more than {OUTLIER_SPREADS:g} robust spreads from their median; or, where they have one sign, the other "
            f"sign, over {OUTLIER_RATIO:g}× the largest or under 1/{OUTLIER_RATIO:g} of the smallest, or a decimal point "
            f"that slipped by one to three places{log}) — a typo or wrong units? If a "
            "value is wrong, retract it with `aloop retract ID --reason ...` (it leaves the model and the best) and "
            "record the right one:\n  " + "\n  ".join(lines))
