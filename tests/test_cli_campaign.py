"""The campaign commands: init → propose → record → fail/reject/retract → status → report → export, migrate, refusals.

Every bad input (results files with missing/extra columns, wrong units, NaN, text, unknown
elements or proposal ids; unknown ids for fail/reject; bad flags) must exit with code 2,
print one ``error:`` message without a traceback and leave the log's digest unchanged.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke
from sqlalchemy import create_engine, text

from aloop.campaigns import CampaignLog
from aloop.campaigns.migrations import create_v2_schema
from aloop.chem import check_formulas, composition_key
from aloop.datasets import load

COLUMN = "PF_p [μW/(cm·K²)]"



def assert_clean_error(result, *needles: str, usage: bool = False) -> None:
    """Exit code 2, no traceback, the needles in stderr; ``usage``: click's own usage-error format."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("Usage:" if usage else "error:"), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def digest(folder: Path, campaign: str = "pf") -> str:
    with CampaignLog.open(folder / f"{campaign}.sqlite") as log:
        return log.events_digest()


@pytest.fixture(scope="module")
def truth() -> dict[str, float]:
    frame = load("mp-transport")
    bad = check_formulas(frame["formula"].tolist())
    frame = frame.drop(index=frame.index[[b.index for b in bad]]).sample(200, random_state=1)
    frame = frame.assign(key=[composition_key(f) for f in frame["formula"]]).drop_duplicates("key")
    return {f: float(v) for f, v in zip(frame["formula"], frame["PF_p"], strict=True)}


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory: pytest.TempPathFactory, truth: dict[str, float]) -> Iterator[Path]:
    """A campaign with one measured batch and one pending batch (results sheet ``batch2.csv``)."""
    folder = tmp_path_factory.mktemp("cli")
    pd.DataFrame({"formula": list(truth)}).to_csv(folder / "candidates.csv", index=False)
    result = invoke("init", "pf", "--dir", folder, "--candidates", folder / "candidates.csv", "--objective", "PF_p",
                    "--units", "μW/(cm·K²)", "--transform", "log10", "--featurizer", "magpie", "--batch-size", "4",
                    "--initial-design", "random", "--initial-size", "4", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert (folder / "pf.toml").is_file() and (folder / "pf.sqlite").is_file()
    toml = (folder / "pf.toml").read_text()
    assert 'transform = "log10"' in toml and 'candidates_csv = "candidates.csv"' in toml
    result = invoke("propose", "-c", folder, "-o", folder / "batch1.csv")
    assert result.exit_code == 0, result.output
    assert "initial design" in result.stdout
    assert (folder / "batch1.csv").read_bytes().startswith("\ufeffproposal_id,".encode())  # Excel needs the BOM
    sheet = pd.read_csv(folder / "batch1.csv")
    assert list(sheet.columns) == ["proposal_id", "formula", COLUMN] and len(sheet) == 4
    sheet[COLUMN] = [truth[f] for f in sheet["formula"]]
    sheet.to_csv(folder / "batch1.csv", index=False)
    result = invoke("record", folder / "batch1.csv", "-c", folder / "pf.toml")
    assert result.exit_code == 0 and "recorded 4 new" in result.stdout, result.output
    result = invoke("propose", "-n", "4", "-c", folder, "-o", folder / "batch2.csv")
    assert result.exit_code == 0, result.output
    assert "retrained: model v1 on 4 observations" in result.stdout and "log10(PF_p)" in result.stdout
    yield folder


def test_full_cycle(campaign_dir: Path, truth: dict[str, float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(campaign_dir)  # the single *.toml here is the campaign
    sheet = pd.read_csv("batch2.csv")
    ids = sheet["proposal_id"].tolist()
    assert_clean_error(invoke("fail", ids[0]), "Missing option '--reason'", usage=True)
    assert invoke("fail", ids[0], "--reason", "cracked pellet").exit_code == 0
    assert invoke("reject", ids[1], "--reason", "thallium: toxic").exit_code == 0
    done = sheet.iloc[2:].assign(**{COLUMN: [truth[f] for f in sheet["formula"].iloc[2:]]})
    done.to_csv("batch2_done.csv", index=False)
    assert invoke("record", "batch2_done.csv").exit_code == 0
    before = digest(campaign_dir)
    again = invoke("record", "batch2_done.csv")  # idempotent
    assert again.exit_code == 0 and "2 already recorded" in again.stdout
    assert digest(campaign_dir) == before

    result = invoke("status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["counts"]["measured"] == 6 and status["counts"]["failed"] == 1 and status["counts"]["rejected"] == 1
    c = status["counts"]  # the proposals' outcomes add up to the proposals (measurements may be more: replicates)
    assert c["measured_proposals"] + c["pending"] + c["failed"] + c["rejected"] + c["cancelled"] == c["proposed"]
    assert status["model"]["cv"]["log10(PF_p)"]["n"] == 6
    best = max(truth[f] for f in [*pd.read_csv("batch1.csv")["formula"], *done["formula"]])
    assert status["best"]["PF_p"]["value"] == pytest.approx(best)
    text = invoke("status", "--no-cv")
    assert text.exit_code == 0 and "6 measurements" in text.stdout and "best PF_p" in text.stdout
    assert f"proposed in {c['batches']} batches: {c['measured_proposals']} measured, {c['pending']} pending" in " ".join(
        text.stdout.split())

    assert invoke("report", "-o", "rep").exit_code == 0
    assert (campaign_dir / "rep" / "report.html").stat().st_size > 10_000 and (campaign_dir / "rep" / "report.md").is_file()
    assert invoke("export", "events.csv").exit_code == 0
    events = pd.read_csv("events.csv")
    assert set(events["kind"]) == {"proposed", "measured", "failed", "rejected", "model_fitted"}
    assert invoke("export", "obs.parquet", "--table", "observations").exit_code == 0
    assert len(pd.read_parquet("obs.parquet")) == 6
    # The rejected composition is never proposed again.
    nxt = invoke("propose", "-n", "3", "-o", "batch3.csv")
    assert nxt.exit_code == 0, nxt.output
    rejected = sheet["formula"].iloc[1]
    assert rejected not in set(pd.read_csv("batch3.csv")["formula"])


BAD_RESULTS = {
    "missing objective column": ("proposal_id,formula\n{id},{f}\n", "missing column for objective 'PF_p'"),
    "extra column": ("proposal_id,{col},colour\n{id},1.5,red\n", "unexpected column(s) 'colour'"),
    "wrong units": ("proposal_id,PF_p [W/(m·K²)]\n{id},1.5\n", "units 'W/(m·K²)' differ"),
    "NaN": ("proposal_id,{col}\n{id},NaN\n", "missing value"),
    "text in numbers": ("proposal_id,{col}\n{id},high\n", "'high' is not a number"),
    "unknown element": ("formula,{col}\nXx2O3,1.5\n", "unknown element 'Xx'"),
    "unknown proposal id": ("proposal_id,{col}\n999999,1.5\n", "proposal 999999 does not exist"),
    "non-positive under log10": ("proposal_id,{col}\n{id},0\n", "must be > 0"),
    "one bad row of two": ("proposal_id,{col}\n{id},1.5\n{id2},oops\n", "1 of 2 rows are invalid"),
    "empty file": ("", "cannot read results file"),
    "future measured_at": ("proposal_id,{col},measured_at\n{id},1.5,2062-03-11\n", "2062-03-11 00:00 UTC is in the future"),
}


@pytest.mark.parametrize("case", list(BAD_RESULTS))
def test_bad_results_change_nothing(campaign_dir: Path, case: str) -> None:
    pending = CampaignLog.open(campaign_dir / "pf.sqlite").pending()
    template, needle = BAD_RESULTS[case]
    path = campaign_dir / f"bad_{case.replace(' ', '_')}.csv"
    path.write_text(template.format(id=pending["proposal_id"].iloc[-1], id2=pending["proposal_id"].iloc[-2],
                                    f=pending["formula"].iloc[-1], col=COLUMN), encoding="utf-8")
    before = digest(campaign_dir)
    assert_clean_error(invoke("record", path, "-c", campaign_dir), needle)
    assert digest(campaign_dir) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fail", "999999", "--reason", "x"], "proposal 999999 does not exist"),
        (["reject", "999999", "--reason", "x"], "proposal 999999 does not exist"),
        (["reject", "1", "--reason", "x"], "is not pending"),
        (["propose", "-n", "0"], "positive integer"),
        (["record", "."], "is a folder, not a results file"),
        (["record", "nowhere.csv"], "results file not found"),
        (["export", "out.xlsx"], "export format"),
        (["export", "out.csv", "--table", "everything"], "unknown export table"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_bad_commands_change_nothing(campaign_dir: Path, args: list[str], needle: str) -> None:
    before = digest(campaign_dir)
    assert_clean_error(invoke(*args, "-c", campaign_dir), needle)
    assert digest(campaign_dir) == before


def test_a_window_or_target_alone_sets_the_direction(tmp_path: Path) -> None:
    """As `aloop benchmark --window` does: --window (or --target) without --direction means that direction."""
    import tomllib

    grid = ("--elements", "Ni,Fe", "--step", "0.1", "--featurizer", "ef", "--dir", tmp_path)
    for name, flag, expected in (("w", ("--window", "1.1", "1.7"), {"direction": "window", "window": [1.1, 1.7]}),
                                 ("t", ("--target", "1.4"), {"direction": "target", "target": 1.4}),
                                 ("m", (), {"direction": "maximize"})):
        result = invoke("init", name, *grid, *flag)
        assert result.exit_code == 0, result.output
        (objective,) = tomllib.loads((tmp_path / f"{name}.toml").read_text())["objectives"]
        assert expected.items() <= objective.items(), objective


def test_init_and_discovery_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_clean_error(invoke("status"), "no campaign definition")
    grid = ("--elements", "Ni,Fe", "--step", "0.1")
    assert_clean_error(invoke("init", "x"), "say where the candidates come from", "--elements", "--candidates")
    assert_clean_error(invoke("init", "x", "--step", "0.1"), "--step need --elements")
    assert_clean_error(invoke("init", "x", "--candidates", "c.csv", *grid), "--candidates and --elements, --step")
    assert_clean_error(invoke("init", "x", *grid, "--direction", "maximise"), "direction", "maximise")
    assert_clean_error(invoke("init", "x", *grid, "--direction", "window"), "--direction window needs --window")
    assert_clean_error(invoke("init", "x", *grid, "--direction", "minimize", "--window", "1", "2"),
                       "--window is only for --direction window (not minimize)")
    assert_clean_error(invoke("init", "x", *grid, "--window", "1", "2", "--target", "1.5"), "give one")
    assert_clean_error(invoke("init", "x", "--elements", "Ni,Qq", "--step", "0.1"), "Qq")
    assert_clean_error(invoke("init", "x", "--candidates", "missing.csv"), "file not found")
    assert_clean_error(invoke("init", "x", "--fixed", "O:0.6", "--elements", "Ni,Fe", "--step", "0.1"), "ELEMENT=VALUE")
    assert_clean_error(invoke("init", "bad name", *grid), "campaign name")
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert invoke("init", "a", "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef").exit_code == 0
    assert_clean_error(invoke("init", "a", "--elements", "Ni,Fe", "--step", "0.1"), "already exists")
    assert invoke("init", "b", "--elements", "Ni,Fe", "--step", "0.1", "--fixed", "O=0.5").exit_code == 0
    assert_clean_error(invoke("propose"), "several campaign definitions")
    result = invoke("propose", "-n", "2", "-c", "a.toml")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["init", "propose", "record", "fail", "reject", "cancel", "retract", "status", "report",
                                     "export", "migrate"])
def test_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_propose_checks_the_sheet_before_proposing(campaign_dir: Path, tmp_path: Path) -> None:
    """A results sheet that cannot be written new is refused before anything is proposed."""
    before = digest(campaign_dir)
    existing = campaign_dir / "batch2.csv"  # may hold results already
    content = existing.read_bytes()
    for target, needle in [(tmp_path / "nodir" / "sheet.csv", "folder"), (existing, "already exists"),
                           (tmp_path, "is a folder")]:
        assert_clean_error(invoke("propose", "-n", "2", "-c", campaign_dir, "-o", target), needle)
    assert existing.read_bytes() == content and digest(campaign_dir) == before
    assert not list(tmp_path.iterdir())

    result = invoke("propose", "-n", "2", "-c", campaign_dir, "-o", tmp_path / "batch.csv")
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["batch.csv"]  # no temporary file left behind
    sheet = pd.read_csv(tmp_path / "batch.csv", encoding="utf-8-sig")
    # The model's predictions ride along as a reference (here of log10 PF_p, the modelled quantity, so no units).
    assert list(sheet.columns)[:5] == ["proposal_id", "formula", COLUMN, "predicted log10(PF_p)",
                                       "predicted sd log10(PF_p)"] and len(sheet) == 2
    assert list(sheet.columns)[5:] == ["P(success)"]  # the earlier tests of this campaign logged failures
    with CampaignLog.open(campaign_dir / "pf.sqlite") as log:
        assert set(sheet["proposal_id"]) <= set(log.pending()["proposal_id"])
        logged = log.proposals().set_index("proposal_id").loc[sheet["proposal_id"]]
    assert sheet["predicted log10(PF_p)"].tolist() == pytest.approx(logged["mean_log10(PF_p)"].tolist(), rel=1e-3)
    assert sheet["predicted sd log10(PF_p)"].tolist() == pytest.approx(logged["std_log10(PF_p)"].tolist(), rel=1e-2)
    assert sheet["P(success)"].tolist() == pytest.approx(logged["p_success"].tolist(), abs=1e-3)
    sheet[COLUMN] = [5.0, 7.0]  # filled in, the reference columns left as they were: `record` reads past them
    sheet.to_csv(tmp_path / "batch.csv", index=False)
    result = invoke("record", "-c", campaign_dir, tmp_path / "batch.csv")
    assert result.exit_code == 0 and "recorded 2 new measurement(s)" in result.stdout, result.output


def test_propose_says_what_to_do_when_the_sheet_fails_after_proposing(campaign_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    result = invoke("propose", "-n", "1", "-c", campaign_dir, "-o", tmp_path / "batch.csv")
    with CampaignLog.open(campaign_dir / "pf.sqlite") as log:
        pid = int(log.pending()["proposal_id"].iloc[-1])
    assert_clean_error(result, "No space left on device", f"proposals {pid} are logged as pending",
                       f"`aloop cancel {pid}`")
    assert not list(tmp_path.iterdir())


def test_cli_errors_name_commands_not_python_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "g", "--elements", "Ni,Fe", "--step", "0.1", "--featurizer", "ef").exit_code == 0
    again = invoke("init", "g", "--elements", "Ni,Fe", "--step", "0.1")
    assert_clean_error(again, "g.toml already exists", "`aloop propose -c g.toml`")
    (tmp_path / "g.sqlite").rename(tmp_path / "moved.sqlite")
    moved = invoke("status", "--no-cv")
    assert_clean_error(moved, "no campaign log at", "set database_url in g.toml", "run `aloop init --from")
    for result in (again, moved):
        assert "Campaign.open" not in result.stderr and "create=True" not in result.stderr


def test_an_edited_objective_is_refused_with_both_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "g", "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef", "--objective", "gap",
                  "--units", "eV", "--initial-size", "4").exit_code == 0
    assert invoke("propose", "-n", "4", "-o", "s.csv").exit_code == 0
    sheet = pd.read_csv("s.csv").assign(**{"gap [eV]": [1.1, 1.2, 1.3, 1.4]})
    sheet.to_csv("s.csv", index=False)
    assert invoke("record", "s.csv").exit_code == 0
    original = Path("g.toml").read_text(encoding="utf-8")
    before = digest(tmp_path, "g")
    for edit, needle in [(('name = "gap"', 'name = "band_gap"'), "says objective 'band_gap' in eV"),
                         (('units = "eV"', 'units = "meV"'), "says objective 'gap' in meV")]:
        Path("g.toml").write_text(original.replace(*edit), encoding="utf-8")
        for command in (["status", "--no-cv"], ["propose", "-n", "1"]):
            assert_clean_error(invoke(*command), "the log records objective 'gap' in eV (4 measurements)", needle)
    assert digest(tmp_path, "g") == before
    assert 'kind = "ucb"' in original
    Path("g.toml").write_text(original.replace('kind = "ucb"', 'kind = "thompson"'), encoding="utf-8")
    result = invoke("propose", "-n", "1")  # other settings may change
    assert result.exit_code == 0 and "on 4 observations" in result.stdout, result.output


def _gap_campaign(folder: Path, values: list[float]) -> list[int]:
    """A grid campaign ``g`` in ``folder`` with one measured batch; returns the proposal ids."""
    assert invoke("init", "g", "--dir", folder, "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef",
                  "--objective", "gap", "--units", "eV").exit_code == 0
    assert invoke("propose", "-n", len(values), "-c", folder, "-o", folder / "s.csv").exit_code == 0
    sheet = pd.read_csv(folder / "s.csv").assign(**{"gap [eV]": values})
    sheet.to_csv(folder / "s.csv", index=False)
    assert invoke("record", folder / "s.csv", "-c", folder).exit_code == 0
    return sheet["proposal_id"].tolist()


def test_retract_a_wrong_value(tmp_path: Path) -> None:
    ids = _gap_campaign(tmp_path, [1.1, 12.0, 1.3])
    result = invoke("retract", ids[1], "--reason", "typed 12.0 for 1.2", "-c", tmp_path)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"retracted measurement {ids[-1] + 2} (" in text and "gap = 12)" in text
    assert f"pending again: proposal(s) {ids[1]}" in text and "`aloop record`" in text
    status = json.loads(invoke("status", "--json", "--no-cv", "-c", tmp_path).stdout)
    assert (status["counts"]["measured"], status["counts"]["retracted"]) == (2, 1)
    assert status["best"]["gap"]["value"] == 1.3 and status["pending"][0]["proposal_id"] == ids[1]
    with CampaignLog.open(tmp_path / "g.sqlite") as log:
        assert log.retractions()["operator"].tolist() == [getpass.getuser()]  # who, by default

    before = digest(tmp_path, "g")
    for args, needle in [([ids[1], "--reason", "again"], "has no measurement to retract (already retracted"),
                         ([ids[-1] + 2, "--reason", "again"], "was already retracted on"),
                         (["999999", "--reason", "x"], "999999: not a measurement, outcome or proposal"),
                         ([ids[0], "--reason", " "], "give a reason")]:
        assert_clean_error(invoke("retract", *args, "-c", tmp_path), needle)
    assert_clean_error(invoke("retract", ids[0], "-c", tmp_path), "Missing option '--reason'", usage=True)
    assert_clean_error(invoke("retract", "-c", tmp_path, "--reason", "x"), "Missing argument", usage=True)
    assert digest(tmp_path, "g") == before

    # A fail given to the wrong proposal id: retracted, the proposal takes its result after all.
    result = invoke("propose", "-n", "1", "-o", tmp_path / "next.csv", "-c", tmp_path)
    assert result.exit_code == 0, result.output
    pid = pd.read_csv(tmp_path / "next.csv")["proposal_id"].iloc[0]
    retracted = json.loads(invoke("status", "--json", "--no-cv", "-c", tmp_path).stdout)["counts"]["retracted"]
    assert invoke("fail", pid, "--reason", "cracked", "-c", tmp_path).exit_code == 0
    result = invoke("retract", pid, "--reason", "wrong proposal id", "-c", tmp_path)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"retracted: proposal {pid} (" in text and "is no longer failed" in text and f"proposal(s) {pid}" in text
    status = json.loads(invoke("status", "--json", "--no-cv", "-c", tmp_path).stdout)
    assert pid in [p["proposal_id"] for p in status["pending"]] and status["counts"]["failed"] == 0
    assert status["counts"]["retracted"] == retracted + 1  # a retracted mark counts, as a retracted value does


def test_init_from_a_hand_written_definition_with_two_objectives(tmp_path: Path) -> None:
    """Several objectives need a definition file: `aloop init --from` creates its log; nothing else is taken."""
    definition = tmp_path / "mo.toml"
    definition.write_text('name = "mo"\n[search_space]\nelements = ["Ni", "Fe", "Co"]\nstep = 0.25\n'
                          '[[objectives]]\nname = "current"\nunits = "mA/cm2"\ndirection = "maximize"\n'
                          '[[objectives]]\nname = "overpotential"\nunits = "V"\ndirection = "minimize"\n'
                          '[featurizer]\nkind = "ef"\n')
    assert_clean_error(invoke("propose", "-n", "2", "-c", definition), f"run `aloop init --from {definition}`")
    assert_clean_error(invoke("init", "--from", definition, "--featurizer", "ef", "--batch-size", "3"),
                       "--from takes everything from")
    assert_clean_error(invoke("init", "mo", "--from", definition), "drop NAME")
    assert_clean_error(invoke("init", "--from", tmp_path / "nothere.toml"), "is not a campaign definition file")
    good = definition.read_text()
    definition.write_text(good + '[acquisition]\nkind = "ucb"\n')  # one objective only: refused, nothing created
    assert_clean_error(invoke("init", "--from", definition), "acquisition.kind: 'ucb' handles one objective")
    assert not (tmp_path / "mo.sqlite").exists()
    definition.write_text(good)
    result = invoke("init", "--from", definition)
    assert result.exit_code == 0, result.output
    assert "2 objective(s): current, overpotential" in " ".join(result.stdout.split())
    assert_clean_error(invoke("init", "--from", definition), "already has its log; continue it with")
    result = invoke("propose", "-n", "2", "-c", definition, "-o", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert {"current [mA/cm2]", "overpotential [V]"} <= set(pd.read_csv(tmp_path / "s.csv").columns)
    assert_clean_error(invoke("init", "--dir", tmp_path), "give the campaign's NAME")


def test_a_log_from_before_retractions_is_migrated_from_the_shell(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert invoke("init", "g", "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef").exit_code == 0
    (tmp_path / "g.sqlite").unlink()
    engine = create_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")
    with engine.begin() as conn:  # the same campaign, as aloop wrote it before schema v3
        create_v2_schema(conn)
        conn.execute(text("INSERT INTO campaigns (name, created_at) VALUES ('g', '2024-05-01 12:00:00')"))
    engine.dispose()
    stale = invoke("status", "--no-cv")
    assert_clean_error(stale, "schema v2; this aloop uses v3", "back it up, then run `aloop migrate -c ", "g.toml`")
    result = invoke("migrate")
    assert result.exit_code == 0 and "from schema v2 to v3" in " ".join(result.stdout.split()), result.output
    assert "schema v3 already" in " ".join(invoke("migrate").stdout.split())
    assert invoke("propose", "-n", "2").exit_code == 0


def test_init_says_what_a_grid_will_take_and_warns_before_a_laptop_is_swamped(tmp_path: Path) -> None:
    small = invoke("init", "s", "--dir", tmp_path, "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef",
                   "--objective", "eta", "--units", "V", "--direction", "minimize")
    assert small.exit_code == 0, small.output
    assert "the grid holds 66 compositions; ef gives 86 features each" in " ".join(small.stdout.split())
    big = invoke("init", "b", "--dir", tmp_path, "--elements", "Ni,Fe,Co,Mn,Cu,Zn,Al,Ti,V,Cr,Mo,W", "--step", "0.01",
                 "--max-elements", "3", "--objective", "eta", "--units", "V", "--direction", "minimize")
    assert big.exit_code == 0, big.output
    said = " ".join(big.stderr.split())
    assert "the grid holds 1,073,766 compositions; elemnet gives 1,024 features each" in said
    assert "more than many laptops have" in said and not (tmp_path / "b.features.npz").exists()  # nothing built yet
