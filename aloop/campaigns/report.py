"""Where a campaign stands, for people: the status summary, the HTML/Markdown report with plots, exports.

The report has a best-so-far curve per objective, a parity plot and a calibration curve
from cross-validation (out-of-fold predictions, so they show how the model does on
compositions it has not seen), and — when the candidates vary in exactly three elements —
a ternary diagram of candidates, measurements and pending proposals (``aloop.campaigns.figures``).
"Best" is per composition, the mean of its replicates (``aloop.campaigns.best``). Retracted
measurements appear only in their own table and in the events export. ``report.html``
embeds every figure (base64 PNG) and works offline; ``report.md`` links the PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aloop.acquisition.feasibility import MIN_CV_CLASS, cross_validate_feasibility
from aloop.atomic import write_atomically
from aloop.campaigns import state
from aloop.campaigns._store import describe
from aloop.campaigns.best import best_so_far, by_composition, ranked
from aloop.campaigns.figures import (
    model_units,
    plot_best_so_far,
    plot_calibration,
    plot_parity,
    plot_ternary,
    png,
)
from aloop.campaigns.modeling import CVResult
from aloop.campaigns.pool import CampaignError, CampaignWarning, CandidatePool
from aloop.surrogates import calibration_verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from aloop.campaigns.loop import Campaign

EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def status_dict(campaign: Campaign, events: Sequence[state.Event], cv: bool = True) -> dict[str, Any]:
    """The JSON-able summary behind ``Campaign.status()`` and ``aloop status`` (``cv``: cross-validate the model).

    Without the candidate list (its file missing or unreadable: a ``CampaignWarning`` says so) the counts
    of candidates are ``None`` and there is no cross-validation.
    """
    pool = _pool_or_none(campaign)
    return _status(campaign, events, pool, campaign.cross_validate() if cv and pool is not None else None, cv)


def _pool_or_none(campaign: Campaign) -> CandidatePool | None:
    """The campaign's candidate pool, or ``None`` with a ``CampaignWarning`` when it cannot be had."""
    try:
        return campaign.pool
    except CampaignError as exc:
        warnings.warn(f"{exc} (until then, status and report go without candidate counts and cross-validation)",
                      CampaignWarning, stacklevel=3)
        return None


def _status(campaign: Campaign, events: Sequence[state.Event], pool: CandidatePool | None, cv: CVResult | None,
            cv_asked: bool) -> dict[str, Any]:
    props = state.proposals(events)
    raw_obs = state.observations(events)
    obs = campaign._observations(events)
    excluded = np.asarray(sorted(state.excluded_keys(events)), dtype=str)
    counts = {
        "candidates": len(pool) if pool is not None else None,
        "available": int(len(pool) - np.isin(pool.keys.astype(str), excluded).sum()) if pool is not None else None,
        "proposed": len(props),
        "batches": int(props["batch_id"].nunique()) if len(props) else 0,
        "measured": len(raw_obs),
        "unsolicited": int(raw_obs["unsolicited"].sum()) if len(raw_obs) else 0,
        "retracted": len(state.retracted(events)) + len(state.undone(events)),  # values and fail/reject/cancel marks
        **{k: int((props["status"] == k).sum()) if len(props) else 0 for k in ("pending", "failed", "rejected", "cancelled")},
        "measured_proposals": int((props["status"] == "measured").sum()) if len(props) else 0,
    }
    pending = props[props["status"] == "pending"] if len(props) else props
    versions = state.model_versions(events)
    model: dict[str, Any] = {"version": None, "training_size": 0, "up_to_date": False,
                             "featurizer": campaign._featurizer_ident(), "surrogate": campaign.config.surrogate.kind,
                             "modelled_as": list(campaign.space.labels)}
    if len(versions):
        digest = campaign._digest(obs) if len(obs) else None
        # After a retraction the data may again be that of an earlier version, which is then the one in use.
        same = versions[[(d or {}).get("data_digest") == digest for d in versions["details"]]]
        last = (same if len(same) else versions).iloc[-1]
        model.update(version=str(last["model_version"]), training_size=int(last["training_size"]),
                     fitted_at=last["fitted_at"].isoformat(), up_to_date=bool(len(same)))
    if cv is not None:
        model["cv"] = {lab: {"folds": cv.folds, "n": m["n"], "compositions": len(np.unique(cv.groups)),
                             "mae": m["mae"], "rmse": m["rmse"], "coverage_68": m["coverage_68"],
                             "coverage_95": m["coverage_95"], "miscalibration_area": m["miscalibration_area"],
                             "verdict": calibration_verdict(cv.y[:, j], cv.mean[:, j], cv.std[:, j], cv.groups)}
                       for j, (lab, m) in enumerate(cv.metrics.items())}
    elif cv_asked and len(obs) < 5:
        model["cv"] = f"needs at least 5 observations (have {len(obs)})"
    elif cv_asked and obs["key"].nunique() < 3:
        model["cv"] = f"needs at least 3 distinct compositions (have {obs['key'].nunique()})"
    elif cv_asked:
        model["cv"] = "needs the candidate list (see the warning)"
    feasibility = _feasibility_cv(campaign, events, obs) if cv_asked and pool is not None else None
    return {
        "campaign": campaign.name,
        "definition": str(campaign.config.path),
        "log": describe(campaign.log.url),
        "counts": counts,
        "best": best_so_far(campaign, obs),
        **({"pareto_front": _front(campaign, obs)} if len(campaign.config.objectives) > 1 else {}),
        "pending": [{"proposal_id": int(r.proposal_id), "batch_id": int(r.batch_id), "formula": r.formula}
                    for r in pending.itertuples()],
        "model": model,
        **({"feasibility": feasibility} if feasibility is not None else {}),
    }


