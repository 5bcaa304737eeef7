"""Memory and run history written by a stack, read and cleared with the `ca-actors memory` and `runs` commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.launch.stack import LocalStack
from configs import Settings
from store import open_store
from tests.conftest import ROOT
from tests.helpers import plans, run_flow, until, write_script
from tests.support.memory import SCRIPT, chat_flow

# litellm keeps process-wide logging state across event loops (see conftest.litellm_state).
pytestmark = pytest.mark.usefixtures("litellm_state")


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
        async with open_store(url) as store:
            # The memory actor records ended runs as it sees them: nothing announces it but the database.
            async def both_recorded() -> bool:
                return len(await store.list_runs()) >= 2

            await until(both_recorded, "the memory actor has recorded both runs", timeout_s=10)
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
