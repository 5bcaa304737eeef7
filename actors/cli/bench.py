"""``ca-actors bench``: what the bus engine costs, against LangGraph, in the same process run.

Scenarios (mock model, zero latency unless asked): a linear flow (per-node overhead), a fan-out with a
join, a map over N items, and throughput with K runs in flight. Engines:

- ``bus``: scheduler, worker and gateway actors over a real embedded nats-server, every step durable
  (work item, step result, run checkpoint, events: all JetStream writes);
- ``langgraph``: the same flow as a LangGraph StateGraph with its in-memory checkpointer;
- ``langgraph_sqlite``: the same with LangGraph's SQLite checkpointer (the durable comparator);
- ``in_process``: only the node code calling the mock model (the floor: no engine at all).

Numbers, not pass/fail: wall-clock times are noisy on shared machines.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg

from actors.flow.node_exec import NodePorts, run_llm_node
from actors.flow.plan import Plan, compile_plan
from actors.launch import LocalStack
from actors.llm.backend import LLMBackend
from actors.sandbox import bench_sandbox
from actors.scheduler.messages import RunAnswer, TriggerInputs
from bus import TERMINAL_EVENTS, Bus, Event, decode, subjects
from configs import Settings, initial_state, load_flow_text
from configs.errors import ActorError

ENGINES = ("bus", "langgraph", "langgraph_sqlite")


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


def fan_flow_yaml(branches: int = 3, name: str = "bench_fan") -> str:
    """START → a → [b0..bk] → j → END, each branch writing its own field."""
    fields = "".join(f"    f{i}: {{type: str, default: ''}}\n" for i in range(branches))
    out = "{type: object, fields: [{name: %s, type: str}]}"
    body = f"  - {{id: a, prompt: 'plan {{topic}}', outputs: [a], output_schema: {out % 'a'}}}\n"
    body += "".join(
        f"  - {{id: b{i}, prompt: 'branch {i} of {{topic}}', outputs: [f{i}], output_schema: {out % f'f{i}'}}}\n"
        for i in range(branches)
    )
    body += f"  - {{id: j, prompt: 'join {{state.f0}}', outputs: [j], output_schema: {out % 'j'}}}\n"
    targets = ", ".join(f"b{i}" for i in range(branches))
    edges = f"  - {{from: START, to: a}}\n  - {{from: a, to: [{targets}]}}\n"
    edges += "".join(f"  - {{from: b{i}, to: j}}\n" for i in range(branches))
    edges += "  - {from: j, to: END}\n"
    return (
        f'schema_version: "1.0"\nflow: {{name: {name}}}\nstate:\n  fields:\n    topic: {{type: str, required: true}}\n'
        f"    a: {{type: str, default: ''}}\n    j: {{type: str, default: ''}}\n{fields}nodes:\n{body}edges:\n{edges}"
    )


def map_flow_yaml(name: str = "bench_map") -> str:
    """START → fetch (one step per item of `items`) → END."""
    return f"""schema_version: "1.0"
flow: {{name: {name}}}
state:
  fields:
    topic: {{type: str, required: true}}
    items: {{type: "list[str]", default: []}}
    pages: {{type: "list[str]", default: []}}
    page: {{type: str, default: ""}}
nodes:
  - id: fetch
    foreach: {{items: state.items, collect: pages}}
    prompt: "Fetch {{item}} about {{topic}}"
    outputs: [page]
    output_schema: {{type: object, fields: [{{name: page, type: str}}]}}
edges:
  - {{from: START, to: fetch}}
  - {{from: fetch, to: END}}
