"""The registry of built-in tools: a dict by name, looked up with a suggestion on typos."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType

from ._base import Tool, ToolError
from ._calc import CALCULATOR
from ._data import DATA_TOOLS
from ._files import FILE_TOOLS
from ._langchain import LANGCHAIN_FACTORIES, PREFIX, langchain_tool
from ._python import PYTHON_EXEC
from ._system import SYSTEM_TOOLS
from ._web import WEB_TOOLS

_ALL: tuple[Tool, ...] = (*WEB_TOOLS, *FILE_TOOLS, *DATA_TOOLS, CALCULATOR, PYTHON_EXEC, *SYSTEM_TOOLS)

BUILTIN_TOOLS: Mapping[str, Tool] = MappingProxyType({tool.name: tool for tool in _ALL})


def get_tool(name: str) -> Tool:
    """The built-in tool called ``name``, or the allow-listed LangChain tool ``langchain:<name>``.

    Raises:
        ToolError: the name is unknown; the message names the closest valid name and lists them all.
    """
    if name.startswith(PREFIX):
        return langchain_tool(name)
    try:
        return BUILTIN_TOOLS[name]
    except KeyError:
        close = difflib.get_close_matches(name, BUILTIN_TOOLS, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ToolError(f"unknown tool {name!r}{hint}; built-in tools: {', '.join(sorted(BUILTIN_TOOLS))}") from None


def tool_names() -> frozenset[str]:
    """Every name a flow may list under ``tools:`` (built-in and allow-listed LangChain tools)."""
    return frozenset(BUILTIN_TOOLS) | {PREFIX + name for name in LANGCHAIN_FACTORIES}
