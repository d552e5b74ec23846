"""Cross-property transfer benchmark: Base, best SC, best single-source TL and MoE on the paper's own splits.

Model and layer selection use a validation part carved from train (10%, seed 0), never test.
Each (task, method) result is cached as JSON under --results, so the table fills in over runs.
``--carve-seed N`` repeats the selection on another carve; its results need a --results directory of their own.

    ALOOP_DATA_DIR=../shared/data python benchmarks/bench_transfer.py --tasks expt
    ALOOP_DATA_DIR=../shared/data python benchmarks/bench_transfer.py --tasks small   # JARVIS ≤ 3,000 rows
    ALOOP_DATA_DIR=../shared/data python benchmarks/bench_transfer.py --tasks large \
        --methods base sc_ml_ef sc_ml_magpie tl_ml_featextr tl_ml_featextr_magpie --layers 2 16 --learners hgb  # 31 larger JARVIS tasks
    ALOOP_DATA_DIR=../shared/data python benchmarks/bench_transfer.py --tasks expt-bandgap --zero-gate  # METHOD+zero-gate results
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from paper_gupta2021 import PAPER  # noqa: E402
from transfer_members import (  # noqa: E402
    mae, blend, mean_of_networks, network_members, network_predictions, score, select_trees, tree_predictions,
    zero_probabilities,
)

from aloop.benchmark.study import write_json_atomic  # noqa: E402
from aloop.chem import to_fraction_matrix  # noqa: E402
from aloop.datasets import get_spec, list_specs, load  # noqa: E402
from aloop.elemnet.moe import MoERegressor  # noqa: E402
from aloop.elemnet.sources import list_sources, model_card, moe_experts, weights_digest  # noqa: E402
from aloop.features import get_featurizer  # noqa: E402
from aloop.features.elemnet import ElemNetFeatures  # noqa: E402

SC = ("sc_ml_ef", "sc_ml_magpie", "sc_dl_ef", "sc_blend_magpie")
TL = ("tl_ml_featextr", "tl_ml_featextr_magpie", "tl_finetune", "tl_modfinetune", "tl_freezing", "tl_blend_magpie",
      "tl_ensemble", "tl_ensemble_blend_magpie")
#: A network and Magpie trees averaged with a weight chosen on validation: TL's network is
#: fine-tuned from the source, SC's trained from scratch, so the pair separates transfer from ensembling.
BLENDS = ("sc_blend_magpie", "tl_blend_magpie", "tl_ensemble_blend_magpie")
#: The mean of ``--ensemble-size`` networks fine-tuned from the source with seeds 0, 1, … (alone or blended).
ENSEMBLES = ("tl_ensemble", "tl_ensemble_blend_magpie")
DL_METHODS = ("sc_dl_ef", "tl_finetune", "tl_modfinetune", "tl_freezing", *BLENDS, *ENSEMBLES)
ALL = ("base", *SC, *TL, "moe", "moe_best_single")
#: The methods ``--zero-gate`` applies to (Base stays the training mean; the MoE columns stay comparable).
GATED = (*SC, *TL)
DEFAULT_SOURCE = "oqmd-formation-enthalpy"


def task_data(name: str, seed: int = 0) -> dict:
    """Fractions, target and the train-fit / train-val / test index split of one registry task."""
    frame = load(name)
    target = next(iter(get_spec(name).targets))
    X, bad = to_fraction_matrix(list(frame["formula"]), errors="collect")
    keep = np.ones(len(frame), bool)
    keep[[b.index for b in bad]] = False
    y = frame[target].to_numpy(float)
    keep &= np.isfinite(y)
    X, y, split = X[keep], y[keep], frame["split"].to_numpy()[keep]
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    return {"X": X, "y": y, **carve(train, seed), "train": train, "test": test,
            "dropped": int((~keep).sum()), "target": target, "carve_seed": seed}


def carve(train: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Split training row indices into ``fit`` and a 10% ``val`` part (model selection, never test)."""
    perm = np.random.default_rng(seed).permutation(train)
    n_val = max(1, int(round(0.1 * len(train))))
    return {"fit": perm[n_val:], "val": perm[:n_val]}


