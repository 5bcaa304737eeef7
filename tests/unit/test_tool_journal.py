"""A step's tool calls are journaled: a re-run of the step reuses a call another try made (or is making)
instead of repeating its side effect."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from actors.flow import node_exec
from actors.flow.llm import ToolCall
from actors.tools import ToolError


class MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    async def claim(self, key: str, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
        if key in self.entries:
            return self.entries[key]
        self.entries[key] = dict(entry)
        return None

    async def recall(self, key: str) -> Mapping[str, Any] | None:
        return self.entries.get(key)

    async def record(self, key: str, entry: Mapping[str, Any]) -> None:
        self.entries[key] = dict(entry)


CALL = ToolCall(id="c1", name="file_write", arguments={"path": "log", "content": "x"})


class Effects:
    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> Any:
        self.count += 1
        return {"written": self.count}


async def test_a_call_runs_once_and_a_re_run_of_the_step_reuses_its_result() -> None:
    journal, effects = MemoryJournal(), Effects()
    first = await node_exec._journaled(journal, "run.n1.0.0.1", CALL, effects.run)
    again = await node_exec._journaled(journal, "run.n1.0.0.1", CALL, effects.run)
    assert first == again == {"written": 1}
    assert effects.count == 1
    assert journal.entries["run.n1.0.0.1"]["state"] == "done"


async def test_a_call_claimed_by_another_try_is_waited_for_not_made_again() -> None:
    journal, effects = MemoryJournal(), Effects()
    journal.entries["k"] = {"state": "running", "tool": CALL.name, "arguments": CALL.arguments}

    async def the_other_try_finishes() -> None:
        await asyncio.sleep(0.3)
        journal.entries["k"] = {**journal.entries["k"], "state": "done", "result": {"written": "by the other"}}

    finishing = asyncio.create_task(the_other_try_finishes())
    assert await node_exec._journaled(journal, "k", CALL, effects.run) == {"written": "by the other"}
    await finishing
    assert effects.count == 0


async def test_a_claim_nobody_finishes_is_taken_over_after_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_exec, "TOOL_CLAIM_LEASE_S", 0.3)
    journal, effects = MemoryJournal(), Effects()
    journal.entries["k"] = {"state": "running", "tool": CALL.name, "arguments": CALL.arguments}
    assert await node_exec._journaled(journal, "k", CALL, effects.run) == {"written": 1}
    assert journal.entries["k"]["state"] == "done"


async def test_a_failed_call_or_another_call_under_the_key_is_made() -> None:
    journal, effects = MemoryJournal(), Effects()

    async def fails() -> Any:
        raise ToolError("disk full")

    with pytest.raises(ToolError):
        await node_exec._journaled(journal, "k", CALL, fails)
    assert journal.entries["k"]["state"] == "failed"
    assert await node_exec._journaled(journal, "k", CALL, effects.run) == {"written": 1}
    other = ToolCall(id="c2", name="file_write", arguments={"path": "log", "content": "y"})
    assert await node_exec._journaled(journal, "k", other, effects.run) == {"written": 2}
