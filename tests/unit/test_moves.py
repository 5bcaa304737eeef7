"""The walk of the graph and the retry policy, as pure functions (`actors.flow.moves`, `actors.flow.policy`).

No server: these are the decisions both engines execute (docs/control-flow.md), checked as data.
"""

from __future__ import annotations

from typing import Any

import pytest

from actors.flow import moves
from actors.flow.logic import Counters, FlowError
from actors.flow.moves import Arrive, Enter, Finish, Fork, JoinBarrier, MainLine, MapBarrier, StartMap
from actors.flow.policy import budget_of, gave_up, retry_policy
from bus import Branch
from configs import FlowSpec, load_flow_text

RUN = "r1"

FAN = """
schema_version: "1.0"
flow: {name: fan}
state:
  fields:
    topic: {type: str, required: true}
    items: {type: "list[str]", default: [seed], reducer: append}
    total: {type: int, default: 10, reducer: sum}
    merged: {type: str, default: ""}
nodes:
  - {id: start, prompt: "Start {topic}", outputs: [total]}
  - {id: p, prompt: "P", outputs: [items, total]}
  - {id: q, prompt: "Q", outputs: [items]}
  - {id: q2, prompt: "Q2", outputs: [total]}
  - {id: merge, prompt: "Merge", outputs: [merged]}
edges:
  - {from: START, to: start}
  - {from: start, to: [p, q, merge]}
  - {from: p, to: merge}
  - {from: q, to: q2}
  - {from: q2, to: merge}
  - {from: merge, to: END}
"""

MAP = """
schema_version: "1.0"
flow: {name: mapped}
state:
  fields:
    xs: {type: "list[str]", required: true}
    got: {type: "list[str]"}
    value: {type: str, default: ""}
    done: {type: bool, default: false}
    apology: {type: str, default: ""}
nodes:
  - id: parse
    foreach: {items: state.xs, max_concurrency: 2, collect: got}
    prompt: "Parse {item}"
    outputs: [value]
    on_error: rescue
  - {id: check, prompt: "Check {state.got}", outputs: [done], retry: {max_attempts: 4, backoff_ms: 100, on: [timeout]}}
  - {id: rescue, prompt: "Sorry for {error}", outputs: [apology]}
edges:
  - {from: START, to: parse}
  - {from: parse, to: check}
  - {from: check, loop: {max_iterations: 3, condition_field: done, exit_to: END}}
  - {from: rescue, to: END}
config:
  execution: {max_retries: 2}
  budget: {max_tokens: 1000}
"""


def spec_of(text: str) -> FlowSpec:
    return load_flow_text(text, "<test>").spec


def enters(found: list[moves.Move]) -> list[Enter]:
    return [m for m in found if isinstance(m, Enter)]


def fan_out(spec: FlowSpec, state: dict[str, Any]) -> list[moves.Move]:
    """The moves after node `start` of FAN completed (its first iteration)."""
    step = Enter("start", 0, 0, state, Counters({}, {}))
    return moves.after_step(spec, RUN, step, {"total": 1})


# --- plain steps, loops and END -----------------------------------------------------------------------


def test_a_run_starts_on_the_main_line_with_the_node_after_start() -> None:
    spec = spec_of(FAN)
    state = {"topic": "t", "items": ["seed"], "total": 10, "merged": ""}

    assert moves.start(spec, RUN, state) == [MainLine(state), Enter("start", 0, 0, state, Counters())]


def test_a_loop_node_enters_its_next_iteration_with_its_visit_counted() -> None:
    spec = spec_of(MAP)
    step = Enter("check", 0, 0, {"xs": [], "done": False}, Counters({"parse": 1}, {}))

    found = moves.after_step(spec, RUN, step, {"done": False})

    (again,) = enters(found)
    assert (again.node, again.iteration, again.index) == ("check", 1, 0)
    assert again.counters == Counters({"parse": 1, "check": 1}, {})


def test_a_loop_that_is_done_finishes_the_run_with_the_written_state() -> None:
    spec = spec_of(MAP)
    step = Enter("check", 1, 0, {"xs": [], "done": False}, Counters({"check": 1}, {}))

    found = moves.after_step(spec, RUN, step, {"done": True})

    assert found == [MainLine({"xs": [], "done": True}), Finish({"xs": [], "done": True})]


