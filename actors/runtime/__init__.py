"""What every actor process uses.

Consuming JetStream work, events, logs, presence and the roster, compare-and-swap, run records, following a run.
"""

from actors.runtime.actor import Actor, ActorHost, ActorStatus, first
from actors.runtime.cas import compare_and_swap
from actors.runtime.consume import Abandon, Drop, InFlight, Retry, consume
from actors.runtime.events import Emitter, warn_if_unserved
from actors.runtime.follow import events, final_record, stored_events
from actors.runtime.logs import LogFormat, configure_logging, publish_run_logs
from actors.runtime.presence import ActorInfo, Load, Presence
from actors.runtime.redact import Redactor
from actors.runtime.roster import RegistryView
from actors.runtime.runs import FINAL_STATUSES, RunRecord, RunStore, StepRecord

__all__ = [
    "FINAL_STATUSES",
    "Abandon",
    "Actor",
    "ActorHost",
    "ActorInfo",
    "ActorStatus",
    "Drop",
    "Emitter",
    "InFlight",
    "Load",
    "LogFormat",
    "Presence",
    "Redactor",
    "RegistryView",
    "Retry",
    "RunRecord",
    "RunStore",
    "StepRecord",
    "compare_and_swap",
    "configure_logging",
    "consume",
    "events",
    "final_record",
    "first",
    "publish_run_logs",
    "stored_events",
    "warn_if_unserved",
]
