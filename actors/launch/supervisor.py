"""``ca-actors up``: the local stack as separate OS processes, started, watched and stopped together.

The supervisor starts an embedded ``nats-server`` (unless given ``--nats``), then one scheduler, the
registry, the memory actor, the observer, N node workers and one LLM gateway, each in its own process
(``ca-actors actor KIND``). It prints ``ready`` once every actor has announced itself on
``ca.sys.ready``, restarts an actor that dies, and on SIGINT/SIGTERM stops the actors (SIGTERM, then
SIGKILL after a grace period) and the server. Children also get SIGTERM from the kernel if the
supervisor itself is killed, so nothing is left orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import typer
from nats.aio.msg import Msg

from actors.flow import Plan, PlanStore, choose_model, load_flows, refuse_unsandboxed
from actors.launch import stackfile
from actors.runtime.presence import ActorReady
from actors.tracking import prompt_fetcher
from bus import Bus, EmbeddedNats, Role, credentials_for, die_with_parent, free_port, subjects, topology
from bus.permissions import role_of_kind
from configs import Settings
from configs.urls import mask_url
from store import connect_store

log = structlog.get_logger(__name__)

OLLAMA_URL = "http://127.0.0.1:11434"
GRACE_S = 10.0
# `up` exits with this when another stack runs from the same data folder (see `actors.cli.failures`).
EXIT_BUSY = 3


@dataclass(frozen=True)
class LLMChoice:
    """What ``up --llm`` means: a model for every node, or a default for the flows that name none."""

    override: str | None
    default: str | None
    why: str


def choose_llm(requested: str) -> LLMChoice:
    """Resolve ``--llm``: a model name (every node), 'flow' (each flow's own; mock where a flow names
    none) or 'auto' (each flow's own; a local Ollama, else mock, where a flow names none)."""
    if requested == "flow":
        return LLMChoice(None, None, "each flow's own models; mock for flows that name none")
    if requested != "auto":
        return LLMChoice(requested, None, "--llm: every node")
    try:
        with urllib.request.urlopen(f"{OLLAMA_URL}/api/tags", timeout=0.5) as response:
            models = [m["name"] for m in json.loads(response.read()).get("models", [])]
    except (OSError, ValueError):
        return LLMChoice(None, "mock", f"flows that name no model: mock (no Ollama answers at {OLLAMA_URL})")
    if not models:
        return LLMChoice(None, "mock", f"flows that name no model: mock (Ollama at {OLLAMA_URL} has none pulled)")
    return LLMChoice(None, f"ollama_chat/{models[0]}", f"flows that name no model: the local Ollama at {OLLAMA_URL}")


def flow_models(plan: Plan, settings: Settings) -> list[str]:
    """The models a flow's nodes use on this stack (its own, the override, or the default)."""
    used: list[str] = []
    for node in plan.spec.nodes:
        choice = choose_model(plan.spec, node, settings.llm_override)
        model = settings.llm_default if choice.is_default and settings.llm_default else choice.model
        if model not in used:
            used.append(model)
    return used


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        flows: Path,
        *,
        embedded: bool,
        workers: int,
        on_ready: Callable[[Bus, list[str]], Coroutine[Any, Any, None]] | None = None,
        log_args: tuple[str, ...] = (),
        mlflow_ui: bool = False,
        ui_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.log_args = log_args
        self.flows = flows
        self.embedded = embedded
        self.workers = workers
        self.on_ready = on_ready
        self.mlflow_ui = mlflow_ui
        # The dashboard's port (None: no dashboard).
        self.ui_port = ui_port
        self._mlflow_url: str | None = None
        self._mlflow: subprocess.Popen[bytes] | None = None
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = asyncio.Event()
        self._server: EmbeddedNats | None = None

    def _command(self, kind: str) -> list[str]:
        # -P: the directory `up` runs in never shadows our packages (a user folder of its own `configs/`).
        # The NATS and store URLs and the credentials travel in the environment (`_environment`), never
        # in argv, which every user of the machine can read with `ps`.
        cmd = [sys.executable, "-P", "-m", "actors", "actor", kind, *self.log_args]
        cmd += ["--heartbeat", str(self.settings.heartbeat_s)]
        if kind in ("observer", "scheduler"):  # traces, and prompts from the registry
            cmd += ["--mlflow-uri", self.settings.mlflow_uri()]
        if kind == "observer":
            cmd += ["--traces" if self.settings.traces else "--no-traces"]
        if kind in ("scheduler", "ui"):
            cmd += ["--flows", str(self.flows)]
        if kind == "ui":
            cmd += [
                "--store",
                self.settings.store(),
                "--ui-port",
                str(self.ui_port),
                "--ui-host",
                self.settings.ui_host,
            ]
            if self._mlflow_url:
                cmd += ["--mlflow-ui-url", self._mlflow_url]
        if self.settings.llm_override:
            cmd += ["--llm", self.settings.llm_override]
        if kind == "llm-gateway" and self.settings.llm_default:
            cmd += ["--llm-default", self.settings.llm_default]
        if self.settings.mock_script:
            cmd += ["--mock-script", str(self.settings.mock_script)]
        if kind == "worker" and self.settings.allow_unsandboxed:
            cmd += ["--allow-unsandboxed"]
        if kind == "worker" and self.settings.sandbox_image:
            cmd += ["--sandbox-image", self.settings.sandbox_image]
        return cmd

    def _environment(self, kind: str) -> dict[str, str]:
        """A child's environment: this one's, without other credentials, plus its URLs and its own login."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CA_NATS_")}
        env["CA_NATS_URL"] = self.settings.nats_url
        if kind in ("memory", "observer"):
            env["CA_STORE_URL"] = self.settings.store()
        role = role_of_kind(kind)
        if self._server is not None:
            env.update(self._server.credentials(role).env())
        else:
            env.update(credentials_for(self.settings, role).env())
        return env

    def _spawn(self, name: str) -> None:
        kind = name.rsplit("-", 1)[0] if name.startswith("worker") else name
        self._children[name] = subprocess.Popen(
            self._command(kind), stdin=subprocess.DEVNULL, env=self._environment(kind), preexec_fn=die_with_parent
        )

    async def run(self) -> int:
        """Run the stack until a signal; returns the exit code."""
        t0 = time.perf_counter()
        flow_set = load_flows([self.flows], fetch_prompts=prompt_fetcher(self.settings.mlflow_uri()))
        for error in flow_set.errors:
            typer.echo(error, err=True)
        if not flow_set.plans:
            typer.echo(f"no valid flows in {self.flows}", err=True)
            return 2
        refused = refuse_unsandboxed([p.spec for p in flow_set.plans], self.settings.allow_unsandboxed)
        for line in refused:
            typer.echo(f"error: {line}", err=True)
        if refused:
            return 2
        # The store answers before any actor starts: a wrong URL is one line, not two dying actors.
        store = await connect_store(self.settings.store())
        await store.close()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        server: EmbeddedNats | None = None
        try:
            lock = stackfile.StackLock(self.settings.data_dir).acquire()
        except stackfile.StackBusy as exc:
            typer.echo(f"error: {exc}", err=True)
            return EXIT_BUSY
        if lock.stale is not None:
            typer.echo(
                f"warning: taking over {self.settings.data_dir} from a stack that did not stop cleanly "
                f"(pid {lock.stale.get('pid', '?')})",
                err=True,
            )
        try:
            if self.embedded:
                # Secure by default: the server admits only the users generated in <data-dir>/nats-auth.json.
                server = self._server = EmbeddedNats(self.settings.data_dir / "nats", port=free_port(4222))
                await server.start()
                self.settings = self.settings.model_copy(update={"nats_url": server.url})
                admin = Bus(server.url, name="supervisor", credentials=server.credentials(Role.ADMIN), role=Role.ADMIN)
            else:
                admin = Bus.of(self.settings, Role.ADMIN, name="supervisor")
            async with admin as bus:
                # The stack serves exactly the flows it is given: plans an earlier stack left are retired.
                served = {p.flow for p in flow_set.plans}
                retired = await PlanStore(bus.kv(topology.PLANS)).retire_except(served)
                if retired:
                    typer.echo(f"no longer served (not in {self.flows}): {', '.join(retired)}")
                if self.mlflow_ui:
                    self._start_mlflow()
                names = ["scheduler", "registry", "memory", "observer", "llm-gateway"] + [
                    f"worker-{i}" for i in range(1, self.workers + 1)
                ]
                if self.ui_port is not None:
                    names.append("ui")
                ready: asyncio.Queue[ActorReady] = asyncio.Queue()

                async def on_ready(msg: Msg) -> None:
                    await ready.put(ActorReady.model_validate_json(msg.data))

                await bus.subscribe(subjects.SYS_READY, on_ready)
                # The scheduler first: it publishes the plans the workers then subscribe to.
                self._spawn(names[0])
                if not await self._await_ready(ready, 1):
                    return 1
                for name in names[1:]:
                    self._spawn(name)
                if not await self._await_ready(ready, len(names) - 1):
                    return 1
                lock.publish(self.settings.nats_url, embedded=server is not None)
                flows = ", ".join(f"{p.flow} ({', '.join(flow_models(p, self.settings))})" for p in flow_set.plans)
                typer.echo(f"NATS: {mask_url(self.settings.nats_url)}")
                typer.echo(f"flows: {flows}")
                if self.ui_port is not None:
                    typer.echo(f"dashboard: http://{self.settings.ui_host}:{self.ui_port}/")
                typer.echo(
                    f"ca-actors ready in {time.perf_counter() - t0:.2f}s: scheduler, registry, memory, observer, "
                    f"llm-gateway, {self.workers} worker(s){', ui' if self.ui_port is not None else ''} "
                    "(Ctrl-C to stop)",
                )
                if server is not None and server.auth_file is not None:
                    typer.echo(
                        f"NATS users: {server.auth_file} (0600; `ca-actors` commands log in by themselves, "
                        'other clients: eval "$(ca-actors nats-env)")'
                    )
                if self.on_ready is not None:
                    demo = asyncio.create_task(self.on_ready(bus, [p.flow for p in flow_set.plans]))
                    stop = asyncio.create_task(self._stop.wait())
                    await asyncio.wait({demo, stop}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (demo, stop):
                        task.cancel()
                    await asyncio.gather(demo, stop, return_exceptions=True)
                await self._watch(ready)
            return 0
        finally:
            await self._stop_children()
            await self._stop_mlflow()
            lock.release()
            if server is not None:
                await server.close()
            typer.echo("stopped")

    def _start_mlflow(self) -> None:
        """Start ``mlflow server`` on the traces' tracking store, in the background (it takes 30-60 s here).

        One worker, and ``X-Frame-Options: NONE`` so the dashboard can show it in an iframe.
        """
        port = free_port(5000)
        data_dir = self.settings.data_dir.resolve()
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.settings.mlflow_uri(),
            "--default-artifact-root", str(data_dir / "mlartifacts"),
            "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1",
            "--x-frame-options", "NONE",
        ]  # fmt: skip
        log_file = (data_dir / "mlflow-server.log").open("ab")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self._mlflow = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env, preexec_fn=die_with_parent
        )
        log_file.close()
        self._mlflow_url = f"http://127.0.0.1:{port}"
        typer.echo(f"MLflow UI: http://127.0.0.1:{port} (starting in the background; log: {log_file.name})")

    async def _stop_mlflow(self) -> None:
        proc, self._mlflow = self._mlflow, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)

    async def _await_ready(self, ready: asyncio.Queue[ActorReady], count: int) -> bool:
        seen = 0
        deadline = time.monotonic() + 60
        while seen < count:
            if self._stop.is_set():
                return False
            dead = [n for n, p in self._children.items() if p.poll() is not None]
            if dead:
                typer.echo(f"actor process(es) exited during start-up: {', '.join(dead)}", err=True)
                return False
            if time.monotonic() > deadline:
                typer.echo("actors did not become ready within 60s", err=True)
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.get(), timeout=0.2)
                seen += 1
        return True

    async def _watch(self, ready: asyncio.Queue[ActorReady]) -> None:
        """Until a signal: restart any actor process that dies."""
        restarts: dict[str, float] = {}
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.5)
            for name, proc in list(self._children.items()):
                if proc.poll() is None or self._stop.is_set():
                    continue
                if proc.returncode == 0:
                    # A clean exit is a drained actor (`ca-actors agents drain`): it stays gone.
                    log.info("actor.exited", actor=name)
                    del self._children[name]
                    continue
                # Back off when an actor keeps dying, so a broken one does not spin the machine.
                last = restarts.get(name, 0.0)
                if time.monotonic() - last < 5.0:
                    await asyncio.sleep(2.0)
                log.warning("actor.restart", actor=name, exit_code=proc.returncode)
                restarts[name] = time.monotonic()
                self._spawn(name)
            while not ready.empty():
                ready.get_nowait()

    async def _stop_children(self) -> None:
        """SIGTERM every actor, wait up to GRACE_S for all of them, SIGKILL the rest."""
        procs = list(self._children.values())
        self._children.clear()
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("actor.kill", pid=proc.pid)
                proc.kill()
                await asyncio.to_thread(proc.wait)
