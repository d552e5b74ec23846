"""The closed loop on a real pool: propose → record → retrain, outcomes, restarts, refusals that change nothing.

Candidates are 300 compositions of the embedded Materials Project transport database
(no data directory needed); the "lab" looks up their p-type Seebeck coefficient and the
objective is a window (150–250 μV/K). Log-backed tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aloop.campaigns.pool as pool_module
from aloop.campaigns import (Campaign, CampaignError, CampaignLog, CampaignWarning, ConfigError, Measurement,
                             RecordError)
from aloop.campaigns.log import CampaignLog as LogClass
from aloop.campaigns.loop import DefinitionMismatchError
from aloop.chem import check_formulas, composition_key
from aloop.datasets import load
from aloop.surrogates import SmallTargetWarning

N_CANDIDATES = 300
COLUMN = "S_p [μV/K]"


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """300 distinct compositions with their S_p (the polymorph listed first)."""
    frame = load("mp-transport")
    bad = check_formulas(frame["formula"].tolist())
    frame = frame.drop(index=frame.index[[b.index for b in bad]])
    frame = frame.assign(key=[composition_key(f) for f in frame["formula"]]).drop_duplicates("key")
    return frame.sample(N_CANDIDATES, random_state=0)[["formula", "key", "S_p"]].reset_index(drop=True)


def _init(tmp_path: Path, truth: pd.DataFrame, db_url: str | None = None, **flags: object) -> Campaign:
    csv = tmp_path / "candidates.csv"
    truth[["formula"]].to_csv(csv, index=False)
    options = {"candidates_csv": csv, "objective": "S_p", "units": "μV/K", "direction": "window",
               "window": (150.0, 250.0), "featurizer": "magpie", "batch_size": 4, "initial_size": 6, "seed": 3,
               "progress": False, **flags}
    if db_url is not None:
        options["database_url"] = db_url
    return Campaign.init(tmp_path / "seebeck.toml", **options)


def _measure(campaign: Campaign, batch: pd.DataFrame, truth: pd.DataFrame) -> None:
    values = dict(zip(truth["key"], truth["S_p"], strict=True))
    campaign.record(pd.DataFrame({"proposal_id": batch["proposal_id"], COLUMN: [values[k] for k in batch["key"]]}))


def test_closed_loop_retrains_and_never_repeats(tmp_path: Path, truth: pd.DataFrame, db_url: str) -> None:
    campaign = _init(tmp_path, truth, db_url)
    first = campaign.propose(6)
    assert first.attrs["mode"].startswith("initial design (diverse") and first.attrs["model_version"] is None
    assert first["key"].is_unique and first["reason"].str.contains("k-means").all()
    again = campaign.propose(2)  # still a cold start; never the pending ones
    assert not set(again["key"]) & set(first["key"])
    _measure(campaign, first, truth)

    batch = campaign.propose()  # 6 observations: the model takes over
    assert batch.attrs["retrained"] and batch.attrs["model_version"] == "v1" and len(batch) == 4
    assert batch[["mean_S_p", "std_S_p", "acquisition_value"]].notna().all().all()
    assert batch["reason"].str.startswith("likely in window").all()
    assert not set(batch["key"]) & (set(first["key"]) | set(again["key"]))
    more = campaign.propose(2)  # no new results: same model version, no new fit recorded
    assert more.attrs["model_version"] == "v1" and not more.attrs["retrained"]
    assert len(campaign.log.model_versions()) == 1

    _measure(campaign, batch, truth)
    campaign.fail(int(again["proposal_id"].iloc[0]), "precursor decomposed")
    campaign.reject(int(again["proposal_id"].iloc[1]), "toxic")
    campaign.cancel(more["proposal_id"].tolist())
    nxt = campaign.propose(4)
    assert nxt.attrs["model_version"] == "v2" and nxt.attrs["retrained"]
    assert nxt["reason"].str.contains("P(success)", regex=False).all()  # failures/vetoes train feasibility
    assert nxt["p_success"].between(0, 1).all() and first["p_success"].isna().all()  # a column, as in the reason
    for r in nxt.itertuples():
        assert f"P(success) {r.p_success:.0%}" in r.reason or (r.p_success < 0.005 and "P(success) < 1%" in r.reason)
    logged = campaign.log.proposals().set_index("proposal_id")["p_success"]
    assert logged[nxt["proposal_id"]].tolist() == nxt["p_success"].tolist()
    measured_or_vetoed = set(first["key"]) | set(batch["key"]) | set(again["key"])
    assert not set(nxt["key"]) & measured_or_vetoed

    status = campaign.status(cv=False)
    assert status["counts"] == {"candidates": N_CANDIDATES, "available": N_CANDIDATES - 16, "proposed": 18,
                                "batches": 5, "measured": 10, "unsolicited": 0, "retracted": 0, "pending": 4, "failed": 1,
                                "rejected": 1, "cancelled": 2, "measured_proposals": 10}
    assert status["model"]["version"] == "v2" and status["model"]["up_to_date"]
    assert [p["proposal_id"] for p in status["pending"]] == nxt["proposal_id"].tolist()
    best = status["best"]["S_p"]
    values = campaign.log.observations()["S_p"]
    assert best["hits"] == int(values.between(150, 250).sum())

    # A restart derives exactly the same state from the log.
    campaign.close()
    reopened = Campaign.open(tmp_path / "seebeck.toml", progress=False)
    assert reopened.status(cv=False) == status
    pd.testing.assert_frame_equal(reopened.log.pending(), campaign.log.pending())
    assert reopened.propose(1).attrs["model_version"] == "v2"  # refitted from the log, not a new version

    # A retry of the failed synthesis carries the model's prediction and P(success), as a proposal does.
    failed_id = int(again["proposal_id"].iloc[0])
    (retry_id,) = reopened.retry(failed_id, "new precursor")
    row = reopened.log.proposals().set_index("proposal_id").loc[retry_id]
    key = again["key"].iloc[0]
    mean, var = reopened.surrogate().predict(reopened.features([row["formula"]], [key]))
    assert row["key"] == key and row["model_version"] == "v2"
    assert row["mean_S_p"] == pytest.approx(mean[0, 0]) and row["std_S_p"] == pytest.approx(np.sqrt(var[0, 0]))
    assert 0 <= row["p_success"] < nxt["p_success"].min()  # it failed right there
    reopened.close()


def test_crash_between_fit_and_proposals_loses_nothing(tmp_path: Path, truth: pd.DataFrame,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = _init(tmp_path, truth, initial_design="random", initial_size=4)
    _measure(campaign, campaign.propose(4), truth)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(LogClass, "append_proposals", crash)
        with pytest.raises(KeyboardInterrupt):
            campaign.propose(3)
    assert list(campaign.log.model_versions()["model_version"]) == ["v1"]  # the fit was recorded …
    assert campaign.log.pending().empty  # … the batch was not
    campaign.close()
    with Campaign.open(tmp_path, progress=False) as restarted:  # a folder with one definition
        batch = restarted.propose(3)
        assert batch.attrs["model_version"] == "v1" and not batch.attrs["retrained"]
        assert len(restarted.log.model_versions()) == 1 and len(restarted.log.pending()) == 3


def _digest(campaign: Campaign) -> str:
    return campaign.log.events_digest()


def test_bad_results_write_nothing_and_list_every_row(tmp_path: Path, truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth, initial_design="random")
    batch = campaign.propose(4)
    ids = batch["proposal_id"].tolist()
    before = _digest(campaign)
    bad = pd.DataFrame({"proposal_id": [ids[0], 999_999, ids[2], ids[3], None],
                        "formula": [None, None, None, "Xx2O3", None],
                        COLUMN: ["120", "130", "abc", "140", "nan"]})
    with pytest.raises(RecordError) as info:
        campaign.record(bad)
    reasons = {p.row: p.reason for p in info.value.problems}
    assert set(reasons) == {1, 2, 3, 4}
    assert "does not exist" in reasons[1] and "not a number" in reasons[2] and "unknown element" in reasons[3]
    assert "missing value" in str(info.value)
    for frame in (pd.DataFrame({"proposal_id": ids[:1], "S_p [mV/K]": [1.0]}),  # wrong units
                  pd.DataFrame({"proposal_id": ids[:1], COLUMN: [1.0], "colour": ["red"]}),  # extra column
                  pd.DataFrame({"proposal_id": ids[:1]})):  # objective column missing
        with pytest.raises(RecordError):
            campaign.record(frame)
    with pytest.raises(CampaignError, match="not found"):
        campaign.record(tmp_path / "missing.csv")
    for call in (lambda: campaign.fail(999_999, "x"), lambda: campaign.reject(ids[0], " "),
                 lambda: campaign.propose(0), lambda: campaign.propose(N_CANDIDATES)):
        with pytest.raises((CampaignError, Exception)):
            call()
    assert _digest(campaign) == before

    # Re-recording is a no-op; a composition never proposed is accepted and flagged.
    _measure(campaign, batch, truth)
    after = _digest(campaign)
    _measure(campaign, batch, truth)
    assert _digest(campaign) == after
    result = campaign.record(pd.DataFrame({"formula": ["Fe2O3"], COLUMN: [180.0]}))
    assert result.unsolicited == 1 and campaign.log.observations()["unsolicited"].iloc[-1]
    campaign.close()


def test_log10_transform_refuses_non_positive_values(tmp_path: Path, truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth, direction="maximize", window=None, transform="log10", initial_design="random")
    assert campaign.space.labels == ("log10(S_p)",)
    batch = campaign.propose(3)
    before = _digest(campaign)
    with pytest.raises(RecordError, match="must be > 0: this campaign models log10"):
        campaign.record(pd.DataFrame({"proposal_id": batch["proposal_id"], COLUMN: [10.0, 0.0, -5.0]}))
    assert _digest(campaign) == before
    # A 0 that got in while the transform was off (the log itself knows no transforms): the error names it.
    more = campaign.propose(3)
    ids = [*batch["proposal_id"], *more["proposal_id"]]
    campaign.log.append_measurements([Measurement({"S_p": v}, {"S_p": "μV/K"}, proposal_id=int(i))
                                      for i, v in zip(ids, [10.0, 0.0, 20.0, 30.0, 40.0, 50.0], strict=True)])
    zero = int(campaign.log.observations()["event_id"].iloc[1])
    with pytest.raises(CampaignError, match=rf"S_p is modelled as log10 but 1 recorded value\(s\) are ≤ 0: "
                                            rf"measurement {zero} \({batch['formula'].iloc[1]}\) = 0; retract"):
        campaign.propose(1)
    campaign.retract(zero, "a blank, not a sample")
    assert len(campaign.propose(1)) == 1
    campaign.close()


def test_init_refuses_bad_flags_and_existing_files(tmp_path: Path, truth: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="direction"):
        _init(tmp_path, truth, direction="maximise", window=None)
    with pytest.raises(CampaignError, match="transform"):
        _init(tmp_path, truth, transform="ln")
    assert not list(tmp_path.glob("*.toml")) and not list(tmp_path.glob("*.sqlite"))
    _init(tmp_path, truth).close()
    with pytest.raises(CampaignError, match="already exists"):
        _init(tmp_path, truth)
    with pytest.raises(CampaignError, match="several campaign definitions"):
        (tmp_path / "other.toml").write_text("name = 'x'\n")
        Campaign.open(tmp_path)


def test_grid_campaign_caches_features_and_draws_a_ternary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aloop.elemnet.sources.list_sources", lambda *a: [])
    with pytest.warns(CampaignWarning, match="using Magpie features instead"):
        campaign = Campaign.init(tmp_path / "oer.toml", elements=["Ni", "Fe", "Co"], step=0.05, fixed={"O": 0.6},
                                 objective="eta", units="V", direction="minimize", initial_design="random",
                                 initial_size=4, batch_size=3, progress=False)
        pool = campaign.pool
    assert len(pool) == 45 and "Ni0.2Fe0.2O0.6" in set(pool.formulas) and pool.components() == ["Fe", "Co", "Ni"]
    cache = tmp_path / "oer.features.npz"
    stamp = cache.stat().st_mtime_ns
    real_build = pool_module.build_pool
    monkeypatch.setattr(pool_module, "build_pool", lambda *a, **k: pytest.fail("cache not used"))

    def lab(formulas: pd.Series) -> list[float]:  # a smooth synthetic overpotential landscape
        from aloop.chem import fractions

        return [0.3 + (fractions(f).get("Ni", 0) - 0.25) ** 2 + 0.5 * fractions(f).get("Co", 0) for f in formulas]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CampaignWarning)
        reopened = Campaign.open(tmp_path / "oer.toml", progress=False)
        np.testing.assert_array_equal(reopened.pool.features, pool.features)
    assert cache.stat().st_mtime_ns == stamp
    good = cache.read_bytes()
    monkeypatch.setattr(pool_module, "build_pool", real_build)
    for broken in (good[:1000], good[: len(good) // 2], b"garbage"):  # truncated (a full disk) or foreign
        cache.write_bytes(broken)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CampaignWarning)
            np.testing.assert_array_equal(Campaign.open(tmp_path / "oer.toml", progress=False).pool.features,
                                          pool.features)  # rebuilt, not a traceback
        assert cache.read_bytes() != broken
    for n in (4, 3, 3):
        batch = reopened.propose(n)
        reopened.record(pd.DataFrame({"formula": batch["formula"], "eta [V]": lab(batch["formula"])}))
    reopened.propose(3)  # pending proposals appear on the ternary diagram
    paths = reopened.report(tmp_path / "report")
    assert {"best_so_far", "parity", "calibration", "ternary", "html", "markdown"} <= set(paths)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 4 and "<img" in html
    assert "ternary.png" in paths["markdown"].read_text()
    status = reopened.status()
    cv = status["model"]["cv"]["eta"]
    assert cv["n"] == 10 and 0 <= cv["coverage_95"] <= 1 and cv["mae"] >= 0
    assert cv["compositions"] == 10 and f"of {cv['compositions']} compositions the central 68% / 95%" in cv["verdict"]

    events = reopened.export(tmp_path / "events.parquet")
    table = pd.read_parquet(events)
    assert len(table) == len(reopened.log.events()) and "eta [V]" in table.columns
    # One type per column whatever it holds so far (no operator or notes were given): exports keep one schema.
    assert {str(table[c].dtype) for c in ("operator", "notes", "raw_ref", "model_version", "reason")} == {"string"}
    def utc(col: pd.Series) -> bool:
        return isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.tz) == "UTC"

    assert utc(table["measured_at"]) and str(table["unsolicited"].dtype) == "boolean"
    obs_pq = pd.read_parquet(reopened.export(tmp_path / "obs.parquet", table="observations"))
    assert utc(obs_pq["measured_at"]) and str(obs_pq["notes"].dtype) == "string"
    obs = pd.read_csv(reopened.export(tmp_path / "obs.csv", table="observations"))
    assert len(obs) == 10 and "eta [V]" in obs.columns
    with pytest.raises(CampaignError, match="export format"):
        reopened.export(tmp_path / "events.xlsx")
    reopened.close()


def test_log_is_plain_campaign_log(tmp_path: Path, truth: pd.DataFrame) -> None:
    """The campaign's log is an ordinary CampaignLog: other tools can read it."""
    _init(tmp_path, truth).close()
    with CampaignLog.open(tmp_path / "seebeck.sqlite") as log:
        assert log.name == "seebeck" and log.events() == ()


