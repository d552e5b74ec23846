"""How representative is bench_transfer's carved validation part? Magpie trees scored three ways.

bench_transfer chooses between methods on one 10% part carved from train (seed 0). On the
experimental band gap the Magpie trees score far better there than on test, so every blend with
them looks better on validation than it is. This prints, for the Magpie tree learner bench_transfer
uses, its MAE on the carved part (fitted on the rest of train), its K-fold cross-validated MAE over
all of train, and its test MAE (fitted on all of train).

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_carve.py --tasks expt-bandgap
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
from bench_transfer import task_data, task_names  # noqa: E402
from transfer_members import mae, tree_learner, tree_predictions  # noqa: E402

from aloop.features import get_featurizer  # noqa: E402


def carve_check(task: str, learner: str = "et", folds: int = 5) -> dict:
    """Carved-part, K-fold (over train) and test MAE of Magpie trees on one task."""
    d = task_data(task)
    F, y = get_featurizer("magpie").transform_fractions(d["X"]), d["y"]
    train = d["train"]
    oof = np.empty(len(train))
    for a, b in KFold(folds, shuffle=True, random_state=0).split(train):
        oof[b] = tree_learner(learner).fit(F[train[a]], y[train[a]]).predict(F[train[b]])
    _, carved, test = tree_predictions(F, d, "Magpie", (learner,))  # exactly bench_transfer's scores
    return {"task": task, "learner": f"Magpie+{learner}", "carved_val_mae": mae(carved, y[d["val"]]),
            "kfold_mae": mae(oof, y[train]), "folds": folds, "test_mae": mae(test, y[d["test"]]),
            "n_val": len(d["val"]), "n_train": len(train), "n_test": len(d["test"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["expt-bandgap"])
    ap.add_argument("--learner", choices=("et", "rf"), default="et")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    if args.folds < 2:
        ap.error(f"--folds must be at least 2, got {args.folds}")
    t0 = time.time()
    rows = [carve_check(t, args.learner, args.folds) for t in task_names(args.tasks)]
    print(f"\n| task | trees | carved validation part (rows) | {args.folds}-fold CV over train | test (rows) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['learner']} | {r['carved_val_mae']:.4f} ({r['n_val']}) | {r['kfold_mae']:.4f} | "
              f"{r['test_mae']:.4f} ({r['n_test']}) |")
    print(json.dumps({"benchmark": "carve", "rows": rows, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
