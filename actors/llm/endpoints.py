"""Which provider endpoints the gateway may call with which key: only what a published flow declares.

A request names ``api_base`` and ``api_key_env`` (the worker copies them from its node's ``llm:``), but
a request is only a message: anyone who can publish to ``ca.llm.complete`` could ask for
``{"api_base": "http://attacker/v1", "api_key_env": "AWS_SECRET_ACCESS_KEY"}`` and have the gateway send
that secret as a bearer token. So the gateway takes the pair only when the plan says so: the node's own
settings in the plan version the run is pinned to (``plan_version`` and ``node`` of the request), as the
scheduler published it in ``ca_plans`` (which only the scheduler may write, `bus.permissions`); for a
request without a plan version, some version of its flow must declare the pair. The operator may allow
more (``CA_LLM_ENDPOINTS``). Anything else is refused before any connection is made, and a caller's
``api_base`` is never paired with a key of the gateway's environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from actors.flow import LLMRequest, Plan
from configs import FlowSpec

log = structlog.get_logger(__name__)

# (api_base, api_key_env): None where the flow leaves the litellm default.
Endpoint = tuple[str | None, str | None]


def declared_endpoints(spec: FlowSpec) -> set[Endpoint]:
    """The (api_base, api_key_env) pairs a flow's nodes call with (a node's ``llm:`` or ``config.llm``)."""
    found: set[Endpoint] = set()
    for llm in [spec.config.llm, *(node.llm or spec.config.llm for node in spec.nodes)]:
        if llm is not None and (llm.api_base or llm.api_key_env):
            found.add((llm.api_base, llm.api_key_env))
    return found


def parse_allowed(text: str) -> set[Endpoint]:
    """The operator's allow-list: comma-separated ``API_BASE=KEY_ENV``, ``API_BASE`` or ``=KEY_ENV``.

    Raises:
        ValueError: an entry names neither.
    """
    found: set[Endpoint] = set()
    for entry in filter(None, (e.strip() for e in text.split(","))):
        base, _, env = entry.partition("=")
        if not base.strip() and not env.strip():
            raise ValueError(f"CA_LLM_ENDPOINTS: {entry!r} names no API base and no key variable")
        found.add((base.strip() or None, env.strip() or None))
    return found


def node_endpoint(spec: FlowSpec, node_id: str) -> Endpoint | None:
    """The (api_base, api_key_env) one node calls with, as the worker picks its settings; None: no such node."""
    for node in spec.nodes:
        if node.id == node_id:
            llm = node.llm or spec.config.llm
            return (llm.api_base or None, llm.api_key_env or None) if llm is not None else (None, None)
    return None


class EndpointPolicy:
    """Checks a request's provider settings against the published plans and the operator's allow-list."""

    def __init__(self, plans: KeyValue | None, allowed: Iterable[Endpoint] = ()) -> None:
        self._kv = plans
        self._allowed = set(allowed)
        # Plan key (``<flow>.<version>``) → its plan; versions never change once published.
        self._plans: dict[str, Plan | None] = {}
        self._by_flow: dict[str, set[Endpoint]] = {}
        self._refreshing = asyncio.Lock()

    async def refusal(self, request: LLMRequest) -> str | None:
        """Why the gateway must not call with the request's settings, or None when its plan (the node's own
        settings in the plan version of the run), its flow or the operator allows them."""
        api_base, api_key_env = request.api_base or None, request.api_key_env or None
        if not api_base and not api_key_env:
            return None  # the provider's own endpoint and key, as litellm knows them
        pair: Endpoint = (api_base, api_key_env)
        if pair in self._allowed:
            return None
        if request.flow and request.plan_version and request.node:
            # The exact answer: what this node of this plan version says.
            plan = await self._plan(f"{request.flow}.{request.plan_version}")
            if plan is not None and node_endpoint(plan.spec, request.node) == pair:
                return None
        elif request.flow:
            # No plan version (an older worker, a direct caller): any version of the flow must declare it.
            if pair not in self._by_flow.get(request.flow, ()):
                await self._refresh()
            if pair in self._by_flow.get(request.flow, ()):
                return None
        log.warning("llm_gateway.endpoint_refused", flow=request.flow, node=request.node, api_base=api_base)
        return (
            f"api_base {api_base or '(default)'} with key variable {api_key_env or '(none)'} is not what "
            f"flow {request.flow or '(none)'} declares for node {request.node or '(none)'}: the gateway calls "
            "only the endpoints of published flows (or those allowed by CA_LLM_ENDPOINTS)"
        )

    async def _plan(self, key: str) -> Plan | None:
        if key not in self._plans and self._kv is not None:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None  # not cached: it may be published later
            try:
                self._plans[key] = Plan.model_validate_json(entry.value or b"{}")
            except ValueError:
                log.warning("llm_gateway.bad_plan", key=key)
                self._plans[key] = None
        plan = self._plans.get(key)
        if plan is not None:
            self._by_flow.setdefault(plan.flow, set()).update(declared_endpoints(plan.spec))
        return plan

    async def _refresh(self) -> None:
        """Read the plans published since the last look (one reader at a time)."""
        if self._kv is None:
            return
        async with self._refreshing:
            try:
                keys = await self._kv.keys()
            except NoKeysError:
                return
            for key in keys:
                if not key.endswith(".latest") and key not in self._plans:
                    await self._plan(key)
