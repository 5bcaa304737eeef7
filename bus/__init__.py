"""Everything NATS: connection, subjects, envelopes, JetStream topology and the embedded server."""

from bus import subjects, topology
from bus.connection import Bus, BusStatus, MsgHandler
from bus.envelope import (
    TERMINAL_EVENTS,
    Branch,
    DeadLetter,
    Event,
    EventKind,
    RunEnded,
    WorkItem,
    decode,
    encode,
    new_id,
    step_id,
)
from bus.server import EmbeddedNats, die_with_parent, find_nats_server, free_port

__all__ = [
    "TERMINAL_EVENTS",
    "Branch",
    "Bus",
    "BusStatus",
    "DeadLetter",
    "EmbeddedNats",
    "Event",
    "EventKind",
    "MsgHandler",
    "RunEnded",
    "WorkItem",
    "decode",
    "die_with_parent",
    "encode",
    "find_nats_server",
    "free_port",
    "new_id",
    "step_id",
    "subjects",
    "topology",
]
