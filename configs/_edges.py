"""Checks of a flow's edges and graph: endpoints, edge kinds, routes, loops, maps, reachability."""

from __future__ import annotations

from collections.abc import Mapping

from configs._control import check_condition, check_cycles, check_joins, reach
from configs._graph import build_graph
from configs._issues import closest
from configs._locs import KeyPath, Problem
from configs._outputs import output_fields
from configs._schema import EDGE_KINDS, END, START, EdgeSpec, FlowSpec
from configs._typeref import ANY, TypeRef, incompatibility
from configs._types import field_ref

_DEFAULT_ROUTE_HINT = "add `- condition: {logic: default}` with a `to:` as the last route"


def check_edges(spec: FlowSpec, state_types: Mapping[str, TypeRef]) -> list[Problem]:
    """Return every problem of the edges and of the graph they draw.

    Args:
        spec: The flow.
        state_types: Parsed type of each state field.

    Returns:
        The problems, edges first, then reachability.
    """
    checker = _EdgeChecker(spec, state_types)
    for index, edge in enumerate(spec.edges):
        checker.check(index, edge)
    if not any(edge.from_ == START for edge in spec.edges):
        checker.problems.append(Problem(("edges",), "no edge from START; add `- {from: START, to: <node>}`"))
    elif not checker.bad_endpoints:
        # Reachability, cycles and joins are only meaningful (and not noise) once every edge endpoint exists.
        problems, dead = _check_reachability(spec)
        # Nodes that cannot reach END are reported once; cycles and branches through them would be noise.
        checker.problems += problems + check_cycles(spec, skip=dead)
        graph, problems = build_graph(spec, skip=dead)
        checker.problems += problems + check_joins(spec, graph)
    return checker.problems


