"""Train (or resume) an ElemNet source model on OQMD and export it to the package's weights folder.

Every JARVIS and experimental composition is removed from OQMD's train/val parts (the
published test split stays whole, so its test MAE is comparable), as Gupta et al. 2021 did.

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_source_models.py \\
        --dataset oqmd-formation-enthalpy --epochs 42 --threads 1 --export

Re-running the same command resumes from the last finished epoch in --run-dir.

A chained source starts from a shipped one and trains on a related JARVIS property; only the
experimental band-gap sets are excluded (excluding every JARVIS composition would remove the
training set itself), so bench_transfer uses it on those sets alone:

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_source_models.py \
        --dataset jarvis-mbj-bandgap --init-source oqmd-formation-enthalpy \
        --exclude expt-bandgap matbench-expt-gap --batch-size 128 --lr 2e-4 --epochs 60 --threads 1 --export
"""

from __future__ import annotations

import argparse
import json

from aloop.datasets import list_specs
from aloop.elemnet.pretrain import PretrainConfig, pretrain
from aloop.elemnet.sources import WEIGHTS_DIR, export_source_model

EXCLUDE = tuple(s.name for s in list_specs("jarvis")) + ("expt-bandgap", "expt-formation-enthalpy", "matbench-expt-gap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="oqmd-formation-enthalpy")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (recipe default when omitted)")
    ap.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (recipe default when omitted)")
    ap.add_argument("--batch-size", type=int, default=None, help="batch size (recipe default when omitted)")
    ap.add_argument("--dropout", action="store_true", help="ElemNet's published dropout")
    ap.add_argument("--init-source", default=None, help="start from this shipped source's hidden layers")
    ap.add_argument("--exclude", nargs="+", default=list(EXCLUDE),
                    help="datasets whose compositions leave train/val (default: every JARVIS and experimental set)")
    ap.add_argument("--run-dir", default=None, help="default: runs/DATASET")
    ap.add_argument("--export", action="store_true", help="write aloop/elemnet/weights/DATASET.{safetensors,json}")
    args = ap.parse_args()
    run_dir = args.run_dir or f"runs/{args.dataset}"
    recipe = {k: v for k, v in (("peak_lr", args.lr), ("weight_decay", args.weight_decay),
                                ("batch_size", args.batch_size)) if v is not None}
    summary = pretrain(PretrainConfig(dataset=args.dataset, exclude=tuple(args.exclude), max_epochs=args.epochs,
                                      threads=args.threads, dropout=args.dropout, init_source=args.init_source,
                                      **recipe), run_dir)
    if args.export:
        export_source_model(run_dir, args.dataset, weights_dir=WEIGHTS_DIR, replace=True)
    keys = ("n_train", "n_val", "n_test", "epochs_run", "best_epoch", "val_mae", "test_mae", "schedule_changes",
            "dead_unit_fraction")
    print(json.dumps({"benchmark": "pretrain", "dataset": args.dataset, **{k: summary[k] for k in keys}}))


if __name__ == "__main__":
    main()
