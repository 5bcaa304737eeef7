"""Budgets enforced by the LLM gateway before each call: the estimated cost is reserved first.

Spending is kept in the ``ca_budgets`` bucket, per run (``run.<run_id>``) and per flow and UTC day
(``day.<flow>.<yyyymmdd>``), updated with compare-and-swap so concurrent calls (several gateways, a
map's items) cannot overspend together: a call is refused when what is spent, plus what other calls
in flight have reserved, plus this call's estimate would pass a limit. After the call the reservation
is replaced by the actual cost and tokens. Prices come from litellm's bundled price map (offline).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from actors.flow.llm import LLMReply, LLMRequest
from actors.llm.mock import mock_latency_s
from actors.runtime.cas import compare_and_swap
from configs import BudgetSpec

DEFAULT_COMPLETION_TOKENS = 512


class Spend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cost_usd: float = 0.0
    tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0


@dataclass(frozen=True)
class Reservation:
    keys: tuple[str, ...]
    cost_usd: float
    tokens: int


def estimate(request: LLMRequest) -> tuple[float, int]:
    """Estimated (cost in USD, tokens) of a request: ~4 characters a token, `max_tokens` (or 512) out."""
    prompt_tokens = sum(len(m.content) for m in request.messages) // 4 + 1
    completion_tokens = request.max_tokens or DEFAULT_COMPLETION_TOKENS
    if mock_latency_s(request.model) is not None:
        return 0.0, prompt_tokens + completion_tokens
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm

        prompt_cost, completion_cost = litellm.cost_per_token(  # type: ignore[attr-defined]  # lazy export
            model=request.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        cost = float(prompt_cost) + float(completion_cost)
    except Exception:  # noqa: BLE001 - a model without a price (a local one): only tokens count
        cost = 0.0
    return cost, prompt_tokens + completion_tokens


def _limits(spec: BudgetSpec, key: str) -> tuple[float | None, int | None]:
    if key.startswith("run."):
        return spec.max_cost_usd, spec.max_tokens
    return spec.daily_max_cost_usd, spec.daily_max_tokens


class Budgets:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    def keys(self, request: LLMRequest, spec: BudgetSpec) -> tuple[str, ...]:
        keys: list[str] = []
        if spec.max_cost_usd is not None or spec.max_tokens is not None:
            keys.append(f"run.{request.run_id}")
        if spec.daily_max_cost_usd is not None or spec.daily_max_tokens is not None:
            keys.append(f"day.{request.flow}.{time.strftime('%Y%m%d', time.gmtime())}")
        return tuple(keys)

    async def reserve(self, request: LLMRequest, spec: BudgetSpec) -> Reservation | str:
        """Reserve the call's estimate under every limit, or say which limit it would pass."""
        cost, tokens = estimate(request)
        done: list[str] = []
        for key in self.keys(request, spec):
            refusal = await self._reserve_one(key, spec, cost, tokens)
            if refusal is not None:
                await self._release(tuple(done), cost, tokens)
                return refusal
            done.append(key)
        return Reservation(keys=tuple(done), cost_usd=cost, tokens=tokens)

    async def _reserve_one(self, key: str, spec: BudgetSpec, cost: float, tokens: int) -> str | None:
        max_cost, max_tokens = _limits(spec, key)
        refusal: list[str] = []

        def add(s: Spend) -> Spend | None:
            refusal.clear()
            if max_cost is not None and s.cost_usd + s.reserved_usd + cost > max_cost:
                refusal.append(
                    f"{key}: ${s.cost_usd:.6f} spent + ${s.reserved_usd:.6f} reserved + ${cost:.6f} "
                    f"estimated > max_cost_usd ${max_cost:g}"
                )
                return None
            if max_tokens is not None and s.tokens + s.reserved_tokens + tokens > max_tokens:
                refusal.append(
                    f"{key}: {s.tokens} tokens spent + {s.reserved_tokens} reserved + {tokens} estimated "
                    f"> max_tokens {max_tokens}"
                )
                return None
            return s.model_copy(
                update={"reserved_usd": s.reserved_usd + cost, "reserved_tokens": s.reserved_tokens + tokens}
            )

        await self._update(key, add)
        return refusal[0] if refusal else None

    async def settle(self, reservation: Reservation, reply: LLMReply) -> None:
        """Replace the reservation by what the call really cost (nothing when it failed)."""
        used = reply.usage.prompt_tokens + reply.usage.completion_tokens if reply.ok else 0
        spent = reply.cost_usd if reply.ok else 0.0
        for key in reservation.keys:

            def swap(s: Spend, key: str = key) -> Spend:
                return s.model_copy(
                    update={
                        "reserved_usd": max(0.0, s.reserved_usd - reservation.cost_usd),
                        "reserved_tokens": max(0, s.reserved_tokens - reservation.tokens),
                        "cost_usd": s.cost_usd + spent,
                        "tokens": s.tokens + used,
                    }
                )

            await self._update(key, swap)

    async def spend(self, key: str) -> Spend:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return Spend()
        return Spend.model_validate_json(entry.value or b"{}")

    async def _release(self, keys: tuple[str, ...], cost: float, tokens: int) -> None:
        for key in keys:
            await self._update(
                key,
                lambda s: s.model_copy(
                    update={
                        "reserved_usd": max(0.0, s.reserved_usd - cost),
                        "reserved_tokens": max(0, s.reserved_tokens - tokens),
                    }
                ),
            )

    async def _update(self, key: str, change: Callable[[Spend], Spend | None]) -> None:
        await compare_and_swap(self._kv, key, Spend, change, missing=Spend, what="budget")
