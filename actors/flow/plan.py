"""A flow compiled into a plan: what each node consumes and where a run goes after it.

Plans are pure data, versioned by the hash of the flow's source (and of the registry prompts it
names, fetched at compile time) and stored in the ``ca_plans`` bucket (``<flow>.<version>`` and
``<flow>.latest``), so a run stays pinned to the plan it started with when the YAML is edited and
reloaded.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from nats.js.errors import KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from bus import subjects
from configs import FlowSpec, LoadedFlow, load_flow_text


class NodePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    subject: str
    durable: str


class Plan(BaseModel):
    """One version of one flow, as the scheduler and the workers execute it.

    Routing is decided from the flow itself (`actors.flow.logic`), so the plan only adds what the bus
    needs: the subject and durable consumer of each node.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    flow: str
    version: str
    file: str
    source: str
    nodes: dict[str, NodePlan]
    timeout_s: float | None
    max_retries: int
    # Node id → prompt text from the MLflow prompt registry (`actors.flow.prompt_registry`).
    prompts: dict[str, str] = Field(default_factory=dict)

    @property
    def spec(self) -> FlowSpec:
        """The parsed flow with its registry prompts in place (cached per version)."""
        return _spec_of(self.source, self.file, tuple(sorted(self.prompts.items())))

    def kv_key(self) -> str:
        return f"{self.flow}.{self.version}"


def plan_version(source: str) -> str:
    """Version id of a flow source: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def compile_plan(loaded: LoadedFlow, prompts: dict[str, str] | None = None) -> Plan:
    """Compile a validated flow into a plan; `prompts` are its registry prompts, already fetched."""
    spec = loaded.spec
    flow = spec.flow.name
    nodes = {
        node.id: NodePlan(id=node.id, subject=subjects.work(flow, node.id), durable=f"work-{flow}-{node.id}")
        for node in spec.nodes
    }
    execution = spec.config.execution
    return Plan(
        flow=flow,
        version=plan_version(loaded.source + (json.dumps(prompts, sort_keys=True) if prompts else "")),
        file=loaded.file,
        source=loaded.source,
        nodes=nodes,
        timeout_s=execution.timeout,
        max_retries=execution.max_retries,
        prompts=prompts or {},
    )


@lru_cache(maxsize=256)
def _spec_of(source: str, file: str, prompts: tuple[tuple[str, str], ...] = ()) -> FlowSpec:
    spec = load_flow_text(source, file).spec
    if not prompts:
        return spec
    texts = dict(prompts)
    nodes = [n.model_copy(update={"prompt": texts[n.id]}) if n.id in texts else n for n in spec.nodes]
    return spec.model_copy(update={"nodes": nodes})


class PlanStore:
    """Compiled plans in the ``ca_plans`` bucket: ``<flow>.<version>`` and ``<flow>.latest``."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._cache: dict[str, Plan] = {}

    async def publish(self, plan: Plan) -> None:
        """Store a plan version and make it the flow's latest."""
        await self._kv.put(plan.kv_key(), plan.model_dump_json().encode())
        await self._kv.put(f"{plan.flow}.latest", plan.version.encode())
        self._cache[plan.kv_key()] = plan

    async def get(self, flow: str, version: str) -> Plan | None:
        key = f"{flow}.{version}"
        if key not in self._cache:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None
            self._cache[key] = Plan.model_validate_json(entry.value or b"{}")
        return self._cache[key]

    async def latest(self, flow: str) -> Plan | None:
        try:
            entry = await self._kv.get(f"{flow}.latest")
        except KeyNotFoundError:
            return None
        return await self.get(flow, (entry.value or b"").decode())

    async def retire_except(self, served: set[str]) -> list[str]:
        """Stop serving every flow not in `served`: its ``latest`` goes (its versions stay, so runs
        pinned to them finish). Returns the flows retired."""
        retired = [flow for flow in await self.flows() if flow not in served]
        for flow in retired:
            await self._kv.delete(f"{flow}.latest")
        return retired

    async def flows(self) -> list[str]:
        """Names of every flow with a published plan."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        return sorted(k.removesuffix(".latest") for k in keys if k.endswith(".latest"))
