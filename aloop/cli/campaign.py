"""`aloop propose | record | fail | reject | cancel | retract | status | report | export | migrate`.

The campaign loop from the shell.

Each command is a thin wrapper over :class:`aloop.campaigns.loop.Campaign`. The campaign
is the single ``*.toml`` of the current folder unless ``--campaign PATH`` names one.
User errors (bad files, unknown ids, invalid definitions) print one ``error:`` line — plus
one line per bad row for results files — and exit with code 2; the log is left unchanged.
"""

from __future__ import annotations

import getpass
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from aloop.atomic import name_new_file
from aloop.cli._output import campaign_errors, err, fail, out, reserve_new_file, warn
from aloop.cli.campaign_init import init_command

CampaignOpt = Annotated[
    Path | None,
    typer.Option("--campaign", "-c", help="Campaign definition (.toml) or its folder; default: the single *.toml here."),
]


@contextmanager
def _opened(path: Path | None) -> Iterator[Any]:
    try:  # loading the campaign code (torch, BoTorch, scikit-learn: seconds) and opening the log write nothing
        campaign = _open(path)
    except KeyboardInterrupt:
        err.print("interrupted while opening the campaign: nothing was changed", markup=False)
        raise typer.Exit(130) from None
    with campaign_errors():
        try:
            yield campaign
        finally:
            campaign.close()


def _open(path: Path | None) -> Any:
    """The campaign of the definition at (or found from) ``path``, opened; its errors as clean one-line failures."""
    from aloop.campaigns.log import NoCampaignLogError, OutdatedSchemaError
    from aloop.campaigns.loop import Campaign, find_definition

    with campaign_errors():
        definition = find_definition(path)
        try:
            return Campaign.open(definition)
        except NoCampaignLogError as exc:
            fail(f"no campaign log at {exc.where} (the log of {definition}): if it was moved, set "
                 f"database_url in {definition.name} to its new place; to start a campaign from this definition, "
                 f"run `aloop init --from {definition}`")
        except OutdatedSchemaError as exc:
            fail(f"the log of {definition} has campaign-log schema v{exc.found}; this aloop uses v{exc.expected}: "
                 f"back it up, then run `aloop migrate -c {definition}`")


