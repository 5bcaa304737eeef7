"""The bus engine and the LangGraph engine agree: same status, final state and steps on every flow.

Each case runs once on the bus engine (scheduler, worker and gateway actors over a real nats-server)
and once in-process on LangGraph, and the results must match (docs/control-flow.md is the contract):
equal status, equal JSON-normalised final state, and equal multisets of executed steps
``(node, iteration, index)`` (with their statuses).

- The hand-written corpus (`CASES`) covers the seeds, ``tests/flows`` and small inline flows for each
  construct (routes, bounded route cycles, loops, maps, fan-out/join with reducers, ``on_error``).
- The generated corpus draws flows from `tests.flowgen.generated_flows` with Hypothesis. The test is an
  ``async`` ``@given`` test (pytest-asyncio runs every example on the test's event loop), so one
  `LocalStack` with ``serve_all=True``, started by a function-scoped fixture, serves all examples: each
  example publishes its plan under a fresh name (``gen_<n>``) and triggers a run. Hence the suppressed
  ``function_scoped_fixture`` health check (sharing the stack across examples is the point; runs never
  share a flow name). ``derandomize=True`` with ``database=None`` makes the examples the same on every
  run (they only change with the test function or the Hypothesis version), and nothing is written to
  ``.hypothesis/``. Generated flows use the mock model without a script: its outputs are a function of
  node id and rendered prompt, so both engines see identical outputs exactly when they render
  identical prompts.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given

from actors.flow.plan import Plan, PlanStore, compile_plan
from actors.launch.stack import LocalStack
from actors.llm.backend import LLMBackend
from actors.llm.mock import MockScript
from bus import Bus, Role, topology
from configs import Settings, load_flow_text
from tests.differential_corpus import CASES, Case
from tests.flowgen import GeneratedFlow, generated_flows
from tests.helpers import run_flow, write_script

with warnings.catch_warnings():
    # langgraph.checkpoint builds a langchain-core `Reviver` at import time, which announces a future
    # default (LangChainPendingDeprecationWarning, a PendingDeprecationWarning); not ours to fix.
    # Importing langchain_core puts "default" filters for its warnings first, so it goes before ours.
    import langchain_core  # noqa: F401

    warnings.filterwarnings(
        "ignore", message="The default value of `allowed_objects`", category=PendingDeprecationWarning
    )
    from actors.engines.langgraph.engine import Checkpointer, run_langgraph


# --- comparing results -----------------------------------------------------------------------------


def normalised(value: Any) -> Any:
    """`value` as it would come back from JSON (tuples become lists, keys become strings)."""
    return json.loads(json.dumps(value, sort_keys=True))


def steps_of(result: dict[str, Any]) -> Counter[tuple[str, int, int]]:
    return Counter((s["node"], s["iteration"], s["index"]) for s in result["steps"])


def statuses_of(result: dict[str, Any]) -> Counter[tuple[str, int, int, str]]:
    return Counter((s["node"], s["iteration"], s["index"], s["status"]) for s in result["steps"])


def differences(bus: dict[str, Any], lg: dict[str, Any]) -> list[str]:
    """What differs between a bus result and a LangGraph result of the same flow and inputs."""
    found: list[str] = []
    if bus["status"] != lg["status"]:
        found.append(f"status: bus {bus['status']!r}, langgraph {lg['status']!r}")
    bus_state, lg_state = normalised(bus["state"]), normalised(lg["state"])
    if bus_state != lg_state:
        keys = sorted(set(bus_state) | set(lg_state))
        diff = {k: (bus_state.get(k, "<missing>"), lg_state.get(k, "<missing>")) for k in keys}
        found.append(f"state (bus, langgraph): {json.dumps({k: v for k, v in diff.items() if v[0] != v[1]})}")
    bus_steps, lg_steps = steps_of(bus), steps_of(lg)
    if bus_steps != lg_steps:
        found.append(
            f"steps only on bus: {dict(bus_steps - lg_steps)}; only on langgraph: {dict(lg_steps - bus_steps)}"
        )
    elif statuses_of(bus) != statuses_of(lg):
        found.append(f"step statuses: bus {dict(statuses_of(bus))}, langgraph {dict(statuses_of(lg))}")
    return found


def assert_same(flow: str, inputs: dict[str, Any], bus: dict[str, Any], lg: dict[str, Any]) -> None:
    problems = differences(bus, lg)
    assert not problems, (
        "the engines disagree:\n- "
        + "\n- ".join(problems)
        + f"\n--- flow\n{flow}\n--- inputs\n{json.dumps(inputs)}"
        + f"\n--- bus\n{json.dumps(bus, indent=1)}\n--- langgraph\n{json.dumps(lg, indent=1)}"
    )


def assert_steps_succeeded(result: dict[str, Any]) -> None:
    """A succeeded run without `on_error` has only succeeded steps."""
    if result["status"] == "succeeded":
        failed = [s for s in result["steps"] if s["status"] != "succeeded"]
        assert not failed, failed


# --- running -------------------------------------------------------------------------------------------


def plan_of(text: str, file: str) -> Plan:
    return compile_plan(load_flow_text(text, file))


async def on_langgraph(
    plan: Plan,
    inputs: dict[str, Any],
    *,
    script: Path | None = None,
    model: str = "mock",
    run_id: str = "langgraph",
    checkpointer: Checkpointer = "none",
    sqlite_path: Path | None = None,
) -> dict[str, Any]:
    llm = LLMBackend(MockScript.load(script) if script else None)
    return await run_langgraph(
        plan,
        inputs,
        llm=llm,
        model_override=model,
        run_id=run_id,
        checkpointer=checkpointer,
        sqlite_path=sqlite_path,
        timeout_s=60,
    )


async def on_bus(
    settings: Settings, plan: Plan, inputs: dict[str, Any], *, script: Path | None, model: str
) -> dict[str, Any]:
    s = settings.model_copy(update={"llm_override": model, "mock_script": script})
    async with LocalStack(s, [plan], embedded=False) as stack:
        assert stack.client is not None
        return await run_flow(stack.client, plan.flow, inputs, timeout_s=60)


# --- the hand-written corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_both_engines_give_the_same_result_on_the_corpus(case: Case, settings: Settings, tmp_path: Path) -> None:
    plan = plan_of(case.flow, f"<{case.id}>")
    script = write_script(tmp_path / "script.yaml", case.script) if case.script is not None else None

    bus = await on_bus(settings, plan, case.inputs, script=script, model=case.model)
    lg = await on_langgraph(plan, case.inputs, script=script, model=case.model, run_id=bus["run_id"])

    assert_same(case.flow, case.inputs, bus, lg)
    assert bus["status"] == case.status, bus
    if case.on_error:
        assert any(s["status"] == "failed" for s in bus["steps"]), "the case is meant to go through on_error"
    else:
        assert_steps_succeeded(bus)
    for name, value in case.expect.items():
        assert bus["state"][name] == value, (name, bus["state"])


# --- LangGraph checkpointers change nothing -------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["review_loop-script", "diamond-script", "route-cycle-mock", "map50-six-items"])
async def test_langgraph_gives_the_same_result_with_every_checkpointer(case_id: str, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    plan = plan_of(case.flow, f"<{case.id}>")
    script = write_script(tmp_path / "script.yaml", case.script) if case.script is not None else None
    checkpointers: tuple[Checkpointer, ...] = ("none", "memory", "sqlite")
    results: dict[str, dict[str, Any]] = {}
    for checkpointer in checkpointers:
        results[checkpointer] = await on_langgraph(
            plan,
            case.inputs,
            script=script,
            model=case.model,
            run_id=f"cp-{case_id}",
            checkpointer=checkpointer,
            sqlite_path=tmp_path / "checkpoints.db",
        )
    assert results["none"]["status"] == "succeeded", results["none"]
    assert (tmp_path / "checkpoints.db").stat().st_size > 0
    for checkpointer in ("memory", "sqlite"):
        assert not differences(results["none"], results[checkpointer]), (checkpointer, results)


# --- the generated corpus ----------------------------------------------------------------------------


@hypothesis.settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(flow=generated_flows())
def test_generated_flows_are_valid(flow: GeneratedFlow) -> None:
    loaded = load_flow_text(flow.text, "<generated>")
    assert loaded.spec.flow.name == flow.name


@pytest.fixture
async def shared_stack(settings: Settings) -> AsyncIterator[LocalStack]:
    """One stack for all examples of a test: workers serve every flow published later."""
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": None})
    async with LocalStack(s, [], embedded=False, serve_all=True) as stack:
        yield stack


_flow_numbers = itertools.count()


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(generated=generated_flows())
async def test_both_engines_give_the_same_result_on_generated_flows(
    shared_stack: LocalStack, generated: GeneratedFlow
) -> None:
    flow = generated.named(f"gen_{next(_flow_numbers)}")
    plan = plan_of(flow.text, f"<{flow.name}>")
    client = shared_stack.client
    assert client is not None
    # Only the scheduler's role may write plans.
    async with Bus.of(shared_stack.settings, Role.SCHEDULER, name="plan-publisher") as publisher:
        await PlanStore(publisher.kv(topology.PLANS)).publish(plan)

    bus = await run_flow(client, plan.flow, flow.inputs, timeout_s=60)
    lg = await on_langgraph(plan, flow.inputs, run_id=bus["run_id"])

    assert_same(flow.text, flow.inputs, bus, lg)
    assert bus["status"] == "succeeded", (flow.text, bus)
    assert_steps_succeeded(bus)