def test_the_same_step_always_makes_the_same_moves() -> None:
    spec = spec_of(FAN)
    state = {"topic": "t", "items": ["seed"], "total": 10, "merged": ""}

    assert fan_out(spec, state) == fan_out(spec, state)


# --- fan-out and join ---------------------------------------------------------------------------------


def test_a_fan_out_opens_its_barrier_before_its_branches_start() -> None:
    spec = spec_of(FAN)
    state = {"topic": "t", "items": ["seed"], "total": 10, "merged": ""}

    found = fan_out(spec, state)

    written = {**state, "total": 11}
    barrier = "r1.start.0.fan"
    assert found[:2] == [MainLine(written), Fork(barrier, "start", 3, written)]
    counters = Counters({"start": 1}, {})
    assert found[2:] == [
        Enter("p", 0, 0, written, counters, Branch(source="start", barrier=barrier, index=0)),
        Enter("q", 0, 0, written, counters, Branch(source="start", barrier=barrier, index=1)),
        Arrive(Branch(source="start", barrier=barrier, index=2), counters),
    ]


def test_a_branch_carries_its_writes_and_stays_off_the_main_line() -> None:
    spec = spec_of(FAN)
    branch = Branch(source="start", barrier="r1.start.0.fan", index=1)
    step = Enter("q", 0, 0, {"items": ["seed"], "total": 11}, Counters({"start": 1}, {}), branch)

    found = moves.after_step(spec, RUN, step, {"items": "q"})

    (next_step,) = found
    assert isinstance(next_step, Enter)
    assert next_step.node == "q2"
    assert next_step.state == {"items": ["seed", "q"], "total": 11}
    assert next_step.branch == branch.model_copy(update={"writes": [("items", "q")]})


def test_the_last_node_of_a_branch_arrives_at_the_join_with_all_its_writes() -> None:
    spec = spec_of(FAN)
    branch = Branch(source="start", barrier="r1.start.0.fan", index=1, writes=[("items", "q")])
    step = Enter("q2", 0, 0, {"items": ["seed", "q"], "total": 11}, Counters({"start": 1, "q": 1}, {}), branch)

    found = moves.after_step(spec, RUN, step, {"total": 5})

    arrived = branch.model_copy(update={"writes": [("items", "q"), ("total", 5)]})
    assert found == [Arrive(arrived, Counters({"start": 1, "q": 1, "q2": 1}, {}))]


def test_a_join_waits_for_every_branch_then_merges_them_in_branch_order() -> None:
    spec = spec_of(FAN)
    record = Fork("r1.start.0.fan", "start", 3, {"items": ["seed"], "total": 11}).record()
    arrivals = [
        Arrive(Branch(source="start", barrier="b", index=1, writes=[("items", "q"), ("total", 5)]), Counters({"q": 1})),
        Arrive(Branch(source="start", barrier="b", index=0, writes=[("items", "p"), ("total", 2)]), Counters({"p": 1})),
        Arrive(Branch(source="start", barrier="b", index=2), Counters({"start": 1})),
    ]
    for arrival in arrivals[:2]:
        changed = record.arrive(arrival)
        assert changed is not None
        record = changed
        assert moves.after_join(spec, RUN, "start", record) == []
    complete = record.arrive(arrivals[2])
    assert complete is not None

    found = moves.after_join(spec, RUN, "start", complete)

    merged = {"items": ["seed", "p", "q"], "total": 18}
    assert found == [Enter("merge", 0, 0, merged, Counters({"p": 1, "q": 1, "start": 1}, {}))]


def test_a_redelivered_arrival_leaves_the_join_barrier_as_it_was() -> None:
    arrival = Arrive(Branch(source="s", barrier="b", index=0, writes=[("x", 1)]), Counters({"a": 1}))
    record = JoinBarrier(expected=2, base={}).arrive(arrival)
    assert record is not None

    assert record.arrive(arrival) is None
    assert record.counters == {"0": {"visits": {"a": 1}, "taken": {}}}


# --- maps ---------------------------------------------------------------------------------------------


def test_a_map_opens_its_barrier_and_starts_a_window_of_items() -> None:
    spec = spec_of(MAP)
    state = {"xs": ["a", "b", "c"], "got": None}

    (main, opened) = moves.start(spec, RUN, state)

    assert main == MainLine(state)
    assert opened == StartMap("r1.parse.0.0.map", "parse", 0, ["a", "b", "c"], state, Counters(), window=2)
    assert [(s.index, s.item) for s in opened.steps()] == [(0, "a"), (1, "b"), (2, "c")]
    assert opened.record() == MapBarrier(total=3, base=state, visits={}, taken={})


