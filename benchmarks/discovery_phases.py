"""Where a replay gains or loses: the seed-mean number of top-k% compositions found after n picks, and the rate per pick.

Reads finished run records of ``bench_discovery.py`` studies (nothing is re-run). For each study and
strategy: mean hits after 10, 25, 50, 75, 100, 125 and 150 experiments, the rate per pick over the
first 50 experiments and over experiments 51–100 (the phase of mining a good region once found).

    ALOOP_DATA_DIR=../shared/data python benchmarks/discovery_phases.py oer-plate-3851-q1-ucb oer-plate-3851-q1-trees
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aloop.benchmark.metrics import goodness, top_mask, top_percent_curve
from aloop.benchmark.study import load_records

RESULTS = Path(__file__).parent / "results" / "discovery"
CHECKPOINTS = (10, 25, 50, 75, 100, 125, 150)


def phases(study: str, top: float) -> list[dict]:
    """One row per strategy of ``study``: mean hits at the checkpoints and the two rates."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_discovery import STUDIES

    task = STUDIES[study]["task"]()
    mask = top_mask(goodness(task.y, task.direction, task.window), top)
    records = load_records(RESULTS / study)
    rows = []
    for name in sorted({r["strategy"] for r in records}):
        runs = [r for r in records if r["strategy"] == name]
        hits = np.mean([top_percent_curve(np.asarray(r["order"]), mask, r["batch"]) for r in runs], axis=0) * mask.sum()
        row = {"study": study, "strategy": name, "seeds": len(runs)}
        row.update({f"@{n}": round(float(hits[n - 1]), 1) for n in CHECKPOINTS if n <= len(hits)})
        if len(hits) >= 100:
            row["rate 1-50"] = round(float(hits[49] / 50), 2)
            row["rate 51-100"] = round(float((hits[99] - hits[49]) / 50), 2)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", help="study names of bench_discovery.py with finished runs")
    ap.add_argument("--top", type=float, default=0.05, help="the top fraction counted (default 0.05)")
    args = ap.parse_args()
    rows = [row for study in args.studies for row in phases(study, args.top)]
    cols = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "–")) for c in cols) + " |")


if __name__ == "__main__":
    main()
