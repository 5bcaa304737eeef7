"""file_glob's walk stops by itself: at the deadline, when its caller gave up, and after a bounded number of entries."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import actors.tools._files as files
from actors.tools import ToolContext, ToolError, get_tool, run_tool


async def _glob(ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool("file_glob"), args, ctx)


def _tree(root: Path, dirs: int = 200) -> None:
    for i in range(dirs):
        (root / f"d{i:03}" / "sub").mkdir(parents=True)
        (root / f"d{i:03}" / "sub" / "f.txt").write_text("x")


def _track_end(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set when the glob's worker thread is done with its walk, however it ended."""
    done = threading.Event()
    real: Callable[..., Any] = files._glob

    def tracked(*args: Any) -> Any:
        try:
            return real(*args)
        finally:
            done.set()

    monkeypatch.setattr(files, "_glob", tracked)
    return done


async def test_a_glob_that_timed_out_stops_walking_instead_of_burning_cpu(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(workspace)
    real_scandir = os.scandir
    release = threading.Event()
    listed: list[str] = []

    def held_scandir(path: Any = ".") -> Any:
        listed.append(str(path))
        if len(listed) == 1:
            release.wait(30)  # hold the walk at its first directory until the tool has timed out
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", held_scandir)
    done = _track_end(monkeypatch)
    ctx = ToolContext(workspace=workspace, env={}, timeout_s=0.2)
    with pytest.raises(ToolError, match=r"tool file_glob: timed out after 0\.2s"):
        await _glob(ctx, pattern="**/*.nomatch")
    release.set()
    assert await asyncio.to_thread(done.wait, 30)
    # The walk ended at its next entry: one directory listed, not the 401 of the tree.
    assert listed == [str(workspace)]


async def test_a_glob_past_its_deadline_stops_even_if_nobody_cancels_it(workspace: Path) -> None:
    _tree(workspace, dirs=3)
    ctx = ToolContext(workspace=workspace, env={}, timeout_s=5.0)
    with pytest.raises(ToolError, match="timed out after 5s; use a narrower pattern"):
        files._glob(ctx, "**/*", 100, deadline=0.0, cancelled=threading.Event())


async def test_a_glob_stops_after_visiting_the_maximum_number_of_entries(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(ctx.workspace)
    monkeypatch.setattr(files, "MAX_GLOB_VISITS", 50)
    result = await _glob(ctx, pattern="**/*.nomatch")
    assert result == {
        "pattern": "**/*.nomatch",
        "matches": [],
        "truncated": True,
        "note": "stopped after visiting 50 entries; use a narrower pattern",
    }


async def test_the_walk_matches_like_path_glob(ctx: ToolContext) -> None:
    root = ctx.workspace
    for rel in ("a/b/c.md", "a/x.md", "top.md", ".hidden.md", "a/b/d.txt", "Z/y.MD"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    for pattern in ("**/*.md", "*.md", "a/*", "a/**", "**/b/*", "a/b/c.md", "[az]/*.md", "**/**/*.md", "?/*", "**"):
        result = await _glob(ctx, pattern=pattern)
        expected = sorted(
            p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.glob(pattern) if p != root
        )
        assert result["matches"] == expected, pattern


async def test_a_symlink_loop_does_not_trap_the_walk(ctx: ToolContext) -> None:
    (ctx.workspace / "d").mkdir()
    (ctx.workspace / "d" / "loop").symlink_to(ctx.workspace / "d", target_is_directory=True)
    (ctx.workspace / "d" / "f.txt").write_text("x")
    result = await _glob(ctx, pattern="**/*")
    assert result["matches"] == ["d/", "d/f.txt", "d/loop/"]


async def test_a_double_star_inside_a_segment_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"'\*\*' must be a whole path segment"):
        await _glob(ctx, pattern="a**/*.md")
