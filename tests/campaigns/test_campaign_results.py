"""Recording results with `aloop record`: stray cells, one result under two spellings, replicates, closed proposals.

Each case drives the real command on a small grid campaign and checks what the user sees
(exit code, message) and that a refused file leaves the log's digest unchanged.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke

from aloop.campaigns import (
    CampaignLog,
    CampaignLogError,
    Measurement,
    Proposal,
    default_idempotency_key,
    read_results,
)
from aloop.campaigns.entries import ReplicateWarning
from aloop.chem import composition_key

GAP = "gap [eV]"



def digest(folder: Path) -> str:
    with CampaignLog.open(folder / "gap.sqlite") as log:
        return log.events_digest()


def observations(folder: Path) -> pd.DataFrame:
    with CampaignLog.open(folder / "gap.sqlite") as log:
        return log.observations()


def refused(folder: Path, csv: str, *needles: str) -> str:
    """Record ``csv``: it must exit with 2 and a clean error naming ``needles``, and change nothing."""
    before = digest(folder)
    (folder / "r.csv").write_text(csv, encoding="utf-8")
    result = invoke("record", folder / "r.csv", "-c", folder)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:") and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert digest(folder) == before
    return result.stderr


def recorded(folder: Path, csv: str, name: str = "r.csv") -> tuple[str, str]:
    """Record ``csv`` successfully; its stdout and stderr (line wrapping undone)."""
    (folder / name).write_text(csv, encoding="utf-8")
    result = invoke("record", folder / name, "-c", folder)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split()), " ".join(result.stderr.split())


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[Path, list[tuple[int, str]]]:
    """A grid campaign with six pending proposals: the folder and ``(proposal id, formula)`` pairs."""
    args = ["init", "gap", "--dir", tmp_path, "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef",
            "--objective", "gap", "--units", "eV"]
    assert invoke(*args).exit_code == 0
    result = invoke("propose", "-n", "6", "-c", tmp_path, "-o", tmp_path / "sheet.csv")
    assert result.exit_code == 0, result.output
    sheet = pd.read_csv(tmp_path / "sheet.csv")
    return tmp_path, list(zip(sheet["proposal_id"].tolist(), sheet["formula"].tolist(), strict=True))


def test_a_row_with_more_cells_than_the_header_is_refused(campaign: tuple[Path, list[tuple[int, str]]]) -> None:
    folder, props = campaign
    (p1, f1), (p2, _) = props[:2]
    # pandas used to take the first cell as a row index: "5,1,2" became proposal 1 = 2.0.
    message = refused(folder, f"proposal_id,{GAP}\n{p2},{p1},2\n", "line 2: 3 cells but the header has 2 columns")
    assert "'2'" in message and "not a proposal id" not in message
    refused(folder, f"proposal_id,formula,{GAP}\n{p1},{f1},1.2,cracked\n", "line 2", "'cracked'")
    # Every such line is named (blank lines and quoted line breaks keep the numbering right).
    csv = f'proposal_id,{GAP},notes\n\n{p1},1.0,"two\nlines"\n{p2},1.5,ok,extra\n{props[2][0]},0.5,a,b,c\n'
    message = refused(folder, csv, "2 of 3 rows are invalid", "line 5: 4 cells", "line 6: 5 cells")
    assert "line 3" not in message
    assert observations(folder).empty


def test_read_results_labels_rows_by_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f'\ufeffformula,{GAP},notes\n\nNiFe,1.0,"a\nb"\n   \nCoNi, 2.0\nFe,3,x,y\n', encoding="utf-8")
    df = read_results(path)
    assert list(df.index) == [3, 6, 7] and df.index.name == "line"
    assert list(df.columns) == ["formula", GAP, "notes"]
    assert df.loc[3, "notes"] == "a\nb" and df.loc[6, "notes"] == "" and df.loc[6, GAP] == "2.0"
    assert df.attrs["extra_cells"] == {7: ["y"]} and df.loc[7, "notes"] == "x"
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="no header"):
        read_results(tmp_path / "empty.csv")


def test_one_result_given_by_id_or_by_formula_is_recorded_once(
    campaign: tuple[Path, list[tuple[int, str]]],
) -> None:
    folder, props = campaign
    (p1, f1), (p2, f2), (p3, f3) = props[:3]
    recorded(folder, f"proposal_id,formula,{GAP}\n{p1},{f1},0.0\n", "a.csv")
    before = digest(folder)
    again, hint = recorded(folder, f"formula,{GAP}\n{f1},0.0\n", "b.csv")
    assert "recorded 0 new" in again and "1 already recorded" in again
    assert "warning: 1 row(s) skipped as already recorded (line 2)" in hint and "genuine repeat" in hint, hint
    assert digest(folder) == before
    # The other way round: first by formula, then by id.
    recorded(folder, f"formula,{GAP}\n{f2},0.7\n", "c.csv")
    before = digest(folder)
    assert "1 already recorded" in recorded(folder, f"proposal_id,{GAP}\n{p2},0.7\n", "d.csv")[0]
    assert digest(folder) == before
    assert list(observations(folder)["proposal_id"]) == [p1, p2]
    # Both spellings in one file are the same result twice.
    both = f"proposal_id,formula,{GAP}\n{p3},,1.0\n,{f3},1.0\n"
    refused(folder, both, f"line 3: same result as line 2 (proposal {p3}")


def test_a_result_recorded_by_formula_under_the_old_key_is_still_recognised(log: CampaignLog) -> None:
    (pid,) = log.append_proposals([_proposal("Bi2Te3")]).proposal_ids
    by_formula = Measurement({"zT": 0.9}, {"zT": ""}, formula="Bi2Te3", key=composition_key("Bi2Te3"))
    # Logs written before keys named the matched proposal hold sha256(composition, values).
    log.append_measurements([replace(by_formula, idempotency_key=default_idempotency_key(by_formula))])
    digest_before = log.events_digest()
    for row in (by_formula, Measurement({"zT": 0.9}, {"zT": ""}, proposal_id=pid)):
        assert log.append_measurements([row]).duplicates == 1
    assert log.events_digest() == digest_before


def _proposal(formula: str) -> Proposal:
    return Proposal(formula, composition_key(formula))


def test_a_second_value_for_a_measured_proposal_is_a_replicate_and_says_so(
    campaign: tuple[Path, list[tuple[int, str]]],
) -> None:
    folder, props = campaign
    (p1, f1), (p2, f2) = props[:2]
    _, first = recorded(folder, f"proposal_id,formula,{GAP}\n{p1},{f1},0.5\n{p2},{f2},0.4\n", "a.csv")
    assert "warning" not in first
    out, second = recorded(folder, f"proposal_id,formula,{GAP}\n{p1},{f1},8.5\n", "b.csv")
    assert "recorded 1 new" in out
    for needle in ("warning:", f"proposal {p1} ({f1}) already has a measured value (gap = 0.5); new: gap = 8.5",
                   "stored as replicates", "nothing is replaced"):
        assert needle in second, second
    assert list(observations(folder)["gap"]) == [0.5, 0.4, 8.5]  # the log keeps every value
    # A formula-only row of a measured composition is a replicate of it too.
    _, third = recorded(folder, f"formula,{GAP}\n{f2},0.45\n", "c.csv")
    assert f"proposal {p2} ({f2}) already has a measured value (gap = 0.4); new: gap = 0.45" in third


def test_replicates_within_one_file_are_announced_too(log: CampaignLog) -> None:
    (pid,) = log.append_proposals([_proposal("Bi2Te3")]).proposal_ids
    rows = [Measurement({"zT": v}, {"zT": ""}, proposal_id=pid, idempotency_key=f"s{v}") for v in (0.8, 0.9)]
    with pytest.warns(ReplicateWarning, match=r"\(Bi2Te3\) already has a measured value \(zT = 0\.8\); new: zT = 0\.9"):
        assert log.append_measurements(rows).new == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ReplicateWarning)
        log.append_measurements(rows)  # all duplicates: nothing stored, nothing to announce


@pytest.mark.parametrize(("command", "status"), [("reject", "rejected"), ("fail", "failed"), ("cancel", "cancelled")])
def test_results_for_closed_proposals_are_refused(
    campaign: tuple[Path, list[tuple[int, str]]], command: str, status: str
) -> None:
    folder, props = campaign
    (p1, f1), (p3, _) = props[0], props[2]
    assert invoke(command, p1, "--reason", "toxic", "-c", folder).exit_code == 0
    closed = f"marked {status} ('toxic'): only pending or measured proposals take results"
    # A good row next to it is not written either: the file is all or nothing.
    by_id = f"line 3: proposal_id: proposal {p1} ({f1}) is {closed}"
    ways_out = {"failed": (f"`aloop retry {p1}` first", f"by mistake, `aloop retract {p1}`"),  # a new attempt, or undo
                "rejected": (f"if it was rejected by mistake, `aloop retract {p1}` first",),
                "cancelled": ("the composition is free again: leave proposal_id empty (give the formula) to record it "
                              f"as a result of its own, or `aloop retract {p1}` first if it was cancelled by mistake",)}
    refused(folder, f"proposal_id,{GAP}\n{p3},0.1\n{p1},0.3\n", by_id, "1 of 2 rows", *ways_out[status])
    if status != "cancelled":
        by_formula = f"line 2: formula: {f1!r} matches proposal {p1} ({f1}), which is {closed}"
        refused(folder, f"formula,{GAP}\n{f1},0.3\n", by_formula, *ways_out[status])
    status_json = json.loads(invoke("status", "--json", "--no-cv", "-c", folder).stdout)
    assert status_json["counts"][status] == 1 and status_json["counts"]["measured"] == 0
    with CampaignLog.open(folder / "gap.sqlite") as log:
        assert p3 in set(log.pending()["proposal_id"])  # the good row was not written either
        with pytest.raises(CampaignLogError, match=f"measurement 0: proposal {p1} .* is marked {status}"):
            log.append_measurements([Measurement({"gap": 0.3}, {"gap": "eV"}, proposal_id=p1)])
    if status == "cancelled":  # made after all: by formula it is a result of its own, the proposal stays cancelled
        recorded(folder, f"formula,{GAP}\n{f1},0.3\n")
        obs = observations(folder)
        assert list(obs["gap"]) == [0.3] and obs["proposal_id"].isna().all(), obs
        assert json.loads(invoke("status", "--json", "--no-cv", "-c", folder).stdout)["counts"]["cancelled"] == 1


def test_a_failed_synthesis_is_retried_and_the_failure_stays(campaign: tuple[Path, list[tuple[int, str]]]) -> None:
    folder, props = campaign
    (p1, f1), (p2, _), (p3, f3) = props[:3]
    for pid in (p1, p2):
        assert invoke("fail", pid, "--reason", "amorphous", "-c", folder).exit_code == 0
    before = digest(folder)
    for ids, needle in ([[p3], f"proposal {p3} ({f3}) is not failed: it is pending"],
                        [[999_999], "proposal 999999 does not exist"], [[p1, p1], f"proposal {p1} is listed twice"]):
        result = invoke("retry", *ids, "-c", folder)
        assert result.exit_code == 2 and needle in result.stderr and "Traceback" not in result.output, result.output
    assert digest(folder) == before

    result = invoke("retry", p1, p2, "--reason", "dried precursor", "-c", folder)
    assert result.exit_code == 0, result.output
    with CampaignLog.open(folder / "gap.sqlite") as log:
        table = log.proposals().set_index("proposal_id")
        new = table.index[-2:].tolist()
        assert table.loc[new, "status"].tolist() == ["pending", "pending"]
        assert table.at[new[0], "reason"] == f"retry of failed proposal {p1}: dried precursor"
        assert table.at[new[0], "key"] == table.at[p1, "key"] and table.at[p1, "status"] == "failed"
    said = " ".join(result.stdout.split())
    assert f"proposal {new[0]} ({f1}) retries failed proposal {p1}" in said and "predicted" not in said  # no model yet

    recorded(folder, f"formula,{GAP}\n{f1},0.3\n")  # by formula: the pending retry takes it
    assert observations(folder)["proposal_id"].tolist() == [new[0]]
    with CampaignLog.open(folder / "gap.sqlite") as log:
        assert log.failures()["proposal_id"].tolist() == [p1, p2]  # both failures still teach feasibility
        before = log.events_digest()
        with pytest.raises(CampaignLogError, match=f"already measured: {f1}"):  # the retry succeeded: nothing to retry
            log.append_proposals([Proposal(f1, composition_key(f1))], retry_of=[p1])
        with pytest.raises(CampaignLogError, match="already pending"):
            log.append_proposals([Proposal(table.at[p2, "formula"], table.at[p2, "key"])], retry_of=[p2])
        with pytest.raises(CampaignLogError, match=f"proposal {p1} is {f1}, not {f3}"):
            log.append_proposals([Proposal(f3, composition_key(f3))], retry_of=[p1])
        assert log.events_digest() == before
    status_json = json.loads(invoke("status", "--json", "--no-cv", "-c", folder).stdout)
    assert status_json["counts"]["failed"] == 2 and status_json["counts"]["measured"] == 1


def test_a_retry_once_the_model_is_fitted_says_its_prediction_and_chance(tmp_path: Path) -> None:
    args = ["init", "gap", "--dir", tmp_path, "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef",
            "--objective", "gap", "--units", "eV", "--initial-size", "4"]
    assert invoke(*args).exit_code == 0
    assert invoke("propose", "-n", "6", "-c", tmp_path, "-o", tmp_path / "sheet.csv").exit_code == 0
    sheet = pd.read_csv(tmp_path / "sheet.csv")
    ids = sheet["proposal_id"].tolist()
    assert invoke("fail", ids[0], "--reason", "amorphous", "-c", tmp_path).exit_code == 0
    recorded(tmp_path, f"proposal_id,{GAP}\n" + "".join(f"{p},{0.2 * i}\n" for i, p in enumerate(ids[1:], 1)))
    result = invoke("retry", ids[0], "-c", tmp_path)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stdout.split())
    with CampaignLog.open(tmp_path / "gap.sqlite") as log:
        row = log.proposals().iloc[-1]
    assert row["model_version"] == "v1" and 0 <= row["p_success"] <= 1
    assert (f"proposal {row['proposal_id']} ({sheet['formula'].iloc[0]}) retries failed proposal {ids[0]}; predicted "
            f"gap {row['mean_gap']:.3g} ± {row['std_gap']:.2g} eV, P(success) {row['p_success']:.0%}") in said
