"""Featurization throughput: formula parsing → fractions, Magpie statistics, and the speed-up over matminer.

Run from the project root (the OQMD formation-enthalpy file must be in the data directory)::

    ALOOP_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_featurize.py --n 100000

Measures, on ``--n`` real OQMD formulas (a seeded sample):

- parsing + elemental fractions (``aloop.chem.to_fraction_matrix``, parse cache cleared first);
- parsing + Magpie (``MagpieFeaturizer.transform`` on formula text, cache cleared first);
- Magpie from a precomputed fraction matrix (``transform_fractions``);

and, on the first ``--n-matminer`` of them, matminer's ``ElementProperty.from_preset("magpie")``
(single process) against aloop on the same formulas, both from parsed compositions (matminer
gets pymatgen ``Composition`` objects, aloop the fraction matrix) and end to end from text.
The last printed line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np


CLOCK: Callable[[], float] = time.perf_counter  # set from --clock


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Fastest time of ``repeats`` calls (seconds, on ``CLOCK``) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = CLOCK()
        result = fn()
        best = min(best, CLOCK() - start)
    return best, result


def machine_info() -> dict[str, Any]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python_version": platform.python_version(),
        "torch_version": version("torch"),
        "numpy_version": np.__version__,
        "pymatgen_version": version("pymatgen"),
        "matminer_version": version("matminer"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="OQMD formulas to featurize (default 100000)")
    parser.add_argument("--n-matminer", type=int, default=1_000, help="formulas for the matminer comparison")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the cache-free timings (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall time, or this process's CPU time (steadier on a machine shared with other jobs)",
    )
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time

    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Composition
    from pymatgen.core import composition as pmg_composition

    from aloop.chem import to_composition, to_fraction_matrix
    from aloop.chem.parse import clear_parse_cache
    from aloop.datasets import load
    from aloop.features import MagpieFeaturizer

    all_formulas = load("oqmd-formation-enthalpy")["formula"].astype(str).to_numpy()
    rng = np.random.default_rng(args.seed)
    take = rng.choice(all_formulas.size, size=min(args.n, all_formulas.size), replace=False)
    formulas = all_formulas[take].tolist()
    n = len(formulas)
    print(f"{n:,} OQMD formulas (of {all_formulas.size:,}), seed {args.seed}")

    magpie = MagpieFeaturizer()  # builds the element table once, outside the timings

    def clear_caches() -> None:
        """Forget every parsed formula (aloop's cache and pymatgen's own small one)."""
        clear_parse_cache()
        pmg_cache = getattr(pmg_composition, "_parse_formula_cached", None)
        if pmg_cache is not None:
            pmg_cache.cache_clear()

    def parse_ef() -> np.ndarray:
        clear_caches()
        return to_fraction_matrix(formulas)[0]

    def parse_magpie() -> np.ndarray:
        clear_caches()
        return magpie.transform(formulas)

    t_ef, X = best_time(parse_ef, args.repeats)
    print(f"parse + fractions : {n / t_ef:12,.0f} formulas/s  ({t_ef:.2f} s)")
    t_pm, _ = best_time(parse_magpie, args.repeats)
    print(f"parse + Magpie    : {n / t_pm:12,.0f} formulas/s  ({t_pm:.2f} s)")
    t_mf, Z = best_time(lambda: magpie.transform_fractions(X), args.repeats)
    print(f"Magpie from X     : {n / t_mf:12,.0f} formulas/s  ({t_mf:.3f} s)  → parsing is {t_ef / t_pm:.0%} of parse+Magpie")

    # matminer on the same formulas, single process, on prebuilt pymatgen Compositions
    # (and, end to end, from text through pymatgen's parser as a matminer user would).
    sub = formulas[: args.n_matminer]
    m = len(sub)
    comps = [to_composition(f) for f in sub]
    ep = ElementProperty.from_preset("magpie")
    ep.set_n_jobs(1)
    for c in comps[:50]:  # warm-up: imports, lazy element tables
        ep.featurize(c)
    # The same per-composition call both ways (featurize_many only adds its own overhead).
    t_mm, ref = best_time(lambda: np.asarray([ep.featurize(c) for c in comps], dtype=np.float64), 1)

    def matminer_text() -> None:
        clear_caches()
        for f in sub:
            ep.featurize(Composition(f))

    t_mm_text, _ = best_time(matminer_text, 1)

    X_sub = X[:m]
    t_sub_frac, Z_sub = best_time(lambda: magpie.transform_fractions(X_sub), max(args.repeats, 20))

    def sub_text() -> np.ndarray:
        clear_caches()
        return magpie.transform(sub)

    t_sub_text, _ = best_time(sub_text, args.repeats)
    max_rel = float(np.max(np.abs(Z_sub - ref) / (1e-6 + np.abs(ref))))
    print(f"matminer          : {t_mm / m * 1e3:.3f} ms/composition on Composition objects "
          f"({t_mm_text / m * 1e3:.3f} ms/formula from text)")
    print(f"aloop Magpie      : {t_sub_frac / m * 1e6:.2f} µs/formula from fractions, "
          f"{t_sub_text / m * 1e6:.1f} µs/formula from text (parse cache cleared)")
    print(f"speed-up          : {t_mm / t_sub_frac:,.0f}× on parsed input, {t_mm_text / t_sub_text:,.1f}× end to end from text")
    print(f"parity            : max |aloop − matminer| / (1e-6 + |matminer|) = {max_rel:.2e} over {m} × {ref.shape[1]}")

    result: dict[str, Any] = {
        "n_formulas": n,
        "clock": args.clock,
        "parse_ef_formulas_per_s": round(n / t_ef, 1),
        "parse_us_per_formula": round(t_ef / n * 1e6, 2),
        "magpie_formulas_per_s": round(n / t_pm, 1),
        "magpie_from_fractions_formulas_per_s": round(n / t_mf, 1),
        "parse_share_of_magpie_time": round(t_ef / t_pm, 3),
        "n_matminer": m,
        "matminer_ms_per_composition": round(t_mm / m * 1e3, 4),
        "matminer_from_text_ms_per_formula": round(t_mm_text / m * 1e3, 4),
        "aloop_magpie_from_fractions_us_per_formula": round(t_sub_frac / m * 1e6, 3),
        "aloop_magpie_from_text_us_per_formula": round(t_sub_text / m * 1e6, 3),
        "magpie_speedup_vs_matminer": round(t_mm / t_sub_frac, 1),
        "end_to_end_speedup_vs_matminer": round(t_mm_text / t_sub_text, 1),
        "max_rel_diff_vs_matminer": max_rel,
        "magpie_output_shape": list(Z.shape),
        **machine_info(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