@pytest.mark.parametrize("kind", ["gp", "gp_forest"])
def test_refit_growth_reuses_hyperparameters_and_survives_a_restart(tmp_path: Path, truth: pd.DataFrame,
                                                                    kind: str) -> None:
    """With refit_growth the GP's hyperparameters are refitted only at ×1.5 growth; a reopened campaign rebuilds the same
    model (with ``gp_forest`` the GP part follows the schedule and the forest is refitted on every result)."""
    campaign = _init(tmp_path, truth, initial_design="random", batch_size=2, surrogate=kind,
                     surrogate_options={"refit_growth": 0.5})
    _measure(campaign, campaign.propose(6), truth)
    for _ in range(3):
        _measure(campaign, campaign.propose(2), truth)
    batch = campaign.propose(2)
    details = [d["hyperparameters_fitted_on"] for d in campaign.log.model_versions()["details"]]
    assert details == [6, 6, 10, 10]  # 8 < 6 × 1.5 reuses the fit on 6 rows; 10 ≥ 9 refits; 12 < 15 reuses it
    expected = campaign.surrogate().predict(campaign.pool.features[:50])[0]
    campaign.close()
    with Campaign.open(tmp_path / "seebeck.toml", progress=False) as reopened:
        # Rebuilt from the logged hyperparameters of the (warm-started) fit on the first 10 rows.
        np.testing.assert_allclose(reopened.surrogate().predict(reopened.pool.features[:50])[0], expected, rtol=1e-6)
        assert reopened.log.model_versions()["details"].iloc[-1]["hyperparameters_fitted_on"] == 10
        assert set(reopened.propose(2)["key"]).isdisjoint(batch["key"])
    (tmp_path / "bad").mkdir()
    with pytest.raises(CampaignError, match="refit_growth"):
        _init(tmp_path / "bad", truth, surrogate=kind, surrogate_options={"refit_growth": -1})
    with pytest.raises(CampaignError, match="refit_growth: only for kind = 'gp' or 'gp_forest', not 'ensemble'"):
        _init(tmp_path / "bad", truth, surrogate="ensemble", surrogate_options={"refit_growth": 0.5})


