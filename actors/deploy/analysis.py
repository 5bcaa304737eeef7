"""What a set of flows needs when deployed: which agents serve which nodes, which tools run where,
which secrets each process reads (environment variable *names* only, never values).

Pure: plans in, a `Deployment` out. The renderers (`compose`, `k8s`) turn it into files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from actors.flow import Plan
from configs import FlowSpec, NodeSpec

# Provider prefix of a litellm model name → the environment variables litellm reads for it.
PROVIDER_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY",),
    "vertex_ai": ("GOOGLE_APPLICATION_CREDENTIALS", "VERTEXAI_PROJECT", "VERTEXAI_LOCATION"),
    "azure": ("AZURE_API_KEY", "AZURE_API_BASE", "AZURE_API_VERSION"),
    "bedrock": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION_NAME"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "cohere": ("COHERE_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY",),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "huggingface": ("HUGGINGFACE_API_KEY",),
    "ollama": ("OLLAMA_API_BASE",),
    "ollama_chat": ("OLLAMA_API_BASE",),
}
# Models without a provider prefix that litellm sends to OpenAI (gpt-4o-mini, o3-mini, ...).
_OPENAI_BARE = re.compile(r"^(gpt-|o\d|chatgpt-|text-embedding-)")

# Built-in tools → the environment variables they read (any one of them configures the tool).
TOOL_ENV: dict[str, tuple[str, ...]] = {
    "web_search": ("SERPER_API_KEY", "TAVILY_API_KEY", "SEARXNG_URL"),
}

_DNS = re.compile(r"[^a-z0-9-]+")


def dns_name(*parts: str, limit: int = 52) -> str:
    """A Kubernetes/compose-safe name (lowercase letters, digits, '-') from `parts`; long ones get a hash.

    52 characters leave room for the suffixes Kubernetes adds (a Deployment's pods: ``-<10>-<5>``).
    """
    raw = "-".join(parts)
    name = _DNS.sub("-", raw.lower()).strip("-")
    name = re.sub("-{2,}", "-", name)
    if len(name) > limit or name != raw:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
        name = f"{name[: limit - 7].rstrip('-')}-{digest}" if len(name) > limit - 7 else f"{name}-{digest}"
    return name


@dataclass(frozen=True)
class NodePool:
    """The agents that serve one node: one Deployment (k8s) scaled on its consumer's lag."""

    name: str
    flow: str
    node: str
    durable: str
    tools: tuple[str, ...] = ()
    env: tuple[str, ...] = ()

    @property
    def flow_node(self) -> str:
        return f"{self.flow}.{self.node}"


@dataclass(frozen=True)
class ToolHost:
    """An agent that runs tools flows pin to it (``tools: [{name: ..., actor: NAME}]``)."""

    name: str
    actor: str
    tools: tuple[str, ...]
    env: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowFile:
    """A flow's source, shipped to the scheduler (compose: a directory; k8s: a ConfigMap)."""

    flow: str
    file_name: str
    source: str
    version: str


@dataclass
class Deployment:
    """Everything the manifests are made from."""

    flows: list[FlowFile] = field(default_factory=list)
    pools: list[NodePool] = field(default_factory=list)
    tool_hosts: list[ToolHost] = field(default_factory=list)
    # Models the flows name (None: the stack's default) and the provider keys the LLM gateway needs.
    models: list[str] = field(default_factory=list)
    gateway_env: list[str] = field(default_factory=list)

    def agent_env(self) -> list[str]:
        """Every secret name any node worker reads (the one generic agent of compose serves all nodes)."""
        return sorted({name for pool in self.pools for name in pool.env})

    def secret_names(self) -> list[str]:
        """Every secret name of the deployment."""
        names = set(self.gateway_env) | set(self.agent_env())
        names |= {n for host in self.tool_hosts for n in host.env}
        return sorted(names)


def model_env(model: str) -> tuple[str, ...]:
    """The environment variables litellm reads for `model` (none for mock and unknown providers)."""
    if model == "mock" or model.startswith("mock/"):
        return ()
    provider, sep, _ = model.partition("/")
    if sep:
        return PROVIDER_ENV.get(provider, ())
    return PROVIDER_ENV["openai"] if _OPENAI_BARE.match(model) else ()


def _tool_names(node: NodeSpec) -> tuple[list[str], dict[str, list[str]]]:
    """A node's tools that run in its worker, and those pinned to other actors (actor → tools)."""
    local: list[str] = []
    pinned: dict[str, list[str]] = {}
    for tool in node.tools:
        if isinstance(tool, str):
            local.append(tool)
        elif isinstance(tool.get("name"), str):
            actor = tool.get("actor")
            if isinstance(actor, str) and actor:
                pinned.setdefault(actor, []).append(tool["name"])
            else:
                local.append(tool["name"])
    return local, pinned


def _env_of_tools(tools: Iterable[str]) -> set[str]:
    return {name for tool in tools for name in TOOL_ENV.get(tool, ())}


def _flow_models(spec: FlowSpec) -> tuple[set[str], set[str]]:
    """The models a flow names (flow-wide and per node, with fallbacks) and the `api_key_env` names."""
    models: set[str] = set()
    keys: set[str] = set()
    for llm in [spec.config.llm, *(n.llm for n in spec.nodes)]:
        if llm is None:
            continue
        models |= {m for m in [llm.model, *llm.fallbacks] if m}
        if llm.api_key_env:
            keys.add(llm.api_key_env)
    return models, keys


def analyse(plans: list[Plan]) -> Deployment:
    """What deploying `plans` takes: node pools, tool hosts, the models and every secret's name."""
    deployment = Deployment()
    models: set[str] = set()
    gateway_env: set[str] = set()
    hosts: dict[str, set[str]] = {}
    for plan in sorted(plans, key=lambda p: p.flow):
        spec = plan.spec
        deployment.flows.append(FlowFile(plan.flow, f"{plan.flow}.yaml", plan.source, plan.version))
        flow_models, keys = _flow_models(spec)
        models |= flow_models
        gateway_env |= keys
        for node in spec.nodes:
            local, pinned = _tool_names(node)
            for actor, tools in pinned.items():
                hosts.setdefault(actor, set()).update(tools)
            deployment.pools.append(
                NodePool(
                    name=dns_name("agent", plan.flow, node.id),
                    flow=plan.flow,
                    node=node.id,
                    durable=plan.nodes[node.id].durable,
                    tools=tuple(local),
                    env=tuple(sorted(_env_of_tools(local))),
                )
            )
    for model in models:
        gateway_env |= set(model_env(model))
    deployment.models = sorted(models)
    deployment.gateway_env = sorted(gateway_env)
    deployment.tool_hosts = [
        ToolHost(dns_name("tools", actor), actor, tuple(sorted(tools)), tuple(sorted(_env_of_tools(tools))))
        for actor, tools in sorted(hosts.items())
    ]
    return deployment
