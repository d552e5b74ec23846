"""Studies fan out over joblib and Ray, stream records to disk and resume without redoing finished runs."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from aloop.benchmark import ReplayError, Strategy
from aloop.benchmark.study import Study, load_records, pending_runs, record_path, report, run_study

STRATEGIES = [Strategy.parse("ef-gp-log_ei"), Strategy.parse("random")]


def _study(task, **kw):
    args = {"n_init": 4, "batch_size": 2, "budget": 10} | kw
    return Study(task, STRATEGIES, [0, 1], **args)


def test_joblib_study_resumes(small_task, tmp_path):
    seen = []
    records = run_study(_study(small_task), tmp_path, backend="joblib", n_jobs=2, on_record=seen.append)
    assert len(records) == len(seen) == 4
    assert {(r["strategy"], r["seed"]) for r in records} == {(s.name, k) for s in STRATEGIES for k in (0, 1)}
    assert (tmp_path / "work" / "ef-gp-log_ei" / "seed-1" / "campaign.toml").exists()
    # Nothing left to do: no run is repeated.
    again = []
    assert len(run_study(_study(small_task), tmp_path, backend="joblib", on_record=again.append)) == 4
    assert again == []
    # A lost record is the only run redone, and it comes out identical (replays are deterministic).
    lost = record_path(tmp_path, "ef-gp-log_ei", 1)
    before = json.loads(lost.read_text())
    lost.unlink()
    redo = []
    run_study(_study(small_task), tmp_path, backend="serial", on_record=redo.append)
    assert [(r["strategy"], r["seed"]) for r in redo] == [("ef-gp-log_ei", 1)]
    assert redo[0]["order"] == before["order"]
    paths = report(tmp_path, small_task)
    assert {"csv", "json", "md"} <= set(paths) and all(p.exists() for p in paths.values())
    # One plot set per top fraction; regret does not depend on the set, so it is drawn once.
    kinds = ("top_percent", "ef", "af")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        ["regret.png"] + [f"top{k}_{kind}.png" for k in (5, 1) for kind in kinds])
    assert paths["curves_top5"].name == "curves_top5.csv" and paths["curves_top1"].exists()
    assert len(pd.read_csv(paths["curves_top5"])) == (len(STRATEGIES) + 1) * 10  # and random's expectation, per n


def test_a_window_study_plots_its_in_window_set_once(small_task, tmp_path):
    """A window's top-5% and top-1% sets are both every in-window composition: one set of plots, so named."""
    low, high = np.quantile(small_task.y, [0.2, 0.4])
    task = replace(small_task, direction="window", window=(float(low), float(high)))
    run_study(Study(task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8), tmp_path, backend="serial")
    paths = report(tmp_path, task)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "regret.png", "window_af.png", "window_ef.png", "window_top_percent.png"]
    assert paths["af_window"].name == "window_af.png" and paths["regret"].name == "regret.png"


def test_runs_made_with_other_elemnet_weights_are_redone(small_task, tmp_path, monkeypatch):
    study = Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8)
    first = run_study(study, tmp_path, backend="serial")
    assert first[0]["features_version"] is None  # random / EF runs do not depend on source weights
    assert Strategy.parse("elemnet-gp-log_ei").features_version() == Strategy.parse("elemnet/3-gp-ucb").features_version()
    monkeypatch.setattr(Strategy, "features_version", lambda self: "new-weights")
    redo = []
    run_study(study, tmp_path, backend="serial", on_record=redo.append)
    assert [r["features_version"] for r in redo] == ["new-weights"]
    assert run_study(study, tmp_path, backend="serial", on_record=redo.append) and len(redo) == 1


def test_changed_setup_is_refused(small_task, tmp_path):
    run_study(Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8), tmp_path, backend="serial")
    with pytest.raises(ReplayError, match="different set-up.*budget"):
        run_study(_study(small_task), tmp_path, backend="serial")


