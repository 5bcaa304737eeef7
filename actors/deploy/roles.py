"""The processes of a deployed stack: which image family runs each actor kind, and what it may use.

An actor kind without an entry here (a new one in `actors.launch.kinds.ACTORS`) is deployed from the
control image with the defaults of `Role`, so adding an actor never breaks ``ca-actors deploy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.launch import ACTOR_KINDS

ImageFamily = Literal["agent", "control"]

AGENT_IMAGE = "ca-actors-agent"
CONTROL_IMAGE = "ca-actors-control"
NATS_IMAGE = "nats:2.12.8-alpine"
POSTGRES_IMAGE = "postgres:17-alpine"
# Each actor's id in its UID: the images' non-root user (Dockerfile.agent and Dockerfile.control).
USER_ID = 10001
# Seconds an actor gets after SIGTERM to finish the work in flight (a step's LLM call may be slow).
AGENT_GRACE_S = 120
CONTROL_GRACE_S = 60


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class Role:
    """One kind of actor process as deployed."""

    kind: str
    image: ImageFamily = "control"
    replicas: int = 1
    resources: Resources = Resources("100m", "128Mi", "1", "512Mi")
    # Reads the flow files (the scheduler publishes them as plans; everyone else reads plans from NATS).
    needs_flows: bool = False
    # Opens the store (run history, memory): SQLite in compose, PostgreSQL in Kubernetes.
    needs_store: bool = False
    # Holds provider keys (only the LLM gateway: DESIGN §7).
    holds_llm_keys: bool = False
    writes_traces: bool = False


ROLES: dict[str, Role] = {
    "scheduler": Role("scheduler", replicas=2, needs_flows=True),
    "registry": Role("registry"),
    "memory": Role("memory", needs_store=True),
    "observer": Role(
        "observer", needs_store=True, writes_traces=True, resources=Resources("100m", "256Mi", "1", "1Gi")
    ),
    "llm-gateway": Role(
        "llm-gateway", replicas=2, holds_llm_keys=True, resources=Resources("200m", "256Mi", "1", "1Gi")
    ),
    "worker": Role("worker", image="agent", resources=Resources("100m", "96Mi", "1", "384Mi")),
}


def control_roles() -> list[Role]:
    """The control plane: every actor kind but the node worker, in the table's order."""
    return [ROLES.get(kind, Role(kind)) for kind in ACTOR_KINDS if kind != "worker"]


WORKER = ROLES["worker"]
