"""The memory actor: long-term memory of flows, served over ``ca.memory.*`` from the store."""

from actors.memory.actor import MemoryActor

__all__ = ["MemoryActor"]
