"""PostgreSQL backend (asyncpg): a connection pool; every table lives in one schema, created if missing.

URL: ``postgresql://user[:password]@host:port/db?schema=NAME`` (``postgres://`` too; default schema
``ca_actors``). ``namespace=`` overrides the schema, which is how tests and tenants are isolated. Other query
parameters go to asyncpg. Migrations run in one transaction under an advisory lock keyed by the schema name,
so concurrent openers wait for each other instead of racing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

from store._common import (
    StoreStatus,
    check_limit,
    check_name,
    check_ttl,
    closed_error,
    escape_like,
    pop_query,
    query_words,
    redact,
    translate,
)
from store._errors import RunIdTaken
from store._models import ABResult, ChatSession, ConfigVersion, MemoryRecord, RunHistory

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints or stubs (no py.typed)

BACKEND = "postgres"
DEFAULT_SCHEMA = "ca_actors"
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0

# Ordered migrations: (version, statements). `{s}` is the quoted schema. Never edit a released step; append one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE {s}.runs (run_id TEXT PRIMARY KEY, flow TEXT NOT NULL, status TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL)",
            'CREATE INDEX runs_created ON {s}.runs (created_at DESC, run_id COLLATE "C" DESC)',
            "CREATE INDEX runs_flow ON {s}.runs (flow, created_at DESC)",
            "CREATE TABLE {s}.memories (id TEXT PRIMARY KEY, scope_key TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION, content TEXT NOT NULL,"
            " doc TEXT NOT NULL)",
            'CREATE INDEX memories_scope ON {s}.memories (scope_key, created_at DESC, id COLLATE "C" DESC)',
            "CREATE TABLE {s}.sessions (id TEXT PRIMARY KEY, flow TEXT, updated_at DOUBLE PRECISION NOT NULL,"
            " doc TEXT NOT NULL)",
            "CREATE TABLE {s}.config_versions (flow TEXT NOT NULL, version TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (flow, version))",
            "CREATE TABLE {s}.claims (namespace TEXT NOT NULL, key TEXT NOT NULL, expires_at DOUBLE PRECISION,"
            " PRIMARY KEY (namespace, key))",
            "CREATE INDEX claims_expiry ON {s}.claims (expires_at)",
            "CREATE TABLE {s}.ab_results (experiment TEXT NOT NULL, variant TEXT NOT NULL, run_id TEXT NOT NULL,"
            " created_at DOUBLE PRECISION NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (experiment, variant, run_id))",
        ],
    ),
]


def _errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError)


def parse_url(url: str, namespace: str | None) -> tuple[str, str]:
    """The asyncpg DSN (without ``schema``) and the schema name of a ``postgresql://`` URL.

    Raises:
        StoreError: The schema is not a safe name.
    """
    dsn, schema = pop_query(url, "schema")
    name = namespace if namespace is not None else schema or DEFAULT_SCHEMA
    return dsn, check_name(name, backend=BACKEND, what="schema")


class PostgresStore:
    """The :class:`store.Store` on one schema of a PostgreSQL database."""

    backend = BACKEND

    def __init__(self, pool: asyncpg.Pool, schema: str, target: str) -> None:
        self._pool = pool
        self._schema = schema
        self._s = f'"{schema}"'
        self._target = target
        self._errors = _errors()
        self._status = StoreStatus.OPEN

    @classmethod
    async def connect(cls, url: str, namespace: str | None = None) -> Self:
        """Open a pool, create the schema if missing and migrate it.

        Raises:
            StoreError: The server cannot be reached, refuses the login, or the migration fails.
        """
        dsn, schema = parse_url(url, namespace)
        target = f"{redact(dsn)}?schema={schema}"
        import asyncpg

        async with translate(_errors(), backend=BACKEND, operation="connect", target=target):
            async with asyncio.timeout(2 * CONNECT_TIMEOUT_S):
                pool = await asyncpg.create_pool(
                    dsn, min_size=1, max_size=10, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S
                )
        store = cls(pool, schema, target)
        try:
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
        """Close the pool (terminating it if connections do not come back in time); idempotent."""
        if self._status is StoreStatus.CLOSED:
            return
        self._status = StoreStatus.CLOSED
        caught: tuple[type[BaseException], ...] = (*self._errors, OSError, TimeoutError)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._pool.close()
        except caught:
            self._pool.terminate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _conn(self, operation: str, *, transaction: bool = False) -> AsyncIterator[asyncpg.Connection]:
        if self._status is StoreStatus.CLOSED:
            raise closed_error(backend=BACKEND, operation=operation, target=self._target)
        async with (
            translate(self._errors, backend=BACKEND, operation=operation, target=self._target),
            self._pool.acquire() as conn,
        ):
            if transaction:
                async with conn.transaction():
                    yield conn
            else:
                yield conn

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[Any]:
        async with self._conn(operation) as conn:
            return list(await conn.fetch(sql.format(s=self._s), *args))

    async def _execute(self, operation: str, sql: str, *args: Any) -> int:
        async with self._conn(operation) as conn:
            return _count(await conn.execute(sql.format(s=self._s), *args))

    async def _migrate(self) -> None:
        async with self._conn("migrate", transaction=True) as conn:
            # Held until commit: a second opener waits here, then finds the schema up to date.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"ca-actors-store:{self._schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._s}.schema_version"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            current = await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {self._s}.schema_version")
            for version, statements in MIGRATIONS:
                if version > current:
                    for statement in statements:
                        await conn.execute(statement.format(s=self._s))
                    await conn.execute(f"INSERT INTO {self._s}.schema_version VALUES ($1, $2)", version, time.time())

    async def schema_version(self) -> int:
        """The highest migration applied to this schema."""
        rows = await self._fetch("schema_version", "SELECT COALESCE(MAX(version), 0) FROM {s}.schema_version")
        return int(rows[0][0])

    # --- runs -------------------------------------------------------------------------------------------------

    async def put_run(self, run: RunHistory) -> None:
        """Insert the run, or replace the row of the same run (same id, flow and start)."""
        written = await self._execute(
            "put_run",
            "INSERT INTO {s}.runs AS old VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id) DO UPDATE SET"
            " status = EXCLUDED.status, doc = EXCLUDED.doc"
            " WHERE old.flow = EXCLUDED.flow AND old.created_at = EXCLUDED.created_at",
            run.run_id,
            run.flow,
            run.status,
            run.created_at,
            run.model_dump_json(),
        )
        if written == 0:
            raise RunIdTaken(run.run_id, backend=BACKEND, target=self._target)

    async def get_run(self, run_id: str) -> RunHistory | None:
        """The run with this id, or ``None``."""
        rows = await self._fetch("get_run", "SELECT doc FROM {s}.runs WHERE run_id = $1", run_id)
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
        where: list[str] = ["TRUE"]
        args: list[object] = [check_limit(limit)]
        for column, value in (("flow", flow), ("status", status)):
            if value is not None:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        if since is not None:
            args.append(since)
            where.append(f"created_at >= ${len(args)}")
        if before is not None:
            args.extend([before[0], before[1]])
            at, key = len(args) - 1, len(args)
            where.append(f'(created_at < ${at} OR (created_at = ${at} AND run_id COLLATE "C" < ${key}))')
        sql = (
            f"SELECT doc FROM {{s}}.runs WHERE {' AND '.join(where)}"
            ' ORDER BY created_at DESC, run_id COLLATE "C" DESC LIMIT $1'
        )
        return [RunHistory.model_validate_json(row[0]) for row in await self._fetch("list_runs", sql, *args)]

    # --- memories ---------------------------------------------------------------------------------------------

    async def add_memory(self, record: MemoryRecord) -> None:
        """Store a memory record (a record with the same ``id`` is replaced)."""
        await self._execute(
            "add_memory",
            "INSERT INTO {s}.memories VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET"
            " scope_key = EXCLUDED.scope_key, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,"
            " content = EXCLUDED.content, doc = EXCLUDED.doc",
            record.id,
            record.scope_key,
            record.created_at,
            record.expires_at,
            record.content,
            record.model_dump_json(),
        )

    async def memories(self, scope_key: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope, newest first."""
        return await self.search_memories(scope_key, "", limit=limit)

    async def search_memories(self, scope_key: str, query: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope whose content holds every word of `query` (any case), newest first."""
        patterns = [f"%{escape_like(word)}%" for word in query_words(query)]
        match = "".join(f" AND content ILIKE ${n} ESCAPE '\\'" for n in range(4, 4 + len(patterns)))
        sql = (
            "SELECT doc FROM {s}.memories WHERE scope_key = $1 AND (expires_at IS NULL OR expires_at > $2)"
            f'{match} ORDER BY created_at DESC, id COLLATE "C" DESC LIMIT $3'
        )
        rows = await self._fetch("search_memories", sql, scope_key, time.time(), check_limit(limit), *patterns)
        return [MemoryRecord.model_validate_json(row[0]) for row in rows]

    async def memory_keys(self, prefix: str = "") -> list[str]:
        """Scope keys starting with `prefix` that hold unexpired records, sorted."""
        rows = await self._fetch(
            "memory_keys",
            'SELECT DISTINCT scope_key COLLATE "C" AS k FROM {s}.memories WHERE starts_with(scope_key, $1)'
            " AND (expires_at IS NULL OR expires_at > $2) ORDER BY k",
            prefix,
            time.time(),
        )
        return [str(row[0]) for row in rows]

    async def clear_memories(self, scope_key_prefix: str) -> int:
        """Delete every record whose scope key starts with `scope_key_prefix`; return how many."""
        return await self._execute(
            "clear_memories", "DELETE FROM {s}.memories WHERE starts_with(scope_key, $1)", scope_key_prefix
        )

    async def trim_memories(
        self, scope_key: str, *, max_items: int | None = None, older_than: float | None = None
    ) -> int:
        """Drop expired records, records created before `older_than`, then all but the newest `max_items`.

        Returns:
            How many records were deleted.
        """
        s = self._s
        async with self._conn("trim_memories", transaction=True) as conn:
            deleted = _count(
                await conn.execute(
                    f"DELETE FROM {s}.memories WHERE scope_key = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
                    scope_key,
                    time.time(),
                )
            )
            if older_than is not None:
                sql = f"DELETE FROM {s}.memories WHERE scope_key = $1 AND created_at < $2"
                deleted += _count(await conn.execute(sql, scope_key, older_than))
            if max_items is not None:
                sql = (
                    f"DELETE FROM {s}.memories WHERE id IN (SELECT id FROM {s}.memories WHERE scope_key = $1"
                    ' ORDER BY created_at DESC, id COLLATE "C" DESC OFFSET $2)'
                )
                deleted += _count(await conn.execute(sql, scope_key, check_limit(max_items)))
        return deleted

    # --- chat sessions ----------------------------------------------------------------------------------------

    async def save_session(self, session: ChatSession) -> None:
        """Insert or replace the session with this ``id``."""
        await self._execute(
            "save_session",
            "INSERT INTO {s}.sessions VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET flow = EXCLUDED.flow,"
            " updated_at = EXCLUDED.updated_at, doc = EXCLUDED.doc",
            session.id,
            session.flow,
            session.updated_at,
            session.model_dump_json(),
        )

    async def get_session(self, session_id: str) -> ChatSession | None:
        """The session with this id, or ``None``."""
        rows = await self._fetch("get_session", "SELECT doc FROM {s}.sessions WHERE id = $1", session_id)
        return ChatSession.model_validate_json(rows[0][0]) if rows else None

    async def list_sessions(self, *, flow: str | None = None, limit: int = 50) -> list[ChatSession]:
        """Sessions most recently updated first, optionally of one flow."""
        where = "WHERE flow = $2" if flow is not None else ""
        args = (flow,) if flow is not None else ()
        sql = f'SELECT doc FROM {{s}}.sessions {where} ORDER BY updated_at DESC, id COLLATE "C" DESC LIMIT $1'
        rows = await self._fetch("list_sessions", sql, check_limit(limit), *args)
        return [ChatSession.model_validate_json(row[0]) for row in rows]

    # --- config versions --------------------------------------------------------------------------------------

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Insert or replace the version ``(flow, version)``."""
        await self._execute(
            "put_config_version",
            "INSERT INTO {s}.config_versions VALUES ($1, $2, $3, $4) ON CONFLICT (flow, version) DO UPDATE SET"
            " created_at = EXCLUDED.created_at, doc = EXCLUDED.doc",
            version.flow,
            version.version,
            version.created_at,
            version.model_dump_json(),
        )

    async def config_versions(self, flow: str, *, limit: int = 50) -> list[ConfigVersion]:
        """Versions of one flow, newest first."""
        rows = await self._fetch(
            "config_versions",
            "SELECT doc FROM {s}.config_versions WHERE flow = $1"
            ' ORDER BY created_at DESC, version COLLATE "C" DESC LIMIT $2',
            flow,
            check_limit(limit),
        )
        return [ConfigVersion.model_validate_json(row[0]) for row in rows]

    # --- claims -----------------------------------------------------------------------------------------------

    async def claim(self, namespace: str, key: str, ttl_s: float | None = None) -> bool:
        """Insert-if-absent: ``True`` for the first claim of ``(namespace, key)`` until `ttl_s` seconds pass."""
        now = time.time()
        expires_at = None if check_ttl(ttl_s) is None else now + (ttl_s or 0)
        rows = await self._fetch(
            "claim",
            # An expired claim is taken over in the same statement, so two claimers never both win.
            "INSERT INTO {s}.claims AS c VALUES ($1, $2, $3) ON CONFLICT (namespace, key) DO UPDATE SET"
            " expires_at = EXCLUDED.expires_at WHERE c.expires_at IS NOT NULL AND c.expires_at <= $4 RETURNING 1",
            namespace,
            key,
            expires_at,
            now,
        )
        return bool(rows)

    # --- A/B results ------------------------------------------------------------------------------------------

    async def put_ab_result(self, result: ABResult) -> None:
        """Insert or replace the result ``(experiment, variant, run_id)``."""
        await self._execute(
            "put_ab_result",
            "INSERT INTO {s}.ab_results VALUES ($1, $2, $3, $4, $5) ON CONFLICT (experiment, variant, run_id)"
            " DO UPDATE SET created_at = EXCLUDED.created_at, doc = EXCLUDED.doc",
            result.experiment,
            result.variant,
            result.run_id,
            result.created_at,
            result.model_dump_json(),
        )

    async def ab_results(self, experiment: str, *, variant: str | None = None) -> list[ABResult]:
        """Results of one experiment (optionally one variant), newest first."""
        where = " AND variant = $2" if variant is not None else ""
        args = (variant,) if variant is not None else ()
        sql = (
            f"SELECT doc FROM {{s}}.ab_results WHERE experiment = $1{where}"
            ' ORDER BY created_at DESC, variant COLLATE "C" DESC, run_id COLLATE "C" DESC'
        )
        rows = await self._fetch("ab_results", sql, experiment, *args)
        return [ABResult.model_validate_json(row[0]) for row in rows]


def _count(status: str) -> int:
    # asyncpg returns the command tag, e.g. "DELETE 3" or "INSERT 0 1": the row count is the last word.
    return int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0
