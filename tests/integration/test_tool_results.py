"""A tool result bigger than a NATS message is clipped (with a marker) instead of failing the step's events
and re-running the step, which would repeat the tool's side effects."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.flow.node_exec import MAX_TOOL_RESULT_CHARS
from actors.launch.stack import LocalStack
from configs import Settings
from tests.helpers import EventLog, plans, run_flow, write_flow, write_script

FLOW = """
schema_version: "1.0"
flow: {name: big_tool}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: read
    prompt: "Read big.txt and answer: {state.question}"
    tools: [file_read]
    max_tool_calls: 2
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: str}]}
edges:
  - {from: START, to: read}
  - {from: read, to: END}
"""

TWO_MIB = 2 * 1024 * 1024


async def test_a_tool_returning_2_mib_is_clipped_with_a_marker_and_the_step_runs_once(
    settings: Settings, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "big.txt").write_text("0123456789abcdef" * (TWO_MIB // 16))
    flow = write_flow(tmp_path / "big_tool.yaml", FLOW)
    script = write_script(
        tmp_path / "big_tool.mock.yaml",
        {
            "read": [
                {"tool_calls": [{"name": "file_read", "arguments": {"path": "big.txt", "max_chars": 3 * TWO_MIB}}]},
                {"answer": "it is long"},
            ]
        },
    )
    stack_settings = settings.model_copy(update={"mock_script": script, "tool_workspace": workspace})
    async with LocalStack(stack_settings, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "big_tool", {"question": "how long?"})
        await log.wait_for("run.finished")
        await asyncio.sleep(settings.ack_wait_s + 1)  # a redelivered step would show up by now
    assert result["status"] == "succeeded", result
    assert result["state"]["answer"] == "it is long"
    [finished] = log.of("tool.finished")
    assert finished.data.error is None
    clipped = finished.data.result
    assert isinstance(clipped, str)
    assert len(clipped) < MAX_TOOL_RESULT_CHARS + 300
    assert "[clipped by ca-actors: the tool returned" in clipped
    assert f"only the first {MAX_TOOL_RESULT_CHARS:,} are shown" in clipped
    assert len(log.of("tool.called")) == 1
    assert len(log.of("node.started")) == 1
    assert not log.of("node.retry")
    assert len(log.of("llm.called")) == 2  # the tool turn, then the answer: nothing asked twice