"""


async def _median_ms(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def _bus_runs(bus: Bus, flow: str, count: int, inputs: dict[str, Any]) -> float:
    """Start `count` runs at once; seconds until every one has ended."""
    done = asyncio.Event()
    ended: set[str] = set()
    run_ids: set[str] = set()

    async def on_end(msg: Msg) -> None:
        event = decode(msg.data)
        if isinstance(event, Event) and event.kind in TERMINAL_EVENTS:
            ended.add(event.run_id)
        if run_ids and run_ids <= ended:
            done.set()

    sub = await bus.subscribe(subjects.RUN_EVENTS_ALL, on_end)
    body = TriggerInputs(inputs)
    subject = subjects.trigger(flow)
    t0 = time.perf_counter()
    answers = await asyncio.gather(*(bus.request(subject, body, RunAnswer, timeout_s=60) for _ in range(count)))
    for answer in answers:
        if answer.run_id is None:
            raise ActorError(f"a bench run was not started: {answer.error}")
        run_ids.add(answer.run_id)
    if not run_ids <= ended:
        await asyncio.wait_for(done.wait(), timeout=300)
    elapsed = time.perf_counter() - t0
    await sub.unsubscribe()
    return elapsed


class _Scenarios:
    """The flows the bench runs, their inputs, and how one run of each goes on each engine."""

    def __init__(self, *, nodes: int, map_items: int, model: str, tmp: Path) -> None:
        from actors.engines import langgraph_runner

        self.run_langgraph = langgraph_runner()
        self.model = model
        self.linear = compile_plan(load_flow_text(linear_flow_yaml(nodes), "<bench>"))
        self.plans = {
            "linear": self.linear,
            "fan_out_join": compile_plan(load_flow_text(fan_flow_yaml(), "<bench>")),
            "map": compile_plan(load_flow_text(map_flow_yaml(), "<bench>")),
        }
        items = [f"item-{i}" for i in range(map_items)]
        self.inputs: dict[str, dict[str, Any]] = {
            plan.flow: {"topic": "bench", **({"items": items} if name == "map" else {})}
            for name, plan in self.plans.items()
        }
        self.backend = LLMBackend()
        self._tmp = tmp
        self._counter = itertools.count()

    def langgraph(self, plan: Plan, checkpointer: str) -> Callable[[], Awaitable[Any]]:
        """One run of `plan` on LangGraph, in memory or with its SQLite checkpointer (a fresh file each)."""

        async def one() -> Any:
            n = next(self._counter)
            path = self._tmp / f"lg-{n}.db" if checkpointer == "sqlite" else None
            result = await self.run_langgraph(
                plan,
                self.inputs[plan.flow],
                llm=self.backend,
                model_override=self.model,
                run_id=f"bench-{n}",
                checkpointer=checkpointer,
                sqlite_path=path,
            )
            assert result["status"] == "succeeded", result
            return result

        return one

    async def node_code_alone(self) -> None:
        """The linear flow's node code called in a loop: the floor every engine adds to."""
        spec = self.linear.spec
        state = initial_state(spec, self.inputs[self.linear.flow])
        ports = NodePorts(llm=self.backend, model_override=self.model)
        for node in spec.nodes:
            state = {**state, **(await run_llm_node(spec, node, state, ports)).outputs}

    async def langgraph_throughput(self, in_flight: int) -> float:
        one = self.langgraph(self.linear, "memory")
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(in_flight)))
        return round(in_flight / (time.perf_counter() - t0), 1)


