"""Turn replayed-campaign run records into long curve tables and per-strategy summary tables.

A run record is the dict one replay writes (one JSON file per run): ``study``, ``task``,
``strategy``, ``seed``, ``batch_size``, ``n_init``, ``budget``, ``pool_size``, ``order`` (pool row
indices in measurement order, initial design first), ``batch`` (batch number per measurement,
0 = initial design), ``values`` (measured objective values), ``fits`` (one dict per model fit with
``n_train``, ``pool_mae``, ``pool_cov68``, ``pool_cov95``, ``seconds``; may be empty),
``seconds`` and ``backend``.  A task is its pool's objective values ``y`` (N,), a ``direction``
and, for ``direction="window"``, a ``window`` (lo, hi).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aloop.benchmark import metrics as m

RANDOM_LABEL = "random (expected)"
# The keys read here; ``study``, ``backend`` and any others are carried but not needed.
RECORD_KEYS: tuple[str, ...] = (
    "task", "strategy", "seed", "batch_size", "n_init", "budget", "pool_size",
    "order", "batch", "values", "fits", "seconds",
)  # fmt: skip


def _check_records(records: Iterable[Mapping[str, Any]], y: np.ndarray) -> list[Mapping[str, Any]]:
    """Validate run records against the task's pool ``y`` (N,); they must all belong to one task."""
    records = list(records)
    if not records:
        raise ValueError("no run records given")
    for i, rec in enumerate(records):
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            raise ValueError(f"run record {i} lacks keys {missing}")
        where = f"run record {i} ({rec['strategy']!r}, seed {rec['seed']})"
        if rec["pool_size"] != y.size:
            raise ValueError(f"{where}: pool_size {rec['pool_size']} but the task's pool has {y.size} rows")
        order = m.check_order(np.asarray(rec["order"]), y.size)
        for key in ("batch", "values"):
            if len(rec[key]) != order.size:
                raise ValueError(f"{where}: {key} has {len(rec[key])} entries, order has {order.size}")
        if rec["budget"] != order.size:
            raise ValueError(f"{where}: budget {rec['budget']} but order has {order.size} entries")
        values = np.asarray(rec["values"], dtype=np.float64)
        # A mismatch means the record was replayed on another pool (or another target column).
        if not np.allclose(values, y[order], rtol=1e-9, atol=1e-12, equal_nan=False):
            raise ValueError(f"{where}: values differ from the pool's y at the measured rows; wrong task or pool?")
    tasks = sorted({str(rec["task"]) for rec in records})
    if len(tasks) > 1:
        raise ValueError(f"records span several tasks {tasks}; summarize one task (one pool y) at a time")
    return records


def _top_tag(fraction: float) -> str:
    return f"top{fraction * 100:g}"


def _t_tag(t: float) -> str:
    return f"t{t * 100:g}"


