"""What `aloop record` tells the user about typos, re-recorded sheets and Excel's files, and that the hints work.

Each case drives the real command on a small grid campaign (six pending proposals).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke

from aloop.campaigns import CampaignLog

GAP = "gap [eV]"



def digest(folder: Path) -> str:
    with CampaignLog.open(folder / "gap.sqlite") as log:
        return log.events_digest()


def record(folder: Path, text: str | bytes, code: int = 0) -> tuple[str, str]:
    """Run `aloop record` on ``text``: it must exit with ``code``; its stdout and stderr (line wrapping undone)."""
    path = folder / "r.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    result = invoke("record", path, "-c", folder)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return " ".join(result.stdout.split()), " ".join(result.stderr.split())


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[Path, list[int]]:
    """A grid campaign with six pending proposals: the folder and their ids."""
    args = ["init", "gap", "--dir", tmp_path, "--elements", "Ni,Fe,Co", "--step", "0.1", "--featurizer", "ef",
            "--objective", "gap", "--units", "μW", "--direction", "maximize"]
    assert invoke(*args).exit_code == 0
    result = invoke("propose", "-n", "6", "-c", tmp_path, "-o", tmp_path / "sheet.csv")
    assert result.exit_code == 0, result.output
    return tmp_path, pd.read_csv(tmp_path / "sheet.csv")["proposal_id"].tolist()


UNITS = "gap [\u00b5W]"  # micro sign; the campaign was defined with the Greek mu


def test_a_typo_is_refused_or_flagged_and_the_hint_undoes_it(campaign: tuple[Path, list[int]]) -> None:
    folder, pids = campaign
    before = digest(folder)
    _, err = record(folder, f"proposal_id,{UNITS}\n{pids[0]},0.32\n{pids[1]},1e200\n", code=2)
    assert err.startswith("error:") and f"line 3: {UNITS}: value 1e200 is beyond ±1e+100" in err, err
    assert digest(folder) == before
    rows = "".join(f"{p},{v}\n" for p, v in zip(pids[:5], [0.30, 0.35, 0.42, 0.45, 0.50], strict=True))
    out, err = record(folder, f"proposal_id,{UNITS}\n{rows}")
    assert "recorded 5 new" in out and "warning" not in err
    out, err = record(folder, f"proposal_id,{UNITS}\n{pids[5]},320\n")
    assert "recorded 1 new" in out
    for needle in ("warning: 1 value(s) recorded far outside", "line 2: gap = 320 is",
                   f'undo: aloop retract {pids[5]} --reason "..."'):
        assert needle in err, err
    retract = invoke("retract", pids[5], "--reason", "typed 320 for 0.32", "-c", folder)
    assert retract.exit_code == 0, retract.output
    status = invoke("status", "--json", "--no-cv", "-c", folder)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["counts"]["measured"] == 5


def test_re_recording_a_sheet_says_how_to_record_a_genuine_repeat(campaign: tuple[Path, list[int]]) -> None:
    folder, pids = campaign
    record(folder, f"proposal_id,{UNITS}\n{pids[0]},0.4\n")
    before = digest(folder)
    out, err = record(folder, f"proposal_id,{UNITS}\n{pids[0]},0.4\n")
    assert "recorded 0 new" in out and "1 already recorded (skipped)" in out
    for needle in ("warning: 1 row(s) skipped as already recorded (line 2)", "genuine repeat measurement",
                   "give it a measured_at (when it was measured) or an idempotency_key"):
        assert needle in err, err
    assert digest(folder) == before
    # Following the hint records the repeat, as a replicate.
    out, err = record(folder, f"proposal_id,{UNITS},measured_at\n{pids[0]},0.4,2026-03-12\n")
    assert "recorded 1 new" in out and "stored as replicates" in err and "already recorded" not in err


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"formula": ["Ni"], "gap [µW]": [0.4]}).to_parquet(buf)
    return buf.getvalue()


def _zip_bytes() -> bytes:
    """A zip archive, as an .xlsx workbook is."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("formula,gap [µW],notes\nNi,0.4,réussi\n".encode("cp1252"),
         ["not UTF-8 text: line 1, column 14 has byte 0xb5 ('µ' in Windows-1252", "save it as 'CSV UTF-8 (Comma delimited)'"]),
        ("formula,gap [µW]\nNi,0.4\n".encode("utf-16"), ["it looks like UTF-16", "'CSV UTF-8"]),
        (b"formula;gap [\xc2\xb5W]\nNi;0,4\n", ["line 1: the header", "semicolon-separated", "'.' decimals"]),
        (b'formula,gap [\xc2\xb5W],measured_at\nNi,"0,4",11/03/2026\n',
         ["line 2: gap [µW]: '0,4' is not a number (a decimal comma?", ("line 2: measured_at: '11/03/2026' is not a "
                                                                        "date/time in ISO 8601 format")]),
        (_parquet_bytes(), ["the file is a Parquet file, not CSV text", "'CSV UTF-8"]),
        (_zip_bytes(), ["the file is an Excel workbook (.xlsx)", "'CSV UTF-8"]),
    ],
    ids=["cp1252", "utf-16", "semicolons", "decimal-comma-and-date", "parquet", "xlsx"],
)
def test_files_excel_saved_otherwise_get_a_clear_error(
    campaign: tuple[Path, list[int]], content: bytes, needles: list[str]
) -> None:
    folder, _ = campaign
    before = digest(folder)
    _, err = record(folder, content, code=2)
    assert err.startswith("error:") and "codec" not in err, err
    for needle in needles:
        assert needle in err, err
    assert digest(folder) == before
