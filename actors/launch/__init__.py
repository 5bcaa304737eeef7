"""Starting actors: one per process (`serve_actor`, for ``up`` and ``agent``), or a stack in-process (`LocalStack`).

The ``up`` supervisor (`actors.launch.supervisor`) runs each actor in its own process.
"""

from actors.launch.kinds import ACTOR_KINDS, ACTORS, ActorContext, ActorKind, actor_id, backend_for, trace_sink
from actors.launch.stack import LocalStack, serve_actor

__all__ = [
    "ACTORS",
    "ACTOR_KINDS",
    "ActorContext",
    "ActorKind",
    "LocalStack",
    "actor_id",
    "backend_for",
    "serve_actor",
    "trace_sink",
]