def test_the_initial_design_is_part_of_the_set_up(small_task, tmp_path):
    """A study folder of random starts (also one from before the design was stored) refuses diverse ones."""
    study = Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8)
    run_study(study, tmp_path, backend="serial")
    setup = json.loads((tmp_path / "study.json").read_text())
    assert setup["initial_design"] == "random"
    del setup["initial_design"]
    (tmp_path / "study.json").write_text(json.dumps(setup))
    assert pending_runs(study, tmp_path) == []
    with pytest.raises(ReplayError, match="different set-up: initial_design 'random' there, 'diverse'"):
        run_study(replace(study, initial_design="diverse"), tmp_path, backend="serial")


def test_a_folder_without_finished_runs_takes_a_corrected_set_up(small_task, tmp_path):
    """A study interrupted before its first run ended (only study.json written) binds nothing: the command
    typed again with a corrected budget runs; once a run is finished, the set-up is fixed."""
    from aloop.benchmark.study import write_json_atomic

    typo = Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=120)
    write_json_atomic(tmp_path / "study.json", typo.setup())  # what run_study writes before the first run
    fixed = Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8)
    assert len(run_study(fixed, tmp_path, backend="serial")) == 1
    assert json.loads((tmp_path / "study.json").read_text())["budget"] == 8
    with pytest.raises(ReplayError, match="different set-up: budget 8 there, 120"):
        run_study(typo, tmp_path, backend="serial")


def test_a_damaged_or_foreign_record_is_named(small_task, tmp_path):
    study = Study(small_task, STRATEGIES[1:], [0, 1], n_init=4, batch_size=2, budget=8)
    run_study(study, tmp_path, backend="serial")
    damaged = record_path(tmp_path, "random", 1)
    damaged.write_text("")  # e.g. a disk that filled up under a copy
    with pytest.raises(ReplayError, match=f"{re.escape(str(damaged))} is not a readable run record.*move it away"):
        run_study(study, tmp_path, backend="serial")
    with pytest.raises(ReplayError, match="is not a readable run record"):
        report(tmp_path, small_task)
    damaged.unlink()
    foreign = json.loads(record_path(tmp_path, "random", 0).read_text()) | {"pool_size": 2121}
    record_path(tmp_path, "random", 1).write_text(json.dumps(foreign | {"seed": 1}))
    with pytest.raises(ReplayError, match="pool_size 2121 but the task's pool has 150 rows.*not from this study"):
        report(tmp_path, small_task)


def test_other_task_is_refused_and_study_json_kept(small_task, tmp_path):
    """Another objective, the same objective with other values, rows or units, never reuses a folder's runs."""
    study = Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8)
    run_study(study, tmp_path, backend="serial")
    before = (tmp_path / "study.json").read_text()
    others = {"objective": replace(small_task, objective="other"), "pool": replace(small_task, y=small_task.y + 1),
              "direction": replace(small_task, direction="maximize"), "units": replace(small_task, units="mV")}
    for what, task in others.items():
        with pytest.raises(ReplayError, match=f"different set-up: {what}.*another output folder"):
            run_study(replace(study, task=task), tmp_path, backend="serial")
    assert (tmp_path / "study.json").read_text() == before


def test_report_refuses_another_task_before_writing(small_task, tmp_path):
    """A minimizing study reported with a maximizing (or otherwise different) task is refused; nothing is rewritten."""
    run_study(Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=8), tmp_path, backend="serial")
    report(tmp_path, small_task)
    before = {p: p.read_bytes() for p in tmp_path.glob("results.*")}
    others = {"direction 'minimize' there, 'maximize' in the task given": replace(small_task, direction="maximize"),
              "objective 'overpotential_V' there, 'eta' in the task given": replace(small_task, objective="eta"),
              "window None there, [0.3, 0.4] in the task given": replace(small_task, direction="window",
                                                                          window=(0.3, 0.4)),
              "pool (its compositions or their values differ)": replace(small_task, y=small_task.y + 1)}
    for needle, task in others.items():
        with pytest.raises(ReplayError, match=re.escape(needle)):
            report(tmp_path, task)
    assert {p: p.read_bytes() for p in tmp_path.glob("results.*")} == before


