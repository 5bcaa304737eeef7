"""File tools stay inside the workspace: '..', absolute paths and symlinks pointing outside are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, run_tool


async def _call(name: str, ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool(name), args, ctx)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file next to (not inside) the workspace."""
    path = tmp_path / "outside.txt"
    path.write_text("secret outside the workspace")
    return path


async def test_a_file_written_can_be_read_back_and_globbed(ctx: ToolContext) -> None:
    written = await _call("file_write", ctx, path="notes/report.md", content="# Report\nline 2\n")
    assert written == {"path": "notes/report.md", "mode": "write", "chars_written": 16, "size_bytes": 16}
    assert (ctx.workspace / "notes" / "report.md").read_text() == "# Report\nline 2\n"

    read = await _call("file_read", ctx, path="notes/report.md")
    assert read == {"path": "notes/report.md", "content": "# Report\nline 2\n", "size_bytes": 16, "truncated": False}

    await _call("file_write", ctx, path="notes/todo.txt", content="x")
    globbed = await _call("file_glob", ctx, pattern="**/*.md")
    assert globbed == {"pattern": "**/*.md", "matches": ["notes/report.md"], "truncated": False}
    everything = await _call("file_glob", ctx)
    assert everything["matches"] == ["notes/", "notes/report.md", "notes/todo.txt"]


async def test_append_mode_adds_to_a_file_and_write_mode_replaces_it(ctx: ToolContext) -> None:
    await _call("file_write", ctx, path="log.txt", content="one\n")
    appended = await _call("file_write", ctx, path="log.txt", content="two\n", mode="append")
    assert appended["size_bytes"] == 8
    assert (await _call("file_read", ctx, path="log.txt"))["content"] == "one\ntwo\n"
    await _call("file_write", ctx, path="log.txt", content="three\n")
    assert (await _call("file_read", ctx, path="log.txt"))["content"] == "three\n"


async def test_file_read_truncates_at_max_chars(ctx: ToolContext) -> None:
    (ctx.workspace / "long.txt").write_text("abcdefghij")
    read = await _call("file_read", ctx, path="long.txt", max_chars=4)
    assert read["content"] == "abcd"
    assert read["truncated"] is True


async def test_file_glob_stops_at_its_limit(ctx: ToolContext) -> None:
    for i in range(5):
        (ctx.workspace / f"f{i}.txt").write_text("x")
    globbed = await _call("file_glob", ctx, pattern="*.txt", limit=2)
    assert len(globbed["matches"]) == 2
    assert globbed["truncated"] is True


@pytest.mark.parametrize("tool", ["file_read", "file_write"])
async def test_a_path_climbing_out_with_dotdot_is_rejected(ctx: ToolContext, outside: Path, tool: str) -> None:
    args = {"path": "../outside.txt"} | ({"content": "overwritten"} if tool == "file_write" else {})
    with pytest.raises(ToolError, match=r"path '\.\./outside\.txt' is not inside the workspace: it climbs out"):
        await run_tool(get_tool(tool), args, ctx)
    assert outside.read_text() == "secret outside the workspace"


async def test_a_dotdot_that_stays_inside_the_workspace_is_fine(ctx: ToolContext) -> None:
    await _call("file_write", ctx, path="a/../b.txt", content="ok")
    assert (ctx.workspace / "b.txt").read_text() == "ok"


@pytest.mark.parametrize("path", ["/etc/passwd", "~/.ssh/id_rsa", "C:\\Windows\\win.ini"])
async def test_an_absolute_path_is_rejected(ctx: ToolContext, path: str) -> None:
    with pytest.raises(ToolError, match="absolute paths are not allowed"):
        await _call("file_read", ctx, path=path)


@pytest.mark.parametrize("tool", ["file_read", "file_write"])
async def test_a_symlink_pointing_outside_the_workspace_is_rejected(ctx: ToolContext, outside: Path, tool: str) -> None:
    (ctx.workspace / "link.txt").symlink_to(outside)
    args = {"path": "link.txt"} | ({"content": "overwritten"} if tool == "file_write" else {})
    with pytest.raises(ToolError, match="points outside it through a symlink"):
        await run_tool(get_tool(tool), args, ctx)
    assert outside.read_text() == "secret outside the workspace"


async def test_a_symlinked_directory_pointing_outside_is_rejected_and_not_globbed(
    ctx: ToolContext, outside: Path
) -> None:
    (ctx.workspace / "escape").symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(ToolError, match="through a symlink"):
        await _call("file_read", ctx, path="escape/outside.txt")
    globbed = await _call("file_glob", ctx, pattern="**/*.txt")
    assert globbed["matches"] == []


async def test_a_symlink_inside_the_workspace_is_followed(ctx: ToolContext) -> None:
    (ctx.workspace / "real.txt").write_text("real")
    (ctx.workspace / "alias.txt").symlink_to(ctx.workspace / "real.txt")
    assert (await _call("file_read", ctx, path="alias.txt"))["content"] == "real"


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "a/../../*"])
async def test_a_glob_pattern_that_leaves_the_workspace_is_rejected(ctx: ToolContext, pattern: str) -> None:
    with pytest.raises(ToolError, match="must stay inside the workspace"):
        await _call("file_glob", ctx, pattern=pattern)


async def test_reading_a_missing_file_says_how_to_find_files(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"tool file_read: file not found: 'nope\.txt' \(use file_glob"):
        await _call("file_read", ctx, path="nope.txt")


async def test_reading_a_directory_or_an_empty_path_is_a_clear_error(ctx: ToolContext) -> None:
    (ctx.workspace / "dir").mkdir()
    with pytest.raises(ToolError, match="not a file: 'dir'"):
        await _call("file_read", ctx, path="dir")
    with pytest.raises(ToolError, match="path is empty"):
        await _call("file_read", ctx, path=" ")
    with pytest.raises(ToolError, match="'dir' is a directory"):
        await _call("file_write", ctx, path="dir", content="x")


async def test_file_write_refuses_an_unknown_mode(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="'mode' must be one of 'write', 'append'"):
        await _call("file_write", ctx, path="x.txt", content="x", mode="truncate")
