"""Figures for a benchmark study: Top%, EF, AF and regret curves per strategy, written as PNGs.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``: nothing is displayed, no global figure registry fills up (there is nothing left open
to close), and plotting is safe from worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from aloop.benchmark import metrics as m
from aloop.benchmark.summary import RANDOM_LABEL

DPI = 120
AF_TARGETS: tuple[float, ...] = tuple(np.round(np.arange(0.1, 0.91, 0.1), 2))
_NEEDED = ("strategy", "seed", "n", "top_percent", "ef", "regret", "pool_size", "n_top")
_RANDOM_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.4}


def _labels(frame: pd.DataFrame) -> pd.Series:
    """Legend label per row: the strategy, plus the batch size when the study mixes batch sizes."""
    label = frame["strategy"].astype(str)
    if "batch_size" in frame.columns:
        learned = frame["strategy"] != RANDOM_LABEL
        if frame.loc[learned, "batch_size"].nunique() > 1:
            label = label.where(~learned, label + " (q=" + frame["batch_size"].astype(str) + ")")
    return label


def strategy_colours(labels: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """A fixed colour per label (sorted, tab10 or tab20), so every figure of a study agrees."""
    names = sorted(set(labels) - {RANDOM_LABEL})
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _seed_matrix(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(S, B) values of ``column`` per seed over the experiments all seeds share, and n (B,)."""
    wide = frame.pivot_table(index="seed", columns="n", values=column, aggfunc="first")
    wide = wide.loc[:, wide.notna().all(axis=0)]
    return wide.to_numpy(dtype=np.float64), wide.columns.to_numpy(dtype=np.float64)


def _new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if xlabel == "experiments":  # counts: no tick at 2.5 experiments on a short study
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig: Figure, ax: Axes, path: Path) -> Path:
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    fig.savefig(path, dpi=DPI)
    fig.clear()
    return path


def _curve_plot(
    frame: pd.DataFrame,
    colours: dict[str, tuple[float, float, float, float]],
    column: str,
    scale: float,
    ax: Axes,
) -> None:
    """Mean line and 10–90 percentile band across seeds per strategy; random's expectation dashed."""
    for label, part in frame.groupby("label", sort=True):
        values, n = _seed_matrix(part, column)
        if values.size == 0:
            continue
        if label == RANDOM_LABEL:
            ax.plot(n, values.mean(axis=0) * scale, label=label, **_RANDOM_STYLE)
            continue
        mean, low, high = m.band(values)
        colour = colours[label]
        ax.plot(n, mean * scale, color=colour, linewidth=1.8, label=f"{label} (mean of {values.shape[0]})")
        if values.shape[0] > 1:
            ax.fill_between(n, low * scale, high * scale, color=colour, alpha=0.18, linewidth=0)


def plot_study(
    curves_df: pd.DataFrame,
    out_dir: str | Path,
    title: str,
    top_fraction: float,
    *,
    objective_label: str | None = None,
    stem: str | None = None,
    set_name: str | None = None,
    regret: bool = True,
) -> dict[str, Path]:
    """Write the study's PNGs and return their paths keyed by plot kind.

    ``curves_df`` is :func:`aloop.benchmark.summary.curves` output (ideally with
    ``include_random=True``) computed for ``top_fraction``.  Kinds: ``"top_percent"`` (Top% vs
    experiments, mean and 10–90 percentile band per strategy, random dashed), ``"ef"`` (enhancement
    factor), ``"af"`` (acceleration factor of the seed-mean Top% curve vs target t = 0.1..0.9) and,
    with ``regret``, ``"regret"`` (simple regret vs experiments, in ``objective_label`` units when
    given).  Files are ``{stem}_{kind}.png`` (``{kind}.png`` without a stem) in ``out_dir``, created
    if needed, except ``regret.png``: regret does not depend on the top set, so a study plotting
    several sets writes it once.  ``set_name`` names the set in titles and labels (default
    ``"top-5%"`` for ``top_fraction`` 0.05; ``"in-window"`` suits a window objective, whose set is
    every composition inside the window whatever the fraction).
    """
    missing = [c for c in _NEEDED if c not in curves_df.columns]
    if missing:
        raise ValueError(f"curves_df lacks columns {missing}; build it with aloop.benchmark.summary.curves")
    if curves_df.empty:
        raise ValueError("curves_df is empty")
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    if stem is not None and (not stem or Path(stem).name != stem):
        raise ValueError(f"stem must be a plain file name without directories, got {stem!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = curves_df.assign(label=_labels(curves_df))
    colours = strategy_colours(frame["label"].unique())
    pool_size, n_top = int(frame["pool_size"].iloc[0]), int(frame["n_top"].iloc[0])
    pct = f"{top_fraction * 100:g}"
    name = set_name or f"top-{pct}%"
    prefix = f"{stem}_" if stem else ""
    paths: dict[str, Path] = {}

    fig, ax = _new_axes(
        f"{title}: {name} candidates found", "experiments", f"{name} found (% of {n_top})"
    )
    _curve_plot(frame, colours, "top_percent", 100.0, ax)
    # Up to what the longest run could find at most, so a set larger than the budget is not a flat line at 0.
    reachable = min(100.0, 100.0 * float(frame["n"].max()) / n_top)
    ax.set_ylim(-0.02 * reachable, 1.02 * reachable)
    paths["top_percent"] = _save(fig, ax, out / f"{prefix}top_percent.png")

    fig, ax = _new_axes(f"{title}: enhancement factor ({name})", "experiments", "EF = Top%(strategy) / Top%(random)")
    _curve_plot(frame[frame["label"] != RANDOM_LABEL], colours, "ef", 1.0, ax)
    ax.axhline(1.0, label="random (EF = 1)", **_RANDOM_STYLE)
    ax.set_ylim(bottom=0)
    paths["ef"] = _save(fig, ax, out / f"{prefix}ef.png")

    fig, ax = _new_axes(
        f"{title}: acceleration factor ({name})", f"target Top% t (fraction of {n_top} found)",
        "AF(t) = n_random / n_strategy",
    )  # fmt: skip
    for label, part in frame[frame["label"] != RANDOM_LABEL].groupby("label", sort=True):
        values, _ = _seed_matrix(part, "top_percent")
        if values.size == 0:
            continue
        mean_curve = values.mean(axis=0)
        afs = [m.acceleration_factor(mean_curve, pool_size, n_top, float(t), averaged=True) for t in AF_TARGETS]
        ax.plot(
            AF_TARGETS, [np.nan if a is None else a for a in afs], marker="o", markersize=4,
            color=colours[label], linewidth=1.6, label=label,
        )  # fmt: skip
    ax.axhline(1.0, label="random (AF = 1)", **_RANDOM_STYLE)
    ax.set_xlim(0.05, 0.95)
    ax.set_ylim(bottom=0)
    paths["af"] = _save(fig, ax, out / f"{prefix}af.png")

    if regret:
        unit = f" ({objective_label})" if objective_label else " (objective units)"
        fig, ax = _new_axes(f"{title}: simple regret", "experiments", "best in pool − best found" + unit)
        _curve_plot(frame, colours, "regret", 1.0, ax)
        ax.set_ylim(bottom=0)
        paths["regret"] = _save(fig, ax, out / "regret.png")
    return paths
