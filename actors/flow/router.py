"""Moving a run on, on the bus: the moves of `actors.flow.moves` as barrier records and work items.

`Router` executes moves: a fan-out's join barrier and a map's barrier are records in the
``ca_joins`` bucket, created insert-if-absent and updated with compare-and-swap; a step becomes a
work item. Every move is a deterministic function of those records and of the step, so a redelivered
step repeats the same moves and its re-published work items are dropped by ``Nats-Msg-Id`` dedup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from actors.flow import moves
from actors.flow.logic import Counters, map_info
from actors.flow.moves import Arrive, Enter, Finish, Fork, JoinBarrier, MainLine, MapBarrier, Move, StartMap
from actors.flow.plan import Plan
from actors.runtime.cas import compare_and_swap
from bus import WorkItem
from configs.errors import ActorError

B = TypeVar("B", bound=BaseModel)


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
    """Executes the moves of a run's steps on the bus; what it returns is for the caller to publish."""

    def __init__(self, barriers: Barriers, sender: str) -> None:
        self._barriers = barriers
        self._sender = sender

    async def start(self, plan: Plan, run_id: str, state: dict[str, Any]) -> Moves:
        """The first moves of a new run (what follows START)."""
        return await self._execute(plan, run_id, moves.start(plan.spec, run_id, state))

    async def after_step(self, plan: Plan, item: WorkItem, outputs: dict[str, Any]) -> Moves:
        """The moves after `item`'s node produced `outputs` (a map item first records them in its barrier)."""
        spec, step = plan.spec, step_of(item)
        if map_info(spec, item.node) is None:
            return await self._execute(plan, item.run_id, moves.after_step(spec, item.run_id, step, outputs))
        key = moves.map_barrier(item.run_id, item.node, item.iteration)
        record = await self._barriers.update(key, MapBarrier, lambda rec: rec.finish(item.index, outputs))
        return await self._execute(plan, item.run_id, moves.after_map_item(spec, item.run_id, step, record))

    async def after_failure(self, plan: Plan, item: WorkItem, target: str, error: str) -> Moves:
        """The moves to a node's ``on_error`` target."""
        return await self._execute(
            plan, item.run_id, moves.after_failure(plan.spec, item.run_id, step_of(item), target, error)
        )

    async def _execute(self, plan: Plan, run_id: str, todo: list[Move], done: Moves | None = None) -> Moves:
        """Open and update barriers in order; collect the work items and the end of the run."""
        done = done if done is not None else Moves()
        for move in todo:
            match move:
                case Enter():
                    done.work.append(self._work(plan, run_id, move))
                case Fork():
                    await self._barriers.create(move.barrier, move.record())
                case Arrive():
                    record = await self._arrive(move)
                    await self._execute(
                        plan, run_id, moves.after_join(plan.spec, run_id, move.branch.source, record), done
                    )
                case StartMap():
                    await self._barriers.create(move.barrier, move.record())
                    done.work += [self._work(plan, run_id, step) for step in move.steps()[: move.window]]
                case Finish():
                    done.finished = move.state
                case MainLine():
                    pass  # the run record's state is checkpointed when a main-line step is recorded
        return done

    async def _arrive(self, arrival: Arrive) -> JoinBarrier:
        return await self._barriers.update(arrival.branch.barrier, JoinBarrier, lambda rec: rec.arrive(arrival))

    def _work(self, plan: Plan, run_id: str, step: Enter) -> WorkItem:
        return WorkItem(
            run_id=run_id,
            flow=plan.flow,
            plan_version=plan.version,
            node=step.node,
            iteration=step.iteration,
            index=step.index,
            state=step.state,
            visits=dict(step.counters.visits),
            taken=dict(step.counters.taken),
            item=step.item,
            branch=step.branch,
            error=step.error,
            sender=self._sender,
        )


def step_of(item: WorkItem) -> Enter:
    """The step a work item runs, as the move that entered it."""
    counters = Counters(item.visits, item.taken)
    return Enter(item.node, item.iteration, item.index, item.state, counters, item.branch, item.item, item.error)
