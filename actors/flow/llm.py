"""What node workers ask the LLM gateway, what it answers, and the `LLMClient` port."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ToolCall(BaseModel):
    """A model asking for one tool call (OpenAI wire shape, arguments already parsed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    # An assistant turn that asked for tools, and a tool turn answering one of them.
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def wire(self) -> dict[str, Any]:
        """The message in the OpenAI chat format litellm takes."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


class LLMRequest(BaseModel):
    """One chat completion asked of the gateway (``ca.llm.complete``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    # The flow names no model for this node: the gateway may answer with the stack's default model.
    model_is_default: bool = False
    messages: list[ChatMessage]
    output_schema: dict[str, Any] | None = None
    # Tools the model may call (OpenAI function specs); empty: a plain completion.
    tools: list[dict[str, Any]] = Field(default_factory=list)
    # Models to try, in order, when `model` keeps failing.
    fallbacks: list[str] = Field(default_factory=list)
    flow: str = ""
    # The plan version of the run (with `node`): where the gateway looks up the node's api_base/api_key_env.
    plan_version: str = ""
    # The flow's `budget:` (BudgetSpec fields), enforced by the gateway before the call.
    budget: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    api_base: str | None = None
    # Name of the environment variable holding the key, read by the gateway only: keys never travel.
    api_key_env: str | None = None
    timeout_s: float | None = None
    run_id: str = ""
    node: str = ""
    step_id: str = ""
    index: int = 0
    attempt: int = 0
    # Prompt variables, so the mock model's scripted outputs can be templates ("note about {item}").
    state: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    def cache_key(self) -> str:
        """Identity of the exchange for record/replay: what the model sees, nothing about the run."""
        body = {
            "model": self.model,
            "messages": [m.wire() for m in self.messages],
            "output_schema": self.output_schema,
            "tools": self.tools,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0


# Why a call failed, which says what a later attempt could change:
# - "transient": the provider or the gateway failed in a way a retry may fix (rate limit, timeout, 5xx);
# - "unreachable": no gateway answered at all: not the provider's fault, so it does not use up a node's retries;
# - "budget": refused before the call, which would pass the run's or the flow's budget;
# - "permanent": no retry can fix it (a bad request, a missing key, a request not in the cassette).
LLMErrorKind = Literal["transient", "unreachable", "budget", "permanent"]

# Replies written before `error_kind` (cassettes on disk, an older gateway) said it with four booleans.
_LEGACY_FLAGS = ("ok", "retryable", "unreachable", "budget_exceeded")


class LLMReply(BaseModel):
    """The gateway's answer: the content, or an error and its kind (None when the call succeeded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    error_kind: LLMErrorKind | None = None
    # Served from a cassette (`--replay`) instead of a provider.
    cache_hit: bool = False

    @property
    def ok(self) -> bool:
        """The call succeeded."""
        return self.error_kind is None

    @model_validator(mode="before")
    @classmethod
    def _from_legacy_flags(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(flag in data for flag in _LEGACY_FLAGS):
            return data
        reply = {k: v for k, v in data.items() if k not in _LEGACY_FLAGS}
        if data.get("ok", False):
            kind = None
        elif data.get("budget_exceeded"):
            kind = "budget"
        elif data.get("unreachable"):
            kind = "unreachable"
        elif data.get("retryable"):
            kind = "transient"
        else:
            kind = "permanent"
        reply.setdefault("error_kind", kind)
        return reply


class LLMClient(Protocol):
    """Port through which node code reaches a model: over the bus, or in-process."""

    async def complete(self, request: LLMRequest) -> LLMReply: ...