def test_a_retraction_refits_hyperparameters_that_learned_from_the_retracted_value(tmp_path: Path,
                                                                                  truth: pd.DataFrame) -> None:
    """With refit_growth, hyperparameters fitted on a since-retracted typo are refitted at once (in memory and when
    a campaign is reopened), not kept until the data grow by the next step."""
    campaign = _init(tmp_path, truth, initial_design="random", batch_size=2, surrogate_options={"refit_growth": 0.5})
    first = campaign.propose(6)
    _measure(campaign, first, truth)
    _measure(campaign, campaign.propose(2), truth)  # 8 < 9: conditions on the fit of the first 6
    assert campaign.log.model_versions()["details"].iloc[-1]["hyperparameters_fitted_on"] == 6
    campaign.retract(int(first["proposal_id"].iloc[2]), "typed 1800 for 180")
    campaign.propose(2)
    last = campaign.log.model_versions()["details"].iloc[-1]
    assert last["hyperparameters_fitted_on"] == 7  # the 7 rows left, refitted (they are not the first 6 any more)
    expected = campaign.surrogate().predict(campaign.pool.features[:30])[0]
    campaign.close()
    with Campaign.open(tmp_path / "seebeck.toml", progress=False) as reopened:
        np.testing.assert_allclose(reopened.surrogate().predict(reopened.pool.features[:30])[0], expected, rtol=1e-6)
        # A reopened campaign also refuses the fit on 6 rows that held the retracted one.
        assert reopened.log.model_versions()["details"].iloc[-1]["hyperparameters_fitted_on"] == 7