def check_carve(results: Path, tasks: list[str], seed: int) -> None:
    """Refuse a results directory holding results of another carve: a run would mix (and overwrite) them."""
    for task in tasks:
        for path in sorted((results / task).glob("*.json")):
            made = json.loads(path.read_text()).get("carve_seed", 0)
            if made != seed:
                raise ValueError(f"{path} was made on the validation carve with seed {made}, not {seed}; "
                                 f"give each carve its own --results directory")


def run_method(method: str, d: dict, args: argparse.Namespace, cache: dict) -> dict:
    X, y = d["X"], d["y"]
    if method == "base":
        m = y[d["train"]].mean()
        return {"val_mae": mae(np.full(len(d["val"]), y[d["fit"]].mean()), y[d["val"]]),
                "test_mae": mae(np.full(len(d["test"]), m), y[d["test"]]), "config": "training mean"}
    if args.zero_gate and method in GATED:  # the classifier is fitted once per task; score() reads it from d
        if "p_zero" not in cache:
            cache["p_zero"] = zero_probabilities(d)
        d = {**d, "p_zero": cache["p_zero"]}
    if method in ("sc_ml_magpie", "tl_ml_featextr_magpie", *BLENDS) and "magpie" not in cache:
        cache["magpie"] = get_featurizer("magpie").transform_fractions(X)
    if method == "sc_ml_ef":
        return select_trees(X, d, "EF", tuple(args.learners))
    if method == "sc_ml_magpie":
        return select_trees(cache["magpie"], d, "Magpie", tuple(args.learners))
    if method == "tl_ml_featextr":
        best = None
        for layer in args.layers:
            F = ElemNetFeatures(source=args.source, layer=layer).transform_fractions(X)
            r = select_trees(F, d, f"{args.source}:L{layer}", tuple(args.learners))
            best = r if best is None or r["val_mae"] < best["val_mae"] else best
        return best
    if method == "tl_ml_featextr_magpie":
        F = ElemNetFeatures(source=args.source, layer=args.combo_layer).transform_fractions(X)
        return select_trees(np.hstack([F, cache["magpie"]]), d, f"{args.source}:L{args.combo_layer}+Magpie",
                            tuple(args.learners))
    modes = tuple(args.blend_mode)
    if len(set(modes)) < len(modes):
        raise ValueError(f"--blend-mode names a mode twice ({' '.join(modes)}); each mode's networks are averaged once")
    if method in ENSEMBLES and "ensemble" not in cache:  # shared by the two ensemble methods of one run
        cache["members"] = network_members(modes, d, args, range(args.ensemble_size))
        cache["ensemble"] = mean_of_networks(modes, args, [m for *_, m in cache["members"]])
    if method == "tl_ensemble":
        return {**score(d, *cache["ensemble"]), "blend_modes": list(modes),
                "members": [{"mode": mode, "seed": seed, "epochs": e, "val_mae": mae(mv, y[d["val"]]),
                             "test_mae": mae(mt, y[d["test"]])} for mode, seed, (e, mv, mt) in cache["members"]]}
    if method in BLENDS:
        if "magpie_trees" not in cache:
            cache["magpie_trees"] = tree_predictions(cache["magpie"], d, "Magpie", tuple(args.learners))
        network = cache["ensemble"] if method in ENSEMBLES else network_predictions(  # seed 0 of each mode
            "scratch" if method.startswith("sc_") else modes, d, args)
        r = blend(d, network, cache["magpie_trees"])
        return r if method.startswith("sc_") else {**r, "blend_modes": list(modes)}
    if method in DL_METHODS:
        mode = {"sc_dl_ef": "scratch", "tl_finetune": "finetune", "tl_modfinetune": "modfinetune",
                "tl_freezing": "freezing"}[method]
        return score(d, *network_predictions(mode, d, args))
    if method in ("moe", "moe_best_single"):
        # Fitted on the train-fit part (MoERegressor early-stops on its own 10% of it) and
        # selected on the carved validation part like every other method.
        sources = moe_sources()
        groups = [sources] if method == "moe" else [(s,) for s in sources]
        best = None
        for layer in args.moe_layers:
            for group in groups:
                reg = MoERegressor(sources=group, layer=layer)
                reg.fit(X[d["fit"]], y[d["fit"]])
                r = {"val_mae": mae(reg.predict(X[d["val"]]), y[d["val"]]),
                     "test_mae": mae(reg.predict(X[d["test"]]), y[d["test"]]),
                     "config": f"MoE layer {layer} over {', '.join(group)}", "gate_weights": reg.gate_weights_,
                     "guard": reg.guard_}
                best = r if best is None or r["val_mae"] < best["val_mae"] else best
        return best
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(ALL)}")


