"""Wall time of one propose → record → retrain cycle of a live campaign over a 105k-candidate grid.

Run from the project root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_campaign.py [--sizes 50 200 1000] [--workdir DIR]

The space: oxides of 8 metals (Ni, Fe, Co, Mn, Cu, Zn, Ti, Cr) with O fixed at 0.45 and
metal fractions on a 0.025 grid, at most 4 metals at once — 105,456 candidates (a
``GridSpace``), Magpie features, GP surrogate, log-EI, batch 8, through the public
``Campaign`` API on a SQLite log. The "lab" is synthetic but deterministic: a smooth
function of the composition (random linear and pairwise terms plus one Gaussian bump,
seeded), so timings do not depend on a data file.

For each size ``n``, the log is first brought to ``n`` observations with measurements of
random candidates (recorded as unsolicited results, untimed); then one cycle is timed:
``propose(8)`` — which retrains the GP on all ``n`` observations because results arrived,
predicts all 105k candidates and picks the batch — and ``record`` of the 8 results. The
propose time is split into the GP fit and the acquisition step (predict + batch selection).
The one-off pool build (enumerate + featurise + cache) is timed separately; so is reopening
the campaign (loading the feature cache). The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

from aloop.campaigns import Campaign
from aloop.chem import ELEMENT_INDEX, to_fraction_matrix

METALS = ("Ni", "Fe", "Co", "Mn", "Cu", "Zn", "Ti", "Cr")
FIXED = {"O": 0.45}
STEP = 0.025
MAX_ELEMENTS = 4
BATCH = 8
COLUMN = "activity [a.u.]"


class Lab:
    """A deterministic synthetic response: linear + pairwise terms in the metal fractions and a Gaussian bump."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.cols = [ELEMENT_INDEX[m] for m in METALS]
        self.a = rng.normal(size=len(METALS))
        self.b = np.triu(rng.normal(size=(len(METALS), len(METALS))), 1)
        self.centre = rng.dirichlet(np.ones(len(METALS)))

    def __call__(self, formulas: list[str]) -> np.ndarray:
        X, _ = to_fraction_matrix(formulas)
        m = X[:, self.cols].astype(np.float64)
        m = m / m.sum(axis=1, keepdims=True)
        bump = 3.0 * np.exp(-((m - self.centre) ** 2).sum(axis=1) / 0.05)
        return m @ self.a + np.einsum("ni,ij,nj->n", m, self.b, m) + bump


class Stopwatch:
    """Accumulates the wall time spent inside wrapped functions (the GP fit, the acquisition step)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aloop-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab()

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        campaign = Campaign.init(workdir / "bench.toml", elements=list(METALS), fixed=FIXED, step=STEP,
                                 max_elements=MAX_ELEMENTS, objective="activity", units="a.u.", featurizer="magpie",
                                 surrogate="gp", acquisition="log_ei", batch_size=BATCH, initial_design="random",
                                 initial_size=BATCH, seed=0, progress=False)
    t_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    pool = campaign.pool
    t_pool = time.perf_counter() - t0
    campaign.close()
    t0 = time.perf_counter()
    campaign = Campaign.open(workdir / "bench.toml", progress=False)
    _ = campaign.pool
    t_reopen = time.perf_counter() - t0
    print(f"space: {len(pool):,} candidates ({'-'.join(METALS)} + O{FIXED['O']}, step {STEP}, ≤{MAX_ELEMENTS} metals), "
          f"{pool.features.shape[1]} Magpie features")
    print(f"init {t_init:.2f} s; pool build (enumerate + featurise + cache) {t_pool:.2f} s; reopen from cache {t_reopen:.2f} s\n")

    import aloop.acquisition
    import aloop.campaigns.loop

    watch = Stopwatch()
    watch.wrap(aloop.campaigns.loop, "fit_surrogate", "fit")
    watch.wrap(aloop.acquisition, "propose", "acquire")
    rng = np.random.default_rng(1)
    rows = []
    header = (f"{'observations':>12}  {'propose+retrain':>15}  {'(GP fit':>8}  {'acquire)':>9}  {'record 8':>9}"
              f"  {'cycle':>7}  model")
    print(header + "\n" + "-" * len(header))
    for n in sorted(args.sizes):
        have = len(campaign.log.observations())
        if n > have:  # bring the log to n observations (untimed)
            excluded = campaign.log.excluded_keys()
            free = np.flatnonzero(~np.isin(pool.keys, np.asarray(sorted(excluded), dtype=pool.keys.dtype)))
            picks = pool.formulas[rng.choice(free, n - have, replace=False)].tolist()
            campaign.record(pd.DataFrame({"formula": picks, COLUMN: lab(picks)}))
        watch.seconds.clear()
        t0 = time.perf_counter()
        batch = campaign.propose(BATCH)
        t_propose = time.perf_counter() - t0
        t0 = time.perf_counter()
        campaign.record(pd.DataFrame({"proposal_id": batch["proposal_id"], COLUMN: lab(batch["formula"].tolist())}))
        t_record = time.perf_counter() - t0
        t_fit, t_acq = watch.seconds.get("fit", 0.0), watch.seconds.get("acquire", 0.0)
        rows.append({"observations": n, "propose_retrain_s": round(t_propose, 3), "gp_fit_s": round(t_fit, 3),
                     "acquire_s": round(t_acq, 3), "record_s": round(t_record, 3),
                     "cycle_s": round(t_propose + t_record, 3), "model_version": batch.attrs["model_version"],
                     "retrained": batch.attrs["retrained"]})
        print(f"{n:>12}  {t_propose:>14.2f}s  {t_fit:>7.2f}s  {t_acq:>8.2f}s  {t_record:>8.2f}s  {t_propose + t_record:>6.2f}s  "
              f"{batch.attrs['model_version']} (retrained: {batch.attrs['retrained']})")
    campaign.close()
    result = {
        "benchmark": "campaign_cycle", "candidates": len(pool), "features": "magpie", "n_features": int(pool.features.shape[1]),
        "surrogate": "gp", "acquisition": "log_ei", "batch": BATCH, "init_s": round(t_init, 3),
        "pool_build_s": round(t_pool, 3), "reopen_s": round(t_reopen, 3), "cycles": rows,
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
