"""BayBE head-to-head (issue #6): BayBE's own simulation loop on our pool, seeds and initial points.

BENCHMARK-ONLY: BayBE is imported here and never by the ``aloop`` package.

``run_baybe`` builds a purely discrete BayBE search space from the pool's descriptor table
(``SubspaceDiscrete.from_dataframe``: one ``NumericalDiscreteParameter`` per column), a single
numerical target, and a ``Campaign`` with BayBE's DEFAULT recommender, then per seed runs
``baybe.simulation.core.simulate_experiment`` -- the per-rollout loop that
``simulate_scenarios`` calls for each (scenario, seed, initial data) case -- with
``random_seed=seed`` and ``initial_data`` = our initial rows. ``simulate_scenarios`` itself
is not used because it needs the optional ``xyzpy`` package (``baybe[simulation]``), which is
not installed and adds only a parallel-case dispatcher. ``allow_recommending_already_measured``
is set to False: its 0.15 default (AUTO -> True) would let BayBE re-pick the initial points.
A callable lookup maps each query back to its pool row, so ``order`` holds pool-row indices.

Timing CLI (per-recommendation seconds at ~20 and ~100 measurements)::

    ALOOP_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 nice -n 15 \
        .venv/bin/python benchmarks/baybe_replay.py --features raw --batch 1 --budget 110
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np
import pandas as pd

TARGET = "baybe_target"


def _validate(descriptors, y, direction, initial_rows, seeds, batch_size, budget):
    if not isinstance(descriptors, pd.DataFrame):
        raise ValueError("descriptors must be a pandas DataFrame")
    n = len(descriptors)
    if n < 2 or descriptors.shape[1] < 1:
        raise ValueError(f"descriptors must have >= 2 rows and >= 1 column, got shape {descriptors.shape}")
    try:
        X = descriptors.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"descriptors must be numeric: {exc}") from None
    if not np.isfinite(X).all():
        raise ValueError("descriptors contain NaN or infinite values")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},) to match descriptors, got {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinite values")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    if len(seeds) != len(initial_rows) or len(seeds) == 0:
        raise ValueError(f"need one initial_rows array per seed; got {len(initial_rows)} arrays for {len(seeds)} seeds")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    if int(budget) != budget or budget > n:
        raise ValueError(f"budget must be an integer <= pool size {n}, got {budget}")
    keep = np.ptp(X, axis=0) > 0  # constant columns carry no information (and BayBE rejects them)
    if not keep.any():
        raise ValueError("all descriptor columns are constant")
    X = X[:, keep]
    dup = pd.DataFrame(X).duplicated(keep=False).to_numpy()
    if dup.any():
        eg = np.flatnonzero(dup)[:10].tolist()
        raise ValueError(f"descriptor rows must be unique; {dup.sum()} rows are duplicated, e.g. {eg}")
    inits = []
    for s, rows in zip(seeds, initial_rows):
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.size < 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"seed {s}: initial rows must be a non-empty 1-D integer array")
        if rows.min() < 0 or rows.max() >= n or len(np.unique(rows)) != rows.size:
            raise ValueError(f"seed {s}: initial rows must be distinct pool rows in [0, {n})")
        if budget < rows.size:
            raise ValueError(f"seed {s}: budget {budget} < number of initial points {rows.size}")
        inits.append(rows.astype(int))
    return X, y, inits


def _make_campaign(X: np.ndarray, minimize: bool):
    from baybe import Campaign
    from baybe.parameters import NumericalDiscreteParameter
    from baybe.searchspace import SearchSpace, SubspaceDiscrete
    from baybe.targets import NumericalTarget

    names = [f"x{j}" for j in range(X.shape[1])]  # neutral names: no clash with the target
    table = pd.DataFrame(X, columns=names)
    # Let BayBE infer the parameters: passing explicit ones to ``SearchSpace.from_dataframe``
    # triggers an O(unique values^2) Python range check (~2 min for 17 Magpie columns).
    space = SearchSpace(discrete=SubspaceDiscrete.from_dataframe(table))
    if not all(isinstance(p, NumericalDiscreteParameter) for p in space.parameters):
        raise RuntimeError("BayBE did not infer numerical parameters for every descriptor column")
    campaign = Campaign(space, NumericalTarget(TARGET, minimize=minimize), allow_recommending_already_measured=False)
    return campaign, table


def describe_recommender(campaign) -> str:
    """The campaign's recommender as actually configured, read off the objects."""

    def name(o):
        return type(o).__name__

    meta = campaign.recommender
    if not hasattr(meta, "recommender"):
        return name(meta)
    bo = meta.recommender
    sur = getattr(bo, "_surrogate_model", None)
    tmpl = getattr(getattr(sur, "surrogates", None), "template", sur)
    acqf = bo._get_acquisition_function(campaign.objective) if hasattr(bo, "_get_acquisition_function") else None
    gp = f"{name(tmpl)}(kernel_factory={name(getattr(tmpl, 'kernel_factory', None))})"
    return (
        f"{name(meta)}(initial_recommender={name(meta.initial_recommender)}, "
        f"recommender={name(bo)}(surrogate={name(sur)}[{gp}], acquisition_function={name(acqf)}), "
        f"switch_after={meta.switch_after})"
    )


