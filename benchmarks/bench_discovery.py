"""Retrospective discovery benchmark: replay strategies on fully measured datasets (issue #6's figures).

Each study is an ``aloop.benchmark`` study (the same engine as ``aloop benchmark``): runs are
cached as JSON records under benchmarks/results/discovery/<study>/runs/, so a rerun only
does what is missing and an interrupted run resumes. ``--baybe`` adds BayBE's default
recommender on the same pool, seeds, initial points, batch size and descriptors (the raw
metal fractions, which equal the elemental-fraction features of these metal-only formulas).

    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_discovery.py --study oer-plate-3496-q1
    ALOOP_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_discovery.py --study all --baybe

Prints one JSON line per study (wall time, key figures) and writes results.{csv,json,md} and
plots/ in each study folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from aloop.benchmark import Strategy, Task
from aloop.benchmark.replay import REPLAY_REFIT_GROWTH
from aloop.benchmark.study import Study, load_records, report, run_study, write_json_atomic
from aloop.benchmark.summary import af_interval_text

RESULTS = Path(__file__).parent / "results" / "discovery"
DEFAULT = ("elemnet-gp-log_ei", "magpie-gp-log_ei", "ef-gp-log_ei", "random")


def _oer(plate: str, q: int) -> dict:
    return {"task": lambda: Task.from_dataset(f"oer-plate-{plate}", direction="minimize"), "strategies": DEFAULT,
            "seeds": 20, "n_init": 5, "batch_size": q, "budget": 200, "baybe": True}


STUDIES = {
    "oer-plate-3496-q1": _oer("3496", 1),
    "oer-plate-3496-q8": _oer("3496", 8),
    "oer-plate-3851-q1": _oer("3851", 1),
    "oer-plate-3851-q8": _oer("3851", 8),
    # The same replay with the GP's hyperparameters refitted from scratch every round (as BayBE does)
    # instead of at every 25% growth of the data.
    "oer-plate-3496-q1-refit-every-round": {**_oer("3496", 1), "strategies": ("ef-gp-log_ei",), "baybe": False,
                                            "refit_growth": None},
    # BayBE's GP choices on our GP: the light-tailed Gamma lengthscale prior, then also the inputs
    # normalised to the pool's box (the search space) instead of the measured rows'.
    "oer-plate-3496-q1-gamma": {**_oer("3496", 1), "strategies": ("ef-gp-log_ei", "elemnet-gp-log_ei"),
                                "baybe": False, "surrogate_options": {"lengthscale_prior": "gamma"}},
    "oer-plate-3496-q1-gamma-poolbox": {**_oer("3496", 1), "strategies": ("ef-gp-log_ei", "elemnet-gp-log_ei"),
                                        "baybe": False,
                                        "surrogate_options": {"lengthscale_prior": "gamma", "input_bounds": "pool"}},
    # Upper confidence bound (β = 4, the default) instead of log-EI, on both plates.
    **{f"oer-plate-{plate}-q{q}-ucb": {**_oer(plate, q), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"), "baybe": False,
                                       "acquisition_options": {"beta": 4.0}}
       for plate in ("3496", "3851") for q in (1, 8)},
    # UCB's exploration weight: β = 1 and β = 0.25 (σ weights 1 and 0.5) beside β = 4.
    **{f"oer-plate-{plate}-q1-ucb-beta{b:g}": {**_oer(plate, 1), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                              "baybe": False, "acquisition_options": {"beta": b},
                                              "label_suffix": f"-beta{b:g}"}
       for plate in ("3496", "3851") for b in (1.0, 0.25)},
    # β = 9 (σ weight 3) on the campaign GP since session 27 (session 29): two of 20 plate-3851 seeds spend picks
    # 5–100 in a Co–Fe basin with no Ni, where the top 5% is Ni-rich; a larger weight on σ pays more for leaving it.
    # β = 6.25 (σ weight 2.5) in between.
    **{f"oer-plate-{plate}-q1-ucb-beta{b:g}": {**_oer(plate, 1), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                              "baybe": False, "acquisition_options": {"beta": b},
                                              "label_suffix": f"-beta{b:g}"}
       for plate in ("3496", "3851") for b in (9.0, 6.25)},
    # The default strategies started as a live campaign starts by default: a diverse (k-means) initial design on each
    # strategy's features instead of 5 random rows (session 29: random starts that miss plate 3851's Ni-rich region trap
    # two of 20 runs).
    **{f"oer-plate-{plate}-q1-ucb-diverse": {**_oer(plate, 1), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                            "baybe": False, "initial_design": "diverse", "label_suffix": "-diverse"}
       for plate in ("3496", "3851")},
    # β = 6.25 at batch 8, and on the MP power factor (session 29: would it do as the default?).
    **{f"oer-plate-{plate}-q8-ucb-beta6.25": {**_oer(plate, 8), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                             "baybe": False, "acquisition_options": {"beta": 6.25},
                                             "label_suffix": "-beta6.25"}
       for plate in ("3496", "3851")},
    # Batch 8 with β = 1.
    **{f"oer-plate-{plate}-q8-ucb-beta1": {**_oer(plate, 8), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                          "baybe": False, "acquisition_options": {"beta": 1.0},
                                          "label_suffix": "-beta1"}
       for plate in ("3496", "3851")},
    # The default UCB studies with the GP's inputs normalised to the pool's box (the search space, as BoTorch
    # recommends) instead of the measured rows': the lengthscale prior then means the same from the first fit on.
    **{f"oer-plate-{plate}-q1-ucb-poolbox": {**_oer(plate, 1), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                            "baybe": False, "surrogate_options": {"input_bounds": "pool"},
                                            "label_suffix": "-poolbox"}
       for plate in ("3496", "3851")},
    # The pool box and a tight lengthscale prior: LogNormal with log-sd 0.15 at BoTorch's mode (half the box's
    # side for 6 inputs), so that few, biased rows cannot send the lengthscales far from it (session 26). Since
    # session 27 this is the campaign default, so these studies equal the default ones; they stay as session 26's record.
    **{f"oer-plate-{plate}-q{q}-ucb-tight": {**_oer(plate, q), "strategies": ("elemnet-gp-ucb", "ef-gp-ucb"),
                                             "baybe": False,
                                             "surrogate_options": {"input_bounds": "pool", "lengthscale_sd": 0.15},
                                             "label_suffix": "-tight"}
       for plate in ("3496", "3851") for q in (1, 8)},
    # Thompson sampling (one joint posterior draw per pick) instead of UCB.
    **{f"oer-plate-{plate}-q1-thompson": {**_oer(plate, 1), "strategies": ("elemnet-gp-thompson", "ef-gp-thompson"),
                                          "baybe": False}
       for plate in ("3496", "3851")},
    # A random forest (200 trees; the spread across trees, calibrated, as uncertainty) with UCB instead of
    # the GP: Liang et al. 2021 found random forests as robust as ARD GPs across five datasets.
    **{f"oer-plate-{plate}-q1-trees": {**_oer(plate, 1), "strategies": ("ef-ensemble-ucb", "elemnet-ensemble-ucb"),
                                       "baybe": False}
       for plate in ("3496", "3851")},
    # The GP and the forest averaged (an equal-weight mixture of their posteriors, moment-matched), UCB:
    # the GP led on plate 3496, the forest on 3851.
    **{f"oer-plate-{plate}-q{q}-gp-forest": {**_oer(plate, q), "strategies": ("ef-gp_forest-ucb", "elemnet-gp_forest-ucb"),
                                            "baybe": False}
       for plate in ("3496", "3851") for q in (1, 8)},
    # The same mixture with its GP part on the campaign GP's pool box and tight lengthscale prior (session 28;
    # the campaign gives gp_forest's GP only the fit-row cap).
    **{f"oer-plate-{plate}-q1-gp-forest-tight": {**_oer(plate, 1), "strategies": ("ef-gp_forest-ucb",), "baybe": False,
                                                 "surrogate_options": {"gp": {"input_bounds": "pool",
                                                                              "lengthscale_sd": 0.15}},
                                                 "label_suffix": "-tight"}
       for plate in ("3496", "3851")},
    # Experimental band gaps: find absorber-like gaps inside 1.1–1.7 eV.
    "bandgap-window-q1": {"task": lambda: Task.from_dataset("expt-bandgap", direction="window", window=(1.1, 1.7)),
                          "strategies": ("elemnet-gp-window", "magpie-gp-window", "ef-gp-window", "random"),
                          "seeds": 10, "n_init": 5, "batch_size": 1, "budget": 100, "baybe": False},
    # The same with ElemNet features from the chained source trained on JARVIS MBJ band gaps (every
    # experimental band-gap composition excluded from its training), at layer 2 (the campaign default)
    # and layer 16 (the last hidden layer, closest to its band-gap output).
    "bandgap-window-q1-mbj": {"task": lambda: Task.from_dataset("expt-bandgap", direction="window", window=(1.1, 1.7)),
                              "strategies": ("elemnet/2-gp-window", "elemnet/16-gp-window"), "seeds": 10, "n_init": 5,
                              "batch_size": 1, "budget": 100, "baybe": False, "source": "jarvis-mbj-bandgap",
                              "label_suffix": "@jarvis-mbj-bandgap"},
    # Materials Project transport: maximise the p-type power factor (34,627 compositions), modelled
    # as log10(PF) like the demo: it spans five decades.
    "mp-transport-pf-q1": {"task": lambda: Task.from_dataset("mp-transport", "PF_p", direction="maximize"),
                           "strategies": DEFAULT, "seeds": 10, "n_init": 5, "batch_size": 1, "budget": 100,
                           "baybe": False, "surrogate_options": {"transform": "log10"}},
    # The session-26 tight lengthscale prior (see the OER "-tight" studies) on the other two tasks, GP strategies only
    # (the campaign default since session 27).
    "bandgap-window-q1-tight": {"task": lambda: Task.from_dataset("expt-bandgap", direction="window", window=(1.1, 1.7)),
                                "strategies": ("elemnet-gp-window", "magpie-gp-window", "ef-gp-window"), "seeds": 10,
                                "n_init": 5, "batch_size": 1, "budget": 100, "baybe": False,
                                "surrogate_options": {"input_bounds": "pool", "lengthscale_sd": 0.15},
                                "label_suffix": "-tight"},
    "mp-transport-pf-q1-ucb-tight": {"task": lambda: Task.from_dataset("mp-transport", "PF_p", direction="maximize"),
                                     "strategies": ("elemnet-gp-ucb", "magpie-gp-ucb", "ef-gp-ucb"), "seeds": 10,
                                     "n_init": 5, "batch_size": 1, "budget": 100, "baybe": False,
                                     "surrogate_options": {"transform": "log10", "input_bounds": "pool",
                                                           "lengthscale_sd": 0.15},
                                     "label_suffix": "-tight"},
    "mp-transport-pf-q1-ucb-beta6.25": {"task": lambda: Task.from_dataset("mp-transport", "PF_p", direction="maximize"),
                                        "strategies": ("elemnet-gp-ucb", "magpie-gp-ucb", "ef-gp-ucb"), "seeds": 10,
                                        "n_init": 5, "batch_size": 1, "budget": 100, "baybe": False,
                                        "surrogate_options": {"transform": "log10"},
                                        "acquisition_options": {"beta": 6.25}, "label_suffix": "-beta6.25"},
    "mp-transport-pf-q1-ucb": {"task": lambda: Task.from_dataset("mp-transport", "PF_p", direction="maximize"),
                               "strategies": ("elemnet-gp-ucb", "magpie-gp-ucb", "ef-gp-ucb", "random"), "seeds": 10,
                               "n_init": 5, "batch_size": 1, "budget": 100, "baybe": False,
                               "surrogate_options": {"transform": "log10"}},
}


def _baybe_record(task: Task, study: Study, name: str, descriptors, init, seed: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from baybe_replay import run_baybe

    torch.set_num_threads(1)
    rec = run_baybe(descriptors, task.y, task.direction, [init], [seed], study.batch_size, study.budget)[0]
    return {"study": name, "task": task.name, "strategy": "baybe-default", "seed": seed,
            "batch_size": study.batch_size, "n_init": study.n_init, "budget": study.budget, "pool_size": len(task),
            "order": [int(i) for i in rec["order"]],
            "batch": [0] * study.n_init + [1 + i // study.batch_size for i in range(study.budget - study.n_init)],
            "values": [float(v) for v in rec["values"]], "fits": [], "seconds": rec["seconds"],
            "backend": "baybe", "recommender": rec["recommender"], "descriptors": list(descriptors.columns)}


def run_baybe_study(task: Task, study: Study, out: Path, n_jobs: int, seeds: list[int]) -> None:
    """BayBE's default recommender on the raw fractions, same seeds and initial points; records as ours."""
    from joblib import Parallel, delayed

    ours = {r["seed"]: r for r in load_records(out) if r["strategy"] == study.strategies[0].name}
    todo = [s for s in seeds if s in ours and not (out / "runs" / "baybe-default" / f"seed-{s}.json").exists()]
    descriptors = task.extra.loc[:, task.extra.std() > 0]
    jobs = (delayed(_baybe_record)(task, study, out.name, descriptors, np.asarray(ours[s]["order"][: study.n_init]), s)
            for s in todo)
    for rec in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        write_json_atomic(out / "runs" / "baybe-default" / f"seed-{rec['seed']}.json", rec)


