"""Fixtures shared across test folders: a small sample of real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aloop.chem import to_fraction_matrix


@pytest.fixture(scope="session")
def band_gap() -> tuple[np.ndarray, np.ndarray]:
    """300 seeded rows of the experimental band gaps (Zhuo et al.): ``n × 86`` fractions and gaps in eV."""
    data_dir = Path(os.environ.get("ALOOP_DATA_DIR", "/nonexistent"))
    if not (data_dir / "experimental").is_dir():
        pytest.skip("ALOOP_DATA_DIR does not hold the shared datasets (set ALOOP_DATA_DIR=../shared/data)")
    from aloop.datasets import load

    frame = load("expt-bandgap", split="train").sample(300, random_state=0)
    X, _ = to_fraction_matrix(list(frame["formula"]))
    return X, frame["gap expt"].to_numpy()


@pytest.fixture(autouse=True)
def _own_sources_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test sees the shipped source models and only the ones it exports itself (never a developer's own)."""
    folder = tmp_path_factory.mktemp("own-sources")
    monkeypatch.setenv("ALOOP_SOURCES_DIR", str(folder))
    return folder
