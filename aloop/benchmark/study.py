"""A study: every strategy × seed replayed on one task, fanned out with joblib or Ray, resumable from disk.

Layout of ``out_dir``::

    study.json                      the study's set-up (task, strategies, seeds, sizes)
    runs/<strategy>/seed-<k>.json   one run record per finished run (written atomically)
    work/<strategy>/seed-<k>/       the replayed campaign (definition + SQLite log), joblib/serial only

A run whose record exists is never redone (unless it was made with other ElemNet source
weights than the shipped ones), so an interrupted study resumes where it
stopped; a run interrupted half-way is started again from scratch (its work folder is
replaced). Records are written by the driver as runs finish, whatever the backend.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aloop.benchmark.replay import REPLAY_REFIT_GROWTH, ReplayError, Strategy, Task, run_replay

BACKENDS = ("serial", "joblib", "ray")


@dataclass(frozen=True)
class Study:
    """What to replay: one task, several strategies and seeds, and the campaign sizes."""

    task: Task
    strategies: Sequence[Strategy]
    seeds: Sequence[int]
    n_init: int = 5
    batch_size: int = 1
    budget: int = 100
    refit_growth: float | None = REPLAY_REFIT_GROWTH
    name: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in self.strategies]
        if not names:
            raise ReplayError("a study needs at least one strategy")
        if len(set(names)) != len(names):
            raise ReplayError(f"strategy names must be unique, got {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ReplayError(f"seeds must be a non-empty list without repeats, got {list(self.seeds)}")
        if not self.n_init <= self.budget <= len(self.task):
            raise ReplayError(f"budget must be between n_init ({self.n_init}) and the pool size ({len(self.task)}), "
                              f"got {self.budget}")

    def setup(self) -> dict[str, Any]:
        """The set-up as JSON-able data (a resumed study must match it)."""
        t = self.task
        return {"name": self.name, "task": t.name, "objective": t.objective, "units": t.units,
                "direction": t.direction, "window": list(t.window) if t.window else None, "pool_size": len(t),
                "strategies": [s.name for s in self.strategies], "n_init": self.n_init,
                "batch_size": self.batch_size, "budget": self.budget, "refit_growth": self.refit_growth}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def record_path(out_dir: Path, strategy: str, seed: int) -> Path:
    """Where the record of one run lives."""
    return out_dir / "runs" / _slug(strategy) / f"seed-{seed}.json"


def write_json_atomic(path: Path, data: Any, indent: int | None = None) -> None:
    """Write JSON so that a reader sees the old file or the complete new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, allow_nan=True, indent=indent)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run record of a study folder (sorted by strategy, then seed)."""
    recs = [json.loads(p.read_text()) for p in sorted(Path(out_dir).glob("runs/*/seed-*.json"))]
    return sorted(recs, key=lambda r: (r["strategy"], r["seed"]))


def _check_setup(out_dir: Path, study: Study) -> None:
    path = out_dir / "study.json"
    setup = study.setup()
    if path.exists():
        old = json.loads(path.read_text())
        keys = ("task", "direction", "window", "pool_size", "n_init", "batch_size", "budget", "refit_growth")
        changed = [k for k in keys if old.get(k) != setup.get(k)]
        if changed:
            raise ReplayError(f"{out_dir} holds a study with a different set-up ({', '.join(changed)}); "
                              "use another output folder")
        setup["strategies"] = list(dict.fromkeys([*old.get("strategies", []), *setup["strategies"]]))
    write_json_atomic(path, setup)


def _finished(out: Path, strategy: str, seed: int, versions: dict[str, str | None]) -> bool:
    """The run has a record made with the strategy's current features (ElemNet weights)."""
    path = record_path(out, strategy, seed)
    return path.exists() and json.loads(path.read_text()).get("features_version") == versions[strategy]


def _one(study: Study, strategy: Strategy, seed: int, workdir: str | None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)  # one run per core: the parallelism is across runs
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)  # a run interrupted half-way starts again
    return run_replay(study.task, strategy, seed, n_init=study.n_init, batch_size=study.batch_size, budget=study.budget,
                      workdir=workdir, refit_growth=study.refit_growth, study=study.name)


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
    if n_jobs < 1:
        raise ReplayError(f"n_jobs must be ≥ 1, got {n_jobs}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_setup(out, study)
    versions = {s.name: s.features_version() for s in study.strategies}
    jobs = [(s, seed) for s in study.strategies for seed in study.seeds if not _finished(out, s.name, seed, versions)]

    def workdir(s: Strategy, seed: int) -> str | None:
        return str(out / "work" / _slug(s.name) / f"seed-{seed}") if keep_work and backend != "ray" else None

    if backend == "ray":
        results = _ray_results(study, jobs, ray_address)
    elif backend == "joblib" and n_jobs > 1 and len(jobs) > 1:
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        results = parallel(delayed(_one)(study, s, seed, workdir(s, seed)) for s, seed in jobs)
    else:
        results = (_one(study, s, seed, workdir(s, seed)) for s, seed in jobs)
    for rec in results:
        rec["backend"] = backend
        rec["features_version"] = versions[rec["strategy"]]
        write_json_atomic(record_path(out, rec["strategy"], rec["seed"]), rec)
        if on_record is not None:
            on_record(rec)
    return load_records(out)


def _ray_results(study: Study, jobs: list[tuple[Strategy, int]], address: str | None) -> Iterator[dict[str, Any]]:
    """Yield records as Ray tasks finish (one CPU per task)."""
    try:
        import ray
    except ImportError:
        raise ReplayError("backend 'ray' needs Ray: pip install 'ray>=2.9'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_one)
    study_ref = ray.put(study)  # the pool goes to the object store once, not once per task
    pending = [remote.remote(study_ref, s, seed, None) for s, seed in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def report(out_dir: str | Path, task: Task, *, top_fractions: Sequence[float] = (0.05, 0.01),
           af_targets: Sequence[float] = (0.5,), title: str | None = None) -> dict[str, Path]:
    """Write the results table (CSV, JSON, Markdown) and the plots of every finished run in ``out_dir``."""
    from aloop.benchmark.plots import plot_study
    from aloop.benchmark.summary import curves, summarize, write_tables

    out = Path(out_dir)
    records = load_records(out)
    if not records:
        raise ReplayError(f"{out} holds no finished runs")
    table = summarize(records, task.y, task.direction, task.window, top_fractions, af_targets)
    paths = write_tables(table, out, "results")
    label = f"{task.objective} ({task.units})" if task.units else task.objective
    for frac in top_fractions:
        frame = curves(records, task.y, task.direction, task.window, frac, include_random=True)
        pct = f"{100 * frac:g}"
        plots = plot_study(frame, out / "plots", title or f"{task.name}: top {pct}%", frac,
                           objective_label=label, stem=f"top{pct}")
        paths.update({f"{k}_top{pct}": p for k, p in plots.items()})
    return paths
