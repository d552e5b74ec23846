"""What callers append to the campaign log (proposals, measurements), their checks and JSON payloads."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aloop.campaigns._store import CampaignLogError


@dataclass(frozen=True)
class Proposal:
    """One composition to make, with the model's prediction per objective."""

    formula: str
    key: str
    mean: Mapping[str, float] = field(default_factory=dict)
    std: Mapping[str, float] = field(default_factory=dict)
    acquisition_value: float | None = None
    reason: str = ""
    p_success: float | None = None  # the feasibility model's, once failures or vetoes exist

    @classmethod
    def predicted(cls, formula: str, key: str, labels: Sequence[str], mean: Sequence[float], var: Sequence[float],
                  **fields: object) -> Proposal:
        """A proposal carrying a model's prediction: ``mean`` and ``var`` are its row (``m``) of ``predict``."""
        return cls(formula, key, mean={lab: float(mean[j]) for j, lab in enumerate(labels)},
                   std={lab: math.sqrt(max(float(var[j]), 0.0)) for j, lab in enumerate(labels)},
                   **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Measurement:
    """One measured result: values and units per objective, for a proposal or a composition.

    Give ``proposal_id`` or ``key`` (canonical composition key); ``formula``/``key`` of a
    proposal are filled in from the log. ``measured_at`` is timezone-aware (naive = UTC).
    ``row`` labels the source row in error messages.
    """

    values: Mapping[str, float]
    units: Mapping[str, str]
    proposal_id: int | None = None
    formula: str | None = None
    key: str | None = None
    measured_at: datetime | None = None
    operator: str | None = None
    notes: str | None = None
    raw_ref: str | None = None
    idempotency_key: str | None = None
    row: object = None

    def order(self) -> tuple:
        """Where this row goes among the rows of one results table: by content, not by line, so the same
        measurements in another row order get the same event order (and the same models and proposals)."""
        when = "" if self.measured_at is None else self.measured_at.isoformat()
        return (self.proposal_id is None, self.proposal_id or 0, self.key or "", self.formula or "",
                tuple(sorted((k, float(v)) for k, v in self.values.items())), when, self.idempotency_key or "",
                self.operator or "", self.notes or "", self.raw_ref or "")


@dataclass(frozen=True)
class AppendResult:
    """What ``append_measurements`` did: ``new`` rows written, ``duplicates`` already present.

    ``event_ids`` are the new measurements' ids (what ``aloop retract`` takes), ``rows`` the
    input row label (``Measurement.row``: a results file's line) of each, in the same order.
    """

    new: int
    duplicates: int
    unsolicited: int
    event_ids: tuple[int, ...]
    rows: tuple[object, ...] = ()


@dataclass(frozen=True)
class Batch:
    """Proposals written together: their batch number and proposal ids (in input order)."""

    batch_id: int
    proposal_ids: tuple[int, ...]

    def table(self, props: Sequence[Proposal], labels: Sequence[str], model_version: str | None):  # noqa: ANN201
        """The batch as ``propose`` returns it: one row per proposal with ``proposal_id``, ``batch_id``,
        ``formula``, ``key``, ``mean_<label>`` / ``std_<label>``, ``acquisition_value``, ``p_success``,
        ``reason`` and ``model_version`` (a pandas DataFrame)."""
        import pandas as pd

        table = pd.DataFrame({"proposal_id": self.proposal_ids, "batch_id": self.batch_id,
                              "formula": [p.formula for p in props], "key": [p.key for p in props]})
        for lab in labels:
            table[f"mean_{lab}"] = [p.mean.get(lab, math.nan) for p in props]
            table[f"std_{lab}"] = [p.std.get(lab, math.nan) for p in props]
        table["acquisition_value"] = [math.nan if p.acquisition_value is None else p.acquisition_value for p in props]
        table["p_success"] = [math.nan if p.p_success is None else p.p_success for p in props]
        table["reason"] = [p.reason for p in props]
        table["model_version"] = model_version
        return table


def utc(ts: datetime | None) -> datetime | None:
    """``ts`` as timezone-aware UTC (a naive time is taken to be UTC)."""
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class ReplicateWarning(UserWarning):
    """A result stored next to an earlier value of the same proposal (a replicate), not replacing it."""


def result_key(m: Measurement, proposal_id: int | None, key: str | None) -> str:
    """sha256 of (proposal id, or the composition key if none, values, measured-at): same result, same key.

    The log stores it for rows without an ``idempotency_key``, with the proposal the row was
    matched to, so a result named by proposal id in one file and by formula in another is one event.
    """
    ident = f"proposal:{int(proposal_id)}" if proposal_id is not None else f"key:{key}"
    when = utc(m.measured_at)
    doc = [ident, sorted((k, float(v)) for k, v in m.values.items()), when.isoformat() if when else None]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def default_idempotency_key(m: Measurement) -> str:
    """``result_key`` of ``m`` as given (its own proposal id or composition key), before matching."""
    return result_key(m, m.proposal_id, m.key)


def label(m: Measurement, i: int, row_name: str = "row") -> str:
    """How to name measurement ``i`` in messages (its source row, e.g. ``line 3``, when known)."""
    return f"{row_name} {m.row}" if m.row is not None else f"measurement {i}"


Replicate = tuple[int, str | None, Mapping[str, float], Sequence[Mapping[str, float]]]


def replicates_message(replicates: Sequence[Replicate]) -> str:
    """The warning for results stored next to earlier values; each is (proposal id, formula, values, earlier values)."""

    def show(values: Mapping[str, float]) -> str:
        return ", ".join(f"{n} = {float(v):g}" for n, v in values.items())

    lines = [
        f"proposal {pid} ({formula}) already has a measured value ({'; '.join(show(v) for v in earlier)}); "
        f"new: {show(values)}"
        for pid, formula, values, earlier in replicates[:20]
    ]
    if len(replicates) > 20:
        lines.append(f"… and {len(replicates) - 20} more")
    return (
        f"{len(replicates)} result(s) stored as replicates next to earlier values, not as corrections: "
        "nothing is replaced (the log is append-only), so every value counts:\n  " + "\n  ".join(lines)
    )


def finite(x: object) -> bool:
    """A finite real number (numpy scalars included, booleans not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def check_proposals(props: Sequence[Proposal]) -> list[str]:
    """Problems of a batch on its own: repeated compositions, non-finite predictions."""
    problems = []
    for i, p in enumerate(props):
        if p.key in {q.key for q in props[:i]}:
            problems.append(f"proposal {i}: composition {p.key!r} repeats an earlier one in the batch")
        numbers = [*p.mean.values(), *p.std.values(), *([] if p.acquisition_value is None else [p.acquisition_value])]
        if not all(finite(x) for x in numbers):
            problems.append(f"proposal {i} ({p.formula}): predictions must be finite numbers")
        if p.p_success is not None and not (finite(p.p_success) and 0 <= p.p_success <= 1):
            problems.append(f"proposal {i} ({p.formula}): p_success must be a probability in [0, 1], got {p.p_success!r}")
    return problems


def check_measurements(rows: Sequence[Measurement]) -> tuple[list[str], list[str]]:
    """``(idempotency keys, problems)`` of rows on their own (values, sample, keys repeated within)."""
    problems: list[str] = []
    keys: list[str] = []
    first: dict[str, int] = {}
    for i, m in enumerate(rows):
        if not m.values or not all(finite(v) for v in m.values.values()):
            problems.append(f"{label(m, i)}: values must be finite numbers, got {dict(m.values)!r}")
        if m.proposal_id is None and m.key is None:
            problems.append(f"{label(m, i)}: needs a proposal id or a composition key")
        k = m.idempotency_key or default_idempotency_key(m)
        if k in first:
            problems.append(f"{label(m, i)}: idempotency key {k[:16]}… repeats {label(rows[first[k]], first[k])}")
        first.setdefault(k, i)
        keys.append(k)
    return keys, problems


def proposal_payload(p: Proposal, model_version: str | None) -> dict[str, object]:
    """The JSON payload of a ``proposed`` event."""
    return {
        "formula": p.formula,
        "key": p.key,
        "model_version": model_version,
        "mean": {k: float(v) for k, v in p.mean.items()},
        "std": {k: float(v) for k, v in p.std.items()},
        "acquisition_value": None if p.acquisition_value is None else float(p.acquisition_value),
        "reason": p.reason,
        **({} if p.p_success is None else {"p_success": float(p.p_success)}),
    }


def measurement_payload(m: Measurement, formula: str | None, key: str | None, unsolicited: bool) -> dict[str, object]:
    """The JSON payload of a ``measured`` event (formula and key resolved by the log)."""
    when = utc(m.measured_at)
    return {
        "formula": formula,
        "key": key,
        "values": {n: float(v) for n, v in m.values.items()},
        "units": dict(m.units),
        "measured_at": when.isoformat() if when else None,
        "operator": m.operator,
        "notes": m.notes,
        "raw_ref": m.raw_ref,
        "unsolicited": unsolicited,
    }


def id_list(ids: int | Sequence[int], what: str, noun: str) -> list[int]:
    """``ids`` (one id or several) as a list; ``CampaignLogError`` if there are none or one is not an integer."""
    items = [ids] if isinstance(ids, numbers.Integral | str | bytes) else ids
    try:
        items = list(items)  # type: ignore[arg-type]
    except TypeError:
        items = [ids]
    if not items:
        raise CampaignLogError(f"{what}: no {noun} ids given")
    bad = [x for x in items if not isinstance(x, numbers.Integral) or isinstance(x, bool)]
    if bad:
        raise CampaignLogError(f"{what}: {noun} ids are integers, got {bad[0]!r}")
    return [int(x) for x in items]