def moe_sources() -> tuple[str, ...]:
    """The experts of the MoE methods: the sources pre-trained from scratch on OQMD (every JARVIS and
    experimental composition excluded). A chained source (``initialised_from`` another, trained on one
    JARVIS property with only the experimental band-gap sets excluded) would leak other tasks' test rows."""
    return moe_experts(list_sources(), model_card)


def check_unseen(task: str, source: str) -> None:
    """Refuse a source whose pre-training may have seen the task's compositions (the paper removed every
    target composition from the source data, so a test compound is never seen before fine-tuning)."""
    excluded = model_card(source).get("excluded_compositions", {}).get("datasets", [])
    if task not in excluded:
        raise ValueError(f"source {source!r} was not trained with {task!r}'s compositions removed "
                         f"(it excludes {', '.join(excluded) or 'nothing'}); it cannot be benchmarked on that task")


def source_versions(method: str, source: str) -> dict:
    """Which source-model weights a method's result depends on (sha256 per source)."""
    if method.startswith("moe"):
        return {"source_weights": {s: weights_digest(s) for s in moe_sources()}}
    if method.startswith("tl_"):
        return {"source_weights": {source: weights_digest(source)}}
    return {}


def result_key(method: str, source: str, zero_gate: bool = False) -> str:
    """File stem of a cached result: a TL result from a source other than the default ends in ``@source``
    and a gated one (``--zero-gate``) in ``+zero-gate``, so such results sit beside the others and
    compete with them on validation."""
    key = f"{method}@{source}" if method.startswith("tl_") and source != DEFAULT_SOURCE else method
    return f"{key}+zero-gate" if zero_gate and method in GATED else key


def parse_result_key(stem: str) -> tuple[str, str]:
    """``(method, source)`` of a cached result's file stem (the inverse of :func:`result_key`)."""
    method, _, source = stem.removesuffix("+zero-gate").partition("@")
    return method, source or DEFAULT_SOURCE


def network_protocol(args: argparse.Namespace) -> dict:
    """How the networks of a run are early-stopped and averaged (``--refit``, ``--ema-decay``)."""
    return {"refit": bool(args.refit), "ema_decay": args.ema_decay}


def network_recipe(method: str, args: argparse.Namespace) -> dict:
    """What else a network method's result depends on: the training recipe and, for the TL blends and
    ensembles, the modes averaged (``--blend-mode``) and the ensemble size. Recorded with each result;
    a run reuses a cached result only when the recipes agree (results made before the recipe was
    recorded are recomputed, from the cached networks where they exist)."""
    if method not in DL_METHODS:
        return {}
    recipe = {"batch_size": args.batch_size, "lr": args.lr, "patience": args.patience, "max_epochs": args.max_epochs}
    if method.startswith("tl_") and method in (*BLENDS, *ENSEMBLES):
        recipe["blend_modes"] = list(args.blend_mode)
    if method in ENSEMBLES:
        recipe["ensemble_size"] = args.ensemble_size
    return recipe


def provenance(method: str, args: argparse.Namespace) -> dict:
    """What a result records about how it was made: source weights, and for network methods the
    network protocol and recipe (what ``reusable`` checks)."""
    made = source_versions(method, args.source)
    if method in DL_METHODS:
        made.update(network_protocol(args), recipe=network_recipe(method, args))
    return made


def reusable(result: dict, method: str, args: argparse.Namespace) -> bool:
    """A cached result a run may return instead of computing ``method`` again (see ``stale`` and
    ``network_recipe``)."""
    return (not stale(result, method, args.source, network_protocol(args))
            and result.get("recipe", {}) == network_recipe(method, args))


def stale(result: dict, method: str, source: str, protocol: dict | None = None) -> bool:
    """A cached result made with other source weights than the shipped ones, or a network result made
    under another network protocol (see ``network_protocol``): it is recomputed, never mixed in."""
    protocol = protocol or {"refit": False, "ema_decay": None}
    made = {"refit": bool(result.get("refit", False)), "ema_decay": result.get("ema_decay")}
    return (result.get("source_weights", {}) != source_versions(method, source).get("source_weights", {})
            or (method in DL_METHODS and made != protocol))


