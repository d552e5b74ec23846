"""Small real replay tasks: 150 compositions of the JCAP OER plate 3496 (skipped without the data)."""

from __future__ import annotations

import pytest

from aloop.benchmark import Task
from aloop.datasets import DatasetError, load


@pytest.fixture(scope="session")
def oer_frame():
    try:
        return load("oer-plate-3496")
    except DatasetError as exc:
        pytest.skip(f"OER plate not available: {exc}")


@pytest.fixture(scope="session")
def small_task(oer_frame):
    frame = oer_frame.sample(150, random_state=0).reset_index(drop=True)
    return Task.from_frame("oer-small", frame, "overpotential_V", units="V", direction="minimize")
