"""The `langchain:` adapter: allow-listed LangChain tools wrapped as ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.tools import ToolContext, ToolError, get_tool, openai_tool_spec, run_tool

# langchain_community and its dependencies warn about their own deprecations on import; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning")


async def test_an_allow_listed_langchain_tool_runs_as_one_of_ours(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    tool = get_tool("langchain:list_directory")
    spec = openai_tool_spec(tool)
    assert spec["function"]["name"] == "langchain_list_directory"
    assert "dir_path" in spec["function"]["parameters"]["properties"]
    listing = await run_tool(tool, {}, ToolContext(workspace=tmp_path))
    assert "notes.txt" in listing


def test_a_name_outside_the_allow_list_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ToolError, match=r"did you mean 'langchain:wikipedia'") as info:
        get_tool("langchain:wikipedai")
    assert "allowed: langchain:arxiv" in str(info.value)


def test_a_langchain_tool_whose_package_is_missing_says_what_to_install() -> None:
    with pytest.raises(ToolError, match=r"ca-actors\[tools\]"):
        get_tool("langchain:wikipedia")


async def test_extra_arguments_are_refused_before_the_langchain_tool_runs(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="surprise"):
        await run_tool(get_tool("langchain:list_directory"), {"surprise": 1}, ToolContext(workspace=tmp_path))
