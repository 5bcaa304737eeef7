"""The tool port: registry, OpenAI specs, argument validation, timeouts and error wrapping in run_tool."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from actors.tools import (
    BUILTIN_TOOLS,
    FunctionTool,
    Tool,
    ToolContext,
    ToolError,
    get_tool,
    object_schema,
    openai_tool_spec,
    run_tool,
)
from configs.errors import CaActorsError

EXPECTED_TOOLS = {
    "web_search",
    "python_exec",
    "serper_search",
    "web_scrape",
    "http_request",
    "file_read",
    "file_write",
    "file_glob",
    "json_parse",
    "yaml_parse",
    "csv_read",
    "sql_query",
    "calculator",
    "datetime_now",
    "env_vars",
}


def _tool(fn: Any, *, timeout_s: float = 5.0, **properties: Mapping[str, Any]) -> FunctionTool:
    return FunctionTool(
        name="probe",
        description="A tool made by a test.",
        parameters=object_schema(properties, required=list(properties)[:1]),
        fn=fn,
        timeout_s=timeout_s,
    )


async def _echo(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return dict(args)


def test_the_registry_holds_every_builtin_tool_under_its_own_name() -> None:
    assert set(BUILTIN_TOOLS) == EXPECTED_TOOLS
    for name, tool in BUILTIN_TOOLS.items():
        assert tool.name == name
        assert isinstance(tool, Tool)
        assert tool.timeout_s > 0
        assert get_tool(name) is tool


def test_the_registry_cannot_be_changed_by_callers() -> None:
    with pytest.raises(TypeError):
        BUILTIN_TOOLS["rm_rf"] = BUILTIN_TOOLS["calculator"]  # type: ignore[index]


def test_web_search_and_serper_search_are_the_same_tool_under_two_names() -> None:
    web, serper = get_tool("web_search"), get_tool("serper_search")
    assert isinstance(web, FunctionTool)
    assert isinstance(serper, FunctionTool)
    assert web.fn is serper.fn
    assert web.parameters == serper.parameters


def test_get_tool_names_the_closest_valid_tool_for_a_typo() -> None:
    with pytest.raises(ToolError, match=r"unknown tool 'web_serch' \(did you mean 'web_search'\?\)") as info:
        get_tool("web_serch")
    assert "calculator" in str(info.value)  # the full list follows
    assert isinstance(info.value, CaActorsError)


def test_get_tool_lists_the_builtin_tools_when_nothing_is_close() -> None:
    with pytest.raises(ToolError) as info:
        get_tool("zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "built-in tools: calculator, csv_read" in str(info.value)


@pytest.mark.parametrize("name", sorted(EXPECTED_TOOLS))
def test_openai_tool_spec_describes_every_builtin_as_a_strict_function(name: str) -> None:
    tool = get_tool(name)
    spec = openai_tool_spec(tool)
    assert set(spec) == {"type", "function"}
    assert spec["type"] == "function"
    function = spec["function"]
    assert set(function) == {"name", "description", "parameters"}
    assert function["name"] == name
    assert len(function["description"]) > 20
    params = function["parameters"]
    assert params["type"] == "object"
    assert params["additionalProperties"] is False
    assert set(params["required"]) <= set(params["properties"])
    assert all(prop.get("description") for prop in params["properties"].values())
    json.dumps(spec)  # sent over the wire as is
    params["properties"]["injected"] = {"type": "string"}
    assert "injected" not in tool.parameters["properties"]  # the spec is a copy


async def test_run_tool_lists_every_argument_problem_at_once(ctx: ToolContext) -> None:
    tool = _tool(_echo, text={"type": "string"}, count={"type": "integer", "minimum": 1})
    with pytest.raises(ToolError) as info:
        await run_tool(tool, {"count": "three", "colour": "red"}, ctx)
    message = str(info.value)
    assert message.startswith("tool probe: invalid arguments:")
    assert "missing required argument 'text'" in message
    assert "unexpected argument 'colour' (allowed: text, count)" in message
    assert "'count' must be an integer, got string" in message


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"text": 3}, "'text' must be a string, got integer"),
        ({"text": "a", "count": True}, "'count' must be an integer, got boolean"),
        ({"text": "a", "count": 1.5}, "'count' must be an integer, got number"),
        ({"text": "a", "count": 0}, "'count' must be >= 1, got 0"),
        ({"text": "a", "mode": "delete"}, "'mode' must be one of 'write', 'append', got 'delete'"),
        ({"text": None}, "'text' must be a string, got null"),
    ],
)
async def test_run_tool_rejects_arguments_of_the_wrong_type_or_value(
    ctx: ToolContext, args: dict[str, Any], problem: str
) -> None:
    tool = _tool(
        _echo,
        text={"type": "string"},
        count={"type": "integer", "minimum": 1},
        mode={"type": "string", "enum": ["write", "append"]},
    )
    with pytest.raises(ToolError, match="invalid arguments") as info:
        await run_tool(tool, args, ctx)
    assert problem in str(info.value)


async def test_run_tool_accepts_valid_arguments_and_integral_floats(ctx: ToolContext) -> None:
    tool = _tool(_echo, text={"type": "string"}, count={"type": "integer"})
    assert await run_tool(tool, {"text": "a", "count": 2.0}, ctx) == {"text": "a", "count": 2.0}


async def test_run_tool_refuses_arguments_that_are_not_an_object(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="arguments must be a JSON object, got array"):
        await run_tool(get_tool("calculator"), ["1 + 1"], ctx)  # type: ignore[arg-type]


async def test_run_tool_stops_a_tool_at_its_timeout(ctx: ToolContext) -> None:
    async def sleepy(args: Mapping[str, Any], ctx: ToolContext) -> str:
        await asyncio.sleep(10)
        return "too late"

    started = time.monotonic()
    with pytest.raises(ToolError, match=r"^tool probe: timed out after 0\.1s$"):
        await run_tool(_tool(sleepy, timeout_s=0.1), {}, ctx)
    assert time.monotonic() - started < 2


async def test_the_context_timeout_caps_the_tool_timeout_and_reaches_the_tool(workspace: Path) -> None:
    seen: list[float] = []

    async def budget(args: Mapping[str, Any], ctx: ToolContext) -> None:
        seen.append(ctx.timeout_s)
        await asyncio.sleep(10)

    tight = ToolContext(workspace=workspace, env={}, timeout_s=0.2)
    with pytest.raises(ToolError, match=r"timed out after 0\.2s"):
        await run_tool(_tool(budget, timeout_s=30), {}, tight)
    assert seen == [0.2]


async def test_run_tool_turns_an_unexpected_exception_into_a_tool_error(ctx: ToolContext) -> None:
    async def broken(args: Mapping[str, Any], ctx: ToolContext) -> None:
        raise KeyError("boom")

    with pytest.raises(ToolError, match=r"^tool probe: failed with KeyError: 'boom'$") as info:
        await run_tool(_tool(broken), {}, ctx)
    assert isinstance(info.value.__cause__, KeyError)


async def test_run_tool_tells_a_tools_own_timeout_error_from_its_deadline(ctx: ToolContext) -> None:
    async def own_timeout(args: Mapping[str, Any], ctx: ToolContext) -> None:
        raise TimeoutError("socket read")

    with pytest.raises(ToolError, match=r"failed with TimeoutError: socket read"):
        await run_tool(_tool(own_timeout), {}, ctx)


async def test_run_tool_names_the_tool_in_errors_the_tool_raises(ctx: ToolContext) -> None:
    async def refuses(args: Mapping[str, Any], ctx: ToolContext) -> None:
        raise ToolError("set PROBE_KEY")

    with pytest.raises(ToolError, match=r"^tool probe: set PROBE_KEY$") as info:
        await run_tool(_tool(refuses), {}, ctx)
    assert info.value.tool == "probe"
    assert info.value.detail == "set PROBE_KEY"


async def test_run_tool_lets_cancellation_through(ctx: ToolContext) -> None:
    async def cancelled(args: Mapping[str, Any], ctx: ToolContext) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_tool(_tool(cancelled), {}, ctx)


def test_a_default_context_creates_its_workspace_and_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CA_TOOLS_PROBE", "1")
    ctx = ToolContext()
    assert ctx.workspace == (tmp_path / ".ca-actors" / "workspace").resolve()
    assert ctx.workspace.is_dir()
    assert ctx.allowed_hosts == frozenset()
    assert ctx.env["CA_TOOLS_PROBE"] == "1"


def test_a_context_normalises_hosts_and_refuses_a_nonpositive_timeout(workspace: Path) -> None:
    ctx = ToolContext(workspace=workspace, allowed_hosts=frozenset({" Example.COM "}))
    assert ctx.allowed_hosts == frozenset({"example.com"})
    with pytest.raises(ToolError, match="timeout_s must be > 0"):
        ToolContext(workspace=workspace, timeout_s=0)
