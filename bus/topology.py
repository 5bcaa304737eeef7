"""The JetStream streams and key-value buckets ca-actors uses, set up idempotently.

| name          | holds                                   | retention                         |
|---------------|-----------------------------------------|-----------------------------------|
| CA_TRIGGERS   | ``ca.trigger.>``: inputs of new runs     | work queue (one scheduler group)  |
| CA_WORK       | ``ca.work.>``: one item per step         | work queue, Nats-Msg-Id dedup     |
| CA_CTL        | ``ca.ctl.>``: run reached END / failed   | work queue, Nats-Msg-Id dedup     |
| CA_EVENTS     | ``ca.evt.>``: what happened in runs      | limits (7 days)                   |
| ca_plans (KV) | compiled flows, one key per version      |                                   |
| ca_runs (KV)  | run records: status, state, steps done   | compare-and-swap: exactly once    |
| CA_DLQ        | ``ca.dlq.<run>``: work that failed       | limits (7 days)                   |
| ca_joins (KV) | fan-out and map barriers                 | compare-and-swap updates          |
| ca_registry   | live actors, written by the registry     | values expire after 60 s unrenewed|
| ca_expected   | actors an operator expects               |                                   |
| ca_budgets    | LLM spend per run and per flow per day   | compare-and-swap reservations     |
| ca_triggers   | idempotency key of a trigger → its run   | 24 h                              |
| ca_journal    | replies of provider and tool calls, by   | 24 h, at most 256 MiB: a step's   |
|               | step and call (pay once on redelivery)   | next delivery reuses them         |

The trigger stream does not acknowledge publishes (``no_ack``), so a NATS *request* to
``ca.trigger.<flow>`` is answered by the scheduler with the run id, not by JetStream with a PubAck.
"""

from __future__ import annotations

from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue

from bus import subjects

TRIGGERS = "CA_TRIGGERS"
WORK = "CA_WORK"
CTL = "CA_CTL"
EVENTS = "CA_EVENTS"
DLQ = "CA_DLQ"
PLANS = "ca_plans"
RUNS = "ca_runs"
JOINS = "ca_joins"
REGISTRY = "ca_registry"
BUDGETS = "ca_budgets"
EXPECTED = "ca_expected"
JOURNAL = "ca_journal"
TRIGGER_KEYS = "ca_triggers"
# A trigger's idempotency key (its ``Nats-Msg-Id``) starts at most one run for this long.
IDEMPOTENCY_S = 24 * 3600.0
JOURNAL_MAX_BYTES = 256 << 20
# A registry entry not renewed by a heartbeat for this long disappears, even with no registry running.
REGISTRY_TTL_S = 60.0

_WEEK_S = 7 * 24 * 3600.0


def stream_configs(dedup_window_s: float, replicas: int = 1) -> list[StreamConfig]:
    """The stream configurations, in the order they are created (`replicas`: copies on a cluster)."""
    configs = [
        StreamConfig(
            name=TRIGGERS,
            subjects=[subjects.TRIGGER_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            no_ack=True,
            max_age=_WEEK_S,
            duplicate_window=IDEMPOTENCY_S,
        ),
        StreamConfig(
            name=WORK,
            subjects=[subjects.WORK_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=dedup_window_s,
        ),
        StreamConfig(
            name=CTL,
            subjects=[subjects.CTL_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=dedup_window_s,
        ),
        StreamConfig(
            name=EVENTS,
            subjects=[subjects.EVENTS_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=_WEEK_S,
            max_bytes=1 << 30,
            discard=DiscardPolicy.OLD,
            duplicate_window=dedup_window_s,
        ),
        StreamConfig(
            name=DLQ,
            subjects=[subjects.DLQ_ALL],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=_WEEK_S,
            duplicate_window=dedup_window_s,
        ),
    ]
    for config in configs:
        config.num_replicas = replicas
    return configs


# Every bucket and how long its values live (None: for ever).
BUCKETS: dict[str, float | None] = {
    PLANS: None,
    RUNS: _WEEK_S,
    JOINS: _WEEK_S,
    REGISTRY: REGISTRY_TTL_S,
    EXPECTED: None,
    BUDGETS: 2 * 24 * 3600.0,
    JOURNAL: 24 * 3600.0,
    TRIGGER_KEYS: IDEMPOTENCY_S,
}


async def ensure_topology(
    js: JetStreamContext,
    *,
    dedup_window_s: float,
    manage: bool = True,
    buckets: Iterable[str] | None = None,
    replicas: int | None = None,
) -> dict[str, KeyValue]:
    """Create (or update) every stream and bucket; safe to call from every actor at start-up.

    Args:
        manage: Create and update streams and buckets; False: only look up `buckets` (a role that may
            not change the topology, see `bus.permissions`).
        buckets: The buckets to bind (default: all).
        replicas: copies of each stream and bucket (3 on a 3-node cluster: a node may die); None keeps
            what existing streams have (a client that does not know the deployment never scales one
            down) and creates new ones with 1.

    Returns:
        The key-value buckets by name.
    """
    if manage:
        for config in stream_configs(dedup_window_s, replicas or 1):
            try:
                await js.add_stream(config)
            except BadRequestError:
                # Exists with another configuration (e.g. an older dedup window): bring it up to date.
                if replicas is None:
                    config.num_replicas = (await js.stream_info(str(config.name))).config.num_replicas
                await js.update_stream(config)
    wanted = set(BUCKETS if buckets is None else buckets)
    found: dict[str, KeyValue] = {}
    # A manager makes sure of every bucket (a role that only looks its own up may come next).
    for name in BUCKETS if manage else sorted(wanted):
        try:
            kv = await js.key_value(name)
        except NotFoundError:
            if not manage:
                raise
            limit = JOURNAL_MAX_BYTES if name == JOURNAL else None
            cfg = KeyValueConfig(
                bucket=name,
                history=1,
                storage=StorageType.FILE,
                ttl=BUCKETS[name],
                max_bytes=limit,
                replicas=replicas or 1,
            )
            kv = await js.create_key_value(cfg)
        if name in wanted:
            found[name] = kv
    return found
