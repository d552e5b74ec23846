"""`aloop init`: write a campaign definition and create its empty log, or create the log of one you wrote."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aloop.cli._output import campaign_errors, fail, out, warn

if TYPE_CHECKING:
    from aloop.campaigns.config import CampaignConfig


def _pairs(items: list[str] | None, what: str, parse: Any) -> dict[str, Any]:
    out_: dict[str, Any] = {}
    for item in items or []:
        el, sep, value = item.partition("=")
        if not sep or not el.strip():
            fail(f"--{what}: expected ELEMENT=VALUE, got {item!r}")
        try:
            parsed = parse(value.strip())
        except ValueError:
            fail(f"--{what}: cannot read the value of {item!r}")
        if el.strip() in out_ and out_[el.strip()] != parsed:
            fail(f"--{what} {el.strip()} given twice, with different values: keep one")
        out_[el.strip()] = parsed
    return out_


def _bound(text: str) -> list[float]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise ValueError(text)
    return [float(lo), float(hi)]


def init_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Campaign name; writes NAME.toml (and the log NAME.sqlite) here.",
                                               show_default=False)] = None,
    elements: Annotated[str | None, typer.Option(help="Grid elements, e.g. 'Ni,Fe,Co'.")] = None,
    step: Annotated[float | None, typer.Option(help="Grid spacing of atomic fractions [default: 0.05].")] = None,
    max_elements: Annotated[int | None, typer.Option(help="At most this many grid elements at once.")] = None,
    fixed: Annotated[list[str] | None, typer.Option(help="Pinned element fraction, e.g. O=0.6 (repeatable).")] = None,
    bound: Annotated[list[str] | None, typer.Option(help="Element fraction bounds, e.g. Ni=0:0.5 (repeatable).")] = None,
    charge_balanced: Annotated[bool, typer.Option(help="Keep only charge-balanced grid compositions.")] = False,
    candidates: Annotated[Path | None, typer.Option(help="CSV of candidate formulas (instead of a grid).")] = None,
    formula_column: Annotated[str | None, typer.Option(help="Formula column of the candidates CSV [default: formula].")] = None,
    objective: Annotated[str, typer.Option(help="Name of the measured quantity.")] = "property",
    units: Annotated[str, typer.Option(help="Its units (result files repeat them in the header).")] = "",
    direction: Annotated[str | None, typer.Option(
        help="maximize | minimize | target | window [default: maximize; window with --window, target with --target].",
        show_default=False)] = None,
    target: Annotated[float | None, typer.Option(help="Target value (direction target).")] = None,
    window: Annotated[tuple[float, float] | None, typer.Option(help="LOW HIGH of a window (direction window).")] = None,
    transform: Annotated[str | None, typer.Option(help="Model the objective as 'log10' (values must be > 0).")] = None,
    featurizer: Annotated[str, typer.Option(help="elemnet | magpie | ef.")] = "elemnet",
    surrogate: Annotated[str, typer.Option(help="gp | ensemble | gp_forest (the two averaged).")] = "gp",
    acquisition: Annotated[str | None, typer.Option(
        help="ucb | log_ei | ei | thompson | greedy (pure exploitation) | random | window | log_ehvi. Default: ucb "
             "for one objective to maximise or minimise, window for a window, log_ei for a target.")] = None,
    batch_size: Annotated[int, typer.Option(help="Proposals per round.")] = 8,
    initial_design: Annotated[str, typer.Option(help="random | diverse (cold start).")] = "diverse",
    initial_size: Annotated[int | None, typer.Option(help="Observations before the model takes over.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    database_url: Annotated[str | None, typer.Option(help="Log URL (default: NAME.sqlite beside the definition).")] = None,
    directory: Annotated[Path, typer.Option("--dir", help="Folder to write the definition into.")] = Path("."),
    definition: Annotated[Path | None, typer.Option(
        "--from", help="Create the log of a definition you wrote or edited (e.g. several [[objectives]]) instead.",
        show_default=False)] = None,
) -> None:
    """Create a campaign: a commented definition NAME.toml and its empty event log.

    Give the search space: an element grid (--elements and --step, optionally --max-elements,
    --fixed, --bound, --charge-balanced) or a candidate list (--candidates FILE.csv). Or start
    from a definition file of your own: `aloop init --from FILE.toml` (no other options).
    """
    from aloop.campaigns.loop import Campaign

    if definition is not None:
        _init_from(ctx, name, definition)
        return
    if name is None:
        fail("give the campaign's NAME (it names NAME.toml and the log), or --from FILE.toml for a definition you wrote")
    if direction is None:  # --window or --target alone say which direction is meant
        direction = "window" if window is not None and target is None else \
            "target" if target is not None and window is None else "maximize"

    _check_init_flags(candidates, formula_column, direction, target, window,
                      {"--elements": elements, "--step": step, "--max-elements": max_elements, "--fixed": fixed,
                       "--bound": bound, "--charge-balanced": charge_balanced})

    flags: dict[str, Any] = {"name": name, "objective": objective, "units": units, "direction": direction,
                             "featurizer": featurizer, "surrogate": surrogate, "batch_size": batch_size,
                             "initial_design": initial_design, "seed": seed}
    optional = {"elements": elements, "step": step, "max_elements": max_elements, "target": target,
                "window": list(window) if window else None, "acquisition": acquisition, "initial_size": initial_size,
                "database_url": database_url, "candidates_csv": candidates}
    flags.update({k: v for k, v in optional.items() if v is not None})
    if fixed:
        flags["fixed"] = _pairs(fixed, "fixed", float)
    if bound:
        flags["bounds"] = _pairs(bound, "bound", _bound)
    if charge_balanced:
        flags["charge_balanced"] = True
    if candidates is not None:
        flags["formula_column"] = formula_column or "formula"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        fail(f"campaign name {name!r}: use letters, digits, '.', '_' or '-' (it names the files)")
    with campaign_errors():
        if not directory.is_dir():
            fail(f"--dir: folder {directory} does not exist")
        path = directory / f"{name}.toml"
        if path.exists():
            fail(f"{path} already exists; refusing to overwrite it (continue that campaign with "
                 f"`aloop propose -c {path}`, start one from it with `aloop init --from {path}`, or choose another name)")
        with Campaign.init(path, transform=transform, **flags) as campaign:
            pool_kind = "candidate list" if campaign.config.search_space.kind == "candidates" else "element grid"
            out.print(f"created {campaign.config.path} ({pool_kind}, objective {objective!r}) "
                      f"with its log at {campaign.log.url.render_as_string(hide_password=True)}", markup=False)
            _say_footprint(campaign.config)
    out.print("next: `aloop propose` for the first batch (edit the .toml first if you like)", markup=False)


#: Memory while proposing, per byte of the pool's features (fractions, predictions, batch work; measured ~3×).
_PROPOSE_MEMORY_FACTOR = 3
#: Above this estimate of proposing memory the size of a grid is a warning, not a note.
_MEMORY_WARNING = 4e9


def _say_footprint(config: CampaignConfig) -> None:
    """How many compositions a grid holds and what its features will take, with a warning for a laptop-sized risk."""
    from aloop.campaigns.pool import resolve_featurizer
    from aloop.campaigns.search_space import grid_space

    if config.search_space.kind != "grid":
        return
    count = grid_space(config.search_space).count()
    width = resolve_featurizer(config.featurizer)[0].n_features
    disk = count * width * 4
    memory = _PROPOSE_MEMORY_FACTOR * disk
    def size(b: float) -> str:
        return f"{b / 1e9:.1f} GB" if b >= 1e9 else f"{b / 1e6:.0f} MB" if b >= 1e6 else f"{max(b / 1e3, 1):.0f} kB"

    note = (f"the grid holds {count:,} compositions; {config.featurizer.kind} gives {width:,} features each: a feature "
            f"cache of ~{size(disk)} beside the definition and ~{size(memory)} of memory while proposing")
    if memory > _MEMORY_WARNING:
        warn(note + " — more than many laptops have; a coarser --step, fewer elements or --max-elements, or "
             "[featurizer] kind = \"magpie\" (132 features) or \"ef\" (86) shrink it")
    else:
        out.print(note, markup=False)


def _init_from(ctx: typer.Context, name: str | None, definition: Path) -> None:
    """`aloop init --from FILE.toml`: create the log of a hand-written definition (its name is the definition's)."""
    from aloop.campaigns._store import list_campaigns
    from aloop.campaigns.config import load_config
    from aloop.campaigns.loop import Campaign

    # By name: typer may bring its own copy of click's ParameterSource enum.
    given = [f"--{p.replace('_', '-')}" for p in ctx.params if p not in ("definition", "name")
             and getattr(ctx.get_parameter_source(p), "name", None) == "COMMANDLINE"]
    if name is not None or given:
        fail(f"--from takes everything from {definition}; drop {', '.join(['NAME'] * (name is not None) + given)} "
             "(edit the file instead)")
    if definition.suffix != ".toml" or not definition.is_file():
        fail(f"--from: {definition} is not a campaign definition file (.toml)")
    with campaign_errors():
        config = load_config(definition, check_files=True)
        if config.name in list_campaigns(config.database_url):
            fail(f"campaign {config.name!r} of {definition} already has its log; continue it with "
                 f"`aloop propose -c {definition}`")
    with campaign_errors(), Campaign.open(definition, create=True) as campaign:
        out.print(f"created the log of {campaign.config.path} ({len(campaign.config.objectives)} objective(s): "
                  f"{', '.join(o.name for o in campaign.config.objectives)}) at "
                  f"{campaign.log.url.render_as_string(hide_password=True)}", markup=False)
        _say_footprint(campaign.config)
    out.print(f"next: `aloop propose -c {definition}` for the first batch", markup=False)


def _check_init_flags(candidates: Path | None, formula_column: str | None, direction: str, target: float | None,
                      window: tuple[float, float] | None, grid: dict[str, Any]) -> None:
    """Refuse flags that would be ignored or that the definition would reject less clearly (exit code 2)."""
    given = [flag for flag, value in grid.items() if value not in (None, False, [])]
    if candidates is not None and given:
        fail(f"--candidates and {', '.join(given)}: a campaign searches either a candidate list (--candidates) "
             "or an element grid (--elements, --step, …), not both")
    if candidates is None and grid["--elements"] is None:
        fail("say where the candidates come from: --elements EL,EL,… --step STEP for an element grid (e.g. "
             "--elements Ni,Fe,Co --step 0.05), or --candidates FILE.csv for a list of formulas"
             + (f" ({', '.join(given)} need --elements)" if given else ""))
    if formula_column is not None and candidates is None:
        fail("--formula-column is only for --candidates (the formula column of the candidates CSV)")
    if direction == "window" and window is None:
        fail("--direction window needs --window LOW HIGH (the window's bounds, e.g. --window 1.1 1.7)")
    if direction == "target" and target is None:
        fail("--direction target needs --target VALUE (the value to get closest to)")
    if window is not None and direction != "window":
        fail(f"--window is only for --direction window (not {direction})" if target is None
             else "--window and --target: give one (a window, or a target value to get closest to)")
    if target is not None and direction != "target":
        fail(f"--target is only for --direction target (not {direction})")
