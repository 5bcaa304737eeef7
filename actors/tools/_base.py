"""The tool port: context, error, protocol, argument validation and the guarded ``run_tool`` call.

A tool is anything with a name, a description, a JSON Schema for its arguments, a timeout and an async
``call``. ``run_tool`` is the one way to call a tool: it checks the arguments against the schema, bounds the
call by the timeout and turns every failure into a ``ToolError`` whose message says what went wrong and,
where it can, how to fix it. Raw exceptions never leave ``run_tool`` (``CancelledError`` aside).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from actors.sandbox import Limits, SandboxPool
from configs.errors import ActorError

DEFAULT_WORKSPACE = Path(".ca-actors") / "workspace"
DEFAULT_TIMEOUT_S = 20.0


class ToolError(ActorError):
    """A tool call failed; the message says what went wrong and how to fix it.

    Attributes:
        tool: the tool's name, once known (``run_tool`` fills it in).
        detail: the message without the tool-name prefix.
    """

    def __init__(self, detail: str, *, tool: str | None = None) -> None:
        self.tool = tool
        self.detail = detail
        super().__init__(f"tool {tool}: {detail}" if tool else detail)


@dataclass(frozen=True)
class ToolContext:
    """What a tool may touch: the workspace, the hosts it may reach, the environment and a time budget.

    The workspace is resolved to an absolute path and created. Host names are compared lower-case;
    ``"*"`` allows any host and ``"*.example.com"`` any subdomain of example.com.
    """

    workspace: Path = DEFAULT_WORKSPACE
    allowed_hosts: frozenset[str] = frozenset()
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    timeout_s: float = DEFAULT_TIMEOUT_S
    # python_exec: the node worker's sandbox pool (None: a pool of one per call) and the node's limits.
    sandbox: SandboxPool | None = None
    sandbox_limits: Limits | None = None

    def __post_init__(self) -> None:
        workspace = Path(self.workspace).expanduser().resolve()
        workspace.mkdir(parents=True, exist_ok=True)
        # Frozen dataclass: normalise the fields once, here, so every tool sees the same values.
        object.__setattr__(self, "workspace", workspace)
        object.__setattr__(self, "allowed_hosts", frozenset(h.strip().lower() for h in self.allowed_hosts))
        if not self.timeout_s > 0:
            raise ToolError(f"timeout_s must be > 0, got {self.timeout_s}")


@runtime_checkable
class Tool(Protocol):
    """A tool an LLM may call. Members are read-only, so frozen dataclasses and plain classes both fit."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON Schema of the arguments: an object with properties, required and additionalProperties false."""
        ...

    @property
    def timeout_s(self) -> float: ...

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the tool with validated arguments; return a JSON-able value or raise ``ToolError``."""
        ...


ToolFn = Callable[[Mapping[str, Any], ToolContext], Awaitable[Any]]


@dataclass(frozen=True)
class FunctionTool:
    """A ``Tool`` made of metadata and an async function (how every built-in tool is defined)."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn = field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the tool function."""
        return await self.fn(args, ctx)


