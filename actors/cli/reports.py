"""``ca-actors report``: LLM costs and run latency profiles from the stored run history (docs/reports.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from actors.cli.options import DataDir, StoreUrl, command_group
from actors.insights import plots, profiles, reports
from configs import Settings
from store import RunHistory, open_store

report_app = command_group(
    (
        "Reports over the stored run history: what runs cost, and where their time goes.\n\n"
        "Examples: `ca-actors report costs --by model --since 7d`, `ca-actors report profile RUN_ID`, "
        "`ca-actors report profile --flow article_writer --last 50 --plot latency.png`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FlowOpt = Annotated[str | None, typer.Option("--flow", help="Only runs of this flow.")]
PlotFile = Annotated[
    Path | None,
    typer.Option("--plot", help="Also draw a chart to this .png or .svg file (needs matplotlib: the `plot` extra)."),
]


def register(app: typer.Typer) -> None:
    """Add the ``report`` command group to the main CLI."""
    app.add_typer(report_app, name="report")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _store_url(store: str | None, data_dir: Path) -> str:
    url = Settings.from_env(data_dir=data_dir, store_url=store).store()
    path = url.partition("?")[0].removeprefix("sqlite:///")
    # Opening a missing SQLite file would create an empty store and report nothing: say where we looked.
    if url.startswith("sqlite:///") and path != ":memory:" and not Path(path).exists():
        raise _fail(f"no run history at {path}: run a flow first, or pass --store URL / --data-dir DIR")
    return url


async def _list_runs(url: str, flow: str | None, limit: int, since: float | None = None) -> list[RunHistory]:
    async with open_store(url) as st:
        return await st.list_runs(flow=flow, limit=limit, since=since)


async def _get_run(url: str, run_id: str) -> RunHistory | None:
    async with open_store(url) as st:
        return await st.get_run(run_id)


def _plot(path: Path | None, draw: Callable[[Path], Path]) -> None:
    if path is None:
        return
    try:
        written = draw(path)
    except (ValueError, plots.PlotUnavailableError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"plot written to {written}", err=True)


@report_app.command("costs")
def costs(
    flow: FlowOpt = None,
    by: Annotated[str, typer.Option("--by", help="Group by node, model, flow or day (UTC).")] = "node",
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs created within this long: 30m, 12h, 7d, 2w.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (no total row).")] = False,
    plot: PlotFile = None,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    limit: Annotated[int, typer.Option("--limit", min=1, help="Read at most this many newest runs.")] = 1000,
) -> None:
    """LLM calls, tokens and cost, grouped by node, model, flow or day; most expensive first.

    Examples:

      ca-actors report costs --since 7d

      ca-actors report costs --by model --flow article_writer --csv > costs.csv

      ca-actors report costs --by day --since 2w --plot costs.png
    """
    if by not in reports.GROUPS:
        raise typer.BadParameter(f"expected one of {', '.join(reports.GROUPS)}, got {by!r}", param_hint="--by")
    if as_json and as_csv:
        raise typer.BadParameter("give --json or --csv, not both")
    cutoff = None
    if since is not None:
        try:
            cutoff = time.time() - reports.parse_since(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from None
    group: reports.GroupBy = by  # type: ignore[assignment]  # checked against GROUPS above
    runs = asyncio.run(_list_runs(_store_url(store, data_dir), flow, limit, cutoff))
    if len(runs) >= limit:
        typer.echo(f"note: only the newest {limit} runs were read; raise --limit to count older ones", err=True)
    report = reports.cost_report(runs, by=group, since=cutoff)
    if as_json:
        typer.echo(reports.costs_json(report))
    elif as_csv:
        typer.echo(reports.costs_csv(report), nl=False)
    else:
        typer.echo(reports.costs_text(report))
    daily = reports.daily_costs(runs, by=group, since=cutoff)
    _plot(plot, lambda path: plots.plot_costs(daily, path))


@report_app.command("profile")
def profile(
    run_id: Annotated[
        str | None, typer.Argument(metavar="RUN_ID", help="The run to profile (see `ca-actors runs`).")
    ] = None,
    flow: Annotated[
        str | None, typer.Option("--flow", help="Profile the newest runs of this flow instead of one run.")
    ] = None,
    last: Annotated[int, typer.Option("--last", min=1, help="With --flow: how many newest finished runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    plot: PlotFile = None,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Where a run's time went: queue, execution, LLM and tool time per step and node, the critical
    path and the bottleneck node. With --flow: p50/p95 per node over the flow's newest runs.

    Examples:

      ca-actors report profile 3f2c9a1e

      ca-actors report profile --flow article_writer --last 50

      ca-actors report profile 3f2c9a1e --plot run.svg
    """
    if run_id is None and flow is None:
        raise typer.BadParameter("give a RUN_ID, or --flow FLOW to profile a flow's newest runs")
    url = _store_url(store, data_dir)
    if run_id is not None:
        _profile_run(url, run_id, flow, as_json=as_json, plot=plot)
    elif flow is not None:
        _profile_flow(url, flow, last, as_json=as_json, plot=plot)


def _profile_run(url: str, run_id: str, flow: str | None, *, as_json: bool, plot: Path | None) -> None:
    run = asyncio.run(_get_run(url, run_id))
    if run is None:
        raise _fail(f"no run {run_id!r} in the run history ({url})")
    if flow is not None and run.flow != flow:
        raise _fail(f"run {run_id} is a run of {run.flow!r}, not of {flow!r}")
    one = profiles.profile_run(run)
    typer.echo(profiles.profile_json(one) if as_json else profiles.profile_text(one))
    _plot(plot, lambda path: plots.plot_profile(one, path))


def _profile_flow(url: str, flow: str, last: int, *, as_json: bool, plot: Path | None) -> None:
    # Runs still going have partial timings: read a few more so that `last` finished ones remain.
    recent = asyncio.run(_list_runs(url, flow, last * 2 + 10))
    finished = [r for r in recent if r.status != "running"][:last]
    if not finished:
        raise _fail(f"no finished runs of flow {flow!r} in the run history")
    many = profiles.profile_flow(flow, finished)
    typer.echo(profiles.profile_json(many) if as_json else profiles.flow_profile_text(many))
    _plot(plot, lambda path: plots.plot_flow_profile(many, path))
