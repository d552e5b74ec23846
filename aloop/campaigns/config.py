"""The campaign definition file: human-editable TOML loaded into validated dataclasses.

A definition names the campaign, its search space (an element grid or a CSV of
candidate formulas), its objectives and the modelling choices. Errors name the field::

    objectives[0].direction: must be one of maximize, minimize, target, window; got 'maximise'

Relative paths (``candidates_csv``, a relative SQLite ``database_url``) are resolved
against the folder of the definition file; the default log is ``<name>.sqlite`` beside it.
"""

from __future__ import annotations

import csv
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aloop.campaigns._fields import ConfigError, Fields
from aloop.campaigns._store import resolve_sqlite, url_problem
from aloop.chem.elements import ELEMENT_INDEX

DIRECTIONS = ("maximize", "minimize", "target", "window")
FEATURIZER_KINDS = ("elemnet", "magpie", "ef")
SURROGATE_KINDS = ("gp", "ensemble")
ACQUISITION_KINDS = ("log_ei", "ei", "ucb", "thompson", "greedy", "random", "window", "log_ehvi")
INITIAL_DESIGN_KINDS = ("random", "diverse")
# The default featurizer: chosen by benchmarks/bench_layers.py (every shipped source × layer
# 1–16, GP on 300 measurements, validation MAE over 10 transfer tasks; BENCHMARKS.md). Also
# the defaults of aloop.features.elemnet.ElemNetFeatures.
DEFAULT_SOURCE = "oqmd-formation-enthalpy"
DEFAULT_LAYER = 2
ELEMNET_HIDDEN_LAYERS = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

__all__ = [
    "AcquisitionConfig",
    "CampaignConfig",
    "ConfigError",
    "FeaturizerConfig",
    "InitialDesign",
    "Objective",
    "SearchSpace",
    "SurrogateConfig",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True)
class Objective:
    """One measured quantity and what "better" means for it.

    ``target`` is set only for ``direction="target"`` (closest to the value is best),
    ``window`` only for ``direction="window"`` (anything inside ``[lo, hi]`` is a hit).
    ``units`` is free text that result files must repeat (``""`` = dimensionless).
    """

    name: str
    units: str
    direction: str = "maximize"
    target: float | None = None
    window: tuple[float, float] | None = None


@dataclass(frozen=True)
class SearchSpace:
    """Where candidates come from: an element grid or a CSV of candidate formulas.

    Grid mode: atomic fractions (of the whole formula unit) of ``elements`` are multiples
    of ``step``; at most ``max_elements`` of them appear at once; ``bounds`` limits single
    elements to ``[lo, hi]``; ``fixed`` pins elements (typically the anion) to a fraction;
    ``charge_balanced`` keeps only compositions with a neutral oxidation-state assignment.
    Candidate mode: ``candidates_csv`` with formulas in ``formula_column``.
    """

    elements: tuple[str, ...] = ()
    step: float | None = None
    max_elements: int | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)
    charge_balanced: bool = False
    candidates_csv: Path | None = None
    formula_column: str = "formula"

    @property
    def kind(self) -> str:
        """``"candidates"`` or ``"grid"``."""
        return "candidates" if self.candidates_csv is not None else "grid"


@dataclass(frozen=True)
class FeaturizerConfig:
    """Which featurizer turns compositions into features (``source``/``layer`` only for ElemNet)."""

    kind: str = "elemnet"
    source: str | None = DEFAULT_SOURCE
    layer: int | None = DEFAULT_LAYER


@dataclass(frozen=True)
class SurrogateConfig:
    """Which surrogate model to fit; ``options`` are passed through to it."""

    kind: str = "gp"
    options: dict[str, Any] = field(default_factory=dict)


def default_acquisition(directions: Sequence[str]) -> str:
    """The acquisition kind of a definition that names none, from its objectives' directions.

    ``window`` for a window objective; ``ucb`` (β = 4, i.e. mean + 2σ) for one objective to
    maximise or minimise: replaying both OER plates, it found half of the top 5% 1.3–1.7×
    sooner than log-EI, whose expected improvement over the best *noisy* measurement keeps
    exploring late in a campaign (BENCHMARKS.md, "Retrospective discovery"); ``log_ei``
    otherwise (a target value; several objectives, where it means NEHVI).
    """
    if "window" in directions:
        return "window"
    if len(directions) == 1 and directions[0] in ("maximize", "minimize"):
        return "ucb"
    return "log_ei"


@dataclass(frozen=True)
class AcquisitionConfig:
    """Which acquisition policy picks the batch; ``options`` are passed through to it."""

    kind: str = "ucb"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InitialDesign:
    """How the first batch is chosen before any measurement exists."""

    kind: str = "diverse"
    size: int = 8


