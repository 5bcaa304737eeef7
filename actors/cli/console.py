"""What the CLI shows: live progress of a run, results, run lists; and finding the running stack."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from actors.cli.options import refuse_password_in
from actors.flow import load_flows
from actors.flow.plan import Plan
from actors.launch import stackfile
from actors.llm import MockScript
from actors.runtime import roster as registry
from actors.runtime.follow import events, final_record
from actors.runtime.presence import ActorInfo, DrainAnswer
from actors.runtime.runs import RunRecord, RunStore
from actors.scheduler.actor import IDEMPOTENCY_HEADER, SESSION_HEADER, SOURCE_HEADER
from actors.scheduler.messages import RunAnswer, RunCommand, TriggerInputs
from actors.tracking import prompt_fetcher
from bus import (
    BadReplyError,
    Bus,
    DeadLetter,
    Empty,
    Event,
    LLMFinishedData,
    LogData,
    NodeFailedData,
    NodeFinishedData,
    NodeRetryData,
    NodeStartedData,
    NoResponderError,
    RequestTimeoutError,
    Role,
    RunEndData,
    RunRejectedData,
    RunStartedData,
    ToolCalledData,
    ToolFinishedData,
    new_id,
    subjects,
    topology,
)
from bus.auth import AUTH_FILE
from configs import Settings, closest
from store import MemoryRecord, RunHistory, open_store

T = TypeVar("T")


def stack_url(explicit: str | None, data_dir: Path) -> Settings:
    """How to reach the stack: the NATS URL (`--nats`/CA_NATS_URL, else the one `up` wrote in its data dir)
    and how to log in (CA_NATS_* credentials, else the data dir's generated ``cli`` user when that URL is
    its stack's)."""
    refuse_password_in(explicit, "--nats", "CA_NATS_URL")
    url = explicit or stackfile.read_url(data_dir)
    if url is None:
        typer.echo(
            f"no running stack found ({data_dir / stackfile.STACK_FILE} missing): start one with `ca-actors up` "
            "or pass --nats URL",
            err=True,
        )
        raise typer.Exit(2)
    return with_local_login(Settings.from_env(data_dir=data_dir, nats_url=url), data_dir)


def with_local_login(settings: Settings, data_dir: Path) -> Settings:
    """`settings` logging in with the users of the stack running from `data_dir` when they name its
    embedded server and no other credentials (CA_NATS_*)."""
    record = stackfile.read(data_dir) or {}
    auth = data_dir / AUTH_FILE
    logs_in = settings.nats_user or settings.nats_token or settings.nats_creds or settings.nats_nkey
    own_server = settings.nats_url == record.get("nats_url") and record.get("embedded") is True
    if own_server and not logs_in and settings.nats_auth_file is None and auth.exists():
        return settings.model_copy(update={"nats_auth_file": auth})
    return settings


def check_mock_script(file: Path, flow_nodes: dict[Path, set[str]]) -> bool:
    """Validate a mock script (and, when its flow ``<name>.yaml`` was validated too, its node ids);
    print the verdict. Returns True when it has a problem."""
    try:
        script = MockScript.load(file)
    except (OSError, ValueError) as exc:
        typer.echo(f"{file}: error: {exc}", err=True)
        return True
    known = flow_nodes.get(file.with_name(file.name.removesuffix(".yml").removesuffix(".yaml").removesuffix(".mock")))
    unknown = sorted(set(script.nodes) - known) if known is not None else []
    for node in unknown:
        hint = closest(node, sorted(known or ()))
        typer.echo(
            f"{file}: error: {node!r} is not a node of its flow" + (f" (did you mean {hint!r}?)" if hint else ""),
            err=True,
        )
    if unknown:
        return True
    typer.echo(f"ok  {file}: mock script for {len(script.nodes)} node(s)")
    return False


def load_plan(file: Path, *, mlflow_uri: str) -> Plan:
    """The plan of one flow file; its warnings and errors are printed, and errors exit with code 2."""
    flow_set = load_flows([file], fetch_prompts=prompt_fetcher(mlflow_uri))
    for warning in flow_set.warnings:
        typer.echo(str(warning), err=True)
    if flow_set.errors:
        for error in flow_set.errors:
            typer.echo(error, err=True)
        raise typer.Exit(2)
    return flow_set.plans[0]


async def with_client(target: Settings, body: Callable[[Bus], Awaitable[T]]) -> T:
    """Run `body` with a client connection (the ``cli`` role) to the stack `target` names."""
    async with Bus.of(target, Role.CLI, name="ca-actors-cli") as bus:
        return await body(bus)


async def request_run(
    bus: Bus, subject: str, inputs: TriggerInputs, headers: dict[str, str], *, tries: int = 3
) -> RunAnswer:
    """Ask for a run, asking again under the same idempotency key while nobody answers."""
    attempt = 1
    while True:
        try:
            return await bus.request(subject, inputs, RunAnswer, timeout_s=15, headers=headers)
        except (NoResponderError, RequestTimeoutError):
            if attempt >= tries:
                raise
        await asyncio.sleep(0.5 * attempt)
        attempt += 1


async def trigger_and_wait(
    bus: Bus,
    flow: str,
    inputs: dict[str, Any],
    *,
    wait: bool,
    timeout_s: float | None,
    progress: bool,
    source: str = "cli",
    session: str | None = None,
    key: str | None = None,
) -> dict[str, Any] | None:
    """Start a run by request; with `wait`, follow its events and return its result.

    The trigger carries an idempotency key (`key`, else a new one): a request that went unanswered
    (a NATS restart, a scheduler starting) is sent again with it, and starts no second run.
    """
    try:
        subject = subjects.trigger(flow)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        return None
    headers = {SOURCE_HEADER: source, IDEMPOTENCY_HEADER: key or new_id()}
    if session:
        headers[SESSION_HEADER] = session
    try:
        answer = await request_run(bus, subject, TriggerInputs(inputs), headers)
    except (NoResponderError, RequestTimeoutError):
        typer.echo("no scheduler answered: is the stack running (`ca-actors up`)?", err=True)
        return None
    except BadReplyError as exc:
        typer.echo(f"trigger failed: {exc}", err=True)
        return None
    if answer.run_id is None:
        typer.echo(f"trigger failed: {answer.error}", err=True)
        return None
    if not wait:
        return answer.model_dump()
    run_id = answer.run_id
    printer = Progress(enabled=progress)
    try:
        async for event in events(bus, run_id, timeout_s=timeout_s):
            printer.show(event)
    except TimeoutError as exc:
        typer.echo(str(exc), err=True)
    return (await final_record(bus, run_id)).result()


async def list_runs(bus: Bus) -> list[RunRecord]:
    return await RunStore(bus.kv(topology.RUNS)).list()


async def dead_letters(bus: Bus, run_id: str) -> list[DeadLetter]:
    """The dead-lettered work items of a run, oldest first."""
    async with bus.replay(subjects.dead_letters(run_id), DeadLetter) as replay:
        # Most runs have none: a short silence says so.
        return await replay.stored(timeout_s=10.0, idle_s=0.3)


async def show_run(bus: Bus, run_id: str) -> dict[str, Any] | None:
    """A run's summary (`run_summary`) with its dead letters, or None when there is no such run."""
    record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
    if record is None:
        return None
    letters = await dead_letters(bus, run_id)
    return run_summary(record) | {
        "dead_letters": [
            {"node": d.node, "step_id": d.step_id, "error": d.error, "state": d.work.state, "item": d.work.item}
            for d in letters
        ],
    }


def print_run_details(details: dict[str, Any]) -> None:
    print_result(details, as_json=False)
    typer.echo(f"steps ({len(details['steps'])}):")
    for step in details["steps"]:
        where = f"{step['node']}[{step['iteration']}.{step['index']}]"
        typer.echo(f"  {where:30} {step['status']:10} {step['duration_ms']:>10.1f} ms")
    for letter in details["dead_letters"]:
        typer.echo(f"dead letter: {letter['step_id']}: {letter['error']}")


async def cancel_run(bus: Bus, run_id: str) -> dict[str, Any]:
    try:
        answer = await bus.request(subjects.run_cmd(run_id), RunCommand(cmd="cancel"), RunAnswer, timeout_s=10)
    except (NoResponderError, RequestTimeoutError):
        return {"error": "no scheduler answered"}
    return answer.model_dump()


class Progress:
    """One line per event on stderr while a run goes on (only on a terminal)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._t0 = time.perf_counter()

    def show(self, event: Event) -> None:
        if not self.enabled:
            return
        at = f"{time.perf_counter() - self._t0:7.2f}s"
        where = event.node or ""
        match event.data:
            case NodeStartedData():
                line = f"  ▶ {where}"
            case NodeFinishedData(duration_ms=duration_ms):
                line = f"  ✓ {where}  {duration_ms or 0:.1f} ms"
            case NodeRetryData(attempt=attempt, error=error):
                line = f"  ↻ {where}  attempt {attempt}: {error[:120]}"
            case NodeFailedData(error=error):
                line = f"  ✗ {where}  {error}"
            case LogData(level=level, message=message):
                line = f"  · {where}  {level}: {message}"
            case RunStartedData():
                line = f"run {event.run_id} of {event.flow} started"
            case RunEndData(status=status, error=error):
                line = f"{event.kind}: {error or status}"
            case RunRejectedData(error=error):
                line = f"{event.kind}: {error or ''}"
            case LLMFinishedData(ok=False, model=model, error=error):
                line = f"  ! {where}  {model}: {_clip(error or 'failed', 120)}"
            case LLMFinishedData(model=model, tokens_in=tin, tokens_out=tout, cost_usd=cost, content=content):
                answer = f": {_clip(content, 60)}" if content else ""
                line = f"  · {where}  {model} {tin}→{tout} tokens ${cost:.4f}{answer}"
            case ToolCalledData(tool=tool, arguments=arguments):
                line = f"  ⚙ {where}  {tool}({_clip(json.dumps(arguments, default=str), 60)})"
            case ToolFinishedData(tool=tool, error=error, result=result):
                outcome = f"failed: {_clip(error, 80)}" if error else f"→ {_clip(json.dumps(result, default=str), 60)}"
                line = f"  ⚙ {where}  {tool} {outcome}"
            case _:  # llm.called and the rest say nothing a reader needs while waiting
                return
        print(f"{at} {line}", file=sys.stderr, flush=True)


def _clip(text: str, limit: int) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def print_result(result: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    typer.echo(f"run {result.get('run_id')}: {result.get('status')}")
    if result.get("error"):
        typer.echo(f"error: {result['error']}")
    for key, value in (result.get("state") or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        typer.echo(f"  {key}: {text}")


def run_summary(run: RunRecord | RunHistory) -> dict[str, Any]:
    """A run as ``runs --json`` and ``runs show --json`` print it: the same keys whether it comes from the
    running stack (its run record) or from a store's run history (where costs are known)."""
    if isinstance(run, RunRecord):
        steps = run.result()["steps"]
        cost: float | None = None
    else:
        steps = [{k: s.get(k) for k in ("node", "iteration", "index", "status", "duration_ms")} for s in run.steps]
        cost = run.cost_usd
    return {
        "run_id": run.run_id,
        "flow": run.flow,
        "status": run.status,
        "plan_version": run.plan_version,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "inputs": run.inputs,
        "state": run.state,
        "error": run.error,
        "source": run.source,
        "session": run.session,
        "cost_usd": cost,
        "steps": steps,
    }


def print_runs(runs: list[dict[str, Any]]) -> None:
    """Run summaries (`run_summary`), one line each."""
    if not runs:
        typer.echo("no runs yet")
        return
    typer.echo(f"{'RUN':24} {'FLOW':20} {'STATUS':10} {'STEPS':>5} {'DURATION':>10}  STARTED")
    for r in runs:
        duration = f"{(r['finished_at'] - r['created_at']):.2f}s" if r["finished_at"] else "-"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created_at"]))
        typer.echo(f"{r['run_id']:24} {r['flow']:20} {r['status']:10} {len(r['steps']):>5} {duration:>10}  {started}")


async def agent_rows(bus: Bus, heartbeat_s: float) -> list[dict[str, Any]]:
    """The rows of ``ca-actors agents`` (read from the registry buckets; no registry needed)."""
    return registry.listing(
        await registry.actors(bus), await registry.expected(bus), now=time.time(), heartbeat_s=heartbeat_s
    )


def format_agents(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no actors registered (is a registry running? `ca-actors up` starts one)"
    lines = [f"{'ID':44} {'KIND':12} {'STATUS':8} {'AGE':>6} {'LOAD':>8}  HOST:PID  SERVES"]
    for r in rows:
        age = "-" if r["heartbeat_age_s"] is None else f"{r['heartbeat_age_s']:.1f}s"
        load = "-" if r["load"] is None else f"{r['load']['in_flight']}/{r['load']['max']}"
        if r["load"] and r["load"].get("sandbox_workers"):
            load += f" sandbox {r['load'].get('sandbox_busy', 0)}/{r['load']['sandbox_workers']}"
        status = r["status"] + ("*" if r["draining"] else "")
        where = f"{r['host']}:{r['pid']}" if r["pid"] else "-"
        serves = ", ".join(r["serves"][:4]) + (f" (+{len(r['serves']) - 4})" if len(r["serves"]) > 4 else "")
        lines.append(f"{r['id']:44} {r['kind']:12} {status:8} {age:>6} {load:>8}  {where}  {serves}")
    return "\n".join(lines)


async def watch_agents(bus: Bus, heartbeat_s: float) -> None:
    """Redraw the agents table every second until interrupted."""
    while True:
        rows = await agent_rows(bus, heartbeat_s)
        typer.echo("\x1b[2J\x1b[H" + time.strftime("%H:%M:%S ") + "ca-actors agents\n" + format_agents(rows))
        await asyncio.sleep(1.0)


async def expect_agent(bus: Bus, name: str, serves: list[str]) -> dict[str, Any]:
    asked = registry.ExpectAgent(name=name, serves=serves)
    try:
        answer = await bus.request(subjects.REGISTRY_EXPECT, asked, registry.ExpectAnswer, timeout_s=5)
    except (NoResponderError, RequestTimeoutError):
        return {"error": "no registry answered (`ca-actors up` starts one)"}
    return answer.model_dump()


async def ping_agents(bus: Bus) -> list[ActorInfo]:
    return await registry.ping(bus, wait_s=0.5)


async def drain_agent(bus: Bus, actor_id: str) -> dict[str, Any]:
    subject = subjects.registry_drain(subjects.actor_token(actor_id))
    try:
        answer = await bus.request(subject, Empty(), DrainAnswer, timeout_s=5)
    except (NoResponderError, RequestTimeoutError):
        return {"error": f"no actor {actor_id} answered"}
    return answer.model_dump()


async def store_runs(url: str, limit: int) -> list[RunHistory]:
    async with open_store(url) as store:
        return await store.list_runs(limit=limit)


async def store_run(url: str, run_id: str) -> dict[str, Any] | None:
    """A run of a store's run history as `show_run` gives it (the store keeps no dead letters:
    a failed step shows with its error)."""
    async with open_store(url) as store:
        history = await store.get_run(run_id)
    if history is None:
        return None
    failed = [s for s in history.steps if s.get("status") == "failed"]
    letters = [{"node": s.get("node"), "step_id": s.get("step_id"), "error": s.get("error")} for s in failed]
    return run_summary(history) | {"dead_letters": letters}


def _scope_matches(key: str, flow: str | None, scope: str | None) -> bool:
    parts = key.split("/")
    if flow is not None and parts[:2] != ["flow", flow]:
        return False
    if scope is not None:
        kind = "agent" if parts[0] == "agent" else (parts[2] if len(parts) > 2 else "")
        return kind == scope
    return True


async def memory_keys(url: str, flow: str | None, scope: str | None) -> dict[str, int]:
    """Scope keys with their record counts."""
    async with open_store(url) as store:
        keys = [k for k in await store.memory_keys() if _scope_matches(k, flow, scope)]
        return {k: len(await store.memories(k, limit=100_000)) for k in sorted(keys)}


async def memory_records(url: str, key: str, limit: int) -> list[MemoryRecord]:
    async with open_store(url) as store:
        return await store.memories(key, limit=limit)


async def memory_clear(url: str, prefix: str) -> int:
    async with open_store(url) as store:
        return await store.clear_memories(prefix)
