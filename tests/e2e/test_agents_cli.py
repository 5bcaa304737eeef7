"""Agents as `ca-actors` processes: a whole flow recorded then replayed by `run`, a tool served by an `agent`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from actors.launch.stack import LocalStack
from bus import Bus, Role
from configs import Settings
from tests.helpers import EventLog, plans, run_flow, write_script
from tests.support.agents import agent_flow

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
pytestmark = [
    pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning"),
    pytest.mark.usefixtures("litellm_state"),
]


def test_run_records_then_replays_a_whole_flow_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT, SEEDS

    cassette = tmp_path / "c.yaml"

    def run(*args: str) -> dict[str, object]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "actors",
                "run",
                str(SEEDS / "article_writer.yaml"),
                "-i",
                "topic=nats",
                "--json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        result: dict[str, object] = json.loads(out.stdout)
        return result

    first = run("--llm", "mock", "--record", str(cassette))
    again = run("--llm", "mock", "--replay", str(cassette))
    assert again["state"] == first["state"]
    assert ROOT.exists()


@pytest.mark.timeout(120)
async def test_a_tool_pinned_to_an_actor_runs_on_that_actor(settings: Settings, tmp_path: Path) -> None:
    from tests.helpers import Actors

    box = tmp_path / "box-workspace"
    box.mkdir()
    (box / "secret.txt").write_text("only on the box")
    script = write_script(
        tmp_path / "s.yaml",
        {"solve": [{"tool_calls": [{"name": "file_read", "arguments": {"path": "secret.txt"}}]}, {"answer": "read"}]},
    )
    flow = agent_flow(tmp_path, "[{name: file_read, actor: box}]")
    s = settings.model_copy(update={"llm_override": "mock", "mock_script": script})
    async with LocalStack(s, plans(flow), embedded=False) as stack:
        assert stack.client is not None
        admin = await Bus.of(stack.settings, Role.ADMIN, name="test-admin").connect()
        actors = Actors(admin, s.nats_url, flow, "mock", auth_file=stack.settings.nats_auth_file)
        await actors.listen()
        try:
            log = await EventLog().start(stack.client)
            missing = await run_flow(stack.client, "helper", {"question": "before the box is up"})
            await actors.start_agent("--name", "box", "--serve-tools", "--workspace", str(box), "--nodes", "x.none")
            result = await run_flow(stack.client, "helper", {"question": "now"})
        finally:
            actors.stop_all()
            await admin.close()
    assert missing["status"] == "failed"
    assert "--serve-tools" in missing["error"]
    assert result["status"] == "succeeded"
    finished = [e for e in log.of("tool.finished") if e.run_id == result["run_id"]]
    assert finished[0].data.actor == "box"
    assert finished[0].data.result["content"] == "only on the box"
