"""Throughput with 1, 2, 4... agent processes: runs/s, CPU per step, NATS message rate (docs/scaling.md).

Starts an embedded nats-server, the control plane (scheduler, registry, LLM gateway on ``mock/100ms``)
and N ``ca-actors agent`` processes, each a real OS process as in a deployment, then keeps `--in-flight`
runs of a linear flow going until `--runs` finished. Run from the repository root::

    .venv/bin/python deploy/bench_agents.py --agents 1 2 4 --runs 200 --in-flight 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from actors.cli.console import trigger_and_wait
from actors.runtime.presence import ActorReady
from actors.scheduler.messages import RunAnswer, TriggerInputs
from bus import TERMINAL_EVENTS, Bus, EmbeddedNats, Event, free_port, subjects

NODES = 5
FLOW = (
    'schema_version: "1.0"\nflow: {name: bench}\nstate:\n  fields:\n    topic: {type: str, required: true}\n'
    + "".join(f"    n{i}: {{type: str, default: ''}}\n" for i in range(NODES))
    + "nodes:\n"
    + "".join(
        f"  - {{id: n{i}, prompt: 'Step {i} on {{state.topic}}', outputs: [n{i}], "
        f"output_schema: {{type: object, fields: [{{name: n{i}, type: str}}]}}}}\n"
        for i in range(NODES)
    )
    + "edges:\n"
    + "".join(
        f"  - {{from: {a}, to: {b}}}\n"
        for a, b in zip(
            ["START", *[f"n{i}" for i in range(NODES)]], [*[f"n{i}" for i in range(NODES)], "END"], strict=True
        )
    )
)


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _varz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=2) as r:
        data: dict[str, Any] = json.load(r)
        return data


async def measure(agents: int, *, runs: int, in_flight: int, llm: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        (root / "flows" / "bench.yaml").write_text(FLOW)
        monitor = free_port()
        server = EmbeddedNats(root / "nats", monitor_port=monitor)
        await server.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            async with Bus(server.url, name="bench") as bus:
                ready: asyncio.Queue[ActorReady] = asyncio.Queue()

                async def on_ready(msg: Any) -> None:
                    await ready.put(ActorReady.model_validate_json(msg.data))

                await bus.subscribe(subjects.SYS_READY, on_ready)
                cmds = [
                    ["actor", "registry"],
                    ["actor", "llm-gateway", "--llm", llm],
                    ["actor", "scheduler", "--flows", str(root / "flows")],
                    *[["agent", "--name", f"agent{i}"] for i in range(agents)],
                ]
                env = {**os.environ, "CA_NATS_URL": server.url, "CA_LLM_PROVIDER_CONCURRENCY": "1000"}
                for cmd in cmds:
                    procs.append(
                        subprocess.Popen(  # noqa: ASYNC220 - spawning is instant
                            [sys.executable, "-m", "actors", *cmd, "--log-level", "error"],
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    )
                for _ in cmds:
                    await asyncio.wait_for(ready.get(), 60)
                await trigger_and_wait(bus, "bench", {"topic": "warm-up"}, wait=True, timeout_s=60, progress=False)
                pids = [p.pid for p in procs] + [server.pid or 0]
                agent_pids = [p.pid for p in procs[3:]]
                cpu0, agent_cpu0, msgs0, t0 = (
                    _cpu_s(pids),
                    _cpu_s(agent_pids),
                    _varz(monitor)["in_msgs"],
                    time.perf_counter(),
                )
                done = 0
                ended: dict[str, asyncio.Future[str]] = {}
                early: dict[str, str] = {}

                async def on_end(msg: Any) -> None:
                    event = Event.model_validate_json(msg.data)
                    if event.kind in TERMINAL_EVENTS:
                        waiter = ended.get(event.run_id)
                        if waiter is None:
                            early[event.run_id] = event.kind
                        elif not waiter.done():
                            waiter.set_result(event.kind)

                await bus.subscribe(subjects.RUN_EVENTS_ALL, on_end)
                queue = iter(range(runs))

                async def lane() -> None:
                    # One run after another: trigger (request → run id), then wait for its terminal event.
                    nonlocal done
                    for i in queue:
                        answer = await bus.request(
                            subjects.trigger("bench"), TriggerInputs({"topic": f"r{i}"}), RunAnswer, timeout_s=30
                        )
                        assert answer.run_id is not None, answer
                        waiter = ended[answer.run_id] = asyncio.get_running_loop().create_future()
                        if answer.run_id in early:
                            waiter.set_result(early.pop(answer.run_id))
                        kind = await asyncio.wait_for(waiter, 300)
                        assert kind == "run.finished", kind
                        done += 1

                driver0 = time.process_time()
                await asyncio.gather(*(lane() for _ in range(in_flight)))
                driver = time.process_time() - driver0
                wall = time.perf_counter() - t0
                cpu, agent_cpu, msgs = (
                    _cpu_s(pids) - cpu0,
                    _cpu_s(agent_pids) - agent_cpu0,
                    _varz(monitor)["in_msgs"] - msgs0,
                )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
            await server.close()
    steps = done * NODES
    return {
        "agents": agents,
        "runs": done,
        "in_flight": in_flight,
        "llm": llm,
        "runs_per_s": round(done / wall, 2),
        "steps_per_s": round(steps / wall, 1),
        "cpu_ms_per_step_all": round(cpu * 1000 / steps, 2),
        "cpu_ms_per_step_agents": round(agent_cpu * 1000 / steps, 2),
        "nats_msgs_in_per_s": round(msgs / wall),
        "nats_msgs_per_step": round(msgs / steps, 1),
        "driver_cpu_share": round(driver / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--llm", default="mock/100ms")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, flow: linear, {NODES} nodes, {args.llm}", file=sys.stderr)
    for n in args.agents:
        row = asyncio.run(measure(n, runs=args.runs, in_flight=args.in_flight, llm=args.llm))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
