"""LangChain tools, by name from an allow-list, when the optional ``[tools]`` extra is installed.

A node lists ``langchain:<name>`` among its tools. Only the names below can be loaded — each maps to a
factory written here, never to a module path taken from a flow file. The LangChain tool is wrapped as
one of ours (its argument schema becomes the JSON schema the model sees; it runs through `ainvoke`), so
timeouts, argument checks and clear errors apply as for the built-in tools.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._base import DEFAULT_TIMEOUT_S, ToolContext, ToolError

PREFIX = "langchain:"


def _wikipedia(workspace: Path) -> Any:
    from langchain_community.tools import WikipediaQueryRun
    from langchain_community.utilities import WikipediaAPIWrapper

    return WikipediaQueryRun(api_wrapper=WikipediaAPIWrapper())  # type: ignore[call-arg]  # wrapper fields default


def _duckduckgo(workspace: Path) -> Any:
    from langchain_community.tools import DuckDuckGoSearchRun

    return DuckDuckGoSearchRun()


def _arxiv(workspace: Path) -> Any:
    from langchain_community.tools import ArxivQueryRun

    return ArxivQueryRun()


def _list_directory(workspace: Path) -> Any:
    from langchain_community.tools.file_management import ListDirectoryTool

    return ListDirectoryTool(root_dir=str(workspace))


# name -> factory(workspace) building the LangChain tool; the allow-list.
LANGCHAIN_FACTORIES: dict[str, Callable[[Path], Any]] = {
    "wikipedia": _wikipedia,
    "duckduckgo_search": _duckduckgo,
    "arxiv": _arxiv,
    "list_directory": _list_directory,
}


@dataclass(frozen=True)
class LangChainTool:
    """A LangChain ``BaseTool`` (built per call in the caller's workspace) seen as one of our tools."""

    name: str
    description: str
    parameters: dict[str, Any]
    factory: Callable[[Path], Any] = field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S

    async def call(self, args: Mapping[str, Any], ctx: ToolContext) -> Any:
        tool = self.factory(ctx.workspace)
        return await tool.ainvoke(dict(args))


def langchain_tool(spec: str) -> LangChainTool:
    """The allow-listed LangChain tool named by ``langchain:<name>``.

    Raises:
        ToolError: the name is not allow-listed (closest suggested), or the ``[tools]`` extra (or the
            package the tool itself needs) is not installed.
    """
    name = spec.removeprefix(PREFIX)
    factory = LANGCHAIN_FACTORIES.get(name)
    if factory is None:
        close = difflib.get_close_matches(name, LANGCHAIN_FACTORIES, n=1)
        hint = f" (did you mean '{PREFIX}{close[0]}'?)" if close else ""
        allowed = ", ".join(PREFIX + n for n in sorted(LANGCHAIN_FACTORIES))
        raise ToolError(f"{spec!r} is not an allow-listed LangChain tool{hint}; allowed: {allowed}")
    try:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        tool = factory(Path("."))
        function = convert_to_openai_tool(tool)["function"]
    except ImportError as exc:
        raise ToolError(
            f"{spec} needs LangChain tools: install the extra (pip install 'ca-actors[tools]') and what the tool "
            f"itself needs ({exc.name or exc})"
        ) from None
    parameters = dict(function.get("parameters") or {"type": "object", "properties": {}})
    parameters.setdefault("additionalProperties", False)
    return LangChainTool(
        name=f"langchain_{name}",
        description=str(function.get("description") or name),
        parameters=parameters,
        factory=factory,
    )
