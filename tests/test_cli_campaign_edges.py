"""The campaign commands at the edges: the end of the pool, a candidates file that changed or went
missing, units in brackets, files that must not be overwritten, and the messages of misuse."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke, one_line

from aloop.campaigns import Campaign, CampaignError, CampaignLog

GRID = ("--elements", "Ni,Fe", "--step", "0.25", "--featurizer", "ef")  # 5 compositions



def assert_clean_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error:"), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr



def digest(db: Path, name: str) -> str:
    with CampaignLog.open(db, name) as log:
        return log.events_digest()


def test_propose_at_the_end_of_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "end", *GRID, "--initial-size", "3").exit_code == 0
    assert invoke("propose", "-n", "3").exit_code == 0
    before = digest(tmp_path / "end.sqlite", "end")
    with Campaign.open("end.toml") as campaign:  # from Python, an explicit n is a promise: refused
        with pytest.raises(CampaignError, match="asked for 10 proposals but only 2 of 5"):
            campaign.propose(10)
    assert digest(tmp_path / "end.sqlite", "end") == before

    typo = invoke("propose", "-n", "100", "-o", "rest.csv")  # above the batch size too: a typo, not the last batch
    assert typo.exit_code == 2 and "asked for 100 proposals but only 2 of 5" in one_line(typo.output)
    assert "ask for at most 2; nothing proposed" in one_line(typo.output) and not (tmp_path / "rest.csv").exists()
    assert digest(tmp_path / "end.sqlite", "end") == before
    rest = invoke("propose", "-n", "8", "-o", "rest.csv")  # the CLI proposes what is left of a batch, and says so
    assert rest.exit_code == 0, rest.output
    assert "only 2 candidate(s) left to propose: proposed 2 instead of 8" in one_line(rest.stderr)
    assert len(pd.read_csv("rest.csv")) == 2

    none = invoke("propose", "-o", "more.csv")
    assert none.exit_code == 0, none.output
    assert "nothing left to propose" in one_line(none.stdout) and "no sheet written" in one_line(none.stdout)
    assert not (tmp_path / "more.csv").exists() and not list(tmp_path.glob(".more.csv*"))
    with CampaignLog.open(tmp_path / "end.sqlite", "end") as log:
        assert len(log.pending()) == 5


def test_candidates_file_changed_or_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    formulas = ["NiO", "FeO", "CoO", "Fe2O3", "NiFe2O4", "CoFe2O4"]
    pd.DataFrame({"formula": [*formulas, "Fe4O6"]}).to_csv("cands.csv", index=False)  # Fe4O6 is Fe2O3 again
    created = invoke("init", "c", "--candidates", "cands.csv", "--featurizer", "ef", "--initial-size", "2")
    assert created.exit_code == 0, created.output
    assert "1 row(s) of the candidates file repeat a composition listed before (line 8" in one_line(created.stderr)
    pd.DataFrame({"formula": formulas}).to_csv("cands.csv", index=False)
    for leftover in ("c.toml", "c.sqlite"):
        Path(leftover).unlink()
    assert invoke("init", "c", "--candidates", "cands.csv", "--featurizer", "ef", "--initial-size", "2").exit_code == 0
    space = tomllib.loads(Path("c.toml").read_text())["search_space"]
    assert space["candidates_count"] == 6 and len(space["candidates_sha256"]) == 64
    first = invoke("propose", "-n", "2")
    assert first.exit_code == 0 and "changed" not in first.stderr
    pending = CampaignLog.open(tmp_path / "c.sqlite", "c").pending()
    gone_id, gone = int(pending["proposal_id"].iloc[0]), pending["formula"].iloc[0]

    # Edited: one new formula, one pending proposal's formula removed.
    pd.DataFrame({"formula": [f for f in formulas if f != gone] + ["Co3O4", "NiCo2O4"]}).to_csv("cands.csv", index=False)
    changed = invoke("status", "--no-cv")
    assert changed.exit_code == 0, changed.output
    said = one_line(changed.stderr)
    assert "cands.csv changed since the campaign was created: 6 candidates then, 7 now" in said
    assert f"pending proposal(s) no longer in it: {gone_id} {gone}" in said and "candidates_sha256 =" in said

    # Missing: what needs only the log still works; propose says what to do.
    Path("cands.csv").unlink()
    status = invoke("status")
    assert status.exit_code == 0, status.output
    assert "is missing" in one_line(status.stderr) and "candidates: unknown" in one_line(status.stdout)
    assert invoke("export", "ev.csv").exit_code == 0 and Path("ev.csv").read_bytes().startswith(b"\xef\xbb\xbfevent_id")
    assert invoke("report", "-o", "rep").exit_code == 0 and Path("rep/report.html").is_file()
    assert "no ternary diagram: the candidate list is missing" in Path("rep/report.md").read_text()
    assert_clean_error(invoke("propose"), "candidates file", "cands.csv is missing", "candidates_csv")


def test_units_in_brackets_and_status_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "g", *GRID, "--objective", "gap", "--units", "eV", "--initial-size", "2").exit_code == 0
    fresh = invoke("status", "--no-cv")
    assert fresh.exit_code == 0 and "no model fitted yet" in one_line(fresh.stdout) and "None" not in fresh.stdout
    assert "cross-validation" not in fresh.stdout  # --no-cv says nothing about CV
    proposed = invoke("propose")
    assert proposed.exit_code == 0, proposed.output
    assert "gap [eV] mean ± std" in one_line(proposed.stdout)  # rich would take '[eV]' for markup


def test_export_and_report_never_replace_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "x", *GRID).exit_code == 0
    Path("sheet.csv").write_text("proposal_id,property\n1,0.5\n")
    assert_clean_error(invoke("export", "sheet.csv"), "sheet.csv already exists", "refusing to overwrite")
    assert Path("sheet.csv").read_text() == "proposal_id,property\n1,0.5\n"
    assert_clean_error(invoke("report", "-o", "sheet.csv"), "it is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.csv", "x.sqlite", "x.toml"]
    # A folder holding someone's report.md is not written into; an earlier aloop report is updated in place.
    Path("notes").mkdir()
    Path("notes/report.md").write_text("my notes\n")
    assert_clean_error(invoke("report", "-o", "notes"), "notes/report.md exists and is not an aloop report")
    assert Path("notes/report.md").read_text() == "my notes\n" and sorted(Path("notes").iterdir()) == [
        Path("notes/report.md")]
    assert invoke("report", "-o", "rep").exit_code == 0 and invoke("report", "-o", "rep").exit_code == 0


def test_misuse_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    zero = invoke("init", "z", *GRID, "--batch-size", "0")
    assert_clean_error(zero, "batch_size: must be >= 1; got 0")
    assert "initial_design" not in zero.stderr  # one mistake, one complaint
    assert_clean_error(invoke("init", "z", *GRID, "--objective", "n"), "'n' is the name of a column")
    twice = invoke("init", "z", "--elements", "Ni,Fe", "--step", "0.1", "--fixed", "O=0.6", "--fixed", "O=0.5")
    assert_clean_error(twice, "--fixed O given twice, with different values")
    for empty in ("", " , "):  # an empty shell variable: not the template's example grid
        assert_clean_error(invoke("init", "z", "--elements", empty, "--step", "0.1"), "elements: none given")
    assert not list(tmp_path.iterdir())

    assert invoke("init", "y", *GRID).exit_code == 0
    assert_clean_error(invoke("status", "-c", "y.sqlite"), "y.sqlite is a SQLite database", "give the definition y.toml")
    Path("y.toml").write_text(Path("y.toml").read_text().replace("batch_size = 8", "batch_size = -3"))
    bad = invoke("status", "--no-cv")
    assert_clean_error(bad, "batch_size: must be >= 1; got -3")
    assert bad.stderr.count("batch_size") == 1


def test_a_sheet_filled_in_part_records_the_filled_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's flow: 4 proposed, 2 measured; the empty rows stay pending (then fail / reject them)."""
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "p", *GRID, "--objective", "gap", "--units", "eV", "--initial-size", "4").exit_code == 0
    assert invoke("propose", "-n", "4", "-o", "sheet.csv").exit_code == 0
    sheet = pd.read_csv("sheet.csv")
    before = digest(tmp_path / "p.sqlite", "p")
    assert_clean_error(invoke("record", "sheet.csv"), "nothing to record: no row has a value in 'gap [eV]'")
    assert digest(tmp_path / "p.sqlite", "p") == before
    sheet.loc[:1, "gap [eV]"] = [1.2, 0.8]
    sheet.to_csv("sheet.csv", index=False)
    result = invoke("record", "sheet.csv")
    assert result.exit_code == 0 and "recorded 2 new" in result.stdout, result.output
    assert "2 row(s) without any value left out (line 4, line 5)" in one_line(result.stderr)
    with CampaignLog.open(tmp_path / "p.sqlite", "p") as log:
        ids_of = dict(zip(log.observations()["proposal_id"], log.observations()["event_id"], strict=True))
    said = one_line(result.stdout)  # the ids `aloop retract` takes, by line
    assert f"measurement ids: line 2: {ids_of[sheet['proposal_id'][0]]}, line 3: {ids_of[sheet['proposal_id'][1]]}" in said
    ids = sheet["proposal_id"].tolist()
    assert invoke("fail", ids[2], "--reason", "cracked").exit_code == 0
    assert invoke("reject", ids[3], "--reason", "toxic").exit_code == 0
    again = invoke("record", "sheet.csv")  # the same sheet again: nothing new, the closed rows still empty
    assert again.exit_code == 0 and "recorded 0 new" in again.stdout, again.output
    said = one_line(again.stderr)  # the empty rows are not said to stay pending: their proposals are closed
    assert "2 row(s) without any value left out (line 4 (failed), line 5 (rejected)): their proposals are closed" in said
    assert "stay pending" not in said, said


