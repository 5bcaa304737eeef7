"""Routes, loops, maps, fan-out/fan-in and failure policies on the bus engine (docs/control-flow.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from actors.cli.console import show_run
from actors.launch.stack import LocalStack
from configs import Settings
from tests.conftest import ROOT, SEEDS
from tests.helpers import EventLog, plans, run_flow, write_flow, write_script

FLOWS = ROOT / "tests" / "flows"


def steps_of(result: dict[str, Any]) -> Counter[tuple[str, int, int]]:
    return Counter((s["node"], s["iteration"], s["index"]) for s in result["steps"])


async def run_on_bus(
    settings: Settings, flow: Path, inputs: dict[str, Any], *, script: Path | None = None, model: str = "mock"
) -> tuple[dict[str, Any], EventLog]:
    s = settings.model_copy(update={"llm_override": model, "mock_script": script})
    flow_plans = plans(flow)
    async with LocalStack(s, flow_plans, embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, flow_plans[0].flow, inputs, timeout_s=60)
    return result, log


async def test_review_loop_runs_with_the_mock_model(settings: Settings) -> None:
    result, _ = await run_on_bus(settings, SEEDS / "review_loop.yaml", {"topic": "actors"})
    assert result["status"] == "succeeded", result
    steps = steps_of(result)
    assert steps[("plan", 0, 0)] == 1
    assert {i for (n, _, i) in steps if n == "research"} == {0, 1, 2}
    assert len(result["state"]["notes"]) == 3
    assert steps[("publish", 0, 0)] == 1
    assert sum(1 for (n, _, _) in steps if n == "revise") <= 3


async def test_review_loop_with_a_script_maps_in_order_then_revises_until_approved(
    settings: Settings, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path / "script.yaml",
        {
            "plan": [{"angles": ["history", "design", "future"]}],
            "research": [{"note": "note about {item} ({index})"}],
            "write": [{"draft": "draft 0"}],
            "score": [{"score": 0.5}],
            "revise": [{"draft": "draft 1", "approved": False}, {"draft": "draft 2", "approved": True}],
            "publish": [{"summary": "summary of {state.draft}"}],
        },
    )
    result, _ = await run_on_bus(settings, SEEDS / "review_loop.yaml", {"topic": "actors"}, script=script)
    assert result["status"] == "succeeded", result
    state = result["state"]
    assert state["notes"] == ["note about history (0)", "note about design (1)", "note about future (2)"]
    assert state["summary"] == "summary of draft 2"
    assert state["approved"] is True
    assert steps_of(result) == Counter(
        {
            ("plan", 0, 0): 1,
            ("research", 0, 0): 1,
            ("research", 0, 1): 1,
            ("research", 0, 2): 1,
            ("write", 0, 0): 1,
            ("score", 0, 0): 1,
            ("revise", 0, 0): 1,
            ("revise", 1, 0): 1,
            ("publish", 0, 0): 1,
        }
    )


async def test_a_loop_whose_condition_never_turns_true_stops_at_exactly_max_iterations(
    settings: Settings, tmp_path: Path
) -> None:
    flow = write_flow(
        tmp_path / "loop.yaml",
        """
schema_version: "1.0"
flow: {name: forever}
state:
  fields:
    topic: {type: str, required: true}
    done: {type: bool, default: false}
    tries: {type: int, default: 0, reducer: sum}
    after: {type: str, default: ""}
nodes:
  - {id: work, prompt: "Try {topic}", outputs: [done, tries],
     output_schema: {type: object, fields: [{name: done, type: bool}, {name: tries, type: int}]}}
  - {id: wrap, prompt: "Wrap up", outputs: [after], output_schema: {type: object, fields: [{name: after, type: str}]}}
edges:
  - {from: START, to: work}
  - from: work
    loop: {max_iterations: 4, condition_field: done, exit_to: wrap}
  - {from: wrap, to: END}
""",
    )
    script = write_script(tmp_path / "s.yaml", {"work": [{"done": False, "tries": 1}]})
    result, _ = await run_on_bus(settings, flow, {"topic": "t"}, script=script)
    assert result["status"] == "succeeded"
    assert [s["iteration"] for s in result["steps"] if s["node"] == "work"] == [0, 1, 2, 3]
    assert result["state"]["tries"] == 4
    assert result["state"]["after"]


async def test_a_route_cycle_is_bounded_by_its_max_iterations(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path / "cycle.yaml",
        """
schema_version: "1.0"
flow: {name: cycle}
state:
  fields:
    n: {type: int, default: 0, reducer: sum}
    verdict: {type: str, default: ""}
nodes:
  - {id: a, prompt: "Add one to {n}", outputs: [n], output_schema: {type: object, fields: [{name: n, type: int}]}}
  - {id: b, prompt: "Judge {n}", outputs: [verdict],
     output_schema: {type: object, fields: [{name: verdict, type: str}]}}
edges:
  - {from: START, to: a}
  - {from: a, to: b}
  - from: b
    routes:
      - {condition: {logic: "state.n < 100 and not state.verdict.startswith('stop')"}, to: a, max_iterations: 2}
      - {condition: {logic: default}, to: END}
