"""File tools confined to the workspace: ``file_read``, ``file_write``, ``file_glob``.

Every path is relative to ``ToolContext.workspace``; absolute paths, ``..`` that climbs out and symlinks
that point outside are rejected. Disk work runs in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ._base import FunctionTool, ToolContext, ToolError, object_schema

MAX_READ_CHARS = 100_000
MAX_WRITE_CHARS = 10_000_000
MAX_GLOB_MATCHES = 1_000
MAX_GLOB_VISITS = 100_000  # directory entries one glob may look at


def resolve_in_workspace(path: str, ctx: ToolContext) -> Path:
    """Resolve a user-given path inside the workspace, following symlinks.

    Args:
        path: a path relative to the workspace.
        ctx: gives the workspace.

    Returns:
        The absolute, resolved path; it may not exist yet.

    Raises:
        ToolError: the path is empty, absolute, or resolves outside the workspace.
    """
    if not path.strip():
        raise ToolError("path is empty: give a path relative to the workspace, e.g. 'notes/report.md'")
    if "\x00" in path:
        raise ToolError("path contains a NUL byte")
    if path.startswith("~") or PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute():
        raise ToolError(f"absolute paths are not allowed: {path!r}; give a path relative to the workspace")
    workspace = ctx.workspace
    resolved = (workspace / path).resolve()  # follows symlinks, so a link pointing outside is caught below
    if not resolved.is_relative_to(workspace):
        how = "climbs out of it with '..'" if ".." in Path(path).parts else "points outside it through a symlink"
        raise ToolError(f"path {path!r} is not inside the workspace: it {how}; give a path inside the workspace")
    return resolved


def _relative(path: Path, ctx: ToolContext) -> str:
    """A workspace path as the posix path relative to the workspace (what tools report)."""
    return path.relative_to(ctx.workspace).as_posix() or "."


def _read(path: Path, raw_path: str, max_chars: int) -> tuple[str, int]:
    """Read at most ``max_chars`` characters of a text file; also return the file's size in bytes."""
    if not path.exists():
        raise ToolError(f"file not found: {raw_path!r} (use file_glob to list the workspace)")
    if not path.is_file():
        raise ToolError(f"not a file: {raw_path!r} (use file_glob to list the workspace)")
    size = path.stat().st_size
    with path.open(encoding="utf-8", errors="replace") as fh:
        return fh.read(max_chars + 1), size


async def _file_read(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Read a UTF-8 text file of the workspace."""
    raw_path = str(args["path"])
    path = resolve_in_workspace(raw_path, ctx)
    max_chars = int(args.get("max_chars", MAX_READ_CHARS))
    text, size = await asyncio.to_thread(_read, path, raw_path, max_chars)
    return {
        "path": _relative(path, ctx),
        "content": text[:max_chars],
        "size_bytes": size,
        "truncated": len(text) > max_chars,
    }


def _write(path: Path, raw_path: str, content: str, append: bool) -> int:
    """Write or append text, creating parent directories; return the file's new size in bytes."""
    if path.is_dir():
        raise ToolError(f"{raw_path!r} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write(content)
    return path.stat().st_size


async def _file_write(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Write (or append) a UTF-8 text file of the workspace."""
    raw_path = str(args["path"])
    content = str(args["content"])
    mode = str(args.get("mode", "write"))
    if len(content) > MAX_WRITE_CHARS:
        raise ToolError(f"content is {len(content)} characters; at most {MAX_WRITE_CHARS} can be written at once")
    path = resolve_in_workspace(raw_path, ctx)
    size = await asyncio.to_thread(_write, path, raw_path, content, mode == "append")
    return {
        "path": _relative(path, ctx),
        "mode": mode,
        "chars_written": len(content),
        "size_bytes": size,
    }


class _Stopped(Exception):
    """The walk passed its deadline or was cancelled."""


@dataclass
class _Walk:
    """A glob's walk of the workspace: it checks the deadline and the cancel flag at every entry it visits."""

    ctx: ToolContext
    segments: list[str]
    limit: int
    deadline: float
    cancelled: threading.Event
    visited: int = 0
    found: set[str] = field(default_factory=set)
    exhausted: bool = False  # stopped at MAX_GLOB_VISITS

    def tick(self) -> bool:
        """Count one entry; False when the walk must end here (enough matches, or too many entries seen)."""
        if self.cancelled.is_set() or time.monotonic() > self.deadline:
            raise _Stopped
        self.visited += 1
        if self.visited > MAX_GLOB_VISITS:
            self.exhausted = True
            return False
        return len(self.found) <= self.limit

    def add(self, path: Path) -> None:
        if not path.resolve().is_relative_to(self.ctx.workspace):
            return  # a symlink pointing outside: not part of the workspace
        rel = path.relative_to(self.ctx.workspace).as_posix()
        self.found.add(rel + "/" if path.is_dir() else rel)

    def inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.ctx.workspace)

    def run(self) -> None:
        """Match segment by segment from the workspace, depth first, each (directory, segment) state once."""
        stack: list[tuple[Path, int]] = [(self.ctx.workspace, 0)]
        seen: set[tuple[Path, int]] = set()
        while stack:
            directory, index = stack.pop()
            if (directory, index) in seen:
                continue
            seen.add((directory, index))
            if not self._step(directory, index, stack):
                return

    def _step(self, directory: Path, index: int, stack: list[tuple[Path, int]]) -> bool:
        segment, last = self.segments[index], index == len(self.segments) - 1
        if segment == "**":  # zero directories here, or one more (never through a symlink: no cycles)
            if not last:
                stack.append((directory, index + 1))
            elif directory != self.ctx.workspace:  # a final `**` matches every directory below, as Path.glob
                self.add(directory)
            for entry in self._entries(directory):
                if not self.tick():
                    return False
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), index))
            return True
        if not glob.has_magic(segment):  # a plain name: look it up, do not list the directory
            if not self.tick():
                return False
            candidate = directory / segment
            if last and os.path.lexists(candidate):
                self.add(candidate)
            elif candidate.is_dir() and self.inside(candidate):
                stack.append((candidate, index + 1))
            return True
        for entry in self._entries(directory):
            if not self.tick():
                return False
            if fnmatch.fnmatchcase(entry.name, segment):
                path = Path(entry.path)
                if last:
                    self.add(path)
                elif entry.is_dir() and self.inside(path):
                    stack.append((path, index + 1))
        return True

    @staticmethod
    def _entries(directory: Path) -> Iterator[os.DirEntry[str]]:
        """The directory's entries, one at a time (a huge directory is never listed whole)."""
        try:
            with os.scandir(directory) as entries:
                yield from entries
        except OSError:  # unreadable, vanished, or not a directory: nothing to match there
            return


