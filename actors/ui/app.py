"""The dashboard's web application: pages, htmx fragments, SSE streams and the control POSTs.

It reads NATS (events, plans, run records, the registry) and the store (run history) through
`actors.client`, and never imports MLflow or litellm. Every page is server-rendered by Jinja2 with
autoescaping on; live parts follow SSE streams (`actors.ui.sse`) or re-fetch a fragment.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from actors.client import (
    ActiveRuns,
    RunRow,
    agent_rows,
    cancel_run,
    dead_letters,
    drain_actor,
    flow_plans,
    plan_of,
    run_page,
    trigger_flow,
)
from actors.flow import load_flows
from actors.runtime.runs import RunStore
from actors.ui import graph, sse, views
from actors.ui.hub import RunFeeds
from actors.ui.security import COOKIE, CSRF_FIELD, CSRF_HEADER, Guard
from bus import Bus, Event, subjects, topology
from configs import Settings
from store import RunHistory, Store

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
STATUSES = ("running", "succeeded", "failed", "cancelled", "rejected")
WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}


@dataclass
class Deps:
    """What the application reads and asks: the bus, the store, the runs in flight, settings, files."""

    bus: Bus
    store: Store
    settings: Settings
    active: ActiveRuns
    guard: Guard
    flows: list[Path] = field(default_factory=list)
    heartbeat_s: float = 15.0


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True)
    env.filters.update(
        when=views.when, ms=views.ms, usd=views.usd, clip=views.clip, pretty=views.pretty, urlencode=urlencode
    )
    return env


class _Guarded(BaseHTTPMiddleware):
    """The token on every request (SSE included) and the CSRF token on every POST."""

    def __init__(self, app: Any, guard: Guard) -> None:
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        guard = self.guard
        query_token = request.query_params.get("token")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        presented = query_token or bearer or request.cookies.get(COOKIE)
        if not guard.allows(presented):
            return HTMLResponse(
                "<!doctype html><title>ca-actors</title><p>This dashboard needs its token: open it once "
                "with <code>?token=...</code> (printed when it started, or <code>CA_UI_TOKEN</code>).</p>",
                status_code=401,
            )
        if request.method == "POST":
            presented_csrf = request.headers.get(CSRF_HEADER)
            if presented_csrf is None:
                body = await request.body()
                fields = parse_qs(body.decode(errors="replace")).get(CSRF_FIELD)
                presented_csrf = fields[0] if fields else None
            if not guard.csrf_ok(presented_csrf):
                return HTMLResponse("<p>Missing or wrong CSRF token: reload the page.</p>", status_code=403)
        response = await call_next(request)
        if query_token and guard.token is not None:
            response.set_cookie(COOKIE, query_token, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-src http: https:; frame-ancestors 'self'"
        )
        return response


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body, one value per name (the last one)."""
    parsed = parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in parsed.items()}


def _matches(row: RunRow, flow: str | None, status: str | None) -> bool:
    return (not flow or row.flow == flow) and (not status or row.status == status)


