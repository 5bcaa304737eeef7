"""The in-process LangGraph engine runs flows with the semantics of docs/control-flow.md (mock model only)."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from actors.flow.llm import LLMReply, LLMRequest
from actors.flow.plan import Plan, compile_plan
from actors.llm.backend import LLMBackend
from actors.llm.mock import MockScript
from configs import load_flow
from tests.conftest import SEEDS

with warnings.catch_warnings():
    # langgraph.checkpoint builds a langchain-core `Reviver` at import time, which announces a future
    # default (LangChainPendingDeprecationWarning); not ours to fix. Importing langchain_core puts
    # "default" filters for its warnings in front of everyone's, so it is imported before ours is added.
    import langchain_core  # noqa: F401

    warnings.filterwarnings(
        "ignore", message="The default value of `allowed_objects`", category=PendingDeprecationWarning
    )
    from actors.engines.langgraph.engine import recursion_limit, run_langgraph


SEED_INPUTS: dict[str, dict[str, Any]] = {
    "article_writer": {"topic": "bees"},
    "echo": {"message": "hello"},
    "nested_state": {"name": "Ada", "interests": ["maths", "engines"]},
    "review_loop": {"topic": "bees"},
    "simple_workflow": {"name": "Ada"},
    "tools_example": {"topic": "bees", "output_file": "out.txt"},
}


# --- helpers ----------------------------------------------------------------------------------------


def node(node_id: str, prompt: str, **outputs: str) -> str:
    """One node in flow YAML, writing the state fields `outputs` (name -> type)."""
    fields = ", ".join(f"{{name: {name}, type: '{kind}'}}" for name, kind in outputs.items())
    return (
        f"  - id: {node_id}\n    prompt: {json.dumps(prompt)}\n    outputs: [{', '.join(outputs)}]\n"
        f"    output_schema: {{type: object, fields: [{fields}]}}\n"
    )


def flow(tmp_path: Path, name: str, state: str, nodes: str, edges: str) -> Plan:
    """Write a flow file and compile it."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f'schema_version: "1.0"\nflow: {{name: {name}}}\nstate:\n  fields:\n{state}nodes:\n{nodes}edges:\n{edges}'
    )
    return compile_plan(load_flow(path))


def script(tmp_path: Path, outputs: dict[str, list[Any]]) -> MockScript:
    """A mock script written as a YAML file (JSON is YAML) and loaded back."""
    path = tmp_path / "script.yaml"
    path.write_text(json.dumps(outputs))
    return MockScript.load(path)


async def run(plan: Plan, inputs: dict[str, Any], mock: MockScript | None = None, **kwargs: Any) -> dict[str, Any]:
    return await run_langgraph(plan, inputs, llm=LLMBackend(mock), model_override="mock", **kwargs)


def steps(result: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(s["node"], s["iteration"], s["index"]) for s in result["steps"]]


def statuses(result: dict[str, Any]) -> dict[str, str]:
    return {f"{s['node']}.{s['iteration']}.{s['index']}": s["status"] for s in result["steps"]}


class DelayedLLM:
    """The mock backend, slowed down per node and map index (to make completion order differ)."""

    def __init__(self, inner: LLMBackend, delay_s: dict[str, float], per_index_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.per_index_s = per_index_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def complete(self, request: LLMRequest) -> LLMReply:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s.get(request.node, 0.0) + self.per_index_s * (10 - request.index))
            return await self.inner.complete(request)
        finally:
            self.in_flight -= 1


TOPIC = "    topic: {type: str, required: true}\n"


# --- linear flows, routes and loops ----------------------------------------------------------------


