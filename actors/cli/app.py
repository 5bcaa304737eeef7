"""The ``ca-actors`` command line."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import configs
from actors.cli import console
from actors.cli.deploy import register as register_deploy
from actors.cli.evals import register as register_eval
from actors.cli.failures import run_cli
from actors.cli.flows import register as register_flows
from actors.cli.health import register as register_health
from actors.cli.init import register as register_init
from actors.cli.natsenv import register as register_nats_env
from actors.cli.options import (
    AllowUnsandboxed,
    DataDir,
    InputJson,
    Inputs,
    JsonFlag,
    LogFmt,
    LogLevel,
    MlflowUri,
    NatsCreds,
    NatsNkey,
    NatsTlsCa,
    NatsUrl,
    SandboxImage,
    StoreUrl,
    command_group,
    parse_inputs,
    refuse_password_in,
)
from actors.cli.reports import register as register_report
from actors.flow import is_mock_script, load_flows, refuse_unsandboxed, yaml_files
from actors.flow.memory import MEMORY_SCOPES
from actors.launch import ACTOR_KINDS, ActorKind, LocalStack, serve_actor
from actors.runtime.logs import LogFormat, configure_logging
from actors.runtime.presence import package_version
from actors.tracking import prompt_fetcher
from bus import Bus, free_port
from configs import Settings, StorageSpec, flow_json_schema, initial_state

EXAMPLES = Path(configs.__file__).resolve().parent / "examples"

app = command_group(
    (
        "Configurable Agents as actors: run YAML multi-agent LLM workflows as actors over NATS.\n\n"
        "Start a local stack with `ca-actors up`, run one file with `ca-actors run FILE -i key=value`, "
        "check files with `ca-actors validate FILE...`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ca-actors {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Configurable Agents as actors."""


