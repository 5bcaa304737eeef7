"""SQLite backend (aiosqlite): one connection per store in WAL mode, serialised by an asyncio lock.

URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's convention, so
``f"sqlite:///{path}"`` is right for both) or ``sqlite:///:memory:``. ``?prefix=NAME`` or ``namespace=`` puts
every table under the name prefix ``NAME_`` so several stores can share one file.
Other processes may open the same file: WAL plus ``busy_timeout`` make their writes wait instead of failing.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl

from store._common import (
    StoreStatus,
    check_limit,
    check_name,
    check_ttl,
    closed_error,
    query_words,
    translate,
)
from store._errors import RunIdTaken, StoreError
from store._models import ABResult, ChatSession, ConfigVersion, MemoryRecord, RunHistory

if TYPE_CHECKING:
    import aiosqlite

BACKEND = "sqlite"
_SCHEME = "sqlite:///"
BUSY_TIMEOUT_S = 10.0
_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)

# Ordered migrations: (version, statements). `{p}` is the table prefix. Never edit a released step; append one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE {p}runs (run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL,"
            " created_at REAL NOT NULL, doc TEXT NOT NULL)",
            "CREATE INDEX {p}runs_created ON {p}runs (created_at DESC, run_id DESC)",
            "CREATE INDEX {p}runs_flow ON {p}runs (flow, created_at DESC)",
            "CREATE TABLE {p}memories (id TEXT PRIMARY KEY, scope_key TEXT NOT NULL, created_at REAL NOT NULL,"
            " expires_at REAL, content TEXT NOT NULL, doc TEXT NOT NULL)",
            "CREATE INDEX {p}memories_scope ON {p}memories (scope_key, created_at DESC, id DESC)",
            "CREATE TABLE {p}sessions (id TEXT PRIMARY KEY, flow TEXT, updated_at REAL NOT NULL, doc TEXT NOT NULL)",
            "CREATE INDEX {p}sessions_updated ON {p}sessions (updated_at DESC, id DESC)",
            "CREATE TABLE {p}config_versions (flow TEXT NOT NULL, version TEXT NOT NULL, created_at REAL NOT NULL,"
            " doc TEXT NOT NULL, PRIMARY KEY (flow, version))",
            "CREATE TABLE {p}claims (namespace TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL,"
            " PRIMARY KEY (namespace, key))",
            "CREATE INDEX {p}claims_expiry ON {p}claims (expires_at)",
            "CREATE TABLE {p}ab_results (experiment TEXT NOT NULL, variant TEXT NOT NULL, run_id TEXT NOT NULL,"
            " created_at REAL NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (experiment, variant, run_id))",
        ],
    ),
]


def parse_url(url: str, namespace: str | None) -> tuple[str, str]:
    """The database path and table prefix of a ``sqlite:///`` URL.

    Raises:
        StoreError: The URL has a host or no path, or the prefix is not a safe name.
    """
    # Not urlsplit: it would read the first directory of ``sqlite:////abs/path`` as a host once re-joined.
    base, _, query = url.partition("?")
    path = base[len(_SCHEME) :] if base.lower().startswith(_SCHEME) else ""
    if not path:
        expected = "expected sqlite:///relative.db or sqlite:////absolute.db"
        raise StoreError(f"{expected}, got {url!r}", backend=BACKEND, operation="parse URL")
    prefix = dict(parse_qsl(query)).get("prefix")
    name = namespace if namespace is not None else prefix
    table_prefix = f"{check_name(name, backend=BACKEND, what='table prefix')}_" if name else ""
    return path, table_prefix


def _lower(text: str | None) -> str | None:
    # Python's lower() folds all of Unicode; SQLite's lower() and LIKE fold ASCII only.
    return None if text is None else text.lower()


class SqliteStore:
    """The :class:`store.Store` on one SQLite file."""

    backend = BACKEND

    def __init__(self, db: aiosqlite.Connection, prefix: str, target: str) -> None:
        self._db = db
        self._p = prefix
        self._target = target
        self._lock = asyncio.Lock()
        self._status = StoreStatus.OPEN

    @classmethod
    async def connect(cls, url: str, namespace: str | None = None) -> Self:
        """Open (creating if needed) the database file and migrate its schema.

        Raises:
            StoreError: The file cannot be opened or migrated.
        """
        path, prefix = parse_url(url, namespace)
        import aiosqlite

        async with translate(_ERRORS, backend=BACKEND, operation="connect", target=path):
            if path != ":memory:":
                await asyncio.to_thread(_create_private, Path(path))
            db = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        store = cls(db, prefix, path)
        try:
            async with store._op("connect") as conn:
                await conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                await _set_wal(conn)
                await conn.execute("PRAGMA synchronous = NORMAL")
                await conn.create_function("ca_lower", 1, _lower, deterministic=True)
            await store._migrate()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def status(self) -> StoreStatus:
        """Open until :meth:`close`."""
        return self._status

    async def close(self) -> None:
        """Close the connection; idempotent."""
        if self._status is StoreStatus.CLOSED:
            return
        self._status = StoreStatus.CLOSED
        async with self._lock:
            with suppress(*_ERRORS, ValueError):
                await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _op(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        if self._status is StoreStatus.CLOSED:
            raise closed_error(backend=BACKEND, operation=operation, target=self._target)
        async with translate(_ERRORS, backend=BACKEND, operation=operation, target=self._target), self._lock:
            yield self._db

    @asynccontextmanager
    async def _tx(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so a read-then-write cannot race another process.
        async with self._op(operation) as db:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with suppress(*_ERRORS):
                    await db.execute("ROLLBACK")
                raise
            await db.execute("COMMIT")

    async def _rows(self, operation: str, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._op(operation) as db:
            return list(await db.execute_fetchall(sql.format(p=self._p), params))

    async def _write(self, operation: str, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._op(operation) as db, db.execute(sql.format(p=self._p), params) as cursor:
            return cursor.rowcount

    async def _migrate(self) -> None:
        async with self._tx("migrate") as db:
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS {self._p}schema_version (version INTEGER PRIMARY KEY, applied_at REAL)"
            )
            rows = list(await db.execute_fetchall(f"SELECT COALESCE(MAX(version), 0) FROM {self._p}schema_version"))
            current = int(rows[0][0])
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        await db.execute(statement.format(p=self._p))
                    await db.execute(f"INSERT INTO {self._p}schema_version VALUES (?, ?)", (version, time.time()))

    async def schema_version(self) -> int:
        """The highest migration applied to this database."""
        rows = await self._rows("schema_version", "SELECT COALESCE(MAX(version), 0) FROM {p}schema_version")
        return int(rows[0][0])

    # --- runs -------------------------------------------------------------------------------------------------

    async def put_run(self, run: RunHistory) -> None:
        """Insert the run, or replace the row of the same run (same id, flow and start)."""
        written = await self._write(
            "put_run",
            "INSERT INTO {p}runs VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
            " status = excluded.status, doc = excluded.doc"
            " WHERE {p}runs.flow = excluded.flow AND {p}runs.created_at = excluded.created_at",
            (run.run_id, run.flow, run.status, run.created_at, run.model_dump_json()),
        )
        if written == 0:
            raise RunIdTaken(run.run_id, backend=BACKEND, target=self._target)

    async def get_run(self, run_id: str) -> RunHistory | None:
        """The run with this id, or ``None``."""
        rows = await self._rows("get_run", "SELECT doc FROM {p}runs WHERE run_id = ?", (run_id,))
        return RunHistory.model_validate_json(rows[0][0]) if rows else None

    async def list_runs(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        since: float | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunHistory]:
        """Runs newest first (by ``created_at``), optionally of one flow, one status, created at `since` or later,
        and after `before` (``(created_at, run_id)`` of the last run of the previous page) in that order."""
        where: list[str] = ["1 = 1"]
        params: list[object] = []
        for column, value in (("flow", flow), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND run_id < ?))")
            params.extend([before[0], before[0], before[1]])
        sql = f"SELECT doc FROM {{p}}runs WHERE {' AND '.join(where)} ORDER BY created_at DESC, run_id DESC LIMIT ?"
        rows = await self._rows("list_runs", sql, (*params, check_limit(limit)))
        return [RunHistory.model_validate_json(row[0]) for row in rows]

    # --- memories ---------------------------------------------------------------------------------------------

    async def add_memory(self, record: MemoryRecord) -> None:
        """Store a memory record (a record with the same ``id`` is replaced)."""
        await self._write(
            "add_memory",
            "INSERT OR REPLACE INTO {p}memories VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.scope_key,
                record.created_at,
                record.expires_at,
                record.content,
                record.model_dump_json(),
            ),
        )

    async def memories(self, scope_key: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope, newest first."""
        return await self.search_memories(scope_key, "", limit=limit)

    async def search_memories(self, scope_key: str, query: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope whose content holds every word of `query` (any case), newest first."""
        words = query_words(query)
        match = "".join(" AND instr(ca_lower(content), ?) > 0" for _ in words)
        sql = (
            "SELECT doc FROM {p}memories WHERE scope_key = ? AND (expires_at IS NULL OR expires_at > ?)"
            f"{match} ORDER BY created_at DESC, id DESC LIMIT ?"
        )
        rows = await self._rows("search_memories", sql, (scope_key, time.time(), *words, check_limit(limit)))
        return [MemoryRecord.model_validate_json(row[0]) for row in rows]

    async def memory_keys(self, prefix: str = "") -> list[str]:
        """Scope keys starting with `prefix` that hold unexpired records, sorted."""
        rows = await self._rows(
            "memory_keys",
            "SELECT DISTINCT scope_key FROM {p}memories WHERE substr(scope_key, 1, ?) = ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY scope_key",
            (len(prefix), prefix, time.time()),
        )
        return [str(row[0]) for row in rows]

    async def clear_memories(self, scope_key_prefix: str) -> int:
        """Delete every record whose scope key starts with `scope_key_prefix`; return how many."""
        # substr, not LIKE: LIKE ignores ASCII case in SQLite, and scope keys are case-sensitive.
        return await self._write(
            "clear_memories",
            "DELETE FROM {p}memories WHERE substr(scope_key, 1, ?) = ?",
            (len(scope_key_prefix), scope_key_prefix),
        )

    async def trim_memories(
        self, scope_key: str, *, max_items: int | None = None, older_than: float | None = None
    ) -> int:
        """Drop expired records, records created before `older_than`, then all but the newest `max_items`.

        Returns:
            How many records were deleted.
        """
        deleted = 0
        async with self._tx("trim_memories") as db:
            cutoff = time.time()
            sql = "DELETE FROM {p}memories WHERE scope_key = ? AND expires_at IS NOT NULL AND expires_at <= ?"
            async with db.execute(sql.format(p=self._p), (scope_key, cutoff)) as cursor:
                deleted += cursor.rowcount
            if older_than is not None:
                sql = "DELETE FROM {p}memories WHERE scope_key = ? AND created_at < ?"
                async with db.execute(sql.format(p=self._p), (scope_key, older_than)) as cursor:
                    deleted += cursor.rowcount
            if max_items is not None:
                sql = (
                    "DELETE FROM {p}memories WHERE id IN (SELECT id FROM {p}memories WHERE scope_key = ?"
                    " ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?)"
                )
                async with db.execute(sql.format(p=self._p), (scope_key, check_limit(max_items))) as cursor:
                    deleted += cursor.rowcount
        return deleted

    # --- chat sessions ----------------------------------------------------------------------------------------

    async def save_session(self, session: ChatSession) -> None:
        """Insert or replace the session with this ``id``."""
        await self._write(
            "save_session",
            "INSERT OR REPLACE INTO {p}sessions VALUES (?, ?, ?, ?)",
            (session.id, session.flow, session.updated_at, session.model_dump_json()),
        )

    async def get_session(self, session_id: str) -> ChatSession | None:
        """The session with this id, or ``None``."""
        rows = await self._rows("get_session", "SELECT doc FROM {p}sessions WHERE id = ?", (session_id,))
        return ChatSession.model_validate_json(rows[0][0]) if rows else None

    async def list_sessions(self, *, flow: str | None = None, limit: int = 50) -> list[ChatSession]:
        """Sessions most recently updated first, optionally of one flow."""
        where = "WHERE flow = ?" if flow is not None else ""
        params = (flow,) if flow is not None else ()
        sql = f"SELECT doc FROM {{p}}sessions {where} ORDER BY updated_at DESC, id DESC LIMIT ?"
        rows = await self._rows("list_sessions", sql, (*params, check_limit(limit)))
        return [ChatSession.model_validate_json(row[0]) for row in rows]

    # --- config versions --------------------------------------------------------------------------------------

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Insert or replace the version ``(flow, version)``."""
        await self._write(
            "put_config_version",
            "INSERT OR REPLACE INTO {p}config_versions VALUES (?, ?, ?, ?)",
            (version.flow, version.version, version.created_at, version.model_dump_json()),
        )

    async def config_versions(self, flow: str, *, limit: int = 50) -> list[ConfigVersion]:
        """Versions of one flow, newest first."""
        rows = await self._rows(
            "config_versions",
            "SELECT doc FROM {p}config_versions WHERE flow = ? ORDER BY created_at DESC, version DESC LIMIT ?",
            (flow, check_limit(limit)),
        )
        return [ConfigVersion.model_validate_json(row[0]) for row in rows]

    # --- claims -----------------------------------------------------------------------------------------------

    async def claim(self, namespace: str, key: str, ttl_s: float | None = None) -> bool:
        """Insert-if-absent: ``True`` for the first claim of ``(namespace, key)`` until `ttl_s` seconds pass."""
        now = time.time()
        expires_at = None if check_ttl(ttl_s) is None else now + (ttl_s or 0)
        async with self._op("claim") as db:
            await db.execute(f"DELETE FROM {self._p}claims WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
            sql = f"INSERT INTO {self._p}claims VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
            async with db.execute(sql, (namespace, key, expires_at)) as cursor:
                return cursor.rowcount == 1

    # --- A/B results ------------------------------------------------------------------------------------------

    async def put_ab_result(self, result: ABResult) -> None:
        """Insert or replace the result ``(experiment, variant, run_id)``."""
        await self._write(
            "put_ab_result",
            "INSERT OR REPLACE INTO {p}ab_results VALUES (?, ?, ?, ?, ?)",
            (result.experiment, result.variant, result.run_id, result.created_at, result.model_dump_json()),
        )

    async def ab_results(self, experiment: str, *, variant: str | None = None) -> list[ABResult]:
        """Results of one experiment (optionally one variant), newest first."""
        where = " AND variant = ?" if variant is not None else ""
        params = (variant,) if variant is not None else ()
        sql = (
            f"SELECT doc FROM {{p}}ab_results WHERE experiment = ?{where}"
            " ORDER BY created_at DESC, variant DESC, run_id DESC"
        )
        rows = await self._rows("ab_results", sql, (experiment, *params))
        return [ABResult.model_validate_json(row[0]) for row in rows]


async def _set_wal(conn: Any) -> None:
    """Switch a file to WAL. Several openers of a fresh file race for it, and SQLite answers "locked"
    to the losers at once (the busy timeout does not apply to this switch): try again briefly."""
    for attempt in range(50):
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (run history may hold what runs were given);
    SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
