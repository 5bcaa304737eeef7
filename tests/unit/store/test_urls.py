"""Store URLs: SQLite paths and prefixes, names refused before connecting, search words and LIKE escapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from store import StoreError, open_store
from store._common import escape_like, query_words
from store._sqlite import parse_url


def test_sqlite_urls_follow_the_three_slash_convention_for_relative_and_absolute_paths() -> None:
    assert parse_url("sqlite:///data/store.db", None) == ("data/store.db", "")
    assert parse_url("sqlite:////var/lib/ca/store.db", None) == ("/var/lib/ca/store.db", "")
    assert parse_url("sqlite:///store.db?prefix=tenant1", None) == ("store.db", "tenant1_")
    assert parse_url("sqlite:///store.db?prefix=tenant1", "other") == ("store.db", "other_")


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:x.db"])
def test_a_sqlite_url_without_a_path_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite store: parse URL failed: expected sqlite:///relative\.db"):
        parse_url(url, None)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?prefix=bad-name",
        "postgresql://root@127.0.0.1:5432/test?schema=1abc",
        'postgresql://root@127.0.0.1:5432/test?schema=a";drop',
        "redis://127.0.0.1:6379/0?prefix=a*",
    ],
)
async def test_a_schema_or_prefix_that_is_not_a_plain_name_is_refused_before_connecting(url: str) -> None:
    with pytest.raises(StoreError, match=r"parse URL failed: .* must be 1-63 letters, digits or '_'"):
        async with open_store(url):
            pass


async def test_a_relative_sqlite_path_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_store("sqlite:///deep/er/store.db") as store:
        assert await store.schema_version() >= 1
    assert (tmp_path / "deep" / "er" / "store.db").is_file()


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    import aiosqlite

    path = tmp_path / "store.db"
    async with open_store(f"sqlite:///{path}"):
        async with aiosqlite.connect(path) as db:
            rows = list(await db.execute_fetchall("PRAGMA journal_mode"))
        assert rows[0][0] == "wal"


async def test_sqlite_namespaces_are_table_prefixes_in_one_file(tmp_path: Path) -> None:
    import aiosqlite

    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with open_store(url, namespace="a") as a, open_store(url, namespace="b") as b:
        assert await a.claim("n", "k", 60) is True
        assert await b.claim("n", "k", 60) is True
    async with aiosqlite.connect(tmp_path / "store.db") as db:
        tables = {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"a_runs", "b_runs", "a_schema_version", "b_schema_version"} <= tables
    assert "runs" not in tables


def test_search_words_are_lower_cased_and_like_wildcards_escaped() -> None:
    assert query_words("  Green TEA green\tada ") == ["green", "tea", "ada"]
    assert escape_like("50%_a\\b") == "50\\%\\_a\\\\b"