def test_other_strategy_options_are_refused(small_task, tmp_path):
    """One name, other options: refused for the finished seeds and for new ones; a label keeps them apart."""
    plain = Strategy.parse("ef-gp-ucb")
    greedy = replace(plain, acquisition_options={"beta": 1e6})
    run_study(Study(small_task, [plain], [0], n_init=4, batch_size=2, budget=6), tmp_path, backend="serial")
    assert load_records(tmp_path)[0]["spec"] == plain.spec()
    for seeds in ([0], [1]):
        with pytest.raises(ReplayError, match=r"'ef-gp-ucb' made with other choices \(acquisition_options"):
            run_study(Study(small_task, [greedy], seeds, n_init=4, batch_size=2, budget=6), tmp_path)
    labelled = Study(small_task, [replace(greedy, label="ef-gp-ucb-beta1e6")], [0], n_init=4, batch_size=2, budget=6)
    assert [(s.name, k) for s, k in pending_runs(labelled, tmp_path)] == [("ef-gp-ucb-beta1e6", 0)]


def _drop_campaign_defaults(folder, name):
    """Make a folder's runs of ``name`` look as they did before specs stored the campaign's defaults."""
    setup = json.loads((folder / "study.json").read_text())
    setup["strategy_specs"][name].pop("campaign_defaults")
    (folder / "study.json").write_text(json.dumps(setup))
    for path in (folder / "runs" / name).glob("seed-*.json"):
        rec = json.loads(path.read_text())
        rec["spec"].pop("campaign_defaults")
        path.write_text(json.dumps(rec))


def test_runs_made_under_other_campaign_defaults_are_refused_until_moved_away(small_task, tmp_path):
    """A spec stores what the campaign filled in; runs from before the GP's defaults changed are not resumed."""
    plain = Strategy.parse("ef-gp-ucb")
    assert plain.spec()["campaign_defaults"] == {"input_bounds": "pool", "lengthscale_sd": 0.15, "max_fit_rows": 400}
    assert "campaign_defaults" not in Strategy.parse("ef-ensemble-ucb").spec()
    explicit = replace(plain, surrogate_options={"input_bounds": "pool", "lengthscale_sd": 0.15}, label="tight")
    study = Study(small_task, [plain, explicit], [0], n_init=4, batch_size=2, budget=6)
    run_study(study, tmp_path, backend="serial")
    for name in ("ef-gp-ucb", "tight"):
        _drop_campaign_defaults(tmp_path, name)
    # Before session 27 the campaign filled in only max_fit_rows: the labelled runs set the rest themselves.
    assert pending_runs(Study(small_task, [explicit], [0], n_init=4, batch_size=2, budget=6), tmp_path) == []
    with pytest.raises(ReplayError, match=r"'ef-gp-ucb' made with other choices \(campaign_defaults \{'max_fit_rows': "
                                          r"400\} there"):
        pending_runs(study, tmp_path)
    (tmp_path / "runs" / "ef-gp-ucb").rename(tmp_path / "old-ef-gp-ucb")  # moved aside to be redone
    assert [(s.name, k) for s, k in pending_runs(study, tmp_path)] == [("ef-gp-ucb", 0)]
    run_study(study, tmp_path, backend="serial")
    assert json.loads((tmp_path / "study.json").read_text())["strategy_specs"]["ef-gp-ucb"] == plain.spec()


def test_gp_runs_from_before_specs_are_taken_as_made_under_the_old_campaign_defaults(small_task, tmp_path):
    """With no spec anywhere, a GP strategy's runs predate the session-27 defaults: refused, not mixed with new runs."""
    study = Study(small_task, STRATEGIES, [0], n_init=4, batch_size=2, budget=6)
    run_study(study, tmp_path, backend="serial")
    setup = json.loads((tmp_path / "study.json").read_text())
    (tmp_path / "study.json").write_text(json.dumps({k: v for k, v in setup.items() if k != "strategy_specs"}))
    for name in ("ef-gp-log_ei", "random"):
        path = record_path(tmp_path, name, 0)
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "spec"}))
    with pytest.raises(ReplayError, match=r"'ef-gp-log_ei' made with other choices \(campaign_defaults "
                                          r"\{'max_fit_rows': 400\} there"):
        pending_runs(study, tmp_path)
    assert pending_runs(Study(small_task, STRATEGIES[1:], [0], n_init=4, batch_size=2, budget=6), tmp_path) == []


