"""The decisions of control flow, as pure functions shared by every engine (docs/control-flow.md).

Given a flow, the state after a node and the run's counters, which node(s) come next; how a node's
outputs are written into the state (reducers); how fan-out branches and map items are merged.
`actors.flow.moves` walks the graph with these, and both engines (the bus and the in-process LangGraph
engine) execute its moves, so they cannot disagree about what a flow means, only about how it is executed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from configs import END, EdgeSpec, FlowSpec, MapInfo, NodeSpec, analyze_graph, resolve_path
from configs.errors import ActorError


class FlowError(ActorError):
    """The state does not allow the flow to go on (e.g. a map's items are not a list)."""


@dataclass(frozen=True)
class Counters:
    """How often each node completed (`visits`) and each bounded route was taken (`taken`), on this path."""

    visits: Mapping[str, int] = field(default_factory=dict)
    taken: Mapping[str, int] = field(default_factory=dict)

    def visited(self, node: str) -> Counters:
        return Counters({**self.visits, node: self.visits.get(node, 0) + 1}, self.taken)

    def took(self, route: str) -> Counters:
        return Counters(self.visits, {**self.taken, route: self.taken.get(route, 0) + 1})

    def record(self) -> dict[str, dict[str, int]]:
        """The counters as a barrier record keeps them: ``{"visits": {...}, "taken": {...}}``."""
        return {"visits": dict(self.visits), "taken": dict(self.taken)}

    def iteration(self, node: str) -> int:
        """The iteration the next step of `node` will have."""
        return self.visits.get(node, 0)

    @staticmethod
    def merge(all_counters: Iterable[Counters]) -> Counters:
        """Counters after a join: the largest count of each node and route over the branches."""
        visits: dict[str, int] = {}
        taken: dict[str, int] = {}
        for c in all_counters:
            for k, v in c.visits.items():
                visits[k] = max(visits.get(k, 0), v)
            for k, v in c.taken.items():
                taken[k] = max(taken.get(k, 0), v)
        return Counters(visits, taken)


def outgoing(spec: FlowSpec, node: str) -> EdgeSpec | None:
    """The edge entry leaving `node` (a validated flow has at most one per node)."""
    for edge in spec.edges:
        if edge.from_ == node:
            return edge
    return None


def route_key(node: str, index: int) -> str:
    return f"{node}#{index}"


def next_targets(spec: FlowSpec, node: str, state: Mapping[str, Any], counters: Counters) -> tuple[list[str], Counters]:
    """Where a run goes after `node` completed (`counters` already count that completion).

    Returns:
        The target node ids (several for a fan-out; `END` to finish) and the updated counters.

    Raises:
        FlowError: a route condition could not be evaluated on this state.
    """
    edge = outgoing(spec, node)
    if edge is None:
        return [END], counters
    if edge.to is not None:
        return ([edge.to] if isinstance(edge.to, str) else list(edge.to)), counters
    if edge.routes is not None:
        default: str | None = None
        for i, route in enumerate(edge.routes):
            if route.condition.is_default:
                default = route.to
                continue
            key = route_key(node, i)
            if route.max_iterations is not None and counters.taken.get(key, 0) >= route.max_iterations:
                continue
            try:
                matched = bool(route.condition.expr.evaluate(state))
            except ValueError as exc:
                raise FlowError(f"route {i} of {node}: {exc}") from exc
            if matched:
                return [route.to], counters.took(key) if route.max_iterations is not None else counters
        if default is None:
            raise FlowError(f"no route of {node} matched and it has no default route")
        return [default], counters
    if edge.loop is not None:
        done = bool(state.get(edge.loop.condition_field))
        if done or counters.visits.get(node, 0) >= edge.loop.max_iterations:
            return [edge.loop.exit_to], counters
        return [node], counters
    if edge.parallel is not None:
        return [edge.parallel.target_node], counters
    return [END], counters


def reduce_value(reducer: str | None, old: Any, new: Any) -> Any:
    """Write `new` into a field holding `old` under the field's reducer (None: overwrite)."""
    if reducer is None:
        return new
    if reducer == "append":
        return [*(old or []), new]
    if reducer == "extend":
        return [*(old or []), *(new or [])]
    if reducer == "merge":
        return {**(old or {}), **(new or {})}
    if old is None:
        return new
    if reducer == "max":
        return max(old, new)
    if reducer == "min":
        return min(old, new)
    if reducer == "sum":
        return old + new
    raise FlowError(f"unknown reducer {reducer!r}")


def write_outputs(spec: FlowSpec, state: Mapping[str, Any], outputs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The state after writing `outputs` (field, value) in order, with each field's reducer."""
    fields = spec.state.fields
    new = dict(state)
    for name, value in outputs:
        spec_field = fields.get(name)
        new[name] = reduce_value(spec_field.reducer if spec_field else None, new.get(name), value)
    return new


def map_items(spec: FlowSpec, node: str, state: Mapping[str, Any]) -> list[Any]:
    """The items a map node runs over, from the state it was reached with.

    Raises:
        FlowError: the items path does not hold a list.
    """
    info = map_info(spec, node)
    assert info is not None
    value = resolve_path(state, ".".join(info.items))
    if not isinstance(value, list):
        raise FlowError(f"map node {node}: {'.'.join(info.items)} is {type(value).__name__}, not a list")
    return value


def map_info(spec: FlowSpec, node: str) -> MapInfo | None:
    """The map description of `node`, or None when it is not a map node."""
    return analyze_graph(spec).maps.get(node)


def map_runtime(spec: FlowSpec, node: str, item: Any, index: int) -> dict[str, Any]:
    """Prompt names a map item adds: ``item``, ``index`` and the ``as`` name."""
    info = map_info(spec, node)
    names = {"item": item, "index": index}
    if info is not None:
        names[info.as_name] = item
    return names


def item_output(node: NodeSpec, outputs: Mapping[str, Any]) -> Any:
    """What a map item contributes to the collect field: its single output, or all of them."""
    if len(node.outputs) == 1:
        return outputs.get(node.outputs[0])
    return {name: outputs.get(name) for name in node.outputs}


def collect_map(
    spec: FlowSpec, node: str, state: Mapping[str, Any], per_item: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The state after a map: each item's output appended, in item order, to the collect field."""
    info = map_info(spec, node)
    assert info is not None
    node_spec = spec.node(node)
    new = dict(state)
    new[info.collect] = [*(new.get(info.collect) or []), *(item_output(node_spec, o) for o in per_item)]
    return new


def merge_branches(
    spec: FlowSpec, base: Mapping[str, Any], writes: Sequence[Sequence[tuple[str, Any]]]
) -> dict[str, Any]:
    """The state at a join: `base` plus every branch's writes, in branch order, with reducers."""
    state = dict(base)
    for branch in writes:
        state = write_outputs(spec, state, branch)
    return state
