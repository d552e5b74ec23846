"""Campaign definitions as TOML text: the commented template of ``aloop init`` and plain dumps."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aloop.campaigns._fields import ConfigError
from aloop.campaigns.config import DEFAULT_LAYER, DEFAULT_SOURCE, CampaignConfig, default_acquisition, parse_config

_FLAGS = frozenset(
    """
    name elements step max_elements bounds fixed charge_balanced candidates_csv formula_column
    candidates_sha256 candidates_count objective units direction target window featurizer source layer surrogate acquisition
    batch_size initial_design initial_size seed database_url
    """.split()
)


def _v(value: Any) -> str:
    """One TOML value (strings escaped by tomli-w; small tables inline)."""
    import tomli_w

    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_v(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_v(v) for v in value) + "]"
    return tomli_w.dumps({"x": value}).split("=", 1)[1].strip()


def render_template(**flags: Any) -> str:
    """The commented TOML text of a definition built from ``flags`` (see ``write_template``)."""
    unknown = sorted(set(flags) - _FLAGS)
    if unknown:
        raise ConfigError([f"unknown template option {u!r}; options: {', '.join(sorted(_FLAGS))}" for u in unknown])
    f = {k: v for k, v in flags.items() if v is not None}  # None: the flag's default, as if not given
    name = f.get("name", "my-campaign")
    elements = f.get("elements")
    if isinstance(elements, str):
        elements = [e.strip() for e in elements.replace(",", " ").split()]
    if elements is not None and not list(elements):  # an empty shell variable must not become the example's grid
        raise ConfigError(["elements: none given (an empty list); name the grid's elements, e.g. 'Ni,Fe,Co'"])
    csv = f.get("candidates_csv")
    direction = f.get("direction", "maximize")
    objective = f.get("objective", "zT" if csv is None and elements is None else "property")
    batch = f.get("batch_size", 8)
    lines = [
        "# aloop campaign definition. Edit freely; `aloop` validates it on every run.",
        "# Relative paths are resolved against this file's folder.",
        "",
        f"name = {_v(name)}",
        f"batch_size = {_v(batch)}          # compositions proposed per round",
        f"seed = {_v(f.get('seed', 0))}                # makes proposals reproducible",
    ]
    if f.get("database_url"):
        lines.append(f"database_url = {_v(f['database_url'])}")
    else:
        lines.append(
            f'# database_url = "postgresql+psycopg2://user@host/db"   # default: {name}.sqlite beside this file'
        )
    lines += ["", "[search_space]"]
    if csv is not None:
        lines += [
            "# Candidates are the formulas of a CSV file.",
            f"candidates_csv = {_v(str(csv))}",
            f"formula_column = {_v(f.get('formula_column', 'formula'))}",
        ]
        if f.get("candidates_sha256") is not None:
            lines += [
                "# The file as it was at `aloop init` (aloop warns when it changes; after a deliberate edit,",
                "# copy the new values from that warning here to silence it).",
                f"candidates_sha256 = {_v(f['candidates_sha256'])}",
                f"candidates_count = {_v(f['candidates_count'])}",
            ]
    else:
        elements = elements or ["Bi", "Sb", "Te"]
        lines += [
            "# An element grid: atomic fractions (of the whole formula unit) are multiples of `step`.",
            f"elements = {_v(elements)}",
            f"step = {_v(f.get('step', 0.05))}",
            f"max_elements = {_v(f.get('max_elements', len(elements)))}    # at most this many of `elements` at once",
            f"charge_balanced = {_v(f.get('charge_balanced', False))}   # keep only charge-neutral compositions",
        ]
        lines.append(
            f"bounds = {_v(f['bounds'])}"
            if f.get("bounds")
            else "# bounds = { Bi = [0.0, 0.5] }    # per-element [lo, hi] fraction"
        )
        lines.append(
            f"fixed = {_v(f['fixed'])}"
            if f.get("fixed")
            else "# fixed = { O = 0.6 }    # elements pinned to a fraction (e.g. the anion)"
        )
    lines += [
        "",
        "# One [[objectives]] table per measured quantity. direction: maximize | minimize |",
        "# target (target = value) | window (window = [lo, hi]). Result files give the value",
        "# in a column '<name> [<units>]' (just '<name>' when units = \"\").",
        "[[objectives]]",
        f"name = {_v(objective)}",
        f"units = {_v(f.get('units', ''))}",
        f"direction = {_v(direction)}",
    ]
    if f.get("target") is not None:
        lines.append(f"target = {_v(float(f['target']))}")
    if f.get("window") is not None:
        lines.append(f"window = {_v([float(x) for x in f['window']])}")
    feat = f.get("featurizer", "elemnet")
    lines += [
        "",
        "[featurizer]",
        "# elemnet (transfer-learned activations) | magpie | ef (element fractions);",
        "# source and layer are used with elemnet only (`aloop sources` lists the sources)",
        f"kind = {_v(feat)}",
        f"source = {_v(f.get('source', DEFAULT_SOURCE))}",
        f"layer = {_v(f.get('layer', DEFAULT_LAYER))}   # hidden layer 1..16",
    ]
    default_acq = default_acquisition([direction])
    lines += [
        "",
        "[surrogate]",
        f"kind = {_v(f.get('surrogate', 'gp'))}   # gp | ensemble (random forest) | gp_forest (the two averaged)",
        "",
        "[acquisition]",
        f"kind = {_v(f.get('acquisition', default_acq))}",
        "",
        "[initial_design]",
        "# first batch, before any measurement: random | diverse (spread over feature space)",
        f"kind = {_v(f.get('initial_design', 'diverse'))}",
        _size_line(f.get("initial_size"), batch),
        "",
    ]
    return "\n".join(lines)


def _size_line(size: Any, batch: Any) -> str:
    """``size = …`` of ``[initial_design]``: the batch size unless given (left out when the batch size is invalid,
    so an invalid batch size is reported once, not once more as the size)."""
    if size is not None:
        return f"size = {_v(size)}"
    if isinstance(batch, int) and not isinstance(batch, bool) and batch >= 1:
        return f"size = {_v(batch)}"
    return "# size = the batch size"


def create_file(path: Path, text: str) -> None:
    """Write ``text`` to a new file; a file created meanwhile is never clobbered (``FileExistsError``)."""
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to overwrite it") from None


def write_template(path: str | Path, **flags: Any) -> CampaignConfig:
    """Write a commented, valid campaign definition to ``path`` and return it loaded.

    Flags (all optional): ``name``, ``elements`` (list or "Bi,Sb,Te"), ``step``,
    ``max_elements``, ``bounds``, ``fixed``, ``charge_balanced``, ``candidates_csv``,
    ``formula_column``, ``objective`` (its name), ``units``, ``direction``, ``target``,
    ``window``, ``featurizer``, ``source``, ``layer``, ``surrogate``, ``acquisition``,
    ``batch_size``, ``initial_design``, ``initial_size``, ``seed``, ``database_url``.

    Raises:
        FileExistsError: ``path`` exists (it is never overwritten).
        ConfigError: the flags make an invalid definition (nothing is written).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    text = render_template(**flags)
    config = parse_config(tomllib.loads(text), path=path)
    create_file(path, text)
    return config


