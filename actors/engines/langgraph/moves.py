"""The moves of `actors.flow.moves` as LangGraph `Send`s (pure), and the graph nodes they go to.

A step goes to its flow node as a token (the LangGraph counterpart of a bus work item: the node's
input state, counters, branch, map item); a map's start sends every item's token at once (the window
is kept by the items themselves, `RunNodes.flow_node`); a fan-out's barrier is opened, and each
branch arrives, by a `Send` to the fan-out's ``<source>.arrive`` node, which writes the ``fans``
channel; the end of a run goes to ``run.finish``. Node ids are NATS tokens (no dots), so these
internal names never clash with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from langgraph.types import Send

from actors.flow.logic import Counters
from actors.flow.moves import Arrive, Enter, Finish, Fork, MainLine, Move, StartMap
from bus import Branch

FAIL = "run.fail"
FINISH = "run.finish"


def arrive_node(source: str) -> str:
    """The graph node where the fan-out from `source` opens its barrier and its branches arrive."""
    return f"{source}.arrive"


def join_node(source: str) -> str:
    """The graph node that merges the branches of the fan-out from `source` once all arrived."""
    return f"{source}.join"


def collect_node(node: str) -> str:
    """The graph node that collects the items of map node `node`."""
    return f"{node}.collect"


class Token(TypedDict):
    """One step to run: the input of a flow node (`total`: the number of items, for a map item)."""

    node: str
    iteration: int
    index: int
    state: dict[str, Any]
    visits: dict[str, int]
    taken: dict[str, int]
    branch: dict[str, Any] | None
    item: Any
    total: int
    error: str | None


def token_of(step: Enter, total: int = 0) -> Token:
    """The token that runs `step` (plain data, so checkpointers can store it)."""
    return Token(
        node=step.node,
        iteration=step.iteration,
        index=step.index,
        state=step.state,
        visits=dict(step.counters.visits),
        taken=dict(step.counters.taken),
        branch=_branch(step.branch) if step.branch is not None else None,
        item=step.item,
        total=total,
        error=step.error,
    )


def step_of(token: Token) -> Enter:
    """The step a token runs, as the move that entered it."""
    branch = Branch.model_validate(token["branch"]) if token["branch"] is not None else None
    counters = Counters(dict(token["visits"]), dict(token["taken"]))
    return Enter(
        token["node"],
        token["iteration"],
        token["index"],
        token["state"],
        counters,
        branch,
        token["item"],
        token["error"],
    )


def sends(moves: Sequence[Move], by: Token | None) -> list[Send]:
    """The `Send`s that execute `moves`; `by` is the step they follow (blamed when a join cannot go on)."""
    out: list[Send] = []
    for move in moves:
        match move:
            case Enter():
                out.append(Send(move.node, token_of(move)))
            case StartMap():
                out += [Send(move.node, token_of(step, total=len(move.items))) for step in move.steps()]
            case Fork():
                opened = {
                    "source": move.source,
                    "expected": move.expected,
                    "base": move.base,
                    "arrived": {},
                    "counters": {},
                    "by": {},
                }
                out.append(Send(arrive_node(move.source), {"barrier": move.barrier, "record": opened}))
            case Arrive():
                slot = str(move.branch.index)
                writes = _branch(move.branch)["writes"]
                part = {"arrived": {slot: writes}, "counters": {slot: move.counters.record()}, "by": {slot: by}}
                out.append(Send(arrive_node(move.branch.source), {"barrier": move.branch.barrier, "record": part}))
            case Finish():
                out.append(Send(FINISH, {"state": move.state}))
            case MainLine():
                pass  # the run's state on failure: kept by `RunNodes`, not sent anywhere
    return out


def _branch(branch: Branch) -> dict[str, Any]:
    writes = [[name, value] for name, value in branch.writes]
    return {"source": branch.source, "barrier": branch.barrier, "index": branch.index, "writes": writes}
