"""Checks of control flow: route conditions, unbounded cycles, joins, reducers, foreach, on_error."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping

from configs._expr import ExprError, parse_expr
from configs._graph import FlowGraph, items_path
from configs._issues import closest
from configs._locs import KeyPath, Problem
from configs._outputs import output_fields
from configs._schema import END, REDUCERS, START, FlowSpec, NodeSpec
from configs._scope import Scope, Unresolved
from configs._typeref import ANY, TypeRef, incompatibility

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_NAMES = ("state", "index", "error", "memory")
_REDUCER_KINDS: dict[str, tuple[str, ...]] = {
    "append": ("list",),
    "extend": ("list",),
    "merge": ("dict", "object"),
    "max": ("int", "float"),
    "min": ("int", "float"),
    "sum": ("int", "float"),
}


def check_condition(logic: str, state_types: Mapping[str, TypeRef], path: KeyPath) -> list[Problem]:
    """Check a route condition: it parses, and every path it reads is a state path.

    Args:
        logic: The condition text (not `default`).
        state_types: Parsed type of each state field.
        path: Key path of the `logic` value.

    Returns:
        The problems, each pointing at its column inside the expression.
    """

    def at(column: int) -> int:
        return max(0, min(column - 1, len(logic) - 1))

    try:
        expr = parse_expr(logic)
    except ExprError as exc:
        return [Problem(path, exc.message, offset=at(exc.column))]
    problems: list[Problem] = []
    scope = Scope(state_types)
    for ref in expr.references:
        if ref.root != "state":
            problems.append(
                Problem(
                    path,
                    f"{ref.root!r} at column {ref.column} of the expression is only available in map nodes; "
                    "a route condition reads the state after the node (use state.<field>)",
                    offset=at(ref.column),
                )
            )
            continue
        segments = ["0" if s.lstrip("-").isdigit() else s for s in ref.path]
        resolved = scope.resolve(segments, explicit_state=True)
        if isinstance(resolved, Unresolved):
            problems.append(
                Problem(
                    path,
                    f"unknown path state.{'.'.join(ref.path)} at column {ref.column} of the expression: "
                    f"{resolved.message}",
                    resolved.suggestion,
                    offset=at(ref.column),
                )
            )
    return problems


def check_cycles(spec: FlowSpec, skip: frozenset[str] = frozenset()) -> list[Problem]:
    """Report every cycle of nodes that contains no loop edge and no route with `max_iterations`.

    Args:
        spec: The flow (every edge endpoint exists).
        skip: Nodes already reported (they cannot reach END); cycles through them are not reported.

    Returns:
        One problem per strongly connected group of nodes with an unbounded cycle.
    """
    graph = unbounded_successors(spec)
    edge_of: dict[str, int] = {}
    for index, edge in enumerate(spec.edges):
        edge_of.setdefault(edge.from_, index)
    problems: list[Problem] = []
    reported: set[str] = set()
    for k, node in enumerate(spec.nodes):
        if node.id in reported:
            continue
        cycle = _cycle_through(node.id, graph)
        if cycle is None or skip.intersection(cycle):
            continue
        forward = reach(node.id, graph)
        backward = reach(node.id, _reverse(graph))
        reported |= forward & backward
        where: KeyPath = ("edges", edge_of[node.id], "from") if node.id in edge_of else ("nodes", k, "id")
        problems.append(
            Problem(
                where,
                f"unbounded cycle {' → '.join(cycle)}: add max_iterations to one of its routes "
                "(or repeat a node with a loop edge)",
            )
        )
    return problems


def unbounded_successors(spec: FlowSpec) -> dict[str, set[str]]:
    """Return the moves a run can make without using up a bound (loop repeats and bounded routes left out).

    Args:
        spec: The flow.

    Returns:
        node id -> ids it can go to next without a bound (`on_error` targets included).
    """
    graph: dict[str, set[str]] = {node.id: set() for node in spec.nodes}
    for edge in spec.edges:
        targets = graph.setdefault(edge.from_, set())
        if edge.routes is not None:
            targets.update(route.to for route in edge.routes if route.max_iterations is None)
        elif edge.loop is not None:
            targets.add(edge.loop.exit_to)
        else:
            targets.update(edge.targets())
    for node in spec.nodes:
        if node.on_error:
            graph[node.id].add(node.on_error)
    return graph


def _cycle_through(origin: str, graph: Mapping[str, set[str]]) -> list[str] | None:
    parents: dict[str, str] = {}
    queue = deque([origin])
    while queue:
        current = queue.popleft()
        for nxt in sorted(graph.get(current, set())):
            if nxt == origin:
                path = [current]
                while path[-1] != origin:
                    path.append(parents[path[-1]])
                return [*reversed(path), origin]
            if nxt not in parents and nxt not in (START, END):
                parents[nxt] = current
                queue.append(nxt)
    return None


def reach(origin: str, graph: Mapping[str, set[str]]) -> set[str]:
    """Every node reachable from `origin` (itself included) in `graph`."""
    seen = {origin}
    queue = deque([origin])
    while queue:
        for nxt in graph.get(queue.popleft(), set()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _reverse(graph: Mapping[str, set[str]]) -> dict[str, set[str]]:
    reverse: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            reverse.setdefault(target, set()).add(source)
    return reverse


def check_joins(spec: FlowSpec, graph: FlowGraph) -> list[Problem]:
    """Report state fields written by two branches of one fan-out without a reducer (join conflicts).

    Args:
        spec: The flow.
        graph: Its maps, fan-outs and joins.

    Returns:
        One problem per conflicting field and pair of branches, at the second writer's output.
    """
    problems: list[Problem] = []
    index = {node.id: k for k, node in enumerate(spec.nodes)}
    for fanout in graph.fanouts.values():
        writers: dict[str, tuple[int, str]] = {}
        for b, branch in enumerate(fanout.branches):
            mine: dict[str, str] = {}
            for node_id in branch:
                for name in spec.node(node_id).outputs:
                    mine.setdefault(name, node_id)
            for name, node_id in mine.items():
                field = spec.state.fields.get(name)
                first = writers.get(name)
                if first is not None and field is not None and field.reducer is None:
                    k = index[node_id]
                    problems.append(
                        Problem(
                            ("nodes", k, "outputs", spec.nodes[k].outputs.index(name)),
                            f"join conflict at {fanout.join!r}: state field {name!r} is written by {first[1]!r} "
                            f"(branch {first[0]}) and {node_id!r} (branch {b}) of the fan-out from "
                            f"{fanout.source!r}; declare a reducer ({', '.join(REDUCERS)}) on the field",
                        )
                    )
                writers.setdefault(name, (b, node_id))
    return problems


def check_reducers(spec: FlowSpec, state_types: Mapping[str, TypeRef]) -> list[Problem]:
    """Check that each reducer fits its state field's type (append/extend: list, merge: dict, ...)."""
    problems: list[Problem] = []
    for name, field in spec.state.fields.items():
        ref = state_types.get(name, ANY)
        if field.reducer is None or ref.kind == "any":
            continue
        kinds = _REDUCER_KINDS[field.reducer]
        if ref.kind not in kinds:
            problems.append(
                Problem(
                    ("state", "fields", name, "reducer"),
                    f"reducer {field.reducer!r} needs a {' or '.join(kinds)} field; state field {name!r} is {ref}",
                )
            )
    return problems


