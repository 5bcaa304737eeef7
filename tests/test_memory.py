"""Long-term memory through the memory actor and the store, and run history in the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.launch.stack import LocalStack
from configs import Settings
from store import open_store
from tests.conftest import ROOT
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import EventLog, plans, run_flow, start_run, write_flow, write_script

# litellm keeps process-wide logging state across event loops (see conftest.litellm_state).
pytestmark = pytest.mark.usefixtures("litellm_state")

CHAT = """
schema_version: "1.0"
flow: {name: chat}
state:
  fields:
    user_id: {type: str, required: true}
    message: {type: str, required: true}
    reply: {type: str, default: ""}
    mood: {type: str, default: ""}
nodes:
  - id: respond
    prompt: "{state.message}"
    outputs: [reply]
    output_schema: {type: object, fields: [{name: reply, type: str}]}
    memory: {scope: node, key: "{state.user_id}", read: recent, limit: 5, max_items: MAX}
  - id: feel
    prompt: "How does this feel: {state.reply}"
    outputs: [mood]
    output_schema: {type: object, fields: [{name: mood, type: str}]}
    memory: {scope: node}
edges:
  - {from: START, to: respond}
  - {from: respond, to: feel}
  - {from: feel, to: END}
"""

SCRIPT = {"respond": [{"reply": "[{memory}] heard {state.message}"}], "feel": [{"mood": "[{memory}] fine"}]}


def chat_flow(tmp_path: Path, max_items: int = 100) -> Path:
    return write_flow(tmp_path / "chat.yaml", CHAT.replace("MAX", str(max_items)))


async def chat(settings: Settings, tmp_path: Path, messages: list[tuple[str, str]], **kw: Any) -> list[dict[str, Any]]:
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script, **kw})
    async with LocalStack(
        s, plans(chat_flow(tmp_path, kw.pop("max_items", 100) if "max_items" in kw else 100)), embedded=False
    ) as stack:
        assert stack.client is not None
        return [await run_flow(stack.client, "chat", {"user_id": u, "message": m}) for u, m in messages]


async def test_a_second_run_sees_the_first_runs_memory(settings: Settings, tmp_path: Path) -> None:
    first, second = await chat(settings, tmp_path, [("ada", "hello"), ("ada", "again")])
    assert first["state"]["reply"] == "[] heard hello"
    assert second["state"]["reply"] == "[- reply: [] heard hello] heard again"


async def test_memory_survives_the_stack_it_was_written_on(settings: Settings, tmp_path: Path) -> None:
    await chat(settings, tmp_path, [("ada", "one")])
    (later,) = await chat(settings, tmp_path, [("ada", "two")])
    assert "heard one" in later["state"]["reply"]


async def test_users_and_nodes_do_not_see_each_others_memory(settings: Settings, tmp_path: Path) -> None:
    runs = await chat(settings, tmp_path, [("ada", "secret"), ("bob", "hi"), ("bob", "again")])
    bob_second = runs[2]["state"]
    assert "secret" not in bob_second["reply"]
    assert "heard hi" in bob_second["reply"]
    # `feel` has node-scoped memory of its own: it remembers its moods, never `respond`'s replies.
    assert "heard" not in bob_second["mood"].split("] fine")[0].replace("[] heard", "")
    assert "mood: [" in bob_second["mood"]


async def test_retention_keeps_only_the_newest_records(settings: Settings, tmp_path: Path) -> None:
    flow = chat_flow(tmp_path, max_items=2)
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        for i in range(4):
            await run_flow(stack.client, "chat", {"user_id": "ada", "message": f"m{i}"})
    async with open_store(s.store()) as store:
        records = await store.memories("flow/chat/node/respond/ada", limit=10)
    assert [r.data["reply"].split("heard ")[-1] for r in records] == ["m3", "m2"]


async def test_memory_without_a_placeholder_is_appended_to_the_real_prompt(settings: Settings, tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.script('{"reply": "first answer"}', '{"mood": "ok"}', '{"reply": "second answer"}', '{"mood": "ok"}')
        flow = write_flow(
            tmp_path / "f.yaml",
            CHAT.replace("MAX", "10")
            + f"config:\n  llm: {{model: openai/gpt-4o-mini, api_base: '{fake.api_base}', api_key_env: FAKE_KEY}}\n",
        )
        s = settings.model_copy(update={"llm_override": None})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FAKE_KEY", "sk-test")
            async with LocalStack(s, plans(flow), embedded=False) as stack:
                assert stack.client is not None
                await run_flow(stack.client, "chat", {"user_id": "ada", "message": "hello"})
                await run_flow(stack.client, "chat", {"user_id": "ada", "message": "again"})
        third_request = fake.requests[2]
    prompt = third_request.messages[-1]["content"]
    assert prompt.startswith("again")
    assert "reply: first answer" in prompt


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut, to simulate an outage."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self._conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self._conns):
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        self._conns.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = Proxy()
    await p.start()
    yield p
    with contextlib.suppress(Exception):
        await p.cut()


@pytest.mark.timeout(120)
async def test_a_postgres_outage_is_a_clear_error_and_the_run_recovers_when_it_returns(
    settings: Settings, tmp_path: Path, proxy: Proxy
) -> None:
    schema = f"t_outage_{tmp_path.name[-8:].replace('-', '_')}"
    url = f"postgresql://root@127.0.0.1:{proxy.port}/test?schema={schema}"
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script, "store_url": url, "max_deliver": 20})
    try:
        async with LocalStack(s, plans(chat_flow(tmp_path)), embedded=False) as stack:
            bus = stack.client
            assert bus is not None
            log = await EventLog().start(bus)
            await run_flow(bus, "chat", {"user_id": "ada", "message": "before"})
            await proxy.cut()
            run_id = await start_run(bus, "chat", {"user_id": "ada", "message": "during"})
            trouble = await log.wait_for("node.retry", run_id=run_id, timeout_s=30)
            assert trouble.data.kind == "memory"
            assert "memory store unavailable" in trouble.data.error
            record = json.loads((await bus.kv("ca_runs").get(run_id)).value or b"{}")
            assert record["status"] == "running"
            assert record["steps"] == []
            await proxy.start()  # the same port again: the store's pool reconnects
            finished = await log.wait_for("run.finished", run_id=run_id, timeout_s=60)
        assert "heard before" in finished.data.state["reply"]
    finally:
        import asyncpg

        conn = await asyncpg.connect("postgresql://root@127.0.0.1:5432/test")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


async def test_memory_and_run_history_are_visible_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    url = settings.store()
    async with LocalStack(s, plans(chat_flow(tmp_path)), embedded=False) as stack:
        assert stack.client is not None
        runs = [
            await run_flow(stack.client, "chat", {"user_id": u, "message": m})
            for u, m in [("ada", "one"), ("bob", "two")]
        ]
        async with open_store(url) as store, asyncio.timeout(10):
            # The memory actor records ended runs as it sees them: poll the store (another process's writes).
            while len(await store.list_runs()) < 2:  # noqa: ASYNC110 - nothing to wait on but the database
                await asyncio.sleep(0.05)
    listed = json.loads(
        (await asyncio.to_thread(_cli, "memory", "list", "--flow", "chat", "--json", "--store", url)).stdout
    )
    assert listed == {
        "flow/chat/node/feel/default": 2,
        "flow/chat/node/respond/ada": 1,
        "flow/chat/node/respond/bob": 1,
    }
    shown = json.loads(
        (await asyncio.to_thread(_cli, "memory", "show", "flow/chat/node/respond/ada", "--json", "--store", url)).stdout
    )
    assert [r["data"]["reply"] for r in shown] == ["[] heard one"]
    history = json.loads((await asyncio.to_thread(_cli, "runs", "--store", url, "--json")).stdout)
    assert {h["run_id"] for h in history} == {r["run_id"] for r in runs}
    assert all(h["status"] == "succeeded" and len(h["steps"]) == 2 for h in history)
    cleared = await asyncio.to_thread(_cli, "memory", "clear", "--flow", "chat", "--store", url)
    assert "deleted 4 record(s)" in cleared.stdout
    assert json.loads((await asyncio.to_thread(_cli, "memory", "list", "--json", "--store", url)).stdout) == {}


def test_memory_settings_merge_flow_and_node_levels_and_bad_values_are_located() -> None:
    from actors.flow.memory import memory_policy
    from configs import ConfigError, load_flow_text

    text = CHAT.replace("MAX", "10") + "config:\n  memory: {enabled: true, default_scope: workflow, limit: 3}\n"
    spec = load_flow_text(text).spec
    respond = memory_policy(spec, spec.node("respond"))
    feel = memory_policy(spec, spec.node("feel"))
    assert respond is not None
    assert (respond.scope, respond.limit, respond.max_items) == ("node", 5, 10)
    assert feel is not None
    assert (feel.scope, feel.limit, feel.write) == ("node", 3, ("mood",))
    plain = load_flow_text(text.replace("    memory: {scope: node}\n", "    memory: false\n")).spec
    assert memory_policy(plain, plain.node("feel")) is None
    with pytest.raises(ConfigError) as info:
        load_flow_text(CHAT.replace("MAX", "10").replace("read: recent", "read: lately"), "m.yaml")
    assert "m.yaml:" in str(info.value)
    assert "nodes[0].memory.read" in str(info.value)
