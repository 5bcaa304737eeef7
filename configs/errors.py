"""The error hierarchy of ca-actors.

    CaActorsError
    ├── ConfigError (also ValueError)   invalid YAML / flow file: carries every ConfigIssue
    ├── InputError (also ValueError)    trigger inputs that do not fit a flow's state fields
    ├── OutputError (also ValueError)   an LLM output that does not fit a node's output_schema
    ├── BusError                        NATS connection, stream or KV failure
    ├── ActorError                      an actor could not do its job (bad plan, missing run, ...)
    └── LLMError                        the LLM gateway or the provider failed

Errors carry fields and build their message from them.
"""

from __future__ import annotations


class CaActorsError(Exception):
    """Root of every error raised on purpose by ca-actors."""


class BusError(CaActorsError):
    """A NATS connection, stream or key-value operation failed."""

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        self.subject = subject
        super().__init__(f"{message} (subject {subject})" if subject else message)


class ActorError(CaActorsError):
    """An actor could not do its job."""

    def __init__(self, message: str, *, run_id: str | None = None, node: str | None = None) -> None:
        self.run_id = run_id
        self.node = node
        where = ", ".join(f"{k} {v}" for k, v in (("run", run_id), ("node", node)) if v)
        super().__init__(f"{message} ({where})" if where else message)


class LLMError(CaActorsError):
    """The LLM gateway or the provider behind it failed."""

    def __init__(self, message: str, *, model: str | None = None, retryable: bool = False) -> None:
        self.model = model
        self.retryable = retryable
        super().__init__(f"{message} (model {model})" if model else message)
