"""File tools confined to the workspace: ``file_read``, ``file_write``, ``file_glob``.

Every path is relative to ``ToolContext.workspace``; absolute paths, ``..`` that climbs out and symlinks
that point outside are rejected. Disk work runs in a thread so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from ._base import FunctionTool, ToolContext, ToolError, object_schema

MAX_READ_CHARS = 100_000
MAX_WRITE_CHARS = 10_000_000
MAX_GLOB_MATCHES = 1_000


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


def _glob(ctx: ToolContext, pattern: str, limit: int) -> tuple[list[str], bool]:
    """Matching paths inside the workspace, sorted; directories end with ``/``."""
    found: list[str] = []
    for match in ctx.workspace.glob(pattern):
        if not match.resolve().is_relative_to(ctx.workspace):
            continue  # a symlink pointing outside: not part of the workspace
        rel = match.relative_to(ctx.workspace).as_posix()
        found.append(rel + "/" if match.is_dir() else rel)
        if len(found) > limit:  # stop walking: a huge workspace must not cost the whole budget
            break
    return sorted(found[:limit]), len(found) > limit


async def _file_glob(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """List workspace paths matching a glob pattern."""
    pattern = str(args.get("pattern", "**/*"))
    limit = int(args.get("limit", MAX_GLOB_MATCHES))
    if not pattern.strip():
        raise ToolError("pattern is empty: use e.g. '*.txt' or '**/*.md'")
    if PurePosixPath(pattern).is_absolute() or pattern.startswith("~") or ".." in PurePosixPath(pattern).parts:
        raise ToolError(f"pattern {pattern!r} must stay inside the workspace: no absolute paths and no '..'")
    matches, truncated = await asyncio.to_thread(_glob, ctx, pattern, limit)
    return {"pattern": pattern, "matches": matches, "truncated": truncated}


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
