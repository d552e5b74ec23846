"""The Python API at its edges: mistyped arguments get the campaign's own errors and write nothing; a whole batch
is cancelled by its number."""

from __future__ import annotations

from pathlib import Path

import pytest

from aloop.campaigns import Campaign, CampaignError, CampaignLogError


@pytest.fixture
def campaign(tmp_path: Path):
    with Campaign.init(tmp_path / "c.toml", elements=["Ni", "Fe", "Co"], step=0.25, featurizer="ef", objective="eta",
                       units=None, initial_size=4) as c:  # units=None: the default, as if not given
        yield c


def test_mistyped_arguments_are_refused_and_write_nothing(campaign: Campaign) -> None:
    assert campaign.config.objectives[0].units == ""
    campaign.propose(2)
    pid = int(campaign.log.pending()["proposal_id"].iloc[0])
    before = campaign.log.events_digest()
    refused = [
        (lambda: campaign.propose(allow_fewer="yes"), CampaignError, "allow_fewer must be True, False or None"),
        (lambda: campaign.status(cv="no"), CampaignError, "cv must be True or False, got 'no'"),
        (lambda: campaign.fail(pid, None), CampaignLogError, "fail: the reason must be text, got NoneType"),
        (lambda: campaign.reject(pid, 7), CampaignLogError, "reject: the reason must be text, got int 7"),
        (lambda: campaign.cancel(pid, None), CampaignLogError, "cancel: the reason must be text"),
    ]
    for call, error, message in refused:
        with pytest.raises(error, match=message):
            call()
    assert campaign.log.events_digest() == before
    campaign.fail(pid, "cracked")
    with pytest.raises(CampaignError, match="retry: the reason must be text, got int 5"):
        campaign.retry(pid, reason=5)  # type: ignore[arg-type]


def test_a_whole_batch_is_cancelled_by_its_number(campaign: Campaign) -> None:
    first = campaign.propose(3)
    batch = int(first["batch_id"].iloc[0])
    campaign.fail(int(first["proposal_id"].iloc[0]), "cracked")
    assert campaign.pending_of_batch(batch) == first["proposal_id"].tolist()[1:]
    assert len(campaign.cancel(batch=batch)) == 2 and campaign.log.pending().empty
    for kwargs, message in (({"batch": batch}, "none of its proposals is pending"), ({"batch": 9}, "has no batch 9"),
                            ({}, "give the proposal ids to cancel, or a batch"),
                            ({"proposal_ids": 1, "batch": batch}, r"\(not both\)")):
        with pytest.raises(CampaignError, match=message):
            campaign.cancel(**kwargs)
