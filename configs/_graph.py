"""The control-flow structure of a flow: map nodes, fan-outs with their branches and joins.

Used both by validation (which reports the problems found on the way) and by the runtime's plan
compiler (`analyze_graph`, on a flow that has passed validation). Semantics: docs/control-flow.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from configs._locs import KeyPath, Problem
from configs._schema import END, EdgeSpec, FlowSpec

_BRANCH_RULE = "inside a fan-out branch only single-target `to` edges are allowed (no routes, loops, maps or fan-outs)"


@dataclass(frozen=True)
class MapInfo:
    """A map node: it runs once per item of a list in the state."""

    node: str
    items: tuple[str, ...]
    as_name: str
    max_concurrency: int | None
    collect: str


@dataclass(frozen=True)
class FanOutInfo:
    """A `to: [b1, ..., bn]` edge: the nodes of each branch, in order, and where the branches join."""

    source: str
    branches: tuple[tuple[str, ...], ...]
    join: str


@dataclass(frozen=True)
class FlowGraph:
    """Maps, fan-outs and joins of a flow (read-only mappings)."""

    maps: Mapping[str, MapInfo]
    fanouts: Mapping[str, FanOutInfo]
    joins: Mapping[str, str]
    branch_of: Mapping[str, tuple[str, int]]


def items_path(text: str) -> tuple[str, ...]:
    """Return the state path of a `foreach.items` value: `state.xs` or `xs` -> ("xs",).

    Args:
        text: The value as written.

    Returns:
        The segments without a leading `state`.
    """
    segments = tuple(text.strip().split("."))
    return segments[1:] if segments[0] == "state" and len(segments) > 1 else segments


_CACHE: dict[int, tuple[weakref.ref[FlowSpec], FlowGraph]] = {}


def analyze_graph(spec: FlowSpec) -> FlowGraph:
    """Return the maps, fan-outs and joins of a validated flow.

    On a flow that did not pass validation the result is a best effort (problems are ignored).

    Args:
        spec: The flow (as returned by `load_flow`).

    Returns:
        The graph structure, cached per flow object.
    """
    key = id(spec)
    cached = _CACHE.get(key)
    if cached is not None and cached[0]() is spec:
        return cached[1]
    graph = build_graph(spec)[0]
    # The entry is dropped when the spec is collected, so a reused id never finds a stale graph.
    _CACHE[key] = (weakref.ref(spec, lambda _: _CACHE.pop(key, None)), graph)
    return graph


def build_graph(spec: FlowSpec, skip: frozenset[str] = frozenset()) -> tuple[FlowGraph, list[Problem]]:
    """Analyse a flow and return its graph structure with the problems found.

    Args:
        spec: The flow.
        skip: Nodes already reported (they cannot reach END); branches through them are not reported.

    Returns:
        The graph and the problems (maps declared twice, bad branches, joins shared by fan-outs).
    """
    builder = _Builder(spec, skip)
    builder.collect_maps()
    for index, edge in enumerate(spec.edges):
        if isinstance(edge.to, list) and len(edge.to) > 1:
            builder.fan_out(index, edge)
    graph = FlowGraph(
        maps=MappingProxyType(builder.maps),
        fanouts=MappingProxyType(builder.fanouts),
        joins=MappingProxyType(builder.joins),
        branch_of=MappingProxyType(builder.branch_of),
    )
    return graph, builder.problems


def predecessors(spec: FlowSpec) -> dict[str, set[str]]:
    """Return, for each node (and END), the nodes (or START) whose edge or `on_error` can lead to it."""
    found: dict[str, set[str]] = {}
    for edge in spec.edges:
        for target in edge.targets():
            found.setdefault(target, set()).add(edge.from_)
    for node in spec.nodes:
        if node.on_error:
            found.setdefault(node.on_error, set()).add(node.id)
    return found


@dataclass
class _Builder:
    spec: FlowSpec
    skip: frozenset[str]
    maps: dict[str, MapInfo] = field(default_factory=dict)
    fanouts: dict[str, FanOutInfo] = field(default_factory=dict)
    joins: dict[str, str] = field(default_factory=dict)
    branch_of: dict[str, tuple[str, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out: dict[str, tuple[int, EdgeSpec]] = {}
        for index, edge in enumerate(self.spec.edges):
            self.out.setdefault(edge.from_, (index, edge))
        self.node_index = {node.id: k for k, node in enumerate(self.spec.nodes)}
        self.preds = predecessors(self.spec)

    def collect_maps(self) -> None:
        for index, edge in enumerate(self.spec.edges):
            parallel = edge.parallel
            if parallel is None:
                continue
            if parallel.target_node in self.maps:
                self.problems.append(
                    Problem(
                        ("edges", index, "parallel", "target_node"),
                        f"node {parallel.target_node!r} is already the target_node of another parallel edge; "
                        "a node can be the map node of one parallel edge only",
                    )
                )
                continue
            self.maps[parallel.target_node] = MapInfo(
                parallel.target_node,
                (parallel.items_field,),
                "item",
                parallel.max_concurrency,
                parallel.collect_field,
            )
        for k, node in enumerate(self.spec.nodes):
            if node.foreach is None:
                continue
            if node.id in self.maps:
                self.problems.append(
                    Problem(
                        ("nodes", k, "foreach"),
                        f"node {node.id!r} has a foreach and is also the target_node of a parallel edge; "
                        "keep one of them (they mean the same)",
                    )
                )
                continue
            each = node.foreach
            self.maps[node.id] = MapInfo(node.id, items_path(each.items), each.as_, each.max_concurrency, each.collect)

    def chain(self, start: str) -> tuple[list[str], str | None]:
        """Follow single-target `to` edges from `start`; return the nodes (END last if reached), the stopper."""
        seq: list[str] = []
        node = start
        while node != END and node not in seq:
            seq.append(node)
            entry = self.out.get(node)
            target = _single_target(entry[1]) if entry else None
            if target is None:
                return seq, node
            node = target
        if node == END:
            seq.append(END)
        return seq, None

    def fan_out(self, index: int, edge: EdgeSpec) -> None:
        source = edge.from_
        targets = list(edge.to or [])
        base: KeyPath = ("edges", index, "to")
        for k, target in enumerate(targets):
            if target in targets[:k]:
                self.problems.append(Problem((*base, k), f"fan-out target {target!r} is listed twice"))
                return
        chains = [self.chain(target) for target in targets]
        seqs = [seq for seq, _ in chains]
        join = next((node for node in seqs[0] if all(node in seq for seq in seqs[1:])), None)
        if join is None:
            if not any(self.skip.intersection(seq) for seq in seqs):
                self._no_join(index, source, chains)
            return
        branches = tuple(tuple(seq[: seq.index(join)]) for seq in seqs)
        ok = self._check_branches(source, branches, join)
        if join in self.joins:
            other = self.joins[join]
            what = "several fan-outs end at END; only one may" if join == END else f"node {join!r} joins two fan-outs"
            self.problems.append(
                Problem(base, f"{what} (from {other!r} and from {source!r}); give each fan-out its own join node")
            )
            ok = False
        if not ok:
            return
        self.fanouts[source] = FanOutInfo(source, branches, join)
        self.joins[join] = source
        for b, branch in enumerate(branches):
            for node in branch:
                self.branch_of[node] = (source, b)

    def _no_join(self, index: int, source: str, chains: list[tuple[list[str], str | None]]) -> None:
        stoppers = [stop for _, stop in chains if stop is not None and stop in self.node_index]
        for stop in dict.fromkeys(stoppers):
            entry = self.out.get(stop)
            kind = "no outgoing edge" if entry is None else _kind_text(entry[1])
            self.problems.append(
                Problem(
                    self._where(stop),
                    f"node {stop!r} is in a branch of the fan-out from {source!r} and has {kind}; {_BRANCH_RULE}",
                )
            )
        if not stoppers:
            self.problems.append(
                Problem(
                    ("edges", index, "to"),
                    f"the branches of the fan-out from {source!r} never meet; "
                    "lead every branch to one join node (or END) with `to:` edges",
                )
            )

    def _check_branches(self, source: str, branches: tuple[tuple[str, ...], ...], join: str) -> bool:
        ok = True
        seen: dict[str, int] = {}
        for b, branch in enumerate(branches):
            previous = source
            for node in branch:
                where = self._where(node)
                rule = f"node {node!r} is in branch {b} of the fan-out from {source!r}"
                if node in seen:
                    self.problems.append(
                        Problem(
                            where,
                            f"branches {seen[node]} and {b} of the fan-out from {source!r} meet at {node!r} "
                            f"before the join {join!r}; nested joins are not supported",
                        )
                    )
                    ok = False
                    break
                seen[node] = b
                if node in self.maps:
                    self.problems.append(Problem(where, f"{rule} and is a map node; {_BRANCH_RULE}"))
                    ok = False
                if self.spec.nodes[self.node_index[node]].on_error:
                    # The other branches wait at the join barrier: a detour out of the branch would
                    # leave them waiting for ever (or enter the join without its barrier).
                    self.problems.append(
                        Problem(
                            ("nodes", self.node_index[node], "on_error"),
                            f"{rule} and has on_error; a node inside a fan-out branch cannot take on_error "
                            "(a failure there fails the run)",
                        )
                    )
                    ok = False
                others = sorted(self.preds.get(node, set()) - {previous})
                if others:
                    self.problems.append(
                        Problem(
                            where,
                            f"{rule} but is also reached from {', '.join(map(repr, others))}; "
                            "a branch node can only be reached through its branch",
                        )
                    )
                    ok = False
                previous = node
        return ok

    def _where(self, node: str) -> KeyPath:
        entry = self.out.get(node)
        if entry is not None:
            return ("edges", entry[0], "from")
        return ("nodes", self.node_index[node], "id") if node in self.node_index else ("edges",)


def _single_target(edge: EdgeSpec) -> str | None:
    if edge.kinds != ["to"]:
        return None
    if isinstance(edge.to, str):
        return edge.to
    return edge.to[0] if isinstance(edge.to, list) and len(edge.to) == 1 else None


def _kind_text(edge: EdgeSpec) -> str:
    if isinstance(edge.to, list) and len(edge.to) > 1:
        return "a fan-out edge (to: a list)"
    return f"a {edge.kind} edge"
