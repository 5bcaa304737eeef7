"""Publishing run events on ``ca.evt.<run>.<kind>`` (stored in the CA_EVENTS stream)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from actors.runtime.redact import Redactor
from bus import AnyEventData, Bus, Event, EventData, NodeWaitingData, WorkItem, subjects

if TYPE_CHECKING:
    from actors.runtime.roster import RegistryView

log = structlog.get_logger(__name__)

D = TypeVar("D", bound=EventData)

# Fields of event data masked in full (secret-looking keys too): what tools, models and logs produced.
_FULL = frozenset({"arguments", "result", "messages", "content", "error", "reason", "message", "fields", "tool_calls"})
# A run's own data: masked by value only, so the flow's field names and the shape of its state stay.
_BY_VALUE = frozenset({"inputs", "state", "outputs"})


def redact_event(data: D, redactor: Redactor) -> D:
    """`data` with secrets masked by the one redactor (see `actors.runtime.redact`); the same object when
    nothing needed masking."""
    changes: dict[str, Any] = {}
    for name in type(data).model_fields:
        value = getattr(data, name)
        if value is None or value == "" or not isinstance(value, str | dict | list):
            continue
        if name in _FULL:
            masked = redactor(value)
        elif name in _BY_VALUE:
            masked = redactor.values(value)
        else:
            continue
        if masked != value:
            changes[name] = masked
    return data.model_copy(update=changes) if changes else data


class Emitter:
    """Publishes events of runs on behalf of one actor."""

    def __init__(self, bus: Bus, sender: str) -> None:
        self._bus = bus
        self._sender = sender
        self._redact = Redactor()

    async def emit(
        self,
        data: AnyEventData,
        *,
        run_id: str,
        flow: str,
        node: str | None = None,
        step_id: str | None = None,
        causation_id: str | None = None,
        dedup: str | None = None,
    ) -> None:
        """Publish the event that `data` describes (its kind is the data's).

        `dedup` (a key unique to this occurrence) makes a re-publish a no-op.
        """
        kind = data.KIND
        event = Event.of(
            redact_event(data, self._redact),
            run_id=run_id,
            flow=flow,
            node=node,
            step_id=step_id,
            causation_id=causation_id,
            sender=self._sender,
        )
        # Events do not wait for the stream's ack: they leave in order on this connection, so the stream
        # stores a step's events before the work items published after them.
        await self._bus.publish_nowait(
            subjects.event(run_id, kind), event, msg_id=f"evt.{dedup}.{kind}" if dedup else None
        )
        log.debug("event", kind=kind, run_id=run_id, node=node)


async def warn_if_unserved(registry: RegistryView | None, events: Emitter, work: WorkItem) -> None:
    """Emit ``node.waiting`` when the registry knows no live worker for the work's node.

    The work item stays queued (durably) either way; this only says why the run is not moving.
    """
    if registry is not None and registry.unserved(work.flow, work.node):
        await events.emit(
            NodeWaitingData(reason=f"no live worker serves {work.flow}.{work.node}; the work stays queued"),
            run_id=work.run_id,
            flow=work.flow,
            node=work.node,
            step_id=work.step_id,
            dedup=work.step_id,
        )
