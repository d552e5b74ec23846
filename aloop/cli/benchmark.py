"""`aloop benchmark`: replay strategies against a fully measured dataset and write the results table and plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from aloop.benchmark.backends import Backend
from aloop.benchmark.metrics import Direction
from aloop.cli._output import bad_rows_text, err, fail, out, warn

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from aloop.benchmark import Task

#: The initial designs a replay can start from (``aloop.campaigns.config.INITIAL_DESIGN_KINDS``).
InitialDesign = Literal["random", "diverse"]

#: Measurements per run when --budget is not given.
DEFAULT_BUDGET = 100

#: Featurizers compared when no strategy is given: the campaign default (ElemNet) first.
DEFAULT_FEATURIZERS = ("elemnet", "magpie", "ef")


def default_strategies(direction: str) -> list[str]:
    """The campaign default (ElemNet features, GP, the direction's default acquisition), Magpie and
    elemental fractions with the same GP and policy, and random picks."""
    from aloop.campaigns.config import default_acquisition

    acquisition = default_acquisition([direction])
    return [f"{feat}-gp-{acquisition}" for feat in DEFAULT_FEATURIZERS] + ["random"]


def benchmark_command(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Study folder (records, tables, plots); rerun to resume.")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Registry dataset (aloop datasets list).")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Your own fully measured table instead of --dataset.")] = None,
    formula_column: Annotated[str, typer.Option("--formula-column", help="Formula column of --csv.")] = "formula",
    target: Annotated[str | None, typer.Option("--target", "-t", help=(
        "Objective column (required with --csv; dataset default: its first target). A column headed "
        "'NAME [UNITS]' gives the objective NAME in UNITS."))] = None,
    units: Annotated[str, typer.Option("--units", help="Units of --target in --csv.")] = "",
    direction: Annotated[Direction | None, typer.Option("--direction", help=(
        "maximize, minimize or window. With --dataset the default is the registry's direction for the target "
        "(minimize for the OER plates' overpotential; `aloop datasets show`); required with --csv and for targets "
        "without one; --window implies window."),
        show_default=False)] = None,
    window: Annotated[tuple[float, float] | None, typer.Option("--window", help="LO HI of a target window.")] = None,
    strategy: Annotated[list[str] | None, typer.Option(
        "--strategy", "-s", help="FEATURIZER[/LAYER]-SURROGATE-ACQUISITION or 'random' (repeatable; default: "
        "elemnet-gp-ucb, magpie-gp-ucb, ef-gp-ucb, random; with direction window the '-window' policy).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1 per strategy.")] = 20,
    n_init: Annotated[int, typer.Option("--n-init", min=1, help="Initial measurements (the initial design).")] = 5,
    initial_design: Annotated[InitialDesign, typer.Option("--initial-design", help=(
        "random (the field's protocol: the same rows for every strategy of a seed) or diverse (k-means on each "
        "strategy's features, as a campaign starts by default; the random strategy stays random)."))] = "random",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", "-q", min=1, help="Proposals per round (at most budget − n-init).")] = 1,
    budget: Annotated[int | None, typer.Option(
        "--budget", min=1, help=f"Measurements per run, initial ones included [default: {DEFAULT_BUDGET}].",
        show_default=False)] = None,
    backend: Annotated[Backend, typer.Option("--backend", help="serial, joblib or ray.")] = "joblib",
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Parallel runs (joblib backend) [default: 2].", show_default=False)] = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Ray cluster address (default: local).")] = None,
    refit_growth: Annotated[float, typer.Option(
        "--refit-growth", min=0.0, help="Refit GP hyperparameters when the data grew by this fraction (0: every round).")] = 0.25,
    tops: Annotated[list[float] | None, typer.Option(
        "--top", help="Top-k% sets to count, in percent of the pool (0–100); repeat for several [default: 5 and 1]. "
                      "The first carries the n-to and AF columns.", show_default=False)] = None,
    af_targets: Annotated[list[float] | None, typer.Option(
        "--af-target", help="Top% (a share of the first --top set, in (0, 1]) at which AF is reported; repeat for "
                            "several [default: 0.5].", show_default=False)] = None,
    keep_work: Annotated[bool, typer.Option(
        "--keep-work/--no-keep-work", help="Keep each replayed campaign (definition, log, feature cache) under "
                                           "OUT/work/ (about 10 MB per ElemNet run).")] = True,
) -> None:
    """Replay campaigns against a fully measured dataset: Top%, EF, AF, ALM metrics, tables and plots."""
    from aloop.benchmark import ReplayError, Strategy, Task
    from aloop.benchmark.replay import check_batch_size
    from aloop.benchmark.study import TOP_FRACTIONS, Study, pending_runs, report, run_study
    from aloop.datasets import DatasetError

    targets = sorted(set(af_targets or [0.5]))
    if any(not 0 < t <= 1 for t in targets):
        fail(f"--af-target {next(t for t in targets if not 0 < t <= 1):g}: give a share of the top set in (0, 1], "
             "e.g. 0.5 for half of it")
    if any(not 0 < p < 100 for p in tops or ()):
        fail(f"--top {next(p for p in tops or () if not 0 < p < 100):g}: give a percentage of the pool in (0, 100), "
             "e.g. 5 for the top 5%")
    fractions = tuple(dict.fromkeys(p / 100 for p in tops)) if tops else TOP_FRACTIONS
    if (dataset is None) == (csv is None):
        fail("give exactly one of --dataset NAME or --csv PATH")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"-o: {out_dir} is a file; give a folder for the study (it holds run records, tables and plots)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not any((out_dir / p).exists() for p in ("study.json", "runs",
                                                                                                 "work")):
        fail(f"-o: {out_dir} holds other files and no study (no study.json, runs/ or work/); give a new or empty "
             "folder for the study, whose tables and plots would replace files of the same names there")
    if direction is None and window is not None:
        direction = "window"
    if direction == "window" and window is None:
        fail("--direction window needs --window LO HI: the range of target values that counts as a hit")
    if direction != "window" and window is not None:
        fail(f"--window LO HI goes with --direction window, not {direction}")
    said = "given"
    try:
        if csv is not None:
            task = _csv_task(csv, target, formula_column, units, direction, window)
        else:
            registry, said = _registry_direction(dataset, target, direction)  # type: ignore[arg-type]
            with warnings.catch_warnings():  # rows the registry's file holds that no pool can use
                warnings.showwarning = lambda message, *_, **__: warn(str(message))  # type: ignore[assignment]
                task = Task.from_dataset(dataset, target, direction=direction or registry,  # type: ignore[arg-type]
                                         window=window)
        if budget is None and DEFAULT_BUDGET > len(task):
            fail(f"the default budget ({DEFAULT_BUDGET} measurements per run) exceeds the pool's {len(task)} "
                 f"compositions: give --budget N (at most {len(task)})")
        budget = DEFAULT_BUDGET if budget is None else budget
        if not n_init <= budget <= len(task):
            fail(f"--budget {budget} must lie between --n-init ({n_init}) and the pool's {len(task)} compositions")
        strategies = [Strategy.parse(s) for s in (strategy or default_strategies(task.direction))]
        check_batch_size(n_init, batch_size, budget, names=("-q/--batch-size", "--budget", "--n-init"))
        study = Study(task, strategies, list(range(seeds)), n_init, batch_size, budget, refit_growth,
                      name=out_dir.name, initial_design=initial_design)
    except (ReplayError, DatasetError) as exc:
        fail(str(exc))
    if jobs is not None and backend != "joblib":
        warn(f"-j/--jobs applies to the joblib backend; with {backend} it is not used")
    if ray_address is not None and backend != "ray":
        warn(f"--ray-address applies to --backend ray; with {backend} it is not used")
    jobs = 2 if jobs is None else jobs
    names = [s.name for s in strategies]
    total = len(names) * seeds
    err.print(f"{task.name}: {len(task)} compositions, {len(strategies)} strategies × {seeds} seeds, "
              f"budget {budget}, batch {batch_size}, backend {backend}")
    _say_pool(task, target, fractions)
    goal = f"window {task.window[0]:g}–{task.window[1]:g}" if task.window else task.direction
    err.print(f"objective: {goal} {task.objective}{f' ({task.units})' if task.units else ''} ({said})", markup=False)
    done = [0]

    def tick(rec: dict) -> None:
        from aloop.benchmark.metrics import best_so_far

        done[0] += 1
        best = best_so_far(rec["values"], task.direction, task.window)[-1]
        err.print(f"  [{done[0]}/{total}] {rec['strategy']} seed {rec['seed']}: best {best:.4g} ({rec['seconds']:.0f} s)")

    try:
        finished = total - len(pending_runs(study, out_dir))
        if finished == total:
            err.print(f"all {total} runs are finished in {out_dir}: writing the tables and plots")
        elif finished:
            err.print(f"resuming: {finished} of the {total} runs are finished in {out_dir}; running the other "
                      f"{total - finished}")
        done[0] = finished
        records = run_study(study, out_dir, backend=backend, n_jobs=jobs, ray_address=ray_address, on_record=tick,
                            keep_work=keep_work)
        paths = report(out_dir, task, top_fractions=fractions, af_targets=targets, strategies=names, seeds=study.seeds)
    except ReplayError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        _interrupted(out_dir, task, names, study.seeds, fractions, targets)
        raise typer.Exit(130) from None
    ours = sum(r["strategy"] in names and r["seed"] in study.seeds for r in records)
    err.print(f"{ours} of {total} runs finished; tables and plots in {out_dir}")
    if len(records) > ours:
        err.print(f"{out_dir} also holds {len(records) - ours} runs of other seeds or strategies, "
                  f"left out of the table (it shows seeds 0–{seeds - 1} of {', '.join(names)})")
    table = _table(paths["json"], task.window is not None, targets, fractions)
    if out.is_terminal:
        out.print(table)
    else:  # a pipe or a log file: rich's 80 columns would cut every number to "0.0…"
        from rich.console import Console

        Console(highlight=False, width=200).print(table)


def _interrupted(out_dir: Path, task: Task, names: list[str], seeds: Sequence[int], fractions: Sequence[float],
                 targets: Sequence[float]) -> None:
    """After Ctrl-C: tables and plots of the runs that finished, and how to resume."""
    from aloop.benchmark import ReplayError
    from aloop.benchmark.study import report

    try:
        report(out_dir, task, top_fractions=fractions, af_targets=targets, strategies=names, seeds=seeds)
        done = f"tables and plots of the finished runs are in {out_dir}"
    except (ReplayError, OSError):  # none finished yet
        done = "no run had finished"
    except KeyboardInterrupt:
        done = "the tables were not written"
    err.print(f"interrupted: finished runs are kept ({done}); rerun the same command to resume")


def _csv_task(csv: Path, target: str | None, formula_column: str, units: str, direction: str | None,
              window: tuple[float, float] | None) -> Task:
    """The task of a user's table (header names without surrounding spaces); exits with a user error if unusable."""
    from aloop.benchmark import Task
    from aloop.benchmark.task import TaskWarning
    from aloop.cli.featurize import read_table

    if not csv.is_file():
        fail(f"no such file: {csv}")
    if not target:
        fail("--target is required with --csv: name the column holding the objective values")
    if direction is None:
        fail("--direction is required with --csv: a table does not say whether higher or lower values are "
             "better (maximize, minimize, or window with --window LO HI)")
    target, formula_column = target.strip(), formula_column.strip()
    try:
        frame = read_table(csv, formula_column)
    except KeyError as exc:
        fail(str(exc.args[0]))
    except (OSError, ValueError) as exc:
        fail(str(exc))
    _warn_dropped(csv, frame, target, formula_column)
    with warnings.catch_warnings():  # said above, with file lines
        warnings.simplefilter("ignore", TaskWarning)
        return Task.from_frame(csv.stem, frame, target, formula_column=formula_column, units=units,
                               direction=direction, window=window)


def _say_pool(task: Task, target: str | None, fractions: Sequence[float]) -> None:
    """Say what the pool was made of: merged rows, a renamed target column, a top-k% set grown by ties."""
    import math

    from aloop.benchmark.metrics import goodness, top_mask

    n = len(task)
    if task.source_rows and task.source_rows > n:
        err.print(f"{task.source_rows} rows → {n} compositions (rows sharing a composition averaged)")
    if target and target.strip() != task.objective:
        err.print(f"column {target.strip()!r} is the objective {task.objective!r} in {task.units}", markup=False)
    if task.window is not None:  # every in-window composition is a hit by design, when they fill the top 5%
        lo, hi = task.window
        inside, k = int(((task.y >= lo) & (task.y <= hi)).sum()), max(1, math.ceil(fractions[0] * n))
        if inside < k:
            warn(f"only {inside} of {n} compositions lie in the window [{lo:g}, {hi:g}], fewer than "
                 f"{100 * fractions[0]:g}% of the pool: the 'in-window' set is the {k} closest to it")
        return
    for frac in fractions:
        mask, k = top_mask(goodness(task.y, task.direction), frac), max(1, math.ceil(frac * n))
        if mask.sum() >= 2 * k:
            cut = task.y[mask].max() if task.direction == "minimize" else task.y[mask].min()
            warn(f"top {100 * frac:g}% holds {mask.sum()} of {n} compositions (not {k}) because of ties at "
                 f"{cut:g}: finding any of them counts")


def _warn_dropped(csv: Path, frame: pd.DataFrame, target: str, formula_column: str) -> None:
    """Warn about the rows of ``csv`` the pool leaves out (data rows from 1 and their file lines, as ``aloop featurize``)."""
    from types import SimpleNamespace

    from aloop.benchmark.task import dropped_rows

    dropped = dropped_rows(frame, target, formula_column, csv.stem)
    if dropped:
        warn(f"{len(dropped)} of {len(frame)} rows of {csv} are left out of the pool:")
        rows = [SimpleNamespace(row=i + 1, formula=f, reason=r) for i, f, r in dropped[:20]]
        more = f"\n  … and {len(dropped) - 20} more" if len(dropped) > 20 else ""
        err.print(bad_rows_text(rows, csv=True, lines=frame.attrs.get("file_lines")) + more,
                  markup=False, highlight=False, soft_wrap=True)


def _registry_direction(dataset: str, target: str | None, given: str | None) -> tuple[str | None, str]:
    """The registry's direction for a dataset's target (``None`` if it has none) and how the output
    names where the direction came from; a clear error when none is given and the registry has none."""
    from aloop.datasets import get_spec

    try:
        spec = get_spec(dataset)
    except KeyError as exc:
        fail(str(exc.args[0]))
    target = target or next(iter(spec.targets))
    if target not in spec.targets:
        fail(f"dataset {dataset!r} has no target {target!r}; targets: {', '.join(spec.targets)}")
    way = spec.direction(target)
    better = f"{'lower' if way == 'minimize' else 'higher'} {target} is better"
    if given is None and way is None:
        fail(f"dataset {dataset!r} does not record whether a higher or lower {target!r} is better; give --direction "
             "maximize, minimize, or window with --window LO HI")
    if given is None:
        return way, f"the registry's default for {dataset}: {better}"
    return way, "given" if way in (None, given) or given == "window" else f"given; the registry says {better}"


#: (column of the results table, heading) shown on the terminal; results.md has them all.
TAIL_COLUMNS = (("any_alm_med", "anyALM"), ("regret_final_mean", "regret"), ("mae_last", "pool MAE"),
                ("cov95_last", "cov95"))
#: What the terminal table's columns mean (its caption).
LEGEND = ("found: share of the set found by the budget (mean over seeds, 1 = all); n to 50%: median experiments "
          "to find half of the set (or the share each --af-target gives); AF(50%): random's expected "
          "experiments to that share / those of the seed-mean curve, "
          "its 90% interval from bootstrapping the seeds in brackets (?: resamples that never get there); "
          "anyALM: median experiments to the first top-1% composition; regret: best in the pool − best found "
          "(objective units); pool MAE, cov95: the last model's error and 95%-interval coverage on the unmeasured "
          "pool; –: not reached or no model. Every column is in results.md/.csv/.json.")


def _table(path: Path, window: bool = False, targets: Sequence[float] = (0.5,),
           fractions: Sequence[float] = (0.05, 0.01)) -> object:
    import json

    from rich.table import Table

    from aloop.benchmark.summary import af_interval_text

    columns = [("strategy", "strategy"), ("batch_size", "q"), ("seeds", "seeds")]
    # A window's hits are its in-window compositions whatever k, so its top-k% columns are one set.
    for i, f in enumerate(fractions[:1] if window else fractions):
        top = f"top{100 * f:g}"
        columns.append((f"{top}_final_mean", "in-window found" if window else f"top-{100 * f:g}% found"))
        if i == 0:  # one pair per --af-target
            columns += [pair for t in targets for p in [f"{100 * t:g}"]
                        for pair in ((f"{top}_t{p}_n_med", f"n to {p}%"), (f"{top}_t{p}_af", f"AF({p}%)"))]
    columns += list(TAIL_COLUMNS)
    legend = LEGEND.replace("anyALM: median experiments to the first top-1% composition", "anyALM: median "
                            "experiments to the first in-window composition") if window else LEGEND
    table = Table(title="replay results", caption=legend, caption_justify="left")
    for _, heading in columns:
        table.add_column(heading, justify="left" if heading == "strategy" else "right", no_wrap=heading == "strategy")
    for row in json.loads(path.read_text()):
        cells = []
        for key, _ in columns:
            v = row.get(key)
            cells.append("–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
            if key.endswith("_af") and v is not None and row.get(f"{key}_hi") is not None:
                cells[-1] += f" [{af_interval_text(row, key)}]"
        table.add_row(*cells)
    return table
