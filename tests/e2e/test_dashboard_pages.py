"""Every page of the dashboard of a real `ca-actors up` stack in headless Chromium, saved as the docs' screenshots."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from bus import free_port
from store import RunHistory, open_store
from tests.conftest import EXAMPLES
from tests.support.browser import chromium, screenshots
from tests.support.cli import child_pids, cli, start_up, stop

FLAKY = """
schema_version: "1.0"
flow: {name: flaky, description: "A check whose answers never fit its schema: the run fails"}
state:
  fields:
    claim: {type: str, required: true, description: The claim to check}
    ok: {type: bool, default: false}
nodes:
  - id: check
    prompt: "Is this true? {state.claim}"
    outputs: [ok]
    output_schema: {type: object, fields: [{name: ok, type: bool}]}
    retry: {max_attempts: 2, backoff_ms: 50, on: [bad_output]}
edges:
  - {from: START, to: check}
  - {from: check, to: END}
"""


def _history(now: float) -> list[RunHistory]:
    """A week of earlier runs with their costs, as the observer records them (for the costs page)."""
    runs: list[RunHistory] = []
    for day in range(7):
        for i in range(3 + day % 3):
            at = now - day * 86400 - 3600 - i * 600
            cost = 0.002 * (1 + i) * (1 + day % 4)
            model = "openai/gpt-4o-mini" if i % 2 else "anthropic/claude-haiku-4-5"
            steps = [
                {"node": node, "cost_usd": cost / 3, "models": {model: {"calls": 1, "cost_usd": cost / 3}}}
                for node in ("plan", "research", "write")
            ]
            runs.append(
                RunHistory(
                    run_id=f"earlier-{day}-{i}", flow="research_team", status="succeeded" if i % 4 else "failed",
                    created_at=at, finished_at=at + 20, duration_ms=20_000, cost_usd=cost, steps=steps,
                    error=None if i % 4 else "score: the writer gave up after 3 revisions",
                )
            )  # fmt: skip
    return runs


@pytest.mark.timeout(240)
async def test_every_page_of_an_up_stack_renders_in_chromium_and_is_saved_as_a_screenshot(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name in ("demo.yaml", "research_team.yaml", "echo.yaml"):
        shutil.copy(EXAMPLES / name, flows / name)
    (flows / "flaky.yaml").write_text(FLAKY)
    script = tmp_path / "script.mock.yaml"
    script.write_text(json.dumps({"check": [{"ok": "maybe"}]}))
    data_dir, port = tmp_path / ".ca", free_port()
    proc, lines = start_up(
        data_dir, "--flows", str(flows), "--llm", "mock/150ms", "--mock-script", str(script), "--ui-port", str(port)
    )
    pids = child_pids(proc.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        assert f"dashboard: {url}/" in lines
        async with open_store(f"sqlite:///{data_dir / 'store.db'}") as store:
            for run in _history(time.time()):
                await store.put_run(run)
        nats = next(line.split(": ", 1)[1] for line in lines if line.startswith("NATS: "))
        login = {"CA_NATS_AUTH_FILE": str(data_dir / "nats-auth.json")}  # the stack's generated users
        for flow, inputs in (("demo", "topic=durable agents"), ("echo", "message=hello"), ("flaky", "claim=x")):
            done = cli("trigger", flow, "-i", inputs, "--nats", nats, "--wait", "--json", timeout=60, env=login)
            assert done.stdout, done.stderr
        research = cli(
            "trigger", "research_team", "-i", "topic=actors", "--nats", nats, "--json", timeout=30, env=login
        )
        run_id = json.loads(research.stdout)["run_id"]
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(f"{url}/runs/{run_id}")
            await page.wait_for_selector("#run-status.succeeded, #run-status.failed", timeout=90_000)
            await page.wait_for_selector("#run-summary .timeline", timeout=20_000)
            await page.screenshot(path=str(screenshots(tmp_path) / "dashboard-run.png"), full_page=True)
            shots = {
                "overview": ("/", "#overview"),
                "runs": ("/runs", "#runs-body tr"),
                "flows": ("/flows", "table.grid"),
                "flow": ("/flows/research_team", "form#trigger"),
                "agents": ("/agents", "tr[data-agent] .badge.live"),
                "costs": ("/costs", "#week-flows"),
            }
            folder = screenshots(tmp_path)
            for name, (path, ready) in shots.items():
                await page.goto(url + path)
                await page.wait_for_selector(ready, timeout=20_000)
                await page.screenshot(path=str(folder / f"dashboard-{name}.png"), full_page=name != "runs")
            # The overview follows the run events (htmx's SSE extension) to refresh itself at each one.
            async with page.expect_request(lambda r: "/events?after=" in r.url):
                await page.goto(url + "/")
            await page.goto(f"{url}/runs?status=failed")
            failed = await page.eval_on_selector_all("#runs-body tr", "els => els.map(e => e.dataset.flow)")
            assert "flaky" in failed
            kinds = await page.goto(f"{url}/agents")
            assert kinds is not None
            agents_text = await page.inner_text("#agents-table")
    finally:
        stop(proc, pids)
    for kind in ("scheduler", "worker", "llm-gateway", "registry", "observer", "ui"):
        assert kind in agents_text
