"""Where a campaign stands, for people: the status summary, the HTML/Markdown report with plots, exports.

The report has a best-so-far curve per objective, a parity plot and a calibration curve
from cross-validation (out-of-fold predictions, so they show how the model does on
compositions it has not seen), and — when the candidates vary in exactly three elements —
a ternary diagram of candidates, measurements and pending proposals. ``report.html``
embeds every figure (base64 PNG) and works offline; ``report.md`` links the PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aloop.acquisition import MultiObjective, Window
from aloop.campaigns import state
from aloop.campaigns._store import describe
from aloop.campaigns.modeling import CVResult
from aloop.campaigns.pool import CampaignError
from aloop.surrogates.metrics import calibration_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from aloop.campaigns.loop import Campaign

EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _objectives(campaign: Campaign) -> list[Any]:
    raw = campaign._raw_objective
    return list(raw.objectives) if isinstance(raw, MultiObjective) else [raw]


def best_so_far(campaign: Campaign, obs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per objective: the best measurement (highest utility, earliest on ties) and, for windows, the hit count."""
    out: dict[str, dict[str, Any]] = {}
    for o, spec in zip(_objectives(campaign), campaign.config.objectives, strict=True):
        if obs.empty:
            continue
        y = obs[spec.name].to_numpy(dtype=np.float64)
        u = o.utility(y)
        i = int(np.argmax(u))
        pid = obs["proposal_id"].iloc[i]
        out[spec.name] = {
            "value": float(y[i]), "units": spec.units, "direction": spec.direction,
            "formula": str(obs["formula"].iloc[i]), "proposal_id": None if pd.isna(pid) else int(pid),
            "experiment": i + 1,
        }
        if isinstance(o, Window):
            out[spec.name]["hits"] = int((u >= 0).sum())
    return out


def status_dict(campaign: Campaign, events: Sequence[state.Event], cv: CVResult | None) -> dict[str, Any]:
    """The JSON-able summary behind ``Campaign.status()`` and ``aloop status``."""
    props = state.proposals(events)
    raw_obs = state.observations(events)
    obs = campaign._observations(events)
    pool = campaign.pool
    excluded = state.excluded_keys(events)
    counts = {
        "candidates": len(pool),
        "available": int(len(pool) - np.isin(pool.keys, np.asarray(sorted(excluded), dtype=pool.keys.dtype)).sum()),
        "proposed": len(props),
        "batches": int(props["batch_id"].nunique()) if len(props) else 0,
        "measured": len(raw_obs),
        "unsolicited": int(raw_obs["unsolicited"].sum()) if len(raw_obs) else 0,
        **{k: int((props["status"] == k).sum()) if len(props) else 0 for k in ("pending", "failed", "rejected", "cancelled")},
    }
    pending = props[props["status"] == "pending"] if len(props) else props
    versions = state.model_versions(events)
    model: dict[str, Any] = {"version": None, "training_size": 0, "up_to_date": False,
                             "featurizer": campaign._featurizer_id, "surrogate": campaign.config.surrogate.kind,
                             "modelled_as": list(campaign.space.labels)}
    if len(versions):
        last = versions.iloc[-1]
        digest = campaign._training(obs)[2] if len(obs) else None
        model.update(version=str(last["model_version"]), training_size=int(last["training_size"]),
                     fitted_at=last["fitted_at"].isoformat(), up_to_date=(last["details"] or {}).get("data_digest") == digest)
    if cv is not None:
        model["cv"] = {lab: {"folds": cv.folds, "n": m["n"], "mae": m["mae"], "rmse": m["rmse"],
                             "coverage_95": m["coverage_95"], "miscalibration_area": m["miscalibration_area"]}
                       for lab, m in cv.metrics.items()}
    elif len(obs) < 5:
        model["cv"] = f"needs at least 5 observations (have {len(obs)})"
    return {
        "campaign": campaign.name,
        "definition": str(campaign.config.path),
        "log": describe(campaign.log.url),
        "counts": counts,
        "best": best_so_far(campaign, obs),
        "pending": [{"proposal_id": int(r.proposal_id), "batch_id": int(r.batch_id), "formula": r.formula}
                    for r in pending.itertuples()],
        "model": model,
    }


