"""The report's figures: best so far, parity and calibration from cross-validation, ternary diagram.

Every function returns a matplotlib ``Figure`` (no pyplot state) for ``aloop.campaigns.report``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aloop.campaigns import state
from aloop.campaigns.best import objectives, running_best
from aloop.campaigns.modeling import CVResult
from aloop.surrogates.metrics import calibration_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from aloop.campaigns.loop import Campaign


def _figure(ncols: int, height: float = 3.6, width: float = 4.4) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, ncols))


def plot_best_so_far(campaign: Campaign, obs: pd.DataFrame) -> Figure:
    """Every measured value and the best composition so far against the experiment number, one panel per objective.

    The x axis counts measurements in the order recorded (each replicate is an experiment);
    the curve is the mean of the best composition after each one (``best.running_best``),
    so it ends at the ``best`` of ``status`` and steps down when a replicate lowers the leader.
    """
    objs = objectives(campaign)
    fig, axes = _figure(len(objs))
    x = np.arange(1, len(obs) + 1)
    for ax, o, spec in zip(axes, objs, campaign.config.objectives, strict=True):
        y = obs[spec.name].to_numpy(dtype=np.float64)
        best = running_best(obs["key"].tolist(), y, o)
        ax.scatter(x, y, s=14, color="0.6", label="measured")
        ax.step(x, best, where="post", color="C0", lw=2, label="best composition (mean of replicates)")
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
        ax.set(xlabel=f"measured {lab}{units[j]}", ylabel=f"predicted {lab}{units[j]} (out of fold, ±1.96σ predictive)",
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


def model_units(campaign: Campaign) -> list[str]:
    """Units of each objective in model space (none for a transformed one: ``log10`` is dimensionless)."""
    return [o.units if t == "none" else "" for o, t in zip(campaign.config.objectives, campaign.space.transforms, strict=True)]


def _fractions(formulas: pd.Series) -> tuple[np.ndarray, list[Any]]:
    from aloop.chem import to_fraction_matrix

    return to_fraction_matrix(formulas.astype(str).tolist(), errors="collect")


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (110 dpi)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
