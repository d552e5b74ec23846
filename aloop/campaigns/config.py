"""The campaign definition file: human-editable TOML loaded into validated dataclasses.

A definition names the campaign, its search space (an element grid or a CSV of
candidate formulas), its objectives and the modelling choices. Errors name the field::

    objectives[0].direction: must be one of maximize, minimize, target, window; got 'maximise'

Relative paths (``candidates_csv``, a relative SQLite ``database_url``) are resolved
against the folder of the definition file; the default log is ``<name>.sqlite`` beside it.
``[search_space]`` is checked by :mod:`aloop.campaigns.search_space`, which also caps the
size of a grid.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aloop.campaigns._fields import ConfigError, Fields
from aloop.campaigns._store import resolve_sqlite, url_problem
from aloop.campaigns.search_space import SearchSpace, parse_search_space

DIRECTIONS = ("maximize", "minimize", "target", "window")
FEATURIZER_KINDS = ("elemnet", "magpie", "ef")
SURROGATE_KINDS = ("gp", "ensemble", "gp_forest")
#: Surrogate kinds with a GP part, whose hyperparameters ``refit_growth`` schedules.
GP_SURROGATE_KINDS = ("gp", "gp_forest")
ACQUISITION_KINDS = ("log_ei", "ei", "ucb", "thompson", "greedy", "random", "window", "log_ehvi")
INITIAL_DESIGN_KINDS = ("random", "diverse")
# The default featurizer: chosen by benchmarks/bench_layers.py (every shipped source × layer
# 1–16, GP on 300 measurements, validation MAE over 10 transfer tasks; BENCHMARKS.md). Also
# the defaults of aloop.features.elemnet.ElemNetFeatures.
DEFAULT_SOURCE = "oqmd-formation-enthalpy"
DEFAULT_LAYER = 2
ELEMNET_HIDDEN_LAYERS = 16
#: Surrogate options that count rows, components or models: positive integers, checked when the
#: definition is read (other options are checked by the surrogate itself).
_COUNT_OPTIONS = {"gp": ("max_fit_rows", "n_components"), "ensemble": ("n_estimators", "min_samples_leaf")}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Columns of the tables derived from the log (``state.observations``/``retractions``, ``best.by_composition``,
#: the events export ``report.events_table``), where an objective's values sit in a column of its name.
TABLE_COLUMNS = (
    "event_id", "proposal_id", "formula", "key", "measured_at", "recorded_at", "operator", "notes", "raw_ref",
    "unsolicited", "idempotency_key", "n", "measurements", "measurement_id", "outcome_id", "reason", "retracted_at", "kind",
    "created_at", "batch_id", "composition_key", "model_version", "acquisition_value", "training_size", "details",
)

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
    ``reference`` (several objectives, set on all or none): the worst value still worth having; the
    hypervolume counts only improvements beyond it (default: inferred from the observations).
    """

    name: str
    units: str
    direction: str = "maximize"
    target: float | None = None
    window: tuple[float, float] | None = None
    reference: float | None = None


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
    otherwise (a target value; several objectives, where it means log-EI of an equal-weight sum of standardised
    utilities when every objective is maximised or minimised, NEHVI when one is a target or a window).
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


