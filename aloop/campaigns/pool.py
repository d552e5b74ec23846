"""The candidate pool of a campaign: formulas, keys, fractions and features, cached in a file beside it.

Building a pool means enumerating the search space (an element grid, optionally charge
balanced, or a CSV of candidate formulas), computing one canonical composition key per
candidate and featurising every candidate once. The result is cached in
``<name>.features.npz`` beside the campaign definition, keyed by the featurizer and a hash
of the search space, so later rounds (and restarts) load it instead of recomputing.

>>> # pool = load_pool(config)          # builds (with progress bars) or loads the cache
>>> # pool.features.shape               # N × d float32
>>> # pool.rows(["Fe0.4 O0.6"])         # pool row of each key, -1 if absent
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aloop.atomic import temp_beside
from aloop.campaigns.config import CampaignConfig, FeaturizerConfig
from aloop.campaigns.search_space import grid_space
from aloop.chem import (
    InvalidFormulasError,
    charge_balanced,
    keys_from_matrix,
    to_fraction_matrix,
)
from aloop.chem.elements import ELEMNET_ELEMENTS
from aloop.chem.space import formulas_from_matrix, load_candidates_csv
from aloop.features import Featurizer, get_featurizer

#: Bump when the cache layout or the pool construction changes: old caches are then rebuilt.
CACHE_VERSION = 1
_CHUNK = 20_000


class CampaignError(ValueError):
    """A campaign operation that cannot be done as asked (the message says why; nothing was written)."""


class NothingToProposeError(CampaignError):
    """Every candidate is measured, pending, failed or rejected: there is nothing left to propose."""


class CampaignWarning(UserWarning):
    """Something a campaign user should know that does not stop the operation (e.g. a featurizer fallback)."""


@dataclass
class CandidatePool:
    """Every candidate of the search space, one row each (keys are unique).

    Attributes:
        keys: ``N`` canonical composition keys (``aloop.chem.composition_key``).
        formulas: ``N`` readable formulas.
        fractions: ``N × 86`` float32 atomic fractions.
        features: ``N × d`` float32 features of ``featurizer``.
        featurizer: identifier of the featurizer that made ``features`` (``"magpie"``, ``"elemnet:src:L2:<sha256[:12]>"``).
    """

    keys: np.ndarray
    formulas: np.ndarray
    fractions: np.ndarray
    features: np.ndarray
    featurizer: str
    _index: dict[str, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, keys: object) -> np.ndarray:
        """Pool row of each key (``-1`` for a key outside the pool)."""
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.keys.tolist())}
        return np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)  # type: ignore[attr-defined]

    def features_of(self, formulas: Sequence[str], keys: Sequence[str] | None, featurizer: Featurizer) -> np.ndarray:
        """Features of compositions: pool rows by key where possible, else computed with ``featurizer``."""
        rows = self.rows(keys) if keys is not None else np.full(len(formulas), -1)
        out = np.empty((len(formulas), self.features.shape[1]), dtype=np.float32)
        out[rows >= 0] = self.features[rows[rows >= 0]]
        missing = np.flatnonzero(rows < 0)
        if missing.size:
            X, _ = to_fraction_matrix([formulas[i] for i in missing])
            out[missing] = featurizer.transform_fractions(X)
        return out

    def components(self) -> list[str]:
        """Elements that vary across the pool (present somewhere, not at one constant fraction everywhere)."""
        present = (self.fractions > 0).any(axis=0)
        varies = self.fractions.max(axis=0) - self.fractions.min(axis=0) > 1e-6
        return [ELEMNET_ELEMENTS[i] for i in np.flatnonzero(present & varies)]


def _magpie_ident() -> str:
    from aloop.features.magpie import table_digest

    return f"magpie@{table_digest()[:12]}"


def resolve_featurizer(cfg: FeaturizerConfig) -> tuple[Featurizer, str]:
    """The featurizer of a definition and its cache identifier.

    ElemNet features need a source model (shipped, or the user's own): without any, Magpie is used
    instead (with a ``CampaignWarning``); a source that is not available is an error. The ElemNet
    identifier holds the weights' sha256 and the Magpie one the element table's, so new weights or
    tables (an upgrade, a replaced own model) rebuild the feature cache and refit the model.
    """
    if cfg.kind == "magpie":
        return get_featurizer("magpie"), _magpie_ident()
    if cfg.kind != "elemnet":
        return get_featurizer(cfg.kind), cfg.kind
    from aloop.elemnet.sources import list_sources, weights_digest

    sources = list_sources()
    if not sources:
        warnings.warn(
            "featurizer.kind = 'elemnet' but no pre-trained ElemNet source model is shipped yet "
            "(aloop/elemnet/weights is empty); using Magpie features instead",
            CampaignWarning,
            stacklevel=3,
        )
        return get_featurizer("magpie"), _magpie_ident()
    if cfg.source not in sources:
        raise CampaignError(
            f"featurizer.source: ElemNet source model {cfg.source!r} is not available (`aloop sources`); "
            f"available: {', '.join(sources)}"
        )
    ident = f"elemnet:{cfg.source}:L{cfg.layer}:{weights_digest(cfg.source)[:12]}"
    return get_featurizer("elemnet", source=cfg.source, layer=cfg.layer), ident


def space_hash(config: CampaignConfig) -> str:
    """sha256 of what defines the candidates: the grid parameters, or the candidate file's bytes."""
    s = config.search_space
    h = hashlib.sha256(f"aloop-pool-v{CACHE_VERSION}\n".encode())
    if s.kind == "candidates":
        h.update(f"candidates:{s.formula_column}\n".encode())
        with open(config.base_dir / s.candidates_csv, "rb") as fh:  # type: ignore[operator]
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    else:
        doc = {
            "elements": list(s.elements),
            "step": s.step,
            "max_elements": s.max_elements,
            "bounds": {k: list(v) for k, v in sorted(s.bounds.items())},
            "fixed": dict(sorted(s.fixed.items())),
            "charge_balanced": s.charge_balanced,
        }
        h.update(json.dumps(doc, sort_keys=True).encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def missing_candidates(config: CampaignConfig) -> Path | None:
    """The candidates file of a candidate-list campaign if it is missing, else ``None`` (also for a grid)."""
    s = config.search_space
    if s.kind != "candidates":
        return None
    path = config.base_dir / s.candidates_csv  # type: ignore[operator]
    return None if path.is_file() else path


def missing_candidates_error(config: CampaignConfig, path: Path) -> CampaignError:
    """The error of an operation that needs the candidate list when its file is missing."""
    where = f" in {config.path}" if config.path is not None else ""
    return CampaignError(f"candidates file {path} is missing (search_space.candidates_csv{where}): proposing "
                         "needs the candidate list; restore the file, or set candidates_csv to where it is now")


def candidates_change(config: CampaignConfig, pool: CandidatePool, pending: pd.DataFrame) -> str | None:
    """What changed in the candidates file since the campaign was created, or ``None``.

    Compares the file with the sha256 recorded in the definition (definitions without one are
    not checked); ``pending`` (``proposal_id``, ``formula``, ``key``) are the pending proposals,
    those no longer in the file are named.
    """
    s = config.search_space
    if s.kind != "candidates" or s.candidates_sha256 is None:
        return None
    path = config.base_dir / s.candidates_csv  # type: ignore[operator]
    digest = file_sha256(path)
    if digest == s.candidates_sha256:
        return None
    then = f"{s.candidates_count:,}" if s.candidates_count is not None else "?"
    note = (f"candidates file {path} changed since the campaign was created: {then} candidates then, "
            f"{len(pool):,} now; proposals come from the file as it is now")
    gone = pending[pool.rows(pending["key"]) < 0] if len(pending) else pending
    if len(gone):
        listed = ", ".join(f"{int(r.proposal_id)} {r.formula}" for r in gone.itertuples())
        note += f"; pending proposal(s) no longer in it: {listed}"
    where = f" in {config.path.name}" if config.path is not None else ""
    return (f"{note} (if the change is meant, set candidates_sha256 = \"{digest}\" and "
            f"candidates_count = {len(pool)} under [search_space]{where} to stop this warning)")


def warn_outside_candidates(get_pool: Callable[[], CandidatePool], rows: Sequence[Any]) -> None:
    """Warn (``CampaignWarning``) about recorded ``rows`` (``Measurement``) whose composition is not a candidate of
    the campaign: off the grid or not in the list (a typo, or a sample made outside the plan). Silent without a
    candidate list to compare with."""
    try:
        pool = get_pool()
    except CampaignError:
        return
    keys = [m.key for m in rows]
    off = [m.formula for m, k, r in zip(rows, keys, pool.rows(keys), strict=True) if k is not None and r < 0]
    if off:
        warnings.warn(f"{len(off)} recorded composition(s) are not in the campaign's search space ("
                      f"{', '.join(map(str, off[:20]))}{' …' if len(off) > 20 else ''}): recorded and modelled, but "
                      "never proposed by it. If one is a typo, `aloop retract` it and record the intended composition",
                      CampaignWarning, stacklevel=3)


def cache_path(config: CampaignConfig) -> Path:
    """Where the feature cache of a campaign lives: ``<name>.features.npz`` beside the definition."""
    return config.base_dir / f"{config.name}.features.npz"


def _progress(iterable: object, progress: bool | None, **kw: object) -> object:
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=None if progress is None else not progress, leave=False, **kw)


def load_candidates(config: CampaignConfig) -> pd.DataFrame:
    """The valid, de-duplicated rows of a candidate-list definition's CSV (``load_candidates_csv``, plus ``key``).

    ``aloop init`` calls this too, so a file that ``propose`` would refuse is refused before
    any campaign file is written, with the same message.

    Raises:
        CampaignError: the file cannot be read, has an invalid formula (every bad row is
            counted, the first ten are listed) or lists no candidates.
    """
    s = config.search_space
    path = config.base_dir / s.candidates_csv  # type: ignore[operator]
    try:
        frame = load_candidates_csv(path, s.formula_column, errors="raise")
    except InvalidFormulasError as exc:
        bad = "; ".join(f"row {b.index + 1} (line {b.index + 2}): {b.formula!r}: {b.reason}" for b in exc.rows[:10])
        more = f" (and {len(exc.rows) - 10} more)" if len(exc.rows) > 10 else ""
        raise CampaignError(
            f"candidates file {path}: {len(exc.rows)} formulas are invalid — fix or remove them: {bad}{more}"
        ) from None
    except (OSError, ValueError) as exc:
        raise CampaignError(f"cannot read candidates file {path}: {exc}") from None
    if frame.empty:
        raise CampaignError(f"candidates file {path} lists no candidates")
    return frame


def _enumerate(config: CampaignConfig, progress: bool | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, formulas, fractions)`` of every candidate, de-duplicated by key."""
    s = config.search_space
    if s.kind == "candidates":
        frame = load_candidates(config)
        formulas = frame[s.formula_column].astype(str).to_numpy()
        X, _ = to_fraction_matrix(list(formulas))
        return frame["key"].to_numpy().astype(str), formulas.astype(str), X
    space = grid_space(s)
    total = space.count()
    parts: list[np.ndarray] = []
    for X in _progress(space.iter_chunks(_CHUNK), progress, total=-(-total // _CHUNK), desc="enumerating grid"):
        if s.charge_balanced:
            X = X[charge_balanced(X)]  # noqa: PLW2901
        parts.append(X)
    X = np.concatenate(parts) if parts else np.zeros((0, len(ELEMNET_ELEMENTS)), np.float32)
    if len(X) == 0:
        raise CampaignError("search_space: the grid holds no candidates (check bounds, fixed and charge_balanced)")
    keys = np.asarray(keys_from_matrix(X))
    keep = np.unique(keys, return_index=True)[1]
    keep.sort()
    X, keys = X[keep], keys[keep]
    formulas = np.asarray(formulas_from_matrix(X, order=[*s.elements, *s.fixed]))
    return keys.astype(str), formulas.astype(str), X


def _featurize(featurizer: Featurizer, X: np.ndarray, progress: bool | None) -> np.ndarray:
    out = np.empty((len(X), featurizer.n_features), dtype=np.float32)
    starts = range(0, len(X), _CHUNK)
    for a in _progress(starts, progress, desc=f"featurizing {len(X):,} candidates ({featurizer.name})"):
        out[a : a + _CHUNK] = featurizer.transform_fractions(X[a : a + _CHUNK])
    return out


def build_pool(config: CampaignConfig, featurizer: Featurizer, ident: str, progress: bool | None = None) -> CandidatePool:
    """Enumerate and featurise the search space (no cache)."""
    keys, formulas, X = _enumerate(config, progress)
    F = _featurize(featurizer, X, progress)
    bad = ~np.isfinite(F).all(axis=1)
    if bad.any():
        examples = ", ".join(formulas[bad][:5])
        raise CampaignError(f"{ident} features are undefined (NaN/inf) for {int(bad.sum())} candidates, e.g. {examples}")
    return CandidatePool(keys, formulas, X, F, ident)


def load_pool(config: CampaignConfig, featurizer: Featurizer, ident: str, progress: bool | None = None,
              pending: pd.DataFrame | None = None) -> CandidatePool:
    """The campaign's pool from its feature cache, (re)built and cached when missing or stale.

    A candidates file changed since the campaign was created gets a ``CampaignWarning`` naming the
    ``pending`` proposals (``proposal_id``, ``formula``, ``key``) no longer in it; a missing one a ``CampaignError``.
    """
    if (missing := missing_candidates(config)) is not None:
        raise missing_candidates_error(config, missing)
    pool = _load_pool(config, featurizer, ident, progress)
    no_pending = pd.DataFrame(columns=["proposal_id", "formula", "key"])
    if note := candidates_change(config, pool, no_pending if pending is None else pending):
        warnings.warn(note, CampaignWarning, stacklevel=3)
    elif config.search_space.kind == "grid" and pending is not None and len(pending):
        off = pending[pool.rows(pending["key"]) < 0]
        if len(off):  # the grid was edited (elements, step, fixed, bounds) since they were proposed
            listed = ", ".join(f"{int(r.proposal_id)} {r.formula}" for r in off.head(20).itertuples())
            warnings.warn(f"{len(off)} pending proposal(s) are off the grid as the definition now sets it ({listed}"
                          f"{' …' if len(off) > 20 else ''}): they stay pending; record their results or "
                          "`aloop cancel` them", CampaignWarning, stacklevel=3)
    return pool


def _load_pool(config: CampaignConfig, featurizer: Featurizer, ident: str, progress: bool | None) -> CandidatePool:
    path = cache_path(config)
    digest = space_hash(config)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["space_hash"]) == digest and str(z["featurizer"]) == ident:
                    return CandidatePool(z["keys"], z["formulas"], z["fractions"], z["features"], ident)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            pass  # an unreadable (e.g. truncated by a full disk) or foreign cache is simply rebuilt
    pool = build_pool(config, featurizer, ident, progress)
    tmp = temp_beside(path, ".npz")  # np.savez appends .npz to a name without it
    try:
        np.savez(tmp, keys=pool.keys, formulas=pool.formulas, fractions=pool.fractions, features=pool.features,
                 featurizer=np.asarray(ident), space_hash=np.asarray(digest))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old cache or the new one
    except OSError as exc:
        warnings.warn(f"could not write the feature cache {path}: {exc}", CampaignWarning, stacklevel=2)
        tmp.unlink(missing_ok=True)
    return pool
