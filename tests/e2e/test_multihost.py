"""Many machines, for real: hosts are Linux network namespaces on one bridge, each with its own address.

Three hosts run a nats-server cluster (streams and buckets with 3 replicas), a fourth the control plane
(scheduler, registry, LLM gateway), two more the agents; every process is started with the
``ca-actors`` command line inside its host (``ip netns exec``) and reaches the others only over its own
link. The test driver talks to the cluster from the bridge's own address. Needs root (`make
test-multihost`; also part of `make test`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.runtime import roster
from actors.runtime.presence import ActorReady
from bus import Bus, find_nats_server, subjects
from bus.natsconf import NatsCluster, NatsServerConfig, cluster_routes
from tests.helpers import EventLog, run_flow, until
from tests.support.netns import Network

pytestmark = [pytest.mark.multihost, pytest.mark.timeout(420)]

HEARTBEAT_S = 1.0
FLOW = """
schema_version: "1.0"
flow: {name: fleet}
state:
  fields:
    topic: {type: str, required: true}
    noted: {type: str, default: ""}
    work: {type: str, default: ""}
    done: {type: str, default: ""}
nodes:
  - id: note
    prompt: "Note {state.topic} in the ledger"
    tools: [file_write]
    max_tool_calls: 2
    outputs: [noted]
    output_schema: {type: object, fields: [{name: noted, type: str}]}
  - {id: work, prompt: "Work on {state.topic}", outputs: [work],
     output_schema: {type: object, fields: [{name: work, type: str}]}}
  - {id: finish, prompt: "Finish {state.topic}", outputs: [done],
     output_schema: {type: object, fields: [{name: done, type: str}]}}
edges: [{from: START, to: note}, {from: note, to: work}, {from: work, to: finish}, {from: finish, to: END}]
config:
  execution: {max_retries: 2, timeout: 300}
