"""Secrets with realistic names never reach an event, a log line or a trace: one redactor for all three.

An agent reads the environment (`env_vars`), sends an HTTP request with a cookie and an ``X-Auth``
header, and answers with a token it saw; the run's events (as stored in CA_EVENTS), everything the
stack logged and the MLflow trace are searched for each secret value.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actors.launch.stack import LocalStack
from configs import Settings
from tests.fakes.local_http import serve
from tests.helpers import EventLog, plans, run_flow, write_flow, write_script
from tests.support.observer import mlflow_traces, traced

# Realistic names (the attacker's list) with values of their real formats.
SECRETS = {
    "MYSQL_PWD": "mysql-Pw0rd-4a7e19c2",
    "DB_PASS": "db-pass-93f1c07aa2",
    "SMTP_PASS": "smtp-pass-5d2b8e61ff",
    "SENTRY_DSN": "https://3f9a8c1b2d4e4f6a8b0c1d2e3f4a5b6c@o12345.ingest.sentry.io/678",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEiLCJyb2xlIjoiYWRtaW4ifQ.c2lnbmF0dXJlLXZhbHVl",
    "GH_PAT": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "STRIPE_SK": "sk_live_51HxYzAbCdEfGhIjKlMnOp",
}
COOKIE = "session=cookie-value-7f3e2a1b9c"
X_AUTH = "x-auth-value-0d9e8f7a6b"

FLOW = """
schema_version: "1.0"
flow: {name: leaky}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: snoop
    prompt: "Look around and answer: {state.question}"
    tools: [env_vars, http_request]
    max_tool_calls: 3
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: str}]}
edges:
  - {from: START, to: snoop}
  - {from: snoop, to: END}
"""


def _leaks(text: str) -> list[str]:
    found = [name for name, value in SECRETS.items() if value in text]
    found += [what for what, value in (("Cookie", "cookie-value-7f3e2a1b9c"), ("X-Auth", X_AUTH)) if value in text]
    # Parts of the DSN's key and of the JWT are secrets too.
    found += [n for n, v in (("SENTRY_DSN key", "3f9a8c1b2d4e4f6a"), ("JWT payload", "eyJzdWIiOiJhZGEi")) if v in text]
    return found


async def test_realistic_secrets_never_appear_in_events_logs_or_traces(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with serve() as web:
        flow = write_flow(tmp_path / "leaky.yaml", FLOW)
        script = write_script(
            tmp_path / "leaky.mock.yaml",
            {
                "snoop": [
                    {
                        "tool_calls": [
                            {"name": "env_vars", "arguments": {"pattern": "*"}},
                            {
                                "name": "http_request",
                                "arguments": {
                                    "url": f"{web.url}/echo",
                                    "method": "POST",
                                    "headers": {"Cookie": COOKIE, "X-Auth": X_AUTH, "X-Test": f"token={X_AUTH}"},
                                    "body": f"password={SECRETS['DB_PASS']}&jwt={SECRETS['JWT']}",
                                },
                            },
                        ]
                    },
                    {"answer": f"found {SECRETS['GH_PAT']} and {SECRETS['STRIPE_SK']} and {SECRETS['SENTRY_DSN']}"},
                ]
            },
        )
        s = traced(settings, tmp_path, mock_script=script, allowed_hosts="127.0.0.1:*")
        async with LocalStack(s, plans(flow), embedded=False) as stack:
            assert stack.client is not None
            assert stack.observer is not None
            log = await EventLog().start(stack.client)
            result = await run_flow(stack.client, "leaky", {"question": "what is configured?"})
            assert result["status"] == "succeeded", result
            assert await stack.observer.observed(result["run_id"], timeout_s=60)
            await log.wait_for("run.finished")
    assert len(web.requests) == 1, "the tool really sent the secrets to the allowed host"
    events = "\n".join(e.model_dump_json() for e in log.events)
    assert {"tool.called", "tool.finished", "llm.called", "llm.finished", "run.finished"} <= {
        e.kind for e in log.events
    }
    assert _leaks(events) == [], events
    assert "[REDACTED]" in events
    logs = capfd.readouterr()
    assert _leaks(logs.out + logs.err) == []
    (trace,) = await asyncio.to_thread(mlflow_traces, s)
    spans = json.dumps([sp.to_dict() for sp in trace.data.spans], default=str)
    assert "http_request" in spans
    assert _leaks(spans) == []