def _fmt(v: float, digits: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _place_sheet(sheet: Any, tmp: Path, output: Path) -> None:
    """Write ``sheet`` (a DataFrame) to ``tmp``, then name it ``output`` in one step that never replaces a file."""
    ids = " ".join(map(str, sheet["proposal_id"]))
    try:
        # With a BOM, Excel reads the sheet as UTF-8 (units such as μW stay readable); `record` accepts both.
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            sheet.to_csv(fh, index=False)
            fh.flush()
            os.fsync(fh.fileno())
        name_new_file(tmp, output)
    except OSError as exc:
        what = "it appeared meanwhile" if isinstance(exc, FileExistsError) else (exc.strerror or str(exc))
        fail(f"results sheet {output} not written ({what}); proposals {ids} are logged as pending: write a sheet "
             f"for them by hand, or withdraw them with `aloop cancel {ids}`")


def propose_command(
    n: Annotated[int | None, typer.Option("-n", "--n", help="How many compositions (default: batch_size).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write a results sheet (CSV) to fill in (a new file).")] = None,
    campaign_path: CampaignOpt = None,
) -> None:
    """Propose the next compositions to make (retrains when results arrived) and log them as pending.

    Near the end of a campaign, proposes the candidates that are left (with a warning) when fewer
    than asked for remain; with none left, says so and exits with code 0 without writing a sheet.
    An -n above both the batch size and the candidates left is refused (a typo would log them all).
    """
    from aloop.campaigns.pool import NothingToProposeError

    tmp = reserve_new_file(output, "-o", "sheet.csv") if output is not None else None
    try:
        with _opened(campaign_path) as campaign:
            last = max((e.id for e in campaign.log.events()), default=0)
            try:
                table = campaign.propose(n, allow_fewer=n is None or n <= campaign.config.batch_size)
            except NothingToProposeError as exc:
                out.print(f"{exc} — no proposals made{', no sheet written' if output else ''}", markup=False)
                return
            except KeyboardInterrupt:
                new = campaign.log.proposals()
                _interrupted(new[new["proposal_id"] > last]["proposal_id"].tolist(), None)
            labels = campaign.space.labels
            cfg = campaign.config
        if output is not None and tmp is not None:
            sheet = _results_sheet(table, labels, cfg)
            try:
                _place_sheet(sheet, tmp, output)
            except KeyboardInterrupt:
                _interrupted(table["proposal_id"].tolist(), output if output.exists() else None)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    out.print(_proposal_table(table, labels, cfg))
    if len(table) < table.attrs["requested"]:
        warn(f"only {len(table)} candidate(s) left to propose: proposed {len(table)} instead of {table.attrs['requested']}")
    if table.attrs["retrained"]:
        out.print(f"retrained: model {table.attrs['model_version']} on {table.attrs['training_size']} observations",
                  markup=False)
    if output is not None:
        out.print(f"results sheet for the lab: {output} (fill in the values, then `aloop record {output}`)", markup=False)


def _results_sheet(table: Any, labels: tuple[str, ...], cfg: Any) -> Any:
    """The lab's form: an empty column per objective to fill in, then the model's predictions as a reference
    (``predicted …`` columns and ``P(success)``, which ``record`` reads past)."""
    from aloop.campaigns.matching import P_SUCCESS_COLUMN, PREDICTED_PREFIX

    sheet = table[["proposal_id", "formula"]].copy()
    for o in cfg.objectives:
        sheet[f"{o.name} [{o.units}]" if o.units else o.name] = ""
    for lab, o in zip(labels, cfg.objectives, strict=True):
        if table[f"mean_{lab}"].notna().any():
            unit = f" [{o.units}]" if o.units and lab == o.name else ""
            sheet[f"{PREDICTED_PREFIX}{lab}{unit}"] = table[f"mean_{lab}"].map(lambda x: float(f"{x:.4g}"))
            sheet[f"{PREDICTED_PREFIX}sd {lab}{unit}"] = table[f"std_{lab}"].map(lambda x: float(f"{x:.3g}"))
    if table["p_success"].notna().any():
        sheet[P_SUCCESS_COLUMN] = table["p_success"].round(3)
    return sheet


def _interrupted(ids: list[int], sheet: Path | None) -> NoReturn:
    """Ctrl-C during `propose`: say whether a batch was logged (and how to undo it), then exit with 130."""
    listed = " ".join(map(str, ids))
    err.print("interrupted: nothing was proposed" if not ids else
              f"interrupted: proposals {listed} were logged as pending"
              + (f" and written to {sheet}" if sheet is not None else " (no results sheet was written)")
              + f"; to withdraw them: `aloop cancel {listed}`", markup=False)
    raise typer.Exit(130)


def _proposal_table(table: Any, labels: tuple[str, ...], cfg: Any) -> Any:
    """The rich table of a batch; every text is escaped, so units such as ``[eV]`` show as written."""
    from rich.markup import escape
    from rich.table import Table

    rich_table = Table(title=escape(f"{cfg.name}: batch {int(table['batch_id'].iloc[0])} — {table.attrs['mode']}"))
    rich_table.add_column("id", justify="right", no_wrap=True)
    rich_table.add_column("formula", no_wrap=True, min_width=7)  # the composition to make is never cut or wrapped
    for lab, o in zip(labels, cfg.objectives, strict=True):
        unit = f" [{o.units}]" if o.units and lab == o.name else ""
        rich_table.add_column(escape(f"{lab}{unit} mean ± std"), justify="right")
    rich_table.add_column("acq. value", justify="right")
    feasible = bool(table["p_success"].notna().any())
    if feasible:
        rich_table.add_column("P(success)", justify="right")
    rich_table.add_column("reason", ratio=1, overflow="fold")  # the column that gives way on a narrow terminal
    for r in table.to_dict("records"):
        preds = [f"{_fmt(r[f'mean_{lab}'])} ± {_fmt(r[f'std_{lab}'], 2)}" if _fmt(r[f"mean_{lab}"]) else "—"
                 for lab in labels]
        chance = [f"{r['p_success']:.0%}" if r["p_success"] == r["p_success"] else "—"] if feasible else []
        rich_table.add_row(str(r["proposal_id"]), escape(r["formula"]), *preds,
                           _fmt(r["acquisition_value"], 4) or "—", *chance, escape(str(r["reason"])))
    return rich_table


def record_command(
    results: Annotated[Path, typer.Argument(help="Results CSV: proposal_id and/or formula, `<objective> [<units>]` columns.")],
    campaign_path: CampaignOpt = None,
) -> None:
    """Record measured results — every row or none; bad rows are listed with their reasons."""
    with _opened(campaign_path) as campaign:
        last = max((e.id for e in campaign.log.events()), default=0)
        try:
            result = campaign.record(results)
        except KeyboardInterrupt:
            # The file is recorded in one transaction: all of it or none, and the log says which.
            saved = [e.id for e in campaign.log.events(("measured",)) if e.id > last]
            err.print(f"interrupted: {len(saved)} measurement(s) from {results} were recorded (ids "
                      f"{' '.join(map(str, saved))}); recording the file again skips them" if saved else
                      f"interrupted: nothing from {results} was recorded", markup=False)
            raise typer.Exit(130) from None
        unsolicited = []
        if result.unsolicited:
            obs = campaign.log.observations()
            unsolicited = obs[obs["event_id"].isin(result.event_ids) & obs["unsolicited"]]["formula"].tolist()
    out.print(f"recorded {result.new} new measurement(s) from {results}"
              + (f"; {result.duplicates} already recorded (skipped)" if result.duplicates else ""), markup=False)
    if result.new:  # the ids `aloop retract` takes
        pairs = [f"line {r}: {i}" for r, i in zip(result.rows, result.event_ids, strict=True)]
        out.print("measurement ids: " + ", ".join(pairs[:50]) + (" …" if len(pairs) > 50 else ""), markup=False)
    if unsolicited:
        more = f" … and {len(unsolicited) - 20:,} more" if len(unsolicited) > 20 else ""
        warn(f"{len(unsolicited):,} measurement(s) of compositions never proposed were recorded and flagged "
             f"unsolicited: {', '.join(unsolicited[:20])}{more}")


def _close(kind: str, ids: list[int], reason: str, campaign_path: Path | None) -> None:
    with _opened(campaign_path) as campaign:
        getattr(campaign, {"failed": "fail", "rejected": "reject", "cancelled": "cancel"}[kind])(ids, reason)
    out.print(f"marked {kind}: proposal(s) {', '.join(map(str, ids))}", markup=False)


def fail_command(
    ids: Annotated[list[int], typer.Argument(help="Proposal id(s).", metavar="ID...")],
    reason: Annotated[str, typer.Option(help="Why the synthesis failed (the composition is learnt as hard to make; for an instrument fault, "
                                       "`aloop cancel` instead).")],
    campaign_path: CampaignOpt = None,
) -> None:
    """Mark pending proposals as failed (they teach the feasibility model)."""
    _close("failed", ids, reason, campaign_path)


def retry_command(
    ids: Annotated[list[int], typer.Argument(help="Failed proposal id(s).", metavar="ID...")],
    reason: Annotated[str, typer.Option(help="Optional note (what is different this time).")] = "",
    campaign_path: CampaignOpt = None,
) -> None:
    """Try failed proposals again: a new pending proposal each takes the result; the failures stay."""
    with _opened(campaign_path) as campaign:
        new = campaign.retry(ids, reason)
        rows = campaign.log.proposals().set_index("proposal_id").loc[new].reset_index().to_dict("records")
        units = {o.name: f" {o.units}" if o.units else "" for o in campaign.config.objectives}
        labels = campaign.space.labels
    for old_id, r in zip(ids, rows, strict=True):
        said = [f"{lab} {_fmt(r.get(f'mean_{lab}'))} ± {_fmt(r.get(f'std_{lab}'), 2)}{units.get(lab, '')}"
                for lab in labels if _fmt(r.get(f"mean_{lab}"))]
        if _fmt(r.get("p_success")):
            said.append(f"P(success) {r['p_success']:.0%}")
        out.print(f"proposal {r['proposal_id']} ({r['formula']}) retries failed proposal {old_id}"
                  + (f"; predicted {', '.join(said)}" if said else ""), markup=False)
    out.print("record the result against the new id (or by formula)", markup=False)


def reject_command(
    ids: Annotated[list[int], typer.Argument(help="Proposal id(s).", metavar="ID...")],
    reason: Annotated[str, typer.Option(help="Why the composition is vetoed (toxic, no precursor, cost…).")],
    campaign_path: CampaignOpt = None,
) -> None:
    """Veto pending proposals: their compositions are never proposed again."""
    _close("rejected", ids, reason, campaign_path)


def cancel_command(
    ids: Annotated[list[int] | None, typer.Argument(help="Proposal id(s).", metavar="[ID...]", show_default=False)] = None,
    batch: Annotated[int | None, typer.Option(help="Cancel every pending proposal of this batch instead.",
                                              show_default=False)] = None,
    reason: Annotated[str, typer.Option(help="Optional note.")] = "",
    campaign_path: CampaignOpt = None,
) -> None:
    """Withdraw pending proposals (not made); they may be proposed again."""
    if (ids is None) == (batch is None):
        fail("give the proposal ids to cancel, or --batch ID for every pending proposal of a batch (not both)")
    from aloop.campaigns.pool import CampaignError

    if batch is not None:
        with _opened(campaign_path) as campaign:
            try:
                ids = campaign.pending_of_batch(batch)
            except CampaignError as exc:
                fail(f"--{exc}")  # "--batch N: …"
    _close("cancelled", ids, reason, campaign_path)


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (e.g. a container without a user entry)
        return None


def retract_command(
    ids: Annotated[list[int], typer.Argument(help="Measurement id(s), or proposal id(s) with exactly one measurement "
                                             "or marked failed, rejected or cancelled by mistake.", metavar="ID...")],
    reason: Annotated[str, typer.Option(help="Why the recorded value or outcome is wrong (kept in the log).")],
    operator: Annotated[str | None, typer.Option(help="Who retracts it (default: your login name).")] = None,
    campaign_path: CampaignOpt = None,
) -> None:
    """Retract wrongly recorded values or fail/reject/cancel marks: they leave the model's data; the log keeps them."""
    with _opened(campaign_path) as campaign:
        event_ids = campaign.retract(ids, reason, operator if operator is not None else _login())
        gone = campaign.log.retractions()
        gone = gone[gone["event_id"].isin(event_ids)]
        status = campaign.log.proposals().set_index("proposal_id")["status"]
        names = [o.name for o in campaign.config.objectives]
    for r in gone.to_dict("records"):
        if r["kind"] != "measured":
            out.print(f"retracted: proposal {r['proposal_id']} ({r['formula']}) is no longer {r['kind']}", markup=False)
            continue
        values = ", ".join(f"{n} = {r[n]:g}" for n in names if n in r)
        out.print(f"retracted measurement {r['measurement_id']} ({r['formula']}: {values})", markup=False)
    again = [int(p) for p in gone["proposal_id"].dropna().unique() if status.get(int(p)) == "pending"]
    if again:
        listed = " ".join(map(str, again))
        out.print(f"pending again: proposal(s) {listed} — record the result with "
                  f"`aloop record`, or `aloop fail {listed} --reason …` / `aloop cancel {listed}`", markup=False)


def migrate_command(campaign_path: CampaignOpt = None) -> None:
    """Upgrade the campaign's log database to this aloop's schema (back the file up first)."""
    from aloop.campaigns import load_config, migrate
    from aloop.campaigns.loop import find_definition

    with campaign_errors():
        config = load_config(find_definition(campaign_path))
        old, new = migrate(config.database_url)
    where = f"the log of {config.path}"
    out.print(f"upgraded {where} from schema v{old} to v{new}" if new != old else f"{where} is at schema v{new} already",
              markup=False)


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    cv: Annotated[bool, typer.Option(help="Cross-validate the model (k-fold MAE, 95% coverage).")] = True,
    campaign_path: CampaignOpt = None,
) -> None:
    """Where the campaign stands: counts, best so far, pending proposals, model quality."""
    from rich.markup import escape

    from aloop.campaigns.report import _summary_lines

    with _opened(campaign_path) as campaign:
        status = campaign.status(cv=cv)
    if as_json:
        out.print_json(json.dumps(status, default=str))
        return
    out.print(f"[bold]{escape(status['campaign'])}[/] ({escape(status['definition'])})")
    for line in _summary_lines(status):
        out.print(f"  {line}", markup=False)
    if status["pending"]:
        out.print("  pending: " + ", ".join(f"{p['proposal_id']} {p['formula']}" for p in status["pending"]), markup=False)


