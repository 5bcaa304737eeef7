"""The graph nodes of the LangGraph engine and their conditional edges, for one run.

A flow node runs its step like a bus worker (`run_llm_node` under the node's retry policy) and hands
its result to its own conditional edge through the ``out`` channel (a path function reads the state
with the writes of its own node applied); the edge asks `actors.flow.moves` for the moves and sends
them (`sends`). Barriers (map collection, fan-out joins) are records in the ``maps``/``fans``
channels: a fan-out opens its record, items and branches add their part, and the collect/join node
that runs in the next superstep takes the record once it is complete and asks `actors.flow.moves`
what follows (`after_map`, `after_join`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.types import Send

from actors.engines.langgraph.moves import FAIL, Token, sends, step_of, token_of
from actors.flow import moves
from actors.flow.llm import LLMClient
from actors.flow.logic import FlowError, map_info, map_runtime
from actors.flow.moves import JoinBarrier, MainLine, MapBarrier, Move
from actors.flow.node_exec import LLMUnavailable, NodeFailed, NodeOutcome, NodePorts, StepContext, run_llm_node
from actors.flow.plan import Plan
from actors.flow.policy import gave_up, retry_policy
from actors.sandbox import SandboxPool
from bus import step_id
from configs import FlowSpec
from configs.errors import ActorError

# Parts of a barrier record that accumulate (one entry per branch or map item).
PARTS = ("arrived", "counters", "by", "done", "failed", "skipped")


@dataclass(frozen=True)
class SandboxPorts:
    """Where a run's code nodes execute, and what the operator allows them."""

    pool: SandboxPool | None = None
    allow_unsandboxed: bool = False
    image: str | None = None


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
    steps: list[dict[str, Any]] = field(default_factory=list)
    sandbox: SandboxPorts = field(default_factory=SandboxPorts)
    # Map windows: (map key, index) -> whether that item finished well (item i + k waits for item i).
    _gates: dict[tuple[str, int], asyncio.Future[bool]] = field(default_factory=dict)

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
        key, index = moves.map_barrier(self.run_id, token["node"], token["iteration"]), token["index"]
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
        return {"maps": {key: {**record, "done": {str(index): outcome.outputs}}}}

    async def _plain_step(self, token: Token) -> dict[str, Any]:
        started = time.time()
        try:
            outcome = await self._execute(token)
        except NodeFailed as exc:
            self._record(token, "failed", started)
            return {"out": {"token": token, "failed": str(exc)}}
        self._record(token, "succeeded", started)
        return {"out": {"token": token, "outputs": outcome.outputs}}

    def after_node(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of a plain flow node: the moves after its step (`moves.after_step`)."""
        out = channels["out"]
        token: Token = out["token"]
        if out.get("failed") is not None:
            return [Send(FAIL, {"token": token, "error": out["failed"]})]
        try:
            after = moves.after_step(self.spec, self.run_id, step_of(token), out["outputs"])
        except FlowError as exc:
            return [Send(FAIL, {"token": token, "error": str(exc)})]
        return self._take(after, token)

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
        out: list[Send] = []
        for record in channels["out"]["records"]:
            failed: dict[str, str] = record.get("failed", {})
            if failed:
                first = min(failed, key=int)
                out.append(Send(FAIL, {"token": self._map_token(record, int(first)), "error": failed[first]}))
                continue
            try:
                after = moves.after_map(self.spec, self.run_id, record["node"], _map_barrier(record))
            except FlowError as exc:
                # On the bus the item that finished last takes the blame; here, the last item.
                last = self._map_token(record, record["total"] - 1)
                out.append(Send(FAIL, {"token": last, "error": str(exc)}))
                continue
            out += self._take(after, None)
        return out

    # --- fan-outs ---------------------------------------------------------------------------------

    @staticmethod
    async def arrive(arg: Any) -> dict[str, Any]:
        """A fan-out opens its record, or a branch reached its join: its writes and counters go into it."""
        return {"fans": {arg["barrier"]: arg["record"]}}

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
        out: list[Send] = []
        for record in channels["out"]["records"]:
            barrier = JoinBarrier(
                expected=record["expected"], base=record["base"], arrived=record["arrived"], counters=record["counters"]
            )
            try:
                after = moves.after_join(self.spec, self.run_id, record["source"], barrier)
            except FlowError as exc:
                # On the bus the branch that arrived last takes the blame; here, the last branch.
                by = record["by"][str(record["expected"] - 1)]
                if by is None:
                    raise
                out.append(Send(FAIL, {"token": by, "error": str(exc)}))
                continue
            out += self._take(after, None)
        return out

    # --- failures, start and end ------------------------------------------------------------------

    async def fail(self, arg: Any) -> dict[str, Any]:
        """A step failed for good: mark it, then its node's ``on_error`` target or the end of the run.

        Raises:
            RunFailed: the node has no ``on_error`` target.
        """
        token: Token = arg["token"]
        sid = _step_id(self.run_id, token)
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
        return self._take(moves.after_failure(self.spec, self.run_id, step_of(token), target, out["error"]), None)

    def first(self, channels: Mapping[str, Any]) -> list[Send]:
        """Conditional edge of START (the scheduler keeps the initial state as the run's state)."""
        return sends(moves.start(self.spec, self.run_id, channels["out"]["state"]), None)

    @staticmethod
    async def finish(arg: Any) -> dict[str, Any]:
        """The run reached END with this state."""
        return {"final": arg["state"]}

    # --- helpers ----------------------------------------------------------------------------------

    def _take(self, after: list[Move], by: Token | None) -> list[Send]:
        for move in after:
            if isinstance(move, MainLine):
                self.main_state = move.state
        return sends(after, by)

    def _map_token(self, record: Mapping[str, Any], index: int) -> Token:
        """The token item `index` of a map ran with (rebuilt from the map's record)."""
        step = moves.map_step(self.spec, record["node"], record["iteration"], index, _map_barrier(record))
        return token_of(step, total=record["total"])

    def _record(self, token: Token, status: Literal["succeeded", "failed"], started: float) -> None:
        self.steps.append(
            {
                "step_id": _step_id(self.run_id, token),
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
        policy = retry_policy(spec, node)
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
                NodePorts(
                    llm=self.llm,
                    model_override=self.model_override,
                    sandbox=self.sandbox.pool,
                    allow_unsandboxed=self.sandbox.allow_unsandboxed,
                    sandbox_image=self.sandbox.image,
                ),
                step=StepContext(self.run_id, _step_id(self.run_id, token), token["index"], runtime),
                max_retries=policy.output_retries,
                timeout_s=node.timeout_s,
            )
            try:
                return await asyncio.wait_for(call, timeout=node.timeout_s) if node.timeout_s else await call
            except LLMUnavailable as exc:
                kind, problem = "llm_error", str(exc)
            except TimeoutError:
                kind, problem = "timeout", f"node '{node.id}' took longer than timeout_s={node.timeout_s:g}"
            if not policy.retries(kind, delivery):
                raise NodeFailed(gave_up(problem, delivery))
            # The bus redelivers after this delay; in-process the step simply waits.
            await asyncio.sleep(policy.delay_s(delivery))
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


def _map_barrier(record: Mapping[str, Any]) -> MapBarrier:
    """The bus's record of a map, from the LangGraph one (which also has its failed and skipped items)."""
    visits, taken = record["visits"], record["taken"]
    return MapBarrier(
        total=record["total"], base=record["base"], visits=visits, taken=taken, done=record.get("done", {})
    )


def _complete(record: Mapping[str, Any]) -> bool:
    finished = sum(len(record.get(part, {})) for part in ("done", "failed", "skipped"))
    return bool(finished >= record["total"])


def _step_id(run_id: str, token: Token) -> str:
    return step_id(run_id, token["node"], token["iteration"], token["index"])
