"""matbench_expt_gap with Matbench's protocol: 5-fold KFold (shuffle, random_state 18012019), mean test MAE.

Within each fold the methods of ``bench_transfer.py`` run unchanged: a 10% validation
part carved from the fold's training rows (seed 0) selects trees, layers and early
stopping; the fold's test rows are scored once. Per (fold, method) results are cached
under --results, so the table fills in over runs:

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_matbench.py --methods base sc_ml_magpie tl_modfinetune
    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_matbench.py --methods sc_ml_magpie --zero-gate  # 0 where P(gap = 0) is high

The last line printed is one JSON object; the leaderboard figures are for reference
(Matbench v0.1, 2024): MODNet 0.3327, CrabNet 0.3463, RF-SCM/Magpie 0.4461, best 0.2865 eV.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).parent))
from bench_transfer import (  # noqa: E402
    ALL, add_method_options, carve, check_unseen, provenance, result_key, reusable, run_method,
)

from aloop.benchmark.study import write_json_atomic  # noqa: E402
from aloop.chem import to_fraction_matrix  # noqa: E402
from aloop.datasets import get_spec, load  # noqa: E402

LEADERBOARD = {"MODNet v0.1.12": 0.3327, "CrabNet": 0.3463, "RF-SCM/Magpie": 0.4461, "best (2024)": 0.2865}


def folds(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Fractions, gaps and, per Matbench fold, the bench_transfer split dict (fit/val carved from train)."""
    name = "matbench-expt-gap"
    frame = load(name)
    X, _ = to_fraction_matrix(list(frame["formula"]))  # Matbench's own set: every formula parses
    y = frame[next(iter(get_spec(name).targets))].to_numpy(float)
    out = []
    for train, test in KFold(n_splits=5, shuffle=True, random_state=18012019).split(X):
        out.append({"X": X, "y": y, **carve(train, seed), "train": train, "test": test,
                    "dropped": 0, "target": "gap expt"})
    return X, y, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["base", "sc_ml_magpie", "tl_modfinetune"], choices=ALL)
    ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "matbench-expt-gap"))
    add_method_options(ap)
    args = ap.parse_args()
    if any(m.startswith("tl_") for m in args.methods):
        try:
            check_unseen("matbench-expt-gap", args.source)
        except ValueError as exc:
            ap.error(str(exc))
    out_dir = Path(args.results)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, _, splits = folds()
    t_all = time.time()
    per_method: dict[str, list[dict]] = {}
    for k, d in enumerate(splits):
        cache: dict = {}
        d["network_cache"] = out_dir / f"fold{k}-networks"  # each network trained once (e.g. for --zero-gate too)
        for method in args.methods:
            key = result_key(method, args.source, args.zero_gate)
            path = out_dir / f"fold{k}-{key}.json"
            r = json.loads(path.read_text()) if path.exists() else None
            if r is None or not reusable(r, method, args):
                t0 = time.time()
                r = run_method(method, d, args, cache)
                r.update(seconds=round(time.time() - t0, 1), n_train=len(d["train"]), n_test=len(d["test"]),
                         **provenance(method, args))
                write_json_atomic(path, r, indent=1)
                print(f"fold {k} {key:24s} val {r['val_mae']:.4f} test {r['test_mae']:.4f} ({r['config']})", flush=True)
            per_method.setdefault(key, []).append(r)
    rows = [{"method": m, "folds": len(rs), "mae": float(np.mean([r["test_mae"] for r in rs])),
             "std": float(np.std([r["test_mae"] for r in rs]))} for m, rs in per_method.items()]
    print("\n| method | folds | mean test MAE (eV) | std over folds |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['folds']} | {r['mae']:.4f} | {r['std']:.4f} |")
    print(json.dumps({"benchmark": "matbench_expt_gap", "source": args.source, "results": rows,
                      "leaderboard": LEADERBOARD, "seconds": round(time.time() - t_all, 1)}))


if __name__ == "__main__":
    main()
