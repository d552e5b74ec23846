"""Acquisition policies and batch selection over discrete candidate pools."""

from aloop.acquisition.batch import BatchResult, Exclusions, greedy_batch, random_batch, thompson_batch
from aloop.acquisition.feasibility import FeasibilityModel, cross_validate_feasibility
from aloop.acquisition.multi import LogNEHVI, ScalarizedLogEI
from aloop.acquisition.objectives import Maximize, Minimize, MultiObjective, Objective, Target, Window
from aloop.acquisition.policies import (
    UCB,
    Exploit,
    LogEI,
    LogPI,
    MaxVariance,
    Policy,
    QueryByCommittee,
    Random,
    Thompson,
    get_policy,
    known_policies,
)
from aloop.acquisition.covariance import noise_variance
from aloop.acquisition.proposal import Proposal, likely_enough, propose

__all__ = [
    "UCB",
    "BatchResult",
    "Exclusions",
    "Exploit",
    "FeasibilityModel",
    "LogEI",
    "LogNEHVI",
    "LogPI",
    "MaxVariance",
    "Maximize",
    "Minimize",
    "MultiObjective",
    "Objective",
    "Policy",
    "Proposal",
    "QueryByCommittee",
    "Random",
    "ScalarizedLogEI",
    "Target",
    "Thompson",
    "Window",
    "cross_validate_feasibility",
    "get_policy",
    "greedy_batch",
    "known_policies",
    "likely_enough",
    "noise_variance",
    "propose",
    "random_batch",
    "thompson_batch",
]