# --- figures -----------------------------------------------------------------------------------


def _figure(ncols: int, height: float = 3.6, width: float = 4.4) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, ncols))


def plot_best_so_far(campaign: Campaign, obs: pd.DataFrame) -> Figure:
    """Measured values and the best so far against the experiment number, one panel per objective."""
    objs = _objectives(campaign)
    fig, axes = _figure(len(objs))
    x = np.arange(1, len(obs) + 1)
    for ax, o, spec in zip(axes, objs, campaign.config.objectives, strict=True):
        y = obs[spec.name].to_numpy(dtype=np.float64)
        u = o.utility(y)
        best = y[[int(np.argmax(u[: i + 1])) for i in range(len(y))]]
        ax.scatter(x, y, s=14, color="0.6", label="measured")
        ax.step(x, best, where="post", color="C0", lw=2, label="best so far")
        if spec.window is not None:
            ax.axhspan(*spec.window, color="C2", alpha=0.15, label="window")
        if spec.target is not None:
            ax.axhline(spec.target, color="C2", ls="--", label="target")
        if campaign.space.transforms[campaign.space.names.index(spec.name)] == "log10" and (y > 0).all():
            ax.set_yscale("log")
        ax.set(xlabel="experiment number (order recorded)", ylabel=f"{spec.name} [{spec.units}]" if spec.units else spec.name,
               title=f"{spec.name}: {spec.direction}")
        ax.legend(fontsize=8)
    return fig


def plot_parity(cv: CVResult, units: Sequence[str] = ()) -> Figure:
    """Out-of-fold predicted mean ± 1.96σ against the measured value (model space; ``units`` per label)."""
    fig, axes = _figure(len(cv.labels))
    units = [f" [{u}]" if u else "" for u in units] or [""] * len(cv.labels)
    for j, (ax, lab) in enumerate(zip(axes, cv.labels, strict=True)):
        y, mu, sd = cv.y[:, j], cv.mean[:, j], cv.std[:, j]
        ax.errorbar(y, mu, yerr=1.96 * sd, fmt="o", ms=3, color="C0", ecolor="C0", alpha=0.6, elinewidth=0.8)
        lo, hi = float(min(y.min(), (mu - 1.96 * sd).min())), float(max(y.max(), (mu + 1.96 * sd).max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=1)
        m = cv.metrics[lab]
        ax.set(xlabel=f"measured {lab}{units[j]}", ylabel=f"predicted {lab}{units[j]} (out of fold)",
               title=f"{cv.folds}-fold CV: MAE {m['mae']:.3g}, 95% coverage {m['coverage_95']:.0%}")
    return fig


def plot_calibration(cv: CVResult) -> Figure:
    """Observed vs expected share of measurements inside central predictive intervals."""
    fig, axes = _figure(len(cv.labels))
    for j, (ax, lab) in enumerate(zip(axes, cv.labels, strict=True)):
        expected, observed = calibration_curve(cv.y[:, j], cv.mean[:, j], cv.std[:, j], num_bins=41)
        ax.plot([0, 1], [0, 1], color="k", lw=1, label="ideal")
        ax.plot(expected, observed, color="C1", lw=2, label=lab)
        ax.set(xlabel="expected proportion in interval", ylabel="observed proportion",
               title=f"calibration (miscalibration area {cv.metrics[lab]['miscalibration_area']:.2f})")
        ax.legend(fontsize=8)
    return fig


def plot_ternary(campaign: Campaign, events: Sequence[state.Event], components: list[str]) -> Figure:
    """Candidates, measurements (coloured by the first objective) and pending proposals on a ternary diagram."""
    from aloop.chem.elements import ELEMENT_INDEX

    pool = campaign.pool
    cols = [ELEMENT_INDEX[c] for c in components]

    def xy(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T = np.asarray(F, dtype=np.float64)[:, cols]
        T = T / np.maximum(T.sum(axis=1, keepdims=True), 1e-12)
        return T[:, 1] + 0.5 * T[:, 2], np.sqrt(3) / 2 * T[:, 2]

    fig, (ax,) = _figure(1, height=4.8, width=6.4)
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="k", lw=1)
    for (x, y), name, ha in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], components, ["right", "left", "center"], strict=True):
        ax.annotate(name, (x, y), xytext=(-6 if ha == "right" else 6 if ha == "left" else 0, 8 if ha == "center" else -4),
                    textcoords="offset points", ha=ha, fontsize=11, weight="bold")
    step = max(1, len(pool) // 20_000)
    ax.scatter(*xy(pool.fractions[::step]), s=2, color="0.85", label="candidates", rasterized=True)
    props = state.proposals(events)
    obs = campaign._observations(events)
    name = campaign.space.names[0]
    if len(obs):
        F, _ = _fractions(obs["formula"])
        sc = ax.scatter(*xy(F), c=obs[name].to_numpy(dtype=float), s=22, cmap="viridis", edgecolors="k",
                        linewidths=0.3, label="measured")
        fig.colorbar(sc, ax=ax, label=name, shrink=0.6)
    for status, marker, color in (("pending", "o", "C3"), ("failed", "x", "k"), ("rejected", "x", "C1")):
        sel = props[props["status"] == status] if len(props) else props
        if len(sel):
            F, _ = _fractions(sel["formula"])
            ax.scatter(*xy(F), s=40, marker=marker, facecolors="none" if marker == "o" else color,
                       edgecolors=color if marker == "o" else None, linewidths=1.5, label=status)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"{'–'.join(components)} (relative fractions)", fontsize=11)
    return fig


