"""Requests and answers keep the JSON they always had: an answer, or ``{"error": ...}`` alone."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from actors.flow.memory import MemoryRecords, MemoryWritten
from actors.runtime.presence import ActorReady, DrainAnswer
from actors.runtime.roster import ExpectAgent, ExpectAnswer
from actors.scheduler.messages import Assigned, RunAnswer, RunCommand, TriggerInputs
from actors.worker.tool_host import ToolAnswer, ToolArguments
from bus import Empty


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (TriggerInputs({"topic": "NATS"}), {"topic": "NATS"}),
        (RunAnswer(run_id="r1", status="running"), {"run_id": "r1", "status": "running"}),
        (RunAnswer(run_id="r", status="rejected", error="bad"), {"run_id": "r", "status": "rejected", "error": "bad"}),
        (RunAnswer(error="not processed"), {"error": "not processed"}),
        (RunCommand(cmd="cancel"), {"cmd": "cancel"}),
        (Assigned(digest="d", run_id="r1", status="running"), {"run_id": "r1", "status": "running", "digest": "d"}),
        (ExpectAgent(name="gpu", serves=["f.n"]), {"name": "gpu", "serves": ["f.n"]}),
        (ExpectAnswer(ok=True, name="gpu"), {"ok": True, "name": "gpu"}),
        (ExpectAnswer(error="invalid agent name"), {"error": "invalid agent name"}),
        (Empty(), {}),
        (DrainAnswer(), {"ok": True}),
        (ActorReady(kind="worker", id="w1", pid=7), {"kind": "worker", "id": "w1", "pid": 7}),
        (MemoryRecords(records=[{"content": "x"}]), {"records": [{"content": "x"}]}),
        (MemoryRecords(error="store down"), {"error": "store down"}),
        (MemoryWritten(ok=True), {"ok": True}),
        (MemoryWritten(error="store down"), {"error": "store down"}),
        (ToolArguments({"expression": "1+1"}), {"expression": "1+1"}),
        (ToolAnswer(result=None), {"result": None}),
        (ToolAnswer(error="no such file"), {"error": "no such file"}),
    ],
)
def test_a_message_has_the_json_shape_clients_know(message: BaseModel, wire: object) -> None:
    assert json.loads(message.model_dump_json()) == wire
    assert type(message).model_validate_json(message.model_dump_json()) == message


def test_answers_from_a_newer_version_with_more_keys_are_still_read() -> None:
    answer = RunAnswer.model_validate_json(b'{"run_id": "r1", "status": "running", "queued_behind": 3}')
    assert answer == RunAnswer(run_id="r1", status="running")