def flow_store(plan: Any) -> str | None:
    """The seed's ``config.storage: {backend: sqlite, path: ...}`` of a flow, as a store URL."""
    storage: StorageSpec | None = plan.spec.config.storage
    if storage is None:
        return None
    if storage.url:
        return storage.url
    if storage.path and storage.backend == "sqlite":
        return f"sqlite:///{Path(storage.path).resolve()}"
    return None


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Flow files, mock scripts (*.mock.yaml) or directories.")],
) -> None:
    """Check flow files and mock scripts without running anything; all problems are listed with file:line:column."""
    flow_set = load_flows(files, fetch_prompts=prompt_fetcher(Settings.from_env().mlflow_uri()))
    for warning in flow_set.warnings:
        typer.echo(str(warning), err=True)
    for error in flow_set.errors:
        typer.echo(error, err=True)
    for plan in flow_set.plans:
        typer.echo(f"ok  {plan.file}: flow '{plan.flow}', {len(plan.nodes)} nodes, version {plan.version}")
    nodes = {Path(plan.file).with_suffix(""): {n.id for n in plan.spec.nodes} for plan in flow_set.plans}
    problems = [console.check_mock_script(f, nodes) for f in yaml_files(files) if is_mock_script(f)]
    if flow_set.errors or any(problems):
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the flow YAML language (for editor completion and checks)."""
    typer.echo(json.dumps(flow_json_schema(), indent=2))


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="The flow file to run.")],
    inputs: Inputs = None,
    input_json: InputJson = None,
    llm: Annotated[str | None, typer.Option("--llm", help="Use this model for every node (e.g. mock).")] = None,
    mock_script: Annotated[
        Path | None, typer.Option("--mock-script", help="YAML: node id → outputs, for the mock model.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    nats: Annotated[str | None, typer.Option("--nats", help="Use this NATS server instead of an embedded one.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Give up after this many seconds.")] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Record every LLM exchange to this cassette (YAML).")
    ] = None,
    replay: Annotated[
        Path | None, typer.Option("--replay", help="Answer LLM calls from this cassette only (offline, free).")
    ] = None,
    store: StoreUrl = None,
    nats_creds: NatsCreds = None,
    nats_nkey: NatsNkey = None,
    nats_tls_ca: NatsTlsCa = None,
    trace: Annotated[
        bool, typer.Option("--trace", help="Also write the run as an MLflow trace (needs [mlflow]).")
    ] = False,
    mlflow_uri: MlflowUri = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="bus: actors over NATS, every step durable (default); "
            "langgraph: the same flow as a LangGraph StateGraph in this process, no NATS.",
        ),
    ] = "bus",
    allow_unsandboxed: AllowUnsandboxed = False,
    sandbox_image: SandboxImage = None,
    log_level: LogLevel = "warning",
    log_format: LogFmt = "auto",
) -> None:
    """Run one workflow to completion on its own ephemeral stack; exit 0 if it succeeded."""
    configure_logging(log_level, _fmt(log_format))
    refuse_password_in(nats, "--nats")
    refuse_password_in(store, "--store", "CA_STORE_URL")
    plan = console.load_plan(file, mlflow_uri=Settings.from_env(mlflow_tracking_uri=mlflow_uri).mlflow_uri())
    if mock_script is not None and llm is None:
        llm = "mock"
    if record is not None and replay is not None:
        raise typer.BadParameter("--record and --replay exclude each other")
    for refused in refuse_unsandboxed([plan.spec], allow_unsandboxed):
        typer.echo(f"error: {refused}", err=True)
        raise typer.Exit(2)
    settings = Settings.from_env(
        llm_override=llm,
        mock_script=mock_script,
        record=record,
        replay=replay,
        store_url=store or flow_store(plan),
        # The flow's config.observability.mlflow (enabled: true) traces its runs without --trace.
        traces=trace or None,
        mlflow_tracking_uri=mlflow_uri,
        nats_creds=nats_creds,
        nats_nkey=nats_nkey,
        nats_tls_ca=nats_tls_ca,
        allow_unsandboxed=allow_unsandboxed or None,
        sandbox_image=sandbox_image,
        **({"nats_url": nats} if nats else {}),
    )
    values = parse_inputs(inputs, input_json)
    # Bad inputs fail here, before any stack starts (the scheduler would only reject them, burning a run).
    initial_state(plan.spec, values)
    if engine == "langgraph":
        result = asyncio.run(_run_langgraph(settings, plan, values, timeout_s=timeout))
    elif engine == "bus":
        result = asyncio.run(_run(settings, plan, values, embedded=nats is None, timeout_s=timeout, as_json=as_json))
    else:
        raise typer.BadParameter(f"--engine must be bus or langgraph, not {engine!r}")
    console.print_result(result, as_json=as_json)
    raise typer.Exit(0 if result["status"] == "succeeded" else 1)


async def _run(
    settings: Settings, plan: Any, inputs: dict[str, Any], *, embedded: bool, timeout_s: float | None, as_json: bool
) -> dict[str, Any]:
    async with LocalStack(settings, [plan], embedded=embedded) as stack:
        assert stack.client is not None
        assert stack.observer is not None
        result = (
            await console.trigger_and_wait(
                stack.client, plan.flow, inputs, wait=True, timeout_s=timeout_s, progress=sys.stderr.isatty()
            )
            or {}
        )
        # The run's history (and trace, with --trace) is written before the stack goes away.
        ended = result.get("status") not in (None, "running")
        if ended and not await stack.observer.observed(result["run_id"], timeout_s=60):
            typer.echo("warning: the run's history was not written within 60s", err=True)
        return result


async def _run_langgraph(
    settings: Settings, plan: Any, inputs: dict[str, Any], *, timeout_s: float | None
) -> dict[str, Any]:
    from actors.engines import langgraph_runner
    from actors.launch import backend_for

    return await langgraph_runner()(
        plan,
        inputs,
        llm=backend_for(settings),
        model_override=settings.llm_override,
        timeout_s=timeout_s,
        allow_unsandboxed=settings.allow_unsandboxed,
        sandbox_image=settings.sandbox_image,
    )


@app.command()
def up(
    flows: Annotated[Path, typer.Option("--flows", help="Directory of flow files to serve.")] = EXAMPLES,
    nats: Annotated[str | None, typer.Option("--nats", help="Use this NATS server instead of an embedded one.")] = None,
    data_dir: DataDir = Path(".ca-actors"),
    workers: Annotated[int, typer.Option("--workers", min=1, help="Node worker processes.")] = 1,
    llm: Annotated[
        str,
        typer.Option(
            "--llm",
            help="'auto': each flow's own models, and for flows that name none a local Ollama if one "
            "answers, else mock; 'flow': each flow's own models (mock where none is named); or a model "
            "name such as mock or ollama_chat/llama3.2 for every node.",
        ),
    ] = "auto",
    mock_script: Annotated[Path | None, typer.Option("--mock-script", help="Outputs for the mock model.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Once ready, run the demo flow and print its result.")] = False,
    store: StoreUrl = None,
    nats_creds: NatsCreds = None,
    nats_nkey: NatsNkey = None,
    nats_tls_ca: NatsTlsCa = None,
    traces: Annotated[
        bool, typer.Option("--traces/--no-traces", help="Write every run as an MLflow trace (needs [mlflow]).")
    ] = True,
    mlflow_uri: MlflowUri = None,
    mlflow_ui: Annotated[
        bool, typer.Option("--mlflow", help="Also start `mlflow server` on the traces (UI in 30-60 s).")
    ] = False,
    allow_unsandboxed: AllowUnsandboxed = False,
    sandbox_image: SandboxImage = None,
    ui_port: Annotated[
        int | None, typer.Option("--ui-port", help="Port of the dashboard (default 8765, or a free one if taken).")
    ] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not start the dashboard.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Actors log at info (--log-level info).")] = False,
    log_level: LogLevel = "warning",
    log_format: LogFmt = "auto",
) -> None:
    """Start the whole stack locally: NATS (embedded unless --nats), scheduler, workers, LLM gateway, observer,
    dashboard.

    Each actor is a separate OS process. Ctrl-C (or SIGTERM) stops everything cleanly. The console shows a
    short banner and the actors' warnings; -v (or --log-level info) shows what each actor does.
    """
    from actors.launch.supervisor import Supervisor, choose_llm

    if verbose and log_level == "warning":
        log_level = "info"
    configure_logging(log_level, _fmt(log_format))
    refuse_password_in(nats, "--nats")
    refuse_password_in(store, "--store", "CA_STORE_URL")
    choice = choose_llm(llm)
    typer.echo(f"LLM: {choice.why}")
    settings = Settings.from_env(
        data_dir=data_dir,
        llm_override=choice.override,
        llm_default=choice.default,
        mock_script=mock_script,
        store_url=store,
        traces=traces,
        mlflow_tracking_uri=mlflow_uri,
        nats_creds=nats_creds,
        nats_nkey=nats_nkey,
        nats_tls_ca=nats_tls_ca,
        allow_unsandboxed=allow_unsandboxed or None,
        sandbox_image=sandbox_image,
        **({"nats_url": nats} if nats else {}),
    )
    log_args = ("--log-level", log_level, "--log-format", log_format)
    dashboard_port = None if no_ui else (ui_port if ui_port is not None else free_port(settings.ui_port))
    if dashboard_port is not None and importlib.util.find_spec("fastapi") is None:
        typer.echo("dashboard: not started (it needs the [ui] extra: pip install 'ca-actors[ui]')")
        dashboard_port = None
    supervisor = Supervisor(
        settings,
        flows,
        embedded=nats is None,
        workers=workers,
        on_ready=_run_demo if demo else None,
        log_args=log_args,
        mlflow_ui=mlflow_ui,
        ui_port=dashboard_port,
    )
    raise typer.Exit(asyncio.run(supervisor.run()))


DEMO_FLOW = "demo"
DEMO_INPUTS = {"topic": "actors talking over NATS"}


async def _run_demo(bus: Bus, flows: list[str]) -> None:
    """`up --demo`: once the stack is ready, run the demo flow and print its result."""
    if DEMO_FLOW not in flows:
        typer.echo(f"(no '{DEMO_FLOW}' flow is served: skipping the demo run)")
        return
    typer.echo(f"demo: ca-actors trigger {DEMO_FLOW} -i topic='{DEMO_INPUTS['topic']}' --wait")
    result = await console.trigger_and_wait(bus, DEMO_FLOW, DEMO_INPUTS, wait=True, timeout_s=300, progress=True)
    if result is not None:
        console.print_result(result, as_json=False)


@app.command()
def trigger(
    flow: Annotated[str, typer.Argument(help="Name of the flow to start.")],
    inputs: Inputs = None,
    input_json: InputJson = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --wait: give up after N seconds.")] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="A conversation id: the run's trace joins that MLflow session."),
    ] = None,
    source: Annotated[str, typer.Option("--source", help="What started the run (a trace tag).")] = "cli",
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Idempotency key: triggers with the same key start one run (for 24 h) and all get its id. "
            "Default: a new key, reused when the trigger is sent again after no answer.",
        ),
    ] = None,
) -> None:
    """Start a run of FLOW on a running stack (publishes the inputs to ca.trigger.FLOW)."""
    url = console.stack_url(nats, data_dir)
    values = parse_inputs(inputs, input_json)
    result = asyncio.run(
        console.with_client(
            url,
            lambda bus: console.trigger_and_wait(
                bus,
                flow,
                values,
                wait=wait,
                timeout_s=timeout,
                progress=wait and sys.stderr.isatty(),
                source=source,
                session=session,
                key=key,
            ),
        )
    )
    if result is None:
        raise typer.Exit(1)
    if wait:
        console.print_result(result, as_json=as_json)
        raise typer.Exit(0 if result["status"] == "succeeded" else 1)
    if result.get("status") == "rejected" and not as_json:
        typer.echo(f"rejected: {result.get('error')}", err=True)
    typer.echo(json.dumps(result) if as_json else result.get("run_id", result))
    raise typer.Exit(0 if "run_id" in result and result.get("status") != "rejected" else 1)


runs_app = command_group("Runs of a running stack: list them, or show one with its dead letters.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many runs (newest first).")] = 20,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    store: Annotated[
        str | None,
        typer.Option("--store", help="Read the run history from this store instead of the running stack."),
    ] = None,
) -> None:
    """List recent runs (newest first): of the running stack, or from a store's run history."""
    if ctx.invoked_subcommand is not None:
        return
    if store:
        refuse_password_in(store, "--store")
        found: list[Any] = asyncio.run(console.store_runs(store, limit))
    else:
        url = console.stack_url(nats, data_dir)
        found = asyncio.run(console.with_client(url, console.list_runs))[:limit]
    summaries = [console.run_summary(run) for run in found]
    if as_json:
        typer.echo(json.dumps(summaries, indent=2, default=str))
    else:
        console.print_runs(summaries)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    store: Annotated[
        str | None,
        typer.Option("--store", help="Read the run from this store's run history instead of the running stack."),
    ] = None,
) -> None:
    """One run: status, state, every step and dead-lettered work items."""
    if store:
        refuse_password_in(store, "--store")
        details = asyncio.run(console.store_run(store, run_id))
    else:
        url = console.stack_url(nats, data_dir)
        details = asyncio.run(console.with_client(url, lambda bus: console.show_run(bus, run_id)))
    if details is None:
        typer.echo(f"no run {run_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(details, indent=2, default=str))
    else:
        console.print_run_details(details)


memory_app = command_group("Long-term memory of flows: list scopes, show records, clear them.")
app.add_typer(memory_app, name="memory")


def _store_url(store: str | None, data_dir: Path) -> str:
    refuse_password_in(store, "--store", "CA_STORE_URL")
    return Settings.from_env(data_dir=data_dir, store_url=store).store()


@memory_app.command("list")
def memory_list(
    flow: Annotated[str | None, typer.Option("--flow", help="Only this flow's memory.")] = None,
    scope: Annotated[str | None, typer.Option("--scope", help="node, workflow or agent.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Memory scopes (keys) that hold records, with their record counts."""
    if scope is not None and scope not in MEMORY_SCOPES:
        raise typer.BadParameter(f"{scope!r} is not a scope; valid: {', '.join(MEMORY_SCOPES)}", param_hint="--scope")
    keys = asyncio.run(console.memory_keys(_store_url(store, data_dir), flow, scope))
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    for key, count in keys.items():
        typer.echo(f"{count:>6}  {key}")
    if not keys:
        typer.echo("no memory yet")


@memory_app.command("show")
def memory_show(
    key: Annotated[str, typer.Argument(help="A scope key from `ca-actors memory list`.")],
    limit: Annotated[int, typer.Option("--limit", help="Newest records to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """The newest records of one memory scope."""
    records = asyncio.run(console.memory_records(_store_url(store, data_dir), key, limit))
    if not records:
        typer.echo(f"no memory under {key!r} (see `ca-actors memory list`)", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    for r in records:
        typer.echo(
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.created_at))}  {r.node or '-':16} {r.content}"
        )


@memory_app.command("clear")
def memory_clear(
    flow: Annotated[str | None, typer.Option("--flow", help="Clear this flow's memory.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Clear this scope key (or prefix).")] = None,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Delete memory records: a flow's, or those under a scope key prefix."""
    if not flow and not key:
        raise typer.BadParameter("give --flow or --key")
    prefix = key or f"flow/{flow}/"
    deleted = asyncio.run(console.memory_clear(_store_url(store, data_dir), prefix))
    typer.echo(f"deleted {deleted} record(s) under {prefix}")


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    as_json: JsonFlag = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Cancel a running run (its steps in flight finish; nothing after them runs)."""
    url = console.stack_url(nats, data_dir)
    answer = asyncio.run(console.with_client(url, lambda bus: console.cancel_run(bus, run_id)))
    if "error" in answer:
        _answered(answer, as_json, f"cannot cancel {run_id}: {answer['error']}")
    elif answer.get("status") == "cancelled":
        _answered(answer, as_json, f"cancelled {run_id}: its steps in flight finish, nothing after them runs")
    else:
        _answered(answer, as_json, f"{run_id} is already {answer.get('status')}: nothing to cancel")


@app.command(name="bench")
def bench_command(
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Nodes in the linear flow.")] = 5,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs per scenario and engine (median).")] = 30,
    map_items: Annotated[int, typer.Option("--map-items", min=1, help="Items of the map scenario.")] = 20,
    in_flight: Annotated[
        list[int] | None, typer.Option("--in-flight", help="Runs in flight for throughput (repeatable).")
    ] = None,
    llm: Annotated[str, typer.Option("--llm", help="Mock model, e.g. mock or mock/50ms.")] = "mock",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker actors.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Measure the bus engine against LangGraph (in memory and with SQLite), in the same process run."""
    from actors.cli.bench import bench, format_table

    configure_logging("warning", "auto")
    typer.echo("benchmarking (embedded nats-server, mock model)...", err=True)
    result = asyncio.run(
        bench(
            nodes=nodes, runs=runs, map_items=map_items, in_flight=in_flight or [1, 10, 100], model=llm, workers=workers
        )
    )
    typer.echo(json.dumps(result, indent=2) if as_json else format_table(result))


Heartbeat = Annotated[
    float | None, typer.Option("--heartbeat", help="Seconds between heartbeats to the registry (default 2).")
]


@app.command(hidden=True)
def actor(
    kind: Annotated[str, typer.Argument(help=f"One of {', '.join(ACTOR_KINDS)}.")],
    nats: NatsUrl = None,
    flows: Annotated[list[Path] | None, typer.Option("--flows")] = None,
    llm: Annotated[str | None, typer.Option("--llm")] = None,
    llm_default: Annotated[str | None, typer.Option("--llm-default", help="Model of flows that name none.")] = None,
    mock_script: Annotated[Path | None, typer.Option("--mock-script")] = None,
    heartbeat: Heartbeat = None,
    store: StoreUrl = None,
    mlflow_uri: MlflowUri = None,
    traces: Annotated[bool, typer.Option("--traces/--no-traces", help="observer: write MLflow traces.")] = True,
    allow_unsandboxed: AllowUnsandboxed = False,
    sandbox_image: SandboxImage = None,
    ui_port: Annotated[int | None, typer.Option("--ui-port", help="ui: the dashboard's port.")] = None,
    ui_host: Annotated[str | None, typer.Option("--ui-host", help="ui: the address it listens on.")] = None,
    mlflow_ui_url: Annotated[str | None, typer.Option("--mlflow-ui-url", help="ui: the MLflow UI to link.")] = None,
    log_level: LogLevel = "info",
    log_format: LogFmt = "auto",
) -> None:
    """Run one actor in this process (used by `up`; also for running actors by hand)."""
    refuse_password_in(nats, "--nats", "CA_NATS_URL")
    refuse_password_in(store, "--store", "CA_STORE_URL")
    if kind not in ACTOR_KINDS:
        raise typer.BadParameter(f"unknown actor kind {kind!r}; valid: {', '.join(ACTOR_KINDS)}")
    configure_logging(log_level, _fmt(log_format))
    settings = Settings.from_env(
        nats_url=nats,
        llm_override=llm,
        llm_default=llm_default,
        mock_script=mock_script,
        heartbeat_s=heartbeat,
        store_url=store,
        mlflow_tracking_uri=mlflow_uri,
        traces=traces,
        allow_unsandboxed=allow_unsandboxed or None,
        sandbox_image=sandbox_image,
        ui_port=ui_port,
        ui_host=ui_host,
        mlflow_ui_url=mlflow_ui_url,
    )
    actor_kind: ActorKind = kind  # type: ignore[assignment]
    asyncio.run(serve_actor(actor_kind, settings, flows or []))


@app.command()
def agent(
    nats: Annotated[str, typer.Option("--nats", envvar="CA_NATS_URL", help="The NATS server of the stack.")],
    flows: Annotated[
        list[Path] | None, typer.Option("--flows", help="Serve only these flows (files or directories).")
    ] = None,
    nodes: Annotated[
        str | None, typer.Option("--nodes", help="Serve only these nodes, comma-separated flow.node names.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Register under this name (see `agents expect`).")] = None,
    serve_tools: Annotated[
        bool,
        typer.Option("--serve-tools", help="Also run tools that flows pin to this agent (`tools: [{name, actor}]`)."),
    ] = False,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", help="Directory the file tools are confined to.")
    ] = None,
    allowed_hosts: Annotated[
        str | None, typer.Option("--allowed-hosts", help="Hosts the HTTP tools may reach, comma-separated.")
    ] = None,
    heartbeat: Heartbeat = None,
    nats_creds: NatsCreds = None,
    nats_nkey: NatsNkey = None,
    nats_tls_ca: NatsTlsCa = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="On the stack's machine: log in with its worker user from here.")
    ] = Path(".ca-actors"),
    log_level: LogLevel = "info",
    log_format: LogFmt = "auto",
) -> None:
    """Run a standalone worker on any machine: it registers itself and takes the work of its nodes.

    Without --flows or --nodes it serves every flow the stack knows, including flows published later.
    `ca-actors agents drain ID` makes it finish its work in flight and exit.
    """
    configure_logging(log_level, _fmt(log_format))
    refuse_password_in(nats, "--nats", "CA_NATS_URL")
    only = frozenset(n.strip() for n in nodes.split(",") if n.strip()) if nodes else None
    for node in only or ():
        if node.count(".") != 1:
            raise typer.BadParameter(f"--nodes takes flow.node names, got {node!r}")
    settings = Settings.from_env(
        nats_url=nats,
        heartbeat_s=heartbeat,
        tool_workspace=workspace,
        allowed_hosts=allowed_hosts,
        nats_creds=nats_creds,
        nats_nkey=nats_nkey,
        nats_tls_ca=nats_tls_ca,
    )
    settings = console.with_local_login(settings, data_dir)
    asyncio.run(serve_actor("worker", settings, flows or [], nodes=only, name=name, serve_tools=serve_tools))


@app.command()
def ui(
    nats: Annotated[str, typer.Option("--nats", envvar="CA_NATS_URL", help="The NATS server of the stack.")],
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8765,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; any but loopback needs a token (CA_UI_TOKEN or printed)."),
    ] = "127.0.0.1",
    flows: Annotated[
        list[Path] | None, typer.Option("--flows", help="Flow files to show validation errors of.")
    ] = None,
    store: StoreUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    mlflow_ui_url: Annotated[str | None, typer.Option("--mlflow-ui-url", help="The MLflow UI to link runs to.")] = None,
    log_level: LogLevel = "warning",
    log_format: LogFmt = "auto",
) -> None:
    """Serve the dashboard of a running stack, on any machine that reaches its NATS server (and its store)."""
    configure_logging(log_level, _fmt(log_format))
    settings = Settings.from_env(
        nats_url=nats, data_dir=data_dir, store_url=store, ui_port=port, ui_host=host, mlflow_ui_url=mlflow_ui_url
    )
    typer.echo(f"dashboard: http://{host}:{port}/ (NATS {nats}; Ctrl-C to stop)")
    asyncio.run(serve_actor("ui", settings, flows or []))


agents_app = command_group("The registry's view of the system: actors, their status and load.")
app.add_typer(agents_app, name="agents")


@agents_app.callback(invoke_without_command=True)
def agents(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Redraw every second until Ctrl-C.")] = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
    heartbeat: Heartbeat = None,
) -> None:
    """List actors with status (live, stale, dead, pending), heartbeat age and load."""
    if ctx.invoked_subcommand is not None:
        return
    url = console.stack_url(nats, data_dir)
    beat = heartbeat or Settings.from_env().heartbeat_s
    if watch:
        asyncio.run(console.with_client(url, lambda bus: console.watch_agents(bus, beat)))
        return
    rows = asyncio.run(console.with_client(url, lambda bus: console.agent_rows(bus, beat)))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(console.format_agents(rows))


@agents_app.command("expect")
def agents_expect(
    name: Annotated[str, typer.Argument(help="Name the agent will register under (`ca-actors agent --name`).")],
    serves: Annotated[list[str] | None, typer.Option("--serves", help="flow.node it will serve (repeatable).")] = None,
    as_json: JsonFlag = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Record an agent you expect: listed as pending until it heartbeats."""
    url = console.stack_url(nats, data_dir)
    answer = asyncio.run(console.with_client(url, lambda bus: console.expect_agent(bus, name, serves or [])))
    failed = f"cannot expect {name}: {answer.get('error')}"
    _answered(answer, as_json, failed if "error" in answer else f"expecting {name}: pending until it heartbeats")


@agents_app.command("ping")
def agents_ping(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Ask every live actor to answer at once (the registry also refreshes its view from the answers)."""
    url = console.stack_url(nats, data_dir)
    answers = asyncio.run(console.with_client(url, console.ping_agents))
    if as_json:
        typer.echo(json.dumps([a.model_dump() for a in answers], indent=2))
        return
    for a in sorted(answers, key=lambda a: (a.kind, a.id)):
        sandbox = f" sandbox {a.load.sandbox_busy}/{a.load.sandbox_workers}" if a.load.sandbox_workers else ""
        typer.echo(f"{a.kind:12} {a.id:40} {a.host}:{a.pid}  load {a.load.in_flight}/{a.load.max}{sandbox}")
    typer.echo(f"{len(answers)} actor(s) answered")


@agents_app.command("drain")
def agents_drain(
    actor_id: Annotated[str, typer.Argument(help="The actor to drain (an id from `ca-actors agents`).")],
    as_json: JsonFlag = False,
    nats: NatsUrl = None,
    data_dir: DataDir = Path(".ca-actors"),
) -> None:
    """Tell an actor to finish its work in flight, take no new work and exit."""
    url = console.stack_url(nats, data_dir)
    answer = asyncio.run(console.with_client(url, lambda bus: console.drain_agent(bus, actor_id)))
    failed = f"cannot drain {actor_id}: {answer.get('error')}"
    done = f"draining {actor_id}: it finishes its work in flight, then deregisters and exits"
    _answered(answer, as_json, failed if "error" in answer else done)


def _answered(answer: dict[str, Any], as_json: bool, sentence: str) -> None:
    """Print a stack's answer (a sentence, or its JSON with --json) and exit 1 if it is an error."""
    if as_json:
        typer.echo(json.dumps(answer))
    else:
        typer.echo(sentence, err="error" in answer)
    raise typer.Exit(1 if "error" in answer else 0)


def _fmt(value: str) -> LogFormat:
    if value not in ("auto", "console", "json"):
        raise typer.BadParameter(f"--log-format must be auto, console or json, not {value!r}")
    return value  # type: ignore[return-value]


register_init(app)
register_nats_env(app)
register_flows(app)
register_health(app)
register_deploy(app)
register_report(app)
register_eval(app)


def main() -> None:
    """Console-script entry point: our errors end in one line and an exit code (`actors.cli.failures`)."""
    run_cli(app)


if __name__ == "__main__":
    main()