def load_config(path: str | Path, check_files: bool = False) -> CampaignConfig:
    """Read and validate a campaign definition file.

    A missing candidates file is no problem here unless ``check_files``: a campaign's log can
    be read, reported and added to without it (proposing needs it and says so).

    Raises:
        ConfigError: listing every invalid field (``section.field: reason``), or naming a
            file that is not a definition (a campaign log, say).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    if raw.startswith(_SQLITE_MAGIC):
        toml = path.with_suffix(".toml")
        raise ConfigError([f"{path} is a SQLite database (a campaign log?), not a campaign definition: give the "
                           + (f"definition {toml}" if toml.is_file() and toml != path else "definition (.toml) file")])
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"{path} is not a campaign definition: it is not UTF-8 text (a .toml file is)"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path} is not valid TOML: {exc}"]) from None
    return parse_config(data, path=path, check_files=check_files)


def parse_config(data: Mapping[str, Any], path: Path | None = None, check_files: bool = True) -> CampaignConfig:
    """Validate a parsed TOML document; ``path`` (the definition file) anchors relative paths.

    ``check_files``: a candidates file that does not exist is a problem (as when a campaign is created).
    """
    problems: list[str] = []
    base = path.parent if path is not None else Path.cwd()
    top = Fields(data, "", problems)
    name = top.text("name", check=_check_name)
    objectives = _objectives(top, problems)
    space = parse_search_space(top.table("search_space"), problems, base, check_files)
    featurizer = _featurizer(top.table("featurizer", default={}), problems)
    surrogate = top.table("surrogate", default={})
    surrogate_kind = surrogate.choice("kind", SURROGATE_KINDS, default="gp")
    surrogate_options = surrogate.table("options", default={})
    for key in _COUNT_OPTIONS.get(surrogate_kind, ()):
        surrogate_options.integer(key, default=None, minimum=1)
    if surrogate_kind == "gp_forest":  # the options of its two parts, as [surrogate.options.gp] / .forest
        for part, kind in (("gp", "gp"), ("forest", "ensemble")):
            part_options = surrogate_options.table(part, default={})
            for key in _COUNT_OPTIONS[kind]:
                part_options.integer(key, default=None, minimum=1)
    surrogate_cfg = SurrogateConfig(kind=surrogate_kind, options=dict(surrogate_options.raw))
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


def _objectives(top: Fields, problems: list[str]) -> list[Objective]:
    out: list[Objective] = []
    for obj in top.tables("objectives"):
        name = obj.text("name", check=_check_objective_name)
        units = obj.text("units", check=lambda v: "must not contain '[' or ']'" if "[" in v or "]" in v else None)
        direction = obj.choice("direction", DIRECTIONS)
        target = obj.number("target", default=None)
        window = obj.pair("window", default=None)
        reference = obj.number("reference", default=None)
        where = obj.where
        # A value that is present but invalid has its own problem already; "required" would be wrong.
        if direction == "target" and "target" not in obj.raw:
            problems.append(f"{where}.target: required when direction = 'target'")
        if direction == "window" and "window" not in obj.raw:
            problems.append(f"{where}.window: required when direction = 'window' (window = [lo, hi])")
        if target is not None and direction != "target":
            problems.append(f"{where}.target: only allowed when direction = 'target'")
        if window is not None and direction != "window":
            problems.append(f"{where}.window: only allowed when direction = 'window'")
        if reference is not None and ((direction == "target" and reference == target) or (
                direction == "window" and window is not None and window[0] <= reference <= window[1])):
            problems.append(f"{where}.reference: {reference:g} is already a perfect value, which nothing can improve "
                            "on; give the worst value still worth having (some way from the target or window)")
        obj.done()
        if isinstance(name, str) and any(o.name == name for o in out):
            problems.append(f"{where}.name: {name!r} is already the name of another objective")
        out.append(Objective(name, units, direction, target, window, reference))
    if not out and not any(p.startswith("objectives") for p in problems):
        problems.append("objectives: at least one [[objectives]] table is required")
    given = [o.reference is not None for o in out]
    if len(out) == 1 and given[0]:
        problems.append("objectives[0].reference: only used with several objectives (it bounds the hypervolume)")
    elif any(given) and not all(given):
        missing = ", ".join(o.name for o, g in zip(out, given, strict=True) if not g)
        problems.append(f"objectives.reference: set it on every objective or on none (missing for {missing})")
    return out


def _check_objective_name(value: str) -> str | None:
    """Why ``value`` cannot name an objective: results files head its column ``<name> [<units>]``."""
    from aloop.campaigns.records import OPTIONAL_COLUMNS  # records imports this module

    if not value.strip() or "[" in value:
        return "must be non-empty, without '['"
    if value != value.strip():
        return f"must not start or end with spaces; got {value!r}"
    reserved = ("proposal_id", "formula", *OPTIONAL_COLUMNS)
    if value in reserved:
        return f"{value!r} is the name of a results-file column ({', '.join(reserved)}); choose another name"
    if value in TABLE_COLUMNS:
        return (f"{value!r} is the name of a column of the campaign's observation and event tables "
                f"({', '.join(TABLE_COLUMNS)}); choose another name")
    return None


def _featurizer(feat: Fields, problems: list[str]) -> FeaturizerConfig:
    kind = feat.choice("kind", FEATURIZER_KINDS, default="elemnet")
    # Checked whatever the kind, used only by elemnet: switching kind is a one-line edit either way.
    source = feat.text("source", default=DEFAULT_SOURCE)
    layer = feat.integer("layer", default=DEFAULT_LAYER, minimum=1, maximum=ELEMNET_HIDDEN_LAYERS)
    feat.done()
    if kind != "elemnet":
        return FeaturizerConfig(kind=kind, source=None, layer=None)
    return FeaturizerConfig(kind=kind, source=source, layer=layer)

