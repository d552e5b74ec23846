"""`aloop benchmark`: a small study from a user's CSV end to end, resume, and clean user errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aloop.cli import app
from aloop.datasets import load

runner = CliRunner()


def invoke(*args: object):  # -> typer.testing.Result
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """80 real compositions with their p-type Seebeck coefficient (embedded MP transport data)."""
    frame = load("mp-transport").drop_duplicates("formula").sample(80, random_state=1)
    path = tmp_path_factory.mktemp("lib") / "library.csv"
    frame[["formula", "S_p"]].to_csv(path, index=False)
    return path


def test_csv_study_writes_tables_and_resumes(library, tmp_path):
    args = ("benchmark", "--csv", library, "--target", "S_p", "--units", "μV/K", "--direction", "maximize",
            "-o", tmp_path / "study", "--seeds", "2", "--budget", "8", "--n-init", "4", "-q", "2",
            "-s", "ef-gp-ucb", "-s", "random", "--backend", "serial")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "ef-gp-ucb" in result.stdout and "random" in result.stdout  # the terminal table (all columns in results.md)
    rows = json.loads((tmp_path / "study" / "results.json").read_text())
    assert sorted(r["strategy"] for r in rows) == ["ef-gp-ucb", "random"]
    assert all(r["seeds"] == 2 and r["budget"] == 8 for r in rows)
    assert (tmp_path / "study" / "plots" / "top5_top_percent.png").stat().st_size > 5000
    again = invoke(*args)
    assert again.exit_code == 0 and "[1]" not in again.stderr  # nothing re-run
    # Fewer seeds: the table and the count are those of the runs asked for; the others are named.
    fewer_args = list(args)
    fewer_args[fewer_args.index("--seeds") + 1] = "1"
    fewer = invoke(*fewer_args)
    assert fewer.exit_code == 0 and "[1]" not in fewer.stderr
    said = " ".join(fewer.stderr.split())  # the console wraps long lines
    assert "2 of 2 runs finished" in said and "also holds 2 runs of other seeds or strategies, left out" in said
    assert all(r["seeds"] == 1 for r in json.loads((tmp_path / "study" / "results.json").read_text()))


def test_other_target_in_the_same_folder_is_refused(tmp_path):
    frame = load("mp-transport").drop_duplicates("formula").sample(40, random_state=2)
    path = tmp_path / "two.csv"
    frame[["formula", "S_p", "S_n"]].to_csv(path, index=False)
    args = ("benchmark", "--csv", path, "-o", tmp_path / "study", "--seeds", "1", "--budget", "6", "--n-init", "4",
            "-s", "random", "--backend", "serial", "--direction", "maximize")
    assert invoke(*args, "-t", "S_p").exit_code == 0
    before = (tmp_path / "study" / "study.json").read_text()
    result = invoke(*args, "-t", "S_n")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "objective 'S_p' there, 'S_n' in this study" in result.stderr and "another output folder" in result.stderr
    assert (tmp_path / "study" / "study.json").read_text() == before
    # Random starts there: diverse ones are another study (and a design a campaign does not know, a usage error).
    result = invoke(*args, "-t", "S_p", "--initial-design", "diverse")
    assert result.exit_code == 2 and "initial_design 'random' there, 'diverse'" in " ".join(result.stderr.split())
    assert invoke(*args, "-t", "S_p", "--initial-design", "sobol").exit_code == 2
    result = invoke("benchmark", "--csv", path, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "diverse",
                    "--seeds", "1", "--budget", "6", "--n-init", "4", "-s", "ef-gp-ucb", "--backend", "serial",
                    "--initial-design", "diverse")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "diverse" / "runs" / "ef-gp-ucb" / "seed-0.json").read_text())
    assert record["initial_design"] == "diverse"
    assert json.loads((tmp_path / "diverse" / "study.json").read_text())["initial_design"] == "diverse"


@pytest.mark.parametrize(("extra", "needle"), [
    (("--dataset", "no-such-set"), "no-such-set"),
    ((), "exactly one of"),
    (("--csv", "missing.csv"), "no such file"),
    (("--dataset", "mp-transport", "-s", "ef-svm-ucb"), "surrogate"),
    (("--dataset", "mp-transport", "--direction", "window"), "window"),
    (("--dataset", "mp-transport", "--backend", "spark"), "backend"),
    (("--dataset", "mp-transport", "-s", "elemnet/20-gp-ucb"), "from 1 to 16, got 20"),
    (("--dataset", "mp-transport", "-s", "ef-gp-window"), "'ef-gp-window'"),
    (("--csv", "library"), "--target is required with --csv"),
    (("--csv", "library", "-t", "S_p"), "--direction is required with --csv"),
    (("--dataset", "expt-bandgap"), ("dataset 'expt-bandgap' does not record whether a higher or lower 'gap expt' "
                                     "is better; give --direction")),
    (("--dataset", "mp-transport", "-t", "S_p"), "does not record whether a higher or lower 'S_p' is better"),
])
def test_user_errors(library, tmp_path, extra, needle):
    extra = tuple(library if a == "library" else a for a in extra)
    result = invoke("benchmark", "-o", tmp_path / "s", "--seeds", "1", "--budget", "6", *extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and needle in result.stderr
    assert not (tmp_path / "s").exists()  # nothing is created before the input is known to be good


def test_dataset_direction_defaults_to_the_registrys_and_is_said(tmp_path):
    """oer-plate-3496 records that lower overpotential is better: the study minimises and says why."""
    args = ("benchmark", "-d", "oer-plate-3496", "-o", tmp_path / "s", "--seeds", "1", "--budget", "6",
            "--n-init", "5", "-s", "random", "--backend", "serial")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert ("objective: minimize overpotential_V (V) (the registry's default for oer-plate-3496: "
            "lower overpotential_V is better)") in said
    assert json.loads((tmp_path / "s" / "study.json").read_text())["direction"] == "minimize"
    against = invoke(*args[:3], "--direction", "maximize", *args[3:])  # the folder holds a minimising study
    assert against.exit_code == 2 and "direction 'minimize' there, 'maximize' in this study" in against.stderr
    other = invoke(*args[:3], "--direction", "maximize", "-o", tmp_path / "t", *args[5:])
    assert other.exit_code == 0 and "(given; the registry says lower overpotential_V is better)" in " ".join(
        other.stderr.split())


def test_csv_rows_left_out_of_the_pool_are_named_by_file_line(library, tmp_path):
    lines = library.read_text().splitlines()
    lines[2] = "Xx3," + lines[2].split(",", 1)[1]  # data row 2, file line 3
    lines[5] = lines[5].split(",", 1)[0] + ",n/a"  # data row 5, file line 6
    path = tmp_path / "holes.csv"
    path.write_text("\n".join(lines) + "\n")
    result = invoke("benchmark", "--csv", path, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "s",
                    "--seeds", "1", "--budget", "6", "--n-init", "4", "-s", "random", "--backend", "serial")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert f"2 of 80 rows of {path} are left out of the pool:" in said
    assert "row 2 (line 3): 'Xx3': " in said and "'S_p' is missing or not a finite number" in said
    assert "row 5 (line 6): " in said and json.loads((tmp_path / "s" / "study.json").read_text())["pool_size"] == 78


SMALL = ("--seeds", "1", "--budget", "6", "--n-init", "4", "-s", "random", "--backend", "serial")


@pytest.mark.parametrize(("text", "extra", "needle"), [
    ("formula;S_p\nCo;1\n", (), "the file looks semicolon-separated"),
    ("name,S_p\nCo,1\n", (), "has no column 'formula' (columns: name, S_p); name it with --formula-column"),
    ("import os\nx = f(a, b)\ny = g(a, b, c, d)\n", (), "cannot be read as a CSV table"),
    ("library", ("--direction", "window"), "--direction window needs --window LO HI"),
    ("library", ("--direction", "sideways"), "'sideways' is not one of"),
    ("library", ("--window", "1", "2", "--direction", "maximize"), "--window LO HI goes with --direction window"),
    ("library", ("-q", "30"), "-q/--batch-size 30 is more than the 2 measurements left after the initial design "
                              "(--budget 6 − --n-init 4); give a -q/--batch-size of at most 2 or a larger --budget"),
    ("constant", (), "all 80 values of 'S_p' are 1: there is nothing to find"),
    ("library", ("-o", "library"), "is a file; give a folder for the study"),
    ("formula\tS_p\nCo\t1\n", (), "the file looks tab-separated"),
    ("formula,S_p\nCo,1,\nNi,2,\n", (), "the data rows have more fields than the header's 2 (a trailing comma on every row?)"),
    ("units", (), "no column 'S_p'; columns: formula, S_p [μV/K]; did you mean 'S_p [μV/K]'"),
    ("text", (), "column 'S_p' holds no numbers (e.g. 'high'); name the column of measured values"),
    ("library", ("--budget", "3"), "--budget 3 must lie between --n-init (4) and the pool's 80 compositions"),
])
def test_csv_user_errors_before_any_run(library, tmp_path, text, extra, needle):
    """Unreadable tables, bad choices and sizes are refused with what to do, before anything is written."""
    path = tmp_path / "in.csv"
    if text == "library":
        path = library
    elif text in ("constant", "units", "text"):
        header, cell = {"constant": ("S_p", "1"), "units": ("S_p [μV/K]", "1"), "text": ("S_p", "high")}[text]
        path.write_text(f"formula,{header}\n" + "".join(f"{f},{cell}\n" for f in library.read_text().splitlines()[1:81]
                                                        for f in [f.split(",")[0]]))
    else:
        path.write_text(text)
    extra = tuple(str(library) if a == "library" else a for a in extra)
    args = ["benchmark", "--csv", path, "-t", "S_p", "-o", tmp_path / "s", *SMALL]
    if "--budget" in extra:
        args = [a for i, a in enumerate(args) if a != "--budget" and (i == 0 or args[i - 1] != "--budget")]
    if "--direction" not in extra and "--window" not in extra:
        args += ["--direction", "maximize"]
    result = invoke(*args, *extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and needle in " ".join(result.stderr.split())
    assert not (tmp_path / "s").exists()


def test_default_budget_above_the_pool_names_budget(library, tmp_path):
    result = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "s")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("the default budget (100 measurements per run) exceeds the pool's 80 compositions: give --budget N "
            "(at most 80)") in " ".join(result.stderr.split())


def test_spaced_header_units_in_the_header_merges_and_ties_are_said(library, tmp_path):
    """', '-separated header, 'S_p [μV/K]' target, a blank line, repeated compositions and ties at the top."""
    rows = [line.split(",") for line in library.read_text().splitlines()[1:]]
    values = [0.0 if i % 2 else abs(float(v)) + 1 for i, (_, v) in enumerate(rows)]  # half the pool ties at the best
    lines = ["formula, S_p [μV/K]", *(f"{f}, {v}" for (f, _), v in zip(rows, values, strict=True)), "",
             f"{rows[0][0]}, 5", "Qq2, 1"]  # file lines 83 and 84 after the blank line 82
    path = tmp_path / "spaced.csv"
    path.write_text("\n".join(lines) + "\n")
    result = invoke("benchmark", "--csv", path, "-t", "S_p [μV/K]", "--direction", "minimize", "-o", tmp_path / "s",
                    *SMALL)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "row 82 (line 84): 'Qq2': unknown element" in said
    assert "81 rows → 80 compositions (rows sharing a composition averaged)" in said
    assert "column 'S_p [μV/K]' is the objective 'S_p' in μV/K" in said
    assert "top 5% holds 40 of 80 compositions (not 4) because of ties at 0" in said
    setup = json.loads((tmp_path / "s" / "study.json").read_text())
    assert (setup["objective"], setup["units"], setup["pool_size"]) == ("S_p", "μV/K", 80)


def test_a_window_holding_fewer_than_the_top_5_percent_is_said(library, tmp_path):
    values = sorted(abs(float(line.split(",")[1])) for line in library.read_text().splitlines()[1:])
    result = invoke("benchmark", "--csv", library, "-t", "S_p", "--window", str(values[-1] - 1e-9), str(values[-1] + 1),
                    "-o", tmp_path / "s", *SMALL)
    assert result.exit_code == 0, result.output
    assert "only 1 of 80 compositions lie in the window" in " ".join(result.stderr.split())
    assert "the 'in-window' set is the 4 closest to it" in " ".join(result.stderr.split())


def test_interrupt_keeps_finished_runs_and_says_how_to_resume(library, tmp_path, monkeypatch):
    import aloop.benchmark.study as study_module

    real, calls = study_module.run_replay, []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "run_replay", interrupted_second)
    args = ("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "s",
            *SMALL[:1], "2", *SMALL[2:])
    result = invoke(*args)
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert (f"interrupted: finished runs are kept (tables and plots of the finished runs are in {tmp_path / 's'}); "
            "rerun the same command to resume") in " ".join(result.stderr.split())
    assert [p.name for p in (tmp_path / "s" / "runs" / "random").iterdir()] == ["seed-0.json"]
    assert "| random |" in (tmp_path / "s" / "results.md").read_text()  # the finished run's table


def test_unreachable_ray_cluster_is_a_one_line_error(library, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")

    def refuse(*_, **__):
        raise ConnectionError("Could not connect to GCS at 192.0.2.2:6379\nmore lines")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    result = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "s",
                    *SMALL[:-1], "ray", "--ray-address", "192.0.2.2:6379")
    assert result.exit_code == 2 and "Traceback" not in result.output
    said = " ".join(result.stderr.split())
    assert "cannot reach the Ray cluster at 192.0.2.2:6379 (Could not connect to GCS at 192.0.2.2:6379)" in said


def test_the_table_says_what_it_counts_and_a_rerun_what_it_reuses(library, tmp_path):
    """A window study's table counts in-window hits (once, not as top 5% and top 1%), explains its columns, and
    results.md carries the legend; the same command again says every run is finished; -j without joblib and
    --ray-address without ray are said."""
    args = ["benchmark", "--csv", library, "-t", "S_p", "--window", "0", "200", "-o", tmp_path / "w", *SMALL]
    first = invoke(*args, "-j", "3", "--ray-address", "192.0.2.2:6379")
    assert first.exit_code == 0, first.output
    said = " ".join(first.stderr.split())
    assert "-j/--jobs applies to the joblib backend; with serial it is not used" in said
    assert "--ray-address applies to --backend ray; with serial it is not used" in said
    assert "[1/1] random seed 0" in said
    table = " ".join(first.stdout.split())
    assert "in-window found" in table and "top-1% found" not in table and "top-5%" not in table
    assert "anyALM: median experiments to the first in-window composition" in table
    assert "its 90% interval from bootstrapping the seeds in brackets" in table
    assert "**Columns**" in (tmp_path / "w" / "results.md").read_text()
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert "all 1 runs are finished in" in " ".join(again.stderr.split())


def test_the_terminal_table_shows_the_af_interval_beside_the_af(tmp_path):
    from rich.console import Console

    from aloop.cli.benchmark import _table

    rows = [{"strategy": "ef-gp-ucb", "top5_t50_af": 8.342, "top5_t50_af_lo": 7.85, "top5_t50_af_hi": 8.83},
            {"strategy": "sparse", "top5_t50_af": 3.1, "top5_t50_af_lo": None, "top5_t50_af_hi": 4.2},
            {"strategy": "random", "top5_t50_af": None, "top5_t50_af_lo": None, "top5_t50_af_hi": None}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(rows))
    console = Console(width=400, record=True)
    console.print(_table(path))
    text = console.export_text()
    assert "8.34 [7.85–8.83]" in text and "3.1 [?–4.2]" in text
    assert "random" in text and "[?–" not in text.split("random")[1].split("\n")[0]


def test_a_folder_of_other_files_is_not_taken_for_a_study(library, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my own results\n")
    result = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", mine, *SMALL)
    assert result.exit_code == 2 and "holds other files and no study" in " ".join(result.stderr.split())
    assert (mine / "results.csv").read_text() == "my own results\n" and len(list(mine.iterdir())) == 1


def test_no_keep_work_leaves_the_replayed_campaigns_out(library, tmp_path):
    result = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "s",
                    "--seeds", "1", "--budget", "6", "--n-init", "4", "-s", "ef-gp-ucb", "--backend", "serial",
                    "--no-keep-work")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "s" / "work").exists() and (tmp_path / "s" / "runs").is_dir()


def _random_study(library, out, *extra):  # type: ignore[no-untyped-def]
    """One random run of 20 measurements on the library into ``out``, with ``extra`` options."""
    return invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", out, "--seeds", "1",
                  "--budget", "20", "--n-init", "4", "-s", "random", "--backend", "serial", *extra)


def test_af_targets_add_their_columns_and_bad_ones_are_refused(library, tmp_path):
    result = _random_study(library, tmp_path / "s", "--af-target", "0.25", "--af-target", "0.5")
    assert result.exit_code == 0, result.output
    table = " ".join(result.stdout.split())
    assert "n to 25%" in table and "AF(25%)" in table and "AF(50%)" in table
    row = json.loads((tmp_path / "s" / "results.json").read_text())[0]
    assert {"top5_t25_af", "top5_t25_n_med", "top1_t25_af", "top5_t50_af"} <= set(row)
    bad = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "b",
                 *SMALL, "--af-target", "0")
    assert bad.exit_code == 2 and "--af-target 0: give a share of the top set in (0, 1]" in bad.stderr
    bad = invoke("benchmark", "--csv", library, "-t", "S_p", "--direction", "maximize", "-o", tmp_path / "b",
                 *SMALL, "--top", "100")
    assert bad.exit_code == 2 and "--top 100: give a percentage of the pool in (0, 100)" in bad.stderr
    assert not (tmp_path / "b").exists()


def test_other_top_sets_replace_the_top_5_and_1_percent(library, tmp_path):
    result = _random_study(library, tmp_path / "s", "--top", "10", "--top", "2.5")
    assert result.exit_code == 0, result.output
    table = " ".join(result.stdout.split())
    assert "top-10% found" in table and "top-2.5% found" in table and "top-5% found" not in table
    row = json.loads((tmp_path / "s" / "results.json").read_text())[0]
    assert {"top10_final_mean", "top10_t50_af", "top2.5_final_mean"} <= set(row) and "top5_final_mean" not in row
    assert (tmp_path / "s" / "curves_top10.csv").exists() and (tmp_path / "s" / "plots" / "top2.5_af.png").exists()