def test_folder_from_before_specs_and_digests_is_resumed_and_upgraded(small_task, tmp_path):
    """Committed studies have no pool digest, specs or objective check: their runs still count as finished."""
    study = Study(small_task, STRATEGIES[1:], [0, 1], n_init=4, batch_size=2, budget=8)
    run_study(study, tmp_path, backend="serial")
    setup = json.loads((tmp_path / "study.json").read_text())
    legacy = {k: v for k, v in setup.items() if k not in ("pool_digest", "strategy_specs")}
    (tmp_path / "study.json").write_text(json.dumps(legacy))
    for seed in (0, 1):
        path = record_path(tmp_path, "random", seed)
        rec = json.loads(path.read_text())
        del rec["spec"]
        path.write_text(json.dumps(rec))
    assert pending_runs(study, tmp_path) == []
    assert json.loads((tmp_path / "study.json").read_text()) == legacy  # listing writes nothing
    redo = []
    run_study(study, tmp_path, backend="serial", on_record=redo.append)
    assert redo == [] and json.loads((tmp_path / "study.json").read_text()) == setup


def test_seeds_are_plain_non_negative_integers(small_task, tmp_path):
    study = Study(small_task, STRATEGIES[1:], list(np.arange(2)), n_init=np.int64(4), budget=6)
    assert study.seeds == (0, 1) and all(type(k) is int for k in (*study.seeds, study.n_init))
    assert [r["seed"] for r in run_study(study, tmp_path, backend="serial")] == [0, 1]
    for seeds, match in (([-1], "each seed must be ≥ 0, got -1"), ([0.5], "each seed must be a whole number, got 0.5")):
        with pytest.raises(ReplayError, match=match):
            Study(small_task, STRATEGIES, seeds)


def test_sizes_are_refused_naming_the_argument(small_task):
    """A fractional size names its argument and value; a batch above budget − n_init is refused, not shrunk."""
    for kw, match in (({"budget": 20.0}, "budget must be a whole number, got 20.0"),
                      ({"n_init": 2.5}, "n_init must be a whole number, got 2.5"),
                      ({"batch_size": 30, "budget": 20},
                       "batch size 30 is more than the 15 measurements left .*budget 20 − n_init 5.* at most 15")):
        with pytest.raises(ReplayError, match=match):
            Study(small_task, STRATEGIES, 1, **kw)
    assert Study(small_task, STRATEGIES, 1, batch_size=15, budget=20).batch_size == 15


def test_a_seed_count_means_seeds_0_to_n_minus_1(small_task):
    """As `aloop benchmark --seeds N`: an int n is seeds 0..n-1; other types are clear errors, not TypeErrors."""
    assert Study(small_task, STRATEGIES, 3).seeds == (0, 1, 2)
    assert Study(small_task, STRATEGIES, np.int64(2)).seeds == (0, 1)
    for seeds, match in ((0, "the number of seeds must be ≥ 1, got 0"), (2.0, "a count n .* got 2.0"),
                         ("01", "a count n .* got '01'"), (None, "a count n .* got None"),
                         (True, "a count n .* got True")):
        with pytest.raises(ReplayError, match=match):
            Study(small_task, STRATEGIES, seeds)


def test_invalid_strategy_is_refused_before_the_folder_is_made(small_task, tmp_path):
    study = Study(small_task, [STRATEGIES[1], Strategy.parse("ef-gp-window")], [0], n_init=4, budget=6)
    with pytest.raises(ReplayError, match="'ef-gp-window'.*window"):
        run_study(study, tmp_path / "out", backend="serial")
    assert not (tmp_path / "out").exists()


def test_report_of_some_seeds(small_task, tmp_path):
    run_study(Study(small_task, STRATEGIES[1:], [0, 1], n_init=4, budget=6), tmp_path, backend="serial")
    assert [r["seed"] for r in load_records(tmp_path, ["random"], [1])] == [1]
    rows = json.loads(report(tmp_path, small_task, strategies=["random"], seeds=[1])["json"].read_text())
    assert [r["seeds"] for r in rows] == [1]
    with pytest.raises(ReplayError, match="no finished runs of these strategies and seeds"):
        report(tmp_path, small_task, strategies=["ef-gp-ucb"])