"""
# The side effect: the `note` step appends one line to a ledger that both agents' workspaces share.
SCRIPT = {
    "note": [
        {
            "tool_calls": [
                {
                    "name": "file_write",
                    "arguments": {"path": "ledger.txt", "content": "{state.topic}\n", "mode": "append"},
                }
            ]
        },
        {"noted": "noted {state.topic}"},
    ]
}


@dataclass
class Cluster:
    net: Network
    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    url: str = ""
    bus: Bus | None = None
    ready: asyncio.Queue[ActorReady] = field(default_factory=asyncio.Queue)

    @property
    def ledger(self) -> Path:
        return self.root / "workspace" / "ledger.txt"

    def _nats(self, i: int) -> None:
        addresses = [self.net.hosts[f"nats{j}"].address for j in (1, 2, 3)]
        host = self.net.hosts[f"nats{i}"]
        conf = NatsServerConfig(
            server_name=f"nats{i}",
            host=host.address,
            store_dir=str(self.root / f"nats{i}"),
            cluster=NatsCluster(host=host.address, routes=cluster_routes(addresses)),
        )
        path = self.root / f"nats{i}.conf"
        path.write_text(conf.render())
        self.procs[f"nats{i}"] = self.net.run(f"nats{i}", [find_nats_server(), "-c", str(path)], env={}, log=f"nats{i}")

    async def start(self) -> None:
        self.net.start()
        for name in ("nats1", "nats2", "nats3", "control", "agent1", "agent2"):
            self.net.add_host(name)
        (self.root / "workspace").mkdir(parents=True)
        (self.root / "flows").mkdir()
        (self.root / "flows" / "fleet.yaml").write_text(FLOW)
        (self.root / "script.json").write_text(json.dumps(SCRIPT))
        for i in (1, 2, 3):
            self._nats(i)
        self.url = ",".join(f"nats://{self.net.hosts[f'nats{i}'].address}:4222" for i in (1, 2, 3))
        for i in (1, 2, 3):
            await until(lambda i=i: self.healthy(i), f"nats{i} serves JetStream", timeout_s=30)
        # The driver creates the streams first, with 3 replicas (every actor asks for 3 too).
        self.bus = await until(self._connect, "the cluster elects a JetStream leader", timeout_s=60, every_s=1)
        await self.bus.subscribe(subjects.SYS_READY, self._on_ready)
        for kind in ("registry", "llm-gateway", "scheduler"):
            extra = (
                ["--llm", "mock/300ms", "--mock-script", str(self.root / "script.json")]
                if kind == "llm-gateway"
                else []
            )
            await self.spawn("control", kind, ["actor", kind, "--flows", str(self.root / "flows"), *extra])
        for name in ("agent1", "agent2"):
            await self.agent(name)

    async def _connect(self) -> Bus | None:
        bus = Bus(self.url, name="driver", stream_replicas=3)
        try:
            return await bus.connect(timeout_s=5)
        except Exception:  # noqa: BLE001 - no JetStream leader yet (the error depends on the election's stage)
            await bus.close()
            return None

    async def _on_ready(self, msg: Any) -> None:
        await self.ready.put(ActorReady.model_validate_json(msg.data))

    def healthy(self, i: int) -> bool:
        address = self.net.hosts[f"nats{i}"].address
        try:
            with urllib.request.urlopen(f"http://{address}:8222/healthz?js-enabled-only=true", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stream_replicas(self, i: int) -> dict[str, int]:
        """Each stream's configured replicas and the peers that hold a copy, as server `i` reports them."""
        address = self.net.hosts[f"nats{i}"].address
        url = f"http://{address}:8222/jsz?streams=true&config=true"
        with urllib.request.urlopen(url, timeout=2) as r:
            accounts = json.load(r).get("account_details", [])
        streams = [s for a in accounts for s in a.get("stream_detail", [])]
        return {
            s["name"]: min(s["config"]["num_replicas"], 1 + len(s.get("cluster", {}).get("replicas", [])))
            for s in streams
        }

    def routes_of(self, i: int) -> set[str]:
        address = self.net.hosts[f"nats{i}"].address
        with urllib.request.urlopen(f"http://{address}:8222/routez", timeout=2) as r:
            return {route.get("remote_name", "") for route in json.load(r).get("routes", [])}

    async def spawn(self, host: str, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        env = {
            "CA_NATS_URL": self.url,
            "CA_STREAM_REPLICAS": "3",
            "CA_HEARTBEAT_S": str(HEARTBEAT_S),
            "CA_ACK_WAIT_S": "2",
            "CA_MAX_DELIVER": "20",
            "CA_LLM_TIMEOUT_S": "5",
            # One step at once per node and agent: the load queues up, so a new agent finds work waiting.
            "CA_MAX_CONCURRENCY": "1",
        }
        cmd = [sys.executable, "-m", "actors", *args, "--log-format", "json", "--log-level", "warning"]
        proc = self.net.run(host, cmd, env=env, log=name)
        self.procs[name] = proc
        async with asyncio.timeout(180):  # a loaded 2-core machine starts a process in a namespace slowly
            while (await self.ready.get()).pid != proc.pid:
                pass
        return proc

    async def agent(self, name: str) -> subprocess.Popen[bytes]:
        return await self.spawn(name, name, ["agent", "--name", name, "--workspace", str(self.root / "workspace")])

    async def live(self, name: str) -> bool:
        assert self.bus is not None
        rows = roster.listing(
            await roster.actors(self.bus), await roster.expected(self.bus), now=time.time(), heartbeat_s=HEARTBEAT_S
        )
        return any(r.get("id") == name and r.get("status") == "live" for r in rows)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    net = Network(tmp_path / "logs")
    c = Cluster(net, tmp_path)
    try:
        await c.start()
        yield c
    finally:
        if c.bus is not None:
            await c.bus.close()
        net.close()


def _once_each(ledger: Path, topics: list[str]) -> None:
    """The side effect of every run's `note` step happened at most once, and the run was recorded once."""
    lines = Counter(ledger.read_text().split()) if ledger.exists() else Counter()
    twice = {t: n for t, n in lines.items() if n > 1}
    assert twice == {}, f"steps applied twice: {twice}"
    assert set(lines) <= set(topics)


async def test_a_run_served_only_by_agents_on_other_hosts_completes(cluster: Cluster) -> None:
    assert cluster.bus is not None
    events = await EventLog().start(cluster.bus)
    result = await run_flow(cluster.bus, "fleet", {"topic": "remote"}, timeout_s=60)
    assert result["status"] == "succeeded", result
    assert [s["node"] for s in result["steps"]] == ["note", "work", "finish"]
    finished = await until(lambda: len(events.of("node.finished", result["run_id"])) == 3, "3 node.finished events")
    assert finished
    assert {e.sender for e in events.of("node.finished", result["run_id"])} <= {"agent1", "agent2"}
    replicas = cluster.stream_replicas(1)
    assert {"CA_TRIGGERS", "CA_WORK", "CA_CTL", "CA_EVENTS", "KV_ca_runs"} <= set(replicas)
    assert set(replicas.values()) == {3}, replicas
    assert cluster.ledger.read_text() == "remote\n"


async def test_an_agent_cut_off_mid_run_loses_its_work_to_the_other_and_rejoins_when_its_link_is_back(
    cluster: Cluster,
) -> None:
    assert cluster.bus is not None
    events = await EventLog().start(cluster.bus)
    topics = [f"cut{i}" for i in range(8)]
    runs = [asyncio.create_task(run_flow(cluster.bus, "fleet", {"topic": t}, timeout_s=120)) for t in topics]
    await until(lambda: any(e.sender == "agent1" for e in events.of("node.started")), "agent1 works")
    cluster.net.link_down("agent1")
    cut_at = len(events.of("node.finished"))
    results = await asyncio.gather(*runs)
    assert [r["status"] for r in results] == ["succeeded"] * len(topics)
    assert all([s["node"] for s in r["steps"]] == ["note", "work", "finish"] for r in results)
    finished_after = [e for e in events.of("node.finished")[cut_at:] if e.sender == "agent2"]
    assert finished_after, "agent2 took over no work"
    _once_each(cluster.ledger, topics)
    await until(lambda: _not_live(cluster, "agent1"), "the registry sees agent1 gone", timeout_s=30)
    cluster.net.link_up("agent1")
    await until(lambda: cluster.live("agent1"), "agent1 is live again", timeout_s=60)
    after = await run_flow(cluster.bus, "fleet", {"topic": "after"}, timeout_s=60)
    assert after["status"] == "succeeded"


async def _not_live(cluster: Cluster, name: str) -> bool:
    return not await cluster.live(name)


async def test_a_nats_node_killed_under_load_loses_no_trigger_and_rejoins(cluster: Cluster) -> None:
    assert cluster.bus is not None
    events = await EventLog().start(cluster.bus)
    topics = [f"load{i}" for i in range(20)]
    runs = [asyncio.create_task(run_flow(cluster.bus, "fleet", {"topic": t}, timeout_s=180)) for t in topics]
    await until(lambda: len(events.of("node.finished")) >= 5, "the load is under way")
    cluster.procs["nats2"].kill()
    cluster.procs["nats2"].wait()
    results = await asyncio.gather(*runs)
    assert [r["status"] for r in results] == ["succeeded"] * len(topics)
    assert len({r["run_id"] for r in results}) == len(topics)
    _once_each(cluster.ledger, topics)
    cluster._nats(2)
    await until(lambda: cluster.healthy(2), "nats2 is back with JetStream", timeout_s=60)
    await until(lambda: {"nats1", "nats3"} <= cluster.routes_of(2), "nats2 routes to both others", timeout_s=60)
    again = await run_flow(cluster.bus, "fleet", {"topic": "rejoined"}, timeout_s=60)
    assert again["status"] == "succeeded"


async def test_a_new_agent_host_added_under_load_takes_work(cluster: Cluster) -> None:
    assert cluster.bus is not None
    events = await EventLog().start(cluster.bus)
    topics = [f"grow{i}" for i in range(60)]
    runs = [asyncio.create_task(run_flow(cluster.bus, "fleet", {"topic": t}, timeout_s=240)) for t in topics]
    await until(lambda: len(events.of("node.finished")) >= 3, "the load is under way")
    cluster.net.add_host("agent3")
    await cluster.agent("agent3")
    joined = time.monotonic()
    assert len(events.of("run.finished")) < len(topics), "the load ended before agent3 was ready: make it longer"
    first = await until(
        lambda: next((e for e in events.of("node.started") if e.sender == "agent3"), None), "agent3 takes work"
    )
    took = time.monotonic() - joined
    assert await cluster.live("agent3")
    results = await asyncio.gather(*runs)
    assert [r["status"] for r in results] == ["succeeded"] * len(topics)
    _once_each(cluster.ledger, topics)
    print(f"agent3 started a step {took:.2f}s after the driver saw it ready (heartbeat {HEARTBEAT_S}s): {first.run_id}")
