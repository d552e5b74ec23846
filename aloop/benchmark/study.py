"""A study: every strategy × seed replayed on one task, fanned out with joblib or Ray, resumable from disk.

Layout of ``out_dir``::

    study.json                      the study's set-up (task, strategies, seeds, sizes)
    runs/<strategy>/seed-<k>.json   one run record per finished run (written atomically)
    work/<strategy>/seed-<k>/       the replayed campaign (definition + SQLite log), joblib/serial only

A run whose record exists is never redone (unless it was made with other ElemNet source
weights than the shipped ones), so an interrupted study resumes where it
stopped; a run interrupted half-way is started again from scratch (its work folder is
replaced). Records are written by the driver as runs finish, whatever the backend.

A folder is only resumed by the same task (objective, direction, window and a digest of the
pool's keys and values) and sizes; a strategy name is only resumed with the same choices
(``Strategy.spec``: options, and with a label everything else), kept in ``study.json`` and in
each record. Folders written before these were stored are accepted and ``study.json`` upgraded.
"""

from __future__ import annotations

import json
import numbers
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aloop.atomic import write_atomically
from aloop.benchmark.replay import (
    REPLAY_REFIT_GROWTH,
    Strategy,
    check_batch_size,
    check_initial_design,
    check_strategy,
    run_replay,
)
from aloop.benchmark.backends import BACKENDS, execute
from aloop.benchmark.task import ReplayError, Task
from aloop.campaigns.modeling import filled_defaults

#: The top fractions :func:`report` scores by default (Top% of the best 5% and 1%).
TOP_FRACTIONS = (0.05, 0.01)
#: ``study.json`` keys a resumed study must match (a key missing from an older file is not compared).
SETUP_KEYS = ("task", "objective", "units", "direction", "window", "pool_size", "pool_digest", "n_init", "batch_size",
              "budget", "refit_growth", "initial_design")


