"""Run records, step results and plans in JetStream key-value buckets, updated with compare-and-swap.

A run record (bucket ``ca_runs``) is the checkpoint of a run: status, current state, the steps still
pending and the steps done. A step result (bucket ``ca_steps``) is written insert-if-absent under the
step's deterministic id, so a redelivered step reuses the first result instead of applying a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actors.plan import Plan
from configs.errors import ActorError

RunStatus = Literal["running", "succeeded", "failed", "cancelled", "rejected"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "rejected"})


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step_id: str
    node: str
    iteration: int = 0
    index: int = 0
    status: Literal["succeeded", "failed"]
    started_at: float
    finished_at: float
    duration_ms: float
    attempts: int = 1
    error: str | None = None


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    flow: str
    plan_version: str = ""
    status: RunStatus
    inputs: Any = None
    state: dict[str, Any] = Field(default_factory=dict)
    pending: list[str] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    error: str | None = None
    created_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    timeout_s: float | None = None

    def result(self) -> dict[str, Any]:
        """The public summary printed by ``ca-actors run --json`` and ``trigger --wait --json``."""
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "status": self.status,
            "state": self.state,
            "steps": [
                {
                    "node": s.node,
                    "iteration": s.iteration,
                    "index": s.index,
                    "status": s.status,
                    "duration_ms": round(s.duration_ms, 3),
                }
                for s in self.steps
            ],
            "error": self.error,
        }


class StepResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outputs: dict[str, Any]
    started_at: float
    finished_at: float
    attempts: int
    worker: str


class RunStore:
    """Run records in the ``ca_runs`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, run_id: str) -> RunRecord | None:
        try:
            entry = await self._kv.get(run_id)
        except KeyNotFoundError:
            return None
        return RunRecord.model_validate_json(entry.value or b"{}")

    async def create(self, record: RunRecord) -> bool:
        """Insert a new record; False when the run already exists (a redelivered trigger)."""
        try:
            await self._kv.create(record.run_id, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def update(
        self, run_id: str, change: Callable[[RunRecord], RunRecord | None], *, attempts: int = 50
    ) -> RunRecord | None:
        """Apply `change` with compare-and-swap, retrying on conflicts.

        `change` gets the current record and returns the new one, or None to leave it as it is.

        Returns:
            The record written, or None when `change` declined or the run does not exist.

        Raises:
            ActorError: the record kept changing under us for `attempts` tries.
        """
        for _ in range(attempts):
            try:
                entry = await self._kv.get(run_id)
            except KeyNotFoundError:
                return None
            new = change(RunRecord.model_validate_json(entry.value or b"{}"))
            if new is None:
                return None
            try:
                await self._kv.update(run_id, new.model_dump_json().encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            return new
        raise ActorError("run record kept changing during update", run_id=run_id)

    async def list(self) -> list[RunRecord]:
        """Every run record, newest first."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        records = [r for r in [await self.get(k) for k in keys] if r is not None]
        return sorted(records, key=lambda r: r.created_at, reverse=True)


class StepStore:
    """Step results in the ``ca_steps`` bucket, written once."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, step_id: str) -> StepResult | None:
        try:
            entry = await self._kv.get(step_id)
        except KeyNotFoundError:
            return None
        return StepResult.model_validate_json(entry.value or b"{}")

    async def record(self, step_id: str, result: StepResult) -> tuple[StepResult, bool]:
        """Store `result` unless the step already has one.

        Returns:
            The result that counts (ours, or the one recorded first) and whether ours was written.
        """
        try:
            await self._kv.create(step_id, result.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            existing = await self.get(step_id)
            if existing is None:
                raise ActorError("step result vanished", node=step_id) from None
            return existing, False
        return result, True


class PlanStore:
    """Compiled plans in the ``ca_plans`` bucket: ``<flow>.<version>`` and ``<flow>.latest``."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._cache: dict[str, Plan] = {}

    async def publish(self, plan: Plan) -> None:
        """Store a plan version and make it the flow's latest."""
        await self._kv.put(plan.kv_key(), plan.model_dump_json().encode())
        await self._kv.put(f"{plan.flow}.latest", plan.version.encode())
        self._cache[plan.kv_key()] = plan

    async def get(self, flow: str, version: str) -> Plan | None:
        key = f"{flow}.{version}"
        if key not in self._cache:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                return None
            self._cache[key] = Plan.model_validate_json(entry.value or b"{}")
        return self._cache[key]

    async def latest(self, flow: str) -> Plan | None:
        try:
            entry = await self._kv.get(f"{flow}.latest")
        except KeyNotFoundError:
            return None
        return await self.get(flow, (entry.value or b"").decode())

    async def flows(self) -> list[str]:
        """Names of every flow with a published plan."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        return sorted(k.removesuffix(".latest") for k in keys if k.endswith(".latest"))
