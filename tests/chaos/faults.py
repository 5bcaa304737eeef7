"""Faults that hit work in flight, measured as a user meets them: `make chaos-faults`.

A local OpenAI-compatible provider (the real litellm path) answers each call in 1 s and counts the
calls; 60 runs of a 3-step chain start at once on 2 workers, every actor its own process, on the
default settings (AckWait 5 s); a fault hits one second in. Per fault it prints: runs succeeded,
failed, missing and started twice, seconds from the fault's end to the last run's end, provider calls
repeated, triggers answered, and the journal's size.

    .venv/bin/python -m tests.chaos.faults [--runs 60] [--only worker_kill,nats_term]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from nats.aio.msg import Msg

from actors.cli.console import request_run
from actors.runtime.journal import Journal
from actors.runtime.presence import ActorReady
from actors.runtime.runs import FINAL_STATUSES, RunRecord
from actors.scheduler.actor import IDEMPOTENCY_HEADER
from actors.scheduler.messages import TriggerInputs
from bus import Bus, EmbeddedNats, Role, subjects, topology
from configs.errors import CaActorsError
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = "CA_FAULTS_FAKE_KEY"

FLOW = """\
schema_version: "1.0"
flow: {{name: chain3, description: Three steps of about one second each (a provider's latency)}}
config:
  llm: {{model: openai/gpt-4o-mini, api_base: "{api_base}", api_key_env: {key_env}, timeout: 60}}
state:
  fields:
    topic: {{type: str, required: true}}
    a: {{type: str, default: ""}}
    b: {{type: str, default: ""}}
    c: {{type: str, default: ""}}
nodes:
  - id: s1
    prompt: "One on {{state.topic}}"
    outputs: [a]
    output_schema: {{type: object, fields: [{{name: a, type: str}}]}}
  - id: s2
    prompt: "Two on {{state.a}}"
    outputs: [b]
    output_schema: {{type: object, fields: [{{name: b, type: str}}]}}
  - id: s3
    prompt: "Three on {{state.b}}"
    outputs: [c]
    output_schema: {{type: object, fields: [{{name: c, type: str}}]}}
edges:
  - {{from: START, to: s1}}
  - {{from: s1, to: s2}}
  - {{from: s2, to: s3}}
  - {{from: s3, to: END}}
"""
STEPS = 3


@dataclass
class Figures:
    fault: str
    runs: int
    succeeded: int
    failed: int
    missing: int
    started_twice: int
    recovery_s: float | None
    provider_calls: int
    repeated_calls: int
    triggers_answered: int
    journal_entries: int
    journal_bytes: int


class Stack:
    """A nats-server and every actor as its own process, each restartable, on the default settings."""

    def __init__(self, workdir: Path, flows: Path) -> None:
        self.workdir = workdir
        self.flows = flows
        self.nats = EmbeddedNats(workdir / "nats")
        self.procs: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._ready: asyncio.Queue[ActorReady] = asyncio.Queue()
        self.bus: Bus | None = None

    async def start(self, workers: int) -> Bus:
        await self.nats.start()
        self.bus = await Bus(
            self.nats.url, name="faults-client", credentials=self.nats.credentials(Role.ADMIN)
        ).connect()

        async def on_ready(msg: Msg) -> None:
            await self._ready.put(ActorReady.model_validate_json(msg.data))

        await self.bus.subscribe(subjects.SYS_READY, on_ready)
        for kind in ("scheduler", "llm-gateway", "registry", "observer", *["worker"] * workers):
            await self.spawn(kind)
        return self.bus

    async def spawn(self, kind: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-P", "-m", "actors", "actor", kind, "--nats", self.nats.url, "--flows", str(self.flows)]
        cmd += ["--log-format", "json", "--log-level", "warning"]
        env = {
            **os.environ,
            KEY_ENV: "sk-fake",
            "CA_DATA_DIR": str(self.workdir),
            "CA_LLM_PROVIDER_CONCURRENCY": "128",
        }
        if self.nats.auth_file is not None:  # each actor logs in as its own role
            env["CA_NATS_AUTH_FILE"] = str(self.nats.auth_file)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        with (logs / f"{kind}-{len(self.procs.get(kind, []))}.jsonl").open("ab") as sink:
            proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stderr=sink)  # noqa: ASYNC220
        self.procs.setdefault(kind, []).append(proc)
        async with asyncio.timeout(60):
            while (await self._ready.get()).pid != proc.pid:
                pass
        return proc

    def live(self, kind: str) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs.get(kind, []) if p.poll() is None]

    async def restart(self, kind: str) -> None:
        """SIGKILL one live actor of `kind` and start another, as `up` does."""
        victim = random.choice(self.live(kind))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        await self.spawn(kind)

    async def server_down(self, sig: signal.Signals, down_s: float) -> None:
        proc = self.nats._proc  # the harness owns this server
        assert proc is not None
        proc.send_signal(sig)
        proc.wait()
        await asyncio.sleep(down_s)
        self.nats = EmbeddedNats(self.workdir / "nats", port=self.nats.port)
        await self.nats.start()

    async def close(self) -> None:
        for procs in self.procs.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if self.bus is not None:
            await self.bus.close()
        await self.nats.close()


async def _worker_kill(stack: Stack) -> None:
    for _ in range(6):  # every 2 s for 12 s
        await stack.restart("worker")
        await asyncio.sleep(2.0)


async def _worker_stop(stack: Stack) -> None:
    frozen = stack.live("worker")[0]
    frozen.send_signal(signal.SIGSTOP)
    await asyncio.sleep(25.0)
    frozen.send_signal(signal.SIGCONT)


async def _nats_term(stack: Stack) -> None:
    await stack.server_down(signal.SIGTERM, 5.0)


async def _nats_kill(stack: Stack) -> None:
    await stack.server_down(signal.SIGKILL, 5.0)


async def _control_kills(stack: Stack) -> None:
    for kind in ("scheduler", "llm-gateway", "observer", "registry"):
        await stack.restart(kind)
        await asyncio.sleep(1.0)


async def _none(stack: Stack) -> None:
    """No fault: the baseline the others compare with."""


# The fault, and when recovery is measured from: the fault's end, or (a stall) its start.
FAULTS: dict[str, tuple[Callable[[Stack], Awaitable[None]], bool]] = {
    "none": (_none, False),
    "worker_kill": (_worker_kill, False),
    "worker_stop": (_worker_stop, True),
    "nats_term": (_nats_term, False),
    "nats_kill": (_nats_kill, False),
    "control_kills": (_control_kills, False),
}


async def measure(fault: str, *, runs: int = 60, workers: int = 2, deadline_s: float = 240.0) -> Figures:
    """Run `runs` runs under `fault` and count what happened to them."""
    act, from_start = FAULTS[fault]
    keep = os.environ.get("CA_FAULTS_KEEP")  # a folder: keep each fault's actor logs there
    with tempfile.TemporaryDirectory(prefix="ca-faults-") as tmp, FakeOpenAI(latency_s=1.0) as fake:
        fake.default_content = json.dumps({"a": "x", "b": "y", "c": "z"})
        workdir = Path(keep) / fault if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        flows = workdir / "chain3.yaml"
        flows.write_text(FLOW.format(api_base=fake.api_base, key_env=KEY_ENV))
        stack = Stack(workdir, flows)
        try:
            bus = await stack.start(workers)
            answers: dict[str, str | None] = {}

            async def trigger(n: int) -> None:
                key = f"faults-{n}"
                headers = {IDEMPOTENCY_HEADER: key}
                try:
                    answer = await request_run(
                        bus, subjects.trigger("chain3"), TriggerInputs({"topic": f"t{n}"}), headers, tries=8
                    )
                    answers[key] = answer.run_id
                except CaActorsError:
                    answers[key] = None

            load = asyncio.gather(*(trigger(n) for n in range(runs)))
            await asyncio.sleep(1.0)
            started = time.time()
            await act(stack)
            fault_mark = started if from_start else time.time()
            await load
            records = await _wait_for_runs(bus, deadline_s)
            journal = await Journal(bus.kv(topology.JOURNAL)).size()
        finally:
            await stack.close()
        ours = [r for r in records if r.flow == "chain3"]
        by_topic: dict[str, int] = {}
        for record in ours:
            topic = str((record.inputs or {}).get("topic"))
            by_topic[topic] = by_topic.get(topic, 0) + 1
        succeeded = sum(r.status == "succeeded" for r in ours)
        ends = [r.finished_at for r in ours if r.finished_at]
        return Figures(
            fault=fault,
            runs=runs,
            succeeded=succeeded,
            failed=sum(r.status in FINAL_STATUSES and r.status != "succeeded" for r in ours),
            missing=runs - len(by_topic),
            started_twice=sum(count > 1 for count in by_topic.values()),
            recovery_s=round(max(ends) - fault_mark, 1) if ends else None,
            provider_calls=len(fake.requests),
            repeated_calls=len(fake.requests) - STEPS * succeeded,
            triggers_answered=sum(v is not None for v in answers.values()),
            journal_entries=journal[0],
            journal_bytes=journal[1],
        )


async def _wait_for_runs(bus: Bus, deadline_s: float) -> list[RunRecord]:
    """Every run record once none is running (or at the deadline)."""
    kv = bus.kv(topology.RUNS)
    end = time.monotonic() + deadline_s
    while True:
        try:
            keys = await kv.keys()
        except Exception:  # noqa: BLE001 - no keys yet, or the server is coming back
            keys = []
        records = []
        for key in keys:
            entry = await kv.get(key)
            if entry.value:
                records.append(RunRecord.model_validate_json(entry.value))
        if (records and all(r.status in FINAL_STATUSES for r in records)) or time.monotonic() > end:
            return records
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--only", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [asyncio.run(measure(name, runs=args.runs)) for name in args.only.split(",")]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    columns = ("ok", 4), ("fail", 4), ("miss", 4), ("twice", 5), ("recov_s", 7), ("calls", 5), ("repeat", 6)
    print(f"{'fault':14} " + " ".join(f"{name:>{width}}" for name, width in columns) + f" {'answered':>8}")
    for r in rows:
        print(
            f"{r.fault:14} {r.succeeded:>4} {r.failed:>4} {r.missing:>4} {r.started_twice:>5} "
            f"{r.recovery_s if r.recovery_s is not None else '-':>7} {r.provider_calls:>5} {r.repeated_calls:>6} "
            f"{r.triggers_answered:>4}/{r.runs:<3}"
        )


if __name__ == "__main__":
    main()