def _model_units(campaign: Campaign) -> list[str]:
    return [o.units if t == "none" else "" for o, t in zip(campaign.config.objectives, campaign.space.transforms, strict=True)]


def _fractions(formulas: pd.Series) -> tuple[np.ndarray, list[Any]]:
    from aloop.chem import to_fraction_matrix

    return to_fraction_matrix(formulas.astype(str).tolist(), errors="collect")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# --- report files -------------------------------------------------------------------------------


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    cells = df.astype(object).where(df.notna(), "").map(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |\n" for row in cells.to_numpy())


def write_report(campaign: Campaign, events: Sequence[state.Event], cv: CVResult | None, out_dir: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and the PNG figures into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    status = status_dict(campaign, events, cv)
    obs = campaign._observations(events)
    figures: dict[str, tuple[str, Figure]] = {}
    if len(obs):
        figures["best_so_far"] = ("Best so far vs experiment number", plot_best_so_far(campaign, obs))
    if cv is not None:
        figures["parity"] = ("Parity plot (cross-validation, error bars ±1.96σ)", plot_parity(cv, _model_units(campaign)))
        figures["calibration"] = ("Calibration of the predictive uncertainty (cross-validation)", plot_calibration(cv))
    components = campaign.pool.components()
    grid = campaign.config.search_space.elements
    if set(grid) == set(components):
        components = list(grid)  # the definition's order
    if len(components) == 3:
        figures["ternary"] = ("Proposals on the ternary diagram", plot_ternary(campaign, events, components))
    pngs = {key: _png(fig) for key, (_, fig) in figures.items()}
    paths: dict[str, Path] = {}
    for key, data in pngs.items():
        paths[key] = out_dir / f"{key}.png"
        _atomic_write(paths[key], data)

    names = list(campaign.space.names)
    top = obs.copy()
    if len(top):
        u = _objectives(campaign)[0].utility(top[names[0]].to_numpy(dtype=float))
        top = top.iloc[np.argsort(-u, kind="stable")[:10]]
    units = {o.name: f"{o.name} [{o.units}]" for o in campaign.config.objectives if o.units}
    top = top[["proposal_id", "formula", *names, "unsolicited"]].rename(columns=units) if len(top) else pd.DataFrame()
    props = state.proposals(events)
    pending = props[props["status"] == "pending"] if len(props) else props
    keep = [c for c in pending.columns if c in ("proposal_id", "batch_id", "formula", "acquisition_value", "reason")
            or c.startswith(("mean_", "std_"))]
    pending = pending[keep] if len(pending) else pd.DataFrame()
    versions = state.model_versions(events)
    versions = versions[["model_version", "training_size", "fitted_at"]] if len(versions) else pd.DataFrame()
    summary = _summary_lines(status)
    tables = [("Best measurements", top), ("Pending proposals", pending), ("Model versions", versions)]

    md = [f"# Campaign report: {campaign.name}\n", *[f"- {s}" for s in summary], ""]
    for key, (title, _) in figures.items():
        md += [f"## {title}\n", f"![{title}]({key}.png)\n"]
    for title, df in tables:
        md += [f"## {title}\n", _md_table(df)]
    paths["markdown"] = out_dir / "report.md"
    _atomic_write(paths["markdown"], "\n".join(md).encode())

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
    _atomic_write(paths["html"], page.encode())
    return paths


def _summary_lines(status: dict[str, Any]) -> list[str]:
    c, m = status["counts"], status["model"]
    lines = [
        f"{c['measured']} measured ({c['unsolicited']} unsolicited), {c['pending']} pending, {c['failed']} failed, "
        f"{c['rejected']} rejected, {c['cancelled']} cancelled; {c['proposed']} proposed in {c['batches']} batches; "
        f"{c['available']:,} of {c['candidates']:,} candidates still available",
    ]
    for name, b in status["best"].items():
        hits = f" ({b['hits']} in the window)" if "hits" in b else ""
        lines.append(f"best {name}: {b['value']:.4g} {b['units']} — {b['formula']} (experiment {b['experiment']}){hits}")
    fresh = "" if m["up_to_date"] or m["version"] is None else "; newer results arrived: the next propose retrains"
    lines.append(f"model: {m['surrogate']} on {m['featurizer']} features, modelled as {', '.join(m['modelled_as'])}; "
                 f"latest version {m['version']} (trained on {m['training_size']} observations{fresh})")
    cv = m.get("cv")
    if isinstance(cv, dict):
        for lab, s in cv.items():
            lines.append(f"cross-validation of the model set-up ({s['folds']}-fold, grouped by composition, "
                         f"{s['n']} observations) of {lab}: MAE {s['mae']:.3g}, 95% interval coverage {s['coverage_95']:.0%}")
    elif cv:
        lines.append(f"cross-validation: {cv}")
    lines.append(f"log: {status['log']}")
    return lines


# --- export ---------------------------------------------------------------------------------------


def events_table(campaign: Campaign, events: Sequence[state.Event]) -> pd.DataFrame:
    """Every event as one flat row: proposals, measurements (``<name> [<units>]`` columns), outcomes, model fits."""
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
        elif e.kind == "model_fitted":
            row.update(model_version=p.get("model_version"), training_size=p.get("training_size"),
                       details=json.dumps(p.get("details") or {}, sort_keys=True))
            row.update({f"cv_{k}": v for k, v in (p.get("cv") or {}).items()})
        else:
            row["reason"] = p.get("reason")
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("batch_id", "proposal_id", "training_size"):
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    return df


def export_table(campaign: Campaign, events: Sequence[state.Event], path: Path, table: str) -> Path:
    """Write the events or observations table to ``path`` (``.csv``, ``.parquet`` or ``.pq``), atomically."""
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CampaignError(f"cannot tell the export format of {path.name!r}: use .csv, .parquet or .pq")
    if table == "events":
        df = events_table(campaign, events)
    elif table == "observations":
        df = state.observations(events)
        units = df.attrs.get("units", {})
        df = df.rename(columns={k: f"{k} [{u}]" for k, u in units.items() if u})
        df["measured_at"] = df["measured_at"].astype(str).replace({"None": None, "NaT": None})
    else:
        raise CampaignError(f"unknown export table {table!r}; choose 'events' or 'observations'")
    if not path.parent.is_dir():
        raise CampaignError(f"cannot write {path}: folder {path.parent} does not exist")
    buf = io.BytesIO()
    if fmt == "csv":
        buf.write(df.to_csv(index=False).encode())
    else:
        df.to_parquet(buf, index=False)
    _atomic_write(path, buf.getvalue())
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