def _mean_interval(values: np.ndarray, level: float = 0.9) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (one per seed; 1,000 resamples, seeded, as the AF
    interval); NaN with one seed, the value itself when every seed agrees."""
    from scipy.stats import bootstrap

    if values.size < 2:
        return math.nan, math.nan
    if np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    ci = bootstrap((values,), np.mean, confidence_level=level, n_resamples=1000, method="percentile",
                   random_state=0).confidence_interval
    return float(ci.low), float(ci.high)


def curves(
    records: Iterable[Mapping[str, Any]],
    y: Sequence[float] | np.ndarray,
    direction: m.Direction,
    window: tuple[float, float] | None = None,
    top_fraction: float = 0.05,
    include_random: bool = False,
) -> pd.DataFrame:
    """Per-experiment curves of every run as one long DataFrame (one row per run and experiment).

    Columns: ``strategy``, ``batch_size``, ``seed``, ``n`` (experiments so far, 1..B),
    ``top_percent`` (fraction of the pool's top-``top_fraction`` rows found, 0..1), ``ef``
    (enhancement factor), ``best_so_far`` (objective units), ``regret`` (simple regret, objective
    units), and the constants ``pool_size`` and ``n_top`` (size of the top set) that AF needs.
    With ``include_random`` the exact expectation of uniform random sampling is added as strategy
    ``"random (expected)"`` with ``seed`` -1 and ``batch_size`` 1 over the longest budget; its
    ``best_so_far`` is the expected best (NaN for a window task, where no single value is meant).
    """
    score = m.goodness(y, direction, window)
    y = np.asarray(y, dtype=np.float64)
    records = _check_records(records, y)
    mask = m.top_mask(score, top_fraction)
    n_top = int(mask.sum())
    frames = []
    for rec in records:
        order = np.asarray(rec["order"], dtype=np.int64)
        top = m.top_percent_curve(order, mask, rec["batch"])
        frames.append(
            pd.DataFrame(
                {
                    "strategy": str(rec["strategy"]),
                    "batch_size": int(rec["batch_size"]),
                    "seed": int(rec["seed"]),
                    "n": np.arange(1, order.size + 1),
                    "top_percent": top,
                    "ef": m.enhancement_factor(top, y.size),
                    "best_so_far": m.best_so_far(rec["values"], direction, window),
                    "regret": m.simple_regret(rec["values"], y, direction, window),
                }
            )
        )
    if include_random:
        budget = max(len(rec["order"]) for rec in records)
        n = np.arange(1, budget + 1)
        expected_best = m.random_expected_best(score, budget)
        best = {"maximize": expected_best, "minimize": -expected_best}.get(direction, np.full(budget, np.nan))
        frames.append(
            pd.DataFrame(
                {
                    "strategy": RANDOM_LABEL,
                    "batch_size": 1,
                    "seed": -1,
                    "n": n,
                    "top_percent": m.random_top_percent(n, y.size),
                    "ef": 1.0,
                    "best_so_far": best,
                    "regret": score.max() - expected_best,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["pool_size"] = y.size
    out["n_top"] = n_top
    return out


def _censored_quantiles(reached: Sequence[float], n_missed: int, qs: Sequence[float], missed_high: bool) -> list[float]:
    """Quantiles over all seeds when ``n_missed`` seeds have no value (it lies beyond the budget).

    The missing values are only known to be above (``missed_high``) or below every observed one,
    so a quantile is exact as long as it does not fall among (or interpolate into) them; NaN then.
    """
    fill = math.inf if missed_high else -math.inf
    values = np.sort(np.concatenate([np.asarray(reached, dtype=np.float64), np.full(n_missed, fill)]))
    out = []
    for q in qs:
        if values.size == 0:
            out.append(math.nan)
            continue
        # numpy's linear quantile, spelled out so that landing exactly next to an inf is not NaN.
        pos = q * (values.size - 1)
        lo, frac = int(math.floor(pos)), pos - math.floor(pos)
        if frac == 0.0:
            v = float(values[lo])
        elif np.isfinite(values[lo : lo + 2]).all():
            v = float(values[lo] + frac * (values[lo + 1] - values[lo]))
        else:
            v = math.nan
        out.append(v if math.isfinite(v) else math.nan)
    return out


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def _last_fit(rec: Mapping[str, Any], key: str) -> float:
    if not rec["fits"]:
        return math.nan
    value = rec["fits"][-1].get(key)
    return math.nan if value is None else float(value)


#: What the columns of a results table mean (``{top}`` = ``top5`` for the top 5%, ``top1`` for 1%, …; ``{t}`` =
#: ``t50`` for AF target 0.5).
COLUMN_LEGEND = """\
- `task`, `strategy`, `batch_size`, `seeds` (runs), `budget` (measurements per run, initial ones included), `n_init`,
  `pool_size`
- experiments are counted as spent: a find counts once its whole batch is made (the initial design is one batch),
  so a top composition third in a batch of 8 is found at the batch's 8th experiment
- `{top}_count`: size of the top set (ties at the cut included; for a window objective the compositions closest to
  the window, distance 0 inside it: every in-window one when they make up at least that share of the pool)
- `{top}_final_mean` / `{top}_final_std`: share of the top set found by the budget (0..1), across seeds;
  `{top}_final_ef`: the enhancement factor there, EF = mean share / (budget / pool_size); `{top}_final_ef_lo` /
  `_hi`: its 90% interval, bootstrapping the seeds (1,000 resamples)
- `{top}_{t}_n_med` / `_n_q25` / `_n_q75`: experiments to find the share t (t50: half), quantiles over all seeds,
  a seed that never did counting as beyond the budget (– where a quantile depends on such seeds);
  `{top}_{t}_reached`: seeds that did
- `{top}_{t}_af`: acceleration factor AF(t) of the seed-mean curve (Liang et al. 2021): random's expected
  experiments to the share t / the curve's; `{top}_{t}_af_lo` / `_af_hi`: its 90% interval, bootstrapping the
  seeds (1,000 resamples; – where resamples that never reach t set the bound); `{top}_{t}_af_med`: median of
  the per-seed AFs, each against random's median experiments to the same find (so random's is about 1; a seed
  that missed t has an AF below every seed that reached it)
