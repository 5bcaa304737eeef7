"""What litellm needs to know about an Ollama model, asked of the Ollama server the request names.

litellm looks Ollama models up (does the chat template take tools? the context length) at the
``OLLAMA_API_BASE`` environment variable, never at a request's ``api_base``; setting that variable from
a request would make the first flow's Ollama the answer for every later one in the process. Instead the
gateway asks ``POST {api_base}/api/show`` itself (once per server and model) and registers the facts in
litellm's model table under the model's names, which litellm then reads instead of asking.

Two Ollama servers serving one model name with different templates in the same gateway would see the
facts of whichever was asked last: model facts are per name in litellm.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

DEFAULT_BASE = "http://localhost:11434"  # litellm's own default when nothing is configured
PREFIXES = ("ollama/", "ollama_chat/")


def is_ollama(model: str) -> bool:
    return model.startswith(PREFIXES)


class OllamaFacts:
    """Model facts per (server, model), fetched once and handed to litellm before each call."""

    def __init__(self, *, timeout_s: float = 5.0) -> None:
        self._timeout_s = timeout_s
        self._known: dict[tuple[str, str], dict[str, Any] | None] = {}

    async def register(self, litellm: ModuleType, model: str, api_base: str | None) -> None:
        """Tell litellm what the Ollama at `api_base` says of `model` (nothing when it cannot be asked)."""
        base = (api_base or DEFAULT_BASE).rstrip("/")
        name = model.split("/", 1)[1]
        key = (base, name)
        if key not in self._known:
            self._known[key] = await self._show(base, name)
        facts = self._known[key]
        if facts is not None:
            # Straight into litellm's model table: `litellm.register_model` would first look the model
            # up itself, at OLLAMA_API_BASE, which is what this class avoids.
            for prefix in PREFIXES:
                litellm.model_cost[f"{prefix}{name}"] = facts

    async def _show(self, base: str, name: str) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                response = await client.post(f"{base}/api/show", json={"name": name})
            response.raise_for_status()
            shown = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("ollama.show_failed", api_base=base, model=name, error=str(exc))
            return None
        context = next((v for k, v in (shown.get("model_info") or {}).items() if "context_length" in k), None)
        return {
            "litellm_provider": "ollama",
            "mode": "chat",
            # litellm's own rule: a chat template that mentions tools takes them natively.
            "supports_function_calling": "tools" in str(shown.get("template") or "").lower(),
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "max_tokens": context,
            "max_input_tokens": context,
            "max_output_tokens": context,
        }