def create_app(deps: Deps) -> FastAPI:
    """The dashboard application over `deps`."""
    app = FastAPI(title="ca-actors dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_Guarded, guard=deps.guard)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = _templates()
    bus, store = deps.bus, deps.store

    def page(name: str, request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(name).render(csrf=deps.guard.csrf, path=request.url.path, **context)
        return HTMLResponse(html, status_code=status_code)

    # --- runs ------------------------------------------------------------------------------------------------

    async def runs_context(request: Request) -> dict[str, Any]:
        q = request.query_params
        flow, status, window, cursor = q.get("flow") or None, q.get("status") or None, q.get("since"), q.get("cursor")
        since = time.time() - WINDOWS[window] if window in WINDOWS else None
        last_seq = await bus.last_sequence(topology.EVENTS)
        active = [] if cursor or status not in (None, "running") else deps.active.rows(flow=flow)
        active = [r for r in active if since is None or r.created_at >= since]
        history = await run_page(
            store, flow=flow, status=None if status == "running" else status, since=since, cursor=cursor,
            limit=PAGE_SIZE,
        ) if status != "running" else None  # fmt: skip
        shown = {r.run_id for r in active}
        rows = active + [r for r in (history.rows if history else []) if r.run_id not in shown]
        filters = {k: v for k, v in (("flow", flow), ("status", status), ("since", window)) if v}
        return {
            "rows": rows,
            "next_cursor": history.next_cursor if history else None,
            "filters": filters,
            "first_page": not cursor,
            "last_seq": last_seq,
            "flows": [p.flow for p in await flow_plans(bus)],
            "statuses": STATUSES,
            "windows": list(WINDOWS),
        }

    @app.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request) -> HTMLResponse:
        return page("runs.html", request, **await runs_context(request))

    @app.get("/runs/table", response_class=HTMLResponse)
    async def runs_table(request: Request) -> HTMLResponse:
        return page("runs_table.html", request, **await runs_context(request))

    def run_row_event(seq: int, event: Event) -> tuple[str, dict[str, Any]] | None:
        status = views.RUN_STATUS.get(event.kind)
        if status is None:
            return None
        row = RunRow(event.run_id, event.flow, status, event.ts)
        if event.kind != "run.started":
            d = event.data.model_dump()
            row = RunRow(event.run_id, event.flow, status, event.ts, d.get("duration_ms"), 0.0, d.get("error"))
        html = env.get_template("run_row.html").render(r=row, live=event.kind != "run.started")
        return "run", {"seq": seq, "run_id": event.run_id, "flow": event.flow, "status": status, "html": html}

    @app.get("/events")
    async def all_events(request: Request) -> StreamingResponse:
        after = sse.resume_point(request)
        body = sse.stream(bus, subjects.RUN_EVENTS_ALL, after=after, heartbeat_s=deps.heartbeat_s, render=run_row_event)
        return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_detail(request: Request, run_id: str) -> HTMLResponse:
        try:
            subjects.token(run_id, "run id")
        except ValueError:
            return page("missing.html", request, status_code=404, what=f"run {run_id}")
        record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
        history = await store.get_run(run_id)
        if record is None and history is None:
            return page("missing.html", request, status_code=404, what=f"run {run_id}")
        flow = record.flow if record else history.flow if history else ""
        version = (record.plan_version if record else "") or (history.plan_version if history else "")
        plan = await plan_of(bus, flow, version)
        layout = graph.layout(plan.spec) if plan else None
        return page(
            "run.html",
            request,
            run_id=run_id,
            record=record,
            history=history,
            flow=flow,
            plan=plan,
            layout=layout,
            letters=await dead_letters(bus, run_id),
            timeline=_timeline(history),
            mlflow_url=deps.settings.mlflow_ui_url,
        )

    @app.get("/runs/{run_id}/summary", response_class=HTMLResponse)
    async def run_summary(request: Request, run_id: str) -> HTMLResponse:
        subjects.token(run_id, "run id")
        record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
        history = await store.get_run(run_id)
        return page(
            "run_summary.html", request, run_id=run_id, record=record, history=history,
            letters=await dead_letters(bus, run_id), timeline=_timeline(history),
        )  # fmt: skip

    def run_event(seq: int, event: Event, memo: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        view = views.event_view(seq, event)
        view["diff"] = views.state_diff(event, memo)
        view["html"] = env.get_template("event_row.html").render(e=view)
        view.pop("data")
        view.pop("diff")
        return "evt", view

    feeds = RunFeeds(bus, run_event)
    app.state.feeds = feeds

    @app.get("/runs/{run_id}/events")
    async def run_events(request: Request, run_id: str) -> StreamingResponse:
        subject = subjects.events_of(run_id)
        body = feeds.stream(subject, after=sse.resume_point(request), heartbeat_s=deps.heartbeat_s)
        return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/runs/{run_id}/cancel")
    async def cancel(request: Request, run_id: str) -> Response:
        answer = await cancel_run(bus, run_id)
        note = answer.error or f"run is {answer.status}"
        return _after_post(request, f"/runs/{run_id}", note)

    @app.post("/runs/{run_id}/rerun")
    async def rerun(request: Request, run_id: str) -> Response:
        record = await RunStore(bus.kv(topology.RUNS)).get(run_id)
        history = await store.get_run(run_id)
        source = record or history
        if source is None:
            return _after_post(request, "/runs", f"no run {run_id}")
        inputs = source.inputs if isinstance(source.inputs, dict) else {}
        answer = await trigger_flow(bus, source.flow, inputs)
        if answer.run_id is None:
            return _after_post(request, f"/runs/{run_id}", answer.error or "no run was started")
        return _after_post(request, f"/runs/{answer.run_id}", None)

    # --- flows -----------------------------------------------------------------------------------------------

    @app.get("/flows", response_class=HTMLResponse)
    async def flows(request: Request) -> HTMLResponse:
        plans = await flow_plans(bus)
        errors = load_flows(deps.flows).errors if deps.flows else []
        return page("flows.html", request, plans=plans, errors=errors)

    @app.get("/flows/{name}", response_class=HTMLResponse)
    async def flow_detail(request: Request, name: str) -> HTMLResponse:
        plan = await plan_of(bus, name) if _valid_token(name) else None
        if plan is None:
            return page("missing.html", request, status_code=404, what=f"flow {name}")
        return page(
            "flow.html", request, plan=plan, layout=graph.layout(plan.spec),
            fields=views.form_fields(plan.spec.state.fields), source=views.highlight_yaml(plan.source),
            problems=[], recent=(await run_page(store, flow=name, limit=10)).rows,
        )  # fmt: skip

    @app.post("/flows/{name}/trigger")
    async def trigger(request: Request, name: str) -> Response:
        plan = await plan_of(bus, name) if _valid_token(name) else None
        if plan is None:
            return page("missing.html", request, status_code=404, what=f"flow {name}")
        inputs, problems = views.parse_form(plan.spec.state.fields, await _form(request))
        answer = None if problems else await trigger_flow(bus, name, inputs)
        if answer is not None and answer.run_id is not None and answer.status != "rejected":
            return _after_post(request, f"/runs/{answer.run_id}", None)
        if answer is not None:
            problems = [answer.error or f"the run was {answer.status}"]
        return page(
            "flow.html", request, status_code=422, plan=plan, layout=graph.layout(plan.spec),
            fields=views.form_fields(plan.spec.state.fields), source=views.highlight_yaml(plan.source),
            problems=problems, recent=(await run_page(store, flow=name, limit=10)).rows,
        )  # fmt: skip

    # --- agents ----------------------------------------------------------------------------------------------

    @app.get("/agents", response_class=HTMLResponse)
    async def agents(request: Request) -> HTMLResponse:
        rows = await agent_rows(bus, heartbeat_s=deps.settings.heartbeat_s)
        return page("agents.html", request, rows=rows)

    @app.get("/agents/table", response_class=HTMLResponse)
    async def agents_table(request: Request) -> HTMLResponse:
        rows = await agent_rows(bus, heartbeat_s=deps.settings.heartbeat_s)
        return page("agents_table.html", request, rows=rows)

    @app.post("/agents/{actor_id}/drain")
    async def drain(request: Request, actor_id: str) -> Response:
        problem = await drain_actor(bus, actor_id)
        return _after_post(request, "/agents", problem or f"draining {actor_id}")

    # --- overview and costs ------------------------------------------------------------------------------------

    async def overview_context() -> dict[str, Any]:
        now = time.time()
        hour = await store.list_runs(since=now - 3600, limit=10_000)
        today_start = _midnight(now)
        today = await store.list_runs(since=today_start, limit=100_000)
        agents_now = await agent_rows(bus, heartbeat_s=deps.settings.heartbeat_s)
        return {
            "last_seq": await bus.last_sequence(topology.EVENTS),
            "in_flight": deps.active.rows(),
            "succeeded_hour": sum(1 for r in hour if r.status == "succeeded"),
            "failed_hour": sum(1 for r in hour if r.status == "failed"),
            "cost_today": sum(r.cost_usd for r in today),
            "live_agents": sum(1 for a in agents_now if a["status"] == "live"),
            "agents": len(agents_now),
            "failures": [RunRow.of(r) for r in await store.list_runs(status="failed", limit=5)],
        }

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        return page("overview.html", request, **await overview_context())

    @app.get("/overview/body", response_class=HTMLResponse)
    async def overview_body(request: Request) -> HTMLResponse:
        return page("overview_body.html", request, **await overview_context())

    @app.get("/costs", response_class=HTMLResponse)
    async def costs(request: Request) -> HTMLResponse:
        now = time.time()
        week = await store.list_runs(since=now - 7 * 86400, limit=100_000)
        today_start = _midnight(now)
        return page(
            "costs.html", request,
            today=_costs([r for r in week if r.created_at >= today_start]), week=_costs(week),
            days=_daily(week, now),
        )  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "nats": bus.status.value})

    return app


