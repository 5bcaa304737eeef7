"""Moving a run on, on the bus: successors, fan-outs, joins and maps, all crash-safe.

`Router` turns the pure decisions of `actors.flow.logic` into work items. Barriers (a fan-out's join, a
map's completion) are records in the ``ca_joins`` bucket updated with compare-and-swap; every
decision is a deterministic function of those records and of the step, so a redelivered step repeats
the same decisions and its re-published work items are dropped by ``Nats-Msg-Id`` dedup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actors.flow.logic import (
    Counters,
    collect_map,
    map_info,
    map_items,
    merge_branches,
    next_targets,
    write_outputs,
)
from actors.flow.plan import Plan
from actors.runtime.cas import compare_and_swap
from bus import Branch, WorkItem, step_id
from configs import END, START, analyze_graph
from configs.errors import ActorError

B = TypeVar("B", bound=BaseModel)


class JoinBarrier(BaseModel):
    """A fan-out waiting for its branches: the state it started from and what each branch wrote."""

    model_config = ConfigDict(extra="forbid")

    expected: int
    base: dict[str, Any]
    arrived: dict[str, list[tuple[str, Any]]] = Field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)


class MapBarrier(BaseModel):
    """A map waiting for its items: the state it was reached with and each finished item's outputs."""

    model_config = ConfigDict(extra="forbid")

    total: int
    base: dict[str, Any]
    visits: dict[str, int]
    taken: dict[str, int]
    done: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass
class Moves:
    """What a step leads to: work items to publish, or the end of the run with its state."""

    work: list[WorkItem] = field(default_factory=list)
    finished: dict[str, Any] | None = None


