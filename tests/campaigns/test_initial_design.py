"""The cold-start design: diverse picks that do not depend on rounding-level differences or thread counts."""

from __future__ import annotations

import numpy as np

from aloop.campaigns.initial_design import initial_design


def test_rows_equally_near_a_centre_are_chosen_by_pool_order() -> None:
    # The four corners of a square are equally near its one k-means centre; 1e-13 jitter (what threaded sums
    # change) must not decide between them.
    square = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    picks = set()
    for seed in range(5):
        jitter = np.random.default_rng(seed).normal(0, 1e-13, square.shape)
        pick, reasons = initial_design("diverse", square + jitter, np.ones(4, bool), 1, seed=0)
        picks.add(int(pick[0]))
    assert picks == {0} and reasons[0].startswith("initial design: diverse")


def test_magpie_features_are_cached_under_the_element_table_they_came_from(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # An upgraded matminer may ship other element values: a campaign's cached Magpie features must not outlive them.
    import aloop.features.magpie as magpie
    from aloop.campaigns.config import FeaturizerConfig
    from aloop.campaigns.pool import resolve_featurizer

    cfg = FeaturizerConfig(kind="magpie", source=None, layer=None)
    ident = resolve_featurizer(cfg)[1]
    assert ident == f"magpie@{magpie.table_digest()[:12]}"
    monkeypatch.setattr(magpie, "table_digest", lambda: "0" * 64)
    assert resolve_featurizer(cfg)[1] == "magpie@000000000000" != ident


def test_an_initial_design_leaves_out_compositions_that_failures_make_unlikely(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Before the first model, a design batch went back next to compositions that had just failed."""
    import warnings

    import pandas as pd

    from aloop.campaigns import Campaign
    from aloop.chem import fractions

    def mn(formula: str) -> float:
        return fractions(formula).get("Mn", 0.0)

    campaign = Campaign.init(tmp_path / "c.toml", elements="Ni,Fe,Co,Mn", step=0.1, featurizer="ef",
                             objective="eta", units="V", direction="minimize", initial_size=30, batch_size=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # a lab where every composition with Mn ≥ 0.5 fails to form
            batch = campaign.propose(10)
            made = batch[batch["formula"].map(mn) < 0.5]
            campaign.record(pd.DataFrame({"proposal_id": made["proposal_id"], "eta [V]": 0.3 + made["formula"].map(mn)}))
            failed = batch[batch["formula"].map(mn) >= 0.5]["proposal_id"].tolist()
            if failed:
                campaign.fail(failed, "no single phase")
        nxt = campaign.propose(10)
    assert "initial design" in nxt["reason"].iloc[0]
    assert (nxt["formula"].map(mn) >= 0.7).sum() == 0  # the failing corner is left alone …
    assert (nxt["formula"].map(mn) < 0.5).sum() >= 7  # … while the design still spreads over the rest
    assert nxt["p_success"].between(0.3, 1).all()  # each pick's P(success), at least the min_success cut
    from aloop.campaigns.report import _summary_lines

    status = campaign.status()  # is P(success) worth trusting? cross-validated over the outcomes so far
    feasibility = status["feasibility"]
    assert feasibility["outcomes"] == 20 and feasibility["failures"] == len(campaign.log.failures()) >= 2
    assert feasibility["brier"] < feasibility["brier_base_rate"] and feasibility["verdict"] == "better than the base rate"
    assert any(line.startswith("cross-validation of P(success) over 20 outcomes") for line in _summary_lines(status))
    campaign.close()


def test_a_diverse_design_does_not_depend_on_the_units_of_a_feature() -> None:
    """The features are standardised: measuring one of them in other units (×1000) picks the same rows."""
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.normal(size=300), np.repeat([0.0, 1.0, 2.0], 100) + rng.normal(0, 0.1, 300),
                                rng.normal(size=300)])
    eligible = np.ones(300, bool)
    pick, _ = initial_design("diverse", features, eligible, 4, seed=1)
    scaled, _ = initial_design("diverse", features * np.array([1000.0, 1.0, 0.001]), eligible, 4, seed=1)
    np.testing.assert_array_equal(scaled, pick)


def test_centres_sharing_a_nearest_row_still_give_distinct_picks() -> None:
    """Candidates with identical features (two points for three clusters): each pick is another row."""
    import warnings

    features = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: fewer distinct points than clusters
        pick, reasons = initial_design("diverse", features, np.ones(5, bool), 3, seed=0)
    assert len(set(pick.tolist())) == 3 and len(reasons) == 3


def test_a_design_from_a_sample_of_a_large_pool_names_the_rows_nearest_the_centres() -> None:
    """Above 20,000 eligible rows k-means runs on a sample; the picks are still the pool rows nearest its centres."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(21_000, 2))
    features[::2, 0] += 10.0
    features[1::2, 0] -= 10.0
    eligible = np.ones(len(features), bool)
    eligible[:500] = False
    pick, _ = initial_design("diverse", features, eligible, 2, seed=0)
    assert eligible[pick].all()
    near = np.abs(features[pick] - np.array([[10.0, 0.0], [-10.0, 0.0]])[:, None, :]).max(-1).min(0)
    assert (near < 0.1).all() and len({np.sign(features[p, 0]) for p in pick}) == 2