@dataclass(frozen=True)
class CampaignConfig:
    """A whole campaign definition; ``path`` is the file it was loaded from (if any)."""

    name: str
    search_space: SearchSpace
    objectives: tuple[Objective, ...]
    featurizer: FeaturizerConfig = FeaturizerConfig()
    surrogate: SurrogateConfig = SurrogateConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    batch_size: int = 8
    initial_design: InitialDesign = InitialDesign()
    seed: int = 0
    database: str | None = None
    path: Path | None = None

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths are resolved against."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def database_url(self) -> str:
        """The log's SQLAlchemy URL: ``database`` with relative SQLite paths resolved, or the default file."""
        if self.database is None:
            return f"sqlite:///{(self.base_dir / f'{self.name}.sqlite').resolve()}"
        return resolve_sqlite(self.database, self.base_dir)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def objective(self, name: str) -> Objective:
        """The objective called ``name`` (``KeyError`` if there is none)."""
        for o in self.objectives:
            if o.name == name:
                return o
        raise KeyError(f"no objective {name!r}; objectives: {', '.join(self.objective_names)}")

    def to_dict(self) -> dict[str, Any]:
        """The TOML document of this definition (paths as written, ``None`` fields left out)."""
        from aloop.campaigns.template import config_to_dict

        return config_to_dict(self)

    def save(self, path: str | Path) -> None:
        """Write the definition as TOML (comments of a template are not kept)."""
        import tomli_w

        Path(path).write_text(tomli_w.dumps(self.to_dict()), encoding="utf-8")


