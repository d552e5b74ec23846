"""Campaigns: definition file, durable SQL event log, and the propose/record/retrain loop."""

from aloop.campaigns._fields import ConfigError
from aloop.campaigns.config import (
    AcquisitionConfig,
    CampaignConfig,
    FeaturizerConfig,
    InitialDesign,
    Objective,
    SearchSpace,
    SurrogateConfig,
    load_config,
    parse_config,
)
from aloop.campaigns.log import (
    AppendResult,
    Batch,
    CampaignLog,
    CampaignLogError,
    Measurement,
    OutdatedSchemaError,
    Proposal,
    default_idempotency_key,
    list_campaigns,
    migrate,
)
from aloop.campaigns.records import RecordError, RowProblem, validate_results
from aloop.campaigns.results_file import read_results
from aloop.campaigns.state import Event
from aloop.campaigns.template import write_template

__all__ = [
    "AcquisitionConfig",
    "Campaign",
    "CampaignError",
    "CampaignWarning",
    "AppendResult",
    "Batch",
    "CampaignConfig",
    "CampaignLog",
    "CampaignLogError",
    "ConfigError",
    "Event",
    "FeaturizerConfig",
    "InitialDesign",
    "Measurement",
    "Objective",
    "OutdatedSchemaError",
    "Proposal",
    "RecordError",
    "RowProblem",
    "SearchSpace",
    "SurrogateConfig",
    "default_idempotency_key",
    "list_campaigns",
    "load_config",
    "migrate",
    "parse_config",
    "read_results",
    "validate_results",
    "write_template",
]


def __getattr__(name: str) -> object:
    # The loop pulls in torch/BoTorch; loaded on first use so that log-only users stay light.
    if name in ("Campaign", "CampaignError", "CampaignWarning"):
        from aloop.campaigns import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'aloop.campaigns' has no attribute {name!r}")
