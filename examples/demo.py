"""Featurisation demo on the embedded Materials Project transport database (no data directory needed).

Run with ``make demo`` (or ``python examples/demo.py``). It

1. loads the ~47.7k compounds of Ricci et al. (2017), which ship inside matminer's wheel;
2. parses every formula, reporting how many were rejected and why;
3. featurises all valid compositions with elemental fractions (EF) and Magpie statistics,
   timing each step;
4. lists the semiconductor-like compounds (S_p ≥ 100 μV/K) with the highest p-type power factor;
5. estimates how learnable log10 PF_p is from Magpie features: 5-fold cross-validated MAE
   of a random forest on a sample of compositions, against predicting the mean.

Only the public API is used, so this file doubles as a usage example.
"""

from __future__ import annotations

import os
import time
from collections import Counter

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_score

from aloop.chem import keys_from_matrix, to_fraction_matrix
from aloop.datasets import get_spec, load
from aloop.features import get_featurizer

DATASET = "mp-transport"
TARGET = "PF_p"
CV_SAMPLE = 3000  # compositions in the cross-validation sample (keeps the demo under a minute)
SEED = 0
MIN_SEEBECK = 100.0  # μV/K: semiconductor-like p-type compounds


def timed(label: str, start: float, n: int | None = None, note: str = "") -> None:
    """Print how long a step took (and its throughput when ``n`` items were processed)."""
    seconds = time.perf_counter() - start
    rate = f"  ({n / seconds:,.0f}/s)" if n else ""
    print(f"  {label:<44}{seconds:7.2f} s{rate}{note}")


def main() -> None:
    spec = get_spec(DATASET)
    units = spec.targets[TARGET]
    print(f"aloop featurisation demo: {spec.description}")
    print(f"  source: {spec.citation}\n")

    t0 = time.perf_counter()
    frame = load(DATASET)
    timed(f"load {len(frame):,} rows", t0)

    t0 = time.perf_counter()
    X, bad = to_fraction_matrix(frame["formula"].tolist(), errors="collect")
    timed("parse formulas → n × 86 fractions", t0, len(frame))
    ok = np.ones(len(frame), dtype=bool)
    ok[[b.index for b in bad]] = False
    print(f"\nParsed {ok.sum():,} of {len(frame):,} formulas; rejected {len(bad)}:")
    for reason, count in Counter(b.reason for b in bad).most_common():
        examples = sorted({str(b.formula) for b in bad if b.reason == reason})[:4]
        print(f"  {count:>4} × {reason}  (e.g. {', '.join(map(repr, examples))})")
    frame, X = frame[ok].reset_index(drop=True), X[ok]

    print("\nFeaturisation of all valid compositions:")
    features = {}
    for name in ("ef", "magpie"):
        featurizer = get_featurizer(name)
        t0 = time.perf_counter()
        features[name] = featurizer.transform(X)
        if name == "ef":
            timed(f"{name:<7} → {features[name].shape[1]} features", t0, note="  (the fraction matrix itself)")
        else:
            timed(f"{name:<7} → {features[name].shape[1]} features", t0, len(X))

    # With a constant relaxation time, metals (huge σ, small or even negative S) top the raw
    # PF_p ranking; a p-type thermoelectric needs a large positive Seebeck coefficient.
    candidates = frame[frame["S_p"] >= MIN_SEEBECK]
    print(f"\nTop 10 by p-type power factor {TARGET} ({units}; BoltzTraP, τ = 1e-14 s, 300 K) among the "
          f"{len(candidates):,} compounds with S_p ≥ {MIN_SEEBECK:g} μV/K:")
    top = candidates.nlargest(10, TARGET)[["formula", "mp_id", TARGET, "S_p", "sigma_p"]]
    print(top.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))

    # One row per composition (polymorphs share a formula): the mean log10 PF_p of its polymorphs,
    # so no composition appears in both a training and a test fold.
    keys = keys_from_matrix(X)
    logpf = np.log10(frame[TARGET].to_numpy(dtype=float))
    table = pd.DataFrame({"key": keys, "y": logpf, "row": np.arange(len(frame))})
    table = table[np.isfinite(table["y"])]
    per_comp = table.groupby("key").agg(y=("y", "mean"), row=("row", "first"))
    sample = per_comp.sample(n=min(CV_SAMPLE, len(per_comp)), random_state=SEED)
    y = sample["y"].to_numpy()
    folds = KFold(n_splits=5, shuffle=True, random_state=SEED)
    print(f"\n5-fold CV on {len(sample):,} of {len(per_comp):,} distinct compositions, target log10 {TARGET}:")
    baseline = np.mean([np.abs(y[test] - y[train].mean()).mean() for train, test in folds.split(y)])
    print(f"  {'predict the training mean':<44} MAE {baseline:.3f} dex")
    for name in ("magpie", "ef"):
        t0 = time.perf_counter()
        forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, max_features=0.33, n_jobs=2,
                                       random_state=SEED)
        scores = cross_val_score(forest, features[name][sample["row"].to_numpy()], y, cv=folds,
                                 scoring="neg_mean_absolute_error")
        label = f"random forest on {name}"
        print(f"  {label:<44} MAE {-scores.mean():.3f} ± {scores.std():.3f} dex"
              f"  ({time.perf_counter() - t0:.1f} s)")
    print("\nNext: `aloop featurize YOUR.csv --featurizer magpie -o features.parquet` for your own formulas;"
          " `aloop datasets list` for the dataset registry.")


if __name__ == "__main__":
    main()
