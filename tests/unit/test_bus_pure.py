"""Subjects and envelopes: pure functions, no server."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from bus import (
    DATA_OF_KIND,
    Event,
    EventKind,
    NodeFinishedData,
    NodeRetryData,
    NodeWaitingData,
    RunEnded,
    RunFailedData,
    RunStartedData,
    ToolFinishedData,
    WorkItem,
    decode,
    encode,
    step_id,
    subjects,
)


def test_subjects_are_built_from_validated_tokens() -> None:
    assert subjects.trigger("echo") == "ca.trigger.echo"
    assert subjects.work("f", "n-1") == "ca.work.f.n-1"
    assert subjects.event("r1", "run.started") == "ca.evt.r1.run.started"
    assert subjects.events_of("r1") == "ca.evt.r1.>"
    assert subjects.flow_of_trigger("ca.trigger.echo") == "echo"
    assert subjects.run_of_cmd(subjects.run_cmd("r-2")) == "r-2"


@pytest.mark.parametrize("bad", ["", "a.b", "a*", ">", "a b", "é"])
def test_a_token_that_would_change_the_subject_shape_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid flow name"):
        subjects.trigger(bad)


def test_event_kinds_are_checked() -> None:
    with pytest.raises(ValueError, match="invalid event kind"):
        subjects.event("r", "run.started.>")


def test_messages_round_trip_through_one_decoder() -> None:
    work = WorkItem(run_id="r", flow="f", plan_version="v", node="n", iteration=2, index=3, state={"x": [1]})
    ended = RunEnded(kind="finish", run_id="r", flow="f", node="n", state={"x": 1})
    event = Event.of(NodeFinishedData(outputs={"x": 1}, duration_ms=2.5), run_id="r", flow="f", node="n")
    for msg in (work, ended, event):
        assert decode(encode(msg)) == msg
    assert work.step_id == step_id("r", "n", 2, 3) == "r.n.2.3"


def test_messages_are_frozen_and_reject_unknown_fields() -> None:
    work = WorkItem(run_id="r", flow="f", plan_version="v", node="n", state={})
    with pytest.raises(ValidationError):
        work.node = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        decode(b'{"kind": "work", "run_id": "r", "flow": "f", "plan_version": "v", "node": "n", "state": {}, "x": 1}')
    with pytest.raises(ValidationError):
        decode(b'{"kind": "no.such.kind", "run_id": "r"}')


def _wire(event: Event) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(event))
    return body


def test_every_event_kind_has_its_data_model() -> None:
    assert set(DATA_OF_KIND) == set(typing.get_args(EventKind))
    assert all(kind == model.KIND for kind, model in DATA_OF_KIND.items())


def test_event_data_keeps_the_json_shape_emitters_always_wrote() -> None:
    started = Event.of(RunStartedData(plan_version="v1", inputs={"q": 1}, source="cli"), run_id="r", flow="f")
    assert _wire(started)["kind"] == "run.started"
    assert _wire(started)["data"] == {"plan_version": "v1", "inputs": {"q": 1}, "source": "cli"}
    with_session = RunStartedData(plan_version="v1", source="telegram", session="chat-42")
    assert _wire(Event.of(with_session, run_id="r", flow="f"))["data"]["session"] == "chat-42"
    failed = Event.of(RunFailedData(status="failed", duration_ms=1.5, state={}), run_id="r", flow="f")
    assert _wire(failed)["data"] == {"status": "failed", "duration_ms": 1.5, "state": {}}
    waiting = Event.of(NodeWaitingData(reason="no live worker"), run_id="r", flow="f")
    assert _wire(waiting)["data"] == {"reason": "no live worker"}
    broken = ToolFinishedData(tool="calc", call_id="c1", duration_ms=3.0, error="boom", result={"error": "boom"})
    assert _wire(Event.of(broken, run_id="r", flow="f"))["data"] == {
        "tool": "calc",
        "call_id": "c1",
        "duration_ms": 3.0,
        "error": "boom",
    }
    fine = ToolFinishedData(tool="calc", call_id="c1", duration_ms=3.0, result=None)
    assert _wire(Event.of(fine, run_id="r", flow="f"))["data"] == {
        "tool": "calc",
        "call_id": "c1",
        "duration_ms": 3.0,
        "error": None,
        "result": None,
    }


def test_event_data_from_another_version_is_read_leniently() -> None:
    body = {
        "kind": "node.retry",
        "run_id": "r",
        "flow": "f",
        "data": {"attempt": 2, "error": "busy", "kind": "llm_error", "added_later": True},
    }
    event = decode(json.dumps(body).encode())
    assert isinstance(event, Event)
    assert event.data == NodeRetryData(attempt=2, error="busy", kind="llm_error")
    older = decode(b'{"kind": "node.finished", "run_id": "r", "flow": "f", "data": {"outputs": {"a": 1}}}')
    assert isinstance(older, Event)
    assert isinstance(older.data, NodeFinishedData)
    assert (older.data.outputs, older.data.duration_ms, older.data.attempts) == ({"a": 1}, None, 1)


def test_the_data_of_an_event_must_be_the_model_of_its_kind() -> None:
    with pytest.raises(ValidationError, match="is NodeFinishedData, not RunStartedData"):
        Event(kind="node.finished", run_id="r", flow="f", data=RunStartedData())
    with pytest.raises(ValidationError, match=r"data\.outputs"):
        decode(b'{"kind": "node.finished", "run_id": "r", "flow": "f", "data": {"outputs": [1, 2]}}')
