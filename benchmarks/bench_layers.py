"""Which ElemNet source and layer should a campaign featurize with? A validation sweep in the scarce-data regime.

A campaign's surrogate sees a few hundred measurements, so each feature set (every
hidden layer 1–16 of each shipped source model, plus Magpie and elemental fractions for
reference) is scored the way a campaign uses it: ``--n-train`` rows drawn from the
train-fit part of the paper's split (the same carving as ``bench_transfer.py``), the
campaign's default surrogate (``GPSurrogate``) and extra trees fitted on them, MAE on the
carved validation part — never on test. Per task the MAE is divided by the training-mean
baseline's, then averaged over tasks and seeds; the lowest mean GP score picks the
campaign default (``aloop.campaigns.config.DEFAULT_SOURCE`` / ``DEFAULT_LAYER``).

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_layers.py --tasks expt small

Results are cached per (task, features, seed) as JSON under --results, so an interrupted
sweep resumes and a new source model only adds its own rows. The last line printed is
one JSON object with the ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor

sys.path.insert(0, str(Path(__file__).parent))
from bench_transfer import task_data, task_names  # noqa: E402

from aloop.elemnet.model import HIDDEN_WIDTHS  # noqa: E402
from aloop.elemnet.sources import list_sources, weights_digest  # noqa: E402
from aloop.features import get_featurizer  # noqa: E402
from aloop.features.elemnet import ElemNetFeatures  # noqa: E402
from aloop.surrogates import GPSurrogate  # noqa: E402


def feature_sets(sources: list[str], layers: list[int]) -> list[str]:
    return ["ef", "magpie"] + [f"{s}:L{k}" for s in sources for k in layers]


def weights_of(name: str) -> str | None:
    """sha256 of the source weights an ElemNet feature set comes from (None for ef/Magpie)."""
    return weights_digest(name.rsplit(":L", 1)[0]) if ":L" in name else None


def featurize(name: str, X: np.ndarray) -> np.ndarray:
    if name in ("ef", "magpie"):
        return get_featurizer(name).transform_fractions(X)
    source, layer = name.rsplit(":L", 1)
    return ElemNetFeatures(source=source, layer=int(layer), cache_size=0).transform_fractions(X)


def score(F: np.ndarray, d: dict, n_train: int, seed: int) -> dict:
    """Validation MAE of the GP and of extra trees fitted on ``n_train`` rows of the fit part."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(d["fit"], size=min(n_train, len(d["fit"])), replace=False)
    y, val = d["y"], d["val"]
    base = float(np.mean(np.abs(y[val] - y[rows].mean())))
    out = {"n_train": len(rows), "base_mae": base}
    t = time.time()
    gp = GPSurrogate(seed=seed).fit(F[rows], y[rows], X_pool=F[val])
    out["gp_mae"] = float(np.mean(np.abs(gp.predict(F[val])[0][:, 0] - y[val])))
    out["gp_s"] = round(time.time() - t, 2)
    et = ExtraTreesRegressor(n_estimators=100, max_features=0.33, n_jobs=-1, random_state=seed).fit(F[rows], y[rows])
    out["et_mae"] = float(np.mean(np.abs(et.predict(F[val]) - y[val])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["expt", "small"])
    ap.add_argument("--sources", nargs="+", default=None, help="default: every shipped source model")
    ap.add_argument("--layers", nargs="+", type=int, default=list(range(1, len(HIDDEN_WIDTHS) + 1)))
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "layers"))
    args = ap.parse_args()
    sources = args.sources or list_sources()
    sets = feature_sets(sources, args.layers)
    t_all = time.time()
    rows = []
    for task in task_names(args.tasks):
        d = None
        out_dir = Path(args.results) / task
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in sets:
            for seed in range(args.seeds):
                path = out_dir / f"{name.replace(':', '_')}-n{args.n_train}-seed{seed}.json"
                cached = json.loads(path.read_text()) if path.exists() else None
                if cached is not None and cached.get("weights") == weights_of(name):
                    rows.append(cached)
                    continue
                if d is None:
                    d = task_data(task)
                    cache: dict[str, np.ndarray] = {}
                if name not in cache:
                    cache = {name: featurize(name, d["X"])}  # one feature set in memory at a time
                r = {"task": task, "features": name, "seed": seed, "weights": weights_of(name),
                     **score(cache[name], d, args.n_train, seed)}
                path.write_text(json.dumps(r))
                rows.append(r)
                print(f"{task:28s} {name:32s} seed {seed}: GP {r['gp_mae'] / r['base_mae']:.3f} "
                      f"ET {r['et_mae'] / r['base_mae']:.3f} of base", flush=True)
    ranking = rank(rows, sets)
    print("\n| features | GP val MAE / base (mean) | ET val MAE / base (mean) | tasks × seeds |")
    print("|---|---|---|---|")
    for r in ranking:
        print(f"| {r['features']} | {r['gp']:.3f} | {r['et']:.3f} | {r['n']} |")
    elemnet = [r for r in ranking if ":L" in r["features"]]
    best = min(elemnet, key=lambda r: r["gp"]) if elemnet else None
    print(json.dumps({"benchmark": "layers", "n_train": args.n_train, "seeds": args.seeds,
                      "tasks": task_names(args.tasks), "seconds": round(time.time() - t_all, 1),
                      "best_elemnet_for_gp": best and best["features"], "ranking": ranking}))


def rank(rows: list[dict], sets: list[str]) -> list[dict]:
    """Mean normalised validation MAE per feature set, over the (task, seed) pairs every set has."""
    pairs = None
    for name in sets:
        have = {(r["task"], r["seed"]) for r in rows if r["features"] == name}
        pairs = have if pairs is None else pairs & have
    out = []
    for name in sets:
        mine = [r for r in rows if r["features"] == name and (r["task"], r["seed"]) in (pairs or set())]
        if mine:
            out.append({"features": name, "n": len(mine),
                        "gp": float(np.mean([r["gp_mae"] / r["base_mae"] for r in mine])),
                        "et": float(np.mean([r["et_mae"] / r["base_mae"] for r in mine]))})
    return sorted(out, key=lambda r: r["gp"])


if __name__ == "__main__":
    main()
