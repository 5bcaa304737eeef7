"""The gateway's engine: the mock model in-process, every other model through litellm.

litellm is imported lazily (it is heavy and, offline, hangs ~10 s fetching a price map unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set), so a gateway serving only ``mock`` never loads it. This class
is also the in-process `LLMClient` of `ca-actors run --engine` variants that bypass the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Any

import structlog

from actors.flow.llm import LLMErrorKind, LLMReply, LLMRequest, ToolCall, Usage
from actors.llm.cassette import Cassette
from actors.llm.mock import MockScript, mock_latency_s, mock_output
from actors.llm.ollama import OllamaFacts, is_ollama

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

    def __init__(
        self,
        mock_script: MockScript | None = None,
        *,
        model_override: str | None = None,
        default_model: str | None = None,
        cassette: Cassette | None = None,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_retry_after_s: float = 30.0,
        provider_concurrency: int = 8,
        requests_per_s: float | None = None,
    ) -> None:
        self._mock_script = mock_script
        self._cassette = cassette
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._limits = ProviderLimits(provider_concurrency, requests_per_s)
        # `--llm` of the stack: the gateway is the one place every request passes, so a worker that
        # joins later (`ca-actors agent`) gets the stack's model without being told.
        self._override = model_override
        # The stack's model for nodes whose flow names none (`up --llm auto`), applied here for the same reason.
        self._default = default_model
        self._litellm: ModuleType | None = None
        self._import_lock = asyncio.Lock()
        self._ollama = OllamaFacts()

    async def warm(self) -> None:
        """Import litellm now when the stack's model (``--llm``) goes through it: a gateway that says it is
        ready must not spend its first requests' timeouts importing it (seconds on a busy machine)."""
        model = self._override or self._default
        if model and mock_latency_s(model) is None and self._cassette is None:
            await self._module()

    async def complete(self, request: LLMRequest) -> LLMReply:
        """Run one completion; provider failures come back as a reply with an `error_kind`, never raised.

        Transient provider errors are retried after the delay the provider asks for (``Retry-After`` in
        seconds or as an HTTP date, ``retry-after-ms``; at most `max_retry_after_s`), else after a jittered
        exponential back-off; then each of the request's `fallbacks` is tried in turn; with a cassette,
        replies are recorded or replayed.
        """
        started = time.perf_counter()
        if self._override and request.model != self._override:
            request = request.model_copy(update={"model": self._override, "fallbacks": []})
        elif self._default and request.model_is_default and request.model != self._default:
            request = request.model_copy(update={"model": self._default, "fallbacks": []})
        if self._cassette is not None and self._cassette.mode == "replay":
            reply = self._cassette.replay(request)
        else:
            reply = await self._with_fallbacks(request)
            if self._cassette is not None:
                self._cassette.record(request, reply)
        return reply.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})

    async def _with_fallbacks(self, request: LLMRequest) -> LLMReply:
        reply = LLMReply(model=request.model, error="no model to ask", error_kind="permanent")
        for n, model in enumerate([request.model, *request.fallbacks]):
            attempt_request = request if n == 0 else request.model_copy(update={"model": model})
            for attempt in range(self._retries + 1):
                reply, asked_s = await self._once(attempt_request)
                if reply.error_kind != "transient":
                    break
                if attempt < self._retries:
                    delay = retry_delay_s(asked_s, attempt, self._backoff_s, self._max_retry_after_s)
                    log.info("llm.retry", model=model, attempt=attempt + 1, delay_s=round(delay, 3), asked_s=asked_s)
                    await asyncio.sleep(delay)
            if reply.ok:
                return reply
            if request.fallbacks:
                log.warning("llm.fallback", model=model, error=reply.error, node=request.node)
        if request.fallbacks:
            tried = ", ".join([request.model, *request.fallbacks])
            return reply.model_copy(update={"error": f"every model failed ({tried}); last: {reply.error}"})
        return reply

    async def _once(self, request: LLMRequest) -> tuple[LLMReply, float | None]:
        """One call: its reply, and the delay the provider asked for before another (None: it did not say)."""
        latency = mock_latency_s(request.model)
        try:
            if latency is not None:
                return await self._mock(request, latency), None
            async with self._limits.slot(request.model):
                return await self._litellm_complete(request), None
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes an error reply
            name = type(exc).__name__
            log.warning("llm.error", model=request.model, node=request.node, error=f"{name}: {exc}")
            transient = (name in _RETRYABLE or _status(exc) in _RETRYABLE_STATUS) and not _permanent(exc)
            kind: LLMErrorKind = "transient" if transient else "permanent"
            reply = LLMReply(model=request.model, error=f"{name}: {exc}", error_kind=kind)
            return reply, retry_after_s(_headers(exc))

    async def _mock(self, request: LLMRequest, latency_s: float) -> LLMReply:
        if latency_s:
            await asyncio.sleep(latency_s)
        prompt = "\n".join(m.content for m in request.messages if m.role == "user")
        scripted = None
        if self._mock_script is not None:
            scripted = self._mock_script.next_output(
                request.run_id, request.node, request.state, request.extra, request.index
            )
        tokens_in = sum(len(m.content.split()) for m in request.messages)
        if isinstance(scripted, dict) and isinstance(scripted.get("tool_calls"), list):
            # A scripted tool-calling turn: {"tool_calls": [{"name": ..., "arguments": {...}}]}.
            calls = [
                ToolCall(
                    id=f"call_{request.attempt}_{i}", name=str(c["name"]), arguments=dict(c.get("arguments") or {})
                )
                for i, c in enumerate(scripted["tool_calls"])
            ]
            return LLMReply(tool_calls=calls, model=request.model, usage=Usage(prompt_tokens=tokens_in))
        if scripted is not None:
            value: Any = scripted
        else:
            value = mock_output(request.output_schema or {"type": "string"}, node=request.node, prompt=prompt)
        content = value if isinstance(value, str) and request.output_schema is None else json.dumps(value)
        usage = Usage(prompt_tokens=tokens_in, completion_tokens=len(content.split()))
        return LLMReply(content=content, model=request.model, usage=usage)

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
            "messages": [m.wire() for m in request.messages],
            "num_retries": 0,
        }
        if request.tools:
            kwargs["tools"] = request.tools
        if request.output_schema is not None and _supports_schema(litellm, request.model):
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": provider_schema(request.model, request.output_schema)},
            }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.api_base:
            kwargs["api_base"] = request.api_base
        if is_ollama(request.model):
            # Model facts (tool support, context length) from this request's Ollama, not a process-wide one.
            await self._ollama.register(litellm, request.model, request.api_base)
        if request.timeout_s:
            kwargs["timeout"] = request.timeout_s
        if request.api_key_env:
            key = os.environ.get(request.api_key_env)
            if not key:
                return LLMReply(
                    model=request.model,
                    error=f"environment variable {request.api_key_env} (api_key_env) is not set",
                    error_kind="permanent",
                )
            kwargs["api_key"] = key
        elif not request.api_base and not request.model.startswith(("ollama", "ollama_chat")):
            # Fail fast and clearly on a missing provider key instead of retrying a "500" litellm makes up.
            env = litellm.validate_environment(request.model)
            if not env.get("keys_in_environment", True):
                missing = " / ".join(env.get("missing_keys", []))
                return LLMReply(
                    model=request.model,
                    error=f"model {request.model} needs the environment variable(s) {missing}; set them, "
                    "or choose another model (e.g. --llm mock, or a local ollama_chat/<model>)",
                    error_kind="permanent",
                )
        response = await litellm.acompletion(**kwargs)
        message = response.choices[0].message
        content = message.content or ""
        calls = [
            ToolCall(id=str(c.id), name=str(c.function.name), arguments=_arguments(c.function.arguments))
            for c in (getattr(message, "tool_calls", None) or [])
        ]
        usage = getattr(response, "usage", None)
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001 - unknown price (local model): cost is simply unknown
            cost = 0.0
        return LLMReply(
            content=content,
            tool_calls=calls,
            model=str(getattr(response, "model", request.model)),
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            cost_usd=cost,
        )


