"""sql_query is bounded: functions that allocate at will or leak pointers are denied, values and results capped."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, run_tool
from actors.tools._data import MAX_RESULT_BYTES, MAX_ROWS, MAX_SQL_CHARS, MAX_SQL_VALUE_BYTES

RECURSIVE = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT {count}) "


@pytest.fixture
def database(ctx: ToolContext) -> Path:
    """A small database with a table, and a view that calls a denied function."""
    path = ctx.workspace / "data.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (name TEXT, body TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [("small", "x"), ("large", "y" * 1_000_000)])
        conn.execute("CREATE VIEW padded AS SELECT name, zeroblob(300000000) AS pad FROM t")
    conn.close()
    return path


async def _query(ctx: ToolContext, query: str, **args: Any) -> Any:
    return await run_tool(get_tool("sql_query"), {"database": "data.db", "query": query, **args}, ctx)


@pytest.mark.parametrize(
    ("query", "function"),
    [
        ("SELECT zeroblob(300000000)", "zeroblob"),
        ("SELECT length(zeroblob(300000000)) AS n", "zeroblob"),
        ("SELECT randomblob(300000000)", "randomblob"),
        ("SELECT hex(RANDOMBLOB(1000000000))", "randomblob"),
        ("SELECT printf('%.*c', 300000000, 'x')", "printf"),
        ("SELECT PRINTF('%0300000000d', 1)", "printf"),
        ("SELECT format('%.*c', 300000000, 'x')", "format"),
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
        ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
        ("SELECT * FROM padded", "zeroblob"),  # hidden in a view of the database
        ("WITH x AS (SELECT zeroblob(10) AS z) SELECT length(z) FROM x", "zeroblob"),
    ],
)
async def test_functions_that_allocate_at_will_or_leak_pointers_are_denied_by_name(
    ctx: ToolContext, database: Path, query: str, function: str
) -> None:
    with pytest.raises(ToolError, match=rf"the function {function}\(\) is not allowed in sql_query: it"):
        await _query(ctx, query)


@pytest.mark.parametrize(
    "query",
    [
        # A string doubled until it is huge, without any denied function.
        "WITH RECURSIVE s(x) AS (SELECT 'x' UNION ALL SELECT x || x FROM s) SELECT length(x) FROM s",
        "SELECT length(group_concat(a.body)) FROM t AS a, t AS b, t AS c, t AS d, t AS e, t AS f",
        "SELECT length(" + "replace(" * 8 + "'a'" + ", 'a', 'aaaaaaaaaa')" * 8 + ")",
        "SELECT length(body || body || body || body || body || body) FROM t",
    ],
)
async def test_values_sqlite_builds_are_capped_by_its_length_limit(
    ctx: ToolContext, database: Path, query: str
) -> None:
    with pytest.raises(ToolError, match=rf"a string or blob would be larger than {MAX_SQL_VALUE_BYTES} bytes"):
        await _query(ctx, query)


async def test_a_result_larger_than_the_cap_is_refused(ctx: ToolContext, database: Path) -> None:
    query = RECURSIVE.format(count=MAX_ROWS) + "SELECT i, ? AS x FROM n"
    with pytest.raises(ToolError, match=rf"the result is larger than {MAX_RESULT_BYTES} bytes after \d+ rows"):
        await _query(ctx, query, params=["z" * 1_000], limit=MAX_ROWS)


async def test_a_row_limit_above_the_maximum_is_refused(ctx: ToolContext, database: Path) -> None:
    with pytest.raises(ToolError, match=rf"'limit' must be <= {MAX_ROWS}"):
        await _query(ctx, "SELECT 1", limit=MAX_ROWS + 1)


async def test_a_query_longer_than_the_limit_is_refused(ctx: ToolContext, database: Path) -> None:
    with pytest.raises(ToolError, match=rf"the query is longer than {MAX_SQL_CHARS} characters"):
        await _query(ctx, "SELECT '" + "x" * MAX_SQL_CHARS + "'")


async def test_ordinary_queries_and_functions_still_work(ctx: ToolContext, database: Path) -> None:
    query = (
        "SELECT name, length(body) AS n, upper(substr(body, 1, 3)) AS head, round(length(body) / 3.0, 2) AS third, "
        "name || ':' || length(body) AS label, typeof(random()) AS r FROM t ORDER BY n"
    )
    result = await _query(ctx, query)
    assert result["rows"] == [
        {"name": "small", "n": 1, "head": "X", "third": 0.33, "label": "small:1", "r": "integer"},
        {"name": "large", "n": 1_000_000, "head": "YYY", "third": 333333.33, "label": "large:1000000", "r": "integer"},
    ]
    big = await _query(ctx, "SELECT body FROM t WHERE name = 'large'")
    assert big["rows"] == [{"body": "y" * 1_000_000}]