def report_command(
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Folder for report.html, report.md and PNGs.")] = Path("report"),
    campaign_path: CampaignOpt = None,
) -> None:
    """Write the campaign report: best so far, parity and calibration (CV), ternary diagram."""
    with _opened(campaign_path) as campaign:
        paths = campaign.report(out_dir)
    out.print(f"wrote {paths['html']} and {paths['markdown']}", markup=False)


def export_command(
    output: Annotated[Path, typer.Argument(help="OUT.csv or OUT.parquet (a new file; an existing one is never replaced).")],
    table: Annotated[str, typer.Option(help="events (every event) or observations.")] = "events",
    campaign_path: CampaignOpt = None,
) -> None:
    """Export every event (or every observation) as CSV or Parquet."""
    with _opened(campaign_path) as campaign:
        campaign.export(output, table=table)
    out.print(f"wrote {output} ({table})", markup=False)


def register(app: typer.Typer) -> None:
    """Add the campaign commands to the ``aloop`` app."""
    app.command("init")(init_command)
    app.command("propose")(propose_command)
    app.command("record")(record_command)
    app.command("fail")(fail_command)
    app.command("retry")(retry_command)
    app.command("reject")(reject_command)
    app.command("cancel")(cancel_command)
    app.command("retract")(retract_command)
    app.command("status")(status_command)
    app.command("report")(report_command)
    app.command("export")(export_command)
    app.command("migrate")(migrate_command)
