"""The chaos harness: a 5-node flow whose every step appends to a file, actor processes to kill, and the tally.

Each node is an agent step that calls ``file_write`` (append) once through the stateless fake LLM
(`tests.fakes.chaos_llm`), so ``effects.log`` holds one line per step *executed*: a line seen twice is a
step applied twice, a missing line a step lost. Runs are started by publishing triggers with a
``Nats-Msg-Id`` (their idempotency key), and re-published by the client when no run shows up for one
(a publish can be lost while a server restarts); completion is read from the run records in KV.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from actors.runtime.runs import RunRecord, RunStore
from actors.scheduler.messages import TriggerInputs
from bus import Bus, EmbeddedNats, Role, subjects, topology
from tests.fakes import chaos_llm
from tests.fakes.chaos_llm import EFFECTS
from tests.helpers import Actors

FLOW_NAME = "chaos_five"
MODEL = "openai/gpt-4o-mini"
KEY_ENV = "CA_CHAOS_FAKE_KEY"
NODES = ("n1", "n2", "n3", "n4", "n5")
KILLABLE = ("worker", "scheduler", "llm-gateway", "memory", "observer", "registry")


def write_flow(directory: Path, api_base: str) -> Path:
    """The 5-node flow, each node one side effect (a ``file_write`` append) and one output."""
    nodes = "\n".join(
        f"  - id: {node}\n"
        f'    prompt: "Step {node} of {{state.text}}"\n'
        "    tools: [file_write]\n"
        "    max_tool_calls: 1\n"
        "    timeout_s: 10\n"
        f"    outputs: [{node}_out]\n"
        f"    output_schema: {{type: object, fields: [{{name: {node}_out, type: str}}]}}"
        for node in NODES
    )
    fields = "\n".join(f"    {node}_out: {{type: str, default: ''}}" for node in NODES)
    chain = ["START", *NODES, "END"]
    edges = "\n".join(f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(chain))
    text = (
        'schema_version: "1.0"\n'
        f"flow: {{name: {FLOW_NAME}}}\n"
        "state:\n  fields:\n    text: {type: str, required: true}\n"
        f"{fields}\n"
        f"nodes:\n{nodes}\n"
        f"edges:\n{edges}\n"
        "config:\n"
        f"  llm: {{model: {MODEL}, api_base: '{api_base}', api_key_env: {KEY_ENV}}}\n"
        "  execution: {max_retries: 20}\n"
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{FLOW_NAME}.yaml"
    path.write_text(text)
    return path


def actor_env(tmp: Path) -> dict[str, str]:
    """What every actor process of the harness gets: its own data dir and workspace, the fake's key."""
    workspace = tmp / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    return {
        "CA_DATA_DIR": str(tmp / "data"),
        "CA_TOOL_WORKSPACE": str(workspace),
        KEY_ENV: "sk-chaos-fake-0123456789abcdef",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # A stack that loses a process every few seconds redelivers a step more often than a healthy one.
        "CA_MAX_DELIVER": "30",
    }


@dataclass
class Kill:
    kind: str
    signal: str
    at: float
    recovery_s: float  # from the kill to the replacement's ready announcement


@dataclass
class Tally:
    """What a chaos scenario measured."""

    runs: int
    completed: int = 0
    failed: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # triggers with no run at all
    extra_runs: int = 0  # runs beyond one per trigger
    duplicate_effects: dict[str, int] = field(default_factory=dict)  # effect line -> times applied (> 1)
    missing_effects: int = 0  # effects of completed runs never applied
    republished: int = 0
    kills: list[Kill] = field(default_factory=list)
    took_s: float = 0.0

    def line(self) -> str:
        recovery = sorted(k.recovery_s for k in self.kills)
        worst = f"{recovery[-1]:.1f}" if recovery else "-"
        median = f"{recovery[len(recovery) // 2]:.1f}" if recovery else "-"
        return (
            f"runs {self.runs}, completed {self.completed}, failed {len(self.failed)}, lost {len(self.lost)}, "
            f"extra runs {self.extra_runs}, duplicate effects {sum(v - 1 for v in self.duplicate_effects.values())}, "
            f"missing effects {self.missing_effects}, kills {len(self.kills)} "
            f"(recovery median {median} s, worst {worst} s), republished {self.republished}, took {self.took_s:.1f} s"
        )


