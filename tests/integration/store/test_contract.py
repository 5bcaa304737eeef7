"""One contract for every store backend, run against real servers: a SQLite file, PostgreSQL and Redis.

PostgreSQL (``postgresql://root@127.0.0.1:5432/test``, trust auth) and Redis (``redis://127.0.0.1:6379/0``) must be
running; override with CA_TEST_POSTGRES_URL / CA_TEST_REDIS_URL. Each test gets its own schema or key prefix and
removes it afterwards. Then what opening a store says when there is no server, and which drivers it imports.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest

from store import (
    ABResult,
    ChatSession,
    ConfigVersion,
    MemoryRecord,
    RunHistory,
    RunIdTaken,
    Store,
    StoreError,
    StoreStatus,
    UnknownBackendError,
    connect_store,
    open_store,
)
from tests.conftest import ROOT

POSTGRES_URL = os.environ.get("CA_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SCOPE = "flow/chat/node/respond/ada"


async def _drop_schema(schema: str) -> None:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _delete_keys(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


class Backend(NamedTuple):
    """A fresh private store on a real server: its kind, URL and schema / key prefix (a fresh name)."""

    kind: str
    url: str
    name: str


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A fresh store URL on each real backend; the schemas or keys it (and `name_b`) used are removed afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    kind = str(request.param)
    if kind == "sqlite":
        yield Backend(kind, f"sqlite:///{tmp_path / 'nested' / 'store.db'}", name)
    elif kind == "postgres":
        yield Backend(kind, f"{POSTGRES_URL}?schema={name}", name)
        await asyncio.gather(_drop_schema(name), _drop_schema(f"{name}_b"))
    else:
        yield Backend(kind, f"{REDIS_URL}?prefix={name}", name)
        await asyncio.gather(_delete_keys(name), _delete_keys(f"{name}_b"))


@pytest.fixture
def store_url(backend: Backend) -> str:
    return backend.url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with open_store(store_url) as opened:
        yield opened


def run(run_id: str, *, flow: str = "chat", status: str = "succeeded", at: float = 1000.0) -> RunHistory:
    return RunHistory(run_id=run_id, flow=flow, status=status, created_at=at, inputs={"q": run_id})


def memory(content: str, *, at: float, scope: str = SCOPE, expires_at: float | None = None) -> MemoryRecord:
    return MemoryRecord(
        scope_key=scope, flow="chat", node="respond", content=content, created_at=at, expires_at=expires_at
    )


# --- runs -------------------------------------------------------------------------------------------------------


async def test_a_run_is_upserted_by_id_and_read_back_whole(store: Store) -> None:
    await store.put_run(run("r1", status="running"))
    finished = run("r1").model_copy(
        update={
            "finished_at": 1002.5,
            "duration_ms": 2500.0,
            "cost_usd": 0.25,
            "state": {"reply": "hi"},
            "steps": [{"node": "respond", "ok": True}],
        }
    )
    await store.put_run(finished)
    assert await store.get_run("r1") == finished
    assert await store.get_run("missing") is None
    assert [r.run_id for r in await store.list_runs()] == ["r1"]


async def test_a_run_never_replaces_another_runs_row_with_the_same_id(store: Store) -> None:
    await store.put_run(run("r1", flow="chat", at=1000.0))
    with pytest.raises(RunIdTaken, match="r1 already belongs to another run"):
        await store.put_run(run("r1", flow="mail", at=1000.0))
    with pytest.raises(RunIdTaken):
        await store.put_run(run("r1", flow="chat", at=2000.0))
    kept = await store.get_run("r1")
    assert kept is not None
    assert (kept.flow, kept.created_at) == ("chat", 1000.0)
    assert [r.run_id for r in await store.list_runs()] == ["r1"]


async def test_runs_are_listed_newest_first_filtered_by_flow_and_status_up_to_the_limit(store: Store) -> None:
    await store.put_run(run("a", flow="chat", status="succeeded", at=1.0))
    await store.put_run(run("b", flow="chat", status="failed", at=3.0))
    await store.put_run(run("c", flow="mail", status="succeeded", at=2.0))
    await store.put_run(run("d", flow="chat", status="succeeded", at=4.0))
    assert [r.run_id for r in await store.list_runs()] == ["d", "b", "c", "a"]
    assert [r.run_id for r in await store.list_runs(flow="chat")] == ["d", "b", "a"]
    assert [r.run_id for r in await store.list_runs(status="succeeded")] == ["d", "c", "a"]
    assert [r.run_id for r in await store.list_runs(flow="chat", status="failed")] == ["b"]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["d", "b"]
    assert await store.list_runs(flow="nope") == []
    assert [r.run_id for r in await store.list_runs(since=2.0)] == ["d", "b", "c"]
    assert [r.run_id for r in await store.list_runs(flow="chat", since=2.5, limit=1)] == ["d"]
    assert await store.list_runs(since=5.0) == []


async def test_runs_are_paged_by_keyset_after_the_last_run_of_the_previous_page_even_on_tied_times(
    store: Store,
) -> None:
    for name, at in (("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 2.0), ("e", 3.0)):
        await store.put_run(run(name, flow="chat", status="succeeded", at=at))
    pages: list[list[str]] = []
    cursor: tuple[float, str] | None = None
    while True:
        page = await store.list_runs(limit=2, before=cursor)
        if not page:
            break
        pages.append([r.run_id for r in page])
        cursor = (page[-1].created_at, page[-1].run_id)
    assert pages == [["e", "d"], ["c", "b"], ["a"]]
    assert [r.run_id for r in await store.list_runs(flow="chat", before=(2.0, "c"), limit=5)] == ["b", "a"]


# --- memories ---------------------------------------------------------------------------------------------------


async def test_memories_are_listed_newest_first_up_to_the_limit_per_scope(store: Store) -> None:
    for i in range(5):
        await store.add_memory(memory(f"note {i}", at=100.0 + i))
    await store.add_memory(memory("elsewhere", at=200.0, scope="flow/chat/node/respond/bob"))
    assert [m.content for m in await store.memories(SCOPE)] == ["note 4", "note 3", "note 2", "note 1", "note 0"]
    assert [m.content for m in await store.memories(SCOPE, limit=2)] == ["note 4", "note 3"]
    first = (await store.memories(SCOPE, limit=1))[0]
    assert (first.flow, first.node, first.created_at) == ("chat", "respond", 104.0)
    assert await store.memories("flow/none") == []


async def test_search_requires_every_word_ignoring_case(store: Store) -> None:
    await store.add_memory(memory("Ada likes Green TEA in the morning", at=1.0))
    await store.add_memory(memory("ada drinks coffee", at=2.0))
    await store.add_memory(memory("Bob likes green tea too", at=3.0))
    found = await store.search_memories(SCOPE, "green ADA")
    assert [m.content for m in found] == ["Ada likes Green TEA in the morning"]
    assert [m.content for m in await store.search_memories(SCOPE, "  tea   likes ")] == [
        "Bob likes green tea too",
        "Ada likes Green TEA in the morning",
    ]
    assert [m.content for m in await store.search_memories(SCOPE, "ada", limit=1)] == ["ada drinks coffee"]
    assert await store.search_memories(SCOPE, "ada tea coffee") == []


async def test_search_takes_wildcard_characters_literally(store: Store) -> None:
    await store.add_memory(memory("discount 50% off", at=1.0))
    await store.add_memory(memory("discount 500 off", at=2.0))
    await store.add_memory(memory("user_id is 7", at=3.0))
    await store.add_memory(memory("userXid is 8", at=4.0))
    await store.add_memory(memory("path C:\\temp", at=5.0))
    assert [m.content for m in await store.search_memories(SCOPE, "50%")] == ["discount 50% off"]
    assert [m.content for m in await store.search_memories(SCOPE, "user_id")] == ["user_id is 7"]
    assert [m.content for m in await store.search_memories(SCOPE, "c:\\temp")] == ["path C:\\temp"]
    assert await store.search_memories(SCOPE, "%") == [(await store.search_memories(SCOPE, "50%"))[0]]


async def test_expired_memories_are_never_returned(store: Store) -> None:
    now = time.time()
    await store.add_memory(memory("fresh tea", at=now, expires_at=now + 3600))
    await store.add_memory(memory("stale tea", at=now + 1, expires_at=now - 1))
    await store.add_memory(memory("gone tea", at=now, scope="flow/chat/workflow/old", expires_at=now - 1))
    assert [m.content for m in await store.memories(SCOPE)] == ["fresh tea"]
    assert [m.content for m in await store.search_memories(SCOPE, "tea")] == ["fresh tea"]
    assert await store.memory_keys("flow/chat/") == [SCOPE]


async def test_trim_keeps_the_newest_records_up_to_max_items(store: Store) -> None:
    for i in range(6):
        await store.add_memory(memory(f"note {i}", at=10.0 + i))
    await store.add_memory(memory("other scope", at=1.0, scope=SCOPE + "/2"))
    assert await store.trim_memories(SCOPE, max_items=2) == 4
    assert [m.content for m in await store.memories(SCOPE)] == ["note 5", "note 4"]
    assert await store.trim_memories(SCOPE, max_items=2) == 0
    assert [m.content for m in await store.memories(SCOPE + "/2")] == ["other scope"]


async def test_trim_drops_records_created_before_a_timestamp_and_expired_ones(store: Store) -> None:
    now = time.time()
    for i in range(4):
        await store.add_memory(memory(f"note {i}", at=10.0 + i))
    await store.add_memory(memory("expired", at=20.0, expires_at=now - 1))
    assert await store.trim_memories(SCOPE, older_than=12.0) == 3
    assert [m.content for m in await store.memories(SCOPE)] == ["note 3", "note 2"]
    assert await store.trim_memories(SCOPE, max_items=1, older_than=0.0) == 1
    assert [m.content for m in await store.memories(SCOPE)] == ["note 3"]
    assert await store.trim_memories(SCOPE) == 0


async def test_clear_deletes_every_scope_under_a_prefix_and_counts_the_records(store: Store) -> None:
    await store.add_memory(memory("a", at=1.0, scope="flow/chat/node/respond/ada"))
    await store.add_memory(memory("b", at=2.0, scope="flow/chat/node/respond/ada"))
    await store.add_memory(memory("c", at=3.0, scope="flow/chat/workflow/x"))
    await store.add_memory(memory("d", at=4.0, scope="flow/chatty/workflow/x"))
    await store.add_memory(memory("e", at=5.0, scope="flow/Chat/workflow/x"))
    assert await store.clear_memories("flow/chat/") == 3
    assert await store.memory_keys() == ["flow/Chat/workflow/x", "flow/chatty/workflow/x"]
    assert await store.clear_memories("flow/chat/") == 0
    assert await store.clear_memories("") == 2
    assert await store.memory_keys() == []


async def test_memory_keys_lists_the_sorted_scopes_under_a_prefix(store: Store) -> None:
    for scope in ("flow/b/workflow/k", "flow/a/node/n/k2", "flow/a/node/n/k1", "flow/a_b/agent/x/k"):
        await store.add_memory(memory("x", at=1.0, scope=scope))
    await store.add_memory(memory("y", at=2.0, scope="flow/a/node/n/k1"))
    assert await store.memory_keys() == [
        "flow/a/node/n/k1",
        "flow/a/node/n/k2",
        "flow/a_b/agent/x/k",
        "flow/b/workflow/k",
    ]
    assert await store.memory_keys("flow/a/") == ["flow/a/node/n/k1", "flow/a/node/n/k2"]
    assert await store.memory_keys("flow/a%") == []
    assert await store.memory_keys("FLOW/") == []


# --- sessions, config versions, claims, A/B ---------------------------------------------------------------------


async def test_a_chat_session_is_saved_replaced_and_listed_by_last_update(store: Store) -> None:
    first = ChatSession(
        id="s1",
        flow="chat",
        title="hello",
        messages=[{"role": "user", "content": "hi"}],
        created_at=1.0,
        updated_at=1.0,
    )
    await store.save_session(first)
    await store.save_session(ChatSession(id="s2", flow="mail", created_at=2.0, updated_at=2.0))
    grown = first.model_copy(
        update={"messages": [*first.messages, {"role": "assistant", "content": "hey"}], "updated_at": 3.0}
    )
    await store.save_session(grown)
    assert await store.get_session("s1") == grown
    assert await store.get_session("nope") is None
    assert [s.id for s in await store.list_sessions()] == ["s1", "s2"]
    assert [s.id for s in await store.list_sessions(limit=1)] == ["s1"]
    assert [s.id for s in await store.list_sessions(flow="mail")] == ["s2"]


async def test_config_versions_are_listed_newest_first_per_flow(store: Store) -> None:
    await store.put_config_version(ConfigVersion(flow="chat", version="v1", source="flow: chat #1", created_at=1.0))
    await store.put_config_version(ConfigVersion(flow="chat", version="v2", source="flow: chat #2", created_at=2.0))
    await store.put_config_version(ConfigVersion(flow="mail", version="v9", source="flow: mail", created_at=3.0))
    versions = await store.config_versions("chat")
    assert [(v.version, v.source) for v in versions] == [("v2", "flow: chat #2"), ("v1", "flow: chat #1")]
    assert [v.version for v in await store.config_versions("chat", limit=1)] == ["v2"]
    assert await store.config_versions("none") == []


async def test_a_claim_is_won_once_then_lost_until_its_ttl_has_passed(store: Store) -> None:
    assert await store.claim("webhook", "msg-1", 1.0) is True
    assert await store.claim("webhook", "msg-1", 1.0) is False
    assert await store.claim("webhook", "msg-2", 1.0) is True
    assert await store.claim("telegram", "msg-1", 1.0) is True
    assert await store.claim("forever", "k") is True
    await asyncio.sleep(1.2)  # past the 1 s TTL: its expiry is what is tested, and the backends keep real time
    assert await store.claim("webhook", "msg-1", 1.0) is True
    assert await store.claim("webhook", "msg-1", 1.0) is False
    assert await store.claim("forever", "k") is False


async def test_claim_keys_with_separators_do_not_collide(store: Store) -> None:
    assert await store.claim("a:b", "c", 60) is True
    assert await store.claim("a", "b:c", 60) is True


async def test_ab_results_are_kept_per_experiment_and_variant(store: Store) -> None:
    await store.put_ab_result(
        ABResult(experiment="tone", variant="A", run_id="r1", metrics={"score": 0.5}, created_at=1)
    )
    await store.put_ab_result(
        ABResult(experiment="tone", variant="B", run_id="r2", metrics={"score": 0.9}, created_at=2)
    )
    await store.put_ab_result(
        ABResult(experiment="tone", variant="A", run_id="r1", metrics={"score": 0.7}, created_at=3)
    )
    await store.put_ab_result(ABResult(experiment="other", variant="A", run_id="r3", created_at=4))
    results = await store.ab_results("tone")
    assert [(r.variant, r.run_id, r.metrics) for r in results] == [
        ("A", "r1", {"score": 0.7}),
        ("B", "r2", {"score": 0.9}),
    ]
    assert [r.run_id for r in await store.ab_results("tone", variant="B")] == ["r2"]
    assert await store.ab_results("none") == []


# --- schema, concurrency, life cycle ----------------------------------------------------------------------------


async def test_reopening_a_store_is_a_no_op_migration_that_keeps_the_data(store_url: str) -> None:
    async with open_store(store_url) as first:
        version = await first.schema_version()
        await first.put_run(run("kept"))
    assert version >= 1
    async with open_store(store_url) as again:
        assert await again.schema_version() == version
        assert await again.get_run("kept") == run("kept")


async def test_concurrent_openers_of_a_fresh_store_all_succeed(store_url: str) -> None:
    stores = await asyncio.gather(*(connect_store(store_url) for _ in range(5)))
    try:
        assert {await s.schema_version() for s in stores} == {await stores[0].schema_version()}
        await asyncio.gather(*(s.put_run(run(f"r{i}")) for i, s in enumerate(stores)))
        assert len(await stores[0].list_runs()) == 5
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_twenty_concurrent_writers_lose_nothing(store: Store) -> None:
    async def writer(i: int) -> bool:
        await store.put_run(run(f"r{i:02d}", at=float(i)))
        await store.add_memory(memory(f"note {i}", at=float(i)))
        await store.save_session(ChatSession(id=f"s{i:02d}", updated_at=float(i)))
        return await store.claim("race", "one-key", 60)

    wins = await asyncio.gather(*(writer(i) for i in range(20)))
    assert wins.count(True) == 1
    assert [r.run_id for r in await store.list_runs(limit=100)] == [f"r{i:02d}" for i in reversed(range(20))]
    assert len(await store.memories(SCOPE, limit=100)) == 20
    assert len(await store.list_sessions(limit=100)) == 20


async def test_close_is_idempotent_and_a_closed_store_raises_store_error(store_url: str) -> None:
    opened = await connect_store(store_url)
    before = opened.status
    await opened.close()
    await opened.close()
    assert (before, opened.status) == (StoreStatus.OPEN, StoreStatus.CLOSED)
    with pytest.raises(StoreError, match="closed"):
        await opened.get_run("r1")


async def test_a_namespace_isolates_stores_that_share_one_server(backend: Backend) -> None:
    async with open_store(backend.url) as main, open_store(backend.url, namespace=f"{backend.name}_b") as other:
        await main.put_run(run("mine"))
        await main.add_memory(memory("mine", at=1.0))
        assert await main.claim("ns", "k", 60) is True
        assert await other.get_run("mine") is None
        assert await other.memory_keys() == []
        assert await other.claim("ns", "k", 60) is True
        assert await other.schema_version() == await main.schema_version()


async def _sabotage(backend: Backend) -> None:
    """Break the store's storage behind its back, as an outage or a hostile operator would."""
    if backend.kind == "sqlite":
        import aiosqlite

        async with aiosqlite.connect(backend.url.removeprefix("sqlite:///")) as db:
            await db.execute("DROP TABLE runs")
            await db.commit()
    elif backend.kind == "postgres":
        await _drop_schema(backend.name)
    else:
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        try:
            await client.set(f"{backend.name}:runs", "not a hash")
        finally:
            await client.aclose()


