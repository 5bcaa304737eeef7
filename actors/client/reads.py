"""What a client reads from a running stack: pages of runs, a run's plan and dead letters, flows, agents."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from actors.flow.plan import Plan, PlanStore
from actors.runtime import roster
from actors.runtime.runs import RunRecord
from bus import Bus, DeadLetter, subjects, topology
from store import RunHistory, Store


@dataclass(frozen=True)
class RunRow:
    """One line of a list of runs, from the run history or from a run in flight."""

    run_id: str
    flow: str
    status: str
    created_at: float
    duration_ms: float | None = None
    cost_usd: float = 0.0
    error: str | None = None

    @classmethod
    def of(cls, run: RunHistory | RunRecord) -> RunRow:
        duration = run.duration_ms if isinstance(run, RunHistory) else None
        if duration is None and run.finished_at is not None:
            duration = round((run.finished_at - run.created_at) * 1000, 3)
        cost = run.cost_usd if isinstance(run, RunHistory) else 0.0
        return cls(run.run_id, run.flow, run.status, run.created_at, duration, cost, run.error)


@dataclass(frozen=True)
class RunPage:
    """A page of runs, newest first, and the cursor of the next page (None on the last one)."""

    rows: list[RunRow]
    next_cursor: str | None


def encode_cursor(created_at: float, run_id: str) -> str:
    return f"{created_at!r}_{run_id}"


def decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """A cursor made by `encode_cursor`, or None when it is missing or malformed."""
    if not cursor or "_" not in cursor:
        return None
    at, _, run_id = cursor.partition("_")
    try:
        return float(at), run_id
    except ValueError:
        return None


async def run_page(
    store: Store,
    *,
    flow: str | None = None,
    status: str | None = None,
    since: float | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RunPage:
    """One page of the run history (keyset pagination: the cost of a page does not grow with the history)."""
    runs = await store.list_runs(
        flow=flow or None, status=status or None, since=since, before=decode_cursor(cursor), limit=limit + 1
    )
    rows = [RunRow.of(r) for r in runs[:limit]]
    more = len(runs) > limit
    return RunPage(rows, encode_cursor(rows[-1].created_at, rows[-1].run_id) if more and rows else None)


async def flow_plans(bus: Bus) -> list[Plan]:
    """The latest plan of every flow the stack serves, by name."""
    plans = PlanStore(bus.kv(topology.PLANS))
    found = [await plans.latest(flow) for flow in await plans.flows()]
    return [p for p in found if p is not None]


async def plan_of(bus: Bus, flow: str, version: str = "") -> Plan | None:
    """The plan a run is pinned to (`version`), else the flow's latest."""
    plans = PlanStore(bus.kv(topology.PLANS))
    plan = await plans.get(flow, version) if version else None
    return plan or await plans.latest(flow)


async def dead_letters(bus: Bus, run_id: str, *, timeout_s: float = 5.0) -> list[DeadLetter]:
    """A run's dead-lettered work items, oldest first."""
    async with bus.replay(subjects.dead_letters(run_id), DeadLetter) as replay:
        return await replay.stored(timeout_s=timeout_s, idle_s=0.5)


async def agent_rows(bus: Bus, *, heartbeat_s: float) -> list[dict[str, Any]]:
    """The registry: every actor with its status and heartbeat age, then expected agents not seen yet."""
    return roster.listing(
        await roster.actors(bus), await roster.expected(bus), now=time.time(), heartbeat_s=heartbeat_s
    )
