"""Where a run goes next in the LangGraph engine: `flowlogic` decisions turned into `Send`s (pure).

Mirrors `actors.flow.router.Router` move for move, with graph nodes in place of work subjects: a token (the
LangGraph counterpart of a bus work item: the node's input state, counters, branch, map item) is sent
to a flow node, a fan-out arrival to the fan-out's ``<source>.arrive`` node, the end of a run to
``run.finish``. Node ids are NATS tokens (no dots), so these internal names never clash with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langgraph.types import Send

from actors.flow.logic import Counters, collect_map, map_info, map_items, merge_branches, next_targets
from configs import END, FlowSpec, analyze_graph

FAIL = "run.fail"
FINISH = "run.finish"


def arrive_node(source: str) -> str:
    """The graph node where the branches of the fan-out from `source` arrive."""
    return f"{source}.arrive"


def join_node(source: str) -> str:
    """The graph node that merges the branches of the fan-out from `source` once all arrived."""
    return f"{source}.join"


def collect_node(node: str) -> str:
    """The graph node that collects the items of map node `node`."""
    return f"{node}.collect"


class BranchRef(TypedDict):
    """The fan-out branch a token runs in, with the writes made so far on it."""

    source: str
    key: str
    index: int
    expected: int
    base: dict[str, Any]
    writes: list[list[Any]]


class Token(TypedDict):
    """One step to run: the input of a flow node (the LangGraph counterpart of a bus `WorkItem`)."""

    node: str
    iteration: int
    index: int
    state: dict[str, Any]
    visits: dict[str, int]
    taken: dict[str, int]
    branch: BranchRef | None
    item: Any
    total: int
    error: str | None


def counters_of(token: Mapping[str, Any]) -> Counters:
    """The counters a token (or a record with ``visits``/``taken``) carries."""
    return Counters(dict(token["visits"]), dict(token["taken"]))


def step_id(run_id: str, token: Token) -> str:
    """The deterministic id of the step a token runs: ``run.node.iteration.index``."""
    return f"{run_id}.{token['node']}.{token['iteration']}.{token['index']}"


def pairs_of(writes: Sequence[Sequence[Any]]) -> list[tuple[str, Any]]:
    """Branch writes (stored as JSON lists) as (field, value) pairs."""
    return [(str(name), value) for name, value in writes]


@dataclass
class Moves:
    """What a completed step leads to: sends, and the run's main-line state when it changed."""

    sends: list[Send] = field(default_factory=list)
    main_state: dict[str, Any] | None = None


class Mover:
    """The moves of one flow: `flowlogic` decisions as `Send`s (same structure as `Router`)."""

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.graph = analyze_graph(spec)

    def proceed(
        self, node: str, state: dict[str, Any], counters: Counters, branch: BranchRef | None, by: Token | None
    ) -> Moves:
        """The moves after `node` completed (`counters` already count it); `by` is its step's token.

        Raises:
            FlowError: a route condition or a map's items cannot be evaluated on this state.
        """
        moves = Moves()
        self._continue(node, state, counters, branch, by, moves)
        return moves

    def enter(
        self,
        node: str,
        state: dict[str, Any],
        counters: Counters,
        branch: BranchRef | None,
        moves: Moves,
        error: str | None = None,
    ) -> None:
        """Send the run to `node` (a plain node, each item of a map node, or END).

        Raises:
            FlowError: `node` is a map node and its items are not a list.
        """
        if node == END:
            moves.sends.append(Send(FINISH, {"state": state}))
            return
        iteration = counters.iteration(node)
        if map_info(self.spec, node) is None:
            moves.sends.append(Send(node, self._token(node, iteration, 0, state, counters, branch, error=error)))
            return
        items = map_items(self.spec, node, state)
        if not items:
            after = collect_map(self.spec, node, state, [])
            self._continue(node, after, counters.visited(node), None, None, moves)
            return
        for index, item in enumerate(items):
            token = self._token(node, iteration, index, state, counters, None, item=item, total=len(items))
            moves.sends.append(Send(node, token))

    def join(self, record: Mapping[str, Any], moves: Moves) -> None:
        """Enter the join of a fan-out whose branches have all arrived (`record`: its barrier).

        Raises:
            FlowError: the join is a map node and its items are not a list.
        """
        order = [str(i) for i in range(int(record["expected"]))]
        arrived = record["arrived"]
        state = merge_branches(self.spec, record["base"], [pairs_of(arrived[i]["writes"]) for i in order])
        merged = Counters.merge(counters_of(arrived[i]) for i in order)
        self.enter(self.graph.fanouts[record["source"]].join, state, merged, None, moves)

    def map_token(self, record: Mapping[str, Any], index: int) -> Token:
        """The token item `index` of a map ran with (rebuilt from the map's record)."""
        items = map_items(self.spec, record["node"], record["base"])
        counters = counters_of(record)
        return self._token(
            record["node"],
            int(record["iteration"]),
            index,
            record["base"],
            counters,
            None,
            item=items[index],
            total=len(items),
        )

    def _continue(
        self,
        node: str,
        state: dict[str, Any],
        counters: Counters,
        branch: BranchRef | None,
        by: Token | None,
        moves: Moves,
    ) -> None:
        if branch is None:
            moves.main_state = state
        targets, counters = next_targets(self.spec, node, state, counters)
        if len(targets) > 1:
            fanout = self.graph.fanouts[node]
            key = f"{node}.{max(counters.visits.get(node, 0) - 1, 0)}"
            for i, target in enumerate(targets):
                sub = BranchRef(source=node, key=key, index=i, expected=len(targets), base=state, writes=[])
                if target == fanout.join:
                    self._arrive(sub, counters, by, moves)
                else:
                    self.enter(target, state, counters, sub, moves)
            return
        target = targets[0]
        if branch is not None and target == self.graph.fanouts[branch["source"]].join:
            self._arrive(branch, counters, by, moves)
            return
        self.enter(target, state, counters, branch, moves)

    def _arrive(self, branch: BranchRef, counters: Counters, by: Token | None, moves: Moves) -> None:
        arrival = {"branch": branch, "visits": dict(counters.visits), "taken": dict(counters.taken), "by": by}
        moves.sends.append(Send(arrive_node(branch["source"]), arrival))

    @staticmethod
    def _token(
        node: str,
        iteration: int,
        index: int,
        state: dict[str, Any],
        counters: Counters,
        branch: BranchRef | None,
        *,
        item: Any = None,
        total: int = 0,
        error: str | None = None,
    ) -> Token:
        return Token(
            node=node,
            iteration=iteration,
            index=index,
            state=state,
            visits=dict(counters.visits),
            taken=dict(counters.taken),
            branch=branch,
            item=item,
            total=total,
            error=error,
        )
