"""Run records and plans in JetStream key-value buckets, updated with compare-and-swap.

A run record (bucket ``ca_runs``) is the checkpoint of a run: status, current state and every step
done with its outputs. Appending a step is the compare-and-swap that decides, once, which outputs
of a step count: a redelivered step finds itself recorded and reuses those outputs instead of
running (and applying) again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

from actors.runtime.cas import compare_and_swap

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
    outputs: dict[str, Any] = Field(default_factory=dict)
    worker: str = ""
    # Which delivery of the work item ran it: a worker that wakes up holding an earlier delivery of
    # a step a later one recorded publishes nothing for it.
    delivery: int = 1


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    flow: str
    plan_version: str = ""
    status: RunStatus
    inputs: Any = None
    state: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    error: str | None = None
    created_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    timeout_s: float | None = None
    # Where the trigger came from (its ``Ca-Source`` header) and its conversation (``Ca-Session``).
    source: str | None = None
    session: str | None = None

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

    def step(self, step_id: str) -> StepRecord | None:
        """The recorded step with this id, if any."""
        return next((s for s in self.steps if s.step_id == step_id), None)


class RunStore:
    """Run records in the ``ca_runs`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, run_id: str) -> RunRecord | None:
        found = await self.get_revision(run_id)
        return found[0] if found else None

    async def get_revision(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The record and its revision (for a later compare-and-swap), or None."""
        try:
            entry = await self._kv.get(run_id)
        except KeyNotFoundError:
            return None
        return RunRecord.model_validate_json(entry.value or b"{}"), entry.revision or 0

    async def create(self, record: RunRecord) -> bool:
        """Insert a new record; False when the run already exists (a redelivered trigger)."""
        try:
            await self._kv.create(record.run_id, record.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def update(
        self,
        run_id: str,
        change: Callable[[RunRecord], RunRecord | None],
        *,
        known: tuple[RunRecord, int] | None = None,
        attempts: int = 100,
    ) -> RunRecord | None:
        """Apply `change` with compare-and-swap, retrying on conflicts.

        `change` gets the current record and returns the new one, or None to leave it as it is.
        `known` (a record and its revision just read) saves the first read.

        Returns:
            The record written, or None when `change` declined or the run does not exist.

        Raises:
            ActorError: the record kept changing under us for `attempts` tries.
        """
        new, wrote = await compare_and_swap(
            self._kv, run_id, RunRecord, change, known=known, attempts=attempts, what="run record"
        )
        return new if wrote else None

    async def list(self) -> list[RunRecord]:
        """Every run record, newest first."""
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        records = [r for r in [await self.get(k) for k in keys] if r is not None]
        return sorted(records, key=lambda r: r.created_at, reverse=True)
