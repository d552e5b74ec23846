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


@pytest.mark.parametrize(("extra", "needle"), [
    (("--dataset", "no-such-set"), "no-such-set"),
    ((), "exactly one of"),
    (("--csv", "missing.csv"), "no such file"),
    (("--dataset", "mp-transport", "-s", "ef-svm-ucb"), "surrogate"),
    (("--dataset", "mp-transport", "--direction", "window"), "window"),
    (("--dataset", "mp-transport", "--backend", "spark"), "backend"),
])
def test_user_errors(tmp_path, extra, needle):
    result = invoke("benchmark", "-o", tmp_path / "s", "--seeds", "1", "--budget", "6", *extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and needle in result.stderr
