"""A PostgreSQL outage under the memory store: a clear, retried error, and the run recovers when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.launch.stack import LocalStack
from configs import Settings
from tests.helpers import EventLog, plans, run_flow, start_run, write_script
from tests.support.memory import SCRIPT, chat_flow

# litellm keeps process-wide logging state across event loops (see conftest.litellm_state).
pytestmark = pytest.mark.usefixtures("litellm_state")


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