def _midnight(now: float) -> float:
    """The start of today, local time."""
    day = time.localtime(now)
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))


def _valid_token(value: str) -> bool:
    try:
        subjects.token(value)
    except ValueError:
        return False
    return True


def _after_post(request: Request, target: str, note: str | None) -> Response:
    """Where a POST leads: htmx follows ``HX-Redirect``, a plain form a 303."""
    url = target + (f"?{urlencode({'note': note})}" if note else "")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def _timeline(history: RunHistory | None) -> list[dict[str, Any]]:
    """Steps of a finished run as bars: queue wait, then execution (with its LLM time), on one time axis."""
    if history is None or not history.steps:
        return []
    starts = [s.get("queued_at") or s.get("started_at") or history.created_at for s in history.steps]
    t0 = min([history.created_at, *starts])
    ends = [s.get("finished_at") or s.get("started_at") or t0 for s in history.steps]
    span = max(max(ends) - t0, 1e-3)
    bars: list[dict[str, Any]] = []
    for s in history.steps:
        queued = s.get("queued_at") or s.get("started_at") or t0
        started = s.get("started_at") or queued
        finished = s.get("finished_at") or started
        bars.append(
            {
                **s,
                "left": 100 * (queued - t0) / span,
                "wait": 100 * max(0.0, started - queued) / span,
                "run": max(0.3, 100 * max(0.0, finished - started) / span),
                "llm_share": min(100.0, 100 * (s.get("llm_ms") or 0) / max(1e-6, (finished - started) * 1000)),
            }
        )
    return bars


