"""Redis backend (redis.asyncio): JSON documents in hashes, sorted sets for newest-first listing.

URL: ``redis://host:port/db?prefix=NAME`` (``rediss://`` for TLS; default prefix ``ca``). ``namespace=`` overrides
the prefix. Every key starts with ``NAME:``; the variable part (scope key, flow, ...) always comes last, so
two different names never map to one key. Key layout (``P`` is the prefix):

    P:schema_version                    the applied migration (an integer)
    P:runs / P:runs:idx                 hash run_id -> RunHistory JSON / zset run_id by created_at
    P:mem:data:<scope> / P:mem:idx:<scope> / P:mem:exp:<scope>
                                        hash id -> MemoryRecord JSON / zset id by created_at / zset id by expires_at
    P:mem:scopes                        set of scope keys that (may) hold records
    P:sessions / P:sessions:idx         hash id -> ChatSession JSON / zset id by updated_at
    P:cfg:data:<flow> / P:cfg:idx:<flow>   hash version -> ConfigVersion JSON / zset version by created_at
    P:claim:<len(ns)>:<ns>:<key>        SET NX PX: the claim itself
    P:ab:<experiment>                   hash [variant, run_id] -> ABResult JSON

Ties in created_at are broken by member in reverse byte order, as in the SQL backends (``id DESC``).
Keyword search scans a scope's records in Python: fine for the sizes a memory scope holds.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

from pydantic import BaseModel

from store._common import (
    StoreStatus,
    check_limit,
    check_name,
    check_ttl,
    closed_error,
    matches_all,
    pop_query,
    query_words,
    redact,
    translate,
)
from store._errors import RunIdTaken
from store._models import ABResult, ChatSession, ConfigVersion, MemoryRecord, RunHistory

if TYPE_CHECKING:
    from redis.asyncio import Redis

BACKEND = "redis"
DEFAULT_PREFIX = "ca"
CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 10.0
PAGE = 100

# Ordered migrations: (version, what changed). Redis keys need no DDL; a step that rewrites keys must be idempotent.
MIGRATIONS: list[tuple[int, str]] = [(1, "key layout v1")]

M = TypeVar("M", bound=BaseModel)


def _errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError,)


def parse_url(url: str, namespace: str | None) -> tuple[str, str]:
    """The redis-py URL (without ``prefix``) and the key prefix of a ``redis://`` URL.

    Raises:
        StoreError: The prefix is not a safe name.
    """
    rest, prefix = pop_query(url, "prefix")
    name = namespace if namespace is not None else prefix or DEFAULT_PREFIX
    return rest, check_name(name, backend=BACKEND, what="key prefix")


# Atomically: write a run's history unless its id holds another run's (another flow or start time).
_PUT_RUN = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local doc = cjson.decode(old)
  if doc['flow'] ~= ARGV[3] or tonumber(doc['created_at']) ~= tonumber(ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""


class RedisStore:
    """The :class:`store.Store` on the keys under one prefix of a Redis database."""

    backend = BACKEND

    def __init__(self, client: Redis, prefix: str, target: str) -> None:
        self._r = client
        self._p = prefix
        self._target = target
        self._errors = _errors()
        self._status = StoreStatus.OPEN

    @classmethod
    async def connect(cls, url: str, namespace: str | None = None) -> Self:
        """Connect, check the server answers, record the schema version.

        Raises:
            StoreError: The server cannot be reached or refuses the connection.
        """
        rest, prefix = parse_url(url, namespace)
        target = f"{redact(rest)}?prefix={prefix}"
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        async with translate(_errors(), backend=BACKEND, operation="connect", target=target):
            client = Redis.from_url(
                rest,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
                # The default retries back off for seconds; a down server should be reported promptly.
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            )
        store = cls(client, prefix, target)
        try:
            async with store._op("connect") as r:
                await r.ping()  # redis-py connects lazily: find out now whether the server is there
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
        """Close the client and its connection pool; idempotent."""
        if self._status is StoreStatus.CLOSED:
            return
        self._status = StoreStatus.CLOSED
        async with translate(self._errors, backend=BACKEND, operation="close", target=self._target):
            await self._r.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _k(self, *parts: str) -> str:
        return ":".join((self._p, *parts))

    @asynccontextmanager
    async def _op(self, operation: str) -> AsyncIterator[Redis]:
        if self._status is StoreStatus.CLOSED:
            raise closed_error(backend=BACKEND, operation=operation, target=self._target)
        async with translate(self._errors, backend=BACKEND, operation=operation, target=self._target):
            yield self._r

    async def _migrate(self) -> None:
        async with self._op("migrate") as r:
            current = int(await r.get(self._k("schema_version")) or 0)
            for version, _change in MIGRATIONS:
                if version > current:
                    await r.set(self._k("schema_version"), version)

    async def schema_version(self) -> int:
        """The highest migration applied under this prefix."""
        async with self._op("schema_version") as r:
            return int(await r.get(self._k("schema_version")) or 0)

    async def _newest(
        self,
        operation: str,
        index: str,
        data: str,
        model: type[M],
        keep: Callable[[M], bool],
        limit: int,
        min_score: float | None = None,
        max_score: float | None = None,
    ) -> list[M]:
        """Up to `limit` documents of hash `data` that pass `keep`, in the reverse order of zset `index`
        (only members scored from `min_score` to `max_score`)."""
        found: list[M] = []
        start = 0
        check_limit(limit)
        low: float | str = "-inf" if min_score is None else min_score
        high: float | str = "+inf" if max_score is None else max_score
        async with self._op(operation) as r:
            while len(found) < limit:
                members = _texts(await r.zrevrangebyscore(index, high, low, start=start, num=PAGE))
                if not members:
                    break
                for doc in await r.hmget(data, members):
                    item = None if doc is None else model.model_validate_json(doc)
                    if item is not None and keep(item):
                        found.append(item)
                        if len(found) == limit:
                            break
                start += PAGE
        return found

    # --- runs -------------------------------------------------------------------------------------------------

    async def put_run(self, run: RunHistory) -> None:
        """Insert the run, or replace the entry of the same run (same id, flow and start)."""
        async with self._op("put_run") as r:
            keys = [self._k("runs"), self._k("runs:idx")]
            args = [run.run_id, run.model_dump_json(), run.flow, repr(run.created_at)]
            written = await r.eval(_PUT_RUN, len(keys), *keys, *args)
        if not written:
            raise RunIdTaken(run.run_id, backend=BACKEND, target=self._target)

    async def get_run(self, run_id: str) -> RunHistory | None:
        """The run with this id, or ``None``."""
        async with self._op("get_run") as r:
            doc = await r.hget(self._k("runs"), run_id)
        return None if doc is None else RunHistory.model_validate_json(doc)

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

        def keep(run: RunHistory) -> bool:
            if before is not None and (run.created_at, run.run_id) >= before:
                return False
            return (flow is None or run.flow == flow) and (status is None or run.status == status)

        index, data = self._k("runs:idx"), self._k("runs")
        high = None if before is None else before[0]
        return await self._newest("list_runs", index, data, RunHistory, keep, limit, min_score=since, max_score=high)

    # --- memories ---------------------------------------------------------------------------------------------

    async def add_memory(self, record: MemoryRecord) -> None:
        """Store a memory record (a record with the same ``id`` in the same scope is replaced)."""
        scope = record.scope_key
        expires = math.inf if record.expires_at is None else record.expires_at
        async with self._op("add_memory") as r, r.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("mem:data", scope), record.id, record.model_dump_json())
            pipe.zadd(self._k("mem:idx", scope), {record.id: record.created_at})
            pipe.zadd(self._k("mem:exp", scope), {record.id: expires})
            pipe.sadd(self._k("mem:scopes"), scope)
            await pipe.execute()

    async def memories(self, scope_key: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope, newest first."""
        return await self.search_memories(scope_key, "", limit=limit)

    async def search_memories(self, scope_key: str, query: str, *, limit: int = 20) -> list[MemoryRecord]:
        """Unexpired records of one scope whose content holds every word of `query` (any case), newest first."""
        words, now = query_words(query), time.time()

        def keep(record: MemoryRecord) -> bool:
            return not record.expired(now) and matches_all(record.content, words)

        index, data = self._k("mem:idx", scope_key), self._k("mem:data", scope_key)
        return await self._newest("search_memories", index, data, MemoryRecord, keep, limit)

    async def _scopes(self, r: Redis, prefix: str) -> list[str]:
        return sorted(scope for scope in _texts(await r.smembers(self._k("mem:scopes"))) if scope.startswith(prefix))

    async def memory_keys(self, prefix: str = "") -> list[str]:
        """Scope keys starting with `prefix` that hold unexpired records, sorted."""
        async with self._op("memory_keys") as r:
            scopes = await self._scopes(r, prefix)
            async with r.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.zcount(self._k("mem:exp", scope), f"({time.time()}", "+inf")
                counts = await pipe.execute()
        return [scope for scope, count in zip(scopes, counts, strict=True) if count]

    async def clear_memories(self, scope_key_prefix: str) -> int:
        """Delete every record whose scope key starts with `scope_key_prefix`; return how many."""
        async with self._op("clear_memories") as r:
            scopes = await self._scopes(r, scope_key_prefix)
            if not scopes:
                return 0
            async with r.pipeline(transaction=True) as pipe:
                for scope in scopes:
                    pipe.hlen(self._k("mem:data", scope))
                    pipe.delete(self._k("mem:data", scope), self._k("mem:idx", scope), self._k("mem:exp", scope))
                    pipe.srem(self._k("mem:scopes"), scope)
                replies = await pipe.execute()
        return sum(int(count) for count in replies[::3])

    async def trim_memories(
        self, scope_key: str, *, max_items: int | None = None, older_than: float | None = None
    ) -> int:
        """Drop expired records, records created before `older_than`, then all but the newest `max_items`.

        Returns:
            How many records were deleted.
        """
        index, data, expiry = (self._k(kind, scope_key) for kind in ("mem:idx", "mem:data", "mem:exp"))
        async with self._op("trim_memories") as r:
            doomed = set(_texts(await r.zrangebyscore(expiry, "-inf", time.time())))
            if older_than is not None:
                doomed.update(_texts(await r.zrangebyscore(index, "-inf", f"({older_than}")))
            if max_items is not None:
                survivors = [m for m in _texts(await r.zrevrange(index, 0, -1)) if m not in doomed]
                doomed.update(survivors[check_limit(max_items) :])
            if not doomed:
                return 0
            async with r.pipeline(transaction=True) as pipe:
                pipe.hdel(data, *doomed)
                pipe.zrem(index, *doomed)
                pipe.zrem(expiry, *doomed)
                deleted, _, _ = await pipe.execute()
        return int(deleted)

    # --- chat sessions ----------------------------------------------------------------------------------------

    async def save_session(self, session: ChatSession) -> None:
        """Insert or replace the session with this ``id``."""
        async with self._op("save_session") as r, r.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("sessions"), session.id, session.model_dump_json())
            pipe.zadd(self._k("sessions:idx"), {session.id: session.updated_at})
            await pipe.execute()

    async def get_session(self, session_id: str) -> ChatSession | None:
        """The session with this id, or ``None``."""
        async with self._op("get_session") as r:
            doc = await r.hget(self._k("sessions"), session_id)
        return None if doc is None else ChatSession.model_validate_json(doc)

    async def list_sessions(self, *, flow: str | None = None, limit: int = 50) -> list[ChatSession]:
        """Sessions most recently updated first, optionally of one flow."""

        def keep(session: ChatSession) -> bool:
            return flow is None or session.flow == flow

        index, data = self._k("sessions:idx"), self._k("sessions")
        return await self._newest("list_sessions", index, data, ChatSession, keep, limit)

    # --- config versions --------------------------------------------------------------------------------------

    async def put_config_version(self, version: ConfigVersion) -> None:
        """Insert or replace the version ``(flow, version)``."""
        async with self._op("put_config_version") as r, r.pipeline(transaction=True) as pipe:
            pipe.hset(self._k("cfg:data", version.flow), version.version, version.model_dump_json())
            pipe.zadd(self._k("cfg:idx", version.flow), {version.version: version.created_at})
            await pipe.execute()

    async def config_versions(self, flow: str, *, limit: int = 50) -> list[ConfigVersion]:
        """Versions of one flow, newest first."""
        index, data = self._k("cfg:idx", flow), self._k("cfg:data", flow)
        return await self._newest("config_versions", index, data, ConfigVersion, lambda _: True, limit)

    # --- claims -----------------------------------------------------------------------------------------------

    async def claim(self, namespace: str, key: str, ttl_s: float | None = None) -> bool:
        """Insert-if-absent: ``True`` for the first claim of ``(namespace, key)`` until `ttl_s` seconds pass."""
        ttl_ms = None if check_ttl(ttl_s) is None else max(1, math.ceil((ttl_s or 0) * 1000))
        async with self._op("claim") as r:
            # The namespace's length goes into the key, so ("a:b", "c") and ("a", "b:c") stay apart.
            won = await r.set(self._k("claim", str(len(namespace)), namespace, key), 1, nx=True, px=ttl_ms)
        return bool(won)

    # --- A/B results ------------------------------------------------------------------------------------------

    async def put_ab_result(self, result: ABResult) -> None:
        """Insert or replace the result ``(experiment, variant, run_id)``."""
        field = json.dumps([result.variant, result.run_id])
        async with self._op("put_ab_result") as r:
            await r.hset(self._k("ab", result.experiment), field, result.model_dump_json())

    async def ab_results(self, experiment: str, *, variant: str | None = None) -> list[ABResult]:
        """Results of one experiment (optionally one variant), newest first."""
        async with self._op("ab_results") as r:
            docs = await r.hvals(self._k("ab", experiment))
        results = [ABResult.model_validate_json(doc) for doc in docs]
        results = [result for result in results if variant is None or result.variant == variant]
        return sorted(results, key=lambda res: (res.created_at, res.variant, res.run_id), reverse=True)


def _texts(reply: Any) -> list[str]:
    # The client decodes responses, so member replies are str; redis-py types them as a union of every reply shape.
    return list(cast("list[str] | set[str]", reply))
