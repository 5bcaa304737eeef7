"""Data tools: ``json_parse``, ``yaml_parse``, ``csv_read`` and ``sql_query`` (read-only SQLite)."""

from __future__ import annotations

import asyncio
import base64
import csv
import datetime as dt
import io
import json
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from ._base import FunctionTool, ToolContext, ToolError, object_schema
from ._files import resolve_in_workspace

MAX_TEXT_CHARS = 5_000_000
MAX_VALUES = 200_000  # nodes of a parsed document; bounds YAML alias bombs
DEFAULT_ROW_LIMIT = 1_000
MAX_ROWS = 10_000
# sql_query: SQLite's own limits (SQLITE_LIMIT_LENGTH bounds every string or blob it builds) and the result's.
MAX_SQL_VALUE_BYTES = 5_000_000
MAX_SQL_CHARS = 100_000
MAX_RESULT_BYTES = 5_000_000


def to_jsonable(value: Any, *, max_values: int = MAX_VALUES) -> Any:
    """Copy a parsed document into plain JSON types, refusing documents that expand past ``max_values``.

    YAML anchors make shared (even cyclic) structures whose expansion can be exponential; the count is
    taken on the expanded tree, so both are caught. Dates become ISO strings, bytes base64, sets lists.
    """
    budget = [max_values]
    path: set[int] = set()  # ids of the containers being walked: seeing one again means a cycle

    def walk(v: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ToolError(f"document expands to more than {max_values} values (alias-heavy input?)")
        if isinstance(v, Mapping | list | tuple | set | frozenset):
            if id(v) in path:
                raise ToolError("document is recursive (an anchor refers to itself); it has no JSON form")
            path.add(id(v))
            try:
                return walk_container(v)
            finally:
                path.discard(id(v))
        if v is None or isinstance(v, bool | int | str):
            return v
        if isinstance(v, float):
            return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
        if isinstance(v, dt.date | dt.datetime | dt.time):
            return v.isoformat()
        if isinstance(v, bytes):
            return base64.b64encode(v).decode("ascii")
        return str(v)

    def walk_container(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k if isinstance(k, str) else json.dumps(walk(k)): walk(x) for k, x in v.items()}
        return [walk(x) for x in v]

    try:
        return walk(value)
    except RecursionError as exc:
        raise ToolError("document is nested too deeply") from exc


def _check_text(text: str, what: str) -> None:
    """Refuse input too large to parse within the budget."""
    if len(text) > MAX_TEXT_CHARS:
        raise ToolError(f"{what} is {len(text)} characters; at most {MAX_TEXT_CHARS} are accepted")


async def _json_parse(args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Parse a JSON text."""
    text = str(args["text"])
    _check_text(text, "text")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise ToolError("JSON nested too deeply to parse") from exc


async def _yaml_parse(args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Parse a YAML text with ``yaml.safe_load`` (no arbitrary objects)."""
    text = str(args["text"])
    _check_text(text, "text")
    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ToolError(f"invalid YAML{where}: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ToolError(f"invalid YAML: {exc}") from exc
    return to_jsonable(loaded)


def _read_workspace_text(args: Mapping[str, Any], ctx: ToolContext) -> str:
    """The CSV text: the ``text`` argument, or the workspace file named by ``path`` (exactly one of them)."""
    if ("path" in args) == ("text" in args):
        raise ToolError("give exactly one of 'path' (a workspace CSV file) or 'text' (CSV content)")
    if "text" in args:
        return str(args["text"])
    raw_path = str(args["path"])
    path = resolve_in_workspace(raw_path, ctx)
    if not path.is_file():
        raise ToolError(f"file not found: {raw_path!r} (use file_glob to list the workspace)")
    if path.stat().st_size > MAX_TEXT_CHARS:
        raise ToolError(f"{raw_path!r} is larger than {MAX_TEXT_CHARS} bytes")
    return path.read_text(encoding="utf-8-sig", errors="replace")


def _csv_rows(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Parse CSV into rows keyed by the header row."""
    text = _read_workspace_text(args, ctx)
    delimiter = str(args.get("delimiter", ","))
    if len(delimiter) != 1:
        raise ToolError(f"delimiter must be one character, got {delimiter!r}")
    limit = int(args.get("limit", DEFAULT_ROW_LIMIT))
    try:
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, restkey="_extra")
        columns = list(reader.fieldnames or [])
        rows: list[dict[str, Any]] = []
        for row in reader:
            if len(rows) == limit:
                return {"columns": columns, "rows": rows, "truncated": True}
            rows.append(dict(row))
    except csv.Error as exc:
        raise ToolError(f"invalid CSV: {exc}") from exc
    if not columns:
        raise ToolError("the CSV is empty: the first row must name the columns")
    return {"columns": columns, "rows": rows, "truncated": False}


async def _csv_read(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Read CSV from a workspace file or a text."""
    return await asyncio.to_thread(_csv_rows, args, ctx)


# SQLite authorizer actions a read-only query needs; everything else (writes, ATTACH, PRAGMA...) is denied.
# (pragma_table_info() would need an UPDATE of sqlite_master to be allowed: the schema is in sqlite_master.)
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_READ_ONLY_HINT = "sql_query runs one read-only SELECT (or WITH ... SELECT) statement"


def _strip_sql_comments(sql: str) -> str:
    """The statement without leading whitespace and comments (to see its first keyword)."""
    text = sql.lstrip()
    while text.startswith(("--", "/*")):
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :].lstrip()
        else:
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :].lstrip()
    return text


# Functions a query may not call, and why: they allocate at will, hand out native pointers or reach files.
_DENIED_FUNCTIONS = {
    "zeroblob": "it allocates a blob of any size",
    "randomblob": "it allocates a blob of any size",
    "printf": "its width and precision allocate without bound; use round(), || and substr() instead",
    "format": "its width and precision allocate without bound; use round(), || and substr() instead",
    "fts3_tokenizer": "it returns a native pointer",
    "load_extension": "it loads native code",
    "readfile": "it reads files outside the database",
    "writefile": "it writes files",
    "edit": "it runs an editor",
}


class _Authorizer:
    """SQLite authorizer: reading is allowed, anything else is denied while the statement is prepared, and so are
    the functions of ``_DENIED_FUNCTIONS`` (the first one met is kept, to say which)."""

    def __init__(self) -> None:
        self.denied_function: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_FUNCTION:  # arg2 is the function's name
            name = (arg2 or "").lower()
            if name in _DENIED_FUNCTIONS:
                self.denied_function = self.denied_function or name
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def _set_limits(conn: sqlite3.Connection) -> None:
    """Bound what SQLite itself builds: any string or blob, and the statement's text."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


def _value_size(value: Any) -> int:
    """About how many bytes a value takes in the JSON result."""
    if isinstance(value, bytes):
        return (len(value) + 2) // 3 * 4
    if isinstance(value, str):
        return len(value)
    return 8


def _fetch_bounded(cursor: sqlite3.Cursor, limit: int) -> list[tuple[Any, ...]]:
    """Up to ``limit + 1`` rows (one more tells the caller it truncated), refusing a result past
    ``MAX_RESULT_BYTES``."""
    rows: list[tuple[Any, ...]] = []
    size = 0
    while len(rows) <= limit:
        batch = cursor.fetchmany(min(100, limit + 1 - len(rows)))
        if not batch:
            break
        for row in batch:
            size += sum(_value_size(v) for v in row)
            if size > MAX_RESULT_BYTES:
                raise ToolError(
                    f"the result is larger than {MAX_RESULT_BYTES} bytes after {len(rows)} rows; select fewer "
                    "rows (LIMIT, or a smaller 'limit') or columns, or shorten values with substr()"
                )
            rows.append(row)
    return rows


def _database_error(exc: sqlite3.DatabaseError, guard: _Authorizer, ctx: ToolContext) -> ToolError:
    """The ToolError of a failed query: which function or limit refused it, when one did."""
    message = str(exc)
    if "not authorized" in message and guard.denied_function:
        name = guard.denied_function
        return ToolError(f"the function {name}() is not allowed in sql_query: {_DENIED_FUNCTIONS[name]}")
    if "not authorized" in message or "readonly" in message:
        return ToolError(f"{_READ_ONLY_HINT}: {message}")
    if "interrupted" in message:
        return ToolError(f"timed out after {ctx.timeout_s:g}s")
    if "too big" in message:
        return ToolError(
            f"a string or blob would be larger than {MAX_SQL_VALUE_BYTES} bytes, the limit of sql_query "
            "(use substr() or length() on large values)"
        )
    if "too long" in message:
        return ToolError(f"the query is longer than {MAX_SQL_CHARS} characters, the limit of sql_query")
    return ToolError(f"query failed: {message}")


def _sql_value(value: Any) -> Any:
    """A SQLite value as JSON (BLOBs as base64)."""
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


def _run_query(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Open the database read-only and run one SELECT, bounded by rows and time."""
    raw_path, query = str(args["database"]), str(args["query"]).strip()
    limit = min(int(args.get("limit", DEFAULT_ROW_LIMIT)), MAX_ROWS)
    if len(query) > MAX_SQL_CHARS:
        raise ToolError(f"the query is longer than {MAX_SQL_CHARS} characters, the limit of sql_query")
    params = list(args.get("params", []))
    keyword = re.match(r"[A-Za-z]*", _strip_sql_comments(query))
    first = keyword.group(0).upper() if keyword else ""
    if first not in ("SELECT", "WITH"):
        raise ToolError(f"{_READ_ONLY_HINT}; got {first or 'an empty query'}")
    path = resolve_in_workspace(raw_path, ctx)
    if not path.is_file():
        raise ToolError(f"database not found: {raw_path!r} (a SQLite file inside the workspace)")
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    deadline = time.monotonic() + ctx.timeout_s
    conn = sqlite3.connect(uri, uri=True, timeout=min(ctx.timeout_s, 5.0), check_same_thread=False)
    guard = _Authorizer()
    try:
        _set_limits(conn)
        conn.set_authorizer(guard)
        # Interrupt a runaway query at the deadline; the thread would otherwise outlive run_tool's timeout.
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            cursor = conn.execute(query, params)
            fetched = _fetch_bounded(cursor, limit)
        except sqlite3.ProgrammingError as exc:
            if "one statement" in str(exc):
                raise ToolError(f"{_READ_ONLY_HINT}; got more than one statement") from exc
            raise ToolError(f"invalid query: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise _database_error(exc, guard, ctx) from exc
        columns = [d[0] for d in cursor.description or ()]
    finally:
        conn.close()
    rows = [{c: _sql_value(v) for c, v in zip(columns, row, strict=True)} for row in fetched[:limit]]
    return {"columns": columns, "rows": rows, "truncated": len(fetched) > limit}


async def _sql_query(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Run a read-only query on a SQLite database of the workspace."""
    return await asyncio.to_thread(_run_query, args, ctx)


JSON_PARSE = FunctionTool(
    name="json_parse",
    description="Parse a JSON text and return the value.",
    parameters=object_schema({"text": {"type": "string", "description": "The JSON text."}}, required=["text"]),
    fn=_json_parse,
    timeout_s=10.0,
)

YAML_PARSE = FunctionTool(
    name="yaml_parse",
    description="Parse a YAML text (safe loader: plain data only) and return the value as JSON.",
    parameters=object_schema({"text": {"type": "string", "description": "The YAML text."}}, required=["text"]),
    fn=_yaml_parse,
    timeout_s=10.0,
)

CSV_READ = FunctionTool(
    name="csv_read",
    description=(
        "Read CSV (from a workspace file or from text) into rows keyed by the header row. "
        "Give exactly one of 'path' or 'text'."
    ),
    parameters=object_schema(
        {
            "path": {"type": "string", "description": "CSV file relative to the workspace."},
            "text": {"type": "string", "description": "CSV content."},
            "delimiter": {"type": "string", "description": "Field delimiter (default ',')."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "description": f"At most this many rows (default {DEFAULT_ROW_LIMIT}).",
            },
        },
    ),
    fn=_csv_read,
    timeout_s=10.0,
)

SQL_QUERY = FunctionTool(
    name="sql_query",
    description=(
        "Run one read-only SELECT (or WITH ... SELECT) on a SQLite database file in the workspace. "
        "Use ? placeholders with 'params'. List the tables with: SELECT name, sql FROM sqlite_master."
    ),
    parameters=object_schema(
        {
            "database": {"type": "string", "description": "SQLite file relative to the workspace."},
            "query": {"type": "string", "description": "A single SELECT or WITH statement."},
            "params": {"type": "array", "description": "Values for the ? placeholders."},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ROWS,
                "description": f"At most this many rows (default {DEFAULT_ROW_LIMIT}, at most {MAX_ROWS}).",
            },
        },
        required=["database", "query"],
    ),
    fn=_sql_query,
    timeout_s=20.0,
)

DATA_TOOLS = (JSON_PARSE, YAML_PARSE, CSV_READ, SQL_QUERY)
