"""Results files as labs really write them: typos in magnitude, non-ISO dates, look-alike units, Excel's leftovers.

Each refused file must name the problem (line, column, value) and leave the log unchanged;
each accepted one must be recorded exactly as a clean file would be.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from aloop.campaigns import (
    CampaignConfig,
    CampaignLog,
    CampaignLogError,
    Measurement,
    Proposal,
    RecordError,
    parse_config,
    read_results,
    validate_results,
)
from aloop.campaigns.consistency import DefinitionMismatchError, check_objectives
from aloop.campaigns.outliers import MAX_MAGNITUDE, OutlierWarning
from aloop.chem import composition_key

HEAD = "proposal_id,formula,zT,kappa [W/m/K]"


def make_config(name: str, objectives: list[dict], **more: object) -> CampaignConfig:
    """A Bi–Sb–Te grid campaign with these objectives."""
    return parse_config({"name": name, "search_space": {"elements": ["Bi", "Sb", "Te"], "step": 0.1},
                         "objectives": objectives, **more})


@pytest.fixture
def pids(log: CampaignLog) -> list[int]:
    """Eight pending proposals of distinct Bi–Sb–Te compositions."""
    formulas = ["Bi2Te3", "Sb2Te3", "BiSbTe3", "Bi3SbTe6", "BiSb3Te6", "Bi3Sb7Te10", "Bi7Sb3Te10", "Bi9SbTe15"]
    return list(log.append_proposals([Proposal(f, composition_key(f)) for f in formulas]).proposal_ids)


def record(path: Path, text: str | bytes, config: CampaignConfig, log: CampaignLog | None) -> list[Measurement]:
    """Write ``text`` to ``path``, read and validate it, and append it to ``log`` (if given)."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    rows = validate_results(read_results(path), config, log)
    if log is not None:
        log.append_measurements(rows)
    return rows


def refused(path: Path, text: str, config: CampaignConfig, log: CampaignLog, *needles: str) -> str:
    """Recording ``text`` must raise ``RecordError`` naming ``needles`` and change nothing."""
    before = log.events_digest()
    with pytest.raises(RecordError) as err:
        record(path, text, config, log)
    for needle in (*needles, "nothing was recorded"):
        assert needle in str(err.value), str(err.value)
    assert log.events_digest() == before
    return str(err.value)


# ---------------------------------------------------------------------------------------------- magnitude


def test_a_value_no_surrogate_can_model_is_refused_naming_line_and_value(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    csv = f"{HEAD}\n{pids[0]},,0.32,1.0\n{pids[1]},,1e200,1.0\n{pids[2]},,0.4,-2E+101\n"
    message = refused(tmp_path / "r.csv", csv, config, log, "2 of 3 rows are invalid",
                      "line 3: zT: value 1e200 is beyond ±1e+100", "line 4: kappa [W/m/K]: value -2E+101 is beyond")
    assert "line 2" not in message
    # The bound itself is fine, and the log's own API refuses what files cannot bring in either.
    (ok,) = record(tmp_path / "ok.csv", f"{HEAD}\n{pids[1]},,1e100,-1E100\n", config, log)
    assert ok.values == {"zT": MAX_MAGNITUDE, "kappa": -MAX_MAGNITUDE}
    before = log.events_digest()
    with pytest.raises(CampaignLogError, match=r"measurement 0: zT: value 1e\+200 is beyond"):
        log.append_measurements([Measurement({"zT": 1e200, "kappa": 1.0}, {"zT": "", "kappa": "W/m/K"},
                                             proposal_id=pids[2])])
    assert log.events_digest() == before


# ----------------------------------------------------------------------------------------------- outliers


def _five(path: Path, config: CampaignConfig, log: CampaignLog, pids: list[int], values: list[float]) -> None:
    rows = "".join(f"{p},,{v},1.0\n" for p, v in zip(pids, values, strict=True))
    record(path, f"{HEAD}\n{rows}", config, log)


def test_a_value_far_outside_the_recorded_spread_is_recorded_with_a_warning_saying_how_to_undo_it(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    _five(tmp_path / "a.csv", config, log, pids[:5], [0.30, 0.35, 0.42, 0.45, 0.50])
    with pytest.warns(OutlierWarning) as caught:
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[5]},,0.41,1.1\n{pids[6]},,320,1.0\n", config, log)
    (warning,) = caught
    message = str(warning.message)
    assert "1 value(s) recorded far outside" in message and "line 3: zT = 320 is" in message, message
    assert "median (0.42) of the 5 values" in message and f'undo: aloop retract {pids[6]} --reason "..."' in message
    assert "line 2" not in message and "kappa" not in message
    assert list(log.observations()["zT"]) == [0.30, 0.35, 0.42, 0.45, 0.50, 0.41, 320.0]  # recorded all the same
    # A replicate's or unsolicited row's undo names the measurement id to look up.
    with pytest.warns(OutlierWarning, match=r"line 2: zT = -500 .*undo: aloop retract ID --reason \"...\" \(ID: the "
                      r"measurement id `aloop record` lists for this row; in Python, AppendResult.event_ids\)"):
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[0]},,-500,1.0\n", config, log)


