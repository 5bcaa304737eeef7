"""``ca-actors nats-env``: shell exports that let the `nats` tool (or any client) log in to the running stack."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from actors.cli.options import DataDir
from actors.launch import stackfile
from bus import AuthFile, Role

FACES = (Role.CLI, Role.DASHBOARD, Role.GATEWAY_INGRESS, Role.ADMIN)


def exports(data_dir: Path, role: Role) -> str:
    """``export NATS_URL=... NATS_USER=... NATS_PASSWORD=...`` for the stack running from `data_dir`.

    Raises:
        typer.Exit: no stack runs from there, or its server is not the embedded one.
    """
    record = stackfile.read(data_dir) or {}
    auth = AuthFile.load(data_dir)
    url = record.get("nats_url")
    if not isinstance(url, str) or not record.get("embedded") or auth is None:
        typer.echo(
            f"no stack with an embedded NATS server runs from {data_dir}: start one with `ca-actors up` "
            "(for an external server, use the credentials its operator gave you)",
            err=True,
        )
        raise typer.Exit(2)
    login = auth.credentials(role)
    password = login.password.get_secret_value() if login.password else ""
    values = {"NATS_URL": url, "NATS_USER": login.user or "", "NATS_PASSWORD": password}
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def register(app: typer.Typer) -> None:
    @app.command("nats-env")
    def nats_env(
        role: Annotated[
            str, typer.Option("--role", help=f"Log in as: {', '.join(r.value for r in FACES)} (default cli).")
        ] = Role.CLI.value,
        data_dir: DataDir = Path(".ca-actors"),
    ) -> None:
        """Print the exports for the `nats` tool to reach the running stack: eval "$(ca-actors nats-env)".

        The password is printed on purpose (for eval): do not paste the output anywhere.
        """
        if role not in {r.value for r in FACES}:
            raise typer.BadParameter(f"{role!r}: choose one of {', '.join(r.value for r in FACES)}")
        typer.echo(exports(data_dir, Role(role)))
