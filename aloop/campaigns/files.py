"""Campaign files on disk: finding the definition to open, writing a new one (with model options), results files.

``write_definition`` renders the commented template of ``aloop init``
(:func:`aloop.campaigns.template.render_template`), adds ``options = {…}`` lines to the
``[surrogate]`` / ``[acquisition]`` sections when asked, validates the result and writes it
without ever overwriting a file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aloop.campaigns._fields import ConfigError
from aloop.campaigns._store import describe, to_url
from aloop.campaigns.config import CampaignConfig, parse_config
from aloop.campaigns.log import list_campaigns
from aloop.campaigns.modeling import modelling
from aloop.campaigns.pool import (
    CampaignError,
    CampaignWarning,
    file_sha256,
    load_candidates,
)
from aloop.campaigns.results_file import read_results
from aloop.campaigns.template import create_file, render_template

if TYPE_CHECKING:
    import pandas as pd


def find_definition(path: str | Path | None = None) -> Path:
    """The definition file: ``path`` itself, or the single ``*.toml`` in ``path`` (default: the current folder)."""
    p = Path.cwd() if path is None else Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.toml"))
        if len(found) == 1:
            return found[0]
        where = "the current folder" if path is None else str(p)
        if not found:
            raise CampaignError(f"no campaign definition (*.toml) in {where}; create one with `aloop init NAME` "
                                "or name it with --campaign PATH")
        raise CampaignError(f"several campaign definitions in {where} ({', '.join(f.name for f in found)}); "
                            "choose one with --campaign PATH")
    if not p.is_file():
        raise CampaignError(f"campaign definition not found: {p}")
    return p


def write_definition(path: Path, transform: str | Mapping[str, str] | None = None,
                     surrogate_options: Mapping[str, Any] | None = None,
                     acquisition_options: Mapping[str, Any] | None = None, **flags: Any) -> CampaignConfig:
    """Validate and write a new definition at ``path``; returns it loaded.

    ``name`` defaults to the file's stem; a relative ``candidates_csv`` is taken relative
    to the current directory (and written relative to the definition's folder).

    A candidate-list definition records the file's sha256 and number of candidates
    (``candidates_sha256``, ``candidates_count``), so that a later change is pointed out.

    Raises:
        ConfigError: invalid flags, or no search space (neither ``elements`` nor ``candidates_csv``).
        CampaignError: ``path`` or the campaign (in its log) exists already, or the candidate
            file has no rows or an invalid formula.
    """
    if flags.get("elements") is None and flags.get("candidates_csv") is None:
        raise ConfigError(["search_space: say where candidates come from: elements and step (an element grid, "
                           "e.g. elements=['Ni', 'Fe', 'Co'], step=0.05) or candidates_csv (a CSV of formulas)"])
    if path.is_dir():
        raise CampaignError(f"{path} is a folder; give the definition file to write, e.g. {path / 'name.toml'}")
    if not path.parent.is_dir():
        raise CampaignError(f"cannot write {path}: folder {path.parent} does not exist")
    flags.setdefault("name", path.stem)
    if flags.get("candidates_csv") is not None:
        csv = Path(flags["candidates_csv"]).resolve()
        try:
            flags["candidates_csv"] = os.path.relpath(csv, path.parent.resolve())
        except ValueError:  # another drive on Windows
            flags["candidates_csv"] = str(csv)
    options = dict(surrogate_options or {})
    if transform is not None:
        options["transform"] = dict(transform) if isinstance(transform, Mapping) else transform

    def render(**extra: Any) -> tuple[str, CampaignConfig]:
        text = _with_options(render_template(**flags, **extra), "surrogate", options)
        text = _with_options(text, "acquisition", dict(acquisition_options or {}))
        return text, parse_config(tomllib.loads(text), path=path)

    text, config = render()
    modelling(config)  # a bad transform or option is refused before anything is written
    if config.search_space.kind == "candidates":
        frame = load_candidates(config)  # so is a candidate file that `propose` would refuse
        count, repeats = len(frame), frame.attrs["duplicate_rows"]
        if repeats:
            lines = ", ".join(f"line {i + 2}" for i in repeats[:20]) + (" …" if len(repeats) > 20 else "")
            warnings.warn(f"{len(repeats)} row(s) of the candidates file repeat a composition listed before ({lines}), "
                          f"perhaps written differently: each composition is one candidate, so the campaign has {count}",
                          CampaignWarning, stacklevel=2)
        digest = file_sha256(config.base_dir / config.search_space.candidates_csv)  # type: ignore[operator]
        text, config = render(candidates_sha256=digest, candidates_count=count)
    if path.exists():
        raise CampaignError(f"{path} already exists; refusing to overwrite it (open it with Campaign.open)")
    if config.name in list_campaigns(config.database_url):
        raise CampaignError(f"campaign {config.name!r} already exists in {describe(to_url(config.database_url))}; "
                            "choose another name or open the existing campaign")
    try:
        create_file(path, text)
    except FileExistsError as exc:
        raise CampaignError(str(exc)) from None
    return config


def _inline(value: Any) -> str:
    """A TOML inline value (tables as ``{ k = v }``)."""
    import tomli_w

    if isinstance(value, Mapping):
        items = (f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', str(k)) else json.dumps(str(k))} = {_inline(v)}"
                 for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    return tomli_w.dumps({"x": value}).split("=", 1)[1].strip()


def _with_options(text: str, section: str, options: Mapping[str, Any]) -> str:
    """The template text with ``options = {…}`` added below ``kind`` in ``[section]`` (comments kept)."""
    if not options:
        return text
    lines = text.splitlines()
    start = lines.index(f"[{section}]")
    lines.insert(start + 2, f"options = {_inline(dict(options))}")
    return "\n".join(lines) + "\n"


def read_results_file(path: Path) -> pd.DataFrame:
    """A results CSV read as text cells (``records.read_results``); a missing file or a folder is a ``CampaignError``."""
    if path.is_dir():
        raise CampaignError(f"{path} is a folder, not a results file: give the CSV file itself")
    if not path.is_file():
        raise CampaignError(f"results file not found: {path}")
    try:
        return read_results(path)
    except (ValueError, OSError) as exc:
        raise CampaignError(f"cannot read results file {path}: {exc}") from None


def results_table(results: pd.DataFrame | str | Path) -> pd.DataFrame:
    """The table ``Campaign.record`` takes: a DataFrame as it is, a path read as text cells (``read_results_file``)."""
    import pandas as pd

    if isinstance(results, str | Path):
        return read_results_file(Path(results))
    if isinstance(results, pd.DataFrame):
        return results
    raise CampaignError(f"record() takes a DataFrame or a CSV path, got {type(results).__name__}")
