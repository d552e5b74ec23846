"""Benchmark: latency and memory of ``aloop.acquisition.propose`` (GP + log-EI, pending points) on big pools, vs BayBE.

The case: features are the 86 elemental fractions of real OQMD compositions
(``source/OQMD_Bandgap.csv.gz``, 341,608 formulas) reduced to ``d = 32`` by PCA. Pools
larger than that add binary mixtures ``t·a + (1−t)·b`` of two real compositions (PCA is
linear, so their features are the same mixtures of features). 500 real compositions are
"measured" with their OQMD band gaps, 8 more are pending; the batch is 8, policy log-EI
(maximise the band gap) with the GP surrogate (``GPSurrogate``, no projection).

Each measurement runs in a fresh subprocess so peak RSS belongs to it alone:
``python benchmarks/bench_propose.py [--sizes 100000 1000000] [--baybe-candidates 10000]``.
The last line printed is one JSON object with every number. BayBE (``pip install baybe``,
benchmark-only) gets a ``Campaign`` over a ``CustomDiscreteParameter`` holding the same
features, the same 500 measurements and 8 pending experiments, default recommender.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_OBS, N_PENDING, Q, D = 500, 8, 8, 32


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def real_features(d: int = D) -> tuple[np.ndarray, np.ndarray]:
    """PCA-``d`` features (float32) and OQMD band gaps of every real composition, cached in /tmp."""
    cache = Path(f"/tmp/aloop_bench_oqmd_pca{d}.npz")
    if cache.exists():
        z = np.load(cache)
        return z["F"], z["y"]
    import pandas as pd

    from aloop.chem import to_fraction_matrix

    data_dir = Path(os.environ.get("ALOOP_DATA_DIR", "/work/shared/data"))
    df = pd.read_csv(data_dir / "source" / "OQMD_Bandgap.csv.gz")
    X, bad = to_fraction_matrix(df["formula"].tolist(), errors="collect")
    ok = np.ones(len(df), dtype=bool)
    ok[[b.index for b in bad]] = False
    X, y = X[ok].astype(np.float64), df["target"].to_numpy()[ok]
    Xc = X - X.mean(axis=0)
    _, _, Vt = np.linalg.svd(Xc.T @ Xc)
    F = (Xc @ Vt[:d].T).astype(np.float32)
    np.savez(cache, F=F, y=y)
    return F, y


def make_case(n_pool: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Pool features with the measured rows first (``0…499``, with targets), then the pending rows (``500…507``).

    The measured and pending compositions are the same for every pool size, so one GP fit serves all.
    """
    F, y = real_features()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(F.shape[0], N_OBS + N_PENDING, replace=False)
    rest = np.setdiff1d(np.arange(F.shape[0]), chosen)
    if n_pool <= F.shape[0]:
        pool = F[np.concatenate([chosen, rng.choice(rest, n_pool - chosen.size, replace=False)])]
    else:
        extra = n_pool - F.shape[0]
        a, b = rng.integers(0, F.shape[0], extra), rng.integers(0, F.shape[0], extra)
        t = rng.uniform(0.1, 0.9, extra).astype(np.float32)[:, None]
        pool = np.concatenate([F[chosen], F[rest], t * F[a] + (1 - t) * F[b]])
    return {"pool": pool, "obs": np.arange(N_OBS), "y_obs": y[chosen[:N_OBS]],
            "pending": np.arange(N_OBS, N_OBS + N_PENDING)}


def fit_gp(path: Path) -> dict[str, float]:
    """Fit the GP on the 500 measurements once and save it for the latency workers."""
    import torch

    from aloop.surrogates.gp import GPSurrogate

    case = make_case(N_OBS + N_PENDING)
    t0 = time.perf_counter()
    gp = GPSurrogate(projection=None).fit(case["pool"][case["obs"]], case["y_obs"])
    fit_s = time.perf_counter() - t0
    torch.save(gp, path)  # benchmark-local pickle, read back only by this script's workers
    return {"fit_s": round(fit_s, 3), "peak_rss_total_mb": round(_peak_mb(), 1)}