async def test_a_linear_flow_runs_each_node_once_in_order_and_writes_their_outputs(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "linear",
        TOPIC + "    a: {type: str, default: ''}\n    b: {type: str, default: ''}\n",
        node("first", "Start on {state.topic}", a="str") + node("second", "Go on from {state.a}", b="str"),
        "  - {from: START, to: first}\n  - {from: first, to: second}\n  - {from: second, to: END}\n",
    )
    mock = script(tmp_path, {"first": [{"a": "A on {state.topic}"}], "second": [{"b": "B after {state.a}"}]})

    result = await run(plan, {"topic": "bees"}, mock, run_id="r1")

    assert result["status"] == "succeeded", result["error"]
    assert result["run_id"] == "r1"
    assert result["flow"] == "linear"
    assert steps(result) == [("first", 0, 0), ("second", 0, 0)]
    assert result["state"] == {"topic": "bees", "a": "A on bees", "b": "B after A on bees"}
    assert all(s["status"] == "succeeded" and s["duration_ms"] >= 0 for s in result["steps"])
    assert result["error"] is None


def routes_flow(tmp_path: Path) -> Plan:
    return flow(
        tmp_path,
        "routes",
        TOPIC + "    score: {type: float, default: 0.0}\n    verdict: {type: str, default: ''}\n",
        node("grade", "Grade {state.topic}", score="float")
        + node("accept", "Accept", verdict="str")
        + node("reject", "Reject", verdict="str"),
        "  - {from: START, to: grade}\n"
        "  - from: grade\n    routes:\n"
        "      - {condition: {logic: 'state.score >= 0.8'}, to: accept}\n"
        "      - {condition: {logic: default}, to: reject}\n"
        "  - {from: accept, to: END}\n  - {from: reject, to: END}\n",
    )


