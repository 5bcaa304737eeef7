"""Who may publish and subscribe to what: one NATS user per actor role, least privilege, derived from
`bus.subjects` and `bus.topology` (never a subject typed twice).

The embedded server gets these as its ``authorization { users = [...] }`` (see `bus.auth`); an operator
of an external server can print them with `server_config` and load them into their own. What each
role gets, and why, is written out in ``docs/security.md``.

JetStream is reached through subjects too: a role gets only the API subjects of the streams and
buckets it uses (``$JS.API.STREAM.INFO.<stream>``, its consumers, direct gets of a bucket), acks
of those streams (``$JS.ACK.<stream>.>``) and publishes to the buckets it writes (``$KV.<bucket>.>``).
Replies come to a per-role inbox prefix (``_INBOX_<role>``), so one role never reads another's answers;
answering a request needs no publish grant (``allow_responses``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bus import subjects, topology

JS_API = "$JS.API"


class Role(StrEnum):
    """A NATS user of the system; the actor kinds have their own, and so have the faces of the system."""

    SCHEDULER = "scheduler"
    WORKER = "worker"
    LLM_GATEWAY = "llm-gateway"
    REGISTRY = "registry"
    MEMORY = "memory"
    OBSERVER = "observer"
    DASHBOARD = "dashboard"
    GATEWAY_INGRESS = "gateway-ingress"
    CLI = "cli"
    # The owner of the stack (`ca-actors up`'s supervisor, and an operator's own tools): everything.
    ADMIN = "admin"


def inbox_prefix(role: Role) -> str:
    """Where the replies to one role's requests arrive (nats-py's ``inbox_prefix``)."""
    return f"_INBOX_{role.value.replace('-', '_')}"


@dataclass(frozen=True)
class Grants:
    """What one role may do, as NATS subjects, and which buckets its connection binds."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Buckets the role reads (every bucket it writes is among them).
    buckets: frozenset[str] = field(default_factory=frozenset)
    # May create and update streams and buckets (the others only look theirs up).
    manages_topology: bool = False

    def permissions(self) -> dict[str, Any]:
        """The ``permissions`` block of this role's user in a nats-server configuration."""
        return {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
            "allow_responses": True,
        }


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def read_stream(stream: str) -> list[str]:
    """JetStream API subjects to read one stream: its info, its consumers (create, info, next, delete),
    direct and message gets, acks and flow-control replies."""
    return [
        f"{JS_API}.STREAM.INFO.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.>",
        f"{JS_API}.CONSUMER.DELETE.{stream}.>",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.>",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def read_bucket(bucket: str) -> list[str]:
    """Subjects to read (get, list keys, watch) one key-value bucket."""
    return read_stream(_kv_stream(bucket))


def write_bucket(bucket: str) -> list[str]:
    """Subjects to write (put, create, update, delete) one key-value bucket; reading it too."""
    return [f"$KV.{bucket}.>", *read_bucket(bucket)]


def manage_topology() -> list[str]:
    """Creating and updating every stream and bucket of `bus.topology`."""
    names = [c.name for c in topology.stream_configs(1.0) if c.name] + [_kv_stream(b) for b in topology.BUCKETS]
    out = [f"{JS_API}.INFO"]
    for name in names:
        out += [f"{JS_API}.STREAM.CREATE.{name}", f"{JS_API}.STREAM.UPDATE.{name}", f"{JS_API}.STREAM.INFO.{name}"]
    return out


# What every actor process does, whatever its kind: announce itself to `up`, heartbeat and say goodbye
# to the registry, answer pings and drains, and turn its log lines about runs into run events.
_ACTOR_PUBLISH = [
    subjects.SYS_READY,
    subjects.REGISTRY_HEARTBEATS,
    subjects.REGISTRY_BYES,
    subjects.events_of_kind("log"),
]
_ACTOR_SUBSCRIBE = [subjects.REGISTRY_PING, subjects.REGISTRY_DRAIN_ALL]
# The faces of the system (cli, dashboard, gateways) are also used by any NATS client (the `nats` tool,
# a nats-py script), whose replies come to the default inbox prefix; no actor uses that prefix.
_CLIENT_INBOX = "_INBOX.>"
# Actors that keep a live view of the registry (`actors.runtime.RegistryView`).
_ROSTER = [topology.REGISTRY, topology.EXPECTED]


def _grants(
    role: Role,
    *,
    publish: Iterable[str] = (),
    subscribe: Iterable[str] = (),
    reads: Iterable[str] = (),
    writes: Iterable[str] = (),
    streams: Iterable[str] = (),
    actor: bool = True,
    manages_topology: bool = False,
) -> Grants:
    pub: list[str] = list(_ACTOR_PUBLISH) if actor else []
    pub += publish
    sub: list[str] = [f"{inbox_prefix(role)}.>"] + (list(_ACTOR_SUBSCRIBE) if actor else [_CLIENT_INBOX])
    sub += subscribe
    reads, writes = list(reads), list(writes)
    for bucket in writes:
        pub += write_bucket(bucket)
    for bucket in reads:
        if bucket not in writes:
            pub += read_bucket(bucket)
    for stream in streams:
        pub += read_stream(stream)
    if reads or writes or streams:
        # nats-py finds the stream of a subject it subscribes to by asking for stream names (names only).
        pub.append(f"{JS_API}.STREAM.NAMES")
    if manages_topology:
        pub += manage_topology()
    return Grants(
        publish=tuple(dict.fromkeys(pub)),
        subscribe=tuple(dict.fromkeys(sub)),
        buckets=frozenset(reads) | frozenset(writes),
        manages_topology=manages_topology,
    )


def _build() -> dict[Role, Grants]:
    events_all = subjects.EVENTS_ALL
    return {
        Role.SCHEDULER: _grants(
            Role.SCHEDULER,
            # Work items of a run's first nodes, run ends, run events; tells other schedulers what it took.
            # Dead letters: triggers and control messages no delivery got through.
            publish=[subjects.WORK_ALL, subjects.CTL_ALL, events_all, subjects.SYS_ASSIGNED, subjects.DLQ_ALL],
            subscribe=[subjects.TRIGGER_ALL, subjects.RUN_CMD_ALL, subjects.SYS_ASSIGNED],
            # The only writer of plans; binds trigger idempotency keys to runs.
            writes=[topology.PLANS, topology.RUNS, topology.JOINS, topology.TRIGGER_KEYS],
            reads=_ROSTER,
            streams=[topology.TRIGGERS, topology.CTL],
            manages_topology=True,
        ),
        Role.WORKER: _grants(
            Role.WORKER,
            publish=[
                subjects.WORK_ALL,
                subjects.CTL_ALL,
                subjects.DLQ_ALL,
                events_all,
                subjects.LLM_COMPLETE,
                subjects.MEMORY_READ,
                subjects.MEMORY_WRITE,
                subjects.TOOLS_ALL,
            ],
            # A worker started with --serve-tools answers the tools pinned to it.
            subscribe=[subjects.TOOLS_ALL],
            # The journal: tool calls of steps, reused when a step runs again.
            writes=[topology.RUNS, topology.JOINS, topology.JOURNAL],
            reads=[topology.PLANS, *_ROSTER],
            streams=[topology.WORK],
        ),
        Role.LLM_GATEWAY: _grants(
            Role.LLM_GATEWAY,
            publish=[subjects.events_of_kind("llm.*")],
            subscribe=[subjects.LLM_COMPLETE],
            # The journal: provider replies of steps, so a step run again pays for none twice.
            writes=[topology.BUDGETS, topology.JOURNAL],
            # Provider settings (api_base, api_key_env) come from the published plans only.
            reads=[topology.PLANS],
        ),
        Role.REGISTRY: _grants(
            Role.REGISTRY,
            # A new registry rebuilds its view by pinging every actor.
            publish=[subjects.REGISTRY_EVENTS_ALL, subjects.REGISTRY_PING],
            subscribe=[subjects.REGISTRY_HEARTBEATS, subjects.REGISTRY_BYES, subjects.REGISTRY_EXPECT],
            writes=_ROSTER,
        ),
        Role.MEMORY: _grants(Role.MEMORY, subscribe=subjects.MEMORY_ALL),
        # Dead letters: run ends no delivery got through; plans: a flow's own observability block.
        Role.OBSERVER: _grants(
            Role.OBSERVER, publish=[subjects.DLQ_ALL], reads=[topology.PLANS], streams=[topology.EVENTS]
        ),
        Role.DASHBOARD: _grants(
            Role.DASHBOARD,
            # Read-only, but for the control requests a person makes from it: trigger, cancel, re-run, drain.
            # It is an actor of the registry too (the `ui` kind of `up`).
            publish=[subjects.TRIGGER_ALL, subjects.RUN_CMD_ALL, subjects.REGISTRY_PING, subjects.REGISTRY_DRAIN_ALL],
            subscribe=[events_all, subjects.REGISTRY_EVENTS_ALL],
            reads=[topology.PLANS, topology.RUNS, topology.JOINS, topology.BUDGETS, *_ROSTER],
            streams=[topology.EVENTS, topology.DLQ],
        ),
        Role.GATEWAY_INGRESS: _grants(
            Role.GATEWAY_INGRESS,
            # Starts runs (the answer comes to its own inbox) and hears how they end, to reply on its channel.
            publish=[subjects.TRIGGER_ALL],
            subscribe=[subjects.RUN_EVENTS_ALL],
            actor=False,
        ),
        Role.CLI: _grants(
            Role.CLI,
            publish=[
                subjects.TRIGGER_ALL,
                subjects.RUN_CMD_ALL,
                subjects.REGISTRY_EXPECT,
                subjects.REGISTRY_DRAIN_ALL,
                subjects.REGISTRY_PING,
            ],
            # Watching runs: their events as they happen, and from the first one in the stream.
            subscribe=[events_all],
            # Queries: everything there is to read, nothing to write.
            reads=list(topology.BUCKETS),
            streams=[topology.EVENTS, topology.DLQ],
            actor=False,
        ),
        Role.ADMIN: Grants(
            publish=(">",),
            subscribe=(">",),
            buckets=frozenset(topology.BUCKETS),
            manages_topology=True,
        ),
    }


ROLES: dict[Role, Grants] = _build()


def role_of_kind(kind: str) -> Role:
    """The role an actor kind (``scheduler``, ``worker``, ``llm-gateway``, ``ui``...) connects as.

    Raises:
        ValueError: no such role.
    """
    return Role.DASHBOARD if kind == "ui" else Role(kind)