class ChaosStack:
    """Actor processes by kind (started with `Actors`), and the loops that break them."""

    def __init__(self, actors: Actors, workspace: Path) -> None:
        self.actors = actors
        self.workspace = workspace
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.kills: list[Kill] = []
        self._lock = asyncio.Lock()

    async def start(self, kind: str) -> subprocess.Popen[bytes]:
        async with self._lock:  # one start at a time: `Actors.spawn` pairs the next announcement with it
            proc = await self.actors.start(kind)
        self.procs.setdefault(kind, []).append(proc)
        return proc

    async def start_all(self, kinds: tuple[str, ...]) -> None:
        """Start one process per entry of `kinds` at once (a kind listed twice runs twice)."""
        # On a server with logins only the scheduler creates the streams and buckets: it goes first.
        first = [k for k in kinds if k == "scheduler"][:1]
        rest = list(kinds)
        for kind in first:
            rest.remove(kind)
        async with self._lock:
            procs = await self.actors.start_many(first) if first else []
            procs += await self.actors.start_many(rest)
        for kind, proc in zip([*first, *rest], procs, strict=True):
            self.procs.setdefault(kind, []).append(proc)

    async def kill_and_restart(self, kind: str, rng: random.Random) -> None:
        alive = [p for p in self.procs.get(kind, []) if p.poll() is None]
        if not alive:
            return
        victim = rng.choice(alive)
        killed_at = time.monotonic()
        self.actors.kill(victim)
        self.procs[kind].remove(victim)
        await self.start(kind)
        self.kills.append(Kill(kind, "SIGKILL", killed_at, time.monotonic() - killed_at))

    async def kill_loop(self, stop: asyncio.Event, *, every_s: float, kinds: tuple[str, ...], seed: int) -> None:
        """Until `stop`: every `every_s` (± 50 %), SIGKILL an actor and start another; the kinds come in a
        random order that is shuffled again after each round, so every kind is hit as often."""
        rng = random.Random(seed)
        order: list[str] = []
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s * rng.uniform(0.5, 1.5))
            except TimeoutError:
                if not order:
                    order = list(kinds)
                    rng.shuffle(order)
                await self.kill_and_restart(order.pop(), rng)

    async def kill_each(self, kinds: tuple[str, ...], *, pause_s: float, seed: int) -> None:
        """SIGKILL (and restart) one actor of each kind in turn, `pause_s` after the previous one is back."""
        rng = random.Random(seed)
        for kind in kinds:
            await asyncio.sleep(pause_s)
            await self.kill_and_restart(kind, rng)

    def freeze(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGSTOP)

    def thaw(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGCONT)


class Load:
    """Triggers published with idempotency keys, re-published when no run appears for them."""

    def __init__(self, bus: Bus, runs: int, *, prefix: str) -> None:
        self.bus = bus
        self.texts = [f"{prefix}-{i}" for i in range(runs)]
        self.sent_at: dict[str, float] = {}
        self.republished = 0

    async def send(self, text: str) -> None:
        headers = {"Nats-Msg-Id": f"trigger-{text}"}
        await self.bus.send(subjects.trigger(FLOW_NAME), TriggerInputs({"text": text}), headers=headers)
        self.sent_at[text] = time.monotonic()

    async def publish(self, *, every_s: float = 0.0) -> None:
        for text in self.texts:
            try:
                await self.send(text)
            except Exception:  # noqa: BLE001 - the server is away: `settle` publishes it again
                self.sent_at[text] = time.monotonic()
            if every_s:
                await asyncio.sleep(every_s)

    async def records(self) -> dict[str, list[RunRecord]] | None:
        """The run records of this load's triggers, by input text; None when they cannot be read now."""
        by_text: dict[str, list[RunRecord]] = {}
        try:
            records = await RunStore(self.bus.kv(topology.RUNS)).list()
        except Exception:  # noqa: BLE001 - a server restart in progress: ask again
            return None
        for record in records:
            text = (record.inputs or {}).get("text") if isinstance(record.inputs, dict) else None
            if record.flow == FLOW_NAME and text in self.sent_at:
                by_text.setdefault(text, []).append(record)
        return by_text

    async def settle(self, *, timeout_s: float, republish_after_s: float = 15.0) -> dict[str, list[RunRecord]]:
        """Wait until every trigger has a finished run, re-publishing (same key) those that have none."""
        deadline = time.monotonic() + timeout_s
        found: dict[str, list[RunRecord]] = {}
        while True:
            read = await self.records()
            if not read:  # not readable right now (an empty listing too, mid-restart): no reason to publish again
                await asyncio.sleep(1.0)
                continue
            found = read
            done = [
                t for t in self.texts if any(r.status in ("succeeded", "failed", "rejected") for r in found.get(t, []))
            ]
            if len(done) == len(self.texts) or time.monotonic() > deadline:
                return found
            now = time.monotonic()
            for text in self.texts:
                if text not in found and now - self.sent_at.get(text, now) > republish_after_s:
                    self.republished += 1
                    try:
                        await self.send(text)
                    except Exception:  # noqa: BLE001 - try again on the next round
                        continue
            await asyncio.sleep(1.0)


def effects(workspace: Path) -> Counter[str]:
    path = workspace / EFFECTS
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def tally(load: Load, found: dict[str, list[RunRecord]], workspace: Path, kills: list[Kill], took_s: float) -> Tally:
    result = Tally(runs=len(load.texts), kills=list(kills), republished=load.republished, took_s=took_s)
    applied = effects(workspace)
    for text in load.texts:
        records = found.get(text, [])
        if not records:
            result.lost.append(text)
            continue
        result.extra_runs += len(records) - 1
        if any(r.status == "succeeded" for r in records):
            result.completed += 1
            result.missing_effects += sum(1 for node in NODES if applied[f"Step {node} of {text}"] == 0)
        else:
            result.failed.append(f"{text}: {records[0].status} {records[0].error}")
    result.duplicate_effects = {line: n for line, n in applied.items() if n > 1}
    return result


