"""The `ca-actors` command line, run as a user would run it."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import EmbeddedNats
from configs import Settings
from tests.conftest import EXAMPLES, ROOT, SEEDS
from tests.helpers import until_sync
from tests.support.cli import CLI, child_pids, cli, start_up, stop, wait_exited


def test_help_explains_every_command() -> None:
    out = cli("--help").stdout
    commands = ("up", "run", "validate", "schema", "trigger", "runs", "cancel", "agent", "agents", "bench")
    for command in (*commands, "report", "eval", "ab"):
        assert command in out


def test_validate_accepts_every_seed_file() -> None:
    result = cli("validate", str(SEEDS))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok  ") == len(list(SEEDS.glob("*.yaml")))


def test_validate_reports_every_error_with_file_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (SEEDS / "article_writer.yaml")
        .read_text()
        .replace("outputs: [research]", "outputs: [reserch]")
        .replace("{from: write, to: END}", "{from: write, to: ENDD}")
    )
    result = cli("validate", str(bad))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert any(f"{bad}:" in line and "reserch" in line and "'research'" in line for line in lines), result.stderr
    assert any("ENDD" in line and "'END'" in line for line in lines), result.stderr
    for line in lines:
        if line.startswith(str(bad)):
            _, line_no, column, *_ = line.split(":")
            assert int(line_no) > 0
            assert int(column) > 0


def test_validate_reports_malformed_yaml_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("flow:\n  name: x\nnodes: [\n")
    result = cli("validate", str(bad))
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_prints_the_json_schema_of_the_language() -> None:
    result = cli("schema")
    schema = json.loads(result.stdout)
    assert "nodes" in json.dumps(schema)
    assert "edges" in json.dumps(schema)


def test_run_prints_the_result_as_json_and_exits_zero() -> None:
    result = cli("run", str(SEEDS / "simple_workflow.yaml"), "-i", "name=Ada", "--llm", "mock", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) >= {"run_id", "status", "state", "steps", "error"}
    assert out["status"] == "succeeded"
    assert out["state"]["name"] == "Ada"
    assert out["steps"][0]["node"] == "greet"
    assert set(out["steps"][0]) >= {"node", "iteration", "index", "status", "duration_ms"}


def test_run_takes_inputs_as_json(tmp_path: Path) -> None:
    result = cli(
        "run",
        str(SEEDS / "nested_state.yaml"),
        "--input-json",
        '{"name": "Ada", "interests": ["maths"]}',
        "--llm",
        "mock",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"]["interests"] == ["maths"]


def test_run_refuses_bad_inputs_before_starting_a_stack() -> None:
    missing = cli("run", str(SEEDS / "echo.yaml"), "--json")
    assert missing.returncode == 2
    assert missing.stdout == ""
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "message" in line
    wrong = cli("run", str(SEEDS / "nested_state.yaml"), "--input-json", '{"name": "Ada", "interests": 3}')
    assert wrong.returncode == 2
    assert "interests" in wrong.stderr


def test_run_refuses_an_invalid_file_before_starting_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((SEEDS / "echo.yaml").read_text().replace("outputs: [result]", "outputs: [reslt]"))
    result = cli("run", str(bad))
    assert result.returncode == 2
    assert "reslt" in result.stderr


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    return tmp_path


@pytest.mark.timeout(120)
def test_up_starts_actor_processes_serves_triggers_and_stops_cleanly(stack_dir: Path) -> None:
    proc, lines = start_up(stack_dir, "--workers", "2", "--llm", "mock")
    try:
        url = next(line.split()[-1] for line in lines if line.startswith("NATS:"))
        assert url.startswith("nats://127.0.0.1:")
        children = child_pids(proc.pid)
        # nats-server, scheduler, registry, memory, observer, llm-gateway, two workers and the dashboard, each
        # its own process.
        assert len(children) == 9
        result = cli(
            "trigger", "demo", "-i", "topic=processes", "--wait", "--json", "--data-dir", str(stack_dir),
            "--session", "chat-7",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["status"] == "succeeded"
        assert [s["node"] for s in out["steps"]] == ["outline", "draft", "title"]
        listed = json.loads(cli("runs", "--json", "--data-dir", str(stack_dir)).stdout)
        assert [r["run_id"] for r in listed] == [out["run_id"]]

        # The observer process writes the run's history (and trace) shortly after it ends.
        def profiled() -> subprocess.CompletedProcess[str] | None:
            shown = cli("report", "profile", out["run_id"], "--json", "--data-dir", str(stack_dir))
            return None if shown.returncode else shown

        profile = until_sync(profiled, "the observer has written the run's history", timeout_s=60)
        critical = json.loads(profile.stdout)["critical_path"]
        assert [step_id.split(".")[1] for step_id in critical] == ["outline", "draft", "title"]
        history = json.loads(cli("runs", "--store", f"sqlite:///{stack_dir / 'store.db'}", "--json").stdout)
        assert [(h["run_id"], h["source"], h["session"]) for h in history] == [(out["run_id"], "cli", "chat-7")]
        # One shape, wherever a run is read from.
        assert set(history[0]) == set(listed[0])
        # The same values too, but for the times (the stack's record and the events each have their clock).
        same = {"run_id", "flow", "status", "plan_version", "inputs", "state", "error", "source", "session"}
        assert {k: history[0][k] for k in same} == {k: listed[0][k] for k in same}
        stored = cli("runs", "show", out["run_id"], "--json", "--store", f"sqlite:///{stack_dir / 'store.db'}")
        assert json.loads(stored.stdout)["status"] == "succeeded", stored.stderr
        plain = cli("trigger", "echo", "-i", "message=hi", "--nats", url, "--data-dir", str(stack_dir))
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout.strip()
        # Secure by default: no anonymous client, private files, no URL or password on any command line.
        anonymous = cli("trigger", "echo", "-i", "message=hi", "--nats", url, "--data-dir", str(stack_dir / "other"))
        assert anonymous.returncode != 0
        assert "refused the credentials" in anonymous.stderr
        # Any client logs in as `cli` with what `nats-env` prints (the `nats` tool reads these variables).
        exported = dict(w.split("=", 1) for w in shlex.split(cli("nats-env", "--data-dir", str(stack_dir)).stdout)[1:])
        assert exported["NATS_URL"] == url
        assert exported["NATS_USER"] == "cli"
        login = {"CA_NATS_USER": "cli", "CA_NATS_PASSWORD": exported["NATS_PASSWORD"]}
        by_env = cli(
            "trigger", "echo", "-i", "message=hi", "--nats", url, "--data-dir", str(stack_dir / "other"), env=login
        )
        assert by_env.returncode == 0, by_env.stderr
        for name in ("nats-auth.json", "stack.json", "store.db", "nats/server.conf"):
            assert (stack_dir / name).stat().st_mode & 0o077 == 0, name
        passwords = json.loads((stack_dir / "nats-auth.json").read_text())["users"].values()
        for pid in children:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
            assert "--nats" not in argv
            assert not [p for p in passwords if p in argv]
    finally:
        stop(proc, children)
    assert not (stack_dir / "stack.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--nats", "nats://svc:hunter2-secret@127.0.0.1:4222"],
        ["up", "--store", "postgresql://app:hunter2-secret@127.0.0.1/app"],
        ["run", "configs/examples/demo.yaml", "--llm", "mock", "--nats", "nats://svc:hunter2-secret@127.0.0.1:1"],
        ["trigger", "demo", "--nats", "nats://hunter2-secret@127.0.0.1:1"],
    ],
    ids=["up-nats", "up-store", "run-nats", "trigger-token"],
)
def test_a_password_in_a_url_on_the_command_line_is_refused_and_never_echoed(args: list[str], tmp_path: Path) -> None:
    result = cli(*args, "--data-dir", str(tmp_path)) if args[0] != "run" else cli(*args)
    assert result.returncode == 2, result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr
    assert "***" in result.stderr
    assert "CA_NATS_PASSWORD" in result.stderr or "CA_STORE_URL" in result.stderr


@pytest.mark.timeout(120)
def test_up_uses_an_external_nats_server_when_given_one(stack_dir: Path, nats_server: EmbeddedNats) -> None:
    # The external server's users (each actor logs in as its role) are named in the environment.
    login = {"CA_NATS_AUTH_FILE": str(nats_server.auth_file)}
    proc, lines = start_up(stack_dir, "--nats", nats_server.url, "--flows", str(EXAMPLES), env=login)
    try:
        assert f"NATS: {nats_server.url}" in lines
        children = child_pids(proc.pid)
        assert len(children) == 7, "no embedded nats-server when --nats is given (six actors and the dashboard)"
        result = cli(
            "trigger", "echo", "-i", "message=external", "--wait", "--json", "--nats", nats_server.url, env=login
        )  # fmt: skip
        assert json.loads(result.stdout)["state"]["message"] == "external"
    finally:
        stop(proc, children)


def test_run_fails_fast_naming_the_missing_provider_key(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text((SEEDS / "echo.yaml").read_text() + "config:\n  llm: {model: anthropic/claude-3-5-haiku-latest}\n")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    result = subprocess.run(
        [*CLI, "run", str(flow), "-i", "message=hi", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["status"] == "failed"
    assert "ANTHROPIC_API_KEY" in out["error"]


def test_run_with_the_langgraph_engine_gives_the_bus_engine_result() -> None:
    flow = str(EXAMPLES / "research_team.yaml")
    bus = cli("run", flow, "-i", "topic=NATS", "--llm", "mock", "--json")
    langgraph = cli("run", flow, "-i", "topic=NATS", "--llm", "mock", "--json", "--engine", "langgraph")
    assert bus.returncode == 0, bus.stderr
    assert langgraph.returncode == 0, langgraph.stderr
    assert "Warning" not in langgraph.stderr
    on_bus, in_process = json.loads(bus.stdout), json.loads(langgraph.stdout)
    assert on_bus["state"] == in_process["state"]
    key = lambda s: (s["node"], s["iteration"], s["index"])  # noqa: E731
    assert sorted(map(key, on_bus["steps"])) == sorted(map(key, in_process["steps"]))


@pytest.mark.timeout(120)
def test_runs_show_lists_steps_and_dead_letters(stack_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("echo:\n  - {result: [not, a, string]}\n")
    proc, _ = start_up(stack_dir, "--llm", "mock", "--mock-script", str(script))
    children = child_pids(proc.pid)
    try:
        result = cli("trigger", "echo", "-i", "message=hi", "--wait", "--json", "--data-dir", str(stack_dir))
        out = json.loads(result.stdout)
        assert out["status"] == "failed"
        shown = cli("runs", "show", out["run_id"], "--json", "--data-dir", str(stack_dir))
        details = json.loads(shown.stdout)
        assert details["steps"][0]["status"] == "failed"
        assert details["dead_letters"][0]["node"] == "echo"
        text = cli("runs", "show", out["run_id"], "--data-dir", str(stack_dir)).stdout
        assert "dead letter:" in text
    finally:
        stop(proc, children)


@pytest.mark.timeout(120)
def test_ctrl_c_on_the_terminal_stops_up_without_errors(stack_dir: Path) -> None:
    """Ctrl-C signals the whole foreground process group: supervisor, actors and nats-server alike."""
    err = stack_dir / "stderr.log"
    with err.open("w") as errors:
        proc = subprocess.Popen(
            [*CLI, "up", "--data-dir", str(stack_dir), "--llm", "mock", "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready" in line:
                break
        children = child_pids(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=30)
        proc.stdout.close()
    assert code == 0
    wait_exited(children)
    assert "Traceback" not in err.read_text()


def _descendants(pid: int) -> list[int]:
    found = child_pids(pid)
    return found + [d for c in found for d in _descendants(c)]


@pytest.mark.timeout(240)
def test_up_with_mlflow_serves_the_traces_of_its_runs_and_stops_the_server(stack_dir: Path) -> None:
    proc, lines = start_up(stack_dir, "--llm", "mock", "--mlflow")
    try:
        ui = next(line.split()[2] for line in lines if line.startswith("MLflow UI:"))
        everything = _descendants(proc.pid)  # again once the server is up: it starts workers of its own
        result = cli("trigger", "echo", "-i", "message=traced", "--wait", "--json", "--data-dir", str(stack_dir))
        run_id = json.loads(result.stdout)["run_id"]

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{ui}/health", timeout=2) as health:
                    return bool(health.status == 200)
            except OSError:
                return False

        # The MLflow server takes 15-60 s to start here.
        until_sync(healthy, "the MLflow server answers /health", timeout_s=150, every_s=1)
        everything = _descendants(proc.pid)
        with urllib.request.urlopen(ui, timeout=10) as page:
            assert page.headers.get("X-Frame-Options") is None, "the dashboard must be able to frame the UI"
        # The run's trace, through the server's REST API (the observer wrote it to the same store).
        client = python(
            "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "e = mlflow.get_experiment_by_name('ca-actors'); "
            "t = mlflow.search_traces(locations=[e.experiment_id], return_type='list', "
            "filter_string=f\"tag.`ca.run_id` = '{sys.argv[2]}'\"); "
            "print(len(t), t[0].data.spans[0].name)",
            ui,
            run_id,
        )
        assert client.stdout.split() == ["1", "echo"], client.stderr
        assert not [line for line in lines if "error" in line.lower()]
    finally:
        stop(proc, everything)


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


@pytest.mark.timeout(120)
def test_up_runs_in_a_folder_that_has_its_own_configs_bus_and_store_packages(tmp_path: Path) -> None:
    for shadow in ("configs", "bus", "store", "actors"):
        (tmp_path / shadow).mkdir()
        (tmp_path / shadow / "__init__.py").write_text("raise ImportError('the user folder shadows the package')\n")
    console_script = Path(sys.executable).parent / "ca-actors"
    proc = subprocess.Popen(
        [str(console_script), "up", "--data-dir", str(tmp_path / ".ca"), "--llm", "mock", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        lines = [proc.stdout.readline().strip() for _ in range(5)]
        assert any("ready" in line for line in lines), lines
        children = child_pids(proc.pid)
        result = cli("trigger", "echo", "-i", "message=hi", "--wait", "--json", "--data-dir", str(tmp_path / ".ca"))
        assert json.loads(result.stdout)["status"] == "succeeded", result.stderr
    finally:
        stop(proc, children)


@pytest.mark.timeout(180)
def test_a_second_up_in_the_same_folder_exits_at_once_naming_the_running_stack(stack_dir: Path) -> None:
    proc, lines = start_up(stack_dir, "--llm", "mock")
    try:
        url = next(line.split()[-1] for line in lines if line.startswith("NATS:"))
        children = child_pids(proc.pid)
        second = cli("up", "--data-dir", str(stack_dir), "--llm", "mock", "--log-level", "warning")
        assert second.returncode == 3
        [message] = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert f"pid {proc.pid}" in message
        assert url in message
        assert "--data-dir" in message
        # The first stack is untouched and still found through its stack.json.
        result = cli("trigger", "echo", "-i", "message=hi", "--wait", "--json", "--data-dir", str(stack_dir))
        assert json.loads(result.stdout)["status"] == "succeeded", result.stderr
    finally:
        stop(proc, children)
    assert not (stack_dir / "stack.json").exists(), "the owner removes its stack.json when it stops"


@pytest.mark.timeout(120)
def test_up_takes_over_a_folder_left_by_a_stack_that_died_with_a_warning(stack_dir: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stack_dir.mkdir(exist_ok=True)
    (stack_dir / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:1", "pid": dead.pid}))
    proc = subprocess.Popen(
        [*CLI, "up", "--data-dir", str(stack_dir), "--llm", "mock", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not any("ready" in line for line in lines):
        line = proc.stdout.readline()
        assert line, lines
        lines.append(line.strip())
    children = child_pids(proc.pid)
    try:
        assert any(line.startswith("warning: taking over") and str(dead.pid) in line for line in lines), lines
        url = json.loads((stack_dir / "stack.json").read_text())["nats_url"]
        assert url != "nats://127.0.0.1:1"
    finally:
        stop(proc, children)


def _command_paths() -> list[list[str]]:
    import click
    import typer.main

    from actors.cli import app

    paths: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        paths.append(path)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_no_help_text_loses_words_to_markup() -> None:
    from typer.testing import CliRunner

    from actors.cli import app

    runner = CliRunner()
    for path in _command_paths():
        result = runner.invoke(app, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        flat = " ".join(result.output.split())
        for empty in ("()", "( )", "[]", "[ ]"):
            assert empty not in flat, (path, empty)
    assert "(needs [mlflow])" in " ".join(runner.invoke(app, ["run", "--help"]).output.split())


def test_version_is_printed() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("ca-actors ")


@pytest.mark.timeout(180)
def test_runs_started_at_once_get_distinct_ids_and_each_keeps_its_history_row(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["run", str(EXAMPLES / "echo.yaml"), "-i", "message=hi", "--llm", "mock", "--json", "--store", store]
    procs = [
        subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(4)
    ]
    outs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err for _, err in outs]
    ids = {json.loads(out)["run_id"] for out, _ in outs}
    assert len(ids) == 4
    history = json.loads(cli("runs", "--store", store, "--json").stdout)
    assert {h["run_id"] for h in history} == ids


@pytest.mark.timeout(180)
def test_a_stack_restarted_with_fewer_flows_serves_only_those(stack_dir: Path, tmp_path: Path) -> None:
    both, one = tmp_path / "both", tmp_path / "one"
    both.mkdir()
    one.mkdir()
    for name in ("demo.yaml", "echo.yaml"):
        (both / name).write_text((EXAMPLES / name).read_text())
    (one / "echo.yaml").write_text((EXAMPLES / "echo.yaml").read_text())
    proc, _ = start_up(stack_dir, "--llm", "mock", "--flows", str(both))
    stop(proc, child_pids(proc.pid))
    proc, lines = start_up(stack_dir, "--llm", "mock", "--flows", str(one))
    try:
        children = child_pids(proc.pid)
        assert any(line.startswith("no longer served") and "demo" in line for line in lines), lines
        served = json.loads(cli("flows", "--json", "--data-dir", str(stack_dir)).stdout)
        assert [(f["flow"], f["nodes"]) for f in served] == [("echo", 1)]
        refused = cli("trigger", "demo", "-i", "topic=x", "--data-dir", str(stack_dir))
        assert refused.returncode == 1
        assert "flow 'demo' is not served by this stack" in refused.stderr
    finally:
        stop(proc, children)


UNREACHABLE_STORES = ["postgresql://ca@127.0.0.1:1/none", "redis://127.0.0.1:1/0"]


@pytest.mark.parametrize("store", UNREACHABLE_STORES)
@pytest.mark.parametrize(
    "command",
    [
        ["run", str(EXAMPLES / "echo.yaml"), "-i", "message=hi", "--llm", "mock"],
        ["runs"],
        ["memory", "list"],
        ["memory", "show", "flow/echo/node/echo/default"],
        ["memory", "clear", "--flow", "echo"],
        ["report", "costs"],
        ["up", "--llm", "mock"],
    ],
    ids=lambda c: " ".join(c[:2]) if c[0] != "run" else "run",
)
@pytest.mark.timeout(120)
def test_an_unreachable_store_is_one_line_and_a_distinct_exit_code(
    command: list[str], store: str, tmp_path: Path
) -> None:
    where = [] if command[0] == "run" else ["--data-dir", str(tmp_path)]
    result = cli(*command, "--store", store, *where, timeout=90)
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert errors[-1].startswith("error: ")
    assert "127.0.0.1:1" in errors[-1]
    assert [line for line in errors if not line.startswith(("error: ", "LLM: "))] == []


def test_a_bad_store_url_is_one_line_and_the_usage_exit_code(tmp_path: Path) -> None:
    result = cli("runs", "--store", "bogus://somewhere")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: store: choose backend failed: unknown store URL scheme 'bogus'; "
        "valid schemes: postgres, postgresql, redis, rediss, sqlite"
    ]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = cli("--debug", "runs", "--store", "redis://127.0.0.1:1/0")
    assert "Traceback" in result.stderr


def test_memory_list_rejects_an_unknown_scope_naming_the_valid_ones(tmp_path: Path) -> None:
    result = cli("memory", "list", "--scope", "bogus", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "valid: node, agent, workflow" in result.stderr


def test_memory_show_of_a_missing_key_says_so_and_exits_1(tmp_path: Path) -> None:
    result = cli("memory", "show", "flow/nothing/node/x/default", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "no memory under 'flow/nothing/node/x/default'" in result.stderr


async def test_cancel_and_drain_answer_in_sentences_and_json_only_when_asked(
    settings: Settings, tmp_path: Path
) -> None:
    from actors.launch import LocalStack
    from tests.helpers import linear_flow, plans, start_run, write_flow

    flow = write_flow(tmp_path / "slow.yaml", linear_flow("slow", ["a", "b"]))
    s = settings.model_copy(update={"llm_override": "mock/3000ms"})
    async with LocalStack(s, plans(flow)) as stack:
        assert stack.client is not None
        run_id = await start_run(stack.client, "slow", {"topic": "t"})
        # The stack's server admits only its users: the commands log in as `cli` from its auth file.
        login = {"CA_NATS_AUTH_FILE": str(stack.settings.nats_auth_file)}
        done = await asyncio.to_thread(cli, "cancel", run_id, "--nats", stack.url, env=login)
        again = await asyncio.to_thread(cli, "cancel", run_id, "--json", "--nats", stack.url, env=login)
        drain = await asyncio.to_thread(cli, "agents", "drain", "nobody", "--nats", stack.url, env=login)
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"cancelled {run_id}: its steps in flight finish, nothing after them runs",
    )
    assert json.loads(again.stdout) == {"run_id": run_id, "status": "cancelled"}
    assert drain.returncode == 1
    assert drain.stderr.strip() == "cannot drain nobody: no actor nobody answered"


NAMED_MODEL_FLOW = """
schema_version: "1.0"
flow: {name: named_model}
state:
  fields:
    topic: {type: str, required: true}
    answer: {type: str}