class _EdgeChecker:
    def __init__(self, spec: FlowSpec, state_types: Mapping[str, TypeRef]) -> None:
        self.spec = spec
        self.state_types = state_types
        self.node_ids = [node.id for node in spec.nodes]
        self.problems: list[Problem] = []
        self.first_edge_from: dict[str, int] = {}
        self.bad_endpoints = 0

    def check(self, index: int, edge: EdgeSpec) -> None:
        base: KeyPath = ("edges", index)
        kinds = edge.kinds
        if not kinds:
            self.problems.append(Problem(base, f"edge needs one of {', '.join(EDGE_KINDS)}"))
        elif len(kinds) > 1:
            self.problems.append(
                Problem(base, f"edge has {' and '.join(kinds)}; an edge takes exactly one of {', '.join(EDGE_KINDS)}")
            )
        self._check_from(index, edge)
        if isinstance(edge.to, list) and not edge.to:
            self.problems.append(Problem((*base, "to"), "to: needs at least one target"))
        for k, target in enumerate([edge.to] if isinstance(edge.to, str) else edge.to or []):
            path: KeyPath = (*base, "to") if isinstance(edge.to, str) else (*base, "to", k)
            self._check_target(target, path)
        if edge.routes is not None:
            self._check_routes(base, edge)
        if edge.loop is not None:
            self._check_field(edge.loop.condition_field, TypeRef("bool"), (*base, "loop", "condition_field"))
            self._check_target(edge.loop.exit_to, (*base, "loop", "exit_to"))
        if edge.parallel is not None:
            self._check_parallel(base, edge)

    def _check_from(self, index: int, edge: EdgeSpec) -> None:
        path: KeyPath = ("edges", index, "from")
        if edge.from_ == END:
            self.problems.append(Problem(path, "END has no outgoing edges; use it as a target"))
        elif edge.from_ != START and edge.from_ not in self.node_ids:
            self.bad_endpoints += 1
            self.problems.append(
                Problem(
                    path,
                    f"unknown node {edge.from_!r} (nodes: {', '.join(self.node_ids)}, START)",
                    closest(edge.from_, [*self.node_ids, START]),
                )
            )
        if edge.from_ == START and (edge.loop is not None or edge.parallel is not None):
            self.problems.append(Problem(path, "START can only have a `to:` edge"))
        if edge.from_ in self.first_edge_from:
            self.problems.append(
                Problem(
                    path,
                    f"{edge.from_!r} already has an outgoing edge (edges[{self.first_edge_from[edge.from_]}]); "
                    "give each node one edge (a list in `to:` fans out)",
                )
            )
        else:
            self.first_edge_from[edge.from_] = index

    def _check_target(self, target: str, path: KeyPath) -> None:
        if target == START:
            self.problems.append(Problem(path, "START cannot be a target"))
        elif target != END and target not in self.node_ids:
            self.bad_endpoints += 1
            self.problems.append(
                Problem(
                    path,
                    f"unknown target {target!r} (nodes: {', '.join(self.node_ids)}, END)",
                    closest(target, [*self.node_ids, END]),
                )
            )

    def _check_routes(self, base: KeyPath, edge: EdgeSpec) -> None:
        routes = edge.routes or []
        if not routes:
            self.problems.append(Problem((*base, "routes"), f"routes is empty; {_DEFAULT_ROUTE_HINT}"))
            return
        defaults = 0
        for r, route in enumerate(routes):
            rpath: KeyPath = (*base, "routes", r)
            self._check_target(route.to, (*rpath, "to"))
            if not route.condition.logic.strip():
                self.problems.append(
                    Problem((*rpath, "condition", "logic"), "condition logic is empty; write an expression over state")
                )
            if route.condition.is_default and route.max_iterations is not None:
                self.problems.append(
                    Problem(
                        (*rpath, "max_iterations"),
                        "the default route cannot have max_iterations; it is taken when no other route is",
                    )
                )
            if not route.condition.is_default and route.condition.logic.strip():
                self.problems += check_condition(
                    route.condition.logic, self.state_types, (*rpath, "condition", "logic")
                )
            if route.condition.is_default:
                defaults += 1
                if defaults > 1:
                    self.problems.append(
                        Problem(
                            (*rpath, "condition", "logic"),
                            "routes need exactly one default route; this is a second one",
                        )
                    )
        if defaults == 0:
            self.problems.append(Problem((*base, "routes"), f"routes need a default route: {_DEFAULT_ROUTE_HINT}"))

    def _check_parallel(self, base: KeyPath, edge: EdgeSpec) -> None:
        parallel = edge.parallel
        if parallel is None:
            return
        ppath: KeyPath = (*base, "parallel")
        self._check_field(parallel.items_field, TypeRef("list"), (*ppath, "items_field"))
        collect = self._check_field(parallel.collect_field, TypeRef("list"), (*ppath, "collect_field"))
        if parallel.target_node not in self.node_ids:
            self.bad_endpoints += 1
            self.problems.append(
                Problem(
                    (*ppath, "target_node"),
                    f"unknown node {parallel.target_node!r} (nodes: {', '.join(self.node_ids)})",
                    closest(parallel.target_node, self.node_ids),
                )
            )
            return
        target = self.spec.node(parallel.target_node)
        if collect is None or collect.item is None or len(target.outputs) != 1:
            return
        output = target.outputs[0]
        produced = self._output_type(target.id, output)
        reason = incompatibility(produced, collect.item)
        if reason:
            self.problems.append(
                Problem(
                    (*ppath, "collect_field"),
                    f"items of {parallel.collect_field!r} ({collect.item}) cannot hold the output {output!r} "
                    f"({produced}) of {target.id!r}: {reason}",
                )
            )

    def _output_type(self, node_id: str, output: str) -> TypeRef:
        for name, ref, _ in output_fields(self.spec, self.spec.node(node_id)):
            if name == output:
                return ref
        field = self.spec.state.fields.get(output)
        return field_ref(field) if field else ANY

    def _check_field(self, name: str, kind: TypeRef, path: KeyPath) -> TypeRef | None:
        """Check that `name` is a state field of `kind`'s kind; return its type when it is."""
        if name not in self.state_types:
            self.problems.append(
                Problem(
                    path,
                    f"{name!r} is not a state field; it must be a {kind.kind} field "
                    f"(state fields: {', '.join(self.state_types) or 'none'})",
                    closest(name, [n for n, ref in self.state_types.items() if ref.kind == kind.kind])
                    or closest(name, self.state_types),
                )
            )
            return None
        ref = self.state_types[name]
        if ref.kind not in (kind.kind, "any"):
            self.problems.append(Problem(path, f"state field {name!r} is {ref}; it must be a {kind.kind} field"))
            return None
        return ref


def successors(spec: FlowSpec) -> dict[str, set[str]]:
    """Return where a run can go from each node (and START): edge targets, loop exits, map targets, on_error.

    Args:
        spec: The flow.

    Returns:
        node id (or START) -> ids (or END) a run can go to next.
    """
    graph: dict[str, set[str]] = {START: set(), **{node.id: set() for node in spec.nodes}}
    for edge in spec.edges:
        graph.setdefault(edge.from_, set()).update(edge.targets())
    for node in spec.nodes:
        if node.on_error:
            graph[node.id].add(node.on_error)
    return graph


def _check_reachability(spec: FlowSpec) -> tuple[list[Problem], frozenset[str]]:
    graph = successors(spec)
    forward = reach(START, graph)
    backward: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            backward.setdefault(target, set()).add(source)
    to_end = reach(END, backward)
    problems: list[Problem] = []
    for index, node in enumerate(spec.nodes):
        if node.id in (START, END):
            continue
        if node.id not in forward:
            problems.append(Problem(("nodes", index, "id"), f"node {node.id!r} is not reachable from START"))
        if node.id not in to_end:
            problems.append(
                Problem(
                    ("nodes", index, "id"),
                    f"node {node.id!r} cannot reach END; give it an edge that leads to END",
                )
            )
    return problems, frozenset(node.id for node in spec.nodes if node.id not in to_end)
