"""Results files: every bad row reported with its reason, the log unchanged; good files recorded once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from aloop.campaigns import (
    CampaignConfig,
    CampaignLog,
    Proposal,
    RecordError,
    read_results,
    validate_results,
)
from aloop.campaigns.entries import ReplicateWarning
from aloop.campaigns.matching import AlreadyRecordedWarning
from aloop.campaigns.records import UnfilledRowsWarning
from aloop.chem import composition_key


@pytest.fixture
def proposed(log: CampaignLog) -> list[int]:
    formulas = ["Bi2Te3", "Sb2Te3", "BiSbTe3"]
    return list(log.append_proposals([Proposal(f, composition_key(f)) for f in formulas]).proposal_ids)


def _good(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "proposal_id": [str(ids[0]), str(ids[1]), ""],
            "formula": ["", "Sb2Te3", "Bi0.5Sb1.5Te3"],
            "zT": ["0.91", "0.45", "1.10"],
            "kappa [W/m/K]": ["1.2", "1.5", "0.9"],
            "measured_at": ["2024-05-01T10:00:00+02:00", "2024-05-01 12:00", ""],
            "operator": ["ann", "bob", ""],
        }
    )


def test_a_good_file_is_recorded_once(
    log: CampaignLog, config: CampaignConfig, proposed: list[int], tmp_path: Path
) -> None:
    path = tmp_path / "results.csv"
    _good(proposed).to_csv(path, index=False)
    df = read_results(path)
    rows = validate_results(df, config, log)
    assert [r.row for r in rows] == [2, 3, 4]  # CSV line numbers
    assert rows[0].measured_at.isoformat() == "2024-05-01T08:00:00+00:00"
    assert rows[1].measured_at.isoformat() == "2024-05-01T12:00:00+00:00"  # no zone: UTC
    assert rows[2].proposal_id is None and rows[2].key == composition_key("Bi0.5Sb1.5Te3")
    first = log.append_measurements(rows)
    assert (first.new, first.duplicates, first.unsolicited) == (3, 0, 1)
    digest = log.events_digest()
    # Recording the sheet twice adds nothing, and says how to record a genuine repeat instead.
    with pytest.warns(AlreadyRecordedWarning, match=r"3 row\(s\) skipped as already recorded \(line 2, line 3, "
                      r"line 4\).*genuine repeat.*measured_at.*idempotency_key"):
        again = log.append_measurements(validate_results(read_results(path), config, log))
    assert (again.new, again.duplicates) == (0, 3)
    assert log.events_digest() == digest
    obs = log.observations()
    assert list(obs["kappa"]) == [1.2, 1.5, 0.9] and obs.attrs["units"]["kappa"] == "W/m/K"
    assert list(log.pending()["proposal_id"]) == [proposed[2]]


def test_explicit_idempotency_keys_allow_identical_replicates(
    log: CampaignLog, config: CampaignConfig, proposed: list[int]
) -> None:
    df = pd.DataFrame(
        {
            "proposal_id": [proposed[0]] * 2,
            "zT []": [0.9, 0.9],
            "kappa [W/m/K]": [1.0, 1.0],
            "idempotency_key": ["sample-a", "sample-b"],
        }
    )
    with pytest.warns(ReplicateWarning, match="1 result"):  # the second is a replicate of the first: said so
        assert log.append_measurements(validate_results(df, config, log)).new == 2


def test_a_sheets_prediction_columns_are_read_past(log: CampaignLog, config: CampaignConfig, proposed: list[int]) -> None:
    """``aloop propose -o`` writes the model's predictions beside the empty objective columns; they are no results."""
    sheet = _set(**{"predicted zT": [0.1, 0.2, 0.3], "predicted sd kappa [W/m/K]": [0.5, 0.5, 0.5],
                    "P(success)": [0.9, 0.8, 0.7]})(_good(proposed))
    assert log.append_measurements(validate_results(sheet, config, log)).new == 3
    assert list(log.observations()["zT"]) == list(_good(proposed)["zT"].astype(float))
    with pytest.raises(RecordError, match="unexpected column\\(s\\) 'predicted_zT'"):  # not a sheet's column
        validate_results(_set(predicted_zT=[1, 2, 3])(_good(proposed)), config, log)


def _set(**cols: object):  # type: ignore[no-untyped-def]
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        for col, value in cols.items():
            if isinstance(value, tuple):
                df.loc[value[0], col] = value[1]
            else:
                df[col] = value
        return df

    return edit