def task_names(spec: list[str]) -> list[str]:
    out: list[str] = []
    for s in spec:
        if s == "expt":
            out += ["expt-bandgap", "expt-formation-enthalpy"]
        elif s in ("jarvis", "small", "large"):
            out += [x.name for x in list_specs("jarvis")
                    if s == "jarvis" or (x.rows <= 3000) == (s == "small")]
        else:
            get_spec(s)
            out.append(s)
    return list(dict.fromkeys(out))


def summarise(task: str, results: dict) -> dict:
    """Base, the validation-chosen SC and TL results, MoE and the paper's figures of one task. A TL
    blend whose network weight came out 0 holds nothing transferred (it is the Magpie trees, which
    SC:ML(Magpie) already is), so it does not stand for TL."""
    def best(group):
        have = {k: r for k, r in results.items() if parse_result_key(k)[0] in group
                and not (k.startswith("tl_") and r.get("weight") == 0.0)}
        if not have:
            return None
        m = min(have, key=lambda k: have[k]["val_mae"])
        return {"method": m, **have[m]}

    paper = PAPER.get(task)
    return {"task": task, "base": results.get("base", {}).get("test_mae"), "best_sc": best(SC),
            "best_tl": best(TL), "moe": results.get("moe"), "moe_best_single": results.get("moe_best_single"),
            "paper": dict(zip(("base", "sc", "tl"), paper)) if paper else None}


def _whole(minimum: int):
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number ≥ {minimum}, got {text!r}")
        return int(text)
    return parse


def _decay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}")
    return value


def add_method_options(ap: argparse.ArgumentParser) -> None:
    """The options ``run_method`` reads (shared with ``bench_matbench.py``)."""
    ap.add_argument("--source", default=DEFAULT_SOURCE,
                    help="source model of the single-source TL methods (results of other sources are kept beside)")
    ap.add_argument("--layers", nargs="+", type=int, default=[1, 2, 3, 4])
    ap.add_argument("--combo-layer", type=int, default=2)
    ap.add_argument("--learners", nargs="+", default=["et", "rf"], choices=["et", "rf", "hgb"],
                    help="tree learners the ML methods choose from on validation (hgb: for the large tasks)")
    ap.add_argument("--moe-layers", nargs="+", type=int, default=[2, 16],
                    help="expert layers the MoE (and the best single source) choose from on validation")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-epochs", type=int, default=300)
    ap.add_argument("--patience", type=int, default=25)
    ap.add_argument("--blend-mode", nargs="+", default=["modfinetune"], choices=("finetune", "modfinetune"),
                    help="how the networks of tl_blend_magpie and tl_ensemble* are trained from the source; with "
                         "several modes tl_ensemble* average --ensemble-size seeds of each, tl_blend_magpie seed 0 of each")
    ap.add_argument("--ensemble-size", type=_whole(1), default=5, help="networks (seeds 0, 1, …) averaged by tl_ensemble*")
    ap.add_argument("--refit", action="store_true",
                    help="networks early-stop on their own 10%% of the fit part (so validation scores them honestly) "
                         "and are refitted on all of train for the best epoch count, as the trees are")
    ap.add_argument("--ema-decay", type=_decay, default=None,
                    help="networks validate and keep a moving average of their weights (per step, e.g. 0.998)")
    ap.add_argument("--zero-gate", action="store_true",
                    help="for a target with exact zeros (measured band gaps): predict 0 where a Magpie classifier's "
                         "P(y = 0) exceeds a threshold chosen on validation; kept as METHOD+zero-gate beside the ungated result")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["expt"])
    ap.add_argument("--methods", nargs="+", default=list(ALL), choices=ALL)
    add_method_options(ap)
    ap.add_argument("--dl-max-rows", type=int, default=5000, help="run DL methods only on tasks up to this size")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "transfer"))
    ap.add_argument("--carve-seed", type=_whole(0), default=0,
                    help="seed of the 10%% validation part carved from train (a repeat of the selection)")
    ap.add_argument("--rerun", action="store_true", help="ignore cached results")
    ap.add_argument("--cached-only", action="store_true", help="only print the table of cached results")
    args = ap.parse_args()
    t_all = time.time()
    summaries = []
    try:  # every task before any work
        check_carve(Path(args.results), task_names(args.tasks), args.carve_seed)
        if not args.cached_only and any(m.startswith("tl_") for m in args.methods):
            for task in task_names(args.tasks):
                check_unseen(task, args.source)
    except ValueError as exc:
        ap.error(str(exc))
    for task in task_names(args.tasks):
        out_dir = Path(args.results) / task
        out_dir.mkdir(parents=True, exist_ok=True)
        d, cache, results = None, {}, {}
        for method in args.methods:
            key = result_key(method, args.source, args.zero_gate)
            path = out_dir / f"{key}.json"
            if path.exists() and not args.rerun:
                cached = json.loads(path.read_text())
                if (args.cached_only and not stale(cached, method, args.source, network_protocol(args))
                        or reusable(cached, method, args)):
                    results[key] = cached
                    continue
            if args.cached_only:
                continue
            if d is None:
                d = task_data(task, args.carve_seed)
                d["network_cache"] = out_dir / "networks"
            if method in DL_METHODS and len(d["y"]) > args.dl_max_rows:
                continue
            t0 = time.time()
            try:
                r = run_method(method, d, args, cache)
            except ValueError as exc:  # e.g. --zero-gate on a target without zeros; cached results stay
                ap.error(f"{task} {method}: {exc}")
            r.update(seconds=round(time.time() - t0, 1), n_train=len(d["train"]), n_test=len(d["test"]),
                     dropped_rows=d["dropped"], carve_seed=args.carve_seed, **provenance(method, args))
            write_json_atomic(path, r, indent=1)  # runs side by side read each other's files
            results[key] = r
            print(f"{task:32s} {key:24s} val {r['val_mae']:.4f} test {r['test_mae']:.4f} ({r['config']}, {r['seconds']} s)",
                  flush=True)
        for stem in [p.stem for p in out_dir.glob("*.json")]:
            cached = json.loads((out_dir / f"{stem}.json").read_text())
            if not stale(cached, *parse_result_key(stem), network_protocol(args)):
                results.setdefault(stem, cached)
        summaries.append(summarise(task, results))
    print_table(summaries)
    print(json.dumps({"benchmark": "transfer", "source": args.source, "seconds": round(time.time() - t_all, 1),
                      "machine": {"cpus": torch.get_num_threads(), "python": platform.python_version(),
                                  "torch": torch.__version__}, "tasks": summaries}))


