"""Starting actors: one per process (`serve_actor`, for ``up`` and ``agent``), or a stack in-process (`LocalStack`).

The ``up`` supervisor (`actors.launch.supervisor`) runs each actor in its own process.
"""

from actors.launch.stack import ACTOR_KINDS, ActorKind, LocalStack, backend_for, serve_actor, trace_sink

__all__ = ["ACTOR_KINDS", "ActorKind", "LocalStack", "backend_for", "serve_actor", "trace_sink"]