#: (results column, heading) of the compact table ``--table`` prints for BENCHMARKS.md.
TABLE = (("strategy", "strategy"), ("seeds", "seeds"), ("top5_final_mean", "top-5% found @budget"),
         ("top5_final_ef", "EF @budget"),
         ("top5_t50_n_med", "n to 50% of top-5% (median)"), ("top5_t50_af", "AF(0.5) top-5%"),
         ("top5_t50_af_ci", "90% CI (seeds)"),
         ("top1_final_mean", "top-1% found @budget"), ("top1_final_ef", "EF top-1% @budget"),
         ("top1_t50_af", "AF(0.5) top-1%"),
         ("any_alm_med", "anyALM (median)"), ("de_alm_mean", "deALM"), ("regret_final_mean", "regret @budget"),
         ("mae_last", "pool MAE"), ("cov95_last", "pool 95% cov."), ("seconds_mean", "s/run"))


def markdown_table(name: str) -> str:
    """The compact Markdown table of one finished study (from its results.json)."""
    rows = json.loads((RESULTS / name / "results.json").read_text())
    lines = ["| " + " | ".join(h for _, h in TABLE) + " |", "|" + "---|" * len(TABLE)]
    for r in rows:
        cells = []
        for key, _ in TABLE:
            if key.endswith("_af_ci"):
                cells.append(af_interval_text(r, key[:-3]) or "–")
                continue
            v = r.get(key)
            cells.append("–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="all", help=f"one of {', '.join(STUDIES)} or 'all'")
    ap.add_argument("--seeds", type=int, default=None, help="override the study's number of seeds")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--backend", default="joblib", choices=("serial", "joblib", "ray"))
    ap.add_argument("--baybe", action="store_true", help="also run BayBE's default recommender (OER plates)")
    ap.add_argument("--baybe-only", action="store_true", help="skip aloop's runs (e.g. while another process does them)")
    ap.add_argument("--table", action="store_true", help="only print the Markdown tables of finished studies")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the tables and plots of finished studies from their run records; run nothing")
    ap.add_argument("--only", nargs="+", default=None, metavar="STRATEGY",
                    help="run only these of the study's strategies (the table still reports every run record)")
    ap.add_argument("--baybe-seeds", type=int, default=None, help="BayBE seeds (default: the study's)")
    args = ap.parse_args()
    names = list(STUDIES) if args.study == "all" else [args.study]
    if args.table:
        for name in names:
            if (RESULTS / name / "results.json").exists():
                print(f"\n{name}\n\n{markdown_table(name)}")
        return
    if args.report_only:
        for name in names:
            if (RESULTS / name / "results.json").exists():
                report(RESULTS / name, STUDIES[name]["task"]())
                print(f"{name}: tables and plots rewritten from {len(load_records(RESULTS / name))} run records")
        return
    for name in names:
        spec = STUDIES[name]
        task = spec["task"]()
        seeds = list(range(args.seeds or spec["seeds"]))
        options, acq_options = spec.get("surrogate_options", {}), spec.get("acquisition_options", {})
        unknown = sorted(set(args.only or ()) - set(spec["strategies"]))
        if unknown:
            ap.error(f"--only {' '.join(unknown)}: not a strategy of {name} ({', '.join(spec['strategies'])})")
        strategies = [replace(Strategy.parse(s), surrogate_options=options, acquisition_options=acq_options,
                              label=s + spec["label_suffix"] if "label_suffix" in spec else None,
                              source=spec.get("source") if s.startswith("elemnet") else None)
                      for s in spec["strategies"] if args.only is None or s in args.only]
        study = Study(task, strategies, seeds, spec["n_init"], spec["batch_size"], spec["budget"],
                      spec.get("refit_growth", REPLAY_REFIT_GROWTH), name=name,
                      initial_design=spec.get("initial_design", "random"))
        out = RESULTS / name
        start = time.perf_counter()
        records = load_records(out) if args.baybe_only else run_study(study, out, backend=args.backend, n_jobs=args.jobs)
        ours_seconds = time.perf_counter() - start
        baybe_seconds = 0.0
        if (args.baybe or args.baybe_only) and spec["baybe"]:
            start = time.perf_counter()
            run_baybe_study(task, study, out, args.jobs, seeds[: args.baybe_seeds or len(seeds)])
            baybe_seconds = time.perf_counter() - start
        paths = report(out, task)
        table = json.loads(paths["json"].read_text())
        print(json.dumps({"benchmark": "discovery", "study": name, "pool": len(task), "runs": len(records),
                          "wall_seconds_new_runs": round(ours_seconds, 1), "baybe_wall_seconds": round(baybe_seconds, 1),
                          "summary": {r["strategy"]: {k: r.get(k) for k in ("top5_t50_af", "top5_t50_n_med",
                                      "top1_t50_af", "top5_final_mean", "any_alm_med")} for r in table}}))


if __name__ == "__main__":
    main()
