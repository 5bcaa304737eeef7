"""Where a run goes next, as data: the one walk of the graph both engines execute (docs/control-flow.md).

`actors.flow.logic` answers single questions (which targets, how outputs are written, how branches
merge); this module walks the graph with those answers and says what a step leads to:

- `Enter`: run one step of a node (a plain node, one item of a map, an ``on_error`` target);
- `Fork`: a fan-out opens its join barrier (how many branches, the state at the fan-out);
- `Arrive`: a branch reached its join; its writes and counters go into the barrier;
- `StartMap`: a run reached a map node; the map's barrier opens and its first items start;
- `MainLine`: the run's main line (outside fan-out branches) went on from this state;
- `Finish`: the run reached END with this state.

Moves come in the order they must be executed (a barrier opens before anything arrives at it).
Completing a barrier is decided here too, over its record (`after_join`, `after_map_item`): the bus
engine (`actors.flow.router`) keeps the records in the ``ca_joins`` bucket and turns moves into work
items; the LangGraph engine (`actors.engines.langgraph`) keeps them in channels and turns moves into
`Send`s. Barrier keys and step ids are functions of the run and the step, so a redelivered step makes
the same moves again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from actors.flow.logic import Counters, collect_map, map_info, map_items, merge_branches, next_targets, write_outputs
from bus import Branch, step_id
from configs import END, START, FlowSpec, analyze_graph


@dataclass(frozen=True)
class Enter:
    """Run one step of `node`: a plain node, item `index` of a map node, or an ``on_error`` target (`error`)."""

    node: str
    iteration: int
    index: int
    state: dict[str, Any]
    counters: Counters
    branch: Branch | None = None
    item: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Fork:
    """The fan-out from `source` opens its join barrier: `expected` branches, each from state `base`."""

    barrier: str
    source: str
    expected: int
    base: dict[str, Any]

    def record(self) -> JoinBarrier:
        """The join barrier's record before any branch arrived."""
        return JoinBarrier(expected=self.expected, base=self.base)


@dataclass(frozen=True)
class Arrive:
    """A branch reached its join: its writes (in `branch`) and its counters go into the fan-out's barrier."""

    branch: Branch
    counters: Counters


@dataclass(frozen=True)
class StartMap:
    """A run reached map node `node` with state `base`: its barrier opens and `window` items run at once."""

    barrier: str
    node: str
    iteration: int
    items: list[Any]
    base: dict[str, Any]
    counters: Counters
    window: int

    def steps(self) -> list[Enter]:
        """The step of every item, in item order (the first `window` start now)."""
        return [Enter(self.node, self.iteration, i, self.base, self.counters, item=x) for i, x in enumerate(self.items)]

    def record(self) -> MapBarrier:
        """The map's barrier record before any item finished."""
        visits, taken = dict(self.counters.visits), dict(self.counters.taken)
        return MapBarrier(total=len(self.items), base=self.base, visits=visits, taken=taken)


@dataclass(frozen=True)
class MainLine:
    """The run's main line (outside fan-out branches) went on from `state`.

    LangGraph keeps it as the state a failed run reports; the bus ignores it, as its run record is
    checkpointed when a main-line step is recorded (`NodeWorker._record`), never after a map.
    """

    state: dict[str, Any]


@dataclass(frozen=True)
class Finish:
    """The run reached END with `state`."""

    state: dict[str, Any]


Move = Enter | Fork | Arrive | StartMap | MainLine | Finish


class JoinBarrier(BaseModel):
    """A fan-out waiting for its branches: the state it started from and what each branch wrote."""

    model_config = ConfigDict(extra="forbid")

    expected: int
    base: dict[str, Any]
    arrived: dict[str, list[tuple[str, Any]]] = Field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)

    def arrive(self, arrival: Arrive) -> JoinBarrier | None:
        """The record with `arrival` in its slot; None when the slot is taken (a redelivered arrival)."""
        slot = str(arrival.branch.index)
        if slot in self.arrived:
            return None
        arrived = {**self.arrived, slot: list(arrival.branch.writes)}
        counters = {**self.counters, slot: arrival.counters.record()}
        return self.model_copy(update={"arrived": arrived, "counters": counters})


class MapBarrier(BaseModel):
    """A map waiting for its items: the state it was reached with and each finished item's outputs."""

    model_config = ConfigDict(extra="forbid")

    total: int
    base: dict[str, Any]
    visits: dict[str, int]
    taken: dict[str, int]
    done: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def finish(self, index: int, outputs: dict[str, Any]) -> MapBarrier | None:
        """The record with item `index`'s outputs; None when it has them already (first one wins)."""
        slot = str(index)
        if slot in self.done:
            return None
        return self.model_copy(update={"done": {**self.done, slot: outputs}})


def join_barrier(run_id: str, source: str, iteration: int) -> str:
    """The key of the join barrier of the fan-out from `source` in its `iteration`."""
    return f"{run_id}.{source}.{iteration}.fan"


def map_barrier(run_id: str, node: str, iteration: int) -> str:
    """The key of the barrier of map node `node` in its `iteration`."""
    return step_id(run_id, node, iteration, 0) + ".map"


def start(spec: FlowSpec, run_id: str, state: dict[str, Any]) -> list[Move]:
    """The first moves of a run (what follows START).

    Raises:
        FlowError: a route condition or a map's items cannot be evaluated on this state.
    """
    return _proceed(spec, run_id, START, state, Counters(), None)