def object_schema(properties: Mapping[str, Mapping[str, Any]], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON Schema for an arguments object that accepts exactly ``properties``.

    Args:
        properties: property name → JSON Schema of that property.
        required: names that must be present.

    Returns:
        ``{"type": "object", "properties": ..., "required": [...], "additionalProperties": False}``.
    """
    return {
        "type": "object",
        "properties": {name: dict(schema) for name, schema in properties.items()},
        "required": list(required),
        "additionalProperties": False,
    }


def openai_tool_spec(tool: Tool) -> dict[str, Any]:
    """The OpenAI (and litellm) function-calling description of a tool.

    Returns:
        ``{"type": "function", "function": {"name", "description", "parameters"}}`` (parameters copied).
    """
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": copy.deepcopy(tool.parameters),
        },
    }


_JSON_TYPES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _is_type(value: Any, json_type: str) -> bool:
    """Whether ``value`` (decoded JSON) is of the JSON Schema type ``json_type``."""
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        # JSON Schema counts 3.0 as an integer; bool is not a number even though Python says so.
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "object":
        return isinstance(value, Mapping)
    if json_type == "array":
        return isinstance(value, list | tuple)
    if json_type == "null":
        return value is None
    return True  # an unknown type name constrains nothing


def _type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    for json_type in ("boolean", "integer", "number", "string", "object", "array", "null"):
        if _is_type(value, json_type):
            return json_type
    return type(value).__name__


def _property_problems(name: str, value: Any, schema: Mapping[str, Any]) -> list[str]:
    """What is wrong with one top-level argument (type, enum, minimum/maximum)."""
    declared = schema.get("type")
    types = [declared] if isinstance(declared, str) else list(declared or [])
    if types and not any(_is_type(value, t) for t in types):
        wanted = " or ".join(_JSON_TYPES.get(t, t) for t in types)
        return [f"'{name}' must be {wanted}, got {_type_name(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(c) for c in schema["enum"])
        problems.append(f"'{name}' must be one of {choices}, got {value!r}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"'{name}' must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"'{name}' must be <= {schema['maximum']}, got {value}")
    return problems


def validate_args(args: Any, parameters: Mapping[str, Any]) -> list[str]:
    """Check tool arguments against the tool's JSON Schema (top level only).

    Args:
        args: the decoded arguments an LLM sent.
        parameters: the tool's ``parameters`` schema.

    Returns:
        Every problem found, as sentences; empty when the arguments fit.
    """
    if not isinstance(args, Mapping):
        return [f"arguments must be a JSON object, got {_type_name(args)}"]
    properties: Mapping[str, Any] = parameters.get("properties", {})
    problems = [f"missing required argument '{name}'" for name in parameters.get("required", []) if name not in args]
    if parameters.get("additionalProperties") is False:
        extras = sorted(str(k) for k in args if k not in properties)
        if extras:
            allowed = ", ".join(properties) or "none"
            problems.extend(f"unexpected argument '{k}' (allowed: {allowed})" for k in extras)
    for name, value in args.items():
        if name in properties:
            problems.extend(_property_problems(str(name), value, properties[name]))
    return problems


def effective_timeout(tool: Tool, ctx: ToolContext) -> float:
    """The time budget of one call: the tool's own timeout, capped by the context's."""
    own = tool.timeout_s
    return min(own, ctx.timeout_s) if own and own > 0 else ctx.timeout_s


async def run_tool(tool: Tool, args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Validate the arguments, call the tool within its time budget and return its result.

    The tool is given a context whose ``timeout_s`` is the effective budget, so tools can bound their own
    I/O (HTTP, SQLite) by it.

    Args:
        tool: the tool to call.
        args: its arguments (decoded JSON).
        ctx: what the tool may touch.

    Returns:
        The tool's JSON-able result.

    Raises:
        ToolError: invalid arguments, a timeout, a failure reported by the tool, or any unexpected exception
            (named by type and message). ``asyncio.CancelledError`` is never swallowed.
    """
    problems = validate_args(args, tool.parameters)
    if problems:
        raise ToolError("invalid arguments: " + "; ".join(problems), tool=tool.name)
    budget = effective_timeout(tool, ctx)
    call_ctx = ctx if budget == ctx.timeout_s else dataclasses.replace(ctx, timeout_s=budget)
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            return await tool.call(dict(args), call_ctx)
    except TimeoutError as exc:
        if not deadline.expired():  # a TimeoutError of the tool's own making (a socket, a lock)
            raise ToolError(f"failed with TimeoutError: {exc}", tool=tool.name) from exc
        raise ToolError(f"timed out after {budget:g}s", tool=tool.name) from exc
    except ToolError as exc:
        if exc.tool:
            raise
        raise ToolError(exc.detail, tool=tool.name) from exc
    except Exception as exc:
        raise ToolError(f"failed with {type(exc).__name__}: {exc}", tool=tool.name) from exc
