"""The `Store` port, the registry of backends by URL scheme, and `open_store` / `connect_store`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol
from urllib.parse import urlsplit

from store._common import StoreStatus
from store._errors import UnknownBackendError
from store._models import ABResult, ChatSession, ConfigVersion, MemoryRecord, RunHistory
from store._postgres import PostgresStore
from store._redis import RedisStore
from store._sqlite import SqliteStore


class Store(Protocol):
    """What the platform keeps outside NATS. Every method may raise :class:`store.StoreError`.

    Lists are newest first; ties are broken by the record's key in reverse byte order.
    """

    backend: str

    @property
    def status(self) -> StoreStatus:
        """Open until :meth:`close`."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...

    async def schema_version(self) -> int:
        """The highest migration applied to this store."""
        ...

    async def put_run(self, run: RunHistory) -> None:
        """Insert or replace the run with this ``run_id``."""
        ...

    async def get_run(self, run_id: str) -> RunHistory | None:
        """The run with this id, or ``None``."""
        ...

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
        ...

    async def add_memory(self, record: MemoryRecord) -> None:
        """Store a memory record."""
        ...

    async def memories(self, scope_key: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope, newest first."""
        ...

    async def search_memories(self, scope_key: str, query: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope whose content holds every word of `query` (any case), newest first."""
        ...

    async def memory_keys(self, prefix: str = "") -> list[str]:
        """Scope keys starting with `prefix` that hold unexpired records, sorted."""
        ...

    async def clear_memories(self, scope_key_prefix: str) -> int:
        """Delete every record whose scope key starts with `scope_key_prefix`; return how many."""
        ...

    async def trim_memories(
        self, scope_key: str, *, max_items: int | None = None, older_than: float | None = None
    ) -> int:
        """Drop expired records, records created before `older_than`, then all but the newest `max_items`."""
        ...

    async def save_session(self, session: ChatSession) -> None:
        """Insert or replace the session with this ``id``."""
        ...

    async def get_session(self, session_id: str) -> ChatSession | None:
        """The session with this id, or ``None``."""
        ...

    async def list_sessions(self, *, flow: str | None = None, limit: int = 50) -> list[ChatSession]:
        """Sessions most recently updated first, optionally of one flow."""
        ...

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Insert or replace the version ``(flow, version)``."""
        ...

    async def config_versions(self, flow: str, *, limit: int = 50) -> list[ConfigVersion]:
        """Versions of one flow, newest first."""
        ...

    async def claim(self, namespace: str, key: str, ttl_s: float | None = None) -> bool:
        """Insert-if-absent: ``True`` for the first claim of ``(namespace, key)`` until `ttl_s` seconds pass."""
        ...

    async def put_ab_result(self, result: ABResult) -> None:
        """Insert or replace the result ``(experiment, variant, run_id)``."""
        ...

    async def ab_results(self, experiment: str, *, variant: str | None = None) -> list[ABResult]:
        """Results of one experiment (optionally one variant), newest first."""
        ...


Connector = Callable[[str, str | None], Awaitable[Store]]

# URL scheme -> backend. Modules import their driver only when they connect, so unused drivers need not be installed.
BACKENDS: dict[str, Connector] = {
    "sqlite": SqliteStore.connect,
    "postgresql": PostgresStore.connect,
    "postgres": PostgresStore.connect,
    "redis": RedisStore.connect,
    "rediss": RedisStore.connect,
}


async def connect_store(url: str, *, namespace: str | None = None) -> Store:
    """Connect to the store at `url` and migrate its schema; the caller must ``await store.close()``.

    Args:
        url: ``sqlite:///path.db``, ``postgresql://user@host:5432/db?schema=name`` or
            ``redis://host:6379/0?prefix=name``.
        namespace: Overrides the Postgres schema, the Redis key prefix or the SQLite table prefix.

    Raises:
        UnknownBackendError: The URL scheme names no backend.
        StoreError: The backend cannot connect or migrate.
    """
    scheme = urlsplit(url).scheme.lower()
    connector = BACKENDS.get(scheme)
    if connector is None:
        raise UnknownBackendError(scheme, sorted(BACKENDS))
    return await connector(url, namespace)


@asynccontextmanager
async def open_store(url: str, *, namespace: str | None = None) -> AsyncIterator[Store]:
    """``async with open_store(url) as store``: :func:`connect_store`, closed on exit.

    Raises:
        UnknownBackendError: The URL scheme names no backend.
        StoreError: The backend cannot connect or migrate.
    """
    store = await connect_store(url, namespace=namespace)
    try:
        yield store
    finally:
        await store.close()