def _feasibility_cv(campaign: Campaign, events: Sequence[state.Event], obs: pd.DataFrame) -> dict[str, Any] | None:
    """Cross-validation of P(success) over every outcome (measured compositions succeeded; failures, vetoes not)."""
    bad = state.negatives(events)
    if not len(bad):
        return None
    ok = obs.drop_duplicates("key")
    keys = [*ok["key"], *bad["key"]]
    X = campaign.features([*ok["formula"], *bad["formula"]], keys)
    succeeded = np.r_[np.ones(len(ok), dtype=bool), np.zeros(len(bad), dtype=bool)]
    result = cross_validate_feasibility(X, succeeded, np.asarray(keys, dtype=str), random_state=campaign.config.seed)
    return result if result is not None else {"outcomes": len(keys), "failures": len(bad), "verdict": (
        f"needs at least {MIN_CV_CLASS} failures and {MIN_CV_CLASS} successes to cross-validate")}


def _front(campaign: Campaign, obs: pd.DataFrame) -> list[str]:
    """Formulas of the measured compositions no other beats on every objective (several objectives)."""
    table = ranked(campaign, by_composition(obs, [o.name for o in campaign.config.objectives]))
    return table.loc[table["pareto_layer"] == 1, "formula"].astype(str).tolist()


# --- report files -------------------------------------------------------------------------------


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    cells = df.astype(object).where(df.notna(), "").map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n" for row in cells.to_numpy())