def _costs(runs: list[RunHistory]) -> dict[str, Any]:
    """Cost by flow, node and model over `runs`."""
    by_flow: dict[str, float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    by_model: dict[str, float] = defaultdict(float)
    tokens = 0
    for run in runs:
        by_flow[run.flow] += run.cost_usd
        tokens += run.tokens_in + run.tokens_out
        for step in run.steps:
            by_node[f"{run.flow}.{step.get('node', '?')}"] += float(step.get("cost_usd") or 0.0)
            for model, usage in (step.get("models") or {}).items():
                by_model[model] += float((usage or {}).get("cost_usd") or 0.0)

    def ranked(costs: dict[str, float]) -> list[tuple[str, float, float]]:
        top = max(costs.values(), default=0.0) or 1.0
        return [(k, v, 100 * v / top) for k, v in sorted(costs.items(), key=lambda kv: -kv[1])]

    return {
        "total": sum(by_flow.values()),
        "runs": len(runs),
        "tokens": tokens,
        "flows": ranked(by_flow),
        "nodes": ranked(by_node),
        "models": ranked(by_model),
    }


def _daily(runs: list[RunHistory], now: float) -> list[tuple[str, float, float]]:
    """Cost per day over the last 7 days, oldest first, with bar heights in percent."""
    days: dict[str, float] = {time.strftime("%m-%d", time.localtime(now - d * 86400)): 0.0 for d in range(6, -1, -1)}
    for run in runs:
        key = time.strftime("%m-%d", time.localtime(run.created_at))
        if key in days:
            days[key] += run.cost_usd
    top = max(days.values(), default=0.0) or 1.0
    return [(k, v, 100 * v / top) for k, v in days.items()]
