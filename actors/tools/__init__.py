"""Built-in tools for agent nodes: web, files (confined to a workspace), data, calculator and system.

    from actors.tools import ToolContext, get_tool, run_tool, openai_tool_spec

    ctx = ToolContext(workspace=Path("work"), allowed_hosts=frozenset({"example.com"}))
    result = await run_tool(get_tool("calculator"), {"expression": "2 ** 10"}, ctx)

Tools run in the calling process. Every failure reaches the caller as a ``ToolError``.
"""

from __future__ import annotations

from ._base import FunctionTool, Tool, ToolContext, ToolError, object_schema, openai_tool_spec, run_tool, validate_args
from ._html import html_to_text
from ._registry import BUILTIN_TOOLS, get_tool, tool_names

__all__ = [
    "BUILTIN_TOOLS",
    "FunctionTool",
    "Tool",
    "ToolContext",
    "ToolError",
    "get_tool",
    "html_to_text",
    "object_schema",
    "openai_tool_spec",
    "run_tool",
    "tool_names",
    "validate_args",
]
