"""Benchmark: ElemNet feature-extraction throughput (compositions/s) per layer, uncached and cached.

100,000 real OQMD compositions (seeded sample, parsed outside the timings), the shipped
source model; each layer is timed without the cache (``cache_size=0``: pure batched
forward passes) and with it (first pass computes keys + activations, second pass is all
cache hits). Best of ``--repeats``:

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_elemnet_features.py --threads 2

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_featurize import best_time  # noqa: E402 (wall clock by default)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--source", default="oqmd-formation-enthalpy")
    ap.add_argument("--layers", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[4096, 32768])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aloop.chem import to_fraction_matrix
    from aloop.datasets import load
    from aloop.features.elemnet import ElemNetFeatures

    formulas = load("oqmd-formation-enthalpy")["formula"].astype(str).to_numpy()
    take = np.random.default_rng(0).choice(formulas.size, size=min(args.n, formulas.size), replace=False)
    X, _ = to_fraction_matrix(formulas[take].tolist(), errors="collect")
    n = len(X)
    print(f"{n:,} OQMD compositions, source {args.source}, {args.threads} threads")
    rows = []
    for layer in args.layers:
        for bs in args.batch_sizes:
            plain = ElemNetFeatures(args.source, layer=layer, batch_size=bs, cache_size=0)
            plain.transform_fractions(X[:bs])  # warm-up
            t_plain, _ = best_time(lambda f=plain: f.transform_fractions(X), args.repeats)
            cached = ElemNetFeatures(args.source, layer=layer, batch_size=bs, cache_size=n)
            t_first, _ = best_time(lambda f=cached: (f._cache.clear(), f.transform_fractions(X)), args.repeats)
            t_hit, _ = best_time(lambda f=cached: f.transform_fractions(X), args.repeats)
            row = {"layer": layer, "batch_size": bs, "uncached_per_s": round(n / t_plain),
                   "cached_first_pass_per_s": round(n / t_first), "cached_hit_per_s": round(n / t_hit)}
            rows.append(row)
            print(f"layer {layer:2d} batch {bs:6d}: {row['uncached_per_s']:>9,}/s uncached, "
                  f"{row['cached_first_pass_per_s']:>9,}/s first cached pass, {row['cached_hit_per_s']:>9,}/s cache hits")
    print(json.dumps({"benchmark": "elemnet_features", "n": n, "source": args.source, "threads": args.threads,
                      "results": rows, "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
                      "python": platform.python_version(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