def map_runtime_names(state_types: Mapping[str, TypeRef], graph: FlowGraph) -> dict[str, dict[str, TypeRef]]:
    """Return the runtime names of each map node's prompt: `item`, `index` and the `as` name.

    Args:
        state_types: Parsed type of each state field.
        graph: The flow's maps.

    Returns:
        map node id -> name -> type.
    """
    names: dict[str, dict[str, TypeRef]] = {}
    for node_id, info in graph.maps.items():
        resolved = Scope(state_types).resolve(list(info.items), explicit_state=True) if all(info.items) else ANY
        ref = resolved if isinstance(resolved, TypeRef) else ANY
        item = ref.item if ref.kind == "list" and ref.item is not None else ANY
        names[node_id] = {"item": item, "index": TypeRef("int"), info.as_name: item}
    return names


def check_foreach(spec: FlowSpec, state_types: Mapping[str, TypeRef]) -> list[Problem]:
    """Check each `foreach`: `items` is a list state path, `collect` a list field, `as` a free name."""
    problems: list[Problem] = []
    for k, node in enumerate(spec.nodes):
        each = node.foreach
        if each is None:
            continue
        base: KeyPath = ("nodes", k, "foreach")
        segments = items_path(each.items)
        if not all(segments):
            problems.append(Problem((*base, "items"), f"items {each.items!r} is not a path like state.field"))
        else:
            resolved = Scope(state_types).resolve(list(segments), explicit_state=True)
            if isinstance(resolved, Unresolved):
                problems.append(Problem((*base, "items"), f"items: {resolved.message}", resolved.suggestion))
            elif resolved.kind not in ("list", "any"):
                problems.append(Problem((*base, "items"), f"items {each.items!r} is {resolved}; it must be a list"))
        problems += _check_collect(spec, node, each.collect, state_types, (*base, "collect"))
        if not _NAME.fullmatch(each.as_) or each.as_.startswith("__"):
            problems.append(Problem((*base, "as"), f"as {each.as_!r} is not a name; use letters, digits and '_'"))
        elif each.as_ in state_types or each.as_ in _RESERVED_NAMES:
            what = "a state field" if each.as_ in state_types else "a reserved name"
            problems.append(Problem((*base, "as"), f"as {each.as_!r} is {what}; choose another name for the item"))
    return problems