def after_step(spec: FlowSpec, run_id: str, step: Enter, outputs: Mapping[str, Any]) -> list[Move]:
    """The moves after `step` of a plain (not map) node produced `outputs`.

    Raises:
        FlowError: a route condition or a map's items cannot be evaluated on the new state.
    """
    pairs = [(name, outputs[name]) for name in spec.node(step.node).outputs if name in outputs]
    state = write_outputs(spec, step.state, pairs)
    branch = step.branch
    if branch is not None:
        branch = branch.model_copy(update={"writes": [*branch.writes, *pairs]})
    return _proceed(spec, run_id, step.node, state, step.counters.visited(step.node), branch)


def after_failure(spec: FlowSpec, run_id: str, step: Enter, target: str, error: str) -> list[Move]:
    """The moves to `target`, the ``on_error`` node of `step`'s node, with its `error` (state as before the step).

    Raises:
        FlowError: `target` is a map node and its items are not a list.
    """
    return enter(spec, run_id, target, step.state, step.counters.visited(step.node), step.branch, error=error)


def after_join(spec: FlowSpec, run_id: str, source: str, record: JoinBarrier) -> list[Move]:
    """The moves once every branch of the fan-out from `source` arrived (none before): enter its join.

    The join runs on the state at the fan-out plus every branch's writes in branch order, with the
    largest counters over the branches.

    Raises:
        FlowError: the join is a map node and its items are not a list.
    """
    if len(record.arrived) < record.expected:
        return []
    order = [str(i) for i in range(record.expected)]
    state = merge_branches(spec, record.base, [record.arrived[i] for i in order])
    counters = Counters.merge(Counters(record.counters[i]["visits"], record.counters[i]["taken"]) for i in order)
    return enter(spec, run_id, analyze_graph(spec).fanouts[source].join, state, counters)


def after_map_item(spec: FlowSpec, run_id: str, step: Enter, record: MapBarrier) -> list[Move]:
    """The moves after item `step.index` of a map finished (`record`: the map's barrier with its outputs).

    The item one window (`max_concurrency`) further starts; once every item is done, `after_map` follows.

    Raises:
        FlowError: a route condition or a map's items cannot be evaluated after the map.
    """
    info = map_info(spec, step.node)
    assert info is not None, "a map item's node is a map node"
    moves: list[Move] = []
    following = step.index + (info.max_concurrency or record.total)
    if following < record.total:
        moves.append(map_step(spec, step.node, step.iteration, following, record))
    if len(record.done) < record.total:
        return moves
    return [*moves, *after_map(spec, run_id, step.node, record)]


def after_map(spec: FlowSpec, run_id: str, node: str, record: MapBarrier) -> list[Move]:
    """The moves after every item of map node `node` finished: collect in item order, follow its edge once.

    Raises:
        FlowError: a route condition or a map's items cannot be evaluated on the collected state.
    """
    state = collect_map(spec, node, record.base, [record.done[str(i)] for i in range(record.total)])
    return _proceed(spec, run_id, node, state, Counters(record.visits, record.taken).visited(node), None)


def map_step(spec: FlowSpec, node: str, iteration: int, index: int, record: MapBarrier) -> Enter:
    """The step of item `index` of map node `node`, rebuilt from the map's barrier record."""
    item = map_items(spec, node, record.base)[index]
    return Enter(node, iteration, index, record.base, Counters(record.visits, record.taken), item=item)


def enter(
    spec: FlowSpec,
    run_id: str,
    node: str,
    state: dict[str, Any],
    counters: Counters,
    branch: Branch | None = None,
    *,
    error: str | None = None,
) -> list[Move]:
    """The moves that take the run to `node`: a step, a map (its items), or the end of the run.

    Raises:
        FlowError: `node` is a map node and its items are not a list (nor can the moves after an
            empty map be decided).
    """
    if node == END:
        return [Finish(state)]
    iteration = counters.iteration(node)
    info = map_info(spec, node)
    if info is None:
        return [Enter(node, iteration, 0, state, counters, branch, error=error)]
    items = map_items(spec, node, state)
    window = info.max_concurrency or len(items)
    opened = StartMap(map_barrier(run_id, node, iteration), node, iteration, items, state, counters, window)
    if items:
        return [opened]
    after = collect_map(spec, node, state, [])
    return [opened, *_proceed(spec, run_id, node, after, counters.visited(node), None)]


def _proceed(
    spec: FlowSpec, run_id: str, node: str, state: dict[str, Any], counters: Counters, branch: Branch | None
) -> list[Move]:
    """The moves after `node` completed with `state` (`counters` already count that completion)."""
    moves: list[Move] = [MainLine(state)] if branch is None else []
    targets, counters = next_targets(spec, node, state, counters)
    graph = analyze_graph(spec)
    if len(targets) > 1:
        barrier = join_barrier(run_id, node, max(counters.visits.get(node, 0) - 1, 0))
        moves.append(Fork(barrier, node, len(targets), state))
        for i, target in enumerate(targets):
            sub = Branch(source=node, barrier=barrier, index=i)
            if target == graph.fanouts[node].join:
                moves.append(Arrive(sub, counters))
            else:
                moves += enter(spec, run_id, target, state, counters, sub)
        return moves
    target = targets[0]
    if branch is not None and target == graph.fanouts[branch.source].join:
        return [*moves, Arrive(branch, counters)]
    return [*moves, *enter(spec, run_id, target, state, counters, branch)]
