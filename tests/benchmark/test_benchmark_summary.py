"""Tests for aloop.benchmark.summary: curve and summary tables from fake run records, and the writers."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from aloop.benchmark import metrics as m
from aloop.benchmark import summary as s
from aloop.datasets import DatasetError, load

POOL = np.random.default_rng(7).normal(1.0, 0.3, size=200)


def fake_record(y: np.ndarray, strategy: str, seed: int, order: np.ndarray, n_init: int = 5, batch_size: int = 5,
                fits: bool = True) -> dict[str, Any]:
    """A run record as the replay runner writes it, for a given measurement order."""
    order = [int(i) for i in order]
    batch = [0] * n_init + [1 + (i - n_init) // batch_size for i in range(n_init, len(order))]
    fit_list = [
        {"n_train": float(n), "pool_mae": 0.1 + 0.01 * seed, "pool_cov68": 0.6, "pool_cov95": 0.9, "seconds": 0.01}
        for n in range(n_init, len(order), batch_size)
    ] if fits else []  # fmt: skip
    return {
        "study": "fake", "task": "pool200", "strategy": strategy, "seed": seed, "batch_size": batch_size,
        "n_init": n_init, "budget": len(order), "pool_size": len(y), "order": order, "batch": batch,
        "values": y[order].tolist(), "fits": fit_list, "seconds": 1.0 + seed, "backend": "joblib",
    }  # fmt: skip


def oracle_order(y: np.ndarray, seed: int, budget: int, n_init: int = 5, sign: float = 1.0) -> np.ndarray:
    """A random initial design, then the remaining rows best first."""
    init = np.random.default_rng(seed).choice(len(y), n_init, replace=False)
    rest = [i for i in np.argsort(-sign * y, kind="stable") if i not in set(init)]
    return np.concatenate([init, rest[: budget - n_init]])


def study_records(y: np.ndarray = POOL, budget: int = 120) -> list[dict[str, Any]]:
    recs = [fake_record(y, "oracle", seed, oracle_order(y, seed, budget)) for seed in range(3)]
    for seed in range(5):
        order = np.random.default_rng(100 + seed).permutation(len(y))[:budget]
        recs.append(fake_record(y, "random-order", seed, order, fits=False))
    return recs


def test_curves_long_table() -> None:
    recs = study_records()
    df = s.curves(recs, POOL, "maximize", include_random=True)
    assert list(df.columns) == [
        "strategy", "batch_size", "seed", "n", "top_percent", "ef", "best_so_far", "regret", "pool_size", "n_top",
    ]  # fmt: skip
    assert len(df) == 8 * 120 + 120
    assert set(df["strategy"]) == {"oracle", "random-order", s.RANDOM_LABEL}
    rand = df[df["strategy"] == s.RANDOM_LABEL]
    np.testing.assert_allclose(rand["top_percent"], np.arange(1, 121) / 200)
    np.testing.assert_allclose(rand["ef"], 1.0)
    # best_so_far + regret is the pool's best, for runs and for random's expectation alike.
    np.testing.assert_allclose(df["best_so_far"] + df["regret"], POOL.max())
    assert (np.diff(rand["regret"]) <= 1e-12).all()
    run = df[(df["strategy"] == "oracle") & (df["seed"] == 0)]
    mask = m.top_mask(POOL, 0.05)
    # finds count at the end of their batch (the initial design of 5, then batches of 5)
    np.testing.assert_allclose(run["top_percent"], m.top_percent_curve(recs[0]["order"], mask, recs[0]["batch"]))
    assert (run["top_percent"].to_numpy()[[5, 6, 7, 8]] == 0).all() and run["top_percent"].iloc[9] == 0.5
    assert df["n_top"].iloc[0] == 10 and df["pool_size"].iloc[0] == 200
    assert s.RANDOM_LABEL not in set(s.curves(recs, POOL, "maximize")["strategy"])


def test_the_curve_table_is_the_plots_mean_and_band() -> None:
    recs = study_records()
    df = s.curves(recs, POOL, "maximize", include_random=True)
    table = s.curve_table(df)
    assert len(table) == 3 * 120 and table["seeds"].tolist().count(1) == 120  # random's expectation: one row per n
    oracle = df[df["strategy"] == "oracle"].pivot(index="seed", columns="n", values="top_percent").to_numpy()
    mean, low, high = m.band(oracle)
    row = table[table["strategy"] == "oracle"]
    np.testing.assert_allclose(row["top_percent_mean"], mean)
    np.testing.assert_allclose(row["top_percent_q10"], low)
    np.testing.assert_allclose(row["top_percent_q90"], high)
    assert list(table.columns[:4]) == ["strategy", "batch_size", "n", "seeds"]


def test_summarize_columns_and_oracle_beats_random() -> None:
    table = s.summarize(study_records(), POOL, "maximize", top_fractions=(0.05, 0.01), af_targets=(0.5, 0.9))
    assert list(table["strategy"]) == ["oracle", "random-order"]
    for col in [
        "task", "strategy", "batch_size", "seeds", "budget", "n_init", "pool_size",
        "top5_count", "top5_final_mean", "top5_final_std", "top5_t50_n_med", "top5_t50_n_q25", "top5_t50_n_q75",
        "top5_t50_reached", "top5_t50_af", "top5_t50_af_lo", "top5_t50_af_hi", "top5_t50_af_med", "top1_t90_af", "any_alm_med", "all_alm_med",
        "all_alm_reached", "alm_final_mean", "de_alm_mean", "regret_final_mean", "regret_final_std",
        "mae_last", "cov95_last", "seconds_mean",
    ]:  # fmt: skip
        assert col in table.columns, col
    oracle, rand = table.set_index("strategy").loc["oracle"], table.set_index("strategy").loc["random-order"]
    assert oracle["seeds"] == 3 and rand["seeds"] == 5 and oracle["budget"] == 120
    # EF at the budget with its seed-bootstrap interval: around the EF, and a point when every seed agrees.
    assert rand["top5_final_ef_lo"] <= rand["top5_final_ef"] <= rand["top5_final_ef_hi"]
    assert rand["top5_final_ef_lo"] < rand["top5_final_ef_hi"]
    assert oracle["top5_final_ef_lo"] == oracle["top5_final_ef"] == oracle["top5_final_ef_hi"]
    assert oracle["top5_final_mean"] == 1.0 and oracle["top5_t50_reached"] == 3
    assert oracle["top5_final_ef"] == pytest.approx(POOL.size / 120)  # all found after 120 of N: EF = N / 120
    # The oracle needs about 5 initial rows + 5 picks for half of the top 10: AF far above random's ≈ 1.
    assert oracle["top5_t50_af"] > 8
    assert oracle["top5_t50_af_lo"] <= oracle["top5_t50_af"] <= oracle["top5_t50_af_hi"]
    assert math.isnan(rand["top5_t50_af"]) or rand["top5_t50_af"] < 2
    assert oracle["top5_t50_af"] > 4 * (1 if math.isnan(rand["top5_t50_af"]) else rand["top5_t50_af"])
    assert oracle["all_alm_reached"] == 3 and oracle["all_alm_med"] == 10  # both found in the first batch of 5
    assert oracle["regret_final_mean"] == 0.0 and rand["regret_final_mean"] >= 0.0
    assert oracle["de_alm_mean"] > 0.9 and abs(rand["de_alm_mean"]) < 0.2
    assert oracle["mae_last"] == pytest.approx(0.11) and oracle["cov95_last"] == pytest.approx(0.9)
    assert math.isnan(rand["mae_last"]) and rand["seconds_mean"] == pytest.approx(3.0)


def test_summarize_censors_seeds_that_never_reach() -> None:
    y = POOL
    mask = m.top_mask(y, 0.05)
    good, bad = np.flatnonzero(mask), np.flatnonzero(~mask)
    # Seeds 0 and 1 find 5 top rows after 10 and 20 experiments; seed 2 never finds any.
    recs = []
    for seed, spacing in ((0, 2), (1, 4)):
        order = list(bad[:30])
        for j, row in enumerate(good[:5]):
            order[spacing * (j + 1) - 1] = row
        recs.append(fake_record(y, "mixed", seed, np.array(order)))
    recs.append(fake_record(y, "mixed", 2, bad[30:60]))
    row = s.summarize(recs, y, "maximize", top_fractions=(0.05,), af_targets=(0.5,)).iloc[0]
    assert row["top5_t50_reached"] == 2
    assert row["top5_t50_n_med"] == 20  # the missing seed counts as beyond the budget
    assert row["top5_t50_n_q25"] == 15
    assert math.isnan(row["top5_t50_n_q75"])  # lies between seed 1 (20) and the unknown
    # against random's median draw for the 5th of 10 top rows among 200 (91; its expected curve says 100)
    assert row["top5_t50_af_med"] == pytest.approx(91 / 20)
    qs = (0.1, 0.25, 0.5, 0.75, 1.0)
    np.testing.assert_allclose(s._censored_quantiles([3, 1, 4, 1, 5], 0, qs, True), np.quantile([3, 1, 4, 1, 5], qs))
    assert s._censored_quantiles([], 2, (0.5,), False) == [pytest.approx(float("nan"), nan_ok=True)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("order"), "lacks keys"),
        (lambda r: r.update(order=r["order"][:-1] + r["order"][:1]), "repeated indices"),
        (lambda r: r.update(values=[v + 1.0 for v in r["values"]]), "values differ"),
        (lambda r: r.update(pool_size=150), "pool_size 150"),
        (lambda r: r.update(budget=3), "budget 3"),
        (lambda r: r.update(task="other"), "several tasks"),
    ],
)
def test_bad_records_raise(change: Any, message: str) -> None:
    recs = study_records(budget=20)
    change(recs[0])
    with pytest.raises(ValueError, match=message):
        s.summarize(recs, POOL, "maximize")


def test_inconsistent_groups_raise() -> None:
    recs = study_records(budget=20)
    recs[1]["seed"] = 0
    with pytest.raises(ValueError, match="repeated seeds"):
        s.summarize(recs, POOL, "maximize")
    short = fake_record(POOL, "oracle", 9, oracle_order(POOL, 9, 15))
    with pytest.raises(ValueError, match="differ in budget"):
        s.summarize([*study_records(budget=20), short], POOL, "maximize")
    with pytest.raises(ValueError, match="af_targets"):
        s.summarize(study_records(budget=20), POOL, "maximize", af_targets=(1.5,))


def test_write_tables_round_trip(tmp_path) -> None:
    table = s.summarize(study_records(budget=40), POOL, "maximize")
    assert table["mae_last"].isna().any()
    paths = s.write_tables(table, tmp_path / "out", "pool200")
    assert set(paths) == {"csv", "json", "md"} and all(p.is_file() for p in paths.values())
    back = pd.read_csv(paths["csv"])
    assert list(back.columns) == list(table.columns) and len(back) == len(table)
    np.testing.assert_allclose(back["top5_final_mean"], table["top5_final_mean"])
    text = paths["json"].read_text()
    assert "NaN" not in text
    rows = json.loads(text)
    assert len(rows) == 2 and rows[1]["strategy"] == "random-order"
    assert rows[1]["mae_last"] is None and rows[0]["mae_last"] == pytest.approx(0.11)
    md = paths["md"].read_text().strip().splitlines()
    assert len(md) == 2 + len(table)
    assert all(line.startswith("| ") and line.endswith(" |") for line in md)
    assert {line.count(" | ") for line in md} == {len(table.columns) - 1}
    assert "| oracle |" in md[2] and "–" in md[3]
    with pytest.raises(ValueError, match="plain file name"):
        s.write_tables(table, tmp_path, "sub/dir")


def test_markdown_number_formatting() -> None:
    frame = pd.DataFrame({"name": ["a|b"], "count": [3], "af": [19.8214], "frac": [0.123456], "big": [2121.4],
                          "missing": [float("nan")]})  # fmt: skip
    lines = s.to_markdown(frame).splitlines()
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert lines[2] == "| a\\|b | 3 | 19.82 | 0.123 | 2121.4 | – |"  # a median of 121.5 experiments is not 122


def test_real_oer_plate_oracle_af() -> None:
    try:
        frame = load("oer-plate-3496")
    except DatasetError as exc:
        pytest.skip(f"OER plate not available: {exc}")
    y = frame["overpotential_V"].to_numpy(dtype=float)
    order = np.argsort(y, kind="stable")[:60]  # lowest overpotential first, no initial design
    recs = [{**fake_record(y, "oracle", 0, order, n_init=0, batch_size=1, fits=False), "task": "oer"}]
    for seed in (1, 2):
        recs.append({**fake_record(y, "random-order", seed, np.random.default_rng(seed).permutation(len(y))[:60],
                                   fits=False), "task": "oer"})  # fmt: skip
    table = s.summarize(recs, y, "minimize", top_fractions=(0.05,)).set_index("strategy")
    n_top = int(table.loc["oracle", "top5_count"])
    # The plate has ties at the 5 % cut: all of them are in the top set.
    assert n_top == m.top_mask(-y, 0.05).sum() >= math.ceil(0.05 * len(y))
    assert table.loc["oracle", "top5_t50_af"] == pytest.approx(len(y) / n_top)
    assert table.loc["oracle", "any_alm_med"] == 1 and table.loc["oracle", "regret_final_mean"] == 0.0


def test_spreads_across_seeds_are_sample_standard_deviations() -> None:
    """Two seeds that found 2 and 4 of the 10 top rows: the spread is that of a sample (n − 1), 0.141, not 0.1."""
    mask = m.top_mask(POOL, 0.05)
    good, bad = np.flatnonzero(mask), np.flatnonzero(~mask)
    recs = [fake_record(POOL, "s", seed, np.concatenate([good[:k], bad[:30 - k]])) for seed, k in ((0, 2), (1, 4))]
    row = s.summarize(recs, POOL, "maximize", top_fractions=(0.05,)).iloc[0]
    assert row["top5_final_mean"] == pytest.approx(0.3)
    assert row["top5_final_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    regrets = [POOL.max() - POOL[r["order"]].max() for r in recs]
    assert row["regret_final_std"] == pytest.approx(np.std(regrets, ddof=1))


def test_random_expectation_is_in_objective_units_when_minimising() -> None:
    """Random's expected best after one pick is the pool mean, and after the whole pool its minimum (or maximum)."""
    order = np.random.default_rng(0).permutation(POOL.size)
    for direction, best in (("minimize", POOL.min()), ("maximize", POOL.max())):
        frame = s.curves([fake_record(POOL, "s", 0, order)], POOL, direction, include_random=True)
        rand = frame[frame["strategy"] == s.RANDOM_LABEL].set_index("n")["best_so_far"]
        assert rand[1] == pytest.approx(POOL.mean()) and rand[POOL.size] == pytest.approx(best)
        assert frame[frame["strategy"] == "s"]["best_so_far"].iloc[-1] == pytest.approx(best)


def test_the_last_models_scores_are_those_of_its_last_fit() -> None:
    rec = fake_record(POOL, "s", 0, np.arange(20))
    rec["fits"] = [{"n_train": n, "pool_mae": mae, "pool_cov68": 0.6, "pool_cov95": cov, "seconds": 0.1}
                   for n, mae, cov in ((5, 0.5, 0.7), (10, 0.3, 0.8), (15, 0.2, 0.9))]
    row = s.summarize([rec], POOL, "maximize").iloc[0]
    assert row["mae_last"] == pytest.approx(0.2) and row["cov95_last"] == pytest.approx(0.9)
