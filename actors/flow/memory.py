"""Long-term memory per node, agent or workflow, served over the bus by the memory actor.

A node with memory gets, before it runs, the records of its scope in its prompt (``{memory}``, or
appended after the prompt when it has no such placeholder); after it runs, its configured output
fields are written as a new record. Node workers reach memory only through ``ca.memory.*`` requests,
so a worker on another machine needs no database driver; the memory actor owns the store.
This module is what both sides agree on: the policy of a node, the requests and their answers.

YAML (seed form, then the extension):

    memory: {enabled: true, default_scope: node}          # flow level (or config.memory), or per node
    memory: {scope: workflow, key: "{state.user_id}", read: recent|all|search, limit: 5,
             write: [summary], max_items: 100, ttl_days: 30}

Scope keys: ``flow/<flow>/node/<node>/<key>``, ``flow/<flow>/workflow/<key>``, ``agent/<agent>/<key>``
(an agent's memory follows it across flows; the agent is the node's ``name`` or id).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from bus import SparseWireModel
from configs import FlowSpec, MemorySpec, NodeSpec, render
from configs.errors import ActorError

Scope = Literal["node", "agent", "workflow"]
MEMORY_SCOPES: tuple[Scope, ...] = get_args(Scope)
ReadMode = Literal["recent", "all", "search"]


class MemoryUnavailable(ActorError):
    """The memory actor or its store could not serve a request (a later attempt may succeed)."""


class MemoryPolicy(BaseModel):
    """How one node uses memory, resolved from node, flow and config settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: Scope = "node"
    key: str = ""
    read: ReadMode = "recent"
    limit: int = 5
    write: tuple[str, ...] = ()
    max_items: int | None = 100
    ttl_days: float | None = None


def _given(spec: MemorySpec | None) -> dict[str, Any]:
    """The keys a memory block actually sets (so a node only overrides what it says)."""
    return {} if spec is None else {k: getattr(spec, k) for k in spec.model_fields_set}


def memory_policy(spec: FlowSpec, node: NodeSpec) -> MemoryPolicy | None:
    """The node's memory policy, or None when memory is off for it.

    Flow-level settings (``config.memory``, then top-level ``memory``) apply to every node; a node's
    own ``memory`` overrides them key by key, and ``memory: false`` turns it off for that node.
    """
    flow_level = {**_given(spec.config.memory), **_given(spec.memory)}
    node_level = _given(node.memory)
    merged = {**flow_level, **node_level}
    # A node that configures memory without saying `enabled` means it on, whatever the flow says.
    enabled = node_level.get("enabled", True) if node_level else flow_level.get("enabled", True)
    if not merged or not enabled:
        return None
    write = merged.get("write") or node.outputs
    return MemoryPolicy(
        scope=merged.get("scope") or merged.get("default_scope") or "node",
        key=merged.get("key", ""),
        read=merged.get("read", "recent"),
        limit=merged.get("limit", 5),
        write=tuple(write),
        max_items=merged.get("max_items", 100),
        ttl_days=merged.get("ttl_days"),
    )


def scope_key(spec: FlowSpec, node: NodeSpec, policy: MemoryPolicy, state: Mapping[str, Any]) -> str:
    """The store key of the node's memory for this state (the policy's key template rendered)."""
    key = render(policy.key, state) if policy.key else "default"
    key = key.replace("/", "_") or "default"
    if policy.scope == "workflow":
        return f"flow/{spec.flow.name}/workflow/{key}"
    if policy.scope == "agent":
        return f"agent/{node.name or node.id}/{key}"
    return f"flow/{spec.flow.name}/node/{node.id}/{key}"


def memory_text(records: list[dict[str, Any]]) -> str:
    """Records as prompt text, oldest first."""
    return "\n".join(f"- {r['content']}" for r in reversed(records))


def record_content(outputs: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """What a node writes to memory: readable text and the raw values of the fields."""
    data = {f: outputs[f] for f in fields if f in outputs}
    text = "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
    return text, data


class MemoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope_key: str
    mode: ReadMode = "recent"
    query: str = ""
    limit: int = 5


class MemoryWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    scope_key: str
    flow: str
    node: str | None = None
    content: str
    data: dict[str, Any] = Field(default_factory=dict)
    max_items: int | None = None
    ttl_days: float | None = None


class MemoryAnswer(SparseWireModel):
    """What the memory actor answers; `error` when it could not serve the request (then nothing else)."""

    omit_defaults = frozenset({"error"})

    error: str | None = None

    def _on_the_wire(self, data: dict[str, Any]) -> dict[str, Any]:
        return super()._on_the_wire(data) if self.error is None else {"error": self.error}


class MemoryRecords(MemoryAnswer):
    """The answer to ``ca.memory.read``: the scope's records (store `MemoryRecord`s as JSON), newest first."""

    records: list[dict[str, Any]] = Field(default_factory=list)


class MemoryWritten(MemoryAnswer):
    """The answer to ``ca.memory.write``: ``{"ok": true}``, or ``{"error": ...}``."""

    ok: bool = False


def record_id(step_id: str) -> str:
    """A memory record's id from the step that wrote it, so a redelivered step writes it once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ca-actors:memory:{step_id}"))


def expires(ttl_days: float | None) -> float | None:
    return time.time() + ttl_days * 86400 if ttl_days else None
