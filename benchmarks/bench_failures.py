"""How many syntheses a campaign wastes on a region where they fail: feasibility handling, before and after session 24.

A pool-based loop over ``aloop.acquisition.propose`` (not the campaign code path): the JCAP OER plate 3851
(minimise overpotential, raw metal fractions, ``GPSurrogate``), where a *hypothetical* rule makes every
synthesis with an Fe fraction of 0.4 or more fail. The rule is invented for this benchmark (the plate
measured every composition); it removes a third of the plate's top 5%, so the best-looking region is
partly unmakeable. From 8 random first syntheses, batches of 8 up to 80 syntheses; each batch is proposed
by the GP fitted to the successes, weighted by a feasibility classifier of successes against failures.

Variants: the classifier (``logistic``: the default until session 24; ``auto``: a GP classifier) and
``min_success`` (0: weighting only, as before; 0.3: the default now). Per policy and variant, over seeds:
failed syntheses, and the share of the makeable top 5% (the best 5% among compositions with Fe < 0.4) found.
Then whether the final P(success) is calibrated: its k-fold cross-validated Brier score over the campaign's
outcomes (``cross_validate_feasibility``, what ``aloop status`` reports; seeds with fewer than 2 failures have
none), and its Brier score and mean on every composition not made, which the rule labels, each beside the
base rate's (the fraction of the campaign's syntheses that worked).

With ``--features elemnet`` the GP and the classifier work on a campaign's default features instead: layer-2
activations of the shipped ``oqmd-formation-enthalpy`` ElemNet (1,024 per composition) of the plate's metal-only
formulas, as the OER replays featurize them. ``--components K`` projects the GP classifier's inputs to K principal
components instead of the package's ``GP_COMPONENTS`` (16; only features wider than that are projected, so it matters
on ElemNet features, not on the six fractions).

``--fit-scaling`` instead times one fit of the GP classifier on 300, 600 and 1,000 random outcomes of the same rule
(what a long campaign accumulates), with its kernel tuned on every outcome and on ``GP_FIT_ROWS`` of them (the
default), and scores each on the rest of the plate (Brier, beside the base rate's).

    ALOOP_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_failures.py [--seeds 10] [--jobs 2] \
        [--features fractions|elemnet] [--components 16] [--fit-scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from joblib import Parallel, delayed

from aloop.acquisition import FeasibilityModel, Minimize, cross_validate_feasibility, feasibility, propose
from aloop.datasets import load
from aloop.features import ElemNetFeatures
from aloop.surrogates import GPSurrogate

FE_LIMIT = 0.4
BATCH, FIRST, BUDGET = 8, 8, 80
VARIANTS = {"before (logistic, weighting only)": ("logistic", 0.0), "GP classifier, weighting only": ("auto", 0.0),
            "now (GP classifier, min_success 0.3)": ("auto", 0.3)}


def run(X: np.ndarray, y: np.ndarray, fails: np.ndarray, good: np.ndarray, policy: str, variant: str,
        seed: int, components: int = feasibility.GP_COMPONENTS) -> dict[str, object]:
    """One campaign; returns its failures and the makeable top-5% share found."""
    feasibility.GP_COMPONENTS = components  # in this worker process: the GP classifier's principal components
    method, min_success = VARIANTS[variant]
    made = np.random.default_rng(seed).choice(len(y), FIRST, replace=False).tolist()
    while len(made) < BUDGET:
        ok = [r for r in made if not fails[r]]
        bad = [r for r in made if fails[r]]
        gp = GPSurrogate(seed=seed).fit(X[ok], y[ok])
        feas = FeasibilityModel.from_records(X[ok], X[bad], method=method, random_state=seed) if bad else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            picks = propose(gp, X, Minimize(), policy, q=min(BATCH, BUDGET - len(made)), y_observed=y[ok],
                            exclude=np.array(made), feasibility=feas, min_success=min_success, seed=seed)
        made += [p.index for p in picks]
    made_arr = np.array(made)
    ok = ~fails[made_arr]
    cv = cross_validate_feasibility(X[made_arr], ok, made_arr, method=method, random_state=seed)
    rest = np.setdiff1d(np.arange(len(y)), made_arr)  # what the final P(success) says about the syntheses not made
    p_rest = FeasibilityModel.from_records(X[made_arr[ok]], X[made_arr[~ok]], method=method, random_state=seed).prob(X[rest])
    truth = ~fails[rest]
    return {"policy": policy, "variant": variant, "seed": seed, "failed": int(fails[made_arr].sum()),
            "failed_after_first": int(fails[made_arr[FIRST:]].sum()),
            "top5_found": float(good[made_arr].sum() / good.sum()),
            "cv_brier": cv["brier"] if cv else np.nan, "cv_brier_base": cv["brier_base_rate"] if cv else np.nan,
            "pool_brier": float(np.mean((p_rest - truth) ** 2)), "pool_brier_base": float(np.mean((ok.mean() - truth) ** 2)),
            "pool_mean_p": float(p_rest.mean()), "pool_rate": float(truth.mean())}


def fit_scaling(X: np.ndarray, fails: np.ndarray, sizes: tuple[int, ...] = (300, 600, 1000)) -> list[dict[str, object]]:
    """Seconds per GP-classifier fit and Brier on the outcomes not drawn, kernel tuned on all outcomes or on a subset."""
    ok = ~fails
    default, rows = feasibility.GP_FIT_ROWS, []
    for n in sizes:
        made = np.random.default_rng(0).choice(len(ok), n, replace=False)
        rest = np.setdiff1d(np.arange(len(ok)), made)
        for tuned_on in (n, default) if n > default else (n,):
            feasibility.GP_FIT_ROWS = tuned_on
            t0 = time.perf_counter()
            model = FeasibilityModel(method="gp").fit(X[made], ok[made])
            seconds = time.perf_counter() - t0
            p = model.prob(X[rest])
            rows.append({"outcomes": n, "tuned_on": "all" if tuned_on == n else tuned_on, "fit_s": round(seconds, 2),
                         "brier": round(float(np.mean((p - ok[rest]) ** 2)), 4),
                         "brier_base": round(float(np.mean((ok[made].mean() - ok[rest]) ** 2)), 4)})
            print(f"| {n} | {rows[-1]['tuned_on']} | {seconds:.2f} | {rows[-1]['brier']:.4f} ({rows[-1]['brier_base']:.4f}) |",
                  flush=True)
    feasibility.GP_FIT_ROWS = default
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--policies", nargs="+", default=["log_ei", "ucb"])
    ap.add_argument("--features", choices=("fractions", "elemnet"), default="fractions",
                    help="raw metal fractions, or a campaign's default ElemNet features (layer 2, formation enthalpy)")
    ap.add_argument("--fit-scaling", action="store_true",
                    help="time the GP classifier's fit on 300-1,000 outcomes, kernel tuned on all or GP_FIT_ROWS")
    ap.add_argument("--components", type=int, default=feasibility.GP_COMPONENTS,
                    help="principal components of the GP classifier's inputs (default: the package's %(default)s)")
    args = ap.parse_args()
    if args.components < 1:
        ap.error(f"--components must be ≥ 1, got {args.components}")
    frame = load("oer-plate-3851")
    if args.features == "elemnet":
        X = ElemNetFeatures(source="oqmd-formation-enthalpy", layer=2).transform(frame["formula"].tolist())
    else:
        X = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(float)
    y = frame["overpotential_V"].to_numpy(float)
    fails = frame["fe_load"].to_numpy(float) >= FE_LIMIT - 1e-9
    makeable = np.flatnonzero(~fails)
    good = np.zeros(len(y), bool)
    good[makeable[y[makeable] <= np.quantile(y[makeable], 0.05)]] = True
    if args.fit_scaling:
        feasibility.GP_COMPONENTS = args.components
        print(f"plate 3851 ({args.features}, {X.shape[1]} features): one GP-classifier fit, Fe ≥ {FE_LIMIT} fails\n\n"
              "| outcomes | kernel tuned on | fit (s) | Brier on the rest of the plate (base rate) |\n|---|---|---|---|")
        rows = fit_scaling(X, fails)
        print(json.dumps({"benchmark": "failures_fit_scaling", "features": args.features, "results": rows}))
        return
    t0 = time.time()
    jobs = [(p, v, s) for p in args.policies for v in VARIANTS for s in range(args.seeds)]
    rows = Parallel(n_jobs=args.jobs)(delayed(run)(X, y, fails, good, p, v, s, args.components)
                                        for p, v, s in jobs)
    print(f"plate 3851 ({args.features}, {X.shape[1]} features, classifier on ≤ {args.components} components): {int(fails.sum())} of {len(y)} compositions fail (Fe ≥ {FE_LIMIT}); makeable top 5% = "
          f"{int(good.sum())}; {len(rows)} runs in {time.time() - t0:.0f} s\n")
    print(f"| policy | variant | failed of {BUDGET} (mean) | failed after the first {FIRST} | makeable top 5% found | "
          "P(success) CV Brier (base rate) | on the syntheses not made: Brier (base rate) | there: mean P(success) "
          "(fraction makeable) |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for p in args.policies:
        for v in VARIANTS:
            sel = [r for r in rows if r["policy"] == p and r["variant"] == v]
            f = np.mean([r["failed"] for r in sel])
            fa = np.mean([r["failed_after_first"] for r in sel])
            top = np.mean([r["top5_found"] for r in sel])
            cal = {k: float(np.nanmean([r[k] for r in sel])) for k in
                   ("cv_brier", "cv_brier_base", "pool_brier", "pool_brier_base", "pool_mean_p", "pool_rate")}
            n_cv = sum(np.isfinite(r["cv_brier"]) for r in sel)
            print(f"| {p} | {v} | {f:.1f} | {fa:.1f} | {top:.3f} | {cal['cv_brier']:.3f} ({cal['cv_brier_base']:.3f}; "
                  f"{n_cv} of {len(sel)} seeds) | {cal['pool_brier']:.3f} ({cal['pool_brier_base']:.3f}) | "
                  f"{cal['pool_mean_p']:.2f} ({cal['pool_rate']:.2f}) |")
            summary.append({"policy": p, "variant": v, "failed_mean": round(float(f), 2),
                            "failed_after_first_mean": round(float(fa), 2), "top5_found_mean": round(float(top), 3),
                            "cv_seeds": int(n_cv), **{k: round(x, 4) for k, x in cal.items()}})
    print(json.dumps({"benchmark": "failures", "features": args.features, "components": args.components,
                      "seeds": args.seeds, "results": summary}))


if __name__ == "__main__":
    main()