def test_a_result_outside_the_search_space_is_pointed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "o", *GRID, "--initial-size", "1").exit_code == 0
    assert invoke("propose", "-n", "1").exit_code == 0  # builds the candidate pool
    Path("r.csv").write_text("formula,property\nNi3Fe,0.5\nNiO,0.7\n")  # Ni3Fe is on the 0.25 grid, NiO is not
    result = invoke("record", "r.csv")
    assert result.exit_code == 0 and "recorded 2 new" in result.stdout, result.output
    said = one_line(result.stderr)
    assert "1 recorded composition(s) are not in the campaign's search space (NiO)" in said
    assert said.split("search space (")[1].split(")")[0] == "NiO"  # Ni3Fe, unsolicited too, is a candidate
    assert invoke("report", "-o", "rep").exit_code == 0
    assert "no ternary diagram: 2 elements vary across the candidates (Ni, Fe); it needs exactly 3" in Path(
        "rep/report.md").read_text()


def test_ctrl_c_during_propose_says_what_was_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "end", *GRID, "--initial-size", "3").exit_code == 0
    real = Campaign.propose

    def before_logging(self: Campaign, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def after_logging(self: Campaign, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Campaign, "propose", before_logging)
    r = invoke("propose", "-n", "2", "-o", "s.csv")
    assert r.exit_code == 130 and "interrupted: nothing was proposed" in one_line(r.stderr)
    monkeypatch.setattr(Campaign, "propose", after_logging)
    r = invoke("propose", "-n", "2", "-o", "s.csv")
    with CampaignLog.open(tmp_path / "end.sqlite", "end") as log:
        ids = " ".join(map(str, log.pending()["proposal_id"]))
    assert r.exit_code == 130 and len(ids.split()) == 2
    assert f"interrupted: proposals {ids} were logged as pending (no results sheet was written); to withdraw them: " \
           f"`aloop cancel {ids}`" in one_line(r.stderr)
    assert not (tmp_path / "s.csv").exists() and not list(tmp_path.glob(".s.csv*"))



def test_ctrl_c_during_record_says_what_was_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "r", *GRID, "--objective", "gap", "--units", "eV", "--initial-size", "3").exit_code == 0
    assert invoke("propose", "-n", "2", "-o", "sheet.csv").exit_code == 0
    sheet = pd.read_csv("sheet.csv")
    sheet["gap [eV]"] = [1.2, 0.8]
    sheet.to_csv("sheet.csv", index=False)
    real = Campaign.record

    def before_saving(self: Campaign, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    def after_saving(self: Campaign, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    before = digest(tmp_path / "r.sqlite", "r")
    monkeypatch.setattr(Campaign, "record", before_saving)
    r = invoke("record", "sheet.csv")
    assert r.exit_code == 130 and "interrupted: nothing from sheet.csv was recorded" in one_line(r.stderr)
    assert digest(tmp_path / "r.sqlite", "r") == before
    monkeypatch.setattr(Campaign, "record", after_saving)
    r = invoke("record", "sheet.csv")
    with CampaignLog.open(tmp_path / "r.sqlite", "r") as log:
        ids = " ".join(map(str, log.observations()["event_id"]))
    assert r.exit_code == 130 and len(ids.split()) == 2
    assert f"interrupted: 2 measurement(s) from sheet.csv were recorded (ids {ids}); recording the file again skips " \
           "them" in one_line(r.stderr)
    monkeypatch.setattr(Campaign, "record", real)
    again = invoke("record", "sheet.csv")
    assert again.exit_code == 0 and "recorded 0 new measurement(s) from sheet.csv; 2 already recorded" in again.stdout


def test_ctrl_c_while_the_campaign_opens_says_nothing_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening loads torch and the log (seconds); a Ctrl-C then used to exit 130 without a word."""
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "r", *GRID, "--objective", "gap", "--units", "eV", "--initial-size", "3").exit_code == 0
    assert invoke("propose", "-n", "2", "-o", "sheet.csv").exit_code == 0

    def interrupted(cls: type, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Campaign, "open", classmethod(interrupted))
    before = digest(tmp_path / "r.sqlite", "r")
    for command in (("record", "sheet.csv"), ("status",), ("fail", "1", "--reason", "x")):
        r = invoke(*command)
        assert r.exit_code == 130 and "interrupted while opening the campaign: nothing was changed" in r.stderr, command
    assert digest(tmp_path / "r.sqlite", "r") == before


def test_cancel_a_whole_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "end", *GRID, "--initial-size", "3").exit_code == 0
    assert invoke("propose", "-n", "3").exit_code == 0
    with CampaignLog.open(tmp_path / "end.sqlite", "end") as log:
        first = log.pending()["proposal_id"].tolist()
    assert invoke("cancel", str(first[0])).exit_code == 0
    result = invoke("cancel", "--batch", "1")  # the pending rest of it
    assert result.exit_code == 0, result.output
    assert f"marked cancelled: proposal(s) {first[1]}, {first[2]}" in one_line(result.stdout)
    before = digest(tmp_path / "end.sqlite", "end")
    for args, needle in ((["--batch", "1"], "none of its proposals is pending"), (["--batch", "7"], "has no batch 7"),
                         ([], "give the proposal ids to cancel, or --batch"),
                         ([str(first[0]), "--batch", "1"], "(not both)")):
        result = invoke("cancel", *args)
        assert result.exit_code == 2 and needle in one_line(result.stderr), (args, result.output)
    assert digest(tmp_path / "end.sqlite", "end") == before


def test_pending_proposals_off_an_edited_grid_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit of the grid (here the fixed oxygen fraction) leaves pending proposals off it: status says which."""
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "o", "--elements", "Ni,Fe,Co", "--step", "0.1", "--fixed", "O=0.6", "--featurizer", "ef",
                  "--initial-size", "3").exit_code == 0
    proposed = invoke("propose", "-o", "sheet.csv")
    assert proposed.exit_code == 0, proposed.output
    Path("o.toml").write_text(Path("o.toml").read_text().replace("O = 0.6", "O = 0.5"))
    status = invoke("status", "--no-cv")
    assert status.exit_code == 0, status.output
    assert "8 pending proposal(s) are off the grid as the definition now sets it (1 " in one_line(status.stderr)


def test_an_exported_observations_table_records_into_another_campaign(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """export --table observations is headed as a results file; the columns the log derives (event_id, key,
    recorded_at, unsolicited) are read past, so without the old campaign's proposal ids it records elsewhere."""
    monkeypatch.chdir(tmp_path)
    flags = (*GRID, "--objective", "gap", "--units", "eV", "--initial-size", "3")
    assert invoke("init", "a", *flags).exit_code == 0 and invoke("init", "b", *flags).exit_code == 0
    assert invoke("propose", "-n", "3", "-o", "s.csv", "-c", "a.toml").exit_code == 0
    sheet = pd.read_csv("s.csv")
    sheet["gap [eV]"] = [1.25, 0.5, 2.0]
    sheet["raw_data"] = ["run1.h5", "", "run3.h5"]
    sheet.to_csv("s.csv", index=False)
    assert invoke("record", "s.csv", "-c", "a.toml").exit_code == 0
    assert invoke("export", "obs.csv", "--table", "observations", "-c", "a.toml").exit_code == 0
    exported = pd.read_csv("obs.csv", encoding="utf-8-sig")
    assert {"raw_data", "gap [eV]", "event_id", "key", "recorded_at", "unsolicited"} <= set(exported.columns)
    exported.drop(columns="proposal_id").to_csv("obs_b.csv", index=False)
    recorded = invoke("record", "obs_b.csv", "-c", "b.toml")
    assert recorded.exit_code == 0, recorded.output
    assert invoke("export", "obs2.csv", "--table", "observations", "-c", "b.toml").exit_code == 0
    again = pd.read_csv("obs2.csv", encoding="utf-8-sig")
    cols = ["formula", "gap [eV]", "raw_data"]
    pd.testing.assert_frame_equal(again[cols].sort_values("formula").reset_index(drop=True),
                                  exported[cols].sort_values("formula").reset_index(drop=True))
