"""Node code shared by every engine: resolve the model, render the prompt, ask, validate, retry.

Pure of the bus: it takes an `LLMClient`, so the same code runs inside a node worker actor and inside
an in-process engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from actors.flow.code_exec import UnsandboxedRefused, code_outputs, sandbox_limits
from actors.flow.llm import ChatMessage, LLMClient, LLMReply, LLMRequest, ToolCall
from actors.flow.policy import budget_of
from actors.sandbox import SandboxError, SandboxPool
from actors.tools import Tool, ToolContext, ToolError, get_tool, openai_tool_spec, run_tool
from bus import ToolCalledData, ToolFinishedData, subjects
from configs import (
    SANDBOX_TOOLS,
    FlowSpec,
    LLMSpec,
    NodeSpec,
    OutputError,
    TemplateError,
    effective_sandbox,
    output_json_schema,
    placeholders,
    render,
    resolve_path,
    validate_output,
)
from configs.errors import ActorError

DEFAULT_MODEL = "mock"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class NodeFailed(ActorError):
    """The node cannot produce a valid output: the run fails with this error."""


class BudgetExceeded(ActorError):
    """The gateway refused the call: it would pass the run's or the flow's budget."""


class LLMUnavailable(ActorError):
    """The LLM call failed in a way a later attempt may fix (provider busy, gateway down)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        self.unreachable = unreachable
        super().__init__(message)


@dataclass(frozen=True)
class NodeOutcome:
    outputs: dict[str, Any]
    attempts: int
    model: str
    prompt: str


@dataclass(frozen=True)
class ModelChoice:
    model: str
    llm: LLMSpec | None
    # The flow names no model for the node: `model` is the default (the gateway may use the stack's).
    is_default: bool = False


def choose_model(spec: FlowSpec, node: NodeSpec, override: str | None, default: str = DEFAULT_MODEL) -> ModelChoice:
    """The model a node uses: ``--llm`` override, else the node's ``llm``, else ``config.llm``, else `default`."""
    llm = node.llm or spec.config.llm
    if override:
        return ModelChoice(override, llm)
    model = (node.llm.model if node.llm and node.llm.model else None) or (
        spec.config.llm.model if spec.config.llm and spec.config.llm.model else None
    )
    if model is None:
        return ModelChoice(default, llm, is_default=True)
    provider = (node.llm.provider if node.llm and node.llm.provider else None) or (
        spec.config.llm.provider if spec.config.llm else None
    )
    if provider and "/" not in model:
        model = f"{'ollama_chat' if provider == 'ollama' else provider}/{model}"
    return ModelChoice(model, llm)


def prompt_variables(node: NodeSpec, state: Mapping[str, Any], runtime: Mapping[str, Any]) -> dict[str, Any]:
    """Bare names a node's prompt may use besides state fields: its ``inputs`` and runtime names."""
    extra: dict[str, Any] = {"memory": ""}
    extra.update({name: resolve_path(state, path) for name, path in node.inputs.items()})
    extra.update(runtime)
    return extra


def parse_content(content: str) -> Any:
    """The JSON value in an LLM answer, tolerating code fences and prose around one object.

    Raises:
        ValueError: no JSON value could be read.
    """
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                pass
        raise ValueError(f"the answer is not JSON ({first.msg} at line {first.lineno} column {first.colno})") from None


def _system_prompt(spec: FlowSpec, node: NodeSpec, schema: Mapping[str, Any]) -> str:
    role = f"You are the step '{node.id}' of the workflow '{spec.flow.name}'."
    if node.description:
        role += f" Your job: {node.description.strip()}"
    return (
        f"{role}\nAnswer with a single JSON object and nothing else (no prose, no code fences). "
        f"It must match this JSON Schema:\n{json.dumps(schema, separators=(',', ':'))}"
    )


# Announces a tool call of an agent node (``tool.called`` / ``tool.finished``).
EventCallback = Callable[[ToolCalledData | ToolFinishedData], Awaitable[None]]
# Runs a tool on another actor: (actor name, tool name, arguments) -> result; raises ToolError.
RemoteTools = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]
DEFAULT_MAX_TOOL_CALLS = 10


# Told when an answer failed validation and the model is asked again: (attempt, problem).
RetryCallback = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class StepContext:
    """Which step of which run a node execution is (events, budgets and record/replay key on it), and
    the names it adds to the prompt (``item``/``index`` of a map item, ``error`` at an ``on_error`` target)."""

    run_id: str = ""
    step_id: str = ""
    index: int = 0
    runtime: Mapping[str, Any] = field(default_factory=dict)
    # The plan version the run is pinned to: the LLM gateway reads the node's provider settings from it.
    plan_version: str = ""


@dataclass(frozen=True)
class NodePorts:
    """How node code reaches the world: a model, tools here and on other actors, and whom it tells."""

    llm: LLMClient
    # ``--llm``: this model for every node.
    model_override: str | None = None
    tool_context: ToolContext | None = None
    remote_tools: RemoteTools | None = None
    on_event: EventCallback | None = None
    on_retry: RetryCallback | None = None
    # Where the tool calls of a step are remembered: a re-run step reuses them instead of calling again.
    journal: ToolJournal | None = None
    # Code nodes and python_exec run here (None: a pool of one per execution); enabled: false only when
    # the operator allowed it; mode: docker uses `sandbox_image` unless the flow names one.
    sandbox: SandboxPool | None = None
    allow_unsandboxed: bool = False
    sandbox_image: str | None = None


class ToolJournal(Protocol):
    """The tool calls of steps, by ``<step id>.<call number>``: what a re-run of the step reuses.

    A step is re-run from its start when the worker running it died or froze past ``ack_wait``: its
    model asks for the same tools again, and a side effect (a file appended, a message sent) must not
    happen twice. A call is claimed before it runs (insert-if-absent), so a re-run that finds it claimed
    waits for its result instead of running it too; only a worker that dies in the middle of the tool
    itself leaves a claim nobody finishes, taken over after `TOOL_CLAIM_LEASE_S`.
    """

    async def claim(self, key: str, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """Record `entry` under `key` if nothing is there yet and return None; else return what is there
        (None too when the journal cannot be written: the call is then simply made)."""
        ...

    async def recall(self, key: str) -> Mapping[str, Any] | None:
        """The entry recorded under `key`, or None (also when the journal cannot be read)."""
        ...

    async def record(self, key: str, entry: Mapping[str, Any]) -> None:
        """Remember `entry` under `key` (a failure to record is logged, never raised)."""
        ...


# How long a re-run waits for a tool call another try of the step claimed, before making the call itself.
TOOL_CLAIM_LEASE_S = 15.0


async def _journaled(journal: ToolJournal, key: str, call: ToolCall, run: Callable[[], Awaitable[Any]]) -> Any:
    """The result of `call`: made now (and journaled), or reused from an earlier try of the same step."""
    mine: dict[str, Any] = json.loads(
        json.dumps({"state": "running", "tool": call.name, "arguments": call.arguments, "at": time.time()}, default=str)
    )
    found = await journal.claim(key, mine)
    same = found is not None and found.get("tool") == call.name and found.get("arguments") == call.arguments
    deadline = time.monotonic() + TOOL_CLAIM_LEASE_S
    while same and found is not None and found.get("state") == "running" and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # another try of this step is making the call right now
        found = await journal.recall(key)
    if same and found is not None and found.get("state") == "done":
        return found.get("result")
    try:
        result = await run()
    except ToolError:
        await journal.record(key, {**mine, "state": "failed"})  # a re-run tries again at once
        raise
    await journal.record(key, {**mine, "state": "done", "result": json.loads(json.dumps(result, default=str))})
    return result


async def run_llm_node(
    spec: FlowSpec,
    node: NodeSpec,
    state: Mapping[str, Any],
    ports: NodePorts,
    *,
    step: StepContext | None = None,
    max_retries: int = 3,
    timeout_s: float | None = None,
) -> NodeOutcome:
    """Run one node: an ``llm`` node, or an agent when it has ``tools``.

    An agent may call its tools (at most ``max_tool_calls`` times, default 10) before it answers; each
    call is announced through ``ports.on_event`` (``tool.called`` / ``tool.finished``). The answer gets
    up to ``1 + max_retries`` attempts, the validation error fed back each time.

    Raises:
        NodeFailed: the model kept answering outside the schema, a tool failed (``on_error: fail``),
            or the model failed for good.
        LLMUnavailable: the model could not be reached; the step may be tried again later.
        BudgetExceeded: the gateway refused the call (a budget would be passed).
    """
    at = step or StepContext()
    if node.is_code:
        return await _run_code_node(spec, node, state, ports, at)
    ask = _Asker(spec, node, state, at, choose_model(spec, node, ports.model_override), timeout_s)
    tools = node_tools(node)
    specs = [openai_tool_spec(t.tool) for t in tools.values()]
    max_calls = node.max_tool_calls if node.max_tool_calls is not None else DEFAULT_MAX_TOOL_CALLS
    messages = ask.opening()
    problem = ""
    attempt = calls_made = 0
    for turn in itertools.count():
        offer = specs if calls_made < max_calls else []
        reply = await ports.llm.complete(ask.request(messages, offer, turn))
        _raise_for(reply, ask.choice.model)
        if reply.tool_calls and offer:
            messages.append(ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            for call in reply.tool_calls:
                calls_made += 1
                key = f"{at.step_id}.{calls_made}" if at.step_id else ""
                result = await _call_tool(spec, node, tools, call, ports, journal_key=key)
                content = json.dumps(result, ensure_ascii=False, default=str)
                messages.append(ChatMessage(role="tool", content=content, tool_call_id=call.id, name=call.name))
            if calls_made >= max_calls:
                messages.append(
                    ChatMessage(role="user", content=f"You have used all {max_calls} tool calls: answer now.")
                )
            continue
        try:
            outputs = validate_output(spec, node, parse_content(reply.content))
        except (ValueError, OutputError) as exc:
            problem = str(exc)
            attempt += 1
            if attempt > max_retries:
                break
            if ports.on_retry is not None:
                await ports.on_retry(attempt, problem)
            messages += [
                ChatMessage(role="assistant", content=reply.content),
                ChatMessage(
                    role="user",
                    content=f"That answer was invalid: {problem}\nReply again with only the corrected JSON object.",
                ),
            ]
            continue
        return NodeOutcome(
            outputs=outputs, attempts=attempt + 1, model=reply.model or ask.choice.model, prompt=ask.prompt
        )
    raise NodeFailed(f"node '{node.id}' gave no valid output after {max_retries + 1} attempts: {problem}")


async def _run_code_node(
    spec: FlowSpec, node: NodeSpec, state: Mapping[str, Any], ports: NodePorts, at: StepContext
) -> NodeOutcome:
    """A code node: its code in the sandbox, its result validated (a failure is for good: same code, same result)."""
    try:
        outputs = await code_outputs(
            spec,
            node,
            state,
            at.runtime,
            pool=ports.sandbox,
            allow_unsandboxed=ports.allow_unsandboxed,
            image=ports.sandbox_image,
        )
    except (ValueError, UnsandboxedRefused, SandboxError, TemplateError) as exc:
        raise NodeFailed(f"code node '{node.id}' failed: {exc}") from exc
    return NodeOutcome(outputs=outputs, attempts=1, model="sandbox", prompt=node.code or "")


class _Asker:
    """The prompt of one node execution and the requests it sends the model, turn after turn."""

    def __init__(
        self,
        spec: FlowSpec,
        node: NodeSpec,
        state: Mapping[str, Any],
        step: StepContext,
        choice: ModelChoice,
        timeout_s: float | None,
    ) -> None:
        self.spec, self.node, self.state, self.step, self.choice = spec, node, state, step, choice
        self.extra = prompt_variables(node, state, step.runtime)
        prompt = render(node.prompt, state, self.extra)
        if self.extra["memory"] and not any(p.path[:1] == ("memory",) for p in placeholders(node.prompt)):
            # Memory without a {memory} placeholder goes after the prompt (the seed's implicit context).
            prompt += f"\n\nWhat you remember from earlier runs:\n{self.extra['memory']}"
        self.prompt = prompt
        self.schema = output_json_schema(spec, node)
        limits = budget_of(spec)
        self.budget = limits.model_dump(exclude={"model_config"}) if limits is not None else None
        llm = choice.llm
        self.timeout_s = llm.timeout if llm and llm.timeout else timeout_s

    def opening(self) -> list[ChatMessage]:
        return [
            ChatMessage(role="system", content=_system_prompt(self.spec, self.node, self.schema)),
            ChatMessage(role="user", content=self.prompt),
        ]

    def request(self, messages: list[ChatMessage], tools: list[dict[str, Any]], turn: int) -> LLMRequest:
        llm = self.choice.llm
        return LLMRequest(
            model=self.choice.model,
            model_is_default=self.choice.is_default,
            messages=list(messages),
            output_schema=self.schema,
            tools=tools,
            fallbacks=list(llm.fallbacks) if llm else [],
            temperature=llm.temperature if llm else None,
            max_tokens=llm.max_tokens if llm else None,
            api_base=llm.api_base if llm else None,
            api_key_env=llm.api_key_env if llm else None,
            timeout_s=self.timeout_s,
            run_id=self.step.run_id,
            flow=self.spec.flow.name,
            plan_version=self.step.plan_version,
            budget=self.budget,
            node=self.node.id,
            step_id=self.step.step_id,
            index=self.step.index,
            attempt=turn,
            state=dict(self.state),
            extra=self.extra,
        )


def _raise_for(reply: LLMReply, model: str) -> None:
    """Raise the node-level error a failed LLM reply means."""
    if reply.error_kind == "budget":
        raise BudgetExceeded(reply.error or "budget exceeded")
    if reply.error_kind in ("transient", "unreachable"):
        raise LLMUnavailable(reply.error or "LLM call failed", unreachable=reply.error_kind == "unreachable")
    if reply.error_kind == "permanent":
        raise NodeFailed(f"LLM call to {model} failed: {reply.error}")


def default_tool_context(workspace: Path | None = None, allowed_hosts: str = "") -> ToolContext:
    """Tools confined to ``.ca-actors/workspace`` (or `workspace`), reaching only `allowed_hosts` (comma-separated)."""
    root = workspace or Path(".ca-actors") / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    hosts = frozenset(h.strip() for h in allowed_hosts.split(",") if h.strip())
    return ToolContext(workspace=root.resolve(), allowed_hosts=hosts, env=dict(os.environ))


@dataclass(frozen=True)
class NodeTool:
    tool: Tool
    on_error: str = "fail"
    # The actor (``ca-actors agent --name NAME --serve-tools``) the tool must run on; None: here.
    actor: str | None = None


def node_tools(node: NodeSpec) -> dict[str, NodeTool]:
    """The node's tools by name: seed form (a name, or ``{name, on_error}``) plus ``actor:``.

    Raises:
        NodeFailed: a tool name is unknown (the message suggests the closest one).
    """
    found: dict[str, NodeTool] = {}
    for entry in node.tools:
        name = entry if isinstance(entry, str) else str(entry.get("name", ""))
        try:
            tool = get_tool(name)
        except ToolError as exc:
            raise NodeFailed(f"node '{node.id}': {exc}") from exc
        # Keyed by the name the model calls (a LangChain tool `langchain:x` is called `langchain_x`).
        if isinstance(entry, str):
            found[tool.name] = NodeTool(tool)
        else:
            actor = entry.get("actor")
            found[tool.name] = NodeTool(tool, str(entry.get("on_error", "fail")), str(actor) if actor else None)
    return found


def tools_pinned_to(spec: FlowSpec, actor: str) -> set[str]:
    """Names (as the model calls them) of the tools a flow's nodes pin to `actor` (``{name, actor}``);
    an unknown tool name is left out (the node itself fails on it)."""
    pinned: set[str] = set()
    for node in spec.nodes:
        for entry in node.tools:
            if not isinstance(entry, dict) or not entry.get("actor"):
                continue
            if subjects.actor_token(str(entry["actor"])) != actor:
                continue
            try:
                pinned.add(get_tool(str(entry.get("name", ""))).name)
            except ToolError:
                continue
    return pinned


# Characters of a tool result (as JSON) the model and the `tool.finished` event get: NATS takes at most
# 1 MiB per message, and a bigger result would make the event (and the next LLM request) fail to publish,
# so the whole step would run again and repeat the tool's side effects.
MAX_TOOL_RESULT_CHARS = 64_000


def clip_tool_result(result: Any) -> Any:
    """`result` itself, or, when its JSON is longer than `MAX_TOOL_RESULT_CHARS`, its beginning as text
    followed by a marker that says it was clipped and how long it was."""
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    if len(text) <= MAX_TOOL_RESULT_CHARS:
        return result
    return (
        f"{text[:MAX_TOOL_RESULT_CHARS]}\n[clipped by ca-actors: the tool returned {len(text):,} characters "
        f"({len(text.encode('utf-8', errors='replace')):,} bytes); only the first {MAX_TOOL_RESULT_CHARS:,} are shown]"
    )


def _tool_context(spec: FlowSpec, node: NodeSpec, tool: Tool, ports: NodePorts) -> ToolContext:
    """The context a tool call runs in; a sandbox tool (python_exec) gets the pool and the node's limits."""
    ctx = ports.tool_context or default_tool_context()
    if tool.name not in SANDBOX_TOOLS:
        return ctx
    block = effective_sandbox(spec, node)
    if not block.enabled and not ports.allow_unsandboxed:
        raise ToolError(f"node '{node.id}' asks for {tool.name} without a sandbox; the operator must allow it")
    return dataclasses.replace(ctx, sandbox=ports.sandbox, sandbox_limits=sandbox_limits(block))


async def _call_tool(
    spec: FlowSpec,
    node: NodeSpec,
    tools: Mapping[str, NodeTool],
    call: ToolCall,
    ports: NodePorts,
    *,
    journal_key: str = "",
) -> Any:
    on_event, remote, journal = ports.on_event, ports.remote_tools, ports.journal
    if on_event is not None:
        await on_event(ToolCalledData(tool=call.name, arguments=call.arguments, call_id=call.id))
    started = time.perf_counter()
    entry = tools.get(call.name)

    async def run() -> Any:
        if entry is None:
            raise ToolError(f"the model asked for tool {call.name!r}, which node '{node.id}' does not have")
        if entry.actor is None:
            done = await run_tool(entry.tool, call.arguments, _tool_context(spec, node, entry.tool, ports))
        elif remote is None:
            raise ToolError(f"tool {call.name} runs on actor {entry.actor!r}, which needs the bus engine")
        else:
            done = await remote(entry.actor, call.name, call.arguments)
        return clip_tool_result(done)

    try:
        result = await (_journaled(journal, journal_key, call, run) if journal is not None and journal_key else run())
        error = None
    except ToolError as exc:  # journaled as failed: a re-run of the step tries it again
        error = str(exc)
        result = {"error": error}
    took = round((time.perf_counter() - started) * 1000, 3)
    if on_event is not None:
        finished = ToolFinishedData(
            tool=call.name,
            call_id=call.id,
            duration_ms=took,
            error=error,
            actor=entry.actor if entry is not None else None,
            result=result if error is None else None,
        )
        await on_event(finished)
    if error is not None and (entry is None or entry.on_error != "continue"):
        raise NodeFailed(f"tool {call.name} failed: {error}")
    return result
