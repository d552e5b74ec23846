"""The data directory, checksum verification and dataset loaders returning DataFrames."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from aloop.datasets.registry import DatasetError, DatasetSpec, get_spec

ENV_VAR = "ALOOP_DATA_DIR"


def data_dir() -> Path:
    """The data directory: ``$ALOOP_DATA_DIR`` if set, else a per-user cache (``~/.cache/aloop/data``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aloop" / "data"


def dataset_path(spec: DatasetSpec) -> Path:
    """Where the file of ``spec`` is expected (inside an installed package for embedded datasets)."""
    if spec.embedded:
        found = importlib.util.find_spec(spec.embedded)
        if found is None or not found.submodule_search_locations:
            raise DatasetError(f"dataset {spec.name!r} ships inside the {spec.embedded!r} package, which is not installed")
        return Path(list(found.submodule_search_locations)[0]).parent / spec.path
    return data_dir() / spec.path


@lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(spec: DatasetSpec) -> Path:
    """Check that the file of ``spec`` exists and matches its registered sha256; return its path."""
    path = dataset_path(spec)
    if not path.is_file():
        raise DatasetError(
            f"dataset {spec.name!r}: file {spec.path} not found in the data directory {path.parent.parent} "
            f"(looked for {path}; set {ENV_VAR} to the folder that holds it). "
            f"Get it from {spec.origin_url} (see the registry entry: `aloop datasets show {spec.name}`)."
        )
    stat = path.stat()
    digest = _sha256(str(path), stat.st_size, stat.st_mtime_ns)
    if digest != spec.sha256:
        raise DatasetError(
            f"dataset {spec.name!r}: {path} has sha256 {digest}, expected {spec.sha256}; "
            "the file is corrupt or a different version. Re-download it from " + spec.origin_url
        )
    return path


def _fractions_to_formula(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    symbols = [c.split("_")[0].capitalize() for c in columns]
    values = frame[list(columns)].to_numpy(dtype=float)
    out = []
    for row in values:
        out.append("".join(f"{s}{v:g}" for s, v in zip(symbols, row) if v > 0))
    return pd.Series(out, index=frame.index)


def load(name: str, split: str | None = None) -> pd.DataFrame:
    """Load a registry dataset as a DataFrame with a ``formula`` column, its targets and ``split``.

    Args:
        name: registry name (``aloop datasets list``).
        split: keep only rows of this published split (``train``/``val``/``test``).

    Raises:
        DatasetError: no dataset of that name, file missing (naming where it was looked for), checksum mismatch,
            or expected columns absent.
    """
    spec = get_spec(name)
    path = verify(spec)
    if path.name.endswith((".tar.xz", ".tar.gz", ".tar")):
        with tarfile.open(path) as archive:
            member = next(m for m in archive.getmembers() if m.isfile())
            frame = pd.read_csv(archive.extractfile(member), index_col=spec.index_col)
    else:
        frame = pd.read_csv(path, index_col=spec.index_col)
    frame = frame.rename(columns=spec.rename)
    needed = [c for c in (spec.formula_column, spec.split_column, *spec.fraction_columns, *spec.targets) if c]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DatasetError(f"dataset {name!r}: columns {missing} missing from {path}")
    if spec.fraction_columns:
        frame.insert(0, "formula", _fractions_to_formula(frame, spec.fraction_columns))
    elif spec.formula_column != "formula":
        frame = frame.rename(columns={spec.formula_column: "formula"})
    if spec.valid_range is not None:
        target = next(iter(spec.targets))
        lo, hi = spec.valid_range
        values = frame[target].to_numpy(dtype=float)
        frame = frame[np.isfinite(values) & (values >= lo) & (values <= hi)]
    if split is not None:
        if spec.split_column is None:
            raise DatasetError(f"dataset {name!r} has no published split")
        known = sorted(frame[spec.split_column].unique())
        if split not in known:
            raise DatasetError(f"dataset {name!r}: unknown split {split!r}; splits are {known}")
        frame = frame[frame[spec.split_column] == split]
    if spec.split_column and spec.split_column != "split":
        frame = frame.rename(columns={spec.split_column: "split"})
    return frame.reset_index(drop=True)
