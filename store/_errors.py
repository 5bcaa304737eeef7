"""Errors raised by the store: a driver exception never leaves the package.

CaActorsError
└── StoreError                      a backend could not do an operation (connect, migrate, query)
    ├── UnknownBackendError         the store URL names no registered backend (also ValueError)
    └── RunIdTaken                  a run's history would replace another run's row
"""

from __future__ import annotations

from configs.errors import CaActorsError


class StoreError(CaActorsError):
    """A storage backend could not do an operation: the server is down, the URL is bad, a query failed.

    Attributes:
        backend: The backend name (``sqlite``, ``postgres``, ``redis``), if known.
        operation: What the store was doing (``connect``, ``migrate``, ``put_run``, ...).
        target: Where: a file path or a server address, never a password.
    """

    def __init__(
        self, message: str, *, backend: str | None = None, operation: str | None = None, target: str | None = None
    ) -> None:
        self.backend = backend
        self.operation = operation
        self.target = target
        head = f"{backend} store" if backend else "store"
        if target:
            head += f" at {target}"
        doing = f": {operation} failed" if operation else ""
        super().__init__(f"{head}{doing}: {message}")


class UnknownBackendError(StoreError, ValueError):
    """The scheme of a store URL names no backend."""

    def __init__(self, scheme: str, valid: list[str]) -> None:
        self.scheme = scheme
        self.valid = valid
        super().__init__(
            f"unknown store URL scheme {scheme!r}; valid schemes: {', '.join(valid)}", operation="choose backend"
        )


class RunIdTaken(StoreError):
    """A run's history names a run id that another run (another flow, or another start) already has.

    Writes of one run replace each other; a write never silently replaces a different run's row.
    """

    def __init__(self, run_id: str, *, backend: str, target: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run id {run_id} already belongs to another run (other flow or start time): not replaced",
            backend=backend,
            operation="put_run",
            target=target,
        )