@dataclass(frozen=True)
class Study:
    """What to replay: one task, several strategies and seeds, and the campaign sizes.

    ``seeds`` is a list of distinct whole numbers, or a count ``n`` meaning seeds ``0..n-1``
    (as ``aloop benchmark --seeds N``).
    """

    task: Task
    strategies: Sequence[Strategy | str]  # names such as "ef-gp-ucb" are parsed
    seeds: Sequence[int] | int
    n_init: int = 5
    batch_size: int = 1
    budget: int = 100
    refit_growth: float | None = REPLAY_REFIT_GROWTH
    name: str = ""
    initial_design: str = "random"  # or "diverse" (k-means on each strategy's features, as a live campaign starts)

    def __post_init__(self) -> None:
        if isinstance(self.strategies, str | Strategy):
            raise ReplayError("strategies must be a list, e.g. [Strategy.parse('ef-gp-ucb')] or ['ef-gp-ucb']")
        object.__setattr__(self, "strategies", tuple(Strategy.parse(s) if isinstance(s, str) else s
                                                     for s in self.strategies))
        if bad := [s for s in self.strategies if not isinstance(s, Strategy)]:
            raise ReplayError(f"strategies must be Strategy objects or names such as 'ef-gp-ucb', got {bad[0]!r}")
        names = [s.name for s in self.strategies]
        if not names:
            raise ReplayError("a study needs at least one strategy")
        if len(set(names)) != len(names):
            raise ReplayError(f"strategy names must be unique, got {names}")
        folders = [_slug(n) for n in names]  # each strategy's runs live in runs/<folder>/
        if clash := sorted({n for n, f in zip(names, folders, strict=True) if folders.count(f) > 1}):
            raise ReplayError(f"strategy names {clash} share the folder name {_slug(clash[0])!r} (characters other "
                              "than letters, digits, '_', '.' and '-' become '_'): give them labels that differ there")
        seeds = _seeds(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ReplayError(f"seeds must be a non-empty list without repeats, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        for key in ("n_init", "batch_size", "budget"):
            object.__setattr__(self, key, _whole(key, getattr(self, key), 1))
        if not self.n_init <= self.budget <= len(self.task):
            raise ReplayError(f"budget must be between n_init ({self.n_init}) and the pool size ({len(self.task)}), "
                              f"got {self.budget}")
        check_batch_size(self.n_init, self.batch_size, self.budget)
        check_initial_design(self.initial_design)

    def setup(self) -> dict[str, Any]:
        """The set-up as JSON-able data (a resumed study must match it)."""
        t = self.task
        return {"name": self.name, "task": t.name, "objective": t.objective, "units": t.units,
                "direction": t.direction, "window": list(t.window) if t.window else None, "pool_size": len(t),
                "pool_digest": t.digest(), "strategies": [s.name for s in self.strategies],
                "strategy_specs": {s.name: s.spec() for s in self.strategies}, "n_init": self.n_init,
                "batch_size": self.batch_size, "budget": self.budget, "refit_growth": self.refit_growth,
                "initial_design": self.initial_design}


def _seeds(value: Any) -> tuple[int, ...]:
    """Study seeds from a count ``n`` (seeds ``0..n-1``) or an iterable of whole numbers ≥ 0."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return tuple(range(_whole("the number of seeds", value, 1)))
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ReplayError(f"seeds must be a count n (seeds 0..n-1) or a list of whole numbers, got {value!r}")
    return tuple(_whole("each seed", k, 0) for k in value)


def _whole(what: str, value: Any, minimum: int) -> int:
    """``value`` as a plain ``int`` (numpy integers too) of at least ``minimum``, else a ``ReplayError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ReplayError(f"{what} must be a whole number, got {value!r}")
    if value < minimum:
        raise ReplayError(f"{what} must be ≥ {minimum}, got {int(value)}")
    return int(value)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def record_path(out_dir: Path, strategy: str, seed: int) -> Path:
    """Where the record of one run lives."""
    return out_dir / "runs" / _slug(strategy) / f"seed-{seed}.json"


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON so that a reader sees the old file or the complete new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(data, allow_nan=True, indent=indent).encode())


def load_records(out_dir: str | Path, strategies: Sequence[str] | None = None,
                 seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The finished run records of a study folder (sorted by strategy, then seed): all, or those of
    the given strategy names and seeds."""
    recs = [read_record(p) for p in sorted(Path(out_dir).glob("runs/*/seed-*.json"))]
    recs = [r for r in recs if (strategies is None or r["strategy"] in strategies)
            and (seeds is None or r["seed"] in seeds)]
    return sorted(recs, key=lambda r: (r["strategy"], r["seed"]))


def read_record(path: Path) -> dict[str, Any]:
    """One run record; ``ReplayError`` naming the file when it is not one (records are written atomically, so
    only a file put there by hand or a damaged disk gets this)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"{path} is not a readable run record ({exc}); move it away (the run is then redone)") from None
    if not isinstance(record, dict):
        raise ReplayError(f"{path} is not a run record (a JSON object); move it away (the run is then redone)")
    return record


def _merged_setup(out: Path, study: Study) -> dict[str, Any]:
    """The set-up ``study.json`` gets: the study's own, merged with the folder's (``ReplayError`` if they differ).

    A folder without finished runs (a study interrupted before its first run ended) binds nothing: its
    ``study.json`` is replaced, so a set-up typed wrongly can be corrected.
    """
    path = out / "study.json"
    setup = study.setup()
    if not path.exists() or not any(out.glob("runs/*/seed-*.json")):
        return setup
    old = {"initial_design": "random"} | json.loads(path.read_text())  # the only design before it was stored
    changed = [_difference(k, old[k], setup[k]) for k in SETUP_KEYS if k in old and old[k] != setup[k]]
    if changed:
        raise ReplayError(f"{out} holds a study with a different set-up: {'; '.join(changed)}; "
                          "use another output folder")
    specs = old.get("strategy_specs", {})
    for s in study.strategies:
        paths = sorted((out / "runs" / _slug(s.name)).glob("seed-*.json"))
        if not paths:  # no runs of it here (new, or moved away to be redone): nothing binds its choices
            continue
        current = setup["strategy_specs"][s.name]
        seen = specs.get(s.name) or next((r["spec"] for r in map(read_record, paths) if "spec" in r), None)
        if seen is None:  # runs from before specs were stored: its choices, with the campaign defaults of then
            seen = {k: v for k, v in current.items() if k != "campaign_defaults"}
        seen = _with_unstored_defaults(seen)
        if seen != current:
            diff = "; ".join(_difference(k, seen.get(k), v) for k, v in current.items() if seen.get(k) != v)
            raise ReplayError(f"{out} holds runs of strategy {s.name!r} made with other choices ({diff}); "
                              "give the strategy another label or use another output folder")
    setup["strategies"] = list(dict.fromkeys([*old.get("strategies", []), *setup["strategies"]]))
    setup["strategy_specs"] = specs | setup["strategy_specs"]
    return setup


#: The campaign's surrogate defaults while specs did not store them (until session 27): the GP's fit rows only.
_UNSTORED_DEFAULTS: dict[str, dict[str, Any]] = {"gp": {"max_fit_rows": 400}, "gp_forest": {"gp": {"max_fit_rows": 400}}}


def _with_unstored_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored strategy spec with the campaign defaults its runs were made with, if it predates storing them."""
    if "campaign_defaults" in spec or spec.get("acquisition") == "random":
        return spec
    filled = filled_defaults(spec.get("surrogate", ""), spec.get("surrogate_options") or {}, _UNSTORED_DEFAULTS)
    return {**spec, "campaign_defaults": filled} if filled else spec


def _difference(key: str, there: Any, here: Any, here_is: str = "in this study") -> str:
    if key == "pool_digest":
        return "pool (its compositions or their values differ)"
    return f"{key} {there!r} there, {here!r} {here_is}"


def pending_runs(study: Study, out_dir: str | Path) -> list[tuple[Strategy, int]]:
    """The (strategy, seed) runs of ``study`` that ``out_dir`` lacks; writes nothing.

    ``ReplayError`` if the folder holds a study of another set-up. A record made with other
    ElemNet source weights than the strategy's current ones does not count as finished.
    """
    out = Path(out_dir)
    _merged_setup(out, study)
    todo = []
    for s in study.strategies:
        version = s.features_version()
        for seed in study.seeds:
            path = record_path(out, s.name, seed)
            if not (path.exists() and read_record(path).get("features_version") == version):
                todo.append((s, seed))
    return todo


#: Packages whose versions each run record keeps: the code behind its figures.
SOFTWARE = ("aloop", "torch", "botorch", "gpytorch", "scikit-learn", "scipy", "numpy", "pandas", "matminer", "pymatgen")


def software_versions() -> dict[str, str]:
    """Python's and :data:`SOFTWARE`'s versions in this process."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _one(study: Study, strategy: Strategy, seed: int, workdir: str | None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one run per core: the parallelism is across runs
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)  # a run interrupted half-way starts again
    return run_replay(study.task, strategy, seed, n_init=study.n_init, batch_size=study.batch_size, budget=study.budget,
                      workdir=workdir, refit_growth=study.refit_growth, study=study.name,
                      initial_design=study.initial_design)


