"""The in-process LangGraph engine: a flow compiled into a `StateGraph` and run with no bus.

It is the oracle of the differential tests against the bus engine, so it makes the same moves (the
walk of `actors.flow.moves`, executed as `Send`s by `actors.engines.langgraph.moves.sends`) and runs
nodes with the same code (`actors.flow.node_exec.run_llm_node`, under `actors.flow.policy`). Mapping
onto LangGraph:

- every flow node is one graph node fed by `Send`s carrying a token (input state, counters, fan-out
  branch, map item), as a work item feeds a bus worker; its conditional edge asks for the moves after
  its step (`moves.after_step`) and returns them as `Send`s, so counters travel with each path;
- a map node gets one `Send` per item, all in one superstep; a static edge leads to ``<node>.collect``,
  which goes on with `moves.after_map` (collect in item order, then the map node's own edge, once).
  ``max_concurrency: k`` is honoured as on the bus: item ``i + k`` starts when item ``i`` has finished
  (and never when it failed); LangGraph's own ``max_concurrency`` setting is not used;
- a fan-out opens its barrier record with a `Send` to ``<source>.arrive`` and sends each branch its
  own copy of the state; branch ends `Send` their writes there too, and its static edge runs
  ``<source>.join`` (a barrier like the bus's: it goes on with `moves.after_join` once every branch
  has arrived, whatever the branches' lengths). Not
  ``defer=True``: LangGraph finishes deferred nodes when no edge fires, even with `Send`s pending, so
  a deferred join would run before a longer branch had arrived;
- a failure (`NodeFailed`, or a `FlowError` deciding a step's moves) goes to ``run.fail``, which marks
  the step failed and takes the node's ``on_error`` target or ends the run; END goes to ``run.finish``.

The graph is compiled once per plan version (`build_graph`) and holds no run: each run passes its
`RunNodes` (steps, main-line state, map windows, LLM client) as LangGraph's runtime ``context``.

Checkpointers: "memory" (`InMemorySaver`) or "sqlite" (`AsyncSqliteSaver`), thread id = run id, with
``durability="sync"`` (a checkpoint per superstep before the next one starts, as the bus checkpoints
each step before publishing its successors).

Modules: `moves` (tokens, and moves as `Send`s; pure), `nodes` (graph nodes of one run), this one
(graph assembly and `run_langgraph`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from actors.engines.langgraph.moves import FAIL, FINISH, arrive_node, collect_node, join_node
from actors.engines.langgraph.nodes import RunFailed, RunNodes, SandboxPorts, merge_records
from actors.flow import moves
from actors.flow.llm import LLMClient
from actors.flow.logic import FlowError
from actors.flow.node_exec import NodeFailed
from actors.flow.plan import Plan
from actors.sandbox import SandboxPool
from configs import FlowSpec, InputError, analyze_graph, initial_state

__all__ = ["Checkpointer", "RunFailed", "build_graph", "recursion_limit", "run_langgraph"]

Checkpointer = Literal["none", "memory", "sqlite"]
_NodeFn = Callable[..., Awaitable[dict[str, Any]]]
_PathFn = Callable[..., list[Send]]


def _last(_old: Any, new: Any) -> Any:
    return new


class _Channels(TypedDict, total=False):
    # What the node that just ran hands to its own conditional edge (read back with its own writes).
    out: Annotated[Any, _last]
    # Barrier records: fan-outs waiting for branches, maps waiting for items.
    fans: Annotated[dict[str, Any], merge_records]
    maps: Annotated[dict[str, Any], merge_records]
    # The state the run reached END with.
    final: Annotated[Any, _last]


async def run_langgraph(
    plan: Plan,
    inputs: Mapping[str, Any],
    *,
    llm: LLMClient,
    model_override: str | None = None,
    run_id: str = "langgraph",
    checkpointer: Checkpointer = "none",
    sqlite_path: Path | None = None,
    timeout_s: float | None = None,
    sandbox: SandboxPool | None = None,
    allow_unsandboxed: bool = False,
    sandbox_image: str | None = None,
) -> dict[str, Any]:
    """Run a flow in-process on LangGraph, with the semantics of docs/control-flow.md.

    Args:
        plan: The compiled flow.
        inputs: The trigger inputs (state field -> value).
        llm: Where nodes get completions (e.g. an in-process `LLMBackend`).
        model_override: Model for every node (``--llm``), e.g. ``mock``.
        run_id: The run id (step ids, mock-script counters, checkpoint thread id).
        checkpointer: "none", "memory" (`InMemorySaver`) or "sqlite" (`AsyncSqliteSaver`).
        sqlite_path: The SQLite file, for "sqlite".
        timeout_s: Limit for the whole run; default ``config.execution.timeout``.
        sandbox: Where code nodes run (None: a pool of this run's, started at its first code node).
        allow_unsandboxed: Let nodes with ``sandbox.enabled: false`` run (the operator's choice).
        sandbox_image: The image of ``sandbox.mode: docker`` nodes that name none.

    Returns:
        The shape of `RunRecord.result()`: run_id, flow, status, state, steps, error.

    Raises:
        ValueError: "sqlite" without `sqlite_path`.
    """
    if checkpointer == "sqlite" and sqlite_path is None:
        raise ValueError('checkpointer "sqlite" needs sqlite_path')
    spec = plan.spec
    try:
        state = initial_state(spec, inputs)
        # The scheduler rejects a run whose first moves cannot be made (e.g. a map over a non-list).
        moves.start(spec, run_id, state)
    except (InputError, FlowError) as exc:
        return _result(run_id, plan.flow, "rejected", {}, [], str(exc))
    limit = timeout_s if timeout_s is not None else plan.timeout_s
    error: str | None = None
    final: dict[str, Any] | None = None
    own = SandboxPool(size=1) if sandbox is None else None
    ports = SandboxPorts(sandbox or own, allow_unsandboxed, sandbox_image)
    nodes = RunNodes(plan, llm, model_override, run_id, main_state=state, sandbox=ports)
    try:
        async with (
            contextlib.AsyncExitStack() as stack,
            _saver(checkpointer, sqlite_path, run_id) as saver,
            asyncio.timeout(limit),
        ):
            if own is not None:
                stack.push_async_callback(own.close)
            graph = build_graph(plan)
            if saver is not None:
                graph = graph.copy(update={"checkpointer": saver})
            out = await graph.ainvoke(
                {"out": {"state": state}},
                {"recursion_limit": recursion_limit(spec), "configurable": {"thread_id": run_id}},
                context=nodes,
                durability="sync" if saver is not None else None,
            )
        final = out.get("final")
        if final is None:
            error = "the run stopped before reaching END"
    except (RunFailed, FlowError, NodeFailed) as exc:
        error = str(exc)
    except GraphRecursionError as exc:
        error = f"the run took more supersteps than its bounds allow: {exc}"
    except TimeoutError:
        error = f"run timed out after {limit:g}s (config.execution.timeout)"
    if final is not None:
        return _result(run_id, plan.flow, "succeeded", final, nodes.steps, None)
    return _result(run_id, plan.flow, "failed", nodes.main_state, nodes.steps, error)


def build_graph(plan: Plan) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled `StateGraph` of a flow, without checkpointer (cached per plan version).

    The graph holds no run: each run passes its `RunNodes` as the LangGraph runtime ``context``, so
    one compiled graph serves any number of concurrent runs (compiling costs more than a mock run).
    """
    key = plan.kv_key()
    graph = _GRAPHS.get(key)
    if graph is None:
        graph = _GRAPHS[key] = _compile(plan.spec)
        while len(_GRAPHS) > _MAX_GRAPHS:
            del _GRAPHS[next(iter(_GRAPHS))]
    return graph


_GRAPHS: dict[str, CompiledStateGraph[Any, Any, Any, Any]] = {}
_MAX_GRAPHS = 64


def _compile(spec: FlowSpec) -> CompiledStateGraph[Any, Any, Any, Any]:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(_Channels, context_schema=RunNodes)
    graph = analyze_graph(spec)

    def node(name: str, fn: _NodeFn, path: _PathFn | None = None) -> None:
        builder.add_node(name, fn)
        if path is not None:
            builder.add_conditional_edges(name, path)

    for spec_node in spec.nodes:
        if spec_node.id in graph.maps:
            node(spec_node.id, _flow_node)
            node(collect_node(spec_node.id), RunNodes.collector(spec_node.id), _after_map)
            builder.add_edge(spec_node.id, collect_node(spec_node.id))
        else:
            node(spec_node.id, _flow_node, _after_node)
    for source in graph.fanouts:
        node(arrive_node(source), RunNodes.arrive)
        node(join_node(source), RunNodes.joiner(source), _after_join)
        builder.add_edge(arrive_node(source), join_node(source))
    node(FAIL, _fail, _after_failure)
    node(FINISH, RunNodes.finish)
    builder.add_conditional_edges(START, _first)
    return builder.compile()


# LangGraph injects the run's `RunNodes` (the ``context`` of `ainvoke`) as ``runtime.context``.


async def _flow_node(arg: Any, runtime: Runtime[RunNodes]) -> dict[str, Any]:
    return await runtime.context.flow_node(arg)


def _after_node(channels: Mapping[str, Any], runtime: Runtime[RunNodes]) -> list[Send]:
    return runtime.context.after_node(channels)


def _after_map(channels: Mapping[str, Any], runtime: Runtime[RunNodes]) -> list[Send]:
    return runtime.context.after_map(channels)


def _after_join(channels: Mapping[str, Any], runtime: Runtime[RunNodes]) -> list[Send]:
    return runtime.context.after_join(channels)


async def _fail(arg: Any, runtime: Runtime[RunNodes]) -> dict[str, Any]:
    return await runtime.context.fail(arg)


def _after_failure(channels: Mapping[str, Any], runtime: Runtime[RunNodes]) -> list[Send]:
    return runtime.context.after_failure(channels)


def _first(channels: Mapping[str, Any], runtime: Runtime[RunNodes]) -> list[Send]:
    return runtime.context.first(channels)


def recursion_limit(spec: FlowSpec) -> int:
    """Supersteps a legal run of `spec` can take, with room to spare (LangGraph's default is 25).

    Between two uses of a bound (a loop repeat or a bounded route) a path visits each node at most
    once, and a step costs at most four supersteps (node, arrive, join or collect, fail).
    """
    bounds = 0
    for edge in spec.edges:
        if edge.loop is not None:
            bounds += edge.loop.max_iterations
        for route in edge.routes or []:
            bounds += route.max_iterations or 0
    return 4 * (bounds + 1) * (len(spec.nodes) + 2) + 64


@contextlib.asynccontextmanager
async def _saver(kind: Checkpointer, path: Path | None, run_id: str) -> AsyncIterator[BaseCheckpointSaver[Any] | None]:
    if kind == "none":
        yield None
    elif kind == "memory":
        yield InMemorySaver()
    else:
        assert path is not None
        # aiosqlite is pinned below 0.22: langgraph-checkpoint-sqlite 3.0.0 calls `conn.is_alive()`,
        # which 0.22 removed (langgraph#6583).
        async with aiosqlite.connect(str(path)) as conn:
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            # A run id names one run: running it again starts afresh instead of on the old channels.
            await saver.adelete_thread(run_id)
            yield saver


def _result(
    run_id: str, flow: str, status: str, state: dict[str, Any], steps: list[dict[str, Any]], error: str | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "flow": flow,
        "status": status,
        "state": state,
        "steps": [{k: s[k] for k in ("node", "iteration", "index", "status", "duration_ms")} for s in steps],
        "error": error,
    }