def load_config(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign definition file.

    Raises:
        ConfigError: listing every invalid field (``section.field: reason``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path} is not valid TOML: {exc}"]) from None
    return parse_config(data, path=path)


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> CampaignConfig:
    """Validate a parsed TOML document; ``path`` (the definition file) anchors relative paths."""
    problems: list[str] = []
    base = path.parent if path is not None else Path.cwd()
    top = Fields(data, "", problems)
    name = top.text("name", check=_check_name)
    objectives = _objectives(top, problems)
    space = _search_space(top.table("search_space"), problems, base)
    featurizer = _featurizer(top.table("featurizer", default={}), problems)
    surrogate = top.table("surrogate", default={})
    surrogate_cfg = SurrogateConfig(
        kind=surrogate.choice("kind", SURROGATE_KINDS, default="gp"),
        options=dict(surrogate.table("options", default={}).raw),
    )
    surrogate.done()
    has_window = any(o.direction == "window" for o in objectives)
    acq = top.table("acquisition", default={})
    acq_kind = acq.choice("kind", ACQUISITION_KINDS, default=default_acquisition([o.direction for o in objectives]))
    if acq_kind == "window" and objectives and not has_window:
        problems.append("acquisition.kind: 'window' needs an objective with direction = 'window'")
    acq_cfg = AcquisitionConfig(kind=acq_kind, options=dict(acq.table("options", default={}).raw))
    acq.done()
    batch_size = top.integer("batch_size", default=8, minimum=1)
    init = top.table("initial_design", default={})
    initial = InitialDesign(
        kind=init.choice("kind", INITIAL_DESIGN_KINDS, default="diverse"),
        size=init.integer("size", default=batch_size if isinstance(batch_size, int) else 8, minimum=1),
    )
    init.done()
    seed = top.integer("seed", default=0, minimum=0)
    database = top.text("database_url", default=None, check=url_problem)
    top.done()
    if problems:
        raise ConfigError(problems, source=str(path) if path else None)
    return CampaignConfig(
        name=name,
        search_space=space,
        objectives=tuple(objectives),
        featurizer=featurizer,
        surrogate=surrogate_cfg,
        acquisition=acq_cfg,
        batch_size=batch_size,
        initial_design=initial,
        seed=seed,
        database=database,
        path=path.resolve() if path is not None else None,
    )


def _check_name(value: str) -> str | None:
    if not _NAME.match(value):
        return f"must start with a letter or digit and contain only letters, digits, '.', '_' or '-'; got {value!r}"
    return None


def _element(value: object, where: str, problems: list[str]) -> bool:
    if not isinstance(value, str) or value not in ELEMENT_INDEX:
        problems.append(f"{where}: {value!r} is not an element of the 86-element ElemNet vocabulary")
        return False
    return True


def _objectives(top: Fields, problems: list[str]) -> list[Objective]:
    out: list[Objective] = []
    for obj in top.tables("objectives"):
        name = obj.text(
            "name", check=lambda v: None if v.strip() and "[" not in v else "must be non-empty, without '['"
        )
        units = obj.text("units")
        direction = obj.choice("direction", DIRECTIONS)
        target = obj.number("target", default=None)
        window = obj.pair("window", default=None)
        where = obj.where
        if direction == "target" and target is None:
            problems.append(f"{where}.target: required when direction = 'target'")
        if direction == "window" and window is None:
            problems.append(f"{where}.window: required when direction = 'window' (window = [lo, hi])")
        if target is not None and direction != "target":
            problems.append(f"{where}.target: only allowed when direction = 'target'")
        if window is not None and direction != "window":
            problems.append(f"{where}.window: only allowed when direction = 'window'")
        obj.done()
        if isinstance(name, str) and any(o.name == name for o in out):
            problems.append(f"{where}.name: {name!r} is already the name of another objective")
        out.append(Objective(name, units, direction, target, window))
    if not out and not any(p.startswith("objectives") for p in problems):
        problems.append("objectives: at least one [[objectives]] table is required")
    return out


def _search_space(space: Fields, problems: list[str], base: Path) -> SearchSpace:
    elements = space.strings("elements", default=None)
    csv_name = space.text("candidates_csv", default=None)
    column = space.text("formula_column", default="formula")
    step = space.number("step", default=None)
    max_elements = space.integer("max_elements", default=None, minimum=1)
    bounds_t = space.table("bounds", default={})
    fixed_t = space.table("fixed", default={})
    charge_balanced = space.boolean("charge_balanced", default=False)
    w = space.where
    if (elements is None) == (csv_name is None):
        which = "both" if csv_name else "neither"
        problems.append(f"{w}: give either elements (an element grid) or candidates_csv (a formula list), not {which}")
        space.done()
        return SearchSpace()
    if csv_name is not None:
        for key in ("step", "max_elements", "bounds", "fixed", "charge_balanced"):
            if key in space.raw:
                problems.append(f"{w}.{key}: only for an element grid, not with candidates_csv")
        csv_path = base / csv_name
        if not csv_path.is_file():
            problems.append(f"{w}.candidates_csv: file not found: {csv_path}")
        else:
            with csv_path.open(encoding="utf-8-sig", newline="") as fh:
                columns = [h.strip() for h in next(csv.reader(fh), [])]
            if column not in columns:
                problems.append(
                    f"{w}.formula_column: {column!r} is not a column of {csv_name}; columns: {', '.join(columns)}"
                )
        space.done()
        return SearchSpace(candidates_csv=Path(csv_name), formula_column=column)
    if "formula_column" in space.raw:
        problems.append(f"{w}.formula_column: only with candidates_csv")
    elements = elements or []
    if not elements:
        problems.append(f"{w}.elements: must list at least one element")
    for i, el in enumerate(elements):
        _element(el, f"{w}.elements[{i}]", problems)
    if len(set(elements)) != len(elements):
        problems.append(f"{w}.elements: repeats an element")
    fixed: dict[str, float] = {}
    for el, frac in fixed_t.raw.items():
        if not _element(el, f"{w}.fixed.{el}", problems):
            continue
        if el in elements:
            problems.append(f"{w}.fixed.{el}: a fixed element cannot also be in elements")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            problems.append(f"{w}.fixed.{el}: must be an atomic fraction strictly between 0 and 1; got {frac!r}")
            continue
        fixed[el] = float(frac)
    free = 1.0 - sum(fixed.values())
    if fixed and free <= 0:
        problems.append(
            f"{w}.fixed: fixed fractions sum to {sum(fixed.values()):g}; they must leave room for the elements"
        )
    if step is None:
        problems.append(f"{w}.step: required with elements (grid spacing of atomic fractions, e.g. 0.05)")
    elif not 0 < step <= 1:
        problems.append(f"{w}.step: must be in (0, 1]; got {step!r}")
    elif free > 0 and abs(free / step - round(free / step)) > 1e-6:
        problems.append(f"{w}.step: {step:g} does not divide the free fraction {free:g} (1 minus the fixed fractions)")
    if max_elements is not None and elements and max_elements > len(elements):
        problems.append(f"{w}.max_elements: {max_elements} exceeds the {len(elements)} listed elements")
    bounds: dict[str, tuple[float, float]] = {}
    for el, pair in bounds_t.raw.items():
        where = f"{w}.bounds.{el}"
        if el not in elements:
            problems.append(f"{where}: {el!r} is not one of search_space.elements")
            continue
        ok = isinstance(pair, list) and len(pair) == 2 and all(_is_number(x) for x in pair)
        if not ok or not 0 <= pair[0] <= pair[1] <= 1:
            problems.append(f"{where}: must be [lo, hi] with 0 <= lo <= hi <= 1; got {pair!r}")
            continue
        bounds[el] = (float(pair[0]), float(pair[1]))
    space.done()
    return SearchSpace(
        elements=tuple(elements),
        step=step,
        max_elements=max_elements if max_elements is not None else len(elements) or None,
        bounds=bounds,
        fixed=fixed,
        charge_balanced=charge_balanced,
    )


def _featurizer(feat: Fields, problems: list[str]) -> FeaturizerConfig:
    kind = feat.choice("kind", FEATURIZER_KINDS, default="elemnet")
    if kind != "elemnet":
        for key in ("source", "layer"):
            if key in feat.raw:
                problems.append(f"{feat.where}.{key}: only for kind = 'elemnet'")
        feat.done()
        return FeaturizerConfig(kind=kind, source=None, layer=None)
    source = feat.text("source", default=DEFAULT_SOURCE)
    layer = feat.integer("layer", default=DEFAULT_LAYER, minimum=1, maximum=ELEMNET_HIDDEN_LAYERS)
    feat.done()
    return FeaturizerConfig(kind=kind, source=source, layer=layer)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