@pytest.mark.parametrize(("score", "taken"), [(0.9, "accept"), (0.8, "accept"), (0.3, "reject")])
async def test_a_route_is_taken_when_its_condition_holds_and_the_default_route_otherwise(
    tmp_path: Path, score: float, taken: str
) -> None:
    mock = script(
        tmp_path, {"grade": [{"score": score}], "accept": [{"verdict": "yes"}], "reject": [{"verdict": "no"}]}
    )

    result = await run(routes_flow(tmp_path), {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert steps(result) == [("grade", 0, 0), (taken, 0, 0)]
    assert result["state"]["verdict"] == ("yes" if taken == "accept" else "no")


def loop_flow(tmp_path: Path) -> Plan:
    return flow(
        tmp_path,
        "loop",
        TOPIC + "    draft: {type: str, default: ''}\n    approved: {type: bool, default: false}\n"
        "    summary: {type: str, default: ''}\n",
        node("revise", "Improve {state.draft}", draft="str", approved="bool")
        + node("publish", "Publish", summary="str"),
        "  - {from: START, to: revise}\n"
        "  - from: revise\n    loop: {max_iterations: 3, condition_field: approved, exit_to: publish}\n"
        "  - {from: publish, to: END}\n",
    )


async def test_a_loop_whose_condition_never_turns_true_runs_exactly_max_iterations_times_then_exits(
    tmp_path: Path,
) -> None:
    mock = script(tmp_path, {"revise": [{"draft": "v1", "approved": False}, {"draft": "v2", "approved": False}]})

    result = await run(loop_flow(tmp_path), {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert steps(result) == [("revise", 0, 0), ("revise", 1, 0), ("revise", 2, 0), ("publish", 0, 0)]
    assert result["state"]["draft"] == "v2"


async def test_a_loop_exits_as_soon_as_its_condition_field_turns_true(tmp_path: Path) -> None:
    mock = script(tmp_path, {"revise": [{"draft": "v1", "approved": False}, {"draft": "v2", "approved": True}]})

    result = await run(loop_flow(tmp_path), {"topic": "bees"}, mock)

    assert steps(result) == [("revise", 0, 0), ("revise", 1, 0), ("publish", 0, 0)]
    assert result["state"]["approved"] is True


async def test_a_route_cycle_is_taken_max_iterations_times_then_the_default_route(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "cycle",
        TOPIC + "    text: {type: str, default: ''}\n    ok: {type: bool, default: false}\n",
        node("draft", "Write {state.topic}", text="str") + node("check", "Check {state.text}", ok="bool"),
        "  - {from: START, to: draft}\n  - {from: draft, to: check}\n"
        "  - from: check\n    routes:\n"
        "      - {condition: {logic: 'not state.ok'}, to: draft, max_iterations: 2}\n"
        "      - {condition: {logic: default}, to: END}\n",
    )
    mock = script(tmp_path, {"check": [{"ok": False}]})

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert steps(result) == [(n, i, 0) for i in range(3) for n in ("draft", "check")]
    assert recursion_limit(plan.spec) > 25  # LangGraph's default would cut longer legal runs short


# --- maps -------------------------------------------------------------------------------------------


def map_flow(tmp_path: Path, max_concurrency: int | None = None) -> Plan:
    window = f", max_concurrency: {max_concurrency}" if max_concurrency else ""
    research = node("research", "Research {item} ({index}) for {state.topic}", note="str").replace(
        "    outputs:", f"    foreach: {{items: state.topics, collect: notes{window}}}\n    outputs:"
    )
    return flow(
        tmp_path,
        "mapped",
        TOPIC + "    topics: {type: 'list[str]', default: []}\n    notes: {type: 'list[str]', default: []}\n"
        "    note: {type: str, default: ''}\n    summary: {type: str, default: ''}\n",
        research + node("summarize", "Summarize {state.notes}", summary="str"),
        "  - {from: START, to: research}\n  - {from: research, to: summarize}\n  - {from: summarize, to: END}\n",
    )


async def test_a_map_over_five_items_collects_their_outputs_in_item_order(tmp_path: Path) -> None:
    mock = script(tmp_path, {"research": [{"note": "note on {item} at {index}"}], "summarize": [{"summary": "done"}]})
    # Later items answer first: collection must still follow item order.
    llm = DelayedLLM(LLMBackend(mock), {}, per_index_s=0.005)
    topics = [f"t{i}" for i in range(5)]

    result = await run_langgraph(
        map_flow(tmp_path), {"topic": "bees", "topics": topics}, llm=llm, model_override="mock"
    )

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["notes"] == [f"note on t{i} at {i}" for i in range(5)]
    assert result["state"]["note"] == ""  # a map node's own outputs are not written to the state
    assert sorted(steps(result)) == [*(("research", 0, i) for i in range(5)), ("summarize", 0, 0)]
    assert steps(result)[-1] == ("summarize", 0, 0)


async def test_an_empty_map_does_not_run_its_node_and_follows_its_edge_at_once(tmp_path: Path) -> None:
    mock = script(tmp_path, {"summarize": [{"summary": "nothing to say"}]})

    result = await run(map_flow(tmp_path), {"topic": "bees", "topics": []}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert steps(result) == [("summarize", 0, 0)]
    assert result["state"]["notes"] == []


async def test_a_map_with_max_concurrency_keeps_that_many_items_in_flight_at_most(tmp_path: Path) -> None:
    mock = script(tmp_path, {"research": [{"note": "{item}"}]})
    llm = DelayedLLM(LLMBackend(mock), {"research": 0.01})

    result = await run_langgraph(
        map_flow(tmp_path, max_concurrency=2),
        {"topic": "bees", "topics": ["a", "b", "c", "d", "e"]},
        llm=llm,
        model_override="mock",
    )

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["notes"] == ["a", "b", "c", "d", "e"]
    assert llm.most_in_flight == 2


async def test_a_failed_map_item_stops_its_window_and_sends_the_run_to_on_error(tmp_path: Path) -> None:
    grade = node("grade", "Grade {item}", score="float").replace(
        "    outputs:",
        "    foreach: {items: state.answers, collect: scores, max_concurrency: 1}\n"
        "    retry: {max_attempts: 1}\n    on_error: fallback\n    outputs:",
    )
    plan = flow(
        tmp_path,
        "mapfail",
        "    answers: {type: 'list[str]', required: true}\n    scores: {type: 'list[float]', default: []}\n"
        "    score: {type: float, default: 0.0}\n    note: {type: str, default: ''}\n",
        grade + node("fallback", "Recover from {error}", note="str"),
        "  - {from: START, to: grade}\n  - {from: grade, to: END}\n  - {from: fallback, to: END}\n",
    )
    mock = script(tmp_path, {"grade": [{"score": "{item}"}], "fallback": [{"note": "{error}"}]})

    result = await run(plan, {"answers": ["0.25", "not a number", "0.75"]}, mock)

    assert result["status"] == "succeeded", result["error"]
    # Item 2 waits for item 1 (max_concurrency 1); item 1 failed, so item 2 never runs.
    assert statuses(result) == {"grade.0.0": "succeeded", "grade.0.1": "failed", "fallback.0.0": "succeeded"}
    assert result["state"]["scores"] == []
    assert "grade" in result["state"]["note"]


async def test_a_map_over_a_field_that_is_not_a_list_rejects_the_run_at_its_start(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "badmap",
        TOPIC + "    topics: {type: 'list[str]', default: null}\n    notes: {type: 'list[str]', default: []}\n"
        "    note: {type: str, default: ''}\n",
        node("research", "Research {item}", note="str").replace(
            "    outputs:", "    foreach: {items: state.topics, collect: notes}\n    outputs:"
        ),
        "  - {from: START, to: research}\n  - {from: research, to: END}\n",
    )

    result = await run(plan, {"topic": "bees"})

    assert result["status"] == "rejected"
    assert "not a list" in result["error"]


# --- fan-out and joins ------------------------------------------------------------------------------


async def test_a_fan_out_diamond_runs_both_branches_and_joins_once_on_the_merged_state(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "diamond",
        TOPIC + "    plan: {type: str, default: ''}\n    left: {type: str, default: ''}\n"
        "    right: {type: str, default: ''}\n    both: {type: str, default: ''}\n",
        node("split", "Plan {state.topic}", plan="str")
        + node("left", "Left of {state.plan}", left="str")
        + node("right", "Right of {state.plan}", right="str")
        + node("merge", "Merge {state.left} and {state.right}", both="str"),
        "  - {from: START, to: split}\n  - {from: split, to: [left, right]}\n"
        "  - {from: left, to: merge}\n  - {from: right, to: merge}\n  - {from: merge, to: END}\n",
    )
    mock = script(
        tmp_path,
        {
            "split": [{"plan": "P"}],
            "left": [{"left": "L({state.plan}, right={state.right})"}],
            "right": [{"right": "R({state.plan}, left={state.left})"}],
            "merge": [{"both": "{state.left} + {state.right}"}],
        },
    )

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    # Each branch runs on its own copy of the state: neither sees the other's write.
    assert result["state"]["both"] == "L(P, right=) + R(P, left=)"
    assert Counter(steps(result)) == Counter([("split", 0, 0), ("left", 0, 0), ("right", 0, 0), ("merge", 0, 0)])
    assert steps(result)[-1] == ("merge", 0, 0)


async def test_uneven_and_empty_branches_join_once_after_the_longest_branch(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "uneven",
        TOPIC + "".join(f"    {f}: {{type: str, default: ''}}\n" for f in ("s", "a1", "a2", "a3", "b1", "j")),
        node("split", "Split", s="str")
        + node("a1", "A1", a1="str")
        + node("a2", "A2 after {state.a1}", a2="str")
        + node("a3", "A3 after {state.a2}", a3="str")
        + node("b1", "B1", b1="str")
        + node("join", "Join", j="str"),
        "  - {from: START, to: split}\n  - {from: split, to: [a1, b1, join]}\n"
        "  - {from: a1, to: a2}\n  - {from: a2, to: a3}\n  - {from: a3, to: join}\n"
        "  - {from: b1, to: join}\n  - {from: join, to: END}\n",
    )
    mock = script(
        tmp_path,
        {
            "split": [{"s": "S"}],
            "a1": [{"a1": "x"}],
            "a2": [{"a2": "{state.a1}y"}],
            "a3": [{"a3": "{state.a2}z"}],
            "b1": [{"b1": "b"}],
            "join": [{"j": "{state.a3}/{state.b1}/{state.s}"}],
        },
    )

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["j"] == "xyz/b/S"
    assert [s[0] for s in steps(result)].count("join") == 1
    assert steps(result)[-1] == ("join", 0, 0)


async def test_a_join_applies_reducers_to_the_branch_writes_in_branch_order(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "reducers",
        TOPIC + "    notes: {type: 'list[str]', default: ['start'], reducer: append}\n"
        "    total: {type: int, default: 10, reducer: sum}\n    report: {type: str, default: ''}\n",
        node("split", "Split", notes="str", total="int")
        + node("slow", "Slow", notes="str", total="int")
        + node("fast", "Fast", notes="str", total="int")
        + node("report", "Report {state.notes} {state.total}", report="str"),
        "  - {from: START, to: split}\n  - {from: split, to: [slow, fast]}\n"
        "  - {from: slow, to: report}\n  - {from: fast, to: report}\n  - {from: report, to: END}\n",
    )
    mock = script(
        tmp_path,
        {
            "split": [{"notes": "split", "total": 1}],
            "slow": [{"notes": "slow", "total": 100}],
            "fast": [{"notes": "fast", "total": 1000}],
            "report": [{"report": "{state.total}"}],
        },
    )
    # The first branch finishes last: the merge still follows branch order.
    llm = DelayedLLM(LLMBackend(mock), {"slow": 0.03})

    result = await run_langgraph(plan, {"topic": "bees"}, llm=llm, model_override="mock")

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["notes"] == ["start", "split", "slow", "fast"]
    assert result["state"]["total"] == 1111
    assert result["state"]["report"] == "1111"


async def test_a_fan_out_reached_again_in_a_cycle_joins_again_with_the_next_iterations(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "refan",
        TOPIC + "    log: {type: 'list[str]', default: [], reducer: append}\n    done: {type: bool, default: false}\n",
        node("split", "Split", log="str")
        + node("a", "A", log="str")
        + node("b", "B", log="str")
        + node("join", "Join {state.log}", done="bool"),
        "  - {from: START, to: split}\n  - {from: split, to: [a, b]}\n"
        "  - {from: a, to: join}\n  - {from: b, to: join}\n"
        "  - from: join\n    routes:\n"
        "      - {condition: {logic: 'not state.done'}, to: split, max_iterations: 1}\n"
        "      - {condition: {logic: default}, to: END}\n",
    )
    outputs = {n: [{"log": f"{n}0"}, {"log": f"{n}1"}] for n in ("split", "a", "b")}
    mock = script(tmp_path, {**outputs, "join": [{"done": False}]})

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["log"] == ["split0", "a0", "b0", "split1", "a1", "b1"]
    assert Counter(steps(result)) == Counter((n, i, 0) for n in ("split", "a", "b", "join") for i in range(2))


async def test_concurrent_runs_of_one_flow_keep_their_own_state_and_steps(tmp_path: Path) -> None:
    plan = compile_plan(load_flow(SEEDS / "review_loop.yaml"))
    topics = [f"topic {i}" for i in range(6)]

    alone = [await run(plan, {"topic": t}, run_id=t) for t in topics]
    together = await asyncio.gather(*(run(plan, {"topic": t}, run_id=t) for t in topics))

    for one, other in zip(alone, together, strict=True):
        assert other["status"] == "succeeded", other["error"]
        assert other["state"] == one["state"]
        assert Counter(steps(other)) == Counter(steps(one))
    assert len({json.dumps(r["state"], sort_keys=True) for r in together}) == len(topics)


async def test_branches_that_end_at_end_finish_the_run_with_the_merged_state(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "toend",
        TOPIC + "    a: {type: str, default: ''}\n    b: {type: str, default: ''}\n",
        node("a", "A", a="str") + node("b", "B", b="str"),
        "  - {from: START, to: [a, b]}\n  - {from: a, to: END}\n  - {from: b, to: END}\n",
    )
    mock = script(tmp_path, {"a": [{"a": "A"}], "b": [{"b": "B"}]})

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert result["state"] == {"topic": "bees", "a": "A", "b": "B"}


# --- failures ---------------------------------------------------------------------------------------


def failing_flow(tmp_path: Path, on_error: bool) -> Plan:
    grade = node("grade", "Grade {state.topic}", score="float").replace(
        "    outputs:",
        "    retry: {max_attempts: 2}\n" + ("    on_error: fallback\n" if on_error else "") + "    outputs:",
    )
    fallback = node("fallback", "Recover from {error}", note="str") if on_error else ""
    edges = "  - {from: START, to: grade}\n  - {from: grade, to: END}\n"
    return flow(
        tmp_path,
        "failing",
        TOPIC + "    score: {type: float, default: 0.0}\n    note: {type: str, default: ''}\n",
        grade + fallback,
        edges + ("  - {from: fallback, to: END}\n" if on_error else ""),
    )


async def test_a_node_that_fails_for_good_goes_to_its_on_error_target_with_the_error(tmp_path: Path) -> None:
    mock = script(tmp_path, {"grade": [{"score": "excellent"}], "fallback": [{"note": "recovered: {error}"}]})

    result = await run(failing_flow(tmp_path, on_error=True), {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert steps(result) == [("grade", 0, 0), ("fallback", 0, 0)]
    assert statuses(result) == {"grade.0.0": "failed", "fallback.0.0": "succeeded"}
    assert result["state"]["note"].startswith("recovered: node 'grade' gave no valid output after 2 attempts")


async def test_a_node_that_fails_for_good_without_on_error_fails_the_run_with_its_error(tmp_path: Path) -> None:
    mock = script(tmp_path, {"grade": [{"score": "excellent"}]})

    result = await run(failing_flow(tmp_path, on_error=False), {"topic": "bees"}, mock)

    assert result["status"] == "failed"
    assert "node 'grade' gave no valid output after 2 attempts" in result["error"]
    assert result["steps"][0]["status"] == "failed"
    assert result["state"] == {"topic": "bees", "score": 0.0, "note": ""}


async def test_llm_errors_are_retried_with_backoff_until_the_node_succeeds(tmp_path: Path) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        async def complete(self, request: LLMRequest) -> LLMReply:
            self.calls += 1
            if self.calls < 3:
                return LLMReply(error="busy", error_kind="transient")
            return LLMReply(content=json.dumps({"score": 0.5}))

    plan = failing_flow(tmp_path, on_error=False)
    plan_text = Path(plan.file).read_text().replace("max_attempts: 2}", "max_attempts: 3, backoff_ms: 1}")
    Path(plan.file).write_text(plan_text)
    llm = Flaky()

    result = await run_langgraph(compile_plan(load_flow(plan.file)), {"topic": "bees"}, llm=llm)

    assert result["status"] == "succeeded", result["error"]
    assert llm.calls == 3
    assert result["state"]["score"] == 0.5


async def test_a_route_condition_that_cannot_be_evaluated_fails_the_step_that_led_to_it(tmp_path: Path) -> None:
    plan = flow(
        tmp_path,
        "badroute",
        TOPIC + "    data: {type: dict, default: {}}\n    done: {type: str, default: ''}\n",
        node("fetch", "Fetch", data="dict") + node("use", "Use", done="str"),
        "  - {from: START, to: fetch}\n"
        "  - from: fetch\n    routes:\n"
        "      - {condition: {logic: 'state.data.size > 3'}, to: use}\n"
        "      - {condition: {logic: default}, to: END}\n"
        "  - {from: use, to: END}\n",
    )
    mock = script(tmp_path, {"fetch": [{"data": {"name": "no size here"}}]})

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "failed"
    assert "route 0 of fetch" in result["error"]
    assert statuses(result) == {"fetch.0.0": "failed"}


async def test_a_run_that_exceeds_its_timeout_fails(tmp_path: Path) -> None:
    plan = loop_flow(tmp_path)

    result = await run_langgraph(plan, {"topic": "bees"}, llm=LLMBackend(), model_override="mock/200ms", timeout_s=0.05)

    assert result["status"] == "failed"
    assert result["error"] == "run timed out after 0.05s (config.execution.timeout)"


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [({}, "missing required input 'topic'"), ({"topic": "bees", "color": "red"}, "unknown input 'color'")],
)
async def test_inputs_that_do_not_fit_the_state_are_rejected(
    tmp_path: Path, inputs: dict[str, Any], problem: str
) -> None:
    result = await run(routes_flow(tmp_path), inputs)

    assert result["status"] == "rejected"
    assert problem in result["error"]
    assert result["steps"] == []


# --- checkpointers and seed flows -------------------------------------------------------------------


@pytest.mark.parametrize("checkpointer", ["memory", "sqlite"])
async def test_a_checkpointed_run_gives_the_same_result_as_an_unchecked_one(tmp_path: Path, checkpointer: str) -> None:
    plan = compile_plan(load_flow(SEEDS / "review_loop.yaml"))
    db = tmp_path / "checkpoints.sqlite"

    plain = await run(plan, {"topic": "bees"}, run_id="same")
    saved = await run(plan, {"topic": "bees"}, run_id="same", checkpointer=checkpointer, sqlite_path=db)
    again = await run(plan, {"topic": "bees"}, run_id="same", checkpointer=checkpointer, sqlite_path=db)

    assert saved["status"] == again["status"] == "succeeded", saved["error"]
    assert saved["state"] == plain["state"] == again["state"]
    assert Counter(steps(saved)) == Counter(steps(plain)) == Counter(steps(again))
    if checkpointer == "sqlite":
        assert db.stat().st_size > 0


async def test_sqlite_checkpointing_needs_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite_path"):
        await run(routes_flow(tmp_path), {"topic": "bees"}, checkpointer="sqlite")


async def test_the_review_loop_seed_revises_three_times_when_the_draft_never_scores_well(tmp_path: Path) -> None:
    plan = compile_plan(load_flow(SEEDS / "review_loop.yaml"))
    mock = script(
        tmp_path,
        {
            "plan": [{"angles": ["history", "biology"]}],
            "research": [{"note": "about {item}"}],
            "score": [{"score": 0.5}],
            "revise": [{"draft": "better {state.draft}", "approved": False}],
        },
    )

    result = await run(plan, {"topic": "bees"}, mock)

    assert result["status"] == "succeeded", result["error"]
    assert result["state"]["notes"] == ["about history", "about biology"]
    assert Counter(steps(result)) == Counter(
        [
            ("plan", 0, 0),
            ("research", 0, 0),
            ("research", 0, 1),
            ("write", 0, 0),
            ("score", 0, 0),
            *(("revise", i, 0) for i in range(3)),
            ("publish", 0, 0),
        ]
    )


@pytest.mark.parametrize("seed", sorted(SEED_INPUTS))
async def test_every_seed_flow_runs_to_the_end_with_the_mock_model(seed: str) -> None:
    plan = compile_plan(load_flow(SEEDS / f"{seed}.yaml"))

    first = await run(plan, SEED_INPUTS[seed], run_id=seed)
    second = await run(plan, SEED_INPUTS[seed], run_id=seed)

    assert first["status"] == "succeeded", first["error"]
    assert first["steps"]
    # The mock model answers from node and prompt, so a run is reproducible.
    assert first["state"] == second["state"]
    assert steps(first) == steps(second)
