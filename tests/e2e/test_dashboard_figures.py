"""The dashboard's figures (docs/dashboard.md): event → browser latency, the runs page over 10,000 runs, and what
50 SSE clients on one busy run do to that run. Printed and recorded in the report; asserted only for correctness."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bus import AuthFile, Bus, Event, Role, free_port
from configs import Settings
from store import RunHistory, open_store
from tests.conftest import TESTS
from tests.helpers import EventLog, plans, start_run
from tests.support.browser import chromium
from tests.support.cli import child_pids, start_up, stop
from tests.support.ui import ui_stack

MAP50 = TESTS / "flows" / "map50.yaml"
ITEMS = {"items": [f"https://example.test/{i}" for i in range(50)]}


def report(
    record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str], **values: object
) -> None:
    for name, value in values.items():
        record_property(name, value)
    with capsys.disabled():
        print("\n[dashboard] " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.timeout(300)
async def test_events_reach_the_browser_within_a_few_hundred_milliseconds(
    settings: Settings, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings.model_copy(update={"llm_override": "mock/150ms"})
    async with ui_stack(s, plans(MAP50)) as ui, chromium() as browser:
        log = await EventLog().start(ui.client)
        latencies: list[float] = []
        for _ in range(3):
            run_id = await start_run(ui.client, "map50", ITEMS)
            page = await browser.new_page()
            await page.goto(f"{ui.url}/runs/{run_id}")
            await page.wait_for_selector("#events li")
            opened_ms = await page.evaluate("Date.now()")
            await page.wait_for_selector("#run-status.succeeded", timeout=60_000)
            arrivals: list[list[float]] = await page.evaluate("window.caArrivals")
            stored = [e for e in log.events if e.run_id == run_id]
            assert len(arrivals) == len(stored)
            # Only events published after the page was following live (the rest were replayed at load).
            latencies += [at - ts * 1000 for _, at, ts in arrivals if ts * 1000 > opened_ms + 100]
            await page.close()
    assert latencies, "events arrived live"
    report(
        record_property, capsys, event_to_browser_n=len(latencies),
        event_to_browser_p50_ms=round(pct(latencies, 0.5), 1), event_to_browser_p95_ms=round(pct(latencies, 0.95), 1),
    )  # fmt: skip


@pytest.mark.timeout(300)
async def test_the_runs_page_over_ten_thousand_runs(
    settings: Settings,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    async with open_store(settings.store()) as store:
        for i in range(10_000):
            await store.put_run(
                RunHistory(run_id=f"h{i:05d}", flow="map50", status="failed" if i % 7 == 0 else "succeeded",
                           created_at=now - 10_000 + i, duration_ms=1000.0, cost_usd=0.001)
            )  # fmt: skip
    async with ui_stack(settings, plans(MAP50)) as ui, chromium() as browser:
        async with httpx.AsyncClient(base_url=ui.url, timeout=30) as http:
            first: list[float] = []
            for _ in range(10):
                t0 = time.perf_counter()
                response = await http.get("/runs")
                first.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
            assert 'id="run-h09999"' in response.text
            # Deep in the history: page 150 by keyset cursor costs the same.
            cursor = f"{now - 10_000 + 2500!r}_h02500"
            deep: list[float] = []
            for _ in range(10):
                t0 = time.perf_counter()
                response = await http.get(f"/runs?cursor={cursor}")
                deep.append((time.perf_counter() - t0) * 1000)
            assert 'id="run-h02499"' in response.text
            filtered: list[float] = []
            for _ in range(10):
                t0 = time.perf_counter()
                response = await http.get("/runs?status=failed")
                filtered.append((time.perf_counter() - t0) * 1000)
            assert 'id="run-h09996"' in response.text
        page = await browser.new_page()
        loads: list[float] = []
        for _ in range(5):
            t0 = time.perf_counter()
            await page.goto(f"{ui.url}/runs", wait_until="load")
            loads.append((time.perf_counter() - t0) * 1000)
        assert await page.eval_on_selector_all("#runs-body tr", "els => els.length") == 50
    report(
        record_property, capsys,
        runs_page_10k_p50_ms=round(statistics.median(first), 1),
        runs_page_10k_deep_p50_ms=round(statistics.median(deep), 1),
        runs_page_10k_failed_p50_ms=round(statistics.median(filtered), 1),
        runs_page_10k_browser_load_p50_ms=round(statistics.median(loads), 1),
    )  # fmt: skip


async def _run_time(ui_url: str, client: object, log: EventLog, watchers: int) -> float:
    """Duration of one map50 run (from its run.finished) with `watchers` SSE clients following it."""
    run_id = await start_run(client, "map50", ITEMS)  # type: ignore[arg-type]
    received = [0] * watchers

    async def watch(i: int, http: httpx.AsyncClient) -> None:
        async with http.stream("GET", f"/runs/{run_id}/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    received[i] += 1
                    if '"run_status":"succeeded"' in line:
                        return

    async with httpx.AsyncClient(base_url=ui_url, timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        tasks = [asyncio.create_task(watch(i, http)) for i in range(watchers)]
        finished: Event = await log.wait_for("run.finished", run_id=run_id, timeout_s=120)
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    stored = len([e for e in log.events if e.run_id == run_id])
    assert all(n == stored for n in received), (received, stored)
    return float(finished.data.duration_ms or 0.0)  # type: ignore[union-attr]


@pytest.mark.timeout(600)
async def test_fifty_sse_clients_on_one_busy_run_against_none(
    tmp_path: Path, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # A real `up` stack: every actor and the dashboard in its own process, the 50 clients in this one.
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(MAP50, flows / "map50.yaml")
    port = free_port()
    proc, lines = start_up(tmp_path / ".ca", "--flows", str(flows), "--llm", "mock/20ms", "--ui-port", str(port))
    pids = child_pids(proc.pid)
    nats = next(line.split(": ", 1)[1] for line in lines if line.startswith("NATS: "))
    try:
        admin = AuthFile.read(tmp_path / ".ca" / "nats-auth.json").credentials(Role.ADMIN)
        async with Bus(nats, name="figures", credentials=admin) as bus:
            log = await EventLog().start(bus)
            url = f"http://127.0.0.1:{port}"
            await _run_time(url, bus, log, 0)  # warm up
            alone, watched = [], []
            for _ in range(3):
                alone.append(await _run_time(url, bus, log, 0))
                watched.append(await _run_time(url, bus, log, 50))
    finally:
        stop(proc, pids)
    report(
        record_property, capsys,
        map50_run_ms_0_clients=round(statistics.median(alone), 1),
        map50_run_ms_50_clients=round(statistics.median(watched), 1),
        ratio_50_vs_0=round(statistics.median(watched) / statistics.median(alone), 2),
    )  # fmt: skip
