"""Attacks by whoever reaches NATS, each refused: no login, a worker's login used to write plans or send
others' control requests, the LLM gateway asked to send a secret to an attacker, a tool host asked for a
tool no flow pins to it (issue 18, "anyone who can reach NATS owns the system")."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError

from actors.flow import PlanStore
from actors.flow.llm import ChatMessage, LLMReply, LLMRequest
from actors.launch.stack import LocalStack
from actors.runtime import ActorHost
from actors.worker import BusLLMClient, NodeWorker
from actors.worker.tool_host import ToolAnswer, ToolArguments
from bus import AuthFile, Bus, BusError, EmbeddedNats, Role, subjects, topology
from configs import Settings
from tests.conftest import EXAMPLES
from tests.fakes.openai_server import FakeOpenAI, serve
from tests.helpers import plans, until
from tests.support.agents import agent_flow

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

SECRET_ENV = "CA_TEST_AWS_SECRET_ACCESS_KEY"
SECRET = "aws-secret-never-to-leave-0123456789"
KEY_ENV = "CA_TEST_PROVIDER_KEY"
KEY = "sk-flow-declared-key-0123456789"


async def test_a_client_without_credentials_cannot_connect_to_the_embedded_server(nats_server: EmbeddedNats) -> None:
    with pytest.raises(BusError, match="refused the credentials"):
        await Bus(nats_server.url, name="anonymous").connect(timeout_s=5)
    raw = Client()
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await raw.connect(nats_server.url, allow_reconnect=False, connect_timeout=2)
    await raw.close()
    guessed = nats_server.credentials(Role.ADMIN).model_copy(update={"password": None})
    with pytest.raises(BusError, match="refused the credentials"):
        await Bus(nats_server.url, name="guesser", credentials=guessed).connect(timeout_s=5)


def test_the_generated_credentials_and_server_config_are_private_files(nats_server: EmbeddedNats) -> None:
    assert nats_server.auth_file is not None
    config = nats_server.store_dir / "server.conf"
    for path in (nats_server.auth_file, config):
        assert path.stat().st_mode & 0o777 == 0o600, path
    users = json.loads(config.read_text())["authorization"]["users"]
    assert {u["user"] for u in users} == {r.value for r in Role}
    # The passwords are in the files, never on the server's command line.
    assert all(password not in " ".join(_cmdline(nats_server.pid)) for password in _passwords(nats_server.auth_file))


async def test_a_worker_cannot_write_a_plan_nor_point_a_flow_at_another(settings: Settings) -> None:
    demo = plans(EXAMPLES / "demo.yaml")[0]
    async with Bus.of(settings, Role.SCHEDULER, name="scheduler") as scheduler:
        await PlanStore(scheduler.kv(topology.PLANS)).publish(demo)
    async with Bus.of(settings, Role.WORKER, name="worker") as worker:
        kv = worker.kv(topology.PLANS)
        assert (await kv.get(f"{demo.flow}.latest")).value == demo.version.encode()  # reading is allowed
        evil = demo.model_copy(update={"version": "evil"})
        for key, value in ((evil.kv_key(), evil.model_dump_json().encode()), (f"{demo.flow}.latest", b"evil")):
            # The server drops it: nats-py times out waiting for the stream's acknowledgement.
            with pytest.raises((TimeoutError, NatsTimeoutError)):
                await asyncio.wait_for(kv.put(key, value), timeout=3)
        # Not by a raw publish to the bucket's subject either.
        raw = await _raw_client(settings, Role.WORKER)
        await raw.publish(f"$KV.{topology.PLANS}.{demo.flow}.latest", b"evil")
        await raw.flush()
        await raw.close()
    async with Bus.of(settings, Role.ADMIN, name="admin") as admin:
        store = PlanStore(admin.kv(topology.PLANS))
        latest = await store.latest(demo.flow)
        assert latest is not None
        assert latest.version == demo.version
        assert await store.get(demo.flow, "evil") is None


@pytest.mark.parametrize(
    ("subject", "what"),
    [
        (subjects.run_cmd("some-run"), "cancel another's run"),
        (subjects.registry_drain("scheduler-1"), "drain an actor"),
        (subjects.trigger("demo"), "start a run"),
        (subjects.REGISTRY_EXPECT, "tell the registry what to expect"),
    ],
)
async def test_a_worker_cannot_publish_to_another_roles_control_subjects(
    settings: Settings, subject: str, what: str
) -> None:
    heard: list[bytes] = []
    admin = await _raw_client(settings, Role.ADMIN)

    async def hear(msg: Msg) -> None:
        heard.append(msg.data)

    await admin.subscribe(subject, cb=hear)
    await admin.flush()
    worker = await _raw_client(settings, Role.WORKER)
    await worker.publish(subject, b'{"cmd": "cancel"}')
    # Once the server has read the worker's publish (flush), anything it routed is ahead of the marker.
    await worker.flush()
    await admin.publish(subject, b"marker")
    await until(lambda: heard, f"the marker on {subject}")
    await worker.close()
    await admin.close()
    assert heard == [b"marker"], f"a worker could {what}"


async def test_a_worker_cannot_listen_to_what_only_the_scheduler_and_the_gateway_hear(settings: Settings) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    worker = await _raw_client(settings, Role.WORKER, error_cb=on_error)
    for subject in (subjects.TRIGGER_ALL, subjects.RUN_CMD_ALL, subjects.LLM_COMPLETE, "_INBOX.>", ">"):
        await worker.subscribe(subject)
    await worker.flush()
    await until(lambda: len(errors) >= 5, "five subscription violations")
    await worker.close()
    assert all("permissions violation" in e.lower() for e in errors), errors


@pytest.fixture
def attacker() -> Iterator[FakeOpenAI]:
    yield from serve(default_content="thanks for the key")


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    yield from serve(default_content='{"answer": "from the declared provider"}')


FLOW = """
schema_version: "1.0"
flow: {name: declared}
config:
  llm: {model: openai/gpt-4o-mini, api_base: "API_BASE", api_key_env: KEY_ENV}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - {id: ask, prompt: "{state.question}", outputs: [answer]}