@pytest.mark.parametrize(("kw", "match"), [
    ({"seeds": []}, "seeds"), ({"seeds": [1, 1]}, "seeds"), ({"budget": 1000}, "budget"),
    ({"strategies": [STRATEGIES[0], STRATEGIES[0]]}, "unique"), ({"strategies": []}, "at least one"),
    ({"strategies": [Strategy("ef", "gp", "ucb", label="ef gp"), Strategy("ef", "gp", "log_ei", label="ef/gp")]},
     r"strategy names \['ef gp', 'ef/gp'\] share the folder name 'ef_gp'"),
    ({"strategies": "ef-gp-ucb"}, "strategies must be a list"), ({"strategies": [3]}, "Strategy objects or names"),
    ({"initial_design": "lhs"}, "initial design must be one of random, diverse, got 'lhs'"),
])
def test_bad_studies(small_task, kw, match):
    args = {"strategies": STRATEGIES, "seeds": [0]} | kw
    with pytest.raises(ReplayError, match=match):
        Study(small_task, args.pop("strategies"), args.pop("seeds"), **args)


def test_bad_backend(small_task, tmp_path):
    with pytest.raises(ReplayError, match="backend"):
        run_study(_study(small_task), tmp_path, backend="dask")
    with pytest.raises(ReplayError, match="n_jobs must be a whole number ≥ 1, got '2'"):
        run_study(_study(small_task), tmp_path, n_jobs="2")
    with pytest.raises(ReplayError, match="n_jobs"):
        run_study(_study(small_task), tmp_path, n_jobs=0)
    with pytest.raises(ReplayError, match="no finished runs"):
        report(tmp_path / "empty", small_task)


@pytest.mark.slow
def test_ray_backend_matches_joblib(small_task, tmp_path):
    """A local Ray instance started here runs the same replays and gets the same records."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_records = run_study(_study(small_task, budget=8), tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    local = run_study(_study(small_task, budget=8), tmp_path / "local", backend="serial", keep_work=False)
    assert [r["backend"] for r in ray_records] == ["ray"] * 4
    assert [(r["strategy"], r["seed"], r["order"]) for r in ray_records] == \
        [(r["strategy"], r["seed"], r["order"]) for r in local]
    assert not (tmp_path / "ray" / "work").exists()
    assert len(load_records(tmp_path / "ray")) == 4


def test_strategies_may_be_given_by_name(small_task):
    study = Study(small_task, ["ef-gp-ucb", "random"], 1, budget=10)
    assert [s.name for s in study.strategies] == ["ef-gp-ucb", "random"]
    assert study.strategies[0] == Strategy.parse("ef-gp-ucb")


def test_records_keep_the_software_and_a_mixed_table_says_so(small_task, tmp_path):
    study = Study(small_task, STRATEGIES[1:], [0, 1], n_init=4, batch_size=2, budget=8)
    records = run_study(study, tmp_path, backend="serial")
    from importlib.metadata import version

    assert all(r["software"]["aloop"] == version("aloop") and r["software"]["torch"] == version("torch")
               for r in records)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # one version: no warning
        report(tmp_path, small_task)
    path = record_path(tmp_path, "random", 1)
    old = json.loads(path.read_text())
    path.write_text(json.dumps({**old, "software": {**old["software"], "aloop": "0.0.9"}}))
    with pytest.warns(UserWarning, match=r"made with different software \(.*aloop 0\.0\.9"):
        report(tmp_path, small_task)


def test_strategies_of_a_study_share_each_seeds_initial_design(small_task, tmp_path):
    """Every strategy starts seed k from the same random picks, so strategies differ only by what they choose."""
    study = Study(small_task, ["ef-gp-ucb", "magpie-ensemble-log_ei", "random"], [0, 1], n_init=5, batch_size=1,
                  budget=5)
    records = run_study(study, tmp_path, backend="serial")
    starts = {(r["strategy"], r["seed"]): r["order"] for r in records}
    for seed in (0, 1):
        assert starts["ef-gp-ucb", seed] == starts["magpie-ensemble-log_ei", seed] == starts["random", seed]
    assert starts["ef-gp-ucb", 0] != starts["ef-gp-ucb", 1]