""",
    )
    script = write_script(tmp_path / "s.yaml", {"a": [{"n": 1}], "b": [{"verdict": "again"}]})
    result, _ = await run_on_bus(settings, flow, {}, script=script)
    assert result["status"] == "succeeded"
    assert result["state"]["n"] == 3
    assert steps_of(result) == Counter({("a", i, 0): 1 for i in range(3)} | {("b", i, 0): 1 for i in range(3)})


async def test_a_map_of_50_items_never_has_more_than_3_in_flight_and_collects_in_order(
    settings: Settings, tmp_path: Path
) -> None:
    items = [f"u{i:02d}" for i in range(50)]
    script = write_script(tmp_path / "s.yaml", {"fetch": [{"page": "page of {url}"}]})
    result, log = await run_on_bus(settings, FLOWS / "map50.yaml", {"items": items}, script=script, model="mock/20ms")
    assert result["status"] == "succeeded", result
    assert result["state"]["pages"] == [f"page of {u}" for u in items]
    assert result["state"]["page"] == "", "a map node's own outputs are only collected"
    in_flight = peak = 0
    for event in log.events:
        if event.node != "fetch":
            continue
        if event.kind == "node.started":
            in_flight += 1
        elif event.kind == "node.finished":
            in_flight -= 1
        peak = max(peak, in_flight)
    assert peak == 3
    assert len(log.of("node.finished")) == 51


async def test_map_items_without_a_bound_all_run_at_once(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "m.yaml", (FLOWS / "map50.yaml").read_text().replace(", max_concurrency: 3", ""))
    result, log = await run_on_bus(settings, flow, {"items": [str(i) for i in range(8)]}, model="mock/300ms")
    assert result["status"] == "succeeded"
    starts = [e for e in log.of("node.started") if e.node == "fetch"]
    first_finish = min(e.ts for e in log.of("node.finished") if e.node == "fetch")
    assert all(e.ts < first_finish for e in starts), "all 8 items started before the first one finished"


async def test_an_empty_map_skips_the_node_and_goes_on(settings: Settings) -> None:
    result, _ = await run_on_bus(settings, FLOWS / "map50.yaml", {"items": []})
    assert result["status"] == "succeeded"
    assert [s["node"] for s in result["steps"]] == ["summarise"]
    assert result["state"]["pages"] == []


async def test_a_fan_out_joins_once_with_every_branch_merged(settings: Settings, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.yaml",
        {
            "a": [{"notes": "from a"}],
            "b": [{"x": "left", "notes": "from b", "total": 2}],
            "b2": [{"x2": "{state.x} again"}],
            "c": [{"y": "right", "notes": "from c", "total": 5}],
            "d": [{"joined": "{state.x2} + {state.y}"}],
        },
    )
    result, log = await run_on_bus(settings, FLOWS / "diamond.yaml", {"topic": "t"}, script=script, model="mock/30ms")
    assert result["status"] == "succeeded", result
    state = result["state"]
    assert state["joined"] == "left again + right"
    assert state["notes"] == ["from a", "from b", "from c"], "branch writes merge in branch order"
    assert state["total"] == 7
    assert [e.node for e in log.of("node.started")].count("d") == 1


async def test_a_failing_node_with_on_error_hands_the_error_to_its_target(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path / "f.yaml",
        """
schema_version: "1.0"
flow: {name: rescue}
state:
  fields:
    topic: {type: str, required: true}
    answer: {type: int, default: 0}
    apology: {type: str, default: ""}
nodes:
  - id: risky
    prompt: "Count {topic}"
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: int}]}
    retry: {max_attempts: 2, on: [bad_output]}
    on_error: rescue
  - {id: rescue, prompt: "Apologise for {error}", outputs: [apology],
     output_schema: {type: object, fields: [{name: apology, type: str}]}}
edges:
  - {from: START, to: risky}
  - {from: risky, to: END}
  - {from: rescue, to: END}
""",
    )
    script = write_script(
        tmp_path / "s.yaml", {"risky": [{"answer": "many"}], "rescue": [{"apology": "sorry: {error}"}]}
    )
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "rescue", {"topic": "t"})
        details = await show_run(stack.client, result["run_id"])
    assert result["status"] == "succeeded"
    assert result["state"]["apology"].startswith("sorry: node 'risky' gave no valid output after 2 attempts")
    assert [(s["node"], s["status"]) for s in result["steps"]] == [("risky", "failed"), ("rescue", "succeeded")]
    assert len(log.of("node.retry")) == 1
    assert details is not None
    assert [d["node"] for d in details["dead_letters"]] == ["risky"]


async def test_a_node_that_times_out_is_retried_then_fails_the_run_into_the_dead_letters(
    settings: Settings, tmp_path: Path
) -> None:
    flow = write_flow(
        tmp_path / "f.yaml",
        (SEEDS / "echo.yaml")
        .read_text()
        .replace(
            "    outputs: [result]",
            "    timeout_s: 0.2\n    retry: {max_attempts: 2, backoff_ms: 10, on: [timeout]}\n    outputs: [result]",
        ),
    )
    s = settings.model_copy(update={"llm_override": "mock/1000ms"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "echo", {"message": "slow"})
        details = await show_run(stack.client, result["run_id"])
    assert result["status"] == "failed"
    assert "timeout_s=0.2" in result["error"]
    assert [e.data.kind for e in log.of("node.retry")] == ["timeout"]
    assert details is not None
    assert details["dead_letters"][0]["state"]["message"] == "slow"