def _glob(ctx: ToolContext, pattern: str, limit: int, deadline: float, cancelled: threading.Event) -> dict[str, Any]:
    """Matching paths inside the workspace, sorted; directories end with ``/``.

    The walk is ours, not ``Path.glob``: a thread cannot be killed, so it must itself stop at the deadline, when
    the caller gave up (``cancelled``), after ``limit`` matches, and after ``MAX_GLOB_VISITS`` entries.
    """
    segments = [part for part in PurePosixPath(pattern).parts if part != "."]
    walk = _Walk(ctx, segments, limit, deadline, cancelled)
    try:
        walk.run()
    except _Stopped:
        raise ToolError(f"timed out after {ctx.timeout_s:g}s; use a narrower pattern such as 'docs/*.md'") from None
    found = sorted(walk.found)
    result: dict[str, Any] = {"pattern": pattern, "matches": found[:limit], "truncated": len(found) > limit}
    if walk.exhausted:
        result["truncated"] = True
        result["note"] = f"stopped after visiting {MAX_GLOB_VISITS} entries; use a narrower pattern"
    return result


async def _file_glob(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """List workspace paths matching a glob pattern."""
    pattern = str(args.get("pattern", "**/*"))
    limit = int(args.get("limit", MAX_GLOB_MATCHES))
    if not pattern.strip():
        raise ToolError("pattern is empty: use e.g. '*.txt' or '**/*.md'")
    if PurePosixPath(pattern).is_absolute() or pattern.startswith("~") or ".." in PurePosixPath(pattern).parts:
        raise ToolError(f"pattern {pattern!r} must stay inside the workspace: no absolute paths and no '..'")
    if any("**" in part and part != "**" for part in PurePosixPath(pattern).parts):
        raise ToolError(f"in {pattern!r}, '**' must be a whole path segment, as in '**/*.md'")
    if "\x00" in pattern:
        raise ToolError("pattern contains a NUL byte")
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(_glob, ctx, pattern, limit, time.monotonic() + ctx.timeout_s, cancelled)
    finally:
        cancelled.set()  # when run_tool's timeout cancels this call, the walk ends at its next entry


FILE_READ = FunctionTool(
    name="file_read",
    description="Read a UTF-8 text file from the workspace. Paths are relative to the workspace.",
    parameters=object_schema(
        {
            "path": {"type": "string", "description": "File path relative to the workspace."},
            "max_chars": {
                "type": "integer",
                "minimum": 1,
                "description": f"Return at most this many characters (default {MAX_READ_CHARS}).",
            },
        },
        required=["path"],
    ),
    fn=_file_read,
    timeout_s=10.0,
)

FILE_WRITE = FunctionTool(
    name="file_write",
    description=(
        "Write text to a file in the workspace (mode 'write' replaces it, 'append' adds to it). "
        "Parent directories are created."
    ),
    parameters=object_schema(
        {
            "path": {"type": "string", "description": "File path relative to the workspace."},
            "content": {"type": "string", "description": "Text to write."},
            "mode": {"type": "string", "enum": ["write", "append"], "description": "Default 'write'."},
        },
        required=["path", "content"],
    ),
    fn=_file_write,
    timeout_s=10.0,
)

FILE_GLOB = FunctionTool(
    name="file_glob",
    description="List files and directories in the workspace matching a glob pattern such as '*.txt' or '**/*.md'.",
    parameters=object_schema(
        {
            "pattern": {"type": "string", "description": "Glob pattern relative to the workspace (default '**/*')."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "description": f"At most this many matches (default {MAX_GLOB_MATCHES}).",
            },
        },
    ),
    fn=_file_glob,
    timeout_s=10.0,
)

FILE_TOOLS = (FILE_READ, FILE_WRITE, FILE_GLOB)
