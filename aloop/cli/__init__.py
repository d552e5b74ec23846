"""The `aloop` command line: a thin layer over the Python API (datasets, featurize, pretrain, campaigns, benchmark)."""

from __future__ import annotations

from typing import Annotated

import typer

from aloop import __version__
from aloop.cli import benchmark, campaign, datasets, elemnet, featurize, transfer
from aloop.cli._output import unwrap_when_piped

app = typer.Typer(
    name="aloop",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(datasets.app, name="datasets")
app.command("featurize")(featurize.featurize_command)
app.command("pretrain")(elemnet.pretrain_command)
app.command("export-source")(elemnet.export_source_command)
app.command("sources")(transfer.sources_command)
app.command("transfer")(transfer.transfer_command)
app.command("benchmark")(benchmark.benchmark_command)
campaign.register(app)  # init, propose, record, fail, retry, reject, cancel, status, report, export


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Active-learning synthesis planning for materials found by composition.

    Set ALOOP_DATA_DIR to the folder that holds the registry's data files
    (default: ~/.cache/aloop/data). The embedded dataset mp-transport needs none.
    """
    unwrap_when_piped()


def main() -> None:
    """Entry point of the ``aloop`` console script."""
    app()


__all__ = ["app", "main"]
