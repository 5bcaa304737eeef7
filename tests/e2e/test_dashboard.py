"""The dashboard in a real browser (headless Chromium): live run pages, dropped connections, forms, escaping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from configs import Settings
from tests.helpers import EventLog, plans, start_run
from tests.support.browser import chromium, screenshots
from tests.support.ui import SLOW_FLOW, XSS, slow_settings, ui_stack, write


def _transitions(log: list[list[str]], node: str) -> list[str]:
    """The statuses a node went through, repeats folded."""
    seen: list[str] = []
    for name, status in log:
        if name == node and (not seen or seen[-1] != status):
            seen.append(status)
    return seen


async def test_the_trigger_form_starts_a_run_whose_nodes_go_pending_running_done_without_reload(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=700)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui, chromium() as browser:
        log = await EventLog().start(ui.client)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{ui.url}/flows/slow")
        await page.fill("input[name=topic]", "owls")
        await page.click("details.more summary")
        await page.fill("input[name=count]", "5")
        await page.fill("textarea[name=tags]", '["night", "birds"]')
        await page.check("input[name=loud]")
        await page.click("#trigger button[type=submit]")
        await page.wait_for_url(f"{ui.url}/runs/*")
        run_id = page.url.rsplit("/", 1)[-1]
        await page.evaluate("window.notReloaded = true")
        # Mid-run: the first node is done or running while the last one still waits.
        await page.wait_for_selector('#graph [data-node="second"].running', timeout=15_000)
        assert await page.get_attribute('#graph [data-node="third"]', "class") == "box node pending"
        await page.screenshot(path=str(screenshots(tmp_path) / "dashboard-run-live.png"), full_page=True)
        await page.wait_for_selector("#run-status.succeeded", timeout=20_000)
        statuses: list[list[str]] = await page.evaluate("window.caStatusLog")
        assert await page.evaluate("window.notReloaded") is True
        for node in ("second", "third"):
            assert _transitions(statuses, node) == ["running", "done"], (node, statuses)
        assert _transitions(statuses, "first")[-1] == "done"
        assert await page.get_attribute('#graph [data-edge="first>second"]', "class") == "edge e-to taken"
        started = await log.wait_for("run.started", run_id=run_id)
        assert started.data.inputs == {
            "topic": "owls",
            "count": 5,
            "ratio": 0.5,
            "loud": True,
            "tags": ["night", "birds"],
        }


async def test_a_dropped_stream_mid_run_resumes_with_no_event_lost_or_shown_twice(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=600)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui, chromium() as browser:
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "otters"})
        page = await browser.new_page()
        await page.goto(f"{ui.url}/runs/{run_id}")
        await page.wait_for_selector('#graph [data-node="first"].running, #graph [data-node="first"].done')
        # Cut the connection while the run goes on, then let the page reopen it after the last id it saw.
        await page.evaluate("window.caLive.close()")
        await log.wait_for("node.finished", run_id=run_id)
        await page.wait_for_timeout(300)
        assert await page.evaluate("window.caLive.source") is None
        await page.evaluate("window.caLive.open()")
        await page.wait_for_selector("#run-status.succeeded", timeout=20_000)
        await log.wait_for("run.finished", run_id=run_id)
        seen: list[int] = await page.evaluate("window.caSeen")
        rows: list[str] = await page.eval_on_selector_all("#events li", "els => els.map(e => e.dataset.seq)")
    stored = [e for e in log.events if e.run_id == run_id]
    assert len(seen) == len(stored) == len(rows)
    assert len(set(seen)) == len(seen), "no event shown twice"
    assert seen == sorted(seen)
    assert [int(r) for r in rows] == seen


async def test_an_xss_payload_in_an_output_renders_as_text_in_the_browser(settings: Settings, tmp_path: Path) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0, xss=True)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui, chromium() as browser:
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "xss"})
        await log.wait_for("run.finished", run_id=run_id)
        page = await browser.new_page()
        dialogs: list[Any] = []
        page.on("dialog", lambda d: dialogs.append(d))
        await page.goto(f"{ui.url}/runs/{run_id}")
        await page.wait_for_selector("#run-status.succeeded")
        await page.wait_for_selector("#run-summary pre#state")
        events_text = await page.inner_text("#events")
        state_text = await page.inner_text("#state")
        scripts = await page.eval_on_selector_all("main script", "els => els.length")
    assert XSS in events_text
    assert XSS in state_text
    assert scripts == 0
    assert dialogs == []
