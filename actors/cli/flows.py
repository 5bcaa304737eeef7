"""``ca-actors flows``: the flows a running stack serves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from actors.cli import console
from actors.cli.options import DataDir, NatsUrl, command_group
from actors.flow import PlanStore
from bus import Bus, topology

flows_app = command_group("The flows a running stack serves: name, plan version, nodes, source file.")


async def served_flows(bus: Bus) -> list[dict[str, Any]]:
    """One row per served flow (its latest plan)."""
    plans = PlanStore(bus.kv(topology.PLANS))
    rows: list[dict[str, Any]] = []
    for flow in await plans.flows():
        plan = await plans.latest(flow)
        if plan is not None:
            rows.append({"flow": flow, "version": plan.version, "nodes": len(plan.nodes), "file": plan.file})
    return rows


@flows_app.callback(invoke_without_command=True)
def flows(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """List the flows the running stack serves."""
    if ctx.invoked_subcommand is not None:
        return
    url = console.stack_url(nats, data_dir)
    rows = asyncio.run(console.with_client(url, served_flows))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no flows served")
    width = max((len(r["flow"]) for r in rows), default=4)
    for row in rows:
        typer.echo(f"{row['flow']:{width}}  {row['version']}  {row['nodes']:>2} nodes  {row['file']}")


def register(app: typer.Typer) -> None:
    app.add_typer(flows_app, name="flows")