def test_a_map_without_items_follows_its_edge_at_once_with_an_empty_collection() -> None:
    spec = spec_of(MAP)
    state: dict[str, Any] = {"xs": [], "got": None}

    found = moves.start(spec, RUN, state)

    assert isinstance(found[1], StartMap)
    assert found[1].steps() == []
    collected = {"xs": [], "got": []}
    assert found[2:] == [MainLine(collected), Enter("check", 0, 0, collected, Counters({"parse": 1}, {}))]


def test_a_map_over_something_else_than_a_list_cannot_be_entered() -> None:
    with pytest.raises(FlowError, match="not a list"):
        moves.start(spec_of(MAP), RUN, {"xs": "abc"})


def test_a_finished_map_item_starts_the_item_one_window_further() -> None:
    spec = spec_of(MAP)
    state = {"xs": ["a", "b", "c"], "got": None}
    record = MapBarrier(total=3, base=state, visits={}, taken={}, done={"0": {"value": "A"}})

    found = moves.after_map_item(spec, RUN, Enter("parse", 0, 0, state, Counters(), item="a"), record)

    assert found == [Enter("parse", 0, 2, state, Counters(), item="c")]
    assert found[0] == moves.map_step(spec, "parse", 0, 2, record)


def test_the_last_map_item_to_finish_collects_every_output_in_item_order() -> None:
    spec = spec_of(MAP)
    state = {"xs": ["a", "b", "c"], "got": None}
    done = {"2": {"value": "C"}, "0": {"value": "A"}, "1": {"value": "B"}}
    record = MapBarrier(total=3, base=state, visits={}, taken={}, done=done)

    found = moves.after_map_item(spec, RUN, Enter("parse", 0, 1, state, Counters(), item="b"), record)

    collected = {"xs": ["a", "b", "c"], "got": ["A", "B", "C"]}
    assert found == [MainLine(collected), Enter("check", 0, 0, collected, Counters({"parse": 1}, {}))]


def test_a_map_item_records_its_outputs_once() -> None:
    record = MapBarrier(total=2, base={}, visits={}, taken={})
    first = record.finish(1, {"value": "x"})
    assert first is not None

    assert first.finish(1, {"value": "y"}) is None
    assert first.done == {"1": {"value": "x"}}


# --- failures -----------------------------------------------------------------------------------------


def test_a_failed_step_enters_its_on_error_target_with_the_error_and_the_state_before_it() -> None:
    spec = spec_of(MAP)
    state = {"xs": ["a"], "got": None}
    step = Enter("parse", 0, 0, state, Counters(), item="a")

    found = moves.after_failure(spec, RUN, step, "rescue", "bad answer")

    assert found == [Enter("rescue", 0, 0, state, Counters({"parse": 1}, {}), error="bad answer")]


# --- retry policy and budget --------------------------------------------------------------------------


def test_a_node_without_retry_gets_the_flow_default_on_every_failure_kind() -> None:
    spec = spec_of(MAP)

    policy = retry_policy(spec, spec.node("parse"))

    assert policy.max_attempts == 3
    assert policy.on == {"llm_error", "timeout", "bad_output"}
    assert policy.output_retries == 2
    assert [policy.delay_s(attempt) for attempt in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_a_node_retries_only_the_failures_its_policy_names_until_its_attempts_are_used() -> None:
    spec = spec_of(MAP)

    policy = retry_policy(spec, spec.node("check"))

    assert policy.output_retries == 0
    assert policy.retries("timeout", 3)
    assert not policy.retries("timeout", 4)
    assert not policy.retries("llm_error", 1)
    assert policy.delay_s(2) == pytest.approx(0.2)


def test_a_node_that_gives_up_says_after_how_many_attempts() -> None:
    assert gave_up("timed out", 1) == "timed out (after 1 attempt)"
    assert gave_up("timed out", 3) == "timed out (after 3 attempts)"


def test_the_budget_is_the_flows_own_else_the_one_in_config() -> None:
    in_config = budget_of(spec_of(MAP))
    own = budget_of(spec_of(MAP + "budget: {max_tokens: 5}\n"))

    assert in_config is not None
    assert in_config.max_tokens == 1000
    assert own is not None
    assert own.max_tokens == 5
    assert budget_of(spec_of(FAN)) is None