class Barriers:
    """Barrier records in the ``ca_joins`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, key: str, record: BaseModel) -> None:
        """Insert unless present (a redelivered step creates the same barrier again)."""
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._kv.create(key, record.model_dump_json().encode())

    async def update(self, key: str, model: type[B], change: Callable[[B], B | None]) -> B:
        """Compare-and-swap `change` into the record; returns the record as it stands afterwards."""
        record, _ = await compare_and_swap(self._kv, key, model, change, what="barrier")
        if record is None:
            raise ActorError(f"barrier {key} is missing")
        return record


class Router:
    def __init__(self, barriers: Barriers, sender: str) -> None:
        self._barriers = barriers
        self._sender = sender

    async def start(self, plan: Plan, run_id: str, state: dict[str, Any]) -> Moves:
        """The first moves of a new run (what follows START)."""
        moves = Moves()
        await self._continue(plan, run_id, START, state, Counters(), None, moves)
        return moves

    async def after_step(self, plan: Plan, item: WorkItem, outputs: dict[str, Any]) -> Moves:
        """The moves after `item`'s node produced `outputs`."""
        moves = Moves()
        spec = plan.spec
        if map_info(spec, item.node) is not None:
            await self._map_item_done(plan, item, outputs, moves)
            return moves
        pairs = [(name, outputs[name]) for name in spec.node(item.node).outputs if name in outputs]
        state = write_outputs(spec, item.state, pairs)
        branch = item.branch
        if branch is not None:
            branch = branch.model_copy(update={"writes": [*branch.writes, *pairs]})
        counters = Counters(item.visits, item.taken).visited(item.node)
        await self._continue(plan, item.run_id, item.node, state, counters, branch, moves)
        return moves

    async def after_failure(self, plan: Plan, item: WorkItem, target: str, error: str) -> Moves:
        """The moves to a node's ``on_error`` target."""
        moves = Moves()
        counters = Counters(item.visits, item.taken).visited(item.node)
        await self._enter(plan, item.run_id, target, item.state, counters, item.branch, moves, error=error)
        return moves

    async def _continue(
        self,
        plan: Plan,
        run_id: str,
        node: str,
        state: dict[str, Any],
        counters: Counters,
        branch: Branch | None,
        moves: Moves,
    ) -> None:
        spec = plan.spec
        targets, counters = next_targets(spec, node, state, counters)
        graph = analyze_graph(spec)
        if len(targets) > 1:
            fanout = graph.fanouts[node]
            barrier = f"{run_id}.{node}.{max(counters.visits.get(node, 0) - 1, 0)}.fan"
            await self._barriers.create(barrier, JoinBarrier(expected=len(targets), base=state))
            for i, target in enumerate(targets):
                sub = Branch(source=node, barrier=barrier, index=i)
                if target == fanout.join:
                    await self._arrive(plan, run_id, sub, counters, moves)
                else:
                    await self._enter(plan, run_id, target, state, counters, sub, moves)
            return
        target = targets[0]
        if branch is not None and target == graph.fanouts[branch.source].join:
            await self._arrive(plan, run_id, branch, counters, moves)
            return
        await self._enter(plan, run_id, target, state, counters, branch, moves)

    async def _enter(
        self,
        plan: Plan,
        run_id: str,
        node: str,
        state: dict[str, Any],
        counters: Counters,
        branch: Branch | None,
        moves: Moves,
        error: str | None = None,
    ) -> None:
        if node == END:
            moves.finished = state
            return
        spec = plan.spec
        info = map_info(spec, node)
        iteration = counters.iteration(node)
        if info is None:
            moves.work.append(self._work(plan, run_id, node, iteration, 0, state, counters, branch, error=error))
            return
        items = map_items(spec, node, state)
        key = step_id(run_id, node, iteration, 0) + ".map"
        record = MapBarrier(total=len(items), base=state, visits=dict(counters.visits), taken=dict(counters.taken))
        await self._barriers.create(key, record)
        if not items:
            after = collect_map(spec, node, state, [])
            await self._continue(plan, run_id, node, after, counters.visited(node), None, moves)
            return
        window = info.max_concurrency or len(items)
        for index in range(min(window, len(items))):
            moves.work.append(
                self._work(plan, run_id, node, iteration, index, state, counters, None, item=items[index])
            )

    async def _arrive(self, plan: Plan, run_id: str, branch: Branch, counters: Counters, moves: Moves) -> None:
        def arrive(record: JoinBarrier) -> JoinBarrier | None:
            slot = str(branch.index)
            if slot in record.arrived:
                return None
            arrived = {**record.arrived, slot: list(branch.writes)}
            both = {**record.counters, slot: {"visits": dict(counters.visits), "taken": dict(counters.taken)}}
            return record.model_copy(update={"arrived": arrived, "counters": both})

        record = await self._barriers.update(branch.barrier, JoinBarrier, arrive)
        if len(record.arrived) < record.expected:
            return
        order = [str(i) for i in range(record.expected)]
        state = merge_branches(plan.spec, record.base, [record.arrived[i] for i in order])
        merged = Counters.merge(Counters(record.counters[i]["visits"], record.counters[i]["taken"]) for i in order)
        join = analyze_graph(plan.spec).fanouts[branch.source].join
        await self._enter(plan, run_id, join, state, merged, None, moves)

    async def _map_item_done(self, plan: Plan, item: WorkItem, outputs: dict[str, Any], moves: Moves) -> None:
        key = step_id(item.run_id, item.node, item.iteration, 0) + ".map"
        slot = str(item.index)

        def done(record: MapBarrier) -> MapBarrier | None:
            if slot in record.done:
                return None
            return record.model_copy(update={"done": {**record.done, slot: outputs}})

        record = await self._barriers.update(key, MapBarrier, done)
        spec = plan.spec
        info = map_info(spec, item.node)
        assert info is not None, "a map item's node is a map node"
        counters = Counters(record.visits, record.taken)
        window = info.max_concurrency or record.total
        following = item.index + window
        if following < record.total:
            items = map_items(spec, item.node, record.base)
            moves.work.append(
                self._work(
                    plan,
                    item.run_id,
                    item.node,
                    item.iteration,
                    following,
                    record.base,
                    counters,
                    None,
                    item=items[following],
                )
            )
        if len(record.done) < record.total:
            return
        after = collect_map(spec, item.node, record.base, [record.done[str(i)] for i in range(record.total)])
        await self._continue(plan, item.run_id, item.node, after, counters.visited(item.node), None, moves)

    def _work(
        self,
        plan: Plan,
        run_id: str,
        node: str,
        iteration: int,
        index: int,
        state: dict[str, Any],
        counters: Counters,
        branch: Branch | None,
        *,
        item: Any = None,
        error: str | None = None,
    ) -> WorkItem:
        return WorkItem(
            run_id=run_id,
            flow=plan.flow,
            plan_version=plan.version,
            node=node,
            iteration=iteration,
            index=index,
            state=state,
            visits=dict(counters.visits),
            taken=dict(counters.taken),
            item=item,
            branch=branch,
            error=error,
            sender=self._sender,
        )