def run_study(study: Study, out_dir: str | Path, *, backend: str = "joblib", n_jobs: int = 2,
              ray_address: str | None = None, keep_work: bool = True,
              on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every missing (strategy, seed) of ``study`` and return all records of ``out_dir``.

    Args:
        backend: ``"serial"``, ``"joblib"`` (``n_jobs`` processes on this machine) or ``"ray"``
            (tasks of one CPU each on the Ray cluster at ``ray_address``; a local Ray
            instance is started when none is given and none is running).
        keep_work: keep each replayed campaign's definition and log under ``work/``
            (joblib/serial; Ray workers may not share this file system, so they use a
            temporary folder).
        on_record: called with each new record as it is written (progress reporting).
    """
    if backend not in BACKENDS:
        raise ReplayError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ReplayError(f"n_jobs must be a whole number ≥ 1, got {n_jobs!r}")
    for s in study.strategies:
        check_strategy(study.task, s, n_init=study.n_init, batch_size=study.batch_size,
                       refit_growth=study.refit_growth)
    out = Path(out_dir)
    jobs = pending_runs(study, out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "study.json", _merged_setup(out, study))
    versions = {s.name: s.features_version() for s in study.strategies}
    software = software_versions()

    def workdir(s: Strategy, seed: int) -> str | None:
        return str(out / "work" / _slug(s.name) / f"seed-{seed}") if keep_work and backend != "ray" else None

    results = execute(_one, study, jobs, backend=backend, n_jobs=n_jobs, ray_address=ray_address, workdir=workdir)
    for rec in results:
        rec["backend"] = backend
        rec["features_version"] = versions[rec["strategy"]]
        rec["software"] = software
        write_json_atomic(record_path(out, rec["strategy"], rec["seed"]), rec)
        if on_record is not None:
            on_record(rec)
    return load_records(out)


def report(out_dir: str | Path, task: Task, *, top_fractions: Sequence[float] = TOP_FRACTIONS,
           af_targets: Sequence[float] = (0.5,), title: str | None = None, strategies: Sequence[str] | None = None,
           seeds: Sequence[int] | None = None) -> dict[str, Path]:
    """Write the results table (CSV, JSON, Markdown), the plots and the curves behind them (``curves_top5.csv``…:
    :func:`aloop.benchmark.summary.curve_table`) of the finished runs in ``out_dir``: all of them, or those of the
    given strategy names and seeds.

    ``task`` must be the study's (objective, direction, window and pool as in ``study.json``):
    the metrics are computed from its values and direction, so another task is refused
    (``ReplayError``) before anything is written.
    """
    from aloop.benchmark.plots import plot_study
    from aloop.benchmark.summary import COLUMN_LEGEND, curve_table, curves, summarize, write_tables

    out = Path(out_dir)
    _check_report_task(out, task)
    records = load_records(out, strategies, seeds)
    if not records:
        raise ReplayError(f"{out} holds no finished runs" + ("" if strategies is None and seeds is None
                                                              else " of these strategies and seeds"))
    try:
        table = summarize(records, task.y, task.direction, task.window, top_fractions, af_targets)
    except ValueError as exc:  # a record that is not of this study's runs (copied in by hand)
        raise ReplayError(f"{out}: {exc}; a run record there is not from this study: move it away") from None
    made_with = {json.dumps(r.get("software"), sort_keys=True) for r in records}
    if len(made_with) > 1:
        kinds = "; ".join(sorted(_software_text(json.loads(m)) for m in made_with))
        warnings.warn(f"{out}: the runs in this table were made with different software ({kinds}); rerun the "
                      "older ones into a new folder for figures from one version", stacklevel=2)
    paths = write_tables(table, out, "results", COLUMN_LEGEND)
    label = f"{task.objective} ({task.units})" if task.units else task.objective
    # A window's "top k%" is every in-window composition whatever k, so it gets one set of plots.
    fractions = top_fractions[:1] if task.window else top_fractions
    for i, frac in enumerate(fractions):
        frame = curves(records, task.y, task.direction, task.window, frac, include_random=True)
        stem = "window" if task.window else f"top{100 * frac:g}"
        paths[f"curves_{stem}"] = out / f"curves_{stem}.csv"
        curve_table(frame).to_csv(paths[f"curves_{stem}"], index=False, float_format="%.6g")
        plots = plot_study(frame, out / "plots", title or task.name, frac, objective_label=label, stem=stem,
                           set_name="in-window" if task.window else None, regret=i == 0)
        paths.update({k if k == "regret" else f"{k}_{stem}": p for k, p in plots.items()})
    return paths


def _software_text(software: dict[str, str] | None) -> str:
    if not software:
        return "not recorded (runs from before versions were kept)"
    return ", ".join(f"{k} {v}" for k, v in software.items())


#: ``study.json`` keys the task given to :func:`report` must match: the records' metrics come from the task.
REPORT_KEYS = ("objective", "direction", "window", "pool_size", "pool_digest")


def _check_report_task(out: Path, task: Task) -> None:
    """Refuse (``ReplayError``) a task other than the one the study in ``out`` was run with."""
    path = out / "study.json"
    if not path.exists():
        return
    old = json.loads(path.read_text())
    here = {"objective": task.objective, "direction": task.direction,
            "window": list(task.window) if task.window else None, "pool_size": len(task), "pool_digest": task.digest()}
    changed = [_difference(k, old[k], here[k], "in the task given")
               for k in REPORT_KEYS if k in old and old[k] != here[k]]
    if changed:
        raise ReplayError(f"{out} holds a study of another task: {'; '.join(changed)}; report it with the task "
                          "it was run with (nothing was written)")
