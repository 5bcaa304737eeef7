"""Subjects and envelopes: pure functions, no server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bus import Event, RunEnded, WorkItem, decode, encode, step_id, subjects


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
    event = Event(kind="node.finished", run_id="r", flow="f", node="n", data={"outputs": {}})
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
