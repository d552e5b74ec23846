"""Where a replay gains or loses: the seed-mean number of top-k% compositions found after n picks, and the rate per pick.

Reads finished run records of ``bench_discovery.py`` studies (nothing is re-run). For each study and
strategy: mean hits after 10, 25, 50, 75, 100, 125 and 150 experiments, the rate per pick over the
first 50 experiments and over experiments 51–100 (the phase of mining a good region once found).
With ``--seeds``: one row per strategy listing every seed's experiments to half of the top k% (– when it did
not get there) and its top-k% hits after 100 experiments, slowest first — to tell a few trapped seeds, which
hold back the seed-mean curve AF is read from, from a strategy slow throughout (with AF(0.5) from all seeds and
without the two slowest, a diagnosis only: which seeds to leave out is chosen after seeing them).

    ALOOP_DATA_DIR=../shared/data python benchmarks/discovery_phases.py oer-plate-3851-q1-ucb oer-plate-3851-q1-trees
    ALOOP_DATA_DIR=../shared/data python benchmarks/discovery_phases.py oer-plate-3851-q1-ucb --seeds
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aloop.benchmark.metrics import (acceleration_factor, experiments_to_reach, goodness, top_mask,
                                     top_percent_curve)
from aloop.benchmark.study import load_records

RESULTS = Path(__file__).parent / "results" / "discovery"
CHECKPOINTS = (10, 25, 50, 75, 100, 125, 150)


def _setup(study: str, top: float) -> tuple[object, np.ndarray, list[dict]]:
    """The study's task, its top-k% mask (N,) and its finished run records."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_discovery import STUDIES

    task = STUDIES[study]["task"]()
    return task, top_mask(goodness(task.y, task.direction, task.window), top), load_records(RESULTS / study)


def phases(study: str, top: float) -> list[dict]:
    """One row per strategy of ``study``: mean hits at the checkpoints and the two rates."""
    task, mask, records = _setup(study, top)
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


def seeds(study: str, top: float, drop: int = 2) -> list[dict]:
    """One row per strategy of ``study``: each seed's experiments to half of the top k% and hits at 100, slowest
    first; and AF(0.5) from the seed-mean curve with all seeds and without the ``drop`` slowest (a diagnosis of how
    much a slow tail holds the figure back, chosen after the fact, so never a result)."""
    task, mask, records = _setup(study, top)
    n_top = int(mask.sum())
    rows = []
    for name in sorted({r["strategy"] for r in records}):
        per_seed = []
        for r in (r for r in records if r["strategy"] == name):
            curve = top_percent_curve(np.asarray(r["order"]), mask, r["batch"])
            per_seed.append((experiments_to_reach(curve, 0.5), int(round(curve[min(99, len(curve) - 1)] * n_top)),
                             int(r["seed"]), curve))
        per_seed.sort(key=lambda t: (-(t[0] or 10**9), t[1]))

        def af(runs: list) -> str:
            value = acceleration_factor(np.mean([t[3] for t in runs], axis=0), len(mask), n_top, 0.5, averaged=True)
            return "–" if value is None else f"{value:.3g}"

        rows.append({"study": study, "strategy": name, "seeds": len(per_seed), "AF(0.5)": af(per_seed),
                     f"AF(0.5) without the {drop} slowest": af(per_seed[drop:]),
                     "seed: experiments to 50% (hits @100), slowest first":
                         ", ".join(f"{s}: {n or '–'} ({h})" for n, h, s, _ in per_seed)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", help="study names of bench_discovery.py with finished runs")
    ap.add_argument("--top", type=float, default=0.05, help="the top fraction counted (default 0.05)")
    ap.add_argument("--seeds", action="store_true", help="each seed's experiments to half of the top k%% instead")
    args = ap.parse_args()
    rows = [row for study in args.studies for row in (seeds if args.seeds else phases)(study, args.top)]
    cols = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "–")) for c in cols) + " |")


if __name__ == "__main__":
    main()