async def test_a_failing_query_raises_store_error_naming_the_backend_and_operation(backend: Backend) -> None:
    async with open_store(backend.url) as opened:
        await _sabotage(backend)
        with pytest.raises(StoreError) as caught:
            await opened.get_run("r1")
    assert (caught.value.backend, caught.value.operation) == (backend.kind, "get_run")
    assert caught.value.__cause__ is not None
    assert str(caught.value).startswith(f"{backend.kind} store at ")
    assert "get_run failed: " in str(caught.value)


# --- bad URLs and down servers ----------------------------------------------------------------------------------


async def test_an_unknown_scheme_raises_unknown_backend_error_listing_the_valid_schemes() -> None:
    with pytest.raises(UnknownBackendError) as caught:
        await connect_store("mongodb://127.0.0.1/x")
    assert caught.value.scheme == "mongodb"
    for scheme in ("sqlite", "postgresql", "redis"):
        assert scheme in str(caught.value)
    assert isinstance(caught.value, StoreError)


@pytest.mark.parametrize(
    ("url", "backend"),
    [("postgresql://root@127.0.0.1:1/test", "postgres"), ("redis://127.0.0.1:1/0", "redis")],
    ids=["postgres", "redis"],
)
async def test_a_server_that_is_down_raises_a_clear_store_error_within_seconds(url: str, backend: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        async with open_store(url):
            pass
    assert time.monotonic() - started < 5.0
    assert type(caught.value) is StoreError
    assert caught.value.backend == backend
    assert caught.value.operation == "connect"
    assert str(caught.value).startswith(f"{backend} store at 127.0.0.1:1")
    assert "connect failed" in str(caught.value)


async def test_a_password_in_the_url_never_reaches_the_error_message() -> None:
    with pytest.raises(StoreError) as caught:
        async with open_store("postgresql://root:s3cret@127.0.0.1:1/test"):
            pass
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1/test" in str(caught.value)


def test_importing_the_store_loads_no_database_driver() -> None:
    code = "import sys, store; print(sorted(m for m in ('aiosqlite', 'asyncpg', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
