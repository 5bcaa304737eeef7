"""Runtime settings: read once (CLI flags, then CA_* environment variables) and passed in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Everything an actor process needs to know about its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nats_url: str = "nats://127.0.0.1:4222"
    data_dir: Path = Path(".ca-actors")
    # How long JetStream waits for an ack before redelivering a work item to another worker.
    # Workers send in-progress heartbeats while a step runs, so long LLM calls are not redelivered.
    ack_wait_s: float = Field(default=30.0, gt=0)
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
