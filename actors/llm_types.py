"""What node workers ask the LLM gateway, what it answers, and the `LLMClient` port."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class LLMRequest(BaseModel):
    """One chat completion asked of the gateway (``ca.llm.complete``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    messages: list[ChatMessage]
    output_schema: dict[str, Any] | None = None
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


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMReply(BaseModel):
    """The gateway's answer: the content, or an error saying whether a retry may help."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ok: bool
    content: str = ""
    model: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    error: str | None = None
    retryable: bool = False
    # No gateway answered at all: not the provider's fault, so it does not use up a node's retries.
    unreachable: bool = False


class LLMClient(Protocol):
    """Port through which node code reaches a model: over the bus, or in-process."""

    async def complete(self, request: LLMRequest) -> LLMReply: ...
