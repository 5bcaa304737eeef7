"""The registry actor: records heartbeats into ``ca_registry`` and announces who joined, went stale, died or left."""

from actors.registry.actor import Registry

__all__ = ["Registry"]