def write_report(campaign: Campaign, events: Sequence[state.Event], out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and the PNG figures into the folder ``out_dir`` (made if need be)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CampaignError(f"cannot write the report into {out_dir}: it is a file, not a folder (a report is a "
                            "folder holding report.html, report.md and PNG figures): name a folder")
    for name, mark in (("report.md", "# Campaign report: "), ("report.html", "<title>aloop report: ")):
        _check_replaceable(out_dir / name, mark)
    pool = _pool_or_none(campaign)
    cv = campaign.cross_validate() if pool is not None else None
    status = _status(campaign, events, pool, cv, True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CampaignError(f"cannot make the report folder {out_dir}: {exc.strerror or exc}") from None
    obs = campaign._observations(events)
    figures: dict[str, tuple[str, Figure]] = {}
    if len(obs):
        figures["best_so_far"] = ("Best so far vs experiment number", plot_best_so_far(campaign, obs))
    if cv is not None:
        figures["parity"] = ("Parity plot (cross-validation, error bars ±1.96σ)", plot_parity(cv, model_units(campaign)))
        figures["calibration"] = ("Calibration of the predictive uncertainty (cross-validation)", plot_calibration(cv))
    components = pool.components() if pool is not None else []
    grid = campaign.config.search_space.elements
    if set(grid) == set(components):
        components = list(grid)  # the definition's order
    if len(components) == 3:
        figures["ternary"] = ("Proposals on the ternary diagram", plot_ternary(campaign, events, components))
    pngs = {key: png(fig) for key, (_, fig) in figures.items()}
    paths: dict[str, Path] = {}
    for key, data in pngs.items():
        paths[key] = out_dir / f"{key}.png"
        write_atomically(paths[key], data)

    names = list(campaign.space.names)
    several = len(names) > 1
    top = ranked(campaign, by_composition(obs, names)).head(10)
    units = {o.name: f"{o.name} [{o.units}]" for o in campaign.config.objectives if o.units}
    columns = ["formula", "proposal_id", *names, "n", "measurements", *(["pareto_layer"] if several else [])]
    top = top[columns].rename(columns=units) if len(top) else top
    top["measurements"] = top["measurements"].map(lambda ids: ", ".join(map(str, ids)))
    gone = state.retractions(events)
    # Without retracted outcomes (fail / reject / cancel marks), the table is one of measurements.
    plain = len(gone) and (gone["kind"] == "measured").all()
    gone = gone.drop(columns=["key", *(["kind", "outcome_id"] if plain else [])]).rename(columns=units) \
        if len(gone) else pd.DataFrame()
    props = state.proposals(events)
    pending = props[props["status"] == "pending"] if len(props) else props
    keep = [c for c in pending.columns if c in ("proposal_id", "batch_id", "formula", "acquisition_value", "reason")
            or c.startswith(("mean_", "std_"))]
    pending = pending[keep] if len(pending) else pd.DataFrame()
    versions = state.model_versions(events)
    versions = versions[["model_version", "training_size", "fitted_at"]] if len(versions) else pd.DataFrame()
    summary = _summary_lines(status)
    if "ternary" not in figures:
        why = (f"{len(components)} elements vary across the candidates ({', '.join(components)})" if pool is not None
               else "the candidate list is missing")
        summary.append(f"no ternary diagram: {why}; it needs exactly 3")
    best_title = ("Best compositions (Pareto layer 1 = not beaten on every objective by another; mean of replicates; "
                  "n measurements)" if several else "Best compositions (mean of replicates; n measurements)")
    tables = [(best_title, top), ("Pending proposals", pending),
              ("Model versions", versions), ("Retractions", gone)]

    md = [f"# Campaign report: {campaign.name}\n", *[f"- {s}" for s in summary], ""]
    for key, (title, _) in figures.items():
        md += [f"## {title}\n", f"![{title}]({key}.png)\n"]
    for title, df in tables:
        md += [f"## {title}\n", _md_table(df)]
    paths["markdown"] = out_dir / "report.md"
    write_atomically(paths["markdown"], "\n".join(md).encode())

    body = [f"<h1>Campaign report: {html.escape(campaign.name)}</h1>", "<ul>",
            *[f"<li>{html.escape(s)}</li>" for s in summary], "</ul>"]
    for key, (title, _) in figures.items():
        b64 = base64.b64encode(pngs[key]).decode()
        body += [f"<h2>{html.escape(title)}</h2>", f'<img alt="{html.escape(title)}" src="data:image/png;base64,{b64}">']
    for title, df in tables:
        body += [f"<h2>{html.escape(title)}</h2>",
                 df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="") if len(df) else "<p><em>none</em></p>"]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}img{max-width:100%}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>aloop report: {html.escape(campaign.name)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    paths["html"] = out_dir / "report.html"
    write_atomically(paths["html"], page.encode())
    return paths


def _check_replaceable(path: Path, mark: str) -> None:
    """Refuse to replace ``path`` unless it is missing or an earlier aloop report (its start holds ``mark``)."""
    try:
        head = path.read_bytes()[:4096].decode("utf-8", errors="replace") if path.exists() else mark
    except OSError as exc:
        raise CampaignError(f"cannot read {path} to check it is an earlier report: {exc.strerror or exc}") from None
    if mark not in head:
        raise CampaignError(f"{path} exists and is not an aloop report, so the report would replace it: give another "
                            "folder with -o (an earlier report in it is updated in place)")


def _summary_lines(status: dict[str, Any]) -> list[str]:
    c, m = status["counts"], status["model"]
    lines = [
        f"{c['measured']:,} measurements ({c['unsolicited']:,} unsolicited), {c['retracted']:,} retracted (values or "
        f"marks); {c['proposed']:,} proposed in {c['batches']:,} batches: {c['measured_proposals']:,} measured, "
        f"{c['pending']:,} pending, {c['failed']:,} failed, {c['rejected']:,} rejected, {c['cancelled']:,} cancelled; "
        + (f"{c['available']:,} of {c['candidates']:,} candidates still available" if c["candidates"] is not None
           else "candidates: unknown (no candidate list)"),
    ]
    if status.get("pareto_front"):
        front = status["pareto_front"]
        shown = ", ".join(front[:10]) + (f", … ({len(front) - 10} more)" if len(front) > 10 else "")
        lines.append(f"Pareto front: {len(front)} composition{'s' * (len(front) != 1)} that no other beats on every "
                     f"objective: {shown}; the best per objective below trade one objective for another")
    for name, b in status["best"].items():
        hits = f" ({b['hits']} in the window)" if "hits" in b else ""
        if "from_target" in b:
            hits = f" ({b['from_target']:.4g}{' ' + b['units'] if b['units'] else ''} from the target)"
        ids = ", ".join(map(str, b["measurements"]))
        how = (f"mean of {b['n']}: {', '.join(f'{v:.4g}' for v in b['values'])}; measurements {ids}" if b["n"] > 1
               else f"measurement {ids}")
        units = f" {b['units']}" if b["units"] else ""
        lines.append(f"best {name}: {b['value']:.4g}{units} — {b['formula']} ({how}){hits}")
    fresh = ("" if m["up_to_date"] or m["version"] is None
             else "; the results or the model set-up changed since: the next propose retrains")
    version = (f"version in use {m['version']} (trained on {m['training_size']} observations{fresh})"
               if m["version"] is not None else "no model fitted yet (`aloop propose` fits one once the initial design is "
                                                  "measured)")
    lines.append(f"model: {m['surrogate']} on {m['featurizer']} features, modelled as {', '.join(m['modelled_as'])}; "
                 + version)
    cv = m.get("cv")
    if isinstance(cv, dict):
        for lab, s in cv.items():
            lines.append(f"cross-validation of the model set-up ({s['folds']}-fold, grouped by composition, "
                         f"{s['n']} observations of {s['compositions']} compositions) of {lab}: MAE {s['mae']:.3g}, "
                         f"68% / 95% predictive-interval coverage {s['coverage_68']:.0%} / {s['coverage_95']:.0%}; "
                         f"uncertainty {s['verdict']}")
    elif cv:
        lines.append(f"cross-validation: {cv}")
    if f := status.get("feasibility"):
        score = (f"{f['folds']}-fold, grouped by composition: Brier score {f['brier']:.3f} against "
                 f"{f['brier_base_rate']:.3f} for the base rate; mean P(success) {f['mean_p_success']:.0%} against "
                 f"{f['success_rate']:.0%} made; " if "brier" in f else "")
        lines.append(f"cross-validation of P(success) over {f['outcomes']} outcomes ({f['failures']} failed or "
                     f"vetoed): {score}{f['verdict']}")
    lines.append(f"log: {status['log']}")
    return lines


# --- export ---------------------------------------------------------------------------------------


def events_table(campaign: Campaign, events: Sequence[state.Event]) -> pd.DataFrame:
    """Every event as one flat row: proposals, measurements (``<name> [<units>]`` columns), outcomes, retractions, fits."""
    proposed = {e.id: e for e in events if e.kind == "proposed"}
    units = {o.name: o.units for o in campaign.config.objectives}
    rows = []
    for e in events:
        p = e.payload
        src = proposed.get(e.proposal_id) if e.proposal_id is not None else None
        row: dict[str, Any] = {
            "event_id": e.id, "kind": e.kind, "created_at": e.created_at, "batch_id": e.batch_id,
            "proposal_id": e.id if e.kind == "proposed" else e.proposal_id,
            "formula": p.get("formula") or (src.payload.get("formula") if src else None),
            "composition_key": e.composition_key,
        }
        if e.kind == "proposed":
            row.update(model_version=p.get("model_version"), acquisition_value=p.get("acquisition_value"),
                       reason=p.get("reason"))
            row.update({f"mean_{k}": v for k, v in (p.get("mean") or {}).items()})
            row.update({f"std_{k}": v for k, v in (p.get("std") or {}).items()})
        elif e.kind == "measured":
            for k, v in (p.get("values") or {}).items():
                u = (p.get("units") or {}).get(k, units.get(k, ""))
                row[f"{k} [{u}]" if u else k] = v
            row.update(measured_at=p.get("measured_at"), operator=p.get("operator"), notes=p.get("notes"),
                       raw_ref=p.get("raw_ref"), unsolicited=bool(p.get("unsolicited")),
                       idempotency_key=e.idempotency_key)
        elif e.kind == "retracted":
            row.update(measurement_id=p.get("measurement_id"), outcome_id=p.get("outcome_id"), reason=p.get("reason"),
                       operator=p.get("operator"))
        elif e.kind == "model_fitted":
            row.update(model_version=p.get("model_version"), training_size=p.get("training_size"),
                       details=json.dumps(p.get("details") or {}, sort_keys=True))
            row.update({f"cv_{k}": v for k, v in (p.get("cv") or {}).items()})
        else:
            row["reason"] = p.get("reason")
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("batch_id", "proposal_id", "measurement_id", "outcome_id", "training_size"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    return df


#: Text columns of the exported tables: typed as strings in Parquet even while they hold no value yet.
_TEXT_COLUMNS = ("kind", "formula", "composition_key", "key", "model_version", "reason", "operator", "notes", "raw_ref",
                 "raw_data", "idempotency_key", "details")


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The table with one type per column whatever it holds yet (Parquet keeps the types): text, times, flags."""
    df = df.copy()
    for col in df.columns.intersection(_TEXT_COLUMNS):
        df[col] = df[col].astype("string")
    if "measured_at" in df.columns:
        df["measured_at"] = pd.to_datetime(df["measured_at"], utc=True, format="ISO8601")
    if "unsolicited" in df.columns:
        df["unsolicited"] = df["unsolicited"].astype("boolean")
    return df


def export_table(campaign: Campaign, events: Sequence[state.Event], path: Path, table: str) -> Path:
    """Write the events or observations table to the new file ``path`` (``.csv``, ``.parquet`` or ``.pq``), atomically.

    An existing file is never replaced (it may be a filled-in results sheet): ``CampaignError``.
    """
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CampaignError(f"cannot tell the export format of {path.name!r}: use .csv, .parquet or .pq")
    if path.exists() or path.is_symlink():
        what = "a folder" if path.is_dir() else "a file"
        raise CampaignError(f"{path} already exists ({what}); refusing to overwrite it: choose another file name")
    if table == "events":
        df = events_table(campaign, events)
    elif table == "observations":
        df = state.observations(events)
        units = df.attrs.get("units", {})
        # Headed as a results file is (raw_data, 'NAME [UNITS]'), so the table can be recorded again.
        df = df.rename(columns={**{k: f"{k} [{u}]" for k, u in units.items() if u}, "raw_ref": "raw_data"})
        df["measured_at"] = df["measured_at"].astype(str).replace({"None": None, "NaT": None})
    else:
        raise CampaignError(f"unknown export table {table!r}; choose 'events' or 'observations'")
    if not path.parent.is_dir():
        raise CampaignError(f"cannot write {path}: folder {path.parent} does not exist")
    buf = io.BytesIO()
    if fmt == "csv":
        buf.write(df.to_csv(index=False).encode("utf-8-sig"))  # the BOM makes Excel read UTF-8 (units such as μV/K)
    else:
        _typed(df).to_parquet(buf, index=False)
    try:
        write_atomically(path, buf.getvalue(), replace=False)
    except FileExistsError:
        raise CampaignError(f"{path} appeared while the export was written; it was left as it is") from None
    except OSError as exc:
        raise CampaignError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