def _check_collect(
    spec: FlowSpec, node: NodeSpec, name: str, state_types: Mapping[str, TypeRef], path: KeyPath
) -> list[Problem]:
    if name not in state_types:
        lists = [n for n, ref in state_types.items() if ref.kind == "list"]
        return [
            Problem(
                path,
                f"collect {name!r} is not a state field; it must be a list field "
                f"(list fields: {', '.join(lists) or 'none'})",
                closest(name, lists) or closest(name, state_types),
            )
        ]
    ref = state_types[name]
    if ref.kind not in ("list", "any"):
        return [Problem(path, f"collect {name!r} is {ref}; it must be a list field")]
    if ref.item is None or len(node.outputs) != 1:
        return []
    produced = output_fields(spec, node)[0][1]
    reason = incompatibility(produced, ref.item)
    if reason:
        return [
            Problem(
                path,
                f"items of {name!r} ({ref.item}) cannot hold the output {node.outputs[0]!r} ({produced}) "
                f"of {node.id!r}: {reason}",
            )
        ]
    return []


def check_on_error(spec: FlowSpec) -> list[Problem]:
    """Check that each `on_error` names another node."""
    problems: list[Problem] = []
    ids = [node.id for node in spec.nodes]
    for k, node in enumerate(spec.nodes):
        target = node.on_error
        if target is None:
            continue
        path: KeyPath = ("nodes", k, "on_error")
        if target == node.id:
            problems.append(Problem(path, f"node {node.id!r} cannot be its own on_error target"))
        elif target not in ids:
            problems.append(
                Problem(path, f"on_error: unknown node {target!r} (nodes: {', '.join(ids)})", closest(target, ids))
            )
    return problems


def error_targets(spec: FlowSpec) -> set[str]:
    """Return the nodes that are some node's `on_error` target (their prompts may use `{error}`)."""
    return {node.on_error for node in spec.nodes if node.on_error}
