"""Storage outside NATS: run history, memory, chat sessions, config versions, claims, A/B results.

One async :class:`Store` port, three backends chosen by URL scheme (SQLite, PostgreSQL, Redis); see docs/storage.md.
"""

from store._base import BACKENDS, Store, connect_store, open_store
from store._common import StoreStatus
from store._errors import RunIdTaken, StoreError, UnknownBackendError
from store._models import ABResult, ChatSession, ConfigVersion, MemoryRecord, RunHistory

__all__ = [
    "BACKENDS",
    "ABResult",
    "ChatSession",
    "ConfigVersion",
    "MemoryRecord",
    "RunHistory",
    "RunIdTaken",
    "Store",
    "StoreError",
    "StoreStatus",
    "UnknownBackendError",
    "connect_store",
    "open_store",
]
