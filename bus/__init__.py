"""Everything NATS: connection, subjects, envelopes, message bodies, JetStream topology and the embedded server."""

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
from bus.replay import Replay
from bus.server import EmbeddedNats, die_with_parent, find_nats_server, free_port
from bus.wire import Empty, WireModel
from configs.errors import BadReplyError, BusError, NoResponderError, RequestTimeoutError

__all__ = [
    "TERMINAL_EVENTS",
    "BadReplyError",
    "Branch",
    "Bus",
    "BusError",
    "BusStatus",
    "DeadLetter",
    "EmbeddedNats",
    "Empty",
    "Event",
    "EventKind",
    "MsgHandler",
    "NoResponderError",
    "Replay",
    "RequestTimeoutError",
    "RunEnded",
    "WireModel",
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
