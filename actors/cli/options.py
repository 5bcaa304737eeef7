"""Command-line options and input parsing shared by the ``ca-actors`` commands (`app`, `reports`, `evals`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from configs.urls import has_password, mask_url

# Help is plain text: Rich markup would eat brackets such as ``[mlflow]`` (the name of an extra).
HELP_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def command_group(help: str, **options: Any) -> typer.Typer:
    """A ``ca-actors`` command group: ``-h`` beside ``--help``, help text shown as written."""
    return typer.Typer(help=help, rich_markup_mode=None, context_settings=HELP_SETTINGS, **options)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of sentences.")]
Inputs = Annotated[list[str] | None, typer.Option("--input", "-i", help="An input as key=value (repeatable).")]
InputJson = Annotated[str | None, typer.Option("--input-json", help="All inputs as one JSON object.")]
NatsUrl = Annotated[
    str | None,
    typer.Option("--nats", envvar="CA_NATS_URL", help="NATS server URL (default: the running `up` stack's)."),
]
DataDir = Annotated[
    Path,
    typer.Option("--data-dir", help="The stack's data directory: NATS data, stack.json, store.db, mlflow.db."),
]
LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]
StoreUrl = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CA_STORE_URL",
        help="Run history and memory: sqlite:///file.db (default: <data-dir>/store.db), "
        "postgresql://user@host/db?schema=s, redis://host:6379/0?prefix=p.",
    ),
]
LogFmt = Annotated[str, typer.Option("--log-format", help="auto (console on a terminal), console or json.")]
MlflowUri = Annotated[
    str | None,
    typer.Option(
        "--mlflow-uri",
        envvar="CA_MLFLOW_TRACKING_URI",
        help="MLflow tracking store of traces (default: sqlite:///<data-dir>/mlflow.db).",
    ),
]


NatsCreds = Annotated[
    Path | None,
    typer.Option(
        "--nats-creds",
        envvar="CA_NATS_CREDS",
        help="NATS .creds file (JWT + nkey seed). User/password or a token: CA_NATS_USER / CA_NATS_PASSWORD, "
        "CA_NATS_TOKEN (never on the command line).",
    ),
]
NatsNkey = Annotated[Path | None, typer.Option("--nats-nkey", envvar="CA_NATS_NKEY", help="NATS nkey seed file.")]
NatsTlsCa = Annotated[
    Path | None,
    typer.Option(
        "--nats-tls-ca", envvar="CA_NATS_TLS_CA", help="CA (PEM) that signed the NATS server's TLS certificate."
    ),
]


def refuse_password_in(url: str | None, option: str, envvar: str | None = None) -> None:
    """Stop when a URL given on the command line carries a password: every user of the machine sees a
    command line (`ps`). From the environment (`envvar`) it is taken: the secret is split out of it.

    Raises:
        typer.BadParameter: it does.
    """
    if url is None or not has_password(url) or (envvar is not None and os.environ.get(envvar) == url):
        return
    raise typer.BadParameter(
        f"{mask_url(url)}: no passwords in URLs on the command line (every user sees them in `ps`); "
        "for NATS use CA_NATS_USER / CA_NATS_PASSWORD, CA_NATS_TOKEN or --nats-creds FILE; "
        "for a store put the URL in CA_STORE_URL",
        param_hint=option,
    )


def parse_inputs(pairs: list[str] | None, raw_json: str | None) -> dict[str, Any]:
    """``-i key=value`` pairs (values starting with ``[`` or ``{`` are JSON) merged over ``--input-json``."""
    inputs: dict[str, Any] = {}
    if raw_json:
        try:
            loaded = json.loads(raw_json)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--input-json is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--input-json must be a JSON object")
        inputs.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        if value[:1] in "[{":
            try:
                inputs[key] = json.loads(value)
                continue
            except json.JSONDecodeError as exc:
                raise typer.BadParameter(f"{key}: value looks like JSON but is not: {exc}") from exc
        inputs[key] = value
    return inputs


AllowUnsandboxed = Annotated[
    bool,
    typer.Option(
        "--allow-unsandboxed",
        help="Let code nodes with sandbox.enabled: false run their Python without any sandbox (trusted flows only).",
    ),
]
SandboxImage = Annotated[
    str | None,
    typer.Option("--sandbox-image", help="Container image of sandbox mode: docker nodes (ca-actors installed in it)."),
]
