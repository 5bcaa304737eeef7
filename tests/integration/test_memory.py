"""Long-term memory through the memory actor and the store, on a stack in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.launch.stack import LocalStack
from configs import Settings
from store import open_store
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import plans, run_flow, write_flow, write_script
from tests.support.memory import CHAT, SCRIPT, chat_flow

# litellm keeps process-wide logging state across event loops (see conftest.litellm_state).
pytestmark = pytest.mark.usefixtures("litellm_state")


async def chat(settings: Settings, tmp_path: Path, messages: list[tuple[str, str]], **kw: Any) -> list[dict[str, Any]]:
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script, **kw})
    async with LocalStack(
        s, plans(chat_flow(tmp_path, kw.pop("max_items", 100) if "max_items" in kw else 100)), embedded=False
    ) as stack:
        assert stack.client is not None
        return [await run_flow(stack.client, "chat", {"user_id": u, "message": m}) for u, m in messages]


async def test_a_second_run_sees_the_first_runs_memory(settings: Settings, tmp_path: Path) -> None:
    first, second = await chat(settings, tmp_path, [("ada", "hello"), ("ada", "again")])
    assert first["state"]["reply"] == "[] heard hello"
    assert second["state"]["reply"] == "[- reply: [] heard hello] heard again"


async def test_memory_survives_the_stack_it_was_written_on(settings: Settings, tmp_path: Path) -> None:
    await chat(settings, tmp_path, [("ada", "one")])
    (later,) = await chat(settings, tmp_path, [("ada", "two")])
    assert "heard one" in later["state"]["reply"]


async def test_users_and_nodes_do_not_see_each_others_memory(settings: Settings, tmp_path: Path) -> None:
    runs = await chat(settings, tmp_path, [("ada", "secret"), ("bob", "hi"), ("bob", "again")])
    bob_second = runs[2]["state"]
    assert "secret" not in bob_second["reply"]
    assert "heard hi" in bob_second["reply"]
    # `feel` has node-scoped memory of its own: it remembers its moods, never `respond`'s replies.
    assert "heard" not in bob_second["mood"].split("] fine")[0].replace("[] heard", "")
    assert "mood: [" in bob_second["mood"]


async def test_retention_keeps_only_the_newest_records(settings: Settings, tmp_path: Path) -> None:
    flow = chat_flow(tmp_path, max_items=2)
    script = write_script(tmp_path / "script.yaml", SCRIPT)
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        for i in range(4):
            await run_flow(stack.client, "chat", {"user_id": "ada", "message": f"m{i}"})
    async with open_store(s.store()) as store:
        records = await store.memories("flow/chat/node/respond/ada", limit=10)
    assert [r.data["reply"].split("heard ")[-1] for r in records] == ["m3", "m2"]


async def test_memory_without_a_placeholder_is_appended_to_the_real_prompt(settings: Settings, tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        fake.script('{"reply": "first answer"}', '{"mood": "ok"}', '{"reply": "second answer"}', '{"mood": "ok"}')
        flow = write_flow(
            tmp_path / "f.yaml",
            CHAT.replace("MAX", "10")
            + f"config:\n  llm: {{model: openai/gpt-4o-mini, api_base: '{fake.api_base}', api_key_env: FAKE_KEY}}\n",
        )
        s = settings.model_copy(update={"llm_override": None})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FAKE_KEY", "sk-test")
            async with LocalStack(s, plans(flow), embedded=False) as stack:
                assert stack.client is not None
                await run_flow(stack.client, "chat", {"user_id": "ada", "message": "hello"})
                await run_flow(stack.client, "chat", {"user_id": "ada", "message": "again"})
        third_request = fake.requests[2]
    prompt = third_request.messages[-1]["content"]
    assert prompt.startswith("again")
    assert "reply: first answer" in prompt


def test_memory_settings_merge_flow_and_node_levels_and_bad_values_are_located() -> None:
    from actors.flow.memory import memory_policy
    from configs import ConfigError, load_flow_text

    text = CHAT.replace("MAX", "10") + "config:\n  memory: {enabled: true, default_scope: workflow, limit: 3}\n"
    spec = load_flow_text(text).spec
    respond = memory_policy(spec, spec.node("respond"))
    feel = memory_policy(spec, spec.node("feel"))
    assert respond is not None
    assert (respond.scope, respond.limit, respond.max_items) == ("node", 5, 10)
    assert feel is not None
    assert (feel.scope, feel.limit, feel.write) == ("node", 3, ("mood",))
    plain = load_flow_text(text.replace("    memory: {scope: node}\n", "    memory: false\n")).spec
    assert memory_policy(plain, plain.node("feel")) is None
    with pytest.raises(ConfigError) as info:
        load_flow_text(CHAT.replace("MAX", "10").replace("read: recent", "read: lately"), "m.yaml")
    assert "m.yaml:" in str(info.value)
    assert "nodes[0].memory.read" in str(info.value)