def test_gp_forest_proposes_from_the_mixture_and_refuses_bad_part_options(tmp_path: Path, truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth, initial_design="random", surrogate="gp_forest",
                     surrogate_options={"forest": {"n_estimators": 30}})
    _measure(campaign, campaign.propose(6), truth)
    batch = campaign.propose(4)
    model = campaign.surrogate()
    assert type(model).__name__ == "GPForestMixture" and model.forest_.n_estimators == 30
    assert model.gp_.max_fit_rows == 400  # the campaign's GP default reaches the GP part
    assert batch[["mean_S_p", "std_S_p"]].notna().all().all() and batch["key"].is_unique
    campaign.close()
    (tmp_path / "bad").mkdir()
    with pytest.raises(CampaignError, match="surrogate.options.forest: unknown option 'trees'; options there: kind, n_estimators"):
        _init(tmp_path / "bad", truth, surrogate="gp_forest", surrogate_options={"forest": {"trees": 30}})


def test_concurrent_proposers_never_propose_a_composition_twice(tmp_path: Path, truth: pd.DataFrame, db_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes pick a batch from the same log state; the one writing second picks again."""
    first = _init(tmp_path, truth, db_url, initial_design="random")
    second = Campaign.open(tmp_path / "seebeck.toml", progress=False)
    write = LogClass.append_proposals
    first_batches: list[pd.DataFrame] = []
    interruptions = [1]  # how many of `second`'s writes `first` gets in before

    def first_writes_meanwhile(log: LogClass, props: list, **kwargs: object) -> object:
        # `second` has picked from the log as it was; `first` (same state, same picks) commits before it writes.
        if log is second.log and interruptions[0] > 0:
            interruptions[0] -= 1
            first_batches.append(first.propose(3))
        return write(log, props, **kwargs)

    monkeypatch.setattr(LogClass, "append_proposals", first_writes_meanwhile)
    batch = second.propose(3)
    pending = first.log.pending()
    assert len(pending) == 6 and pending["key"].is_unique
    assert set(batch["key"]).isdisjoint(first_batches[0]["key"]) and batch["batch_id"].iloc[0] == 2

    interruptions[0] = 2  # `first` gets in before both attempts: `second` gives up and writes nothing
    with pytest.raises(CampaignError, match="already pending.*run propose again"):
        second.propose(3)
    pending = first.log.pending()
    ours = [i for b in (*first_batches, batch) for i in b["proposal_id"]]
    assert len(first_batches) == 3 and sorted(pending["proposal_id"]) == sorted(ours) and pending["key"].is_unique
    first.close()
    second.close()


def test_definition_edits_that_would_drop_or_relabel_measurements_are_refused(tmp_path: Path,
                                                                              truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth, initial_design="random")
    _measure(campaign, campaign.propose(4), truth)
    campaign.close()
    path = tmp_path / "seebeck.toml"
    original = path.read_text(encoding="utf-8")
    extra = '\n[[objectives]]\nname = "kappa"\nunits = "W/m/K"\ndirection = "minimize"\n'
    refused = {
        "renamed": (original.replace('name = "S_p"', 'name = "seebeck"'),
                    "the log records objective 'S_p' in μV/K (4 measurements), the definition says objective "
                    "'seebeck' in μV/K"),
        "other units": (original.replace('units = "μV/K"', 'units = "mV/K"'),
                        "the log records objective 'S_p' in μV/K (4 measurements), the definition says objective "
                        "'S_p' in mV/K"),
        "added": (original + extra, "the definition says objectives 'S_p' in μV/K and 'kappa' in W/m/K"),
    }
    for text, message in refused.values():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DefinitionMismatchError) as err:
            Campaign.open(path, progress=False)
        assert message in str(err.value) and str(path) in str(err.value)

    # Edits that only change how the next batches are chosen stay allowed.
    edited = original
    for before, after in [("batch_size = 4", "batch_size = 2"), ("window = [150.0, 250.0]", "window = [100.0, 200.0]"),
                          ('[surrogate]\nkind = "gp"', '[surrogate]\nkind = "ensemble"')]:
        assert before in edited
        edited = edited.replace(before, after)
    path.write_text(edited, encoding="utf-8")
    with Campaign.open(path, progress=False) as reopened:
        batch = reopened.propose()
        assert len(batch) == 2 and batch.attrs["training_size"] == 4


def test_an_open_campaign_notices_measurements_under_another_definition(tmp_path: Path, truth: pd.DataFrame) -> None:
    """A campaign opened before the definition was edited refuses the log once it holds measurements it cannot use."""
    early = _init(tmp_path, truth, initial_design="random")
    batch = early.propose(4)
    path = tmp_path / "seebeck.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('name = "S_p"', 'name = "seebeck"'), encoding="utf-8")
    with Campaign.open(path, progress=False) as late:  # no measurements yet: any objectives match
        values = dict(zip(truth["key"], truth["S_p"], strict=True))
        late.record(pd.DataFrame({"proposal_id": batch["proposal_id"],
                                  "seebeck [μV/K]": [values[k] for k in batch["key"]]}))
    before = _digest(early)
    for call in (lambda: early.propose(2), lambda: early.status(cv=False),
                 lambda: early.record(pd.DataFrame({"formula": ["Fe2O3"], COLUMN: [180.0]}))):
        with pytest.raises(DefinitionMismatchError, match="'seebeck' in μV/K"):
            call()
    assert _digest(early) == before
    early.close()


def test_batch_seeds_are_distinct_streams_and_keep_the_first_batch():
    from aloop.campaigns.modeling import batch_seed

    assert batch_seed(7, 1) == 8  # the initial design of existing campaigns is unchanged
    seeds = {(s, b): batch_seed(s, b) for s in range(20) for b in range(1, 30)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(seeds[s, b + 1] != seeds[s + 1, b] for s in range(19) for b in range(1, 29))


def test_equal_results_warn_that_nothing_sets_the_models_scale(tmp_path: Path, truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth)
    first = campaign.propose(6)
    campaign.record(pd.DataFrame({"proposal_id": first["proposal_id"], COLUMN: 200.0}))  # e.g. a saturated instrument
    with pytest.warns(SmallTargetWarning, match=r"y is 200 in all 6 rows: nothing sets its scale"):
        batch = campaign.propose(4)
    assert len(batch) == 4 and not set(batch["key"]) & set(first["key"])


def test_a_retry_without_the_candidate_list_is_written_without_a_prediction(tmp_path: Path,
                                                                            truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth)
    first = campaign.propose(2)
    failed = int(first["proposal_id"].iloc[0])
    campaign.fail(failed, "melted")
    campaign.close()
    (tmp_path / "candidates.csv").rename(tmp_path / "moved.csv")
    with Campaign.open(tmp_path / "seebeck.toml", progress=False) as reopened:
        with pytest.warns(CampaignWarning, match="candidates.*written without the model's prediction and P.success."):
            (new,) = reopened.retry(failed)
        row = reopened.log.proposals().set_index("proposal_id").loc[new]
    assert row["status"] == "pending" and row["formula"] == first["formula"].iloc[0]
    assert pd.isna(row["p_success"]) and pd.isna(row["model_version"])


def test_the_model_waits_for_three_observations_whatever_the_initial_design_size(tmp_path: Path,
                                                                                 truth: pd.DataFrame) -> None:
    campaign = _init(tmp_path, truth, initial_design="random", initial_size=1)
    _measure(campaign, campaign.propose(1), truth)
    second = campaign.propose(1)
    assert second.attrs["mode"] == "initial design (random, 1 of 3 observations)" and campaign.surrogate() is None


def test_the_first_batch_is_drawn_with_seed_plus_one(tmp_path: Path, truth: pd.DataFrame) -> None:
    """Batch 1 of a campaign seeded 3 is the initial design of seed 4, as it always was (replays keep their picks)."""
    from aloop.campaigns.initial_design import initial_design
    from aloop.campaigns.modeling import batch_seed

    campaign = _init(tmp_path, truth, initial_design="random")
    first = campaign.propose(6)
    rows, _ = initial_design("random", campaign.pool.features, np.ones(len(campaign.pool), bool), 6, seed=4)
    assert batch_seed(3, 1) == 4 and list(first["key"]) == list(campaign.pool.keys[rows])


def test_a_batch_is_chosen_given_the_pending_proposals(tmp_path: Path, truth: pd.DataFrame) -> None:
    """Two batches of 3, the second picked while the first is pending, are the batch of 6 picked at once: the
    second is conditioned on the first, not chosen as if nothing were under way."""
    campaign = _init(tmp_path, truth, initial_design="random")
    _measure(campaign, campaign.propose(6), truth)
    one, two = campaign.propose(3), campaign.propose(3)
    assert one.attrs["model_version"] == two.attrs["model_version"]
    campaign.cancel([*one["proposal_id"], *two["proposal_id"]], "picked again at once below")
    at_once = campaign.propose(6)
    assert at_once.attrs["model_version"] == one.attrs["model_version"]
    assert list(at_once["key"]) == [*one["key"], *two["key"]]


def test_changing_a_transform_records_a_new_model_version(tmp_path: Path, truth: pd.DataFrame) -> None:
    """Modelling log10(S_p) instead of S_p is another model: it gets a version of its own (and its own
    hyperparameters), though the measurements are the same."""
    campaign = _init(tmp_path, truth, initial_design="random", surrogate_options={"transform": "none"})
    first = campaign.propose(6)
    campaign.record(pd.DataFrame({"proposal_id": first["proposal_id"], COLUMN: [120.0, 150, 180, 210, 260, 300]}))
    assert campaign.propose(2).attrs["model_version"] == "v1"
    campaign.close()
    definition = tmp_path / "seebeck.toml"
    text = definition.read_text()
    assert text.count('transform = "none"') == 1
    definition.write_text(text.replace('transform = "none"', 'transform = "log10"'))
    with Campaign.open(definition, progress=False) as reopened:
        batch = reopened.propose(2)
        versions = reopened.log.model_versions()
    assert batch.attrs["model_version"] == "v2" and batch.attrs["retrained"]
    assert list(versions["model_version"]) == ["v1", "v2"]
    assert versions["details"].iloc[-1]["transforms"] == {"S_p": "log10"}
