"""Retrospective benchmarking: replay campaigns against fully measured pools and score them with the field's metrics.

``Task`` (a measured pool) × ``Strategy`` (featurizer × surrogate × acquisition) × seeds →
``run_study`` (joblib or Ray, resumable) → run records → ``summary`` tables and ``plots``.
"""

from aloop.benchmark.replay import Strategy, run_replay
from aloop.benchmark.task import ReplayError, Task

__all__ = ["ReplayError", "Strategy", "Task", "run_replay"]