nodes:
  - id: answer
    prompt: "Answer about {topic}."
    outputs: [answer]
edges:
  - {from: START, to: answer}
  - {from: answer, to: END}
config:
  llm: {model: openai/gpt-4o-mini, api_base: "API_BASE", api_key_env: NAMED_MODEL_KEY}
"""


@pytest.mark.timeout(120)
def test_up_serves_each_flow_with_its_own_model_and_the_default_only_where_none_is_named(
    stack_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.openai_server import FakeOpenAI

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "demo.yaml").write_text((EXAMPLES / "demo.yaml").read_text())
    monkeypatch.setenv("NAMED_MODEL_KEY", "sk-test-not-a-real-key")
    with FakeOpenAI(default_content='{"answer": "from the flow\'s own model"}') as fake:
        (flows / "named.yaml").write_text(NAMED_MODEL_FLOW.replace("API_BASE", fake.api_base))
        proc, lines = start_up(stack_dir, "--flows", str(flows))  # --llm auto: no Ollama here, so mock
        try:
            children = child_pids(proc.pid)
            served = next(line for line in lines if line.startswith("flows:"))
            assert "demo (mock)" in served
            assert "named_model (openai/gpt-4o-mini)" in served
            named = cli("trigger", "named_model", "-i", "topic=x", "--wait", "--json", "--data-dir", str(stack_dir))
            demo = cli("trigger", "demo", "-i", "topic=x", "--wait", "--json", "--data-dir", str(stack_dir))
        finally:
            stop(proc, children)
        assert json.loads(named.stdout)["state"]["answer"] == "from the flow's own model", named.stderr
        assert {r.model for r in fake.requests} == {"gpt-4o-mini"}
    assert json.loads(demo.stdout)["status"] == "succeeded"
    assert len(fake.requests) == 1, "the demo, which names no model, went to the default (mock)"


def test_init_writes_a_starter_flow_that_validates_and_runs_as_written(tmp_path: Path) -> None:
    from tests.support.cli import run_line

    made = cli("init", "starter", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "ca-actors run starter.yaml" in made.stdout
    checked = cli("validate", ".", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "ok  starter.mock.yaml" in checked.stdout
    result = cli(*run_line(tmp_path / "starter.yaml"), "--json", cwd=tmp_path)
    assert json.loads(result.stdout)["state"]["answer"].startswith("A short answer about actors and messages")
    again = cli("init", "starter", cwd=tmp_path)
    assert again.returncode == 2
    assert "--force" in again.stderr
