"""Messages on the bus: frozen, versioned pydantic models decoded with one TypeAdapter.

Every message carries `v`, `id`, `kind`, `run_id` (the correlation id), `causation_id`, `sender` and
`ts`. Work items and control messages drive runs; events describe them (their `kind` is the event kind,
so any NATS client reading ``ca.evt.>`` sees ``{"kind": "run.started", ...}``), and an event's `data`
is the model of its kind (`bus.events`).
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from bus.events import DATA_OF_KIND, AnyEventData, EventData, EventKind


def new_id() -> str:
    """A fresh random message id."""
    return uuid.uuid4().hex


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    id: str = Field(default_factory=new_id)
    run_id: str
    causation_id: str | None = None
    sender: str = ""
    ts: float = Field(default_factory=time.time)


def step_id(run_id: str, node: str, iteration: int = 0, index: int = 0) -> str:
    """Deterministic id of one step: ``run.node.iteration.index`` (a KV key and a Nats-Msg-Id)."""
    return f"{run_id}.{node}.{iteration}.{index}"


class Branch(BaseModel):
    """Where a step sits inside a fan-out: its barrier, its branch, and what the branch wrote so far."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    barrier: str
    index: int
    writes: list[tuple[str, Any]] = Field(default_factory=list)


class WorkItem(_Msg):
    """Run one node of one run with the given state."""

    kind: Literal["work"] = "work"
    flow: str
    plan_version: str
    node: str
    iteration: int = 0
    index: int = 0
    state: dict[str, Any]
    # Path counters (docs/control-flow.md): completions per node, uses per bounded route.
    visits: dict[str, int] = Field(default_factory=dict)
    taken: dict[str, int] = Field(default_factory=dict)
    # For a map item: the item itself (its position is `index`).
    item: Any = None
    branch: Branch | None = None
    # For an `on_error` target: the error of the node that failed.
    error: str | None = None

    @property
    def step_id(self) -> str:
        return step_id(self.run_id, self.node, self.iteration, self.index)


class DeadLetter(_Msg):
    """A work item that failed for good, kept on ``ca.dlq.<run>`` for inspection."""

    kind: Literal["dead"] = "dead"
    flow: str
    node: str
    step_id: str
    error: str
    work: WorkItem


class Undeliverable(_Msg):
    """A message a consumer gave up on (no handler got through it), kept on ``ca.dlq.<consumer>``.

    `run_id` is the run it belongs to when that is known, else empty; `body` holds the message's bytes
    as text (invalid UTF-8 replaced), clipped to `BODY_CHARS`, and `body_bytes` its real size.
    """

    BODY_CHARS: ClassVar[int] = 16_000

    kind: Literal["undeliverable"] = "undeliverable"
    run_id: str = ""
    consumer: str
    subject: str
    stream_seq: int = 0
    deliveries: int
    error: str
    body: str
    body_bytes: int

    @classmethod
    def of(cls, *, consumer: str, subject: str, data: bytes, error: str, **fields: Any) -> Undeliverable:
        """The dead letter of `data` received on `subject`."""
        text = data[: cls.BODY_CHARS * 4].decode("utf-8", errors="replace")[: cls.BODY_CHARS]
        return cls(consumer=consumer, subject=subject, body=text, body_bytes=len(data), error=error, **fields)


class RunEnded(_Msg):
    """A worker tells the scheduler that a run reached END (`finish`) or a node failed for good."""

    kind: Literal["finish", "fail"]
    flow: str
    node: str
    state: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class Event(_Msg):
    """Something that happened in a run, published on ``ca.evt.<run>.<kind>``; `data` is the model of its kind."""

    kind: EventKind
    flow: str
    node: str | None = None
    step_id: str | None = None
    # Serialised as the model it is (not tried against each model of the union: that costs 5x).
    data: SerializeAsAny[AnyEventData]

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_of_its_kind(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> EventData:
        # The envelope's kind says which model the data is (the JSON of the data does not say it itself).
        kind = info.data.get("kind")
        if kind is None:
            raise ValueError("the event has no valid kind, so its data cannot be read")
        model = DATA_OF_KIND[kind]
        if isinstance(value, EventData):
            if isinstance(value, model):
                return value
            raise ValueError(f"the data of a {kind} event is {model.__name__}, not {type(value).__name__}")
        data: EventData = model.model_validate(value)
        return data

    @classmethod
    def of(
        cls,
        data: AnyEventData,
        *,
        run_id: str,
        flow: str,
        node: str | None = None,
        step_id: str | None = None,
        causation_id: str | None = None,
        sender: str = "",
    ) -> Event:
        """The event that carries `data` (its kind is the data's)."""
        return cls(
            kind=data.KIND,
            run_id=run_id,
            flow=flow,
            node=node,
            step_id=step_id,
            data=data,
            causation_id=causation_id,
            sender=sender,
        )


Message = Annotated[WorkItem | RunEnded | Event | DeadLetter, Field(discriminator="kind")]
_MESSAGE: TypeAdapter[WorkItem | RunEnded | Event | DeadLetter] = TypeAdapter(Message)


def encode(msg: BaseModel) -> bytes:
    """Serialise a message to JSON bytes."""
    return msg.model_dump_json().encode()


def decode(data: bytes) -> WorkItem | RunEnded | Event | DeadLetter:
    """Parse JSON bytes into the message model its `kind` names.

    Raises:
        pydantic.ValidationError: the bytes are not a valid message.
    """
    return _MESSAGE.validate_json(data)
