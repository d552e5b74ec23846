"""Replays are real campaigns driven by a lookup table: records, determinism, the log, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aloop.benchmark import ReplayError, Strategy, Task, run_replay
from aloop.benchmark.task import TaskWarning, dropped_rows
from aloop.campaigns import Campaign


def test_record_follows_the_campaign(small_task, tmp_path):
    rec = run_replay(small_task, Strategy.parse("ef-gp-log_ei"), 3, n_init=4, batch_size=3, budget=16, workdir=tmp_path)
    order = np.asarray(rec["order"])
    assert len(order) == 16 and len(set(order)) == 16
    assert np.allclose(rec["values"], small_task.y[order])
    assert rec["formulas"] == [str(f) for f in small_task.formulas[order]]  # readable without the task
    assert rec["batch"][:4] == [0] * 4 and rec["batch"][4:7] == [1] * 3 and rec["batch"][-3:] == [4] * 3
    assert len(rec["fits"]) == 4  # batches 1..4 (12 measurements) were model-based
    assert [f["n_train"] for f in rec["fits"]] == [4, 7, 10, 13]
    for f in rec["fits"]:
        assert 0 < f["pool_mae"] < 1 and 0 <= f["pool_cov95"] <= 1 and f["pool_cov68"] <= f["pool_cov95"]
    # The replay is logged like any campaign: the log holds every measurement and the proposals' batches.
    with Campaign.open(tmp_path / "campaign.toml") as campaign:
        obs = campaign.log.events()
        measured = [e for e in obs if e.kind == "measured"]
        assert len(measured) == 16
        assert [e.composition_key for e in measured] == list(small_task.keys[order])


def test_same_seed_same_run_other_seed_other_start(small_task):
    s = Strategy.parse("ef-gp-ucb")
    a = run_replay(small_task, s, 1, n_init=5, budget=9)
    b = run_replay(small_task, s, 1, n_init=5, budget=9)
    c = run_replay(small_task, s, 2, n_init=5, budget=9)
    assert a["order"] == b["order"]
    assert a["order"][:5] != c["order"][:5]


def test_gp_forest_strategy_replays_with_the_gps_refit_schedule(small_task, tmp_path):
    rec = run_replay(small_task, Strategy.parse("ef-gp_forest-ucb"), 0, n_init=5, budget=12, workdir=tmp_path)
    assert len(set(rec["order"])) == 12 and rec["spec"]["surrogate"] == "gp_forest"
    with Campaign.open(tmp_path / "campaign.toml") as campaign:
        fitted_on = [d["hyperparameters_fitted_on"] for d in campaign.log.model_versions()["details"]]
    assert fitted_on == [5, 5, 7, 7, 9, 9, 9]  # refit at 25% growth, as for the GP


def test_random_replays_of_consecutive_seeds_are_independent(small_task):
    """Seed s in batch b + 1 must not reuse seed s + 1's stream of batch b. They once shared it, so every
    seed drew one random sequence shifted by a batch: pick i + 1 of seed 1 was pick i of seed 2, give or
    take one place in the list of candidates left (a pool row index ± 1)."""
    a, b = (run_replay(small_task, Strategy.parse("random"), s, n_init=5, budget=40)["order"][5:] for s in (1, 2))
    echoes = sum(abs(x - y) <= 2 for x, y in zip(a[1:], b[:-1], strict=True))
    assert echoes <= 6, f"{echoes} of 34 picks of seed 1 echo seed 2's previous pick (about 1 expected)"


@pytest.mark.slow
def test_model_based_strategy_beats_random_on_the_real_plate(small_task):
    """On 150 real compositions, log-EI finds more of the 15 lowest overpotentials than random picks (4 seeds each)."""
    top = set(np.argsort(small_task.y)[:15])
    found = {name: sum(len(top.intersection(run_replay(small_task, Strategy.parse(name), s, n_init=5, budget=40)["order"]))
                       for s in range(4))
             for name in ("ef-gp-log_ei", "random")}
    assert found["ef-gp-log_ei"] > 1.5 * found["random"], found


def test_window_task(small_task):
    lo, hi = np.quantile(small_task.y, [0.4, 0.5])
    task = Task(small_task.name, small_task.formulas, small_task.keys, small_task.y, "overpotential_V", "V",
                "window", (float(lo), float(hi)))
    rec = run_replay(task, Strategy.parse("magpie-gp-window"), 0, n_init=5, budget=12)
    assert len(rec["order"]) == 12


def test_task_from_frame_merges_and_drops():
    frame = pd.DataFrame({"formula": ["NiO", "Ni2O2", "Xx2", "Fe2O3", "CoO", "MnO2"] + [f"Cu{i}O" for i in range(1, 8)],
                          "y": [1.0, 3.0, 5.0, 2.0, np.nan, 4.0] + list(range(7)), "t": range(13)})
    with pytest.warns(TaskWarning, match="2 of 13 rows left out"):
        task = Task.from_frame("t", frame, "y", direction="maximize")
    assert len(task) == 10  # Xx2 unparsable, CoO has no value, NiO = Ni2O2
    assert task.y[list(task.formulas).index("NiO")] == 2.0
    assert list(task.extra.columns) == ["t"]
    frame.loc[5, "y"] = 1e300  # beyond what a campaign records: left out like a missing value, not a crash later
    with pytest.raises(ReplayError, match="the pool has 9 compositions"), pytest.warns(TaskWarning, match="3 of 13"):
        Task.from_frame("t", frame, "y", direction="maximize")
    assert dropped_rows(frame, "y")[-1] == (5, "MnO2", "'y' = 1e+300 is beyond ±1e+100, more than a campaign records "
                                                       "(a typo?)")


def test_a_temperature_series_averaged_into_one_value_is_pointed_out():
    frame = pd.DataFrame({"formula": ["Bi2Te3"] * 3 + ["Sb2Te3"] * 2 + [f"Cu{i}Se" for i in range(1, 10)],
                          "zT": [0.5, 0.9, 1.1, 0.4, 0.6] + [0.1] * 9, "T [K]": [300, 400, 500, 300, 400] + [300] * 9})
    with pytest.warns(TaskWarning, match=r"measured at several temperatures \('T \[K\]' 300 to 500\), and their 'zT'"):
        task = Task.from_frame("te", frame, "zT", direction="maximize")
    assert task.y[:2].tolist() == pytest.approx([2.5 / 3, 0.5]) and len(task) == 11


def test_a_diverse_initial_design_starts_as_a_campaign_does(small_task, tmp_path):
    """``initial_design="diverse"``: the first n_init picks are the campaign's k-means design on the strategy's
    features (not the seed's random rows); the random strategy keeps its random start."""
    s = Strategy.parse("ef-gp-ucb")
    diverse = run_replay(small_task, s, 1, n_init=5, budget=8, initial_design="diverse", workdir=tmp_path / "d")
    plain = run_replay(small_task, s, 1, n_init=5, budget=8)
    assert diverse["initial_design"] == "diverse" and plain["initial_design"] == "random"
    assert sorted(diverse["order"][:5]) != sorted(plain["order"][:5])
    with Campaign.open(tmp_path / "d" / "campaign.toml") as campaign:
        first = campaign.log.proposals().sort_values("proposal_id").head(5)
    assert first["reason"].str.startswith("initial design: diverse — nearest to k-means centre").all()
    assert [small_task.keys[r] for r in diverse["order"][:5]] == first["key"].tolist()
    rand = run_replay(small_task, Strategy.parse("random"), 1, n_init=5, budget=6, initial_design="diverse")
    assert rand["initial_design"] == "random"
    with pytest.raises(ReplayError, match="initial design must be one of random, diverse, got 'sobol'"):
        run_replay(small_task, s, 1, n_init=5, budget=8, initial_design="sobol")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"budget": 151}, "budget"), ({"n_init": 0}, "n_init"), ({"budget": 3}, "budget"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_replay_sizes(small_task, kwargs, match):
    args = {"n_init": 5, "batch_size": 1, "budget": 10} | kwargs
    with pytest.raises(ReplayError, match=match):
        run_replay(small_task, Strategy.parse("ef-gp-log_ei"), 0, **args)


@pytest.mark.parametrize(("text", "match"), [
    ("ef-gp", "FEATURIZER"), ("soap-gp-log_ei", "featurizer"), ("ef-svm-log_ei", "surrogate"),
    ("ef-gp-best", "acquisition"), ("elemnet/x-gp-log_ei", "layer"), ("magpie/2-gp-log_ei", "layer"),
    ("elemnet/20-gp-ucb", "layer must be a whole number from 1 to 16, got 20"), ("elemnet/0-gp-ucb", "from 1 to 16"),
])
def test_bad_strategies(text, match):
    with pytest.raises(ReplayError, match=match):
        Strategy.parse(text)


def test_spec_and_digest_identify_strategies_and_pools(small_task):
    """A strategy's spec holds its options in plain JSON (default options add nothing to its name)."""
    plain, beta = Strategy.parse("ef-gp-ucb"), Strategy("ef", "gp", "ucb", acquisition_options={"beta": np.float64(1)})
    assert plain.name == beta.name == "ef-gp-ucb"
    assert plain.spec()["acquisition_options"] == {} and beta.spec()["acquisition_options"] == {"beta": 1.0}
    assert type(beta.spec()["acquisition_options"]["beta"]) is float
    with pytest.raises(ReplayError, match="options must be"):
        Strategy("ef", "gp", "ucb", acquisition_options={"beta": object()}).spec()
    same = Task(small_task.name, small_task.formulas, small_task.keys, small_task.y.copy(), "o", "V", "minimize")
    assert same.digest() == small_task.digest()
    swapped = small_task.y.copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    assert Task("t", small_task.formulas, small_task.keys, swapped, "o", "V", "minimize").digest() != small_task.digest()


def test_bad_tasks(small_task):
    frame = pd.DataFrame({"formula": ["NiO"] * 3, "y": [1, 2, 3]})
    with pytest.raises(ReplayError, match="no column 'z'"):
        Task.from_frame("t", frame, "z", direction="maximize")
    with pytest.raises(ReplayError, match="at least 10"):
        Task.from_frame("t", frame, "y", direction="maximize")
    with pytest.raises(ReplayError, match="say which way is better for 'y': direction='maximize', 'minimize'"):
        Task.from_frame("t", frame, "y")
    with pytest.raises(ReplayError, match="window"):
        Task("t", small_task.formulas, small_task.keys, small_task.y, "o", "V", "window")
    with pytest.raises(ReplayError, match="direction"):
        Task("t", small_task.formulas, small_task.keys, small_task.y, "o", "V", "down")
    with pytest.raises(ReplayError, match="no target"):
        Task.from_dataset("oer-plate-3496", "gap")


def test_units_in_the_target_header_become_the_objectives_units(oer_frame):
    """A column headed 'NAME [UNITS]' (no valid objective name: results files head columns so) gives NAME and UNITS."""
    frame = oer_frame.sample(30, random_state=3).rename(columns={"overpotential_V": "eta [V]"})
    task = Task.from_frame("t", frame, "eta [V]", direction="minimize")
    assert (task.objective, task.units) == ("eta", "V")
    assert Task.from_frame("t", frame, "eta [V]", units="mV", direction="minimize").units == "mV"  # given units win
    assert Task.from_frame("t", frame.rename(columns={"eta [V]": "eta (V)"}), "eta (V)",
                           direction="minimize").objective == "eta (V)"  # a valid name is kept as it is
    odd = frame.rename(columns={"eta [V]": "a[1] b"})
    with pytest.raises(ReplayError, match=r"objective name 'a\[1\] b' must be non-empty text without '\['"):
        Task.from_frame("t", odd, "a[1] b", direction="minimize")


def test_pools_nothing_can_be_found_in_are_refused(small_task):
    """A constant target, or a window that holds no pool value, leaves nothing to find: refused with the values."""
    with pytest.raises(ReplayError, match="all 150 values of 'o' are 1: there is nothing to find"):
        Task("t", small_task.formulas, small_task.keys, np.ones(150), "o", "V", "minimize")
    with pytest.raises(ReplayError, match="no pool value of 'o' lies in the window 10–20 .*range from"):
        Task("t", small_task.formulas, small_task.keys, small_task.y, "o", "V", "window", (10.0, 20.0))


def test_empty_formula_cells_are_named_empty(small_task):
    frame = pd.DataFrame({"formula": [*small_task.formulas[:12], None, np.nan], "y": np.arange(14.0)})
    assert [r for _, _, r in dropped_rows(frame, "y")] == ["empty formula", "empty formula"]


def test_rows_left_out_of_a_pool_are_warned_about_and_listed(small_task):
    frame = pd.DataFrame({"formula": [*small_task.formulas[:12], "Xx2O3", small_task.formulas[12]],
                          "y": [*np.arange(12.0), 1.0, np.nan]})
    with pytest.warns(TaskWarning, match=r"2 of 14 rows left out of the pool .* row 13 'Xx2O3'"):
        task = Task.from_frame("mine", frame, "y", direction="minimize")
    assert [(i, f) for i, f, _ in task.dropped] == [(12, "Xx2O3"), (13, small_task.formulas[12])]
    assert repr(task) == "Task('mine': 12 compositions, from 12 rows, 2 rows left out; minimize y, 0 to 11)"
    assert "overpotential_V [V], 0.3" in repr(small_task) and len(repr(small_task)) < 200  # a summary, not the arrays


def test_dataset_tasks_take_the_registrys_direction() -> None:
    """Lower overpotential is better (registry); a target the registry has no direction for needs one."""
    assert Task.from_dataset("oer-plate-3496").direction == "minimize"
    assert Task.from_dataset("oer-plate-3496", direction="maximize").direction == "maximize"  # an explicit one wins
    assert Task.from_dataset("mp-transport", "PF_p").direction == "maximize"
    with pytest.raises(ReplayError, match="does not record whether a higher or lower 'S_p' is better"):
        Task.from_dataset("mp-transport", "S_p")
    assert Task.from_dataset("mp-transport", "S_p", window=(100.0, 200.0)).direction == "window"


def test_the_last_batch_is_cut_to_the_budget(small_task):
    rec = run_replay(small_task, Strategy.parse("random"), 0, n_init=5, batch_size=2, budget=8)
    assert len(rec["order"]) == len(set(rec["order"])) == 8 and rec["batch"] == [0] * 5 + [1, 1, 2]


def test_a_strategys_own_refit_growth_beats_the_replays_default(small_task, tmp_path):
    """``refit_growth`` among a strategy's surrogate options is its own choice; the replay's 0.25 only fills a gap."""
    every_time = Strategy("ef", "gp", "ucb", surrogate_options={"refit_growth": 0.0}, label="ef-gp-ucb-refit")
    run_replay(small_task, every_time, 0, n_init=5, budget=8, workdir=tmp_path)
    with Campaign.open(tmp_path / "campaign.toml") as campaign:
        fitted_on = [d["hyperparameters_fitted_on"] for d in campaign.log.model_versions()["details"]]
    assert fitted_on == [5, 6, 7]  # refitted on every result, not at 25% growth ([5, 5, 7])


def test_pool_scores_are_taken_on_the_compositions_not_yet_measured(small_task, tmp_path):
    """The record's pool MAE is the model's error on the rows it had not seen (its training rows would flatter it)."""
    rec = run_replay(small_task, Strategy.parse("ef-gp-ucb"), 0, n_init=5, budget=6, workdir=tmp_path)
    (fit,) = rec["fits"]
    assert fit["n_train"] == 5
    with Campaign.open(tmp_path / "campaign.toml", progress=False) as campaign:  # back to the model of that fit
        campaign.retract(int(campaign.log.observations()["event_id"].iloc[-1]), "back to the first five")
        unseen = np.setdiff1d(np.arange(len(small_task)), rec["order"][:5])
        mean, _ = campaign.surrogate().predict(campaign.pool.features[campaign.pool.rows(small_task.keys[unseen])])
    assert fit["pool_mae"] == pytest.approx(np.mean(np.abs(mean[:, 0] - small_task.y[unseen])), rel=1e-6)
