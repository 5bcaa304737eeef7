"""The dashboard against a real nats-server and stack: every page and fragment, SSE resume, controls, security."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from actors.registry import Registry
from actors.runtime import ActorHost, ActorInfo, Presence
from bus import Bus, Role
from configs import Settings
from store import open_store
from tests.helpers import EventLog, outside_client, plans, start_run, until
from tests.support.ui import SLOW_FLOW, XSS, slow_settings, sse_messages, ui_stack, write


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def test_a_run_page_streams_every_event_of_the_run_and_resumes_after_the_last_event_id(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=50)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "bees"})
        await log.wait_for("run.finished", run_id=run_id)
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            page = await http.get(f"/runs/{run_id}")
            assert page.status_code == 200
            assert 'data-node="first"' in page.text
            assert 'data-edge="first>second"' in page.text
            everything = await sse_messages(http, f"/runs/{run_id}/events", count=len(log.of("run.started", run_id)))
            stored = [e for e in log.events if e.run_id == run_id]
            messages = await sse_messages(http, f"/runs/{run_id}/events", count=len(stored))
            assert [m["data"]["kind"] for m in messages] == [e.kind for e in stored]
            ids = [int(m["id"]) for m in messages]
            assert ids == sorted(ids)
            assert len(set(ids)) == len(ids)
            # A browser that saw the first three reconnects with Last-Event-ID: the rest, nothing twice.
            rest = await sse_messages(
                http, f"/runs/{run_id}/events", count=len(stored) - 3, headers={"Last-Event-ID": str(ids[2])}
            )
            assert [int(m["id"]) for m in rest] == ids[3:]
            # `?after=` does the same for a page that reopens its own stream.
            again = await sse_messages(http, f"/runs/{run_id}/events?after={ids[-2]}", count=1)
            assert [int(m["id"]) for m in again] == ids[-1:]
        assert everything[0]["data"]["kind"] == "run.started"
        statuses = [(m["data"]["node"], m["data"]["node_status"]) for m in messages if m["data"]["node_status"]]
        assert statuses == [
            ("first", "running"), ("first", "done"), ("second", "running"),
            ("second", "done"), ("third", "running"), ("third", "done"),
        ]  # fmt: skip
        assert messages[-1]["data"]["run_status"] == "succeeded"
        second_done = next(
            m for m in messages if m["data"]["kind"] == "node.finished" and m["data"]["node"] == "second"
        )
        assert '<td>b</td><td class="old"></td><td class="new">bee</td>' in second_done["data"]["html"]


async def test_the_runs_stream_sends_a_row_for_a_new_run_and_for_its_end(settings: Settings, tmp_path: Path) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=10)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            page = await http.get("/runs")
            after = re.search(r'data-live="/events\?after=(\d+)"', page.text)
            assert after, "the runs page says where its live stream starts"
            run_id = await start_run(ui.client, "slow", {"topic": "wasps"})
            started, finished = await sse_messages(http, f"/events?after={after.group(1)}", count=2)
        assert (started["data"]["run_id"], started["data"]["status"]) == (run_id, "running")
        assert (finished["data"]["run_id"], finished["data"]["status"]) == (run_id, "succeeded")
        assert f'id="run-{run_id}"' in finished["data"]["html"]


async def test_sse_streams_send_a_heartbeat_comment_when_nothing_happens(settings: Settings, tmp_path: Path) -> None:
    async with (
        ui_stack(settings, plans(write(tmp_path / "slow.yaml", SLOW_FLOW)), ui_heartbeat_s=0.2) as ui,
        httpx.AsyncClient(base_url=ui.url, timeout=10) as http,
        http.stream("GET", "/events") as response,
    ):
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line == ": heartbeat":
                break
    assert ": heartbeat" in lines


async def test_the_runs_page_lists_history_newest_first_by_pages_and_filters_by_flow_and_status(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        log = await EventLog().start(ui.client)
        ids = [await start_run(ui.client, "slow", {"topic": f"t{i}"}) for i in range(3)]
        for run_id in ids:
            await log.wait_for("run.finished", run_id=run_id)
        observer = ui.stack.observer
        assert observer is not None
        from store import connect_store

        store = await connect_store(s.store())
        try:
            await until(lambda: _count(store), "the observer recorded the three runs")
        finally:
            await store.close()
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            listed = await http.get("/runs")
            assert listed.status_code == 200
            order = re.findall(r'id="run-([^"]+)"', listed.text)
            assert order == list(reversed(ids))
            import actors.ui.app as ui_app

            original = ui_app.PAGE_SIZE
            ui_app.PAGE_SIZE = 2
            try:
                first = await http.get("/runs/table")
                assert re.findall(r'id="run-([^"]+)"', first.text) == [ids[2], ids[1]]
                older = re.search(r'hx-get="(/runs/table\?[^"]+)"', first.text)
                assert older, "a first page of a longer history links to the next one"
                second = await http.get(older.group(1).replace("&amp;", "&"))
                assert re.findall(r'id="run-([^"]+)"', second.text) == [ids[0]]
                assert "older »" not in second.text
            finally:
                ui_app.PAGE_SIZE = original
            assert re.findall(r'id="run-', (await http.get("/runs?status=failed")).text) == []
            assert len(re.findall(r'id="run-', (await http.get("/runs?flow=slow&status=succeeded")).text)) == 3
            assert "No runs match these filters" in (await http.get("/runs?flow=nope")).text


async def _count(store: object) -> bool:
    return len(await store.list_runs()) == 3  # type: ignore[attr-defined]


async def test_the_trigger_form_starts_a_run_with_typed_inputs_and_jumps_to_it(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        log = await EventLog().start(ui.client)
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            page = await http.get("/flows/slow")
            assert page.status_code == 200
            assert 'type="number" name="count" value="2" step="1"' in page.text
            assert 'type="checkbox" name="loud"' in page.text
            form = {"csrf": _csrf(page.text), "topic": "moths", "count": "7", "ratio": "0.25", "loud": "on"}
            form["tags"] = '["x", "y"]'
            answer = await http.post("/flows/slow/trigger", data=form)
            assert answer.status_code == 303
            run_id = answer.headers["location"].removeprefix("/runs/")
            started = await log.wait_for("run.started", run_id=run_id)
            assert started.data.inputs == {
                "topic": "moths",
                "count": 7,
                "ratio": 0.25,
                "loud": True,
                "tags": ["x", "y"],
            }
            bad = await http.post("/flows/slow/trigger", data={"csrf": form["csrf"], "topic": "x", "count": "many"})
            assert bad.status_code == 422
            assert "count: &#39;many&#39; is not a int" in bad.text
            missing = await http.post("/flows/slow/trigger", data={"csrf": form["csrf"]})
            assert missing.status_code == 422
            assert "topic" in missing.text


async def test_an_output_with_a_script_tag_is_shown_as_text_on_every_page(settings: Settings, tmp_path: Path) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0, xss=True)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "<img src=x onerror=alert(2)>"})
        await log.wait_for("run.finished", run_id=run_id)
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            page = (await http.get(f"/runs/{run_id}")).text
            stored = [e for e in log.events if e.run_id == run_id]
            events = await sse_messages(http, f"/runs/{run_id}/events", count=len(stored))
        assert XSS not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        html = "".join(m["data"]["html"] for m in events)
        assert XSS not in html
        assert "&lt;script&gt;" in html


async def test_cancel_and_rerun_are_posts_that_need_the_csrf_token(settings: Settings, tmp_path: Path) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=3000)
    async with ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui:
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "ants"})
        async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
            page = await http.get(f"/runs/{run_id}")
            csrf = _csrf(page.text)
            refused = await http.post(f"/runs/{run_id}/cancel")
            assert refused.status_code == 403
            assert log.of("run.cancelled", run_id) == []
            done = await http.post(f"/runs/{run_id}/cancel", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
            assert done.status_code == 204
            assert done.headers["HX-Redirect"].startswith(f"/runs/{run_id}")
            await log.wait_for("run.cancelled", run_id=run_id)
            again = await http.post(f"/runs/{run_id}/rerun", data={"csrf": csrf})
            assert again.status_code == 303
            new_id = again.headers["location"].removeprefix("/runs/")
            assert new_id != run_id
            restarted = await log.wait_for("run.started", run_id=new_id)
            assert restarted.data.inputs == {"topic": "ants"}


async def test_overview_flows_agents_and_costs_pages_render_from_the_stack(settings: Settings, tmp_path: Path) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0)
    (tmp_path / "flows").mkdir()
    good = write(tmp_path / "flows" / "slow.yaml", SLOW_FLOW)
    write(
        tmp_path / "flows" / "broken.yaml", "schema_version: '1.0'\nflow: {name: broken}\nnodes: [{id: a}]\nedges: 3\n"
    )
    async with (
        ui_stack(s, plans(good), flows=[tmp_path / "flows"]) as ui,
        httpx.AsyncClient(base_url=ui.url, timeout=10) as http,
    ):
        overview = await http.get("/")
        assert overview.status_code == 200
        assert "runs in flight" in overview.text
        assert (await http.get("/overview/body")).status_code == 200
        flows = await http.get("/flows")
        assert 'href="/flows/slow"' in flows.text
        assert "broken.yaml:" in flows.text, "a file that does not validate is shown with its location"
        agents = await http.get("/agents")
        assert agents.status_code == 200
        costs = await http.get("/costs")
        assert costs.status_code == 200
        assert "7 days by model" in costs.text
        assert (await http.get("/runs/nope-1")).status_code == 404
        assert (await http.get("/flows/nope")).status_code == 404
        assert (await http.get("/static/htmx.min.js")).status_code == 200


async def test_every_request_needs_the_token_when_one_is_set_sse_included(settings: Settings, tmp_path: Path) -> None:
    async with (
        ui_stack(settings, plans(write(tmp_path / "slow.yaml", SLOW_FLOW)), ui_token="tok-123") as ui,
        httpx.AsyncClient(base_url=ui.url, timeout=10) as http,
    ):
        for path in ("/", "/runs", "/events", "/flows", "/agents", "/costs", "/static/app.js"):
            assert (await http.get(path)).status_code == 401, path
        assert (await http.get("/runs", headers={"Authorization": "Bearer tok-123"})).status_code == 200
        login = await http.get("/?token=tok-123")
        assert login.status_code == 200
        assert http.cookies.get("ca_ui_token") == "tok-123"
        assert (await http.get("/flows")).status_code == 200
        assert "tok-123" not in (await http.get("/flows")).text, "the token never appears in a page"


async def test_many_browsers_on_one_run_share_one_consumer_and_each_gets_every_event(
    settings: Settings, tmp_path: Path
) -> None:
    s = slow_settings(settings, tmp_path, delay_ms=0)
    async with (
        ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui,
        outside_client(ui.stack.url, s.nats_auth_file) as nc,
        open_store(s.store()) as store,
        httpx.AsyncClient(base_url=ui.url, timeout=10) as http,
    ):
        log = await EventLog().start(ui.client)
        run_id = await start_run(ui.client, "slow", {"topic": "crowds"})
        await log.wait_for("run.finished", run_id=run_id)
        await until(lambda: store.get_run(run_id), "the observer is done with the run (and its own reading)")
        stored = [e for e in log.events if e.run_id == run_id]
        js = nc.jetstream()
        first = await sse_messages(http, f"/runs/{run_id}/events", count=len(stored))
        consumers = (await js.stream_info("CA_EVENTS")).state.consumer_count
        got = await asyncio.gather(*(sse_messages(http, f"/runs/{run_id}/events", count=len(stored)) for _ in range(5)))
        assert (await js.stream_info("CA_EVENTS")).state.consumer_count == consumers, "no consumer per browser"
    for messages in [first, *got]:
        assert [int(m["id"]) for m in messages] == sorted({int(m["id"]) for m in messages})
        assert [m["data"]["kind"] for m in messages] == [e.kind for e in stored]


async def test_the_agents_page_lists_the_registry_and_its_drain_button_drains_an_actor(
    settings: Settings, tmp_path: Path
) -> None:
    s = settings.model_copy(update={"heartbeat_s": 0.2})
    drained = asyncio.Event()
    async with (
        ui_stack(s, plans(write(tmp_path / "slow.yaml", SLOW_FLOW))) as ui,
        Bus.of(s, Role.REGISTRY, name="registry-test") as registry_bus,
        Bus.of(s, Role.WORKER, name="box-7") as worker_bus,
        ActorHost(Registry(registry_bus, heartbeat_s=0.2), registry_bus),
        httpx.AsyncClient(base_url=ui.url, timeout=10) as http,
    ):
        presence = Presence(
            worker_bus, ActorInfo(id="box-7", kind="worker", serves=["slow.first"]), heartbeat_s=0.2,
            on_drain=drained.set,
        )  # fmt: skip
        await presence.start()
        try:
            table = await until(lambda: _agents_table(http, "box-7"), "the registry lists the actor", timeout_s=10)
            assert "slow.first" in table
            assert 'hx-post="/agents/box-7/drain"' in table
            page = await http.get("/flows/slow")
            refused = await http.post("/agents/box-7/drain")
            assert refused.status_code == 403
            assert not drained.is_set()
            answer = await http.post("/agents/box-7/drain", data={"csrf": _csrf(page.text)})
            assert answer.status_code == 303
            assert "draining+box-7" in answer.headers["location"]
            await asyncio.wait_for(drained.wait(), timeout=5)
            gone = await http.post("/agents/nobody/drain", data={"csrf": _csrf(page.text)})
            assert "draining" not in gone.headers["location"], "a drain nobody answers says so"
        finally:
            await presence.stop()


async def _agents_table(http: httpx.AsyncClient, actor_id: str) -> str | None:
    text = (await http.get("/agents/table")).text
    return text if f'data-agent="{actor_id}"' in text and "badge live" in text else None
