"""Runtime settings: read once (CLI flags, then CA_* environment variables) and passed in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from configs.urls import split_credentials


class Settings(BaseModel):
    """Everything an actor process needs to know about its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nats_url: str = "nats://127.0.0.1:4222"
    # How to log in to NATS (never from a command line: CA_NATS_* variables, or files). The embedded
    # server's own users are in `nats_auth_file` (``<data_dir>/nats-auth.json``, one password per role).
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds: Path | None = None
    nats_nkey: Path | None = None
    nats_tls_ca: Path | None = None
    nats_auth_file: Path | None = None
    data_dir: Path = Path(".ca-actors")
    # How long JetStream waits for an ack before redelivering a work item to another worker.
    # Handlers send in-progress heartbeats every fifth of it while a step runs, so long LLM calls are
    # not redelivered, while the work of a dead or frozen worker runs elsewhere within this time.
    ack_wait_s: float = Field(default=5.0, gt=0)
    max_deliver: int = Field(default=10, ge=1)
    # Work items one worker process runs at once (per node subscription).
    max_concurrency: int = Field(default=16, ge=1)
    # Model that replaces every node's model (`--llm MODEL`); None keeps the flow's own models.
    llm_override: str | None = None
    # Model of the nodes whose flow names none (`up --llm auto`: a local Ollama, else mock); None: mock.
    llm_default: str | None = None
    mock_script: Path | None = None
    # Record every LLM exchange to this cassette, or serve them back from it (offline, free).
    record: Path | None = None
    replay: Path | None = None
    llm_timeout_s: float = Field(default=120.0, gt=0)
    # Provider endpoints the gateway may call besides those the published flows declare:
    # comma-separated ``API_BASE=KEY_ENV`` (``CA_LLM_ENDPOINTS``); see `actors.llm.endpoints`.
    llm_endpoints: str = ""
    # Per provider (the part of the model name before "/"): calls at once, and calls per second.
    llm_provider_concurrency: int = Field(default=8, ge=1)
    llm_requests_per_s: float | None = Field(default=None, gt=0)
    # Dedup window of the work stream: a re-published work item inside it is dropped by the server.
    dedup_window_s: float = Field(default=600.0, gt=0)
    # Copies of every stream and bucket the actors create: 3 on a 3-node NATS cluster (one node may
    # die); None keeps those of existing streams and creates new ones with 1 (a single server).
    stream_replicas: int | None = Field(default=None, ge=1, le=5)
    # Registry: every actor heartbeats this often; 3 missed beats = stale, 10 = dead.
    heartbeat_s: float = Field(default=2.0, gt=0)
    # Tools: file tools are confined to this directory (default `<data_dir>/workspace`); HTTP tools
    # reach only these hosts (comma-separated: `host`, `host:port`, `host:*`, `*.example.com`, `*` for any;
    # without a port only 80/443). Private and loopback addresses only through a host named exactly.
    tool_workspace: Path | None = None
    allowed_hosts: str = ""
    # Where run history and long-term memory live (`--store`); None: SQLite under `data_dir`.
    store_url: str | None = None
    # Observability: whether the observer writes MLflow traces (`up` turns it on), where (None: SQLite
    # under `data_dir`), and whether prompts, LLM messages and node inputs/outputs go into them
    # (secrets never do).
    traces: bool = False
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "ca-actors"
    log_prompts: bool = True
    # The dashboard (`ca-actors ui`, the `ui` actor of `up`): where it listens, the token it requires
    # (CA_UI_TOKEN; needed on any address but loopback, generated when missing), the SSE heartbeat, and
    # the MLflow UI to link traces to (`up --mlflow` sets it).
    ui_host: str = "127.0.0.1"
    ui_port: int = Field(default=8765, ge=0, le=65535)
    ui_token: str | None = None
    ui_heartbeat_s: float = Field(default=15.0, gt=0)
    mlflow_ui_url: str | None = None
    # Code nodes and python_exec: sandbox worker processes per profile in each node worker, whether a
    # flow may run code without any sandbox (`--allow-unsandboxed`), the image of `mode: docker`.
    sandbox_workers: int = Field(default=2, ge=1)
    allow_unsandboxed: bool = False
    sandbox_image: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _login_out_of_url(cls, data: Any) -> Any:
        """A NATS URL's ``user:password@`` (or ``token@``) becomes `nats_user`/`nats_password` (`nats_token`),
        so the URL that is passed on, written and printed never holds a secret."""
        if not isinstance(data, dict) or not isinstance(data.get("nats_url"), str):
            return data
        url, user, password = split_credentials(data["nats_url"])
        if user is None and password is None:
            return data
        data = {**data, "nats_url": url}
        if user is None:
            data.setdefault("nats_token", password)
        else:
            data.setdefault("nats_user", user)
            data.setdefault("nats_password", password)
        return data

    def store(self) -> str:
        """The store URL in effect."""
        return self.store_url or f"sqlite:///{(self.data_dir / 'store.db').resolve()}"

    def mlflow_uri(self) -> str:
        """The MLflow tracking URI in effect."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @classmethod
    def from_env(cls, **overrides: object) -> Self:
        """Build settings from CA_* environment variables, then explicit overrides (not None)."""
        env: dict[str, object] = {}
        for name in cls.model_fields:
            value = os.environ.get(f"CA_{name.upper()}")
            if value is not None:
                env[name] = value
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(env)
