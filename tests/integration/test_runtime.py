"""A flow runs end to end on real NATS with the scheduler, a worker and the LLM gateway as actors."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from actors.launch.stack import LocalStack
from actors.scheduler.messages import TriggerInputs
from bus import AuthFile, Bus, EmbeddedNats, Role, subjects
from configs import Settings
from tests.conftest import EXAMPLES, ROOT, SEEDS
from tests.helpers import (
    EventLog,
    linear_flow,
    node_names,
    outside_client,
    plans,
    run_flow,
    trigger,
    write_flow,
    write_script,
)

LINEAR_SEEDS: dict[str, dict[str, Any]] = {
    "echo.yaml": {"message": "hello"},
    "simple_workflow.yaml": {"name": "Ada"},
    "article_writer.yaml": {"topic": "actors"},
    "nested_state.yaml": {"name": "Ada", "interests": ["maths", "engines"]},
    "tools_example.yaml": {"topic": "nats", "output_file": "/tmp/out.txt"},
}


@pytest.mark.parametrize("seed", sorted(LINEAR_SEEDS))
async def test_every_linear_seed_flow_runs_with_the_mock_model(seed: str, settings: Settings) -> None:
    flow_plans = plans(SEEDS / seed)
    flow = flow_plans[0]
    async with LocalStack(settings.model_copy(update={"llm_override": "mock"}), flow_plans, embedded=False) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, flow.flow, LINEAR_SEEDS[seed])
    assert result["status"] == "succeeded", result
    assert node_names(result) == [n.id for n in flow.spec.nodes]
    for node in flow.spec.nodes:
        for output in node.outputs:
            assert result["state"][output] not in ("", None), f"{node.id} did not set {output}"


async def test_nested_state_profile_comes_back_as_an_object_with_the_declared_types(settings: Settings) -> None:
    flow_plans = plans(SEEDS / "nested_state.yaml")
    async with LocalStack(settings.model_copy(update={"llm_override": "mock"}), flow_plans, embedded=False) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, "user_profile_generator", LINEAR_SEEDS["nested_state.yaml"])
    profile = result["state"]["profile"]
    assert isinstance(profile["bio"], str)
    assert isinstance(profile["engagement_score"], int)
    assert all(isinstance(t, str) for t in profile["personality_traits"])
    assert all(isinstance(t, str) for t in profile["recommended_topics"])


async def test_mock_outputs_differ_with_inputs_and_repeat_with_the_same_inputs(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        first = await run_flow(stack.client, "echo", {"message": "one"})
        again = await run_flow(stack.client, "echo", {"message": "one"})
        other = await run_flow(stack.client, "echo", {"message": "two"})
    assert first["state"]["result"] == again["state"]["result"]
    assert first["state"]["result"] != other["state"]["result"]
    assert first["run_id"] != again["run_id"]


async def test_a_plain_publish_without_a_reply_still_runs(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        await stack.client.send(subjects.trigger("echo"), TriggerInputs({"message": "fire and forget"}))
        finished = await log.wait_for("run.finished")
    assert finished.data.state["message"] == "fire and forget"
    assert next(e.kind for e in log.events if e.run_id == finished.run_id) == "run.started"


async def test_event_payloads_are_json_objects_carrying_their_kind(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        seen: list[tuple[str, dict[str, Any]]] = []
        ended = asyncio.Event()

        async def on(msg: Any) -> None:
            seen.append((msg.subject, json.loads(msg.data)))
            if seen[-1][1]["kind"] == "run.finished":
                ended.set()

        await stack.client.subscribe(subjects.EVENTS_ALL, on)
        result = await run_flow(stack.client, "echo", {"message": "x"})
        # The reply can overtake the run's last events on this plain subscription.
        await asyncio.wait_for(ended.wait(), timeout=10)
    run_id = result["run_id"]
    kinds = [body["kind"] for subject, body in seen]
    assert kinds == ["run.started", "node.started", "llm.called", "llm.finished", "node.finished", "run.finished"]
    for subject, body in seen:
        assert subject == f"ca.evt.{run_id}.{body['kind']}"
        assert body["run_id"] == run_id


async def test_bad_trigger_payloads_are_rejected_and_the_scheduler_keeps_serving(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        log = await EventLog().start(bus)
        async with outside_client(stack.url, settings.nats_auth_file) as nc:  # bytes no typed client would send
            for payload in (b"not json", b"[1, 2]", b'{"mesage": "typo"}', b'{"message": {"not": "a string"}}'):
                reply = json.loads((await nc.request(subjects.trigger("echo"), payload, timeout=10)).data)
                assert set(reply) == {"run_id", "status", "error"}
                assert reply["status"] == "rejected"
                assert reply["error"]
            unknown = json.loads((await nc.request(subjects.trigger("ecko"), b"{}", timeout=10)).data)
        good = await run_flow(bus, "echo", {"message": "still here"})
    assert good["status"] == "succeeded"
    rejected = log.of("run.rejected")
    assert len(rejected) == 5
    reasons = " | ".join(e.data.error for e in rejected)
    assert "not valid JSON" in reasons
    assert "mesage" in reasons
    assert unknown["status"] == "rejected"
    assert "did you mean 'echo'" in unknown["error"]


async def test_a_trigger_published_while_no_actor_runs_is_run_when_they_come_up(settings: Settings) -> None:
    async with Bus.of(settings, Role.ADMIN, name="early-client") as bus:
        await bus.send(subjects.trigger("echo"), TriggerInputs({"message": "queued"}))
        await bus.flush()
        log = await EventLog().start(bus)
        async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False):
            finished = await log.wait_for("run.finished")
    assert finished.data.state["message"] == "queued"


async def test_a_bad_output_is_retried_with_the_validation_error(settings: Settings, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.yaml", {"echo": [{"result": ["not", "a", "string"]}, {"result": "ok {message}"}]}
    )
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "echo", {"message": "hi"})
    assert result["status"] == "succeeded"
    assert result["state"]["result"] == "ok hi"
    retry = log.of("node.retry")
    assert len(retry) == 1
    assert "result" in retry[0].data.error


async def test_a_node_that_never_answers_validly_fails_the_run(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "f.yaml", linear_flow("stubborn", ["a", "b"], max_retries=2))
    script = write_script(tmp_path / "script.yaml", {"a": [{"a": 42}]})
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "stubborn", {"topic": "t"})
    assert result["status"] == "failed"
    assert "'a'" in result["error"]
    assert "3 attempts" in result["error"]
    assert [(s["node"], s["status"]) for s in result["steps"]] == [("a", "failed")]
    assert len(log.of("node.retry")) == 2
    assert len(log.of("node.failed")) == 1
    assert len(log.of("run.failed")) == 1
    assert not log.of("node.started")[1:], "node b must never start"


async def test_the_execution_timeout_fails_a_slow_run(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "f.yaml", linear_flow("slow", ["a", "b", "c"], timeout=0.6))
    s = settings.model_copy(update={"llm_override": "mock/400ms"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, "slow", {"topic": "t"})
    assert result["status"] == "failed"
    assert "timed out after 0.6s" in result["error"]
    assert len(result["steps"]) < 3


async def test_a_cancelled_run_starts_no_further_node(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(tmp_path / "f.yaml", linear_flow("cancellable", ["a", "b", "c"]))
    s = settings.model_copy(update={"llm_override": "mock/300ms"})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        bus = stack.client
        assert bus is not None
        log = await EventLog().start(bus)
        async with outside_client(stack.url, settings.nats_auth_file) as nc:
            reply = json.loads((await nc.request(subjects.trigger("cancellable"), b'{"topic": "t"}', timeout=10)).data)
            await log.wait_for("node.started", run_id=reply["run_id"])
            answer = json.loads(
                (await nc.request(subjects.run_cmd(reply["run_id"]), b'{"cmd": "cancel"}', timeout=10)).data
            )
        await log.wait_for("run.cancelled")
        # The step of `a` in flight at the cancel ends as discarded, where its worker would otherwise start `b`.
        discarded = await log.wait_for("node.discarded", run_id=reply["run_id"])
    assert set(reply) == {"run_id", "status"}
    assert answer == {"run_id": reply["run_id"], "status": "cancelled"}
    assert discarded.node == "a"
    assert [e.node for e in log.of("node.started")] == ["a"]
    assert not log.of("run.finished")


async def test_node_inputs_and_bare_placeholders_reach_the_prompt(settings: Settings, tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path / "f.yaml",
        """
