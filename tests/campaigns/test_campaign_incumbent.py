"""The incumbent log-EI improves on is a composition's mean over its replicates, as ``status`` reports it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aloop.campaigns import Campaign
from aloop.campaigns.modeling import replicate_means
from aloop.chem import check_formulas, composition_key
from aloop.datasets import load


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    frame = load("mp-transport")
    frame = frame.drop(index=frame.index[[b.index for b in check_formulas(frame["formula"].tolist())]])
    frame = frame.assign(key=[composition_key(f) for f in frame["formula"]]).drop_duplicates("key")
    return frame.sample(200, random_state=1)[["formula", "key", "S_p"]].reset_index(drop=True)


def test_a_lucky_replicate_does_not_become_the_incumbent(tmp_path: Path, truth: pd.DataFrame) -> None:
    csv = tmp_path / "candidates.csv"
    truth[["formula"]].to_csv(csv, index=False)
    campaign = Campaign.init(tmp_path / "seebeck.toml", candidates_csv=csv, objective="S_p", units="μV/K",
                             direction="maximize", featurizer="ef", acquisition="log_ei", batch_size=4,
                             initial_size=6, seed=0, progress=False)
    first = campaign.propose(6)
    values = dict(zip(truth["key"], truth["S_p"], strict=True))
    measured = [values[k] for k in first["key"]]
    campaign.record(pd.DataFrame({"proposal_id": first["proposal_id"], "S_p [μV/K]": measured}))
    # Two more replicates of the best composition, +400 and −400 around its value: its mean stays put.
    top = int(np.argmax(measured))
    pid, t0 = int(first["proposal_id"].iloc[top]), measured[top]
    for v in (t0 + 400.0, t0 - 400.0):
        campaign.record(pd.DataFrame({"proposal_id": [pid], "S_p [μV/K]": [v]}))
    best = max(measured)
    assert campaign.status(cv=False)["best"]["S_p"]["value"] == pytest.approx(best)
    batch = campaign.propose(2)
    assert batch["reason"].str.contains(f"best {best:.3g}", regex=False).all(), batch["reason"].tolist()


def test_replicate_means_averages_per_composition() -> None:
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    Y = np.array([[1.0], [5.0], [3.0]])
    Xm, Ym = replicate_means(["a", "b", "a"], X, Y)
    np.testing.assert_array_equal(Xm, [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(Ym, [[2.0], [5.0]])
    same = replicate_means(["a", "b"], X[:2], Y[:2])
    assert same[0] is X[:2] or np.array_equal(same[0], X[:2])


def test_replicates_modelled_as_log10_are_averaged_in_measured_units() -> None:
    """Replicates 1 and 100 of A and 20 of B: A's mean is 50.5 as status says, not 10 (the mean of the log10s)."""
    from aloop.campaigns.modeling import ModelSpace

    space = ModelSpace(("PF",), ("log10",))
    X = np.array([[0.0], [1.0], [0.0]])
    Y = space.forward(np.array([[1.0], [20.0], [100.0]]))
    _, means = replicate_means(["A", "B", "A"], X, Y, space)
    np.testing.assert_allclose(10.0 ** means[:, 0], [50.5, 20.0])
    _, geometric = replicate_means(["A", "B", "A"], X, Y)
    np.testing.assert_allclose(10.0 ** geometric[:, 0], [10.0, 20.0])  # what the incumbent was before
