"""``ca-actors health``: is an actor of this host serving? The container health check of every actor image.

It pings the actors (``ca.registry.ping``, the round trip the registry itself uses) and succeeds when
one whose host is this machine's (a container's or a pod's hostname) answers: that proves the
actor's event loop runs and its NATS connection works. A draining actor still counts as healthy
(it is finishing its work); one that does not answer within the wait does not.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Annotated

import typer

from actors.runtime import roster
from actors.runtime.presence import ActorInfo
from bus import Bus, BusError, Role, credentials_for
from configs import Settings


async def local_actors(url: str, *, host: str, kind: str | None, wait_s: float) -> list[ActorInfo]:
    """The actors on `host` (of `kind`, when given) that answer a ping within `wait_s`."""
    # No topology set-up: a probe every few seconds from every container must not load the JetStream API.
    # It logs in as the cli user (the stack's generated users, or the CA_NATS_* login given).
    login = credentials_for(Settings.from_env(nats_url=url), Role.CLI)
    async with Bus(url, name=f"health-{host}", credentials=login, role=Role.CLI, topology=False) as bus:
        answers = await roster.ping(bus, wait_s=wait_s)
    return [a for a in answers if a.host == host and (kind is None or a.kind == kind)]


def health(
    nats: Annotated[str, typer.Option("--nats", envvar="CA_NATS_URL", help="The NATS server(s) of the stack.")],
    kind: Annotated[
        str | None, typer.Option("--kind", envvar="CA_ROLE", help="Only an actor of this kind (worker, scheduler...).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="The host whose actors count (default: this one's hostname).")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", min=0.1, help="Seconds to wait for answers.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answering actors as JSON.")] = False,
) -> None:
    """Exit 0 if an actor on this host answers a registry ping (the health check of the images), else 1."""
    me = host or socket.gethostname()
    try:
        found = asyncio.run(local_actors(nats, host=me, kind=kind, wait_s=wait))
    except BusError as exc:
        typer.echo(f"unhealthy: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps([a.model_dump() for a in found], indent=2))
    for actor in found:
        if not as_json:
            state = "draining" if actor.draining else "serving"
            typer.echo(f"healthy: {actor.kind} {actor.id} {state}, load {actor.load.in_flight}/{actor.load.max}")
    if not found:
        what = f"no {kind} actor" if kind else "no actor"
        typer.echo(f"unhealthy: {what} on host {me} answered a ping within {wait:g}s", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(health)
