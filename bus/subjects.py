"""Every NATS subject of ca-actors, built in one place.

Templates are written once here; wildcards are derived from them. Tokens are validated so that a flow
name or a node id can never inject a wildcard or an extra level into a subject.
"""

from __future__ import annotations

import re

PREFIX = "ca"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
# Event kinds may span two tokens ("run.started"), each one a plain token.
_KIND = re.compile(r"^[a-z_]+(\.[a-z_]+)?$")

LLM_COMPLETE = f"{PREFIX}.llm.complete"
SYS_READY = f"{PREFIX}.sys.ready"
SYS_ASSIGNED = f"{PREFIX}.sys.assigned"
TRIGGER_ALL = f"{PREFIX}.trigger.>"
WORK_ALL = f"{PREFIX}.work.>"
CTL_ALL = f"{PREFIX}.ctl.>"
EVENTS_ALL = f"{PREFIX}.evt.>"
# The run.* events (started, finished, failed, ...) of every run.
RUN_EVENTS_ALL = f"{PREFIX}.evt.*.run.*"
DLQ_ALL = f"{PREFIX}.dlq.>"
RUN_CMD_ALL = f"{PREFIX}.run.*.cmd"
MEMORY_READ = f"{PREFIX}.memory.read"
MEMORY_WRITE = f"{PREFIX}.memory.write"
MEMORY_LIST = f"{PREFIX}.memory.list"
MEMORY_CLEAR = f"{PREFIX}.memory.clear"
MEMORY_RUNS = f"{PREFIX}.memory.runs"
REGISTRY_HEARTBEATS = f"{PREFIX}.registry.hb.*"
REGISTRY_BYES = f"{PREFIX}.registry.bye.*"
REGISTRY_PING = f"{PREFIX}.registry.ping"
REGISTRY_EXPECT = f"{PREFIX}.registry.expect"
REGISTRY_EVENTS_ALL = f"{PREFIX}.registry.evt.>"
REGISTRY_DRAIN_ALL = f"{PREFIX}.registry.drain.*"
TOOLS_ALL = f"{PREFIX}.tool.*.*"
MEMORY_ALL = (MEMORY_READ, MEMORY_WRITE, MEMORY_LIST, MEMORY_CLEAR, MEMORY_RUNS)


def token(value: str, what: str = "token") -> str:
    """Return `value` if it is a valid single subject token.

    Raises:
        ValueError: the value is empty or contains dots, wildcards, spaces or other characters.
    """
    if not _TOKEN.match(value):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '_' and '-' only")
    return value


def trigger(flow: str) -> str:
    """Subject a client publishes a flow's inputs to."""
    return f"{PREFIX}.trigger.{token(flow, 'flow name')}"


def flow_of_trigger(subject: str) -> str:
    """The flow name of a trigger subject (inverse of `trigger`)."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[:2] != [PREFIX, "trigger"]:
        raise ValueError(f"not a trigger subject: {subject!r}")
    return token(parts[2], "flow name")


def work(flow: str, node: str) -> str:
    """Work queue subject of one node of one flow."""
    return f"{PREFIX}.work.{token(flow, 'flow name')}.{token(node, 'node id')}"


def ctl(flow: str) -> str:
    """Control subject workers use to tell the scheduler a run reached END or failed."""
    return f"{PREFIX}.ctl.{token(flow, 'flow name')}"


def event(run_id: str, kind: str) -> str:
    """Subject of one event of a run, e.g. ``ca.evt.<run>.node.finished``."""
    if not _KIND.match(kind):
        raise ValueError(f"invalid event kind {kind!r}")
    return f"{PREFIX}.evt.{token(run_id, 'run id')}.{kind}"


def events_of(run_id: str) -> str:
    """Wildcard matching every event of one run."""
    return f"{PREFIX}.evt.{token(run_id, 'run id')}.>"


def events_of_kind(kind: str) -> str:
    """Wildcard matching one kind of event (``log``, or ``llm.*``) of every run."""
    if not _KIND.match(kind) and not (kind.endswith(".*") and _KIND.match(kind[:-2])):
        raise ValueError(f"invalid event kind {kind!r}")
    return f"{PREFIX}.evt.*.{kind}"


def run_cmd(run_id: str) -> str:
    """Request subject for commands to one run (cancel)."""
    return f"{PREFIX}.run.{token(run_id, 'run id')}.cmd"


def run_of_cmd(subject: str) -> str:
    """The run id of a run command subject (inverse of `run_cmd`)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[:2] != [PREFIX, "run"] or parts[3] != "cmd":
        raise ValueError(f"not a run command subject: {subject!r}")
    return token(parts[2], "run id")


def dead_letters(run_id: str) -> str:
    """Subject of a run's dead-lettered work items."""
    return f"{PREFIX}.dlq.{token(run_id, 'run id')}"


def dead_messages(consumer: str) -> str:
    """Subject of the messages a consumer gave up on (`bus.Undeliverable`); three tokens, as a run's."""
    return f"{PREFIX}.dlq.{token(consumer, 'consumer name')}"


def actor_token(value: str) -> str:
    """`value` made into a valid token (an actor id from a host name may contain dots)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", value).strip("-")
    return cleaned or "actor"


def registry_heartbeat(actor_id: str) -> str:
    """Subject an actor heartbeats on."""
    return f"{PREFIX}.registry.hb.{token(actor_id, 'actor id')}"


def registry_bye(actor_id: str) -> str:
    """Subject an actor says goodbye on when it stops cleanly."""
    return f"{PREFIX}.registry.bye.{token(actor_id, 'actor id')}"


def registry_drain(actor_id: str) -> str:
    """Subject that tells one actor to finish its work in flight, take no more and exit."""
    return f"{PREFIX}.registry.drain.{token(actor_id, 'actor id')}"


def registry_event(kind: str) -> str:
    """Subject of a registry change, e.g. ``ca.registry.evt.actor.stale``."""
    if not _KIND.match(kind):
        raise ValueError(f"invalid registry event kind {kind!r}")
    return f"{PREFIX}.registry.evt.{kind}"


def actor_of(subject: str) -> str:
    """The actor id at the end of a registry subject."""
    return token(subject.rsplit(".", 1)[-1], "actor id")


def tool_call(actor: str, tool: str) -> str:
    """Request subject of a tool that must run on one actor (``tools: [{name, actor}]``)."""
    return f"{PREFIX}.tool.{token(actor, 'actor name')}.{token(tool, 'tool name')}"


def tools_of(actor: str) -> str:
    """Wildcard of every tool one actor serves."""
    return f"{PREFIX}.tool.{token(actor, 'actor name')}.*"
