"""Tests for aloop.benchmark.plots: one valid, non-trivial PNG per plot kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from aloop.benchmark import plots
from aloop.benchmark.summary import RANDOM_LABEL, curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
KINDS = {"top_percent", "ef", "af", "regret"}


def run_record(y: np.ndarray, strategy: str, seed: int, order: np.ndarray, batch_size: int = 4) -> dict[str, Any]:
    order_list = [int(i) for i in order]
    return {
        "study": "plots", "task": "pool", "strategy": strategy, "seed": seed, "batch_size": batch_size,
        "n_init": 4, "budget": len(order_list), "pool_size": len(y), "order": order_list,
        "batch": [0] * 4 + [1 + (i - 4) // batch_size for i in range(4, len(order_list))],
        "values": y[order_list].tolist(), "fits": [], "seconds": 0.5, "backend": "joblib",
    }  # fmt: skip


def study_curves(y: np.ndarray, direction: str, window: tuple[float, float] | None = None,
                 batch_sizes: tuple[int, ...] = (4,)) -> pd.DataFrame:
    """Curves of a greedy-ish strategy and a random-order one, three seeds each, plus random's expectation."""
    from aloop.benchmark.metrics import goodness

    score = goodness(y, direction, window)
    recs = []
    for q in batch_sizes:
        for seed in range(3):
            rng = np.random.default_rng(seed)
            noisy = np.argsort(-(score + rng.normal(0, score.std(), y.size)))[:60]
            recs.append(run_record(y, "noisy-greedy", seed, noisy, q))
            recs.append(run_record(y, "shuffled", seed, rng.permutation(y.size)[:60], q))
    return curves(recs, y, direction, window, top_fraction=0.05, include_random=True)


def check_pngs(paths: dict[str, Path]) -> None:
    assert set(paths) == KINDS
    for kind, path in paths.items():
        assert path.is_file(), kind
        assert path.read_bytes()[:8] == PNG_MAGIC, kind
        assert path.stat().st_size > 10_000, kind  # axes, curves and legend, not a blank canvas
        height, width = imread(path).shape[:2]
        assert (width, height) == (768, 528), kind  # 6.4 × 4.4 in at 120 dpi


def test_plot_study_writes_one_png_per_kind(tmp_path: Path) -> None:
    y = np.random.default_rng(3).normal(size=150)
    paths = plots.plot_study(study_curves(y, "maximize"), tmp_path / "figs", "synthetic pool", 0.05,
                             objective_label="a.u.")  # fmt: skip
    check_pngs(paths)
    assert {p.name for p in paths.values()} == {f"{k}.png" for k in KINDS}
    assert len(list((tmp_path / "figs").iterdir())) == 4


def test_plot_study_window_task_and_mixed_batch_sizes(tmp_path: Path) -> None:
    y = np.random.default_rng(4).uniform(0.0, 3.0, size=120)
    df = study_curves(y, "window", (1.1, 1.3), batch_sizes=(1, 4))
    assert df.loc[df["strategy"] == RANDOM_LABEL, "best_so_far"].isna().all()
    labels = set(plots._labels(df))
    assert {"noisy-greedy (q=1)", "noisy-greedy (q=4)", RANDOM_LABEL} <= labels
    paths = plots.plot_study(df, tmp_path, "window task", 0.05, stem="window")
    check_pngs(paths)
    assert paths["af"].name == "window_af.png"


def test_colours_are_stable_and_inputs_checked(tmp_path: Path) -> None:
    first = plots.strategy_colours(["b", "a", RANDOM_LABEL])
    assert first == plots.strategy_colours(["a", "b"]) and RANDOM_LABEL not in first
    y = np.random.default_rng(5).normal(size=100)
    df = study_curves(y, "minimize")
    with pytest.raises(ValueError, match=r"lacks columns \['n_top'\]"):
        plots.plot_study(df.drop(columns="n_top"), tmp_path, "t", 0.05)
    with pytest.raises(ValueError, match="top_fraction"):
        plots.plot_study(df, tmp_path, "t", 5.0)
    with pytest.raises(ValueError, match="empty"):
        plots.plot_study(df.iloc[:0], tmp_path, "t", 0.05)
