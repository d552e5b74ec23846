"""Why BayBE's default recommender finds more of an OER plate's top 5% than analytic log-EI: a diagnosis.

Part 1 — the picks over time: mean overpotential of the compositions each strategy of the
``oer-plate-3496-q1`` study measured in experiments 50–100, 100–150 and 150–200 (all seeds).

Part 2 — the models and the picks at one state: replays BayBE's own run (seed 0) up to ``n``
measurements, rebuilds BayBE's campaign on them, and compares BayBE's GP with aloop's
(``GPSurrogate(lengthscale_prior="gamma", input_bounds="pool")``) — lengthscales, noise —
and ranks BayBE's actual recommendation under analytic EI (incumbent: the best measurement,
and the best posterior mean at the measured rows) and under the bounds μ − 2σ and μ − 3σ.

Usage (needs the finished ``oer-plate-3496-q1`` study under benchmarks/results/discovery/):
    ALOOP_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/diagnose_baybe_picks.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).parent))
from baybe_replay import TARGET, _make_campaign  # noqa: E402

from aloop.datasets import load  # noqa: E402
from aloop.surrogates.gp import GPSurrogate  # noqa: E402

STUDY = Path(__file__).parent / "results" / "discovery" / "oer-plate-3496-q1"


def _ei(best: float, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Analytic expected improvement below ``best`` (minimisation)."""
    z = (best - mean) / std
    return std * (z * norm.cdf(z) + norm.pdf(z))


def _rank(score: np.ndarray, i: int) -> int:
    """How many candidates score strictly higher than candidate ``i``."""
    return int((score > score[i]).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--states", type=int, nargs="+", default=[60, 120, 150, 170, 190])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    frame = load("oer-plate-3496")
    y = frame["overpotential_V"].to_numpy()
    X = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(float)

    print("mean overpotential (V) of the picks in experiments 50-100 / 100-150 / 150-200, all seeds:")
    for strategy in sorted(p.name for p in (STUDY / "runs").iterdir()):
        orders = [json.loads(f.read_text())["order"] for f in (STUDY / "runs" / strategy).glob("seed-*.json")]
        picks = np.array([[y[int(o)] for o in order] for order in orders])
        print(f"  {strategy:18s}", " / ".join(f"{picks[:, a:b].mean():.3f}" for a, b in ((50, 100), (100, 150), (150, 200))))

    record = json.loads((STUDY / "runs" / "baybe-default" / f"seed-{args.seed}.json").read_text())
    order = [int(o) for o in record["order"]]
    for n in args.states:
        measured = order[:n]
        campaign, table = _make_campaign(X, minimize=True)
        campaign.add_measurements(table.iloc[measured].assign(**{TARGET: y[measured]}))
        picked = campaign.recommend(batch_size=1)[list(table.columns)].to_numpy(float)[0]
        row = int(np.argmin(np.abs(table.to_numpy() - picked).sum(axis=1)))
        theirs = campaign.get_surrogate()._surrogates_flat[0]
        rest = np.setdiff1d(np.arange(len(y)), measured)
        post = theirs.posterior(table.iloc[rest])
        mean, std = post.mean.detach().numpy().ravel(), post.variance.detach().numpy().ravel() ** 0.5
        best_mean = theirs.posterior(table.iloc[measured]).mean.detach().numpy().min()
        ours = GPSurrogate(lengthscale_prior="gamma", input_bounds="pool").fit(X[measured], y[measured], X_pool=X)
        i = int(np.flatnonzero(rest == row)[0])
        ei = _ei(y[measured].min(), mean, std)
        print(f"\nn = {n}: BayBE picked row {row} (overpotential {y[row]:.4f} V; model {mean[i]:.4f} ± {std[i]:.4f})")
        print(f"  lengthscales BayBE {np.round(theirs._model.covar_module.lengthscale.detach().numpy().ravel(), 2)}"
              f" noise {float(theirs._model.likelihood.noise):.4f}")
        print(f"  lengthscales aloop {np.round(ours.gp.covar_module.lengthscale.detach().numpy().ravel(), 2)}"
              f" noise {float(ours.gp.likelihood.noise):.4f} (standardised units)")
        print(f"  rank of BayBE's pick among {len(rest)}: analytic EI {_rank(ei, i)}, EI on the best posterior mean "
              f"{_rank(_ei(best_mean, mean, std), i)}, mu - 2 sd {_rank(-(mean - 2 * std), i)}, "
              f"mu - 3 sd {_rank(-(mean - 3 * std), i)}; analytic-EI argmax: {mean[np.argmax(ei)]:.4f} ± {std[np.argmax(ei)]:.4f}")


if __name__ == "__main__":
    main()