class _TimedPredict:
    """Delegates to a surrogate and records the time spent in ``predict``."""

    def __init__(self, inner: object) -> None:
        self.inner, self.predict_s = inner, 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def predict(self, X: np.ndarray, batch_size: int = 65536) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        out = self.inner.predict(X, batch_size=batch_size)
        self.predict_s += time.perf_counter() - t
        return out


def _propose(surrogate: object, case: dict[str, np.ndarray]) -> list:
    """The benchmark's proposal: log-EI, batch of ``Q``, the case's pending rows, measured rows excluded."""
    from aloop.acquisition import Maximize, propose

    return propose(surrogate, case["pool"], Maximize(name="band gap", units="eV"), "log_ei", q=Q,
                   y_observed=case["y_obs"], pending=case["pending"], exclude=case["obs"], chunk_size=32768)


def run_aloop(case: dict[str, np.ndarray], gp_path: Path) -> dict[str, float]:
    import torch

    import aloop.acquisition  # noqa: F401  (imported before the timer, like every library)

    pool = case["pool"]
    gp = torch.load(gp_path, weights_only=False)
    rss_before, peak_before = _rss_mb(), _peak_mb()
    timed = _TimedPredict(gp)
    t1 = time.perf_counter()
    props = _propose(timed, case)
    propose_s = time.perf_counter() - t1
    peak_after = _peak_mb()
    return {
        "pool": int(pool.shape[0]),
        "propose_s": round(propose_s, 3),
        "predict_s": round(timed.predict_s, 3),
        "select_s": round(propose_s - timed.predict_s, 3),
        "rss_before_propose_mb": round(rss_before, 1),
        "peak_rss_total_mb": round(peak_after, 1),
        "propose_peak_over_baseline_mb": round(max(peak_after, peak_before) - rss_before, 1),
        "first_reason": props[0].reason,
    }


def run_aloop_end_to_end(case: dict[str, np.ndarray]) -> dict[str, object]:
    """Fit and propose in one fresh process, timed together: the like-for-like of BayBE's setup + ``recommend``."""
    import aloop.acquisition  # noqa: F401  (imported before the timer, like every library)
    from aloop.surrogates.gp import GPSurrogate

    t0 = time.perf_counter()
    gp = GPSurrogate(projection=None).fit(case["pool"][case["obs"]], case["y_obs"])
    t1 = time.perf_counter()
    props = _propose(gp, case)
    t2 = time.perf_counter()
    return {"pool": int(case["pool"].shape[0]), "end_to_end_s": round(t2 - t0, 3), "fit_s": round(t1 - t0, 3),
            "propose_s": round(t2 - t1, 3), "n_proposed": len(props), "peak_rss_total_mb": round(_peak_mb(), 1)}


def run_baybe(case: dict[str, np.ndarray]) -> dict[str, float]:
    import pandas as pd
    from baybe import Campaign
    from baybe.parameters import CustomDiscreteParameter
    from baybe.searchspace import SearchSpace
    from baybe.surrogates.gaussian_process.core import GaussianProcessSurrogate
    from baybe.targets import NumericalTarget

    # Time BayBE's surrogate fit inside ``recommend`` so its fit and its candidate scoring
    # can each be set against ours.
    fit_s = [0.0]
    inner_fit = GaussianProcessSurrogate._fit

    def timed_fit(self, train_x, train_y):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        inner_fit(self, train_x, train_y)
        fit_s[0] += time.perf_counter() - t

    GaussianProcessSurrogate._fit = timed_fit

    pool = case["pool"].astype(np.float64)
    labels = [f"c{i}" for i in range(pool.shape[0])]
    data = pd.DataFrame(pool, index=labels, columns=[f"f{j}" for j in range(pool.shape[1])])
    t0 = time.perf_counter()
    param = CustomDiscreteParameter(name="composition", data=data, decorrelate=False)
    campaign = Campaign(searchspace=SearchSpace.from_product([param]), objective=NumericalTarget(name="gap").to_objective())
    meas = pd.DataFrame({"composition": [labels[i] for i in case["obs"]], "gap": case["y_obs"]})
    campaign.add_measurements(meas)
    pending = pd.DataFrame({"composition": [labels[i] for i in case["pending"]]})
    setup_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rec = campaign.recommend(batch_size=Q, pending_experiments=pending)
    recommend_s = time.perf_counter() - t1
    return {"pool": int(pool.shape[0]), "setup_s": round(setup_s, 3), "recommend_s": round(recommend_s, 3),
            "surrogate_fit_s": round(fit_s[0], 3), "recommend_minus_fit_s": round(recommend_s - fit_s[0], 3),
            "total_s": round(setup_s + recommend_s, 3), "n_recommended": int(len(rec)),
            "peak_rss_total_mb": round(_peak_mb(), 1)}


