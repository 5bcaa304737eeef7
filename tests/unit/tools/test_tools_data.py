"""Data tools: JSON and YAML parsing, CSV rows and read-only SQLite queries inside the workspace."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, run_tool


async def _call(name: str, ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool(name), args, ctx)


@pytest.fixture
def database(ctx: ToolContext) -> Path:
    """A SQLite database with a table of three cities, inside the workspace."""
    path = ctx.workspace / "cities.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE city (name TEXT, population INTEGER, photo BLOB)")
        conn.executemany(
            "INSERT INTO city VALUES (?, ?, ?)",
            [("Paris", 2_100_000, b"\x00\x01"), ("Lyon", 520_000, None), ("Nice", 340_000, None)],
        )
    conn.close()
    return path


def _count_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM city").fetchone()[0])
    finally:
        conn.close()


async def test_json_parse_returns_the_value(ctx: ToolContext) -> None:
    assert await _call("json_parse", ctx, text='{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}


async def test_json_parse_points_at_the_syntax_error(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="invalid JSON at line 2 column 7: Expecting value"):
        await _call("json_parse", ctx, text='{\n "a": }')


async def test_yaml_parse_returns_plain_json_data(ctx: ToolContext) -> None:
    text = "name: demo\nwhen: 2024-05-01\ntags: [a, b]\nshared: &s {x: 1}\ncopy: *s\n1: one\n"
    assert await _call("yaml_parse", ctx, text=text) == {
        "name": "demo",
        "when": "2024-05-01",
        "tags": ["a", "b"],
        "shared": {"x": 1},
        "copy": {"x": 1},
        "1": "one",
    }


async def test_yaml_parse_refuses_python_objects(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="invalid YAML at line 1"):
        await _call("yaml_parse", ctx, text="!!python/object/apply:os.system ['echo pwned']")


async def test_yaml_parse_points_at_the_syntax_error(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="invalid YAML at line 2 column 5: mapping values are not allowed here"):
        await _call("yaml_parse", ctx, text="a: 1\nb: x: y\n")


async def test_yaml_parse_refuses_an_alias_bomb_quickly(ctx: ToolContext) -> None:
    lines = ['l0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    started = time.monotonic()
    with pytest.raises(ToolError, match="expands to more than"):
        await _call("yaml_parse", ctx, text="\n".join(lines))
    assert time.monotonic() - started < 3


async def test_yaml_parse_refuses_a_recursive_document(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="document is recursive"):
        await _call("yaml_parse", ctx, text="a: &a [1, *a]")


async def test_csv_read_turns_text_into_rows_keyed_by_the_header(ctx: ToolContext) -> None:
    result = await _call("csv_read", ctx, text='name,age\nAda,36\n"Lovelace, A",37\n')
    assert result == {
        "columns": ["name", "age"],
        "rows": [{"name": "Ada", "age": "36"}, {"name": "Lovelace, A", "age": "37"}],
        "truncated": False,
    }


async def test_csv_read_reads_a_workspace_file_with_a_delimiter_and_a_limit(ctx: ToolContext) -> None:
    (ctx.workspace / "data.csv").write_text("\ufeffa;b\n1;2\n3;4\n5;6\n", encoding="utf-8")
    result = await _call("csv_read", ctx, path="data.csv", delimiter=";", limit=2)
    assert result == {"columns": ["a", "b"], "rows": [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}], "truncated": True}


async def test_csv_read_wants_exactly_one_source(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="give exactly one of 'path'"):
        await _call("csv_read", ctx)
    with pytest.raises(ToolError, match="give exactly one of 'path'"):
        await _call("csv_read", ctx, path="a.csv", text="a\n1\n")


async def test_csv_read_refuses_a_file_outside_the_workspace(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "outside.csv").write_text("a\n1\n")
    with pytest.raises(ToolError, match="not inside the workspace"):
        await _call("csv_read", ctx, path="../outside.csv")


async def test_sql_query_runs_a_select_with_params_and_a_row_limit(ctx: ToolContext, database: Path) -> None:
    result = await _call(
        "sql_query",
        ctx,
        database="cities.db",
        query="SELECT name, population, photo FROM city WHERE population > ? ORDER BY population DESC",
        params=[300_000],
        limit=2,
    )
    assert result == {
        "columns": ["name", "population", "photo"],
        "rows": [
            {"name": "Paris", "population": 2_100_000, "photo": "AAE="},
            {"name": "Lyon", "population": 520_000, "photo": None},
        ],
        "truncated": True,
    }


async def test_sql_query_runs_a_with_statement_after_a_comment(ctx: ToolContext, database: Path) -> None:
    query = "-- biggest\nWITH big AS (SELECT * FROM city WHERE population > 1000000) SELECT count(*) AS n FROM big;"
    result = await _call("sql_query", ctx, database="cities.db", query=query)
    assert result["rows"] == [{"n": 1}]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("INSERT INTO city VALUES ('Lille', 1, NULL)", "got INSERT"),
        ("DROP TABLE city", "got DROP"),
        ("  delete from city", "got DELETE"),
        ("ATTACH DATABASE 'other.db' AS other", "got ATTACH"),
        ("PRAGMA journal_mode = WAL", "got PRAGMA"),
        ("SELECT 1; DROP TABLE city", "got more than one statement"),
        ("SELECT 1; SELECT 2", "got more than one statement"),
        ("WITH x AS (SELECT 1) DELETE FROM city", "not authorized"),
        ("WITH x AS (SELECT 1) INSERT INTO city SELECT 'Lille', 1, NULL FROM x", "not authorized"),
        ("", "got an empty query"),
    ],
)
async def test_sql_query_refuses_anything_but_a_single_read(
    ctx: ToolContext, database: Path, query: str, problem: str
) -> None:
    with pytest.raises(ToolError, match="sql_query runs one read-only SELECT") as info:
        await _call("sql_query", ctx, database="cities.db", query=query)
    assert problem in str(info.value)
    assert _count_rows(database) == 3


@pytest.mark.parametrize("where", ["../outside.db", "absolute", "link.db"])
async def test_sql_query_refuses_a_database_outside_the_workspace(ctx: ToolContext, tmp_path: Path, where: str) -> None:
    outside = tmp_path / "outside.db"
    with sqlite3.connect(outside) as conn:
        conn.execute("CREATE TABLE city (name TEXT)")
    conn.close()
    (ctx.workspace / "link.db").symlink_to(outside)
    database = str(outside) if where == "absolute" else where
    with pytest.raises(ToolError, match=r"absolute paths are not allowed|not inside the workspace"):
        await _call("sql_query", ctx, database=database, query="SELECT * FROM city")


async def test_sql_query_says_when_the_database_does_not_exist(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"database not found: 'nope\.db'"):
        await _call("sql_query", ctx, database="nope.db", query="SELECT 1")
    assert not (ctx.workspace / "nope.db").exists()  # read-only: nothing created


async def test_sql_query_reports_a_bad_query_clearly(ctx: ToolContext, database: Path) -> None:
    with pytest.raises(ToolError, match="query failed: no such table: town"):
        await _call("sql_query", ctx, database="cities.db", query="SELECT * FROM town")


async def test_sql_query_interrupts_a_runaway_query_at_the_deadline(workspace: Path, database: Path) -> None:
    tight = ToolContext(workspace=workspace, env={}, timeout_s=0.3)
    query = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"timed out after 0\.3s"):
        await run_tool(get_tool("sql_query"), {"database": "cities.db", "query": query}, tight)
    assert time.monotonic() - started < 2
