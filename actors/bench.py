"""``ca-actors bench``: what the bus costs, measured against an in-process baseline in the same run.

- per-node overhead of a linear flow of mock nodes (zero latency unless asked): on the bus engine
  (scheduler, worker and gateway as actors over a real embedded nats-server, every step durable)
  and in-process (the same node code calling the mock model directly: no NATS, no durability);
- throughput of the bus engine with K runs in flight.

Numbers, not pass/fail: wall-clock times are noisy on shared machines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from nats.aio.msg import Msg

from actors.llm_backend import LLMBackend
from actors.node_exec import run_llm_node
from actors.plan import Plan, compile_plan
from actors.stack import LocalStack
from bus import Bus, subjects
from configs import Settings, initial_state, load_flow_text


def linear_flow_yaml(nodes: int, name: str = "bench_linear") -> str:
    """A flow of `nodes` llm nodes in a row, each writing one str field."""
    fields = "".join(f"    f{i}: {{type: str, default: ''}}\n" for i in range(nodes))
    body = "".join(
        f"  - {{id: n{i}, prompt: 'step {i} of {{state.topic}}', outputs: [f{i}], "
        f"output_schema: {{type: object, fields: [{{name: f{i}, type: str}}]}}}}\n"
        for i in range(nodes)
    )
    chain = ["START", *(f"n{i}" for i in range(nodes)), "END"]
    edges = "".join(f"  - {{from: {a}, to: {b}}}\n" for a, b in itertools.pairwise(chain))
    return (
        f'schema_version: "1.0"\nflow: {{name: {name}}}\nstate:\n  fields:\n    topic: {{type: str, required: true}}\n'
        f"{fields}nodes:\n{body}edges:\n{edges}"
    )


async def _in_process_run(plan: Plan, backend: LLMBackend, model: str) -> None:
    spec = plan.spec
    state = initial_state(spec, {"topic": "bench"})
    for node in spec.nodes:
        outcome = await run_llm_node(spec, node, state, llm=backend, model_override=model)
        state = {**state, **outcome.outputs}


async def _bus_runs(bus: Bus, flow: str, count: int) -> float:
    """Start `count` runs at once; seconds until every one has finished."""
    done = asyncio.Event()
    finished: set[str] = set()
    run_ids: set[str] = set()

    async def on_end(msg: Msg) -> None:
        body = json.loads(msg.data)
        finished.add(body["run_id"])
        if run_ids and run_ids <= finished:
            done.set()

    sub = await bus.nc.subscribe("ca.evt.*.run.*", cb=on_end)
    t0 = time.perf_counter()
    replies = await asyncio.gather(
        *(bus.nc.request(subjects.trigger(flow), b'{"topic": "bench"}', timeout=60) for _ in range(count))
    )
    run_ids.update(json.loads(r.data)["run_id"] for r in replies)
    if not run_ids <= finished:
        await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    return elapsed


async def bench(
    *, nodes: int = 5, runs: int = 30, in_flight: Sequence[int] = (1, 10, 100), model: str = "mock", workers: int = 1
) -> dict[str, Any]:
    """Run the benchmark and return its numbers."""
    text = linear_flow_yaml(nodes)
    plan = compile_plan(load_flow_text(text, "<bench>"))
    backend = LLMBackend()
    for _ in range(3):
        await _in_process_run(plan, backend, model)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await _in_process_run(plan, backend, model)
        samples.append((time.perf_counter() - t0) / nodes * 1000)
    baseline = statistics.median(samples)
    settings = Settings(llm_override=model, max_concurrency=128)
    result: dict[str, Any] = {"nodes": nodes, "runs": runs, "model": model, "workers": workers}
    async with LocalStack(settings, [plan], workers=workers) as stack:
        assert stack.client is not None
        for _ in range(3):
            await _bus_runs(stack.client, plan.flow, 1)
        per_node = [await _bus_runs(stack.client, plan.flow, 1) / nodes * 1000 for _ in range(runs)]
        throughput: dict[str, float] = {}
        for k in in_flight:
            elapsed = await _bus_runs(stack.client, plan.flow, k)
            throughput[str(k)] = round(k / elapsed, 2)
    bus_ms = statistics.median(per_node)
    result["per_node_overhead_ms"] = {"bus": round(bus_ms, 3), "in_process": round(baseline, 3)}
    result["per_node_p95_ms"] = {"bus": round(sorted(per_node)[int(0.95 * (len(per_node) - 1))], 3)}
    result["bus_vs_in_process"] = round(bus_ms / baseline, 1) if baseline else None
    result["throughput_runs_per_s"] = throughput
    one = throughput.get(str(in_flight[0]))
    result["throughput_ratio_vs_1"] = {k: round(v / one, 1) for k, v in throughput.items()} if one else {}
    return result


def format_table(result: dict[str, Any]) -> str:
    """The benchmark result as a small text table."""
    overhead = result["per_node_overhead_ms"]
    lines = [
        f"linear flow, {result['nodes']} nodes, model {result['model']}, {result['runs']} runs, "
        f"{result['workers']} worker(s)",
        f"{'engine':<14}{'per-node ms (median)':>22}{'ratio':>8}",
        f"{'in-process':<14}{overhead['in_process']:>22.3f}{1.0:>8.1f}",
        f"{'bus (durable)':<14}{overhead['bus']:>22.3f}{result['bus_vs_in_process'] or 0:>8.1f}",
        "",
        f"{'runs in flight':<16}{'runs/s':>10}{'vs 1':>8}",
    ]
    for k, v in result["throughput_runs_per_s"].items():
        lines.append(f"{k:<16}{v:>10.1f}{result['throughput_ratio_vs_1'].get(k, 0):>8.1f}")
    return "\n".join(lines)