async def _bus_figures(
    s: _Scenarios, settings: Settings, *, runs: int, in_flight: Sequence[int], workers: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median run time per scenario on the bus, and runs/s with `in_flight` linear runs at once."""
    run_ms: dict[str, float] = {}
    throughput: dict[str, float] = {}
    async with LocalStack(settings, list(s.plans.values()), workers=workers) as stack:
        client = stack.client
        assert client is not None
        for name, plan in s.plans.items():

            async def bus_one(flow: str = plan.flow) -> float:
                return await _bus_runs(client, flow, 1, s.inputs[flow])

            run_ms[name] = await _median_ms(bus_one, runs)
        for k in in_flight:
            throughput[str(k)] = round(k / await _bus_runs(client, s.linear.flow, k, s.inputs[s.linear.flow]), 1)
    return run_ms, throughput


async def _parallel_map_ms(s: _Scenarios, settings: Settings, *, workers: int) -> dict[str, float]:
    """Parallelism: a map of 8 items on a model that takes 300 ms per call, bus and LangGraph."""
    slow_map = compile_plan(load_flow_text(map_flow_yaml("bench_map_slow"), "<bench>"))
    eight = {"topic": "bench", "items": [f"item-{i}" for i in range(8)]}
    slow = settings.model_copy(update={"llm_override": "mock/300ms"})
    async with LocalStack(slow, [slow_map], workers=workers) as stack:
        assert stack.client is not None
        figures = {"bus": round(await _bus_runs(stack.client, slow_map.flow, 1, eight) * 1000, 1)}
    t0 = time.perf_counter()
    await s.run_langgraph(slow_map, eight, llm=s.backend, model_override="mock/300ms", run_id="bench-slow-map")
    figures["langgraph"] = round((time.perf_counter() - t0) * 1000, 1)
    return figures


async def bench(
    *,
    nodes: int = 5,
    runs: int = 30,
    map_items: int = 20,
    in_flight: Sequence[int] = (1, 10, 100),
    model: str = "mock",
    workers: int = 1,
) -> dict[str, Any]:
    """Run every scenario on every engine and return the numbers."""
    with tempfile.TemporaryDirectory(prefix="ca-bench-") as tmp:
        s = _Scenarios(nodes=nodes, map_items=map_items, model=model, tmp=Path(tmp))
        scenario_ms: dict[str, dict[str, float]] = {name: {} for name in s.plans}
        for name, plan in s.plans.items():
            scenario_ms[name]["langgraph"] = await _median_ms(s.langgraph(plan, "memory"), runs)
            scenario_ms[name]["langgraph_sqlite"] = await _median_ms(s.langgraph(plan, "sqlite"), runs)
        scenario_ms["linear"]["in_process"] = await _median_ms(s.node_code_alone, runs)
        settings = Settings(llm_override=model, max_concurrency=128)
        bus_ms, throughput = await _bus_figures(s, settings, runs=runs, in_flight=in_flight, workers=workers)
        for name, ms in bus_ms.items():
            scenario_ms[name]["bus"] = ms
        parallel_map_ms = await _parallel_map_ms(s, settings, workers=workers)
        throughput_lg = {str(k): await s.langgraph_throughput(k) for k in in_flight}
        sandbox = await bench_sandbox(runs=max(runs * 10, 100))
    per_node = {engine: round(ms / nodes, 3) for engine, ms in scenario_ms["linear"].items()}
    first = str(in_flight[0])
    return {
        "nodes": nodes,
        "runs": runs,
        "map_items": map_items,
        "model": model,
        "workers": workers,
        "per_node_overhead_ms": per_node,
        "run_ms": {name: {e: round(v, 3) for e, v in ms.items()} for name, ms in scenario_ms.items()},
        "ratios": {
            "bus_vs_langgraph": round(per_node["bus"] / per_node["langgraph"], 2),
            "bus_vs_langgraph_sqlite": round(per_node["bus"] / per_node["langgraph_sqlite"], 2),
        },
        "map_8_items_300ms_each_ms": parallel_map_ms,
        "throughput_runs_per_s": throughput,
        "throughput_langgraph_runs_per_s": throughput_lg,
        "throughput_ratio_vs_1": {k: round(v / throughput[first], 1) for k, v in throughput.items()},
        "sandbox": sandbox,
    }


def format_table(result: dict[str, Any]) -> str:
    """The benchmark result as text tables."""
    run_ms = result["run_ms"]
    lines = [
        f"mock model {result['model']}, median of {result['runs']} runs, {result['workers']} worker(s); "
        f"linear = {result['nodes']} nodes, map = {result['map_items']} items",
        "",
        f"{'run time (ms)':<16}" + "".join(f"{e:>18}" for e in ENGINES),
    ]
    for name, ms in run_ms.items():
        lines.append(f"{name:<16}" + "".join(f"{ms.get(e, float('nan')):>18.2f}" for e in ENGINES))
    per_node = result["per_node_overhead_ms"]
    lines += [
        "",
        f"per-node overhead (linear): bus {per_node['bus']:.3f} ms, langgraph {per_node['langgraph']:.3f} ms, "
        f"langgraph+sqlite {per_node['langgraph_sqlite']:.3f} ms, node code alone {per_node['in_process']:.3f} ms",
        f"bus / langgraph = {result['ratios']['bus_vs_langgraph']:.2f}   "
        f"bus / langgraph+sqlite = {result['ratios']['bus_vs_langgraph_sqlite']:.2f}",
        f"map of 8 items x mock/300ms: bus {result['map_8_items_300ms_each_ms']['bus']:.0f} ms, "
        f"langgraph {result['map_8_items_300ms_each_ms']['langgraph']:.0f} ms (sequential would be 2400 ms)",
        "",
        f"{'runs in flight':<16}{'bus runs/s':>12}{'vs 1':>8}{'langgraph runs/s':>20}",
    ]
    for k, v in result["throughput_runs_per_s"].items():
        lg = result["throughput_langgraph_runs_per_s"].get(k, float("nan"))
        lines.append(f"{k:<16}{v:>12.1f}{result['throughput_ratio_vs_1'][k]:>8.1f}{lg:>20.1f}")
    box = result["sandbox"]
    lines += [
        "",
        f"sandbox ({box['node_lines']}-line node, {box['runs']} runs, one worker, network isolation {box['network']}): "
        f"cached p50 {box['cached_p50_ms']:.2f} ms, p95 {box['cached_p95_ms']:.2f} ms, "
        f"{box['executions_per_s']:.0f} executions/s; cold first execution {box['cold_first_execution_ms']:.0f} ms, "
        f"first compile {box['first_compile_ms']:.2f} ms",
    ]
    return "\n".join(lines)
