"""The dashboard on a stack for tests: a `LocalStack` plus the ui actor on a free port, and SSE reading."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from actors.flow.plan import Plan
from actors.launch.stack import LocalStack
from actors.runtime import ActorHost
from actors.ui import Dashboard
from bus import Bus, Role
from configs import Settings
from store import connect_store

SLOW_FLOW = """
schema_version: "1.0"
flow: {name: slow, description: three steps that take a moment each}
state:
  fields:
    topic: {type: str, required: true, description: What to write about}
    count: {type: int, default: 2, description: How many}
    ratio: {type: float, default: 0.5}
    loud: {type: bool, default: false}
    tags: {type: "list[str]", default: []}
    a: {type: str, default: ""}
    b: {type: str, default: ""}
    c: {type: str, default: ""}
nodes:
  - {id: first, prompt: "one {state.topic}", outputs: [a],
     output_schema: {type: object, fields: [{name: a, type: str}]}}
  - {id: second, prompt: "two {state.a}", outputs: [b], output_schema: {type: object, fields: [{name: b, type: str}]}}
  - {id: third, prompt: "three {state.b}", outputs: [c],
     output_schema: {type: object, fields: [{name: c, type: str}]}}
edges:
  - {from: START, to: first}
  - {from: first, to: second}
  - {from: second, to: third}
  - {from: third, to: END}
"""


XSS = "<script>alert(1)</script>"


def slow_settings(settings: Settings, tmp_path: Path, *, delay_ms: int, xss: bool = False) -> Settings:
    """Settings whose mock model answers SLOW_FLOW's nodes after `delay_ms` (node second says XSS when asked)."""
    script = tmp_path / "slow.mock.yaml"
    b = XSS if xss else "bee"
    script.write_text(json.dumps({"first": [{"a": "ay"}], "second": [{"b": b}], "third": [{"c": "sea"}]}))
    return settings.model_copy(update={"llm_override": f"mock/{delay_ms}ms", "mock_script": script})


@dataclass
class UIStack:
    stack: LocalStack
    dashboard: Dashboard
    client: Bus
    url: str


@contextlib.asynccontextmanager
async def ui_stack(
    settings: Settings, plans: list[Plan], *, flows: list[Path] | None = None, **ui: Any
) -> AsyncIterator[UIStack]:
    """A stack on `settings.nats_url` and the dashboard over it on a free port (`ui`: settings for it)."""
    s = settings.model_copy(update={"ui_port": 0, "ui_heartbeat_s": 15.0, **ui})
    async with LocalStack(s, plans, embedded=False) as stack, Bus.of(s, Role.DASHBOARD, name="ui-test") as bus:
        store = await connect_store(s.store())
        try:
            dashboard = Dashboard(bus, store, s, flows=flows)
            async with ActorHost(dashboard, bus):
                assert stack.client is not None
                yield UIStack(stack, dashboard, stack.client, dashboard.url.rstrip("/"))
        finally:
            await store.close()


async def sse_messages(
    client: httpx.AsyncClient, url: str, *, count: int, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The first `count` SSE messages of `url` (comments skipped): ``{"id", "event", "data"}`` each."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line == "":
                if "data" in current:
                    found.append(current)
                    if len(found) == count:
                        return found
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return found


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