# HTTP statuses after which the same call may succeed, whatever class litellm maps them to (529: overloaded).
_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _headers(exc: Exception) -> Mapping[str, str]:
    """The HTTP response headers a litellm (or openai / httpx) exception carries, if any."""
    for found in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        if found:
            try:
                return {str(k).lower(): str(v) for k, v in dict(found).items()}
            except (TypeError, ValueError):
                continue
    return {}


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The delay a provider asks for before trying again: ``retry-after-ms`` (milliseconds), else
    ``Retry-After`` (seconds, or an HTTP date); None when it names none (or nonsense).

    Args:
        headers: Response headers, names in lower case.
        now: The current time (epoch seconds) an HTTP date is measured from; default: now.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        value = when.timestamp() - (time.time() if now is None else now)
        return max(value, 0.0)
    return value if math.isfinite(value) and value >= 0 else None


def retry_delay_s(asked_s: float | None, attempt: int, backoff_s: float, max_s: float) -> float:
    """How long to wait before retry number `attempt` + 1: what the provider asked for (at most `max_s`),
    else `backoff_s` doubling per attempt with full jitter in its upper half (never two gateways in step)."""
    if asked_s is not None:
        return min(asked_s, max_s)
    ceiling = min(backoff_s * 2**attempt, max_s)
    return random.uniform(ceiling / 2, ceiling)


class ProviderLimits:
    """At most `concurrency` calls at once, and `per_s` calls a second, to each provider."""

    def __init__(self, concurrency: int, per_s: float | None) -> None:
        self._concurrency = concurrency
        self._interval = 1.0 / per_s if per_s else 0.0
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, model: str) -> AsyncIterator[None]:
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        semaphore = self._slots.setdefault(provider, asyncio.Semaphore(self._concurrency))
        async with semaphore:
            if self._interval:
                now = time.monotonic()
                start = max(now, self._next.get(provider, now))
                self._next[provider] = start + self._interval
                if start > now:
                    await asyncio.sleep(start - now)
            yield


# Messages of errors no retry can fix, whatever exception class litellm wraps them in (it reports any
# Ollama HTTP error, a model that is not pulled included, as a connection error).
_PERMANENT = re.compile(r"model .{0,80} not found|status code:? ?40[0134]\b|invalid api key", re.IGNORECASE)


def _permanent(exc: Exception) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
        return True
    return bool(_PERMANENT.search(str(exc)))


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_unparsed": str(raw)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _supports_schema(litellm: ModuleType, model: str) -> bool:
    if model.startswith(("ollama/", "ollama_chat/")):
        return True  # Ollama takes a JSON schema as `format` (structured outputs); litellm maps it
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # noqa: BLE001 - an unknown model: instruct and parse instead
        return False


_GEMINI_DROP = {"additionalProperties", "$defs", "definitions", "$schema", "title", "default"}


def provider_schema(model: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema as the provider accepts it: Gemini/Vertex refuse some JSON Schema keywords."""
    if not model.startswith(("gemini", "vertex_ai")):
        return schema

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: clean(v) for k, v in node.items() if k not in _GEMINI_DROP}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    cleaned: dict[str, Any] = clean(schema)
    return cleaned


def _import_litellm() -> ModuleType:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm
