"""The graph nodes of the LangGraph engine and their conditional edges, for one run.

A flow node runs its step like a bus worker (`run_llm_node` under the node's retry policy) and hands
its result to its own conditional edge through the ``out`` channel (a path function reads the state
with the writes of its own node applied). Barriers (map collection, fan-out joins) are records in the
``maps``/``fans`` channels: items and branches add their part, the collect/join node that runs in the
next superstep merges the record once it is complete.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.types import Send

from actors.engines.langgraph.moves import FAIL, Mover, Moves, Token, counters_of, step_id
from actors.flow.llm import LLMClient
from actors.flow.logic import Counters, FlowError, collect_map, map_info, map_runtime, write_outputs
from actors.flow.node_exec import LLMUnavailable, NodeFailed, NodeOutcome, run_llm_node
from actors.flow.plan import Plan
from configs import START, FlowSpec
from configs.errors import ActorError

_FAILURE_KINDS: tuple[str, ...] = ("llm_error", "timeout", "bad_output")
# Parts of a barrier record that accumulate (one entry per branch or map item).
PARTS = ("arrived", "results", "failed", "skipped")


class RunFailed(ActorError):
    """A node failed for good and has no ``on_error`` target: the run fails with its error."""


@dataclass
class RunNodes:
    """The graph nodes of one run, with what they share besides the graph state.

    The step records and the main-line state are kept here rather than in channels so that a run
    that fails or times out (the graph raises) still reports them, as the bus's run record does.
    """

    plan: Plan
    llm: LLMClient
    model_override: str | None
    run_id: str
    main_state: dict[str, Any]
    mover: Mover = field(init=False)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # Map windows: (map key, index) -> whether that item finished well (item i + k waits for item i).
    _gates: dict[tuple[str, int], asyncio.Future[bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mover = Mover(self.plan.spec)

    @property
    def spec(self) -> FlowSpec:
        return self.plan.spec

    # --- flow nodes -------------------------------------------------------------------------------

    async def flow_node(self, arg: Any) -> dict[str, Any]:
        """Run one step of a flow node (`arg`: its token); a map item reports to its map's record."""
        token: Token = arg
        info = map_info(self.spec, token["node"])
        if info is None:
            return await self._plain_step(token)
        key, index = f"{token['node']}.{token['iteration']}", token["index"]
        record = _map_record(token)
        window = info.max_concurrency
        if window and index >= window and not await self._gate(key, index - window):
            # The item it waits for failed: on the bus this item would never be published.
            self._gate(key, index).set_result(False)
            return {"maps": {key: {**record, "skipped": {str(index): True}}}}
        started = time.time()
        try:
            outcome = await self._execute(token)
        except NodeFailed as exc:
            self._record(token, "failed", started)
            self._gate(key, index).set_result(False)
            return {"maps": {key: {**record, "failed": {str(index): str(exc)}}}}
        except BaseException:
            self._gate(key, index).set_result(False)
            raise
        self._record(token, "succeeded", started)
        self._gate(key, index).set_result(True)
        return {"maps": {key: {**record, "results": {str(index): outcome.outputs}}}}

    async def _plain_step(self, token: Token) -> dict[str, Any]:
        started = time.time()
        try:
            outcome = await self._execute(token)
        except NodeFailed as exc:
            self._record(token, "failed", started)
            return {"out": {"token": token, "failed": str(exc)}}
        self._record(token, "succeeded", started)
        node = self.spec.node(token["node"])
        pairs = [(name, outcome.outputs[name]) for name in node.outputs if name in outcome.outputs]
        branch = token["branch"]
        if branch is not None:
            branch = {**branch, "writes": [*branch["writes"], *([name, value] for name, value in pairs)]}
        return {"out": {"token": token, "state": write_outputs(self.spec, token["state"], pairs), "branch": branch}}

    def after_node(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of a plain flow node: `next_targets` through the `Mover`."""
        out = channels["out"]
        token: Token = out["token"]
        if out.get("failed") is not None:
            return [Send(FAIL, {"token": token, "error": out["failed"]})]
        counters = counters_of(token).visited(token["node"])
        try:
            moves = self.mover.proceed(token["node"], out["state"], counters, out["branch"], token)
        except FlowError as exc:
            return [Send(FAIL, {"token": token, "error": str(exc)})]
        return self._take(moves)

    # --- maps -------------------------------------------------------------------------------------

    @staticmethod
    def collector(node: str) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
        """The collect node of map node `node`: takes its complete records out of the ``maps`` channel."""

        async def collect(channels: Mapping[str, Any]) -> dict[str, Any]:
            maps: dict[str, Any] = channels.get("maps", {})
            done = {key: rec for key, rec in maps.items() if rec["node"] == node and _complete(rec)}
            return {"maps": dict.fromkeys(done), "out": {"records": list(done.values())}}

        return collect

    def after_map(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of a map's collect node: collect in item order, then the map node's edge."""
        sends: list[Send] = []
        for record in channels["out"]["records"]:
            failed: dict[str, str] = record.get("failed", {})
            if failed:
                first = min(failed, key=int)
                sends.append(Send(FAIL, {"token": self.mover.map_token(record, int(first)), "error": failed[first]}))
                continue
            node = record["node"]
            outputs = [record["results"][str(i)] for i in range(record["total"])]
            after = collect_map(self.spec, node, record["base"], outputs)
            try:
                moves = self.mover.proceed(node, after, counters_of(record).visited(node), None, None)
            except FlowError as exc:
                # On the bus the item that finished last takes the blame; here, the last item.
                last = self.mover.map_token(record, record["total"] - 1)
                sends.append(Send(FAIL, {"token": last, "error": str(exc)}))
                continue
            sends += self._take(moves)
        return sends

    # --- fan-outs ---------------------------------------------------------------------------------

    @staticmethod
    async def arrive(arg: Any) -> dict[str, Any]:
        """A branch reached its join: add its writes and counters to the fan-out's record."""
        branch = arg["branch"]
        arrival = {"writes": branch["writes"], "visits": arg["visits"], "taken": arg["taken"], "by": arg["by"]}
        record = {
            "source": branch["source"],
            "expected": branch["expected"],
            "base": branch["base"],
            "arrived": {str(branch["index"]): arrival},
        }
        return {"fans": {branch["key"]: record}}

    @staticmethod
    def joiner(source: str) -> Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]:
        """The join node of the fan-out from `source`: takes its records once every branch arrived."""

        async def join(channels: Mapping[str, Any]) -> dict[str, Any]:
            fans: dict[str, Any] = channels.get("fans", {})
            done = {
                key: rec
                for key, rec in fans.items()
                if rec["source"] == source and len(rec["arrived"]) >= rec["expected"]
            }
            return {"fans": dict.fromkeys(done), "out": {"records": list(done.values())}}

        return join

    def after_join(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of a join node: merge the branches in branch order, enter the join."""
        sends: list[Send] = []
        for record in channels["out"]["records"]:
            moves = Moves()
            try:
                self.mover.join(record, moves)
            except FlowError as exc:
                # On the bus the branch that arrived last takes the blame; here, the last branch.
                by = record["arrived"][str(record["expected"] - 1)]["by"]
                if by is None:
                    raise
                sends.append(Send(FAIL, {"token": by, "error": str(exc)}))
                continue
            sends += self._take(moves)
        return sends

    # --- failures, start and end ------------------------------------------------------------------

    async def fail(self, arg: Any) -> dict[str, Any]:
        """A step failed for good: mark it, then its node's ``on_error`` target or the end of the run.

        Raises:
            RunFailed: the node has no ``on_error`` target.
        """
        token: Token = arg["token"]
        sid = step_id(self.run_id, token)
        for step in self.steps:
            if step["step_id"] == sid:
                step["status"] = "failed"
        if self.spec.node(token["node"]).on_error is None:
            raise RunFailed(arg["error"])
        return {"out": {"token": token, "error": arg["error"]}}

    def after_failure(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of ``run.fail``: enter the ``on_error`` target with ``{error}``."""
        out = channels["out"]
        token: Token = out["token"]
        target = self.spec.node(token["node"]).on_error
        assert target is not None  # `fail` raised otherwise
        moves = Moves()
        counters = counters_of(token).visited(token["node"])
        self.mover.enter(target, token["state"], counters, token["branch"], moves, error=out["error"])
        return self._take(moves)

    def first(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of START (the scheduler keeps the initial state as the run's state)."""
        return self.mover.proceed(START, channels["out"]["state"], Counters(), None, None).sends

    @staticmethod
    async def finish(arg: Any) -> dict[str, Any]:
        """The run reached END with this state."""
        return {"final": arg["state"]}

    # --- helpers ----------------------------------------------------------------------------------

    def _take(self, moves: Moves) -> list[Send]:
        if moves.main_state is not None:
            self.main_state = moves.main_state
        return moves.sends

    def _record(self, token: Token, status: Literal["succeeded", "failed"], started: float) -> None:
        self.steps.append(
            {
                "step_id": step_id(self.run_id, token),
                "node": token["node"],
                "iteration": token["iteration"],
                "index": token["index"],
                "status": status,
                "duration_ms": round((time.time() - started) * 1000, 3),
            }
        )

    def _gate(self, key: str, index: int) -> asyncio.Future[bool]:
        return self._gates.setdefault((key, index), asyncio.get_running_loop().create_future())

    async def _execute(self, token: Token) -> NodeOutcome:
        """Run a node under its retry policy, as the bus worker does (`NodeWorker._run_node`).

        Raises:
            NodeFailed: the node failed for good.
        """
        spec = self.spec
        node = spec.node(token["node"])
        policy = node.retry
        max_attempts = policy.max_attempts if policy and policy.max_attempts else 1 + self.plan.max_retries
        on: set[str] = set(policy.on) if policy else set(_FAILURE_KINDS)
        backoff_s = (policy.backoff_ms if policy else 500) / 1000
        runtime: dict[str, Any] = {}
        if map_info(spec, node.id) is not None:
            runtime.update(map_runtime(spec, node.id, token["item"], token["index"]))
        if token["error"] is not None:
            runtime["error"] = token["error"]
        delivery = 1
        while True:
            call = run_llm_node(
                spec,
                node,
                token["state"],
                llm=self.llm,
                model_override=self.model_override,
                max_retries=max_attempts - 1 if "bad_output" in on else 0,
                runtime=runtime,
                run_id=self.run_id,
                step_id=step_id(self.run_id, token),
                index=token["index"],
                timeout_s=node.timeout_s,
            )
            try:
                return await asyncio.wait_for(call, timeout=node.timeout_s) if node.timeout_s else await call
            except LLMUnavailable as exc:
                kind, problem = "llm_error", str(exc)
            except TimeoutError:
                kind, problem = "timeout", f"node '{node.id}' took longer than timeout_s={node.timeout_s:g}"
            if kind not in on or delivery >= max_attempts:
                raise NodeFailed(f"{problem} (after {delivery} attempt{'s' if delivery > 1 else ''})")
            # The bus redelivers after backoff_ms * 2^(attempt-1); in-process the step simply waits.
            await asyncio.sleep(backoff_s * 2 ** (delivery - 1))
            delivery += 1


def merge_records(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Reducer of the barrier channels: record parts accumulate; a None record is removed."""
    merged = dict(old)
    for key, record in new.items():
        if record is None:
            merged.pop(key, None)
            continue
        current = merged.get(key, {})
        parts = {p: {**current.get(p, {}), **record[p]} for p in PARTS if p in record}
        merged[key] = {**current, **record, **parts}
    return merged


def _map_record(token: Token) -> dict[str, Any]:
    return {
        "node": token["node"],
        "iteration": token["iteration"],
        "total": token["total"],
        "base": token["state"],
        "visits": token["visits"],
        "taken": token["taken"],
    }


def _complete(record: Mapping[str, Any]) -> bool:
    finished = sum(len(record.get(part, {})) for part in ("results", "failed", "skipped"))
    return bool(finished >= record["total"])
