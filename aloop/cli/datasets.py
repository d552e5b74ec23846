"""`aloop datasets`: list the dataset registry and show one entry with its file status."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from aloop.cli._output import fail, out

app = typer.Typer(help="The dataset registry: origin, citation, license, units, checksum and file status.",
                  no_args_is_help=True)


@dataclass(frozen=True)
class FileStatus:
    """Where a registry dataset's file is expected, whether it is there, and whether its sha256 matches."""

    path: Path | None
    present: bool
    verified: bool | None  # None: not checked
    problem: str = ""

    @property
    def label(self) -> str:
        if not self.present:
            return "missing"
        if self.verified is None:
            return "present"
        return "present, sha256 OK" if self.verified else "present, sha256 MISMATCH"


def file_status(name: str, check_sha256: bool = False) -> FileStatus:
    """The file status of registry dataset ``name`` (``check_sha256`` hashes the file)."""
    from aloop.datasets import DatasetError, dataset_path, get_spec, verify

    spec = get_spec(name)
    try:
        path = dataset_path(spec)
    except DatasetError as exc:  # embedded dataset whose package is not installed
        return FileStatus(None, False, None, str(exc))
    if not path.is_file():
        return FileStatus(path, False, None, f"not found at {path}")
    if not check_sha256:
        return FileStatus(path, True, None)
    try:
        verify(spec)
    except DatasetError as exc:
        return FileStatus(path, True, False, str(exc))
    return FileStatus(path, True, True)


def _targets(targets: dict[str, str], limit: int | None = None) -> str:
    items = [f"{col} ({units})" for col, units in targets.items()]
    if limit is not None and len(items) > limit:
        items = [*items[:limit], f"+{len(items) - limit} more"]
    return ", ".join(items)


def _data_dir_line() -> str:
    from aloop.datasets import data_dir
    from aloop.datasets.load import ENV_VAR

    how = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else f"default; set ${ENV_VAR} to change"
    return f"data directory: {data_dir()} ({how})"


@app.command("list")
def list_command(
    group: Annotated[str | None, typer.Option(
        "--group", "-g", help="Only this group: source, jarvis, experimental, campaigns, embedded.")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Also check the sha256 of every present file (slower).")] = False,
) -> None:
    """List the registered datasets: name, group, rows, targets with units, file present or missing."""
    from aloop.datasets import list_specs

    try:
        specs = list_specs(group)
    except ValueError as exc:
        fail(str(exc))
    table = Table(title=f"{len(specs)} datasets", caption=escape(_data_dir_line()))
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("group")
    table.add_column("rows", justify="right")
    table.add_column("targets (units)")
    table.add_column("file")
    n_present = 0
    for spec in specs:
        status = file_status(spec.name, check_sha256=verify)
        n_present += status.present
        style = "green" if status.present and status.verified is not False else "red"
        label = status.label + (" (embedded)" if spec.embedded else "")
        targets = escape(_targets(spec.targets, limit=3))
        table.add_row(spec.name, spec.group, f"{spec.rows:,}", targets, f"[{style}]{label}[/]")
    out.print(table)
    out.print(f"{n_present} of {len(specs)} present. `aloop datasets show NAME` gives origin, citation and license.")


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Registry name, as in `aloop datasets list`.")],
) -> None:
    """Show every registry field of one dataset and whether its file is present and verified."""
    from aloop.datasets import get_spec

    try:
        spec = get_spec(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    status = file_status(name, check_sha256=True)
    if spec.fraction_columns:
        formula = f"built from the fraction columns {', '.join(spec.fraction_columns)}"
    else:
        formula = str(spec.formula_column)
    rows: list[tuple[str, str]] = [
        ("name", spec.name),
        ("group", spec.group),
        ("description", spec.description),
        ("rows", f"{spec.rows:,}"),
        ("formula column", formula),
        ("targets", _targets(spec.targets)),
        ("better", ", ".join(f"{'lower' if way == 'minimize' else 'higher'} {col} ({way})"
                             for col, way in spec.directions.items()) or "not recorded (benchmarks need --direction)"),
        ("split", f"published, column {spec.split_column!r}" if spec.split_column else "none published"),
        ("citation", spec.citation),
        ("origin", spec.origin_url),
        ("license", spec.license),
        ("sha256", spec.sha256),
        ("file", spec.path + (f" (inside the installed {spec.embedded!r} package)" if spec.embedded else "")),
        ("path", str(status.path) if status.path else "-"),
        ("status", status.label),
    ]
    if spec.valid_range:
        rows.append(("valid range", f"rows of the first target outside {spec.valid_range} are dropped on load"))
    if spec.notes:
        rows.append(("notes", spec.notes))
    if status.problem:
        rows.append(("problem", status.problem))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.print(f"[bold]{key:<{width}}[/]  {escape(value)}", soft_wrap=True)
    if not status.present and not spec.embedded:
        out.print(f"\n{_data_dir_line()}", soft_wrap=True)

