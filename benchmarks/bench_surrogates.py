"""Benchmark of surrogate accuracy and uncertainty calibration on held-out data (band gap, OER plates).

For every dataset × feature set × surrogate: fit on the training rows, predict the held-out
rows with observation noise (held-out values are measurements), and report MAE, RMSE,
Gaussian NLL, 68%/95% interval coverage, miscalibration area and sharpness
(``aloop.surrogates.uncertainty_report``). Prints a Markdown table, then one JSON line.

Data: ``expt-bandgap`` with the cross-property TL paper's train/test split; OER plates
``oer-plate-3496`` and ``oer-plate-3851`` with a random 20% hold-out (``--seed``).
Features: ``ef`` (elemental fractions), ``magpie`` (band gap), ``raw`` (the plates' metal
fractions), and with ``--elemnet SOURCE[:LAYER]`` the activations of a shipped ElemNet
source model (plus the fine-tuned ElemNet ensemble and deep-kernel GP on fractions).

Usage:
    ALOOP_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 python benchmarks/bench_surrogates.py
    python benchmarks/bench_surrogates.py --quick                  # small smoke run
    python benchmarks/bench_surrogates.py --timing                 # 1e6-candidate GP predict timing
    python benchmarks/bench_surrogates.py --elemnet oqmd-formation-enthalpy:14
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aloop.campaigns.modeling import GP_LENGTHSCALE_SD
from aloop.chem import to_fraction_matrix
from aloop.datasets import load
from aloop.surrogates import (
    DeepKernelGP,
    ElemNetEnsembleSurrogate,
    GPSurrogate,
    MLPEnsembleSurrogate,
    Surrogate,
    TreeEnsembleSurrogate,
    uncertainty_report,
)

SURROGATES: dict[str, Callable[[bool], Surrogate]] = {
    "gp": lambda quick: GPSurrogate(),
    "gp-gamma": lambda quick: GPSurrogate(lengthscale_prior="gamma"),
    # A campaign's GP lengthscale prior (log-sd 0.15 at BoTorch's mode); its input box here is the training rows',
    # which on these random hold-outs is the candidates' box a campaign uses.
    "gp-tight": lambda quick: GPSurrogate(lengthscale_sd=GP_LENGTHSCALE_SD),
    "rf": lambda quick: TreeEnsembleSurrogate("random_forest", n_estimators=100 if quick else 300),
    "et": lambda quick: TreeEnsembleSurrogate("extra_trees", n_estimators=100 if quick else 300),
    "mlp": lambda quick: MLPEnsembleSurrogate(n_members=3 if quick else 5, max_epochs=100 if quick else 500),
}


@dataclass
class Problem:
    """One held-out evaluation: fractions (for ElemNet), optional raw features, targets."""

    dataset: str
    F_train: np.ndarray  # n × 86 fractions
    F_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    raw_train: np.ndarray | None = None
    raw_test: np.ndarray | None = None


def _fractions(formulas: list[str]) -> tuple[np.ndarray, np.ndarray]:
    X, bad = to_fraction_matrix(formulas, errors="collect")
    keep = np.ones(len(formulas), dtype=bool)
    keep[[b.index for b in bad]] = False
    return X.astype(np.float64), keep


def load_problems(names: list[str], seed: int, max_train: int | None) -> list[Problem]:
    problems = []
    rng = np.random.default_rng(seed)
    for name in names:
        frame = load(name)
        if name == "expt-bandgap":
            F, keep = _fractions(list(frame["formula"]))
            y = frame["gap expt"].to_numpy()
            is_test = (frame["split"] == "test").to_numpy()
            tr, te = np.flatnonzero(keep & ~is_test), np.flatnonzero(keep & is_test)
            raw = None
        else:
            F, keep = _fractions(list(frame["formula"]))
            y = frame["overpotential_V"].to_numpy()
            rows = rng.permutation(np.flatnonzero(keep))
            n_test = int(round(0.2 * len(rows)))
            te, tr = np.sort(rows[:n_test]), np.sort(rows[n_test:])
            raw = frame[[c for c in frame.columns if c.endswith("_load")]].to_numpy(dtype=np.float64)
        if max_train is not None and len(tr) > max_train:
            tr = np.sort(rng.choice(tr, max_train, replace=False))
        problems.append(Problem(name, F[tr], F[te], y[tr], y[te],
                                None if raw is None else raw[tr], None if raw is None else raw[te]))
    return problems


def elemnet_featurizer(spec: str):  # noqa: ANN201 (a Featurizer)
    """HOOK for ElemNet-layer features: ``SOURCE[:LAYER]`` → a featurizer of fractions.

    Uses ``aloop.features.get_featurizer("elemnet", …)`` when registered, otherwise the
    ``ElemNetFeatures`` class directly (default layer: the last hidden layer).
    """
    from aloop.features import FEATURIZERS, get_featurizer

    source, _, layer = spec.partition(":")
    kwargs = {"source": source, "layer": int(layer) if layer else 16}
    if "elemnet" in FEATURIZERS:
        return get_featurizer("elemnet", **kwargs)
    from aloop.features.elemnet import ElemNetFeatures

    return ElemNetFeatures(**kwargs)


def feature_sets(problem: Problem, names: list[str], elemnet: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in names:
        if name == "raw":
            if problem.raw_train is not None:
                out["raw"] = (problem.raw_train, problem.raw_test)
            continue
        if name == "magpie" and problem.dataset != "expt-bandgap":
            continue
        try:
            from aloop.features import get_featurizer

            feat = get_featurizer(name)
        except (ImportError, ValueError) as err:
            print(f"note: feature set {name!r} unavailable ({err}); skipped", file=sys.stderr)
            continue
        Xtr = feat.transform(problem.F_train.astype(np.float32)).astype(np.float64)
        Xte = feat.transform(problem.F_test.astype(np.float32)).astype(np.float64)
        keep = np.isfinite(Xtr).all(axis=0) & np.isfinite(Xte).all(axis=0)  # drop undefined columns
        out[name] = (Xtr[:, keep], Xte[:, keep])
    if elemnet:
        feat = elemnet_featurizer(elemnet)
        out[f"elemnet-{elemnet}"] = tuple(feat.transform(F.astype(np.float32)).astype(np.float64)
                                          for F in (problem.F_train, problem.F_test))
    return out


def evaluate(model: Surrogate, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray) -> dict:
    start = time.perf_counter()
    model.fit(Xtr, ytr)
    fit_s = time.perf_counter() - start
    mean, var = model.predict(Xte, observation_noise=True)
    # Zero predicted variance (e.g. an uncalibrated ensemble in full agreement) is floored so NLL stays finite.
    report = uncertainty_report(yte, mean[:, 0], np.sqrt(np.maximum(var[:, 0], 1e-12)))
    return {**report, "fit_s": fit_s, "n_train": len(ytr)}


def timing(n_obs: int = 500, d: int = 32, n_cand: int = 1_000_000, batch_size: int = 20_000) -> dict:
    """Wall and CPU seconds of ``GPSurrogate.predict`` on ``n_cand × d`` after fitting ``n_obs`` rows."""
    import torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_obs, d))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=n_obs)
    gp = GPSurrogate(projection=None).fit(X, y)
    cand = rng.normal(size=(n_cand, d))
    wall, cpu = time.perf_counter(), time.process_time()
    mean, var = gp.predict(cand, batch_size=batch_size)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    post = gp.posterior(torch.as_tensor(cand[:2000]))
    return {
        "n_obs": n_obs, "d": d, "n_candidates": n_cand, "batch_size": batch_size,
        "threads": torch.get_num_threads(), "wall_s": wall, "cpu_s": cpu,
        "max_abs_mean_diff_vs_posterior": float(np.abs(post.mean.detach().numpy() - mean[:2000]).max()),
        "max_abs_var_diff_vs_posterior": float(np.abs(post.variance.detach().numpy() - var[:2000]).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="expt-bandgap,oer-plate-3496,oer-plate-3851")
    parser.add_argument("--features", default="ef,magpie,raw")
    parser.add_argument("--surrogates", default=",".join(SURROGATES))
    parser.add_argument("--elemnet", metavar="SOURCE[:LAYER]", default=None,
                        help="add ElemNet-layer features of this source model, and the ElemNet ensemble / deep-kernel GP")
    parser.add_argument("--skip-finetuned", action="store_true",
                        help="with --elemnet, leave out the fine-tuned ElemNet ensemble and deep-kernel GP (slow on 2 cores)")
    parser.add_argument("--max-train", type=int, default=None, help="subsample training rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="1000 training rows, smaller ensembles")
    parser.add_argument("--timing", action="store_true", help="only time GP predict on 1e6 × 500 × 32")
    args = parser.parse_args(argv)

    if args.timing:
        result = timing()
        print(f"GPSurrogate.predict: {result['n_candidates']:,} candidates × {result['n_obs']} obs × d={result['d']}: "
              f"{result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU ({result['threads']} threads)")
        print(json.dumps({"bench": "surrogates-timing", **result}))
        return 0

    max_train = args.max_train or (1000 if args.quick else None)
    problems = load_problems(args.datasets.split(","), args.seed, max_train)
    rows = []
    header = "| dataset | features | surrogate | n_train | n_test | MAE | RMSE | NLL | cov68 | cov95 | miscal | sharp | fit s |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for problem in problems:
        runs: list[tuple[str, str, Surrogate, np.ndarray, np.ndarray]] = []
        names = [n for n in args.features.split(",") if n]  # --features "" with --elemnet: ElemNet rows only
        for fname, (Xtr, Xte) in feature_sets(problem, names, args.elemnet).items():
            runs += [(fname, s, SURROGATES[s](args.quick), Xtr, Xte) for s in args.surrogates.split(",")]
        if args.elemnet and not args.skip_finetuned:
            # The fine-tuned ElemNet ensemble and deep-kernel GP work on the fraction matrix.
            from aloop.elemnet.sources import load_source_model

            source = load_source_model(args.elemnet.partition(":")[0])
            runs += [("fractions", "elemnet-ens", ElemNetEnsembleSurrogate(source=source), problem.F_train, problem.F_test),
                     ("fractions", "dkgp", DeepKernelGP(source=source), problem.F_train, problem.F_test)]
        for fname, sname, model, Xtr, Xte in runs:
            r = {"dataset": problem.dataset, "features": fname, "surrogate": sname,
                 **evaluate(model, Xtr, problem.y_train, Xte, problem.y_test)}
            rows.append(r)
            print(f"| {r['dataset']} | {fname} | {sname} | {r['n_train']} | {r['n']} | {r['mae']:.4f} | {r['rmse']:.4f} | "
                  f"{r['nll']:.3f} | {r['coverage_68']:.3f} | {r['coverage_95']:.3f} | {r['miscalibration_area']:.3f} | "
                  f"{r['sharpness']:.4f} | {r['fit_s']:.1f} |", flush=True)
    print(json.dumps({"bench": "surrogates", "seed": args.seed, "quick": args.quick, "results": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