schema_version: "1.0"
flow: {name: templated}
state:
  fields:
    user: {type: object, schema: {name: str, city: str}, required: true}
    line: {type: str, default: ""}
nodes:
  - id: greet
    inputs: {who: state.user.name}
    prompt: "Hello {who} from {state.user.city} and {{literal}} {user.name}"
    outputs: [line]
    output_schema: {type: object, fields: [{name: line, type: str}]}
edges: [{from: START, to: greet}, {from: greet, to: END}]
""",
    )
    script = write_script(tmp_path / "s.yaml", {"greet": [{"line": "{who}|{state.user.city}"}]})
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, "templated", {"user": {"name": "Ada", "city": "London"}})
    assert result["state"]["line"] == "Ada|London"


async def test_a_run_on_an_embedded_server_cleans_up_after_itself(tmp_path: Path) -> None:
    settings = Settings()
    async with LocalStack(settings, plans(EXAMPLES / "demo.yaml"), store_dir=tmp_path) as stack:
        assert stack.client is not None
        result = await run_flow(stack.client, "demo", {"topic": "clean-up"})
        url = stack.url
    assert result["status"] == "succeeded"
    with pytest.raises(Exception, match="cannot connect"):
        await Bus(url, name="late").connect(timeout_s=0.5)


async def test_the_embedded_server_reports_a_port_already_in_use(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    from configs.errors import BusError

    clash = EmbeddedNats(tmp_path / "other", port=nats_server.port)
    with pytest.raises(BusError, match="nats-server"):
        await clash.start(timeout_s=5)
    await clash.close()


async def test_the_readmes_nats_py_snippet_reads_a_runs_events_from_the_first(settings: Settings) -> None:
    import sys

    async with LocalStack(settings.model_copy(update={"llm_override": "mock"}), plans(EXAMPLES / "demo.yaml")) as stack:
        snippet = ROOT / "docs" / "examples" / "follow_run.py"
        # As the README says: the stack's `cli` user, from its nats-auth.json.
        assert stack.settings.nats_auth_file is not None
        password = AuthFile.read(stack.settings.nats_auth_file).credentials(Role.CLI).password
        assert password is not None
        env = {**os.environ, "NATS_USER": "cli", "NATS_PASSWORD": password.get_secret_value()}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(snippet), stack.url, "demo", '{"topic": "snippets"}',
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    kinds = [line.split()[0] for line in out.decode().splitlines()[1:]]
    assert kinds[0] == "run.started"
    assert kinds[-1] == "run.finished"
    assert kinds.count("node.finished") == 3


async def test_triggers_with_one_idempotency_key_start_one_run_and_all_get_its_id(settings: Settings) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        once = {"Nats-Msg-Id": "order-42"}
        first = await trigger(stack.client, "echo", {"message": "hi"}, headers=once)
        again = await trigger(stack.client, "echo", {"message": "hi"}, headers=once)
        # The key wins over the inputs: a retry that changed them still names the first run.
        changed = await trigger(stack.client, "echo", {"message": "changed"}, headers=once)
        other = await trigger(stack.client, "echo", {"message": "hi"}, headers={"Nats-Msg-Id": "order-43"})
        await log.wait_for("run.finished", count=2)
    assert first.run_id is not None
    assert again.run_id == changed.run_id == first.run_id
    assert other.run_id not in (None, first.run_id)
    assert sorted(e.run_id for e in log.of("run.started")) == sorted([first.run_id, other.run_id])


async def test_a_trigger_whose_answer_was_lost_is_answered_when_asked_again_with_its_key(
    settings: Settings, nats_server: EmbeddedNats
) -> None:
    async with LocalStack(settings, plans(SEEDS / "echo.yaml"), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        body = json.dumps({"message": "lost"}).encode()
        async with outside_client(nats_server.url, settings.nats_auth_file) as nc:  # stored and run; nobody hears it
            await nc.publish(subjects.trigger("echo"), body, headers={"Nats-Msg-Id": "k-1"})
        started = await log.wait_for("run.started")
        answer = await trigger(stack.client, "echo", {"message": "lost"}, headers={"Nats-Msg-Id": "k-1"})
        await log.wait_for("run.finished")
    assert answer.run_id == started.run_id
    assert len(log.of("run.started")) == 1