BAD_FILES = {
    "missing objective column": (lambda df: df.drop(columns=["zT"]), ["missing column for objective 'zT'"]),
    "extra column": (_set(colour="red"), ["unexpected column(s) 'colour'"]),
    "wrong units": (lambda df: df.rename(columns={"kappa [W/m/K]": "kappa [mW/cm/K]"}), ["units 'mW/cm/K'"]),
    "units not stated": (lambda df: df.rename(columns={"kappa [W/m/K]": "kappa"}), ["must state its units"]),
    "units on dimensionless": (lambda df: df.rename(columns={"zT": "zT [K]"}), ["expected 'zT' (dimensionless)"]),
    "repeated column": (lambda df: pd.concat([df, df[["zT"]]], axis=1), ["both give objective 'zT'"]),
    "no sample columns": (lambda df: df.drop(columns=["proposal_id", "formula"]), ["give proposal_id or formula"]),
    "text in a number": (_set(zT=(0, "high")), ["row 0: zT: 'high' is not a number"]),
    "units in a cell": (
        _set(**{"kappa [W/m/K]": (1, "1.5 W/m/K")}),
        ["row 1: kappa [W/m/K]: '1.5 W/m/K' is not a number"],
    ),
    "infinite": (_set(zT=(2, "inf")), ["row 2: zT: value 'inf' is not finite"]),
    "digit separator": (_set(zT=(2, "1_0")), ["row 2: zT: '1_0' is not a number (digit separators"]),
    "below float64": (_set(zT=(2, "1e-400")), ["row 2: zT: value 1e-400 is too small for float64"]),
    "unknown element": (_set(formula=(2, "Xx2Te3")), ["row 2: formula: 'Xx2Te3': unknown element 'Xx'"]),
    "unparsable formula": (_set(formula=(2, "Bi2(Te3")), ["row 2: formula: 'Bi2(Te3'"]),
    "unknown proposal": (_set(proposal_id=(0, "999")), ["row 0: proposal_id: proposal 999 does not exist"]),
    "bad proposal id": (_set(proposal_id=(0, "1.5")), ["row 0: proposal_id: '1.5' is not a proposal id"]),
    "formula of another proposal": (_set(formula=(0, "Sb2Te3")), ["row 0: formula: 'Sb2Te3' is not the composition"]),
    "no sample": (_set(formula=(2, "")), ["row 2: needs a proposal_id or a formula"]),
    "bad time": (_set(measured_at=(2, "last tuesday")), ["row 2: measured_at: 'last tuesday' is not a date/time"]),
    "key repeated": (_set(idempotency_key=["k1", "k2", "k1"]), ["row 2: idempotency_key: 'k1' repeats row 0"]),
    "row repeated": (lambda df: pd.concat([df, df.iloc[[1]]], ignore_index=True), ["row 3: duplicate of row 1"]),
    "everything at once": (
        _set(zT=(0, "x"), formula=(2, "Qq"), proposal_id=(1, "777")),
        ["3 of 3 rows are invalid", "row 0: zT", "row 1: proposal_id", "row 2: formula"],
    ),
}


def test_bad_files_are_refused_with_reasons_and_change_nothing(
    log: CampaignLog, config: CampaignConfig, proposed: list[int]
) -> None:
    digest = log.events_digest()
    for case, (edit, expected) in BAD_FILES.items():
        df = edit(_good(proposed))
        with pytest.raises(RecordError) as err:
            log.append_measurements(validate_results(df, config, log))
        message = str(err.value)
        for text in [*expected, "nothing was recorded"]:
            assert text in message, f"{case}: {text!r} not in:\n{message}"
        assert log.events_digest() == digest, case


def test_a_row_filled_for_some_objectives_waits_and_the_rest_is_recorded(
    log: CampaignLog, config: CampaignConfig, proposed: list[int], tmp_path: Path
) -> None:
    """One property measured, the other not yet: that row stays pending (said so, naming the empty column),
    the complete rows are recorded, and the same sheet recorded again once filled adds only that row."""
    df = _set(zT=(1, ""), **{"kappa [W/m/K]": (2, "")})(_good(proposed))
    with pytest.warns(UnfilledRowsWarning, match=r"2 row\(s\) filled in for only some objectives left out "
                      r"\(row 1: no 'zT'; row 2: no 'kappa \[W/m/K\]'\): a result needs every objective"):
        rows = validate_results(df, config, log)
    assert [m.proposal_id for m in rows] == [proposed[0]]
    log.append_measurements(rows)
    assert set(log.pending()["proposal_id"]) == {proposed[1], proposed[2]}

    filled = _good(proposed)
    with pytest.warns(AlreadyRecordedWarning):
        rows = validate_results(filled, config, log)
    log.append_measurements(rows)
    assert len(log.observations()) == 3  # row 2 is a composition nobody proposed
    assert set(log.pending()["proposal_id"]) == {proposed[2]}
    # A sheet with no complete row is refused, saying which objectives each row lacks.
    only_partial = _set(zT=["", "", ""])(_good(proposed))
    with pytest.raises(RecordError, match="no row has a value for every objective; row 0: no 'zT'; row 1: no 'zT'"):
        validate_results(only_partial, config, log)


def test_messages_use_csv_line_numbers(tmp_path: Path, config: CampaignConfig) -> None:
    path = tmp_path / "r.csv"
    path.write_text("formula,zT,kappa [W/m/K]\nBi2Te3,0.9,1.0\nBi2Te3,oops,1.0\n")
    with pytest.raises(RecordError, match="line 3: zT: 'oops' is not a number"):
        validate_results(read_results(path), config)