- `any_alm_med`: anyALM, median experiments to the first of the top 1% (censored likewise; the initial design
  counts, where CAMD counts iterations after it); `all_alm_med` / `all_alm_reached`: experiments to find all of
  them, and seeds that did; `alm_final_mean`: share of the top 1% found by the budget; `de_alm_mean`: deALM,
  decision efficiency (Rohr et al. 2020; 1 = always a pick from the best remaining, 0 = random, tied candidates
  at mid-rank)
- `regret_final_mean` / `regret_final_std`: simple regret at the budget, best in the pool − best found
  (objective units)
- `mae_last` / `cov95_last`: the last model's mean absolute error and central-95%-interval coverage on the
  compositions not measured (mean over seeds; – without a model); `seconds_mean`: wall time per run
- –: not reached, or not defined
"""


def summarize(
    records: Iterable[Mapping[str, Any]],
    y: Sequence[float] | np.ndarray,
    direction: m.Direction,
    window: tuple[float, float] | None = None,
    top_fractions: Sequence[float] = (0.05, 0.01),
    af_targets: Sequence[float] = (0.5,),
    alm_fraction: float = 0.01,
) -> pd.DataFrame:
    """One row per (task, strategy, batch_size) summarizing its seeds; returns a DataFrame whose
    columns :data:`COLUMN_LEGEND` explains (it is written below ``results.md``)."""
    score = m.goodness(y, direction, window)
    y = np.asarray(y, dtype=np.float64)
    records = _check_records(records, y)
    targets = [float(t) for t in af_targets]
    if not targets or not all(0.0 < t <= 1.0 for t in targets):
        raise ValueError(f"af_targets must be non-empty fractions in (0, 1], got {list(af_targets)}")
    if not top_fractions:
        raise ValueError("top_fractions is empty")
    masks = {f: m.top_mask(score, f) for f in top_fractions}
    alm_mask = m.top_mask(score, alm_fraction)

    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault((str(rec["task"]), str(rec["strategy"]), int(rec["batch_size"])), []).append(rec)

    rows = []
    for (task, strategy, batch_size), runs in sorted(groups.items()):
        label = f"task {task!r}, strategy {strategy!r}, batch_size {batch_size}"
        seeds = [int(r["seed"]) for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{label}: repeated seeds {sorted(seeds)}")
        for key in ("budget", "n_init"):
            found = sorted({int(r[key]) for r in runs})
            if len(found) > 1:
                raise ValueError(f"{label}: runs differ in {key} {found}; they cannot be averaged")
        budget, n_init = int(runs[0]["budget"]), int(runs[0]["n_init"])
        orders = [np.asarray(r["order"], dtype=np.int64) for r in runs]
        batches = [np.asarray(r["batch"]) for r in runs]  # a batch's finds count once all of it is spent
        row: dict[str, Any] = {
            "task": task, "strategy": strategy, "batch_size": batch_size, "seeds": len(runs),
            "budget": budget, "n_init": n_init, "pool_size": y.size,
        }  # fmt: skip
        for f, mask in masks.items():
            top, n_top = _top_tag(f), int(mask.sum())
            per_seed = np.stack([m.top_percent_curve(o, mask, b) for o, b in zip(orders, batches, strict=True)])
            row[f"{top}_count"] = n_top
            row[f"{top}_final_mean"], row[f"{top}_final_std"] = _mean_std(per_seed[:, -1])
            row[f"{top}_final_ef"] = row[f"{top}_final_mean"] / float(m.random_top_percent(budget, y.size))
            row[f"{top}_final_ef_lo"], row[f"{top}_final_ef_hi"] = (
                bound / float(m.random_top_percent(budget, y.size)) for bound in _mean_interval(per_seed[:, -1]))
            for t in targets:
                key = f"{top}_{_t_tag(t)}"
                reach = [m.experiments_to_reach(c, t) for c in per_seed]
                hit = [n for n in reach if n is not None]
                q25, med, q75 = _censored_quantiles(hit, len(reach) - len(hit), (0.25, 0.5, 0.75), missed_high=True)
                row[f"{key}_n_med"], row[f"{key}_n_q25"], row[f"{key}_n_q75"] = med, q25, q75
                row[f"{key}_reached"] = len(hit)
                af_mean = m.acceleration_factor(per_seed.mean(axis=0), y.size, n_top, t, averaged=True)
                row[f"{key}_af"] = math.nan if af_mean is None else af_mean
                row[f"{key}_af_lo"], row[f"{key}_af_hi"] = m.acceleration_factor_interval(per_seed, y.size, n_top, t)
                afs = [m.acceleration_factor(c, y.size, n_top, t, baseline="median") for c in per_seed]
                got = [a for a in afs if a is not None]
                row[f"{key}_af_med"] = _censored_quantiles(got, len(afs) - len(got), (0.5,), missed_high=False)[0]
        any_hits = [m.any_alm(o, alm_mask, b) for o, b in zip(orders, batches, strict=True)]
        any_got = [a for a in any_hits if a is not None]
        row["any_alm_med"] = _censored_quantiles(any_got, len(runs) - len(any_got), (0.5,), missed_high=True)[0]
        all_hits = [m.all_alm(o, alm_mask, b) for o, b in zip(orders, batches, strict=True)]
        all_got = [a for a in all_hits if a is not None]
        row["all_alm_med"] = _censored_quantiles(all_got, len(runs) - len(all_got), (0.5,), missed_high=True)[0]
        row["all_alm_reached"] = len(all_got)
        row["alm_final_mean"] = float(np.mean([m.alm_fraction(o, alm_mask)[-1] for o in orders]))
        row["de_alm_mean"] = (
            float(np.mean([m.de_alm(o, score, n_init).mean() for o in orders])) if n_init < budget else math.nan
        )
        final_regret = [m.simple_regret(r["values"], y, direction, window)[-1] for r in runs]
        row["regret_final_mean"], row["regret_final_std"] = _mean_std(final_regret)
        for column, key in (("mae_last", "pool_mae"), ("cov95_last", "pool_cov95")):
            last = np.array([_last_fit(r, key) for r in runs])
            row[column] = float(np.nanmean(last)) if np.isfinite(last).any() else math.nan
        row["seconds_mean"] = float(np.mean([float(r["seconds"]) for r in runs]))
        rows.append(row)
    return pd.DataFrame(rows)


def af_interval_text(row: Mapping[str, Any], key: str) -> str:
    """``"lo–hi"`` for the AF column ``key`` of a results row (``?`` for a bound resamples never reach), ``""`` if none."""
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if lo is None and hi is None:
        return ""
    return "–".join("?" if v is None else f"{v:.3g}" for v in (lo, hi))


def _format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v == 0.0:
            return "0"
        if v.is_integer():
            return f"{v:.0f}"
        if abs(v) >= 100:  # experiment counts such as a median of 121.5: not rounded to a whole number
            return f"{v:.2f}".rstrip("0").rstrip(".")
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (numbers right-aligned, NaN shown as –)."""
    header = [str(c).replace("|", "\\|") for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if num else "---" for num in numeric) + " |",
    ]
    for values in frame.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_format_cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def curve_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The curves behind a study's plots, per strategy, batch size and experiment ``n``: the mean and the 10th /
    90th percentiles across seeds (the plots' bands) of ``top_percent``, ``ef``, ``best_so_far`` and ``regret``
    (``frame``: :func:`curves`), and ``seeds``. Random's exact expectation, if there, is one row per ``n``."""
    columns = ["top_percent", "ef", "best_so_far", "regret"]
    grouped = frame.groupby(["strategy", "batch_size", "n"], sort=True)[columns]
    table = grouped.mean().add_suffix("_mean")
    for q in (0.1, 0.9):
        table = table.join(grouped.quantile(q).add_suffix(f"_q{round(100 * q)}"))
    table["seeds"] = grouped.size()
    order = ["seeds", *(f"{c}_{s}" for c in columns for s in ("mean", "q10", "q90"))]
    return table[order].reset_index()


def write_tables(summary_df: pd.DataFrame, out_dir: str | Path, stem: str,
                 legend: str | None = None) -> dict[str, Path]:
    """Write ``summary_df`` as ``{stem}.csv``, ``{stem}.json`` (records, NaN as null) and ``{stem}.md``
    (with ``legend``, Markdown, below the table).

    Returns the paths keyed ``"csv"``, ``"json"`` and ``"md"``; ``out_dir`` is created if needed.
    """
    if not stem or Path(stem).name != stem:
        raise ValueError(f"stem must be a plain file name without directories, got {stem!r}")
    if len(summary_df.columns) == 0:
        raise ValueError("summary_df has no columns")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / f"{stem}.csv", "json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    summary_df.to_csv(paths["csv"], index=False)
    # Through Python objects so that NaN and ±inf both become null (strict JSON has neither).
    rows = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in json.loads(summary_df.to_json(orient="records"))
    ]
    paths["json"].write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    text = to_markdown(summary_df) + (f"\n**Columns**\n\n{legend}" if legend else "")
    paths["md"].write_text(text, encoding="utf-8")
    return paths