def report(name: str, result: Tally, path: Path | None = None) -> None:
    """Print the figures (pytest -s shows them) and append them, as JSON, to `path` if given."""
    print(f"\nchaos {name}: {result.line()}")
    if path is not None:
        with path.open("a") as fh:
            fh.write(json.dumps({"scenario": name, "summary": result.line(), "failed": result.failed[:5]}) + "\n")


STACK = ("scheduler", "llm-gateway", "worker", "worker", "memory", "observer", "registry")


@dataclass
class Harness:
    bus: Bus
    nats: EmbeddedNats
    stack: ChaosStack
    workspace: Path


@asynccontextmanager
async def harness(nats: EmbeddedNats, tmp: Path, *, latency_s: float = 0.1) -> AsyncIterator[Harness]:
    """The fake LLM, a client bus and the whole stack (two workers) as OS processes, stopped at the end."""
    with chaos_llm.serve(latency_s=latency_s) as llm:
        flows = write_flow(tmp / "flows", llm.api_base).parent
        env = actor_env(tmp)
        async with Bus(nats.url, name="chaos-client", credentials=nats.credentials(Role.ADMIN)) as bus:
            actors = Actors(bus, nats.url, flows, MODEL, heartbeat_s=1.0, env=env, auth_file=nats.auth_file)
            await actors.listen()
            stack = ChaosStack(actors, Path(env["CA_TOOL_WORKSPACE"]))
            try:
                await stack.start_all(STACK)
                yield Harness(bus, nats, stack, stack.workspace)
            finally:
                actors.stop_all()


async def kill_scenario(
    h: Harness,
    runs: int,
    *,
    settle_s: float,
    every_s: float = 2.5,
    seed: int = 18,
    sequence: tuple[str, ...] | None = None,
    publish_every_s: float = 0.2,
) -> Tally:
    """`runs` runs while a random actor is SIGKILLed (and restarted) every `every_s` on average, or, with
    `sequence`, one actor of each kind listed in turn (`every_s` after the previous one is back)."""
    load = Load(h.bus, runs, prefix="kill")
    stop = asyncio.Event()
    started = time.monotonic()
    kills_before = len(h.stack.kills)
    if sequence is None:
        breaking = h.stack.kill_loop(stop, every_s=every_s, kinds=KILLABLE, seed=seed)
    else:
        breaking = h.stack.kill_each(sequence, pause_s=every_s, seed=seed)
    killer = asyncio.create_task(breaking)
    try:
        await load.publish(every_s=publish_every_s)
        found = await load.settle(timeout_s=settle_s)
    finally:
        stop.set()
        await killer
    return tally(load, found, h.workspace, h.stack.kills[kills_before:], time.monotonic() - started)


async def freeze_scenario(h: Harness, runs: int, *, settle_s: float, frozen_s: float = 3.0) -> Tally:
    """`runs` runs while one of the two workers is SIGSTOPped for `frozen_s` (past ack_wait), then SIGCONTed."""
    load = Load(h.bus, runs, prefix="freeze")
    started = time.monotonic()
    frozen = h.stack.procs["worker"][0]
    await load.publish(every_s=0.05)
    await asyncio.sleep(1.0)  # steps in flight on both workers
    h.stack.freeze(frozen)
    await asyncio.sleep(frozen_s)
    h.stack.thaw(frozen)
    found = await load.settle(timeout_s=settle_s)
    return tally(load, found, h.workspace, [], time.monotonic() - started)


async def restart_scenario(h: Harness, runs: int, *, settle_s: float, down_s: float = 1.0) -> tuple[Tally, float]:
    """`runs` triggers published every 0.1 s while nats-server is stopped and started again halfway;
    returns the tally and how long the server was away."""
    load = Load(h.bus, runs, prefix="restart")
    started = time.monotonic()
    publishing = asyncio.create_task(load.publish(every_s=0.1))
    await asyncio.sleep(runs * 0.05)
    down_at = time.monotonic()
    await h.nats.close()
    await asyncio.sleep(down_s)
    await h.nats.start()
    away = time.monotonic() - down_at
    await publishing
    found = await load.settle(timeout_s=settle_s)
    return tally(load, found, h.workspace, [], time.monotonic() - started), away


def assert_clean(result: Tally, runs: int) -> None:
    """Every trigger made exactly one run, every run succeeded, every step applied exactly once."""
    assert result.lost == []
    assert result.extra_runs == 0
    assert result.failed == []
    assert result.completed == runs
    assert result.duplicate_effects == {}
    assert result.missing_effects == 0