def print_table(summaries: list[dict]) -> None:
    f = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
    print("\n| task | Base | best SC (ours) | best TL (ours) | MoE (gate weights) | best single source (val) | paper SC | paper TL | TL<SC | TL<paper TL |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    wins = beats_paper = counted = 0
    for s in summaries:
        sc, tl, moe, p = s["best_sc"], s["best_tl"], s["moe"], s["paper"] or {}
        ours_tl = min([r["test_mae"] for r in (tl,) if r] or [None]) if tl else None
        w = (ours_tl < sc["test_mae"]) if (tl and sc) else None
        b = (ours_tl < p["tl"]) if (tl and p) else None
        if w is not None:
            counted += 1
            wins += w
            beats_paper += bool(b)
        single = s.get("moe_best_single")
        won = single and " (" + single["config"].rsplit(" over ", 1)[1] + ")"
        gates = moe and ", ".join(f"{k.removeprefix('oqmd-')} {v:.2f}" for k, v in moe["gate_weights"].items())
        if moe and single:
            ratios.append(moe["test_mae"] / single["test_mae"])
        print(f"| {s['task']} | {f(s['base'])} | {f(sc and sc['test_mae'])} ({sc and sc['method']}) | "
              f"{f(ours_tl)} ({tl and tl['config']}) | {f(moe and moe['test_mae'])}{f' ({gates})' if moe else ''} | "
              f"{f(single and single['test_mae'])}{won or ''} | "
              f"{f(p.get('sc'))} | {f(p.get('tl'))} | "
              f"{'' if w is None else 'yes' if w else 'no'} | {'' if b is None else 'yes' if b else 'no'} |")
    print(f"\nTL beats SC on {wins}/{counted} tasks with both; TL beats the paper's TL on {beats_paper}/{counted}.")
    if ratios:
        print(f"MoE test MAE / best single source's (chosen on validation), mean over {len(ratios)} tasks: "
              f"{np.mean(ratios):.3f} (≤ 1: no negative transfer); MoE better on {sum(r < 1 for r in ratios)}.")


if __name__ == "__main__":
    main()