def run_baybe(
    descriptors: pd.DataFrame,
    y: np.ndarray,
    direction: str,
    initial_rows: list[np.ndarray],
    seeds: list[int],
    batch_size: int,
    budget: int,
) -> list[dict]:
    """Replay BayBE's default campaign on a fixed pool, one rollout per seed.

    Returns one dict per seed: ``seed``, ``order`` (pool rows in measurement order, initial rows
    first, ``len == budget``), ``values`` (``y[order]``), ``seconds`` (wall time of the rollout),
    ``step_seconds`` (wall time of each BayBE step: recommend + bookkeeping; the first also
    deep-copies the campaign and ingests the initial data), ``recommender`` and ``warnings``
    (distinct warnings BayBE raised during the rollout; they are captured, not printed).
    A last partial batch is recommended in full and truncated to ``budget``.
    """
    from baybe.simulation.core import simulate_experiment

    X, y, inits = _validate(descriptors, y, direction, initial_rows, seeds, batch_size, budget)
    campaign, table = _make_campaign(X, minimize=direction == "minimize")
    recommender = describe_recommender(campaign)
    row_of = {tuple(r): i for i, r in enumerate(table.to_numpy())}
    names = list(table.columns)
    out = []
    for seed, init in zip(seeds, inits):
        order = list(init)
        stamps = [time.perf_counter()]

        def lookup(queries: pd.DataFrame) -> pd.DataFrame:
            rows = []
            for r in queries[names].to_numpy(dtype=np.float64):
                i = row_of.get(tuple(r))
                if i is None:  # float round trip changed a value: fall back to the nearest row
                    i = int(np.argmin(np.abs(table.to_numpy() - r).sum(axis=1)))
                    if not np.allclose(table.to_numpy()[i], r, rtol=1e-9, atol=1e-12):
                        raise RuntimeError(f"BayBE recommended a point not in the pool: {r}")
                rows.append(i)
            order.extend(rows)
            stamps.append(time.perf_counter())
            return pd.DataFrame({TARGET: y[rows]}, index=queries.index)

        n_iter = math.ceil((budget - len(init)) / batch_size)
        t0 = stamps[0] = time.perf_counter()
        caught: list = []
        if n_iter > 0:  # n_doe_iterations=0 would mean "until the space is exhausted"
            initial = table.iloc[init].assign(**{TARGET: y[init]}).reset_index(drop=True)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")
                res = simulate_experiment(
                    campaign, lookup, batch_size=batch_size, n_doe_iterations=n_iter,
                    initial_data=initial, random_seed=int(seed),
                )
            if len(order) < budget:  # simulate_experiment turns errors into a warning + early stop
                msgs = "; ".join(str(w.message) for w in caught)
                raise RuntimeError(f"seed {seed}: BayBE stopped after {len(order)} of {budget} measurements: {msgs}")
            got = np.concatenate([np.ravel(v) for v in res[f"{TARGET}_Measurements"]])
            if not np.allclose(got, y[order[len(init):]]):
                raise RuntimeError(f"seed {seed}: BayBE's recorded measurements disagree with the pool rows")
        seconds = time.perf_counter() - t0
        order = [int(i) for i in order[:budget]]
        if len(set(order)) != len(order):
            raise RuntimeError(f"seed {seed}: BayBE re-measured a pool row")
        out.append({
            "seed": int(seed), "order": order, "values": [float(v) for v in y[order]], "seconds": seconds,
            "step_seconds": np.diff(stamps).tolist(), "recommender": recommender,
            "warnings": sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught}),
        })
    return out


def plate_descriptors(plate: str, features: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Pool descriptors and target of an OER plate.

    ``raw``: the plate's metal-fraction columns; ``magpie``: Magpie mean + avg_dev statistics,
    non-constant and without near-copies (|r| > 0.999): 20 columns on 3496, 25 on 3851.
    """
    from aloop.datasets import load

    d = load(plate)
    if features == "raw":
        D = d[[c for c in d.columns if c.endswith("_load")]].astype(float)
    elif features == "magpie":
        from aloop.features import get_featurizer

        feat = get_featurizer("magpie", stats=["mean", "avg_dev"])
        D = pd.DataFrame(feat.transform(d["formula"].tolist()).astype(np.float64), columns=feat.feature_names)
        D = D.loc[:, D.std() > 1e-9]
        r = np.abs(np.corrcoef(D.to_numpy().T))  # drop near-copies of an earlier column
        D = D.iloc[:, [j for j in range(len(r)) if not (r[j, :j] > 0.999).any()]]
    else:
        raise ValueError(f"features must be 'raw' or 'magpie', got {features!r}")
    return D.reset_index(drop=True), d["overpotential_V"].to_numpy(dtype=float)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plate", default="oer-plate-3496")
    p.add_argument("--features", default="raw", choices=["raw", "magpie"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--budget", type=int, default=110)
    p.add_argument("--n-init", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    a = p.parse_args(argv)
    D, y = plate_descriptors(a.plate, a.features)
    inits = [np.random.default_rng(s).choice(len(y), a.n_init, replace=False) for s in a.seeds]
    res = run_baybe(D, y, "minimize", inits, a.seeds, a.batch, a.budget)
    for r in res:
        step = np.asarray(r["step_seconds"])
        n_meas = a.n_init + a.batch * np.arange(len(step))  # measurements held when each step started

        def near(k):
            sel = np.abs(n_meas - k) <= max(5, a.batch)
            return float(step[sel].mean()) if sel.any() else None

        print(json.dumps({
            "plate": a.plate, "features": a.features, "d": D.shape[1], "batch": a.batch, "budget": a.budget,
            "seed": r["seed"], "seconds": round(r["seconds"], 1), "n_steps": len(step),
            "step_s_at_20": near(20), "step_s_at_100": near(100), "step_s_last3": float(step[-3:].mean()),
            "best": min(r["values"]), "warnings": r["warnings"],
            "recommender": r["recommender"],
        }))


if __name__ == "__main__":
    main()