def test_a_slipped_decimal_point_is_flagged_by_its_ratio_to_the_recorded_values(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    """Among tightly clustered values a 10× slip is only ~100 robust spreads out, but 10× the largest (or 1/10)."""
    import warnings

    _five(tmp_path / "a.csv", config, log, pids[:5], [0.30, 0.35, 0.42, 0.45, 0.50])
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutlierWarning)
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[5]},,2.5,1.0\n", config, log)  # 5× the best: a good sample
    with pytest.warns(OutlierWarning, match=r"line 2: zT = 0.03 is 1/10 of the smallest \(0.3\) of the 6 values "
                                            r"recorded before; undo: aloop retract"):
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[6]},,0.03,1.0\n", config, log)
    with pytest.warns(OutlierWarning, match=r"(?s)over 8× the largest.*zT = 25 is 10× the largest \(2.5\) of the 7 values"):
        record(tmp_path / "d.csv", f"{HEAD}\n{pids[7]},,25,1.0\n", config, log)


def test_a_decimal_point_slipped_among_narrowly_spread_values_is_flagged_though_under_8x(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    """OER-like values of 0.34–0.64: 0.0603 for 0.603 is only 1/5.6 of the smallest and 4.1 for 0.41 only 6.4× the
    largest, so the 8× rule let both pass (one became the campaign's best). A value whose decimal shift lands nowhere
    among them, or one among values spread over more than a decade (kappa here), is left alone."""
    import warnings

    kappas = [0.1, 0.5, 1.0, 2.0, 5.0]  # a factor 50
    rows = "".join(f"{p},,{z},{k}\n" for p, z, k in zip(pids, [0.34, 0.40, 0.45, 0.55, 0.64], kappas, strict=False))
    record(tmp_path / "a.csv", f"{HEAD}\n{rows}", config, log)
    with pytest.warns(OutlierWarning) as caught:
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[5]},,0.0603,1.0\n{pids[6]},,4.1,1.0\n", config, log)
    (warning,) = caught
    message = str(warning.message)
    assert ("line 2: zT = 0.0603 is 1/5.64 of the smallest (0.34) of the 5 values recorded before, and 0.603 would "
            "lie among them: a slipped decimal point?") in message, message
    assert "line 3: zT = 4.1 is 6.41× the largest (0.64)" in message and "0.41 would lie among them" in message
    assert "a decimal point that slipped by one to three places" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutlierWarning)
        # zT 2.5: 0.25 or 25, nowhere among the values; kappa 30, 6× the largest, but they span a factor 50
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[7]},,2.5,30\n", config, log)


def test_a_slipped_minus_sign_is_flagged_and_a_stray_one_keeps_the_rules_on(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    """Among positive values a negative one (-0.41 for 0.41) is flagged, though only a few spreads out; once one
    such typo is on record, the sign and ratio rules still watch the next values."""
    _five(tmp_path / "a.csv", config, log, pids[:5], [0.30, 0.35, 0.42, 0.45, 0.50])
    with pytest.warns(OutlierWarning, match=r"line 2: zT = -0.41 is negative, while 5 of the 5 values recorded "
                                            r"before are positive \(median 0.42\): a slipped minus sign\?"):
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[5]},,-0.41,1.0\n", config, log)
    with pytest.warns(OutlierWarning, match=r"zT = 0.03 is 1/10 of the smallest \(0.3\)"):  # -0.41 still on record
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[6]},,0.03,1.0\n", config, log)
    import warnings

    with warnings.catch_warnings():  # zero is a value of its own (a metal's band gap), not a sign slip
        warnings.simplefilter("error", OutlierWarning)
        record(tmp_path / "d.csv", f"{HEAD}\n{pids[7]},,0,1.0\n", config, log)


