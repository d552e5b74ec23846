"""Tests of the dataset registry and loaders against the real data directory."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from aloop.datasets import DatasetError, data_dir, dataset_path, get_spec, list_specs, load, verify

ALL_SPECS = list_specs()
FILE_SPECS = [s for s in ALL_SPECS if not s.embedded]


@pytest.fixture(scope="module")
def shared_data() -> Path:
    """The configured data directory, or a skip saying how to configure it."""
    root = data_dir()
    if not (root / "MANIFEST.csv").is_file():
        pytest.skip(f"no shared data in {root}: set ALOOP_DATA_DIR to the shared data folder (../shared/data)")
    return root


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registry_entries_are_complete() -> None:
    names = [s.name for s in ALL_SPECS]
    assert len(names) == len(set(names)) and len(names) >= 55
    assert {s.group for s in ALL_SPECS} == {"source", "jarvis", "experimental", "campaigns", "embedded"}
    assert len(list_specs("jarvis")) == 39
    for spec in ALL_SPECS:
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0, spec.name
        assert spec.citation and spec.license and spec.origin_url.startswith("https://"), spec.name
        assert spec.targets and all(spec.targets.values()), f"{spec.name}: every target needs units"
        assert spec.formula_column or spec.fraction_columns, spec.name
        assert spec.rows > 0, spec.name
    assert get_spec("expt-bandgap").targets == {"gap expt": "eV"}


def test_registry_directions_name_targets_and_say_lower_overpotential_is_better() -> None:
    from aloop.datasets import DatasetSpec

    for spec in ALL_SPECS:
        assert set(spec.directions) <= set(spec.targets), spec.name
    assert get_spec("oer-plate-3496").direction("overpotential_V") == "minimize"
    assert get_spec("oer-plate-3851").direction("overpotential_V") == "minimize"
    assert get_spec("expt-bandgap").direction("gap expt") is None  # no agreed direction: a benchmark must be told
    base = get_spec("oer-plate-3496")
    with pytest.raises(ValueError, match="directions must map targets to 'maximize' or 'minimize', got 'eta': 'down'"):
        DatasetSpec(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "directions": {"eta": "down"}})


def test_registry_agrees_with_the_data_manifest(shared_data: Path) -> None:
    with open(shared_data / "MANIFEST.csv", newline="") as fh:
        manifest = {row["file"]: row for row in csv.DictReader(fh)}
    for spec in FILE_SPECS:
        assert spec.path in manifest, f"{spec.name}: {spec.path} is not in MANIFEST.csv"
        assert spec.sha256 == manifest[spec.path]["sha256"], spec.name
        assert spec.rows == int(manifest[spec.path]["rows"]), spec.name


@pytest.mark.parametrize("spec", FILE_SPECS, ids=lambda s: s.name)
def test_every_dataset_loads_with_verified_checksum(spec, shared_data: Path) -> None:
    path = verify(spec)
    assert path == shared_data / spec.path
    assert _sha256(path) == spec.sha256  # independently of the loader's cached hash
    frame = load(spec.name)
    assert "formula" in frame.columns
    assert frame["formula"].map(lambda f: isinstance(f, str) and f != "").all()
    assert set(spec.targets) <= set(frame.columns)
    expected = spec.rows - (86 if spec.valid_range else 0)
    assert len(frame) == expected
    if spec.split_column:
        assert set(frame["split"]) <= {"train", "val", "test"}


def test_embedded_mp_transport_needs_no_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    spec = get_spec("mp-transport")
    assert tmp_path not in dataset_path(spec).parents
    frame = load("mp-transport")
    assert {"mp_id", "formula", "S_p", "PF_n"} <= set(frame.columns)
    assert frame.loc[0, "mp_id"] == "mp-1" and frame.loc[0, "formula"] == "Cs"
    assert len(frame) >= 47_737


def test_mp_transport_has_no_tar_padding_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path))
    frame = load("mp-transport")
    assert len(frame) == 47_737
    assert frame["formula"].notna().all()


def test_missing_file_names_file_directory_and_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path))
    spec = get_spec("expt-bandgap")
    with pytest.raises(DatasetError) as info:
        load("expt-bandgap")
    message = str(info.value)
    assert spec.path in message  # the file
    assert str(tmp_path) in message  # the directory looked in
    assert spec.origin_url in message  # where to get it
    assert "ALOOP_DATA_DIR" in message


def test_corrupted_copy_fails_the_checksum(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = get_spec("expt-formation-enthalpy")
    copy = tmp_path / spec.path
    copy.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / spec.path, copy)
    monkeypatch.setenv("ALOOP_DATA_DIR", str(tmp_path))
    assert len(load(spec.name)) == spec.rows  # the intact copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="sha256") as info:
        load(spec.name)
    assert str(copy) in str(info.value) and spec.sha256 in str(info.value)
    assert "corrupt" in str(info.value)


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(KeyError) as info:
        load("expt-bandgaps")
    message = str(info.value)
    assert "unknown dataset 'expt-bandgaps'" in message
    for name in ("expt-bandgap", "oqmd-formation-enthalpy", "mp-transport", "jarvis-slme"):
        assert name in message


def test_oqmd_formation_enthalpy_drops_exactly_the_corrupt_rows(shared_data: Path) -> None:
    import pandas as pd

    raw = pd.read_csv(shared_data / get_spec("oqmd-formation-enthalpy").path)
    assert len(raw) == 341_700
    assert (raw["target"].abs() > 5).sum() == 86
    frame = load("oqmd-formation-enthalpy")
    assert len(frame) == 341_614
    assert frame["target"].between(-5, 5).all()
    assert len(load("oqmd-energy-per-atom")) == 341_700  # other OQMD targets keep every row


@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("expt-bandgap", {"train": 4428, "test": 492}),
        ("oqmd-formation-enthalpy", {"train": 239_190, "val": 51_255, "test": 51_255}),
    ],
)
def test_splits_are_as_published(name: str, counts: dict[str, int], shared_data: Path) -> None:
    import pandas as pd

    raw = pd.read_csv(shared_data / get_spec(name).path)
    assert raw["split"].value_counts().to_dict() == counts  # the file's own split
    frame = load(name)
    total = 0
    for split in counts:
        part = load(name, split=split)
        assert (part["split"] == split).all()
        total += len(part)
    assert total == len(frame)
    if name == "expt-bandgap":
        assert len(load(name, split="test")) == 492


def test_split_errors(shared_data: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown split 'validation'; splits are \['test', 'train'\]"):
        load("expt-bandgap", split="validation")
    with pytest.raises(DatasetError, match="no published split"):
        load("matbench-mp-gap", split="test")


def test_jarvis_split_matches_the_paper(shared_data: Path) -> None:
    frame = load("jarvis-exfoliation-energy")
    assert len(frame) == 557
    assert set(frame["split"]) == {"train", "test"}
    assert np.isfinite(frame["exfoliation_energy"]).all()


def test_unknown_names_and_groups_are_named() -> None:
    from aloop.datasets import DatasetError, get_spec, list_specs, load

    with pytest.raises(DatasetError, match="unknown dataset 'nope'; known datasets: "):
        load("nope")
    with pytest.raises(KeyError) as err:
        get_spec(None)  # type: ignore[arg-type]
    assert str(err.value).startswith("unknown dataset None; known datasets: ")  # not a quoted repr
    with pytest.raises(ValueError, match="unknown dataset group 'bogus'; groups: campaigns, embedded"):
        list_specs("bogus")
