"""Code nodes on the bus engine: the seed's sandbox example gives typed results, the node worker's sandbox
pool shows in the registry's load, and code that asks for no sandbox runs only where the operator allows it."""

from __future__ import annotations

from pathlib import Path

from actors.cli.console import ping_agents
from actors.launch.kinds import ACTORS, ActorContext
from actors.launch.stack import LocalStack
from actors.runtime import ActorHost, ActorInfo
from actors.sandbox import bench_sandbox
from bus import Bus, Role
from configs import Settings
from tests.conftest import EXAMPLES
from tests.helpers import plans, run_flow, until, write_flow

UNSANDBOXED = """
schema_version: "1.0"
flow: {name: trusted}
state:
  fields:
    cwd: {type: str, default: ""}
nodes:
  - id: where
    code: "import os\\nresult = type(os.getcwd()).__name__"
    outputs: [cwd]
    sandbox: {enabled: false}
edges: [{from: START, to: where}, {from: where, to: END}]
"""


async def test_the_sandbox_example_runs_with_typed_results_and_the_pool_shows_in_the_load(settings: Settings) -> None:
    s = settings.model_copy(update={"llm_override": "mock"})
    flow = plans(EXAMPLES / "sandbox_pipeline.yaml")
    async with LocalStack(s, flow, embedded=False) as stack, Bus.of(s, Role.ADMIN, name="probe") as bus:
        assert stack.client is not None
        # One more worker, announced to the registry as `up` and `agent` announce theirs.
        ctx = ActorContext(bus, s, "worker-probe", plans=flow, only_flows=frozenset({"sandbox_pipeline"}))
        async with ctx.resources:
            worker = await ACTORS["worker"](ctx)
            info = ActorInfo(id="worker-probe", kind="worker")
            async with ActorHost(worker, bus, info=info, heartbeat_s=s.heartbeat_s):
                inputs = {"input_numbers": [3, 8, 1, 12, 5]}
                result = await run_flow(stack.client, "sandbox_pipeline", inputs, timeout_s=60)
                answers = await until(lambda: _probe_with_sandbox(bus), "the probe reports its sandbox pool")
    assert result["status"] == "succeeded", result
    state = result["state"]
    assert state["sum_result"] == 29
    assert isinstance(state["sum_result"], int)
    assert state["doubled"] == [6, 16, 2, 24, 10]
    assert state["report"] == "total 29, 2 doubled values above 10: 16, 24\nmean of the doubled values: 11.6"
    assert state["summary"]  # the LLM node after the code nodes ran on the mock model
    assert answers.load.sandbox_workers >= 1
    assert answers.load.sandbox_busy <= answers.load.sandbox_workers


async def _probe_with_sandbox(bus: Bus) -> ActorInfo | None:
    found = [a for a in await ping_agents(bus) if a.id == "worker-probe" and a.load.sandbox_workers]
    return found[0] if found else None


async def test_code_without_a_sandbox_fails_unless_the_operator_allows_it(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "trusted.yaml", UNSANDBOXED)
    s = settings.model_copy(update={"llm_override": "mock"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        refused = await run_flow(stack.client, "trusted", {})
    assert refused["status"] == "failed"
    assert "--allow-unsandboxed" in refused["error"]
    allowed = s.model_copy(update={"allow_unsandboxed": True})
    async with LocalStack(allowed, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        ran = await run_flow(stack.client, "trusted", {})
    assert ran["status"] == "succeeded", ran
    assert ran["state"]["cwd"] == "str"


async def test_the_sandbox_bench_reports_its_figures() -> None:
    figures = await bench_sandbox(runs=20)
    assert figures["node_lines"] == 20
    assert figures["runs"] == 20
    for key in ("cold_first_execution_ms", "first_compile_ms", "cached_p50_ms", "cached_p95_ms", "executions_per_s"):
        assert figures[key] > 0, key
    assert figures["cached_p50_ms"] <= figures["cached_p95_ms"]
    assert figures["network"] in ("netns", "audit")
