"""Retrospective benchmarking: replay campaigns against fully measured pools and score them with the field's metrics.

``Task`` (a measured pool) × ``Strategy`` (featurizer × surrogate × acquisition) × seeds →
``run_study`` (joblib or Ray, resumable) → run records → ``summary`` tables and ``plots``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aloop.benchmark.replay import Strategy, run_replay
    from aloop.benchmark.task import ReplayError, Task

__all__ = ["ReplayError", "Strategy", "Task", "run_replay"]

# Loaded on first use, so that the light submodules (metrics, backends) do not pull in torch and the
# surrogates: `aloop --help` reads them.
_HOME = {"ReplayError": "task", "Task": "task", "Strategy": "replay", "run_replay": "replay"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"aloop.benchmark.{_HOME[name]}"), name)
    raise AttributeError(f"module 'aloop.benchmark' has no attribute {name!r}")