def config_to_dict(cfg: CampaignConfig) -> dict[str, Any]:
    """The TOML document of a definition (paths as written, ``None`` fields left out)."""
    s = cfg.search_space
    if s.kind == "candidates":
        space: dict[str, Any] = {"candidates_csv": str(s.candidates_csv), "formula_column": s.formula_column,
                                 "candidates_sha256": s.candidates_sha256, "candidates_count": s.candidates_count}
    else:
        space = {"elements": list(s.elements), "step": s.step, "max_elements": s.max_elements}
        space["charge_balanced"] = s.charge_balanced
        if s.bounds:
            space["bounds"] = {el: list(b) for el, b in s.bounds.items()}
        if s.fixed:
            space["fixed"] = dict(s.fixed)
    objectives = []
    for o in cfg.objectives:
        d: dict[str, Any] = {"name": o.name, "units": o.units, "direction": o.direction}
        if o.target is not None:
            d["target"] = o.target
        if o.window is not None:
            d["window"] = list(o.window)
        if o.reference is not None:
            d["reference"] = o.reference
        objectives.append(d)
    feat: dict[str, Any] = {"kind": cfg.featurizer.kind}
    if cfg.featurizer.kind == "elemnet":
        feat.update(source=cfg.featurizer.source, layer=cfg.featurizer.layer)
    out: dict[str, Any] = {"name": cfg.name, "batch_size": cfg.batch_size, "seed": cfg.seed}
    if cfg.database is not None:
        out["database_url"] = cfg.database
    out["search_space"] = {k: v for k, v in space.items() if v is not None}
    out["objectives"] = objectives
    out["featurizer"] = feat
    out["surrogate"] = {
        "kind": cfg.surrogate.kind,
        **({"options": cfg.surrogate.options} if cfg.surrogate.options else {}),
    }
    out["acquisition"] = {
        "kind": cfg.acquisition.kind,
        **({"options": cfg.acquisition.options} if cfg.acquisition.options else {}),
    }
    out["initial_design"] = {"kind": cfg.initial_design.kind, "size": cfg.initial_design.size}
    return out
