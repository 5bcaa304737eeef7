"""The records the store keeps: frozen pydantic models, serialised whole as JSON by every backend."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _now() -> float:
    return time.time()


def _uuid() -> str:
    return uuid.uuid4().hex


class _Record(BaseModel):
    # Frozen-ish: attributes cannot be reassigned, but dict/list fields are still mutable containers.
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunHistory(_Record):
    """One run of a flow as the observer saw it (docs/observability.md); upserted by ``run_id``.

    ``steps`` holds one dict per step, in start order: ``step_id``, ``node``, ``iteration``,
    ``index``, ``status``, ``queued_at``, ``started_at``, ``finished_at``, ``queue_ms``,
    ``duration_ms``, ``llm_ms``, ``tool_ms``, ``llm_calls``, ``tool_calls``, ``tokens_in``,
    ``tokens_out``, ``cost_usd``, ``models`` (model → calls, tokens_in, tokens_out, cost_usd,
    llm_ms), ``attempts``, ``after`` (the step whose completion queued this one), ``error``, ``worker``.
    """

    run_id: str
    flow: str
    status: str
    created_at: float = Field(default_factory=_now)
    finished_at: float | None = None
    duration_ms: float | None = None
    cost_usd: float = 0.0
    error: str | None = None
    inputs: Any = None
    state: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(default_factory=list)
    plan_version: str = ""
    source: str | None = None
    session: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    llm_calls: int = 0


class MemoryRecord(_Record):
    """One long-term memory under a scope key such as ``flow/<flow>/node/<node>/<key>``."""

    id: str = Field(default_factory=_uuid)
    scope_key: str
    flow: str
    node: str | None = None
    content: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: float = Field(default_factory=_now)
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        """Whether the record's ``expires_at`` has passed at ``now`` (epoch seconds)."""
        return self.expires_at is not None and self.expires_at <= now


class ChatSession(_Record):
    """A chat conversation (dashboard chat, Telegram, WhatsApp); upserted by ``id``."""

    id: str = Field(default_factory=_uuid)
    flow: str | None = None
    title: str = ""
    messages: list[dict[str, Any]] = Field(default_factory=list)
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)


class ConfigVersion(_Record):
    """One saved version of a flow's YAML source; upserted by ``(flow, version)``."""

    flow: str
    version: str
    source: str
    created_at: float = Field(default_factory=_now)


class ABResult(_Record):
    """The metrics of one run in one variant of an A/B experiment; upserted by ``(experiment, variant, run_id)``."""

    experiment: str
    variant: str
    run_id: str
    metrics: dict[str, float] = Field(default_factory=dict)
    created_at: float = Field(default_factory=_now)
