"""What status and the report say: the best composition (replicates merged) and retracted values.

A small grid campaign (Ni–Fe–Co, elemental-fraction features, maximise ``gap``) driven
through ``Campaign``; no data directory needed.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aloop.acquisition import Maximize, Minimize
from aloop.campaigns import Campaign
from aloop.campaigns.best import running_best
from aloop.campaigns.report import _summary_lines

GAP = "gap [eV]"
A, B = "Ni0.5Fe0.5", "Fe0.5Co0.5"


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    with Campaign.init(tmp_path / "g.toml", elements=["Ni", "Fe", "Co"], step=0.1, featurizer="ef", objective="gap",
                       units="eV", initial_size=4, batch_size=2, seed=1, progress=False) as c:
        yield c


def _record(campaign: Campaign, **columns: list) -> tuple[int, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return campaign.record(pd.DataFrame(columns)).event_ids


@pytest.mark.parametrize(
    ("values_a", "best", "mean", "n"),
    [([1.0, 0.2], B, 0.8, 1),  # the lucky 1.0 of A does not win: A's mean is 0.6
     ([1.0, 0.9], A, 0.95, 2)],
)
def test_best_is_the_composition_with_the_best_mean_of_its_replicates(
    campaign: Campaign, tmp_path: Path, values_a: list[float], best: str, mean: float, n: int
) -> None:
    ids = _record(campaign, formula=[A, B, A], **{GAP: [values_a[0], 0.8, values_a[1]]})  # one id per row
    got = campaign.status(cv=False)["best"]["gap"]
    a_ids = sorted([ids[0], ids[2]])  # one table's rows enter the log by content: A's smaller value first
    expected_ids = a_ids if best == A else [ids[1]]
    assert (got["formula"], got["n"], got["measurements"]) == (best, n, expected_ids)
    assert got["value"] == pytest.approx(mean)
    assert got["values"] == (sorted(values_a) if best == A else [0.8])
    line = next(s for s in _summary_lines(campaign.status(cv=False)) if s.startswith("best gap"))
    assert line == (f"best gap: {mean:.4g} eV — {best} (mean of 2: 0.9, 1; measurements {a_ids[0]}, {a_ids[1]})"
                    if n == 2 else f"best gap: 0.8 eV — {B} (measurement {ids[1]})")

    md = campaign.report(tmp_path / "rep")["markdown"].read_text()
    rows = [r for r in md.splitlines() if r.startswith(f"| {A} |")]
    assert rows == [f"| {A} |  | {np.mean(values_a):.4g} | 2 | {a_ids[0]}, {a_ids[1]} |"]


def test_the_best_so_far_curve_follows_the_best_mean() -> None:
    keys, y = ["a", "b", "a"], np.array([1.0, 0.8, 0.2])
    np.testing.assert_allclose(running_best(keys, y, Maximize()), [1.0, 1.0, 0.8])  # steps down with A's replicate
    np.testing.assert_allclose(running_best(keys, y, Minimize()), [1.0, 0.8, 0.6])


def test_a_retraction_retrains_and_leaves_status_best_and_report(campaign: Campaign, tmp_path: Path) -> None:
    first = campaign.propose(4)
    _record(campaign, proposal_id=first["proposal_id"].tolist(), **{GAP: [0.5, 0.6, 0.7, 0.4]})
    typo, other = campaign.propose(2)["proposal_id"].tolist()
    assert campaign.log.model_versions()["training_size"].tolist() == [4]
    (wrong,) = _record(campaign, proposal_id=[typo], **{GAP: [66.0]})
    assert campaign.propose(1).attrs["model_version"] == "v2"  # trained on the 66
    assert campaign.status(cv=False)["best"]["gap"]["value"] == 66.0

    campaign.retract(typo, "typed 66 for 0.66", operator="ann")
    status = campaign.status(cv=False)
    assert status["best"]["gap"]["value"] == 0.7
    assert (status["counts"]["measured"], status["counts"]["retracted"]) == (4, 1)
    assert typo in [p["proposal_id"] for p in status["pending"]]
    # The data are v1's again: v1 serves them (v2, trained on the 66, is no longer up to date).
    assert (status["model"]["version"], status["model"]["up_to_date"]) == ("v1", True)
    nxt = campaign.propose(1)
    assert (nxt.attrs["model_version"], nxt.attrs["training_size"]) == ("v1", 4)

    _record(campaign, proposal_id=[other], **{GAP: [0.3]})
    nxt = campaign.propose(1)
    assert (nxt.attrs["model_version"], nxt.attrs["retrained"], nxt.attrs["training_size"]) == ("v3", True, 5)
    events = campaign._events()
    assert 66.0 not in campaign._fit(events, campaign._observations(events)).Y

    paths = campaign.report(tmp_path / "rep")
    md = paths["markdown"].read_text()
    best_table = md.split("## Best compositions")[1].split("##")[0]
    assert "66" not in best_table and "| 0.7 |" in best_table
    retracted = md.split("## Retractions")[1]
    assert f"| {wrong} | {typo} |" in retracted and "typed 66 for 0.66 | ann |" in retracted
    campaign.export(tmp_path / "events.csv")
    events = pd.read_csv(tmp_path / "events.csv")
    row = events[events["kind"] == "retracted"].iloc[0]
    assert (row["measurement_id"], row["proposal_id"], row["reason"], row["operator"]) == (
        wrong, typo, "typed 66 for 0.66", "ann")
    assert 66.0 in events[GAP].tolist()  # the wrong value stays in the raw history

    _record(campaign, proposal_id=[typo], **{GAP: [0.66]})  # the corrected value is recorded as usual
    assert campaign.status(cv=False)["counts"]["measured"] == 6


def test_cross_validation_names_the_missing_compositions(campaign: Campaign) -> None:
    # Six measurements of two compositions: enough measurements, too few compositions to hold any out.
    _record(campaign, formula=[A, B] * 3, **{GAP: [1.0, 0.8, 1.1, 0.7, 0.9, 0.6]})
    status = campaign.status()
    assert status["model"]["cv"] == "needs at least 3 distinct compositions (have 2)"
    assert "cross-validation: needs at least 3 distinct compositions (have 2)" in _summary_lines(status)


def test_the_row_order_of_a_results_table_does_not_change_later_proposals(tmp_path: Path) -> None:
    # A results sheet is a set of measurements: the forest's bootstrap is drawn over row positions, so the rows
    # must enter the log in an order set by their content, not by the sheet's lines.
    picks = []
    for name, order in (("a", [0, 1, 2, 3, 4, 5]), ("b", [3, 0, 5, 2, 4, 1])):
        with Campaign.init(tmp_path / f"{name}.toml", elements=["Ni", "Fe", "Co"], step=0.1, featurizer="ef",
                           objective="gap", units="eV", surrogate="ensemble", initial_size=6, batch_size=3, seed=1,
                           progress=False) as c:
            first = c.propose(6)
            values = [0.3, 1.2, 0.8, 0.5, 1.0, 0.7]
            sheet = pd.DataFrame({"proposal_id": first["proposal_id"], GAP: values}).iloc[order]
            c.record(sheet)
            picks.append(c.propose(3)["formula"].tolist())
    assert picks[0] == picks[1]


def test_several_objectives_report_their_pareto_front(tmp_path: Path) -> None:
    two = tmp_path / "pareto.toml"
    two.write_text('name = "pareto"\nbatch_size = 2\nseed = 1\n[search_space]\nelements = ["Ni", "Fe", "Co"]\n'
                   'step = 0.1\n[[objectives]]\nname = "gap"\nunits = "eV"\ndirection = "maximize"\n'
                   '[[objectives]]\nname = "cost"\nunits = "EUR"\ndirection = "minimize"\n'
                   '[featurizer]\nkind = "ef"\n[initial_design]\nsize = 4\n')
    with Campaign.open(two, create=True, progress=False) as c:
        # gap (max) / cost (min): A (1.0, 5) and B (0.6, 1) trade off; C (0.5, 6) is beaten by both.
        _record(c, formula=[A, B, "Ni0.5Co0.5"], **{GAP: [1.0, 0.6, 0.5], "cost [EUR]": [5.0, 1.0, 6.0]})
        status = c.status(cv=False)
        assert sorted(status["pareto_front"]) == sorted([A, B])
        assert any(s.startswith("Pareto front: 2 compositions that no other beats on every objective")
                   for s in _summary_lines(status))
        md = c.report(tmp_path / "rep")["markdown"].read_text()
        rows = [r for r in md.splitlines() if r.startswith("| Ni0.5Co0.5 |")]
        assert rows and rows[0].rstrip(" |").endswith("2")  # its Pareto layer


def test_a_target_objective_says_how_far_its_best_is_from_the_target(tmp_path: Path) -> None:
    with Campaign.init(tmp_path / "t.toml", elements=["Ni", "Fe", "Co"], step=0.1, featurizer="ef", objective="gap",
                       units="eV", direction="target", target=1.4, initial_size=4, batch_size=2, seed=1,
                       progress=False) as c:
        _record(c, formula=[A, B], **{GAP: [1.0, 1.7]})
        best = c.status(cv=False)["best"]["gap"]
        assert (best["formula"], best["from_target"]) == (B, pytest.approx(0.3))
        line = next(s for s in _summary_lines(c.status(cv=False)) if s.startswith("best gap"))
        assert line.endswith("(0.3 eV from the target)")


def test_a_window_s_best_counts_the_compositions_whose_mean_is_inside(tmp_path: Path) -> None:
    """Window 1.0–1.6: A (0.9, 1.3: mean 1.1), C (1.6, on the edge) and D (1.1, 1.2) are hits, B (2.0) is not."""
    with Campaign.init(tmp_path / "w.toml", elements=["Ni", "Fe", "Co"], step=0.1, featurizer="ef", objective="gap",
                       units="eV", direction="window", window=(1.0, 1.6), initial_size=4, batch_size=2, seed=1,
                       progress=False) as c:
        _record(c, formula=[A, B, A, "Ni0.5Co0.5", "Ni0.2Fe0.8", "Ni0.2Fe0.8"], **{GAP: [0.9, 2.0, 1.3, 1.6, 1.1, 1.2]})
        got = c.status(cv=False)["best"]["gap"]
    assert got["hits"] == 3 and 1.0 <= got["value"] <= 1.6  # compositions, not the 4 measurements inside