edges: [{from: START, to: ask}, {from: ask, to: END}]
"""


@pytest.mark.usefixtures("litellm_state", "no_internet")
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
async def test_the_llm_gateway_never_sends_a_secret_to_an_api_base_a_request_names(
    settings: Settings,
    tmp_path: Path,
    attacker: FakeOpenAI,
    provider: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv(KEY_ENV, KEY)
    flow = tmp_path / "declared.yaml"
    flow.write_text(FLOW.replace("API_BASE", provider.api_base).replace("KEY_ENV", KEY_ENV))
    version = plans(flow)[0].version
    async with (
        LocalStack(settings, plans(flow), embedded=False),
        Bus.of(settings, Role.WORKER, name="forger") as forger,
    ):
        attacks = [
            # the payload: any env var as a bearer token to any host
            ("declared", attacker.api_base, SECRET_ENV),
            # the provider's own default key to the attacker's host
            ("declared", attacker.api_base, None),
            # the declared key to the attacker, the secret to the declared host, no flow at all
            ("declared", attacker.api_base, KEY_ENV),
            ("declared", provider.api_base, SECRET_ENV),
            ("", attacker.api_base, SECRET_ENV),
            ("demo", attacker.api_base, SECRET_ENV),
        ]
        for flow_name, api_base, key_env in attacks:
            for pinned in ({}, {"plan_version": version, "node": "ask"}, {"plan_version": "nope", "node": "ask"}):
                reply = await _ask(forger, flow_name, api_base, key_env, **pinned)
                assert reply.error_kind == "permanent", (flow_name, api_base, key_env, pinned, reply)
                assert "not what flow" in (reply.error or "")
        # A node that declares nothing gets nothing of what another node declares.
        other_node = await _ask(forger, "declared", provider.api_base, KEY_ENV, plan_version=version, node="nope")
        assert other_node.error_kind == "permanent"
        assert attacker.requests == []
        assert provider.requests == []
        # What the flow declares goes through, with the flow's key: the refusals above are the policy.
        allowed = await _ask(forger, "declared", provider.api_base, KEY_ENV)
        exact = await _ask(forger, "declared", provider.api_base, KEY_ENV, plan_version=version, node="ask")
    assert allowed.error is None, allowed.error
    assert exact.error is None, exact.error
    assert [r.authorization for r in provider.requests] == [f"Bearer {KEY}"] * 2
    assert attacker.requests == []


async def test_a_tool_host_serves_only_the_tools_its_flows_pin_to_it(settings: Settings, tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    (box / "notes.txt").write_text("pinned and readable")
    flow = agent_flow(tmp_path, "[{name: file_read, actor: box}]")
    host_settings = settings.model_copy(update={"tool_workspace": box})
    async with Bus.of(settings, Role.SCHEDULER, name="scheduler") as scheduler:
        await PlanStore(scheduler.kv(topology.PLANS)).publish(plans(flow)[0])
    async with Bus.of(host_settings, Role.WORKER, name="box") as bus:
        worker = NodeWorker(
            bus, host_settings, BusLLMClient(bus, timeout_s=5), actor_id="box", only_nodes=frozenset(), serve_tools=True
        )
        async with ActorHost(worker, bus), Bus.of(settings, Role.WORKER, name="caller") as caller:

            async def call(tool: str, args: dict[str, object]) -> ToolAnswer:
                subject = subjects.tool_call("box", tool)
                return await caller.request(subject, ToolArguments(args), ToolAnswer, timeout_s=10)

            read = await until(lambda: _pinned(call), "the box serves its pinned tool")
            written = await call("file_write", {"path": "planted.txt", "content": "owned"})
            env = await call("env_vars", {})
    assert read.result["content"] == "pinned and readable"
    assert "not pinned" in (written.error or "")
    assert "not pinned" in (env.error or "")
    assert env.result is None
    assert not (box / "planted.txt").exists()


async def _pinned(call: object) -> ToolAnswer | None:
    assert callable(call)
    answer: ToolAnswer = await call("file_read", {"path": "notes.txt"})
    return answer if answer.error is None else None


async def _ask(
    bus: Bus, flow: str, api_base: str | None, key_env: str | None, *, plan_version: str = "", node: str = ""
) -> LLMReply:
    request = LLMRequest(
        model="openai/gpt-4o-mini",
        messages=[ChatMessage(role="user", content="hello")],
        flow=flow,
        plan_version=plan_version,
        node=node,
        api_base=api_base,
        api_key_env=key_env,
        timeout_s=10,
    )
    return await bus.request(subjects.LLM_COMPLETE, request, LLMReply, timeout_s=30)


async def _raw_client(settings: Settings, role: Role, **options: object) -> Client:
    assert settings.nats_auth_file is not None
    login = AuthFile.read(settings.nats_auth_file).credentials(role).connect_options()
    return await nats.connect(settings.nats_url, allow_reconnect=False, **login, **options)  # type: ignore[arg-type]


def _passwords(auth_file: Path) -> list[str]:
    return list(json.loads(auth_file.read_text())["users"].values())


def _cmdline(pid: int | None) -> list[str]:
    assert pid is not None
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
