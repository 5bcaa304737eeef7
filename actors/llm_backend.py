"""The gateway's engine: the mock model in-process, every other model through litellm.

litellm is imported lazily (it is heavy and, offline, hangs ~10 s fetching a price map unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set), so a gateway serving only ``mock`` never loads it. This class
is also the in-process `LLMClient` of `ca-actors run --engine` variants that bypass the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from types import ModuleType
from typing import Any

import structlog

from actors.llm_types import LLMReply, LLMRequest, Usage
from actors.mock_llm import MockScript, mock_latency_s, mock_output

log = structlog.get_logger(__name__)

# litellm exception class names after which the same call may succeed.
_RETRYABLE = {
    "RateLimitError",
    "APIConnectionError",
    "Timeout",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
}


class LLMBackend:
    """Answers `LLMRequest`s; one instance per gateway process."""

    def __init__(self, mock_script: MockScript | None = None, *, model_override: str | None = None) -> None:
        self._mock_script = mock_script
        # `--llm` of the stack: the gateway is the one place every request passes, so a worker that
        # joins later (`ca-actors agent`) gets the stack's model without being told.
        self._override = model_override
        self._litellm: ModuleType | None = None
        self._import_lock = asyncio.Lock()

    async def complete(self, request: LLMRequest) -> LLMReply:
        """Run one completion; provider failures come back as a reply with `ok=False`, never raised."""
        started = time.perf_counter()
        if self._override and request.model != self._override:
            request = request.model_copy(update={"model": self._override})
        latency = mock_latency_s(request.model)
        try:
            if latency is not None:
                reply = await self._mock(request, latency)
            else:
                reply = await self._litellm_complete(request)
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes an error reply
            name = type(exc).__name__
            log.warning("llm.error", model=request.model, node=request.node, error=f"{name}: {exc}")
            reply = LLMReply(ok=False, model=request.model, error=f"{name}: {exc}", retryable=name in _RETRYABLE)
        return reply.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})

    async def _mock(self, request: LLMRequest, latency_s: float) -> LLMReply:
        if latency_s:
            await asyncio.sleep(latency_s)
        prompt = "\n".join(m.content for m in request.messages if m.role == "user")
        scripted = None
        if self._mock_script is not None:
            scripted = self._mock_script.next_output(
                request.run_id, request.node, request.state, request.extra, request.index
            )
        if scripted is not None:
            value: Any = scripted
        else:
            value = mock_output(request.output_schema or {"type": "string"}, node=request.node, prompt=prompt)
        content = value if isinstance(value, str) and request.output_schema is None else json.dumps(value)
        tokens_in = sum(len(m.content.split()) for m in request.messages)
        usage = Usage(prompt_tokens=tokens_in, completion_tokens=len(content.split()))
        return LLMReply(ok=True, content=content, model=request.model, usage=usage)

    async def _module(self) -> ModuleType:
        async with self._import_lock:
            if self._litellm is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                self._litellm = await asyncio.to_thread(_import_litellm)
            return self._litellm

    async def _litellm_complete(self, request: LLMRequest) -> LLMReply:
        litellm = await self._module()
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": [m.model_dump() for m in request.messages],
            "num_retries": 0,
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.api_base:
            kwargs["api_base"] = request.api_base
        if request.timeout_s:
            kwargs["timeout"] = request.timeout_s
        if request.api_key_env:
            key = os.environ.get(request.api_key_env)
            if not key:
                return LLMReply(
                    ok=False,
                    model=request.model,
                    error=f"environment variable {request.api_key_env} (api_key_env) is not set",
                )
            kwargs["api_key"] = key
        elif not request.api_base and not request.model.startswith(("ollama", "ollama_chat")):
            # Fail fast and clearly on a missing provider key instead of retrying a "500" litellm makes up.
            env = litellm.validate_environment(request.model)
            if not env.get("keys_in_environment", True):
                missing = " / ".join(env.get("missing_keys", []))
                return LLMReply(
                    ok=False,
                    model=request.model,
                    error=f"model {request.model} needs the environment variable(s) {missing}; set them, "
                    "or choose another model (e.g. --llm mock, or a local ollama_chat/<model>)",
                )
        response = await litellm.acompletion(**kwargs)
        content = response.choices[0].message.content or ""
        usage = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001 - unknown price (local model): cost is simply unknown
            cost = 0.0
        return LLMReply(
            ok=True,
            content=content,
            model=str(getattr(response, "model", request.model)),
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            cost_usd=cost,
        )


def _import_litellm() -> ModuleType:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm
