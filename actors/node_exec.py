"""Node code shared by every engine: resolve the model, render the prompt, ask, validate, retry.

Pure of the bus: it takes an `LLMClient`, so the same code runs inside a node worker actor and inside
an in-process engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from actors.llm_types import ChatMessage, LLMClient, LLMReply, LLMRequest
from configs import (
    FlowSpec,
    LLMSpec,
    NodeSpec,
    OutputError,
    output_json_schema,
    placeholders,
    render,
    resolve_path,
    validate_output,
)
from configs.errors import CaActorsError

DEFAULT_MODEL = "mock"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class NodeFailed(CaActorsError):
    """The node cannot produce a valid output: the run fails with this error."""


class LLMUnavailable(CaActorsError):
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


def choose_model(spec: FlowSpec, node: NodeSpec, override: str | None, default: str = DEFAULT_MODEL) -> ModelChoice:
    """The model a node uses: ``--llm`` override, else the node's ``llm``, else ``config.llm``, else `default`."""
    llm = node.llm or spec.config.llm
    if override:
        return ModelChoice(override, llm)
    model = (node.llm.model if node.llm and node.llm.model else None) or (
        spec.config.llm.model if spec.config.llm and spec.config.llm.model else None
    )
    if model is None:
        return ModelChoice(default, llm)
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


async def run_llm_node(
    spec: FlowSpec,
    node: NodeSpec,
    state: Mapping[str, Any],
    *,
    llm: LLMClient,
    model_override: str | None = None,
    max_retries: int = 3,
    runtime: Mapping[str, Any] | None = None,
    run_id: str = "",
    step_id: str = "",
    index: int = 0,
    timeout_s: float | None = None,
    on_retry: Callable[[int, str], Awaitable[None]] | None = None,
) -> NodeOutcome:
    """Run one ``llm`` node: up to ``1 + max_retries`` attempts, feeding validation errors back.

    Raises:
        NodeFailed: the model kept answering outside the schema, or failed for good.
        LLMUnavailable: the model could not be reached; the step may be tried again later.
    """
    extra = prompt_variables(node, state, runtime or {})
    prompt = render(node.prompt, state, extra)
    if extra["memory"] and not any(p.path[:1] == ("memory",) for p in placeholders(node.prompt)):
        # Memory without a {memory} placeholder goes after the prompt (the seed's implicit context).
        prompt += f"\n\nWhat you remember from earlier runs:\n{extra['memory']}"
    schema = output_json_schema(spec, node)
    choice = choose_model(spec, node, model_override)
    messages = [
        ChatMessage(role="system", content=_system_prompt(spec, node, schema)),
        ChatMessage(role="user", content=prompt),
    ]
    problem = ""
    for attempt in range(max_retries + 1):
        request = LLMRequest(
            model=choice.model,
            messages=messages,
            output_schema=schema,
            temperature=choice.llm.temperature if choice.llm else None,
            max_tokens=choice.llm.max_tokens if choice.llm else None,
            api_base=choice.llm.api_base if choice.llm else None,
            api_key_env=choice.llm.api_key_env if choice.llm else None,
            timeout_s=(choice.llm.timeout if choice.llm and choice.llm.timeout else timeout_s),
            run_id=run_id,
            node=node.id,
            step_id=step_id,
            index=index,
            attempt=attempt,
            state=dict(state),
            extra=extra,
        )
        reply: LLMReply = await llm.complete(request)
        if not reply.ok:
            if reply.retryable:
                raise LLMUnavailable(reply.error or "LLM call failed", unreachable=reply.unreachable)
            raise NodeFailed(f"LLM call to {choice.model} failed: {reply.error}")
        try:
            outputs = validate_output(spec, node, parse_content(reply.content))
        except (ValueError, OutputError) as exc:
            problem = str(exc)
            if on_retry is not None and attempt < max_retries:
                await on_retry(attempt + 1, problem)
            messages = [
                *messages,
                ChatMessage(role="assistant", content=reply.content),
                ChatMessage(
                    role="user",
                    content=f"That answer was invalid: {problem}\nReply again with only the corrected JSON object.",
                ),
            ]
            continue
        return NodeOutcome(outputs=outputs, attempts=attempt + 1, model=reply.model or choice.model, prompt=prompt)
    raise NodeFailed(f"node '{node.id}' gave no valid output after {max_retries + 1} attempts: {problem}")