def _worker(kind: str, n_pool: int, timeout: float, threads: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", kind, "--pool", str(n_pool), "--threads", str(threads)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"pool": n_pool, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"pool": n_pool, "error": (out.stderr or out.stdout)[-2000:]}
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--baybe-candidates", type=int, default=10_000, help="0 skips BayBE")
    ap.add_argument("--baybe-timeout", type=float, default=1800.0)
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads in every worker")
    ap.add_argument("--worker", choices=["fit", "aloop", "aloop_e2e", "baybe"], help=argparse.SUPPRESS)
    ap.add_argument("--pool", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    gp_path = Path("/tmp/aloop_bench_gp.pt")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker == "fit":
            out = fit_gp(gp_path)
        else:
            case = make_case(args.pool)
            runners = {"aloop": lambda: run_aloop(case, gp_path), "aloop_e2e": lambda: run_aloop_end_to_end(case),
                       "baybe": lambda: run_baybe(case)}
            out = runners[args.worker]()
        print(json.dumps(out), flush=True)
        return

    real_features()  # build the feature cache once, outside the timed workers
    result: dict[str, object] = {
        "case": f"GP + log-EI, {N_OBS} observations, {N_PENDING} pending, batch {Q}, d={D} "
                "(PCA of elemental fractions of real OQMD compositions; pools > 341,608 add binary mixtures)",
        "threads": args.threads,
        "load_average_at_start": os.getloadavg()[0],
    }
    fit = _worker("fit", N_OBS + N_PENDING, 3600.0, args.threads)
    print(json.dumps(fit), flush=True)
    result["gp_fit"] = fit
    result["aloop"] = []
    for n in args.sizes:
        res = _worker("aloop", n, 1800.0, args.threads)
        if "propose_s" in res and "fit_s" in fit:
            res["fit_plus_propose_s"] = round(fit["fit_s"] + res["propose_s"], 3)  # type: ignore[operator]
        print(json.dumps(res), flush=True)
        result["aloop"].append(res)  # type: ignore[union-attr]
    if args.baybe_candidates:
        ours = _worker("aloop", args.baybe_candidates, 600.0, args.threads)
        e2e = _worker("aloop_e2e", args.baybe_candidates, 600.0, args.threads)
        print(json.dumps(e2e), flush=True)
        theirs = _worker("baybe", args.baybe_candidates, args.baybe_timeout, args.threads)
        print(json.dumps(theirs), flush=True)
        head: dict[str, object] = {"candidates": args.baybe_candidates, "aloop": ours, "aloop_end_to_end": e2e,
                                   "baybe": theirs}
        if "error" not in e2e and "error" not in theirs:
            # Like for like: one fresh process each, from arrays in memory to a batch of 8.
            head["speedup_end_to_end"] = round(theirs["total_s"] / e2e["end_to_end_s"], 1)  # type: ignore[operator]
        if "error" not in ours and "error" not in theirs and "fit_s" in fit:
            # Sum of two fresh processes (fit; propose): counts one-time start-up costs twice.
            head["speedup_fit_plus_propose"] = round(theirs["total_s"] / (fit["fit_s"] + ours["propose_s"]), 1)  # type: ignore[operator]
            head["speedup_propose_only"] = round(theirs["total_s"] / ours["propose_s"], 1)  # type: ignore[operator]
            # Like for like: each side's hyperparameter fit, and each side's scoring + batch selection.
            head["speedup_fit_only"] = round(theirs["surrogate_fit_s"] / fit["fit_s"], 1)  # type: ignore[operator]
            head["speedup_scoring_only"] = round(theirs["recommend_minus_fit_s"] / ours["propose_s"], 1)  # type: ignore[operator]
        result["baybe_head_to_head"] = head
    result["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