def test_no_outlier_warning_before_five_values_or_within_the_spread(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", OutlierWarning)
        _five(tmp_path / "a.csv", config, log, pids[:4], [0.30, 0.35, 0.42, 0.45])
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[4]},,900,1.0\n", config, log)  # only 4 values before it
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[5]},,2.5,1.0\n", config, log)  # a good sample, not a typo
    # Identical earlier values (kappa): the spread falls back to |median|, so a gross slip is still caught.
    with pytest.warns(OutlierWarning, match="kappa = 10000 is"):
        record(tmp_path / "d.csv", f"{HEAD}\n{pids[6]},,0.4,10000\n", config, log)


def test_a_retracted_value_is_no_yardstick_for_the_next_ones(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    """Once a typo is retracted, values are compared with the others alone: 25 among 0.3–0.5 is flagged, as it
    would be had 320 never been recorded (beside 320 it would look ordinary)."""
    _five(tmp_path / "a.csv", config, log, pids[:5], [0.30, 0.35, 0.42, 0.45, 0.50])
    with pytest.warns(OutlierWarning):
        record(tmp_path / "b.csv", f"{HEAD}\n{pids[5]},,320,1.0\n", config, log)
    log.retract(pids[5], "typo: 0.32")
    with pytest.warns(OutlierWarning, match=r"zT = 25 is 50× the largest \(0.5\) of the 5 values recorded before"):
        record(tmp_path / "c.csv", f"{HEAD}\n{pids[6]},,25,1.0\n", config, log)


@pytest.fixture
def log10_config() -> CampaignConfig:
    return make_config(name="sigma", objectives=[{"name": "sigma", "units": "S/cm", "direction": "maximize"}],
                       surrogate={"kind": "gp", "options": {"transform": "log10"}})


@pytest.fixture
def log10_log(db_url: str, log10_config: CampaignConfig) -> Iterator[CampaignLog]:
    with CampaignLog.open(db_url, "sigma", create=True, definition=log10_config.to_dict()) as lg:
        yield lg


def test_a_log10_objective_refuses_non_positive_values_before_any_warning(
    log10_log: CampaignLog, log10_config: CampaignConfig, tmp_path: Path
) -> None:
    import warnings

    head = "formula,sigma [S/cm]"
    values = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    rows = "".join(f"{f},{v}\n" for f, v in zip(["Bi", "Sb", "Te", "BiTe", "SbTe"], values, strict=True))
    record(tmp_path / "a.csv", head + "\n" + rows, log10_config, log10_log)
    with warnings.catch_warnings():  # refused as a whole: no warning about a value that is not recorded
        warnings.simplefilter("error", OutlierWarning)
        refused(tmp_path / "b.csv", f"{head}\nSb2Te3,0\nBi2Te3,1e90\n", log10_config, log10_log,
                "line 2: sigma [S/cm]: 0.0 must be > 0: this campaign models log10(sigma)", "1 of 2 rows")
    with pytest.warns(OutlierWarning, match=r"line 2: sigma = 1e\+90 is .* robust spreads of log10\(sigma\) from the "
                      r"median \(0\.0001\)"):
        record(tmp_path / "c.csv", f"{head}\nBi2Te3,1e90\n", log10_config, log10_log)
    # Compared in log10: a new high within the decades already spanned is no typo, a value 1e-40 is.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutlierWarning)
        record(tmp_path / "d.csv", f"{head}\nBiSbTe3,0.5\n", log10_config, log10_log)
    with pytest.warns(OutlierWarning, match=r"line 2: sigma = 1e-40 is .*undo: aloop retract"):
        record(tmp_path / "e.csv", f"{head}\nSb2Te3,1e-40\n", log10_config, log10_log)


# ----------------------------------------------------------------------------------------------------- dates


def test_measured_at_takes_iso_8601_only(log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path) -> None:
    good = {"2026-03-11": "2026-03-11T00:00:00+00:00", "2026-03-11T14:30": "2026-03-11T14:30:00+00:00",
            "2026-03-11 14:30:05": "2026-03-11T14:30:05+00:00", "2026-03-11T14:30:00Z": "2026-03-11T14:30:00+00:00",
            "2026-03-11T14:30:00+01:00": "2026-03-11T13:30:00+00:00"}
    csv = f"{HEAD},measured_at\n" + "".join(f"{p},,0.4,1.0,{t}\n" for p, t in zip(pids, good, strict=False))
    rows = record(tmp_path / "w.csv", csv, config, None)
    assert [r.measured_at.isoformat() for r in rows] == list(good.values())  # no zone: UTC, as before
    bad = ["11/03/2026", "03/11/2026", "11.03.2026", "2026-3-11", "11 March 2026", "11-03-2026 14:30"]
    csv = f"{HEAD},measured_at\n" + "".join(f"{p},,0.4,1.0,{t}\n" for p, t in zip(pids, bad, strict=False))
    message = refused(tmp_path / "r.csv", csv, config, log, "6 of 6 rows are invalid",
                      "line 2: measured_at: '11/03/2026' is not a date/time in ISO 8601 format: 2026-03-11 or "
                      "2026-03-11T14:30:00", "day and month are never guessed")
    assert all(f"{b!r} is not a date/time" in message for b in bad)
    # Date and time objects in a DataFrame are taken as they are.
    df = pd.DataFrame({"proposal_id": pids[:3], "zT": [0.4] * 3, "kappa [W/m/K]": [1.0] * 3,
                       "measured_at": [dt.date(2026, 3, 11), pd.Timestamp("2026-03-11T14:30+01:00"),
                                       dt.datetime(2026, 3, 11, 9)]})
    assert [r.measured_at.isoformat() for r in validate_results(df, config, log)] == [
        "2026-03-11T00:00:00+00:00", "2026-03-11T13:30:00+00:00", "2026-03-11T09:00:00+00:00"]


# ------------------------------------------------------------------------------------------- unicode units


@pytest.fixture
def pf_config() -> CampaignConfig:
    return make_config(name="pf", objectives=[{"name": "PF", "units": "\u03bcW/(cm·K²)", "direction": "maximize"}])


@pytest.fixture
def pf_log(db_url: str, pf_config: CampaignConfig) -> Iterator[CampaignLog]:
    with CampaignLog.open(db_url, "pf", create=True, definition=pf_config.to_dict()) as lg:
        yield lg


def test_units_and_names_that_look_the_same_are_the_same(
    pf_log: CampaignLog, pf_config: CampaignConfig, tmp_path: Path
) -> None:
    micro = "formula,PF [\u00b5W/(cm·K²)]\nBi2Te3,12.5\n"  # micro sign, as many keyboards type it
    (row,) = record(tmp_path / "a.csv", micro, pf_config, pf_log)
    assert row.values == {"PF": 12.5} and row.units == {"PF": "\u03bcW/(cm·K²)"}  # stored in the campaign's spelling
    record(tmp_path / "b.csv", "formula,\uff30\uff26 [\u00b5W/(cm·K\u00b2)] ,notes \nSb2Te3,3.0,ok\n", pf_config, pf_log)
    obs = pf_log.observations()
    assert list(obs["PF"]) == [12.5, 3.0] and list(obs["notes"]) == [None, "ok"]  # 'notes ' kept its cells
    refused(tmp_path / "c.csv", "formula,PF [mW/(cm·K²)]\nBiSbTe3,1.0\n", pf_config, pf_log,
            "units 'mW/(cm·K²)' differ from the campaign's")
    # A definition retyped with the micro sign still matches the log; other units still do not.
    check_objectives(make_config(name="pf", objectives=[{"name": "PF", "units": "\u00b5W/(cm·K²)",
                                                         "direction": "maximize"}]), pf_log.events(), "pf")
    with pytest.raises(DefinitionMismatchError, match="does not match the campaign log"):
        check_objectives(make_config(name="pf", objectives=[{"name": "PF", "units": "mW/(cm·K²)",
                                                             "direction": "maximize"}]), pf_log.events(), "pf")


# ------------------------------------------------------------------------------------------ Excel's files


def test_excel_leftovers_are_ignored_and_bom_and_crlf_still_work(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    # Excel: BOM, CRLF, a trailing empty header cell, ',,,' rows, empty cells past the last column.
    sheet = (f"\ufeff{HEAD},\r\n{pids[0]},,0.91,1.2,\r\n,,,,\r\n{pids[1]},Sb2Te3,0.45,1.5,,\r\n"
             f" , ,,\r\n,,,,\r\n").encode()
    rows = record(tmp_path / "a.csv", sheet, config, log)
    assert [(r.row, r.proposal_id, r.values["zT"]) for r in rows] == [(2, pids[0], 0.91), (4, pids[1], 0.45)]
    assert list(log.observations()["kappa"]) == [1.2, 1.5]
    # The same from pandas, which names the empty header 'Unnamed: 4' and fills it with NaN.
    (tmp_path / "p.csv").write_text(f"{HEAD},\n{pids[2]},,0.91,1.2,\n{pids[3]},,0.5,1.0,\n")
    df = pd.read_csv(tmp_path / "p.csv")
    assert "Unnamed: 4" in df.columns
    assert [r.values for r in validate_results(df, config)] == [{"zT": 0.91, "kappa": 1.2}, {"zT": 0.5, "kappa": 1.0}]
    # Excel's sheet as a DataFrame (pd.read_csv / pd.read_excel): its ',,,' rows are NaN rows, its dates Timestamps.
    (tmp_path / "q.csv").write_text(f"{HEAD},measured_at,\n{pids[2]},,0.91,1.2,2026-03-11 09:00,\n,,,,,\n"
                                    f"{pids[3]},,0.5,1.0,,\n,,,,,\n")
    df = pd.read_csv(tmp_path / "q.csv", parse_dates=["measured_at"])
    assert len(df) == 4 and df["measured_at"].dtype.kind == "M"
    rows = validate_results(df, config, log)
    assert [(r.row, r.proposal_id, r.measured_at) for r in rows] == [
        (0, pids[2], dt.datetime(2026, 3, 11, 9, tzinfo=dt.UTC)), (2, pids[3], None)]
    # A header-less column with a value in it is refused: the value is never dropped silently.
    refused(tmp_path / "b.csv", f"{HEAD},\n{pids[2]},,0.4,1.0,\n{pids[3]},,0.4,1.0,maybe\n", config, log,
            "column 5 has no header but holds values (line 3: 'maybe'): give it a header, or delete the column")


def test_semicolons_and_decimal_commas_are_refused_with_how_to_save_the_file(
    log: CampaignLog, config: CampaignConfig, pids: list[int], tmp_path: Path
) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"proposal_id;formula;zT;kappa [W/m/K]\n{pids[0]};;0,42;1,2\n")
    with pytest.raises(ValueError, match=r"line 1: the header .* looks like a semicolon-separated file .*save it "
                                         r"as CSV with ',' between cells and '\.' decimals"):
        read_results(path)
    refused(path, f'{HEAD}\n{pids[0]},,"0,42",1.0\n', config, log,
            "line 2: zT: '0,42' is not a number (a decimal comma? save it as CSV with ',' between cells and '.' decimals")
    refused(path, f"{HEAD}\n{pids[0]},,0,42,1.0\n", config, log, "line 2: 5 cells but the header has 4 columns",
            "if a number was written with a decimal comma, as 0,42, it became two cells")


@pytest.mark.parametrize(
    ("encoding", "needles"),
    [("cp1252", ["not UTF-8 text: line 2, column 17 has byte 0xe9 ('é' in Windows-1252"]),
     ("utf-16", ["not UTF-8 text: it looks like UTF-16"]), ("utf-16-le", ["it looks like UTF-16"])],
)
def test_a_file_not_in_utf8_is_refused_saying_so(tmp_path: Path, encoding: str, needles: list[str]) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes("formula,zT,kappa [W/m/K],notes\nBi2Te3,0.4,1.0,réussi\n".encode(encoding))
    with pytest.raises(ValueError) as err:
        read_results(path)
    for needle in [*needles, "save it as 'CSV UTF-8 (Comma delimited)'"]:
        assert needle in str(err.value), str(err.value)
    assert "codec" not in str(err.value)


def test_a_log10_objective_does_not_flag_values_within_a_factor_of_1000_of_the_median(
    log10_log: CampaignLog, log10_config: CampaignConfig, tmp_path: Path
) -> None:
    """Tightly clustered log10 values have a tiny spread; a value 5× their median is still no typo."""
    import warnings

    head = "formula,sigma [S/cm]"
    rows = "".join(f"{f},{v}\n" for f, v in zip(["Bi", "Sb", "Te", "BiTe", "SbTe"],
                                                 [1.0e-3, 1.02e-3, 0.98e-3, 1.05e-3, 0.95e-3], strict=True))
    record(tmp_path / "a.csv", head + "\n" + rows, log10_config, log10_log)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutlierWarning)
        record(tmp_path / "b.csv", f"{head}\nBi2Te3,5e-3\n", log10_config, log10_log)
    with pytest.warns(OutlierWarning, match="sigma = 2 is"):  # 2000× the median is
        record(tmp_path / "c.csv", f"{head}\nSb2Te3,2\n", log10_config, log10_log)
