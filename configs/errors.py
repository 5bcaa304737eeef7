"""The error hierarchy of ca-actors: every error the project raises on purpose is in this one tree.

    CaActorsError
    ├── ConfigError (also ValueError)           a flow file is invalid: carries every ConfigIssue
    ├── InputError (also ValueError)            trigger inputs that do not fit a flow's state fields
    ├── OutputError (also ValueError)           an LLM output that does not fit a node's output_schema
    ├── ExprError (also ValueError)             a condition that does not parse or is not allowed
    ├── ExprEvalError (also ValueError)         evaluating a condition failed (missing path, wrong types)
    ├── TemplateSyntaxError (also ValueError)   a malformed prompt template (with its offset)
    ├── TemplateError (also KeyError)           a placeholder the state cannot resolve
    ├── TypeStringError (also ValueError)       a type string or an object schema is invalid
    ├── YAMLLimitError                          YAML past a size, depth or alias limit (a ConfigError once located)
    ├── BusError                                a NATS connection, stream or key-value operation failed
    │   ├── NoResponderError                    a request that nobody serves
    │   ├── RequestTimeoutError (also TimeoutError)  a request that was not answered in time
    │   └── BadReplyError                       an answer that is not the message the caller expects
    ├── StoreError                              a storage backend could not do an operation
    │   ├── UnknownBackendError (also ValueError)   the store URL names no backend
    │   └── RunIdTaken                          a run's history would replace another run's row
    ├── ActorError                              an actor could not do its job (bad plan, missing run, ...)
    │   ├── FlowError                           the state does not let the flow go on
    │   ├── NodeFailed                          a node failed for good: its run fails or goes `on_error`
    │   ├── LLMUnavailable                      the LLM call failed; a later attempt may succeed
    │   ├── BudgetExceeded                      the gateway refused a call that would pass a budget
    │   ├── MemoryUnavailable                   the memory actor or its store could not serve a request
    │   ├── ToolError                           a tool call failed
    │   ├── UnsandboxedRefused                  code asks to run without a sandbox the operator did not allow
    │   ├── RunFailed                           the in-process engine's run failed for good
    │   └── StackBusy                           another stack already runs from the data folder
    ├── SandboxError                            the sandbox could not run code at all (no worker, no container engine)
    ├── PolicyViolation (also PermissionError)  node code did something the sandbox's policy refuses
    │   └── SandboxRefused                      an operation the sandbox process refuses (files, processes, network)
    ├── EvalError (also ValueError)             an invalid dataset, or an evaluation that cannot be logged
    ├── ScorerError (also ValueError)           a misspelt scorer, or one that cannot grade a row
    ├── PlotUnavailableError (also RuntimeError)    matplotlib is not installed
    ├── ManifestError (also ValueError)         generated deploy manifests that fail their schemas
    └── MissingExtraError                       `ca-actors deploy` without the [deploy] extra

Where they live: the errors of the YAML language in `configs` (`_issues`, `_expr`, `_exprtree`,
`_templates`, `_typeref`), the bus's here, `StoreError` in `store`, the others next to the code that
raises them (`actors.flow.logic`, `actors.flow.node_exec`, `actors.flow.memory`, `actors.tools`,
`actors.engines.langgraph.nodes`, `actors.sandbox`, `actors.evals`, `actors.insights.plots`, `actors.launch.stackfile`,
`actors.deploy.validate`).
A second base class (ValueError, KeyError, TimeoutError, RuntimeError) is kept where callers catch the
builtin one.

Outside the tree on purpose: private sentinels (a leading underscore, such as the glob walk's
`_Stopped`) never leave their module; `Retry` and `Drop` (`actors.runtime.consume`) are not errors but how a
message handler tells the runtime to settle its message (nak with a delay, terminate). A handler that
catches `CaActorsError` to report a failure must not swallow them, so they derive from `Exception`.

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


class NoResponderError(BusError):
    """A request was sent to a subject that nobody serves."""

    def __init__(self, subject: str) -> None:
        super().__init__("no responder", subject=subject)


class RequestTimeoutError(BusError, TimeoutError):
    """A request was not answered within its timeout."""

    def __init__(self, subject: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"no answer within {timeout_s:g}s", subject=subject)


class BadReplyError(BusError):
    """The answer to a request is not the message the caller expects."""

    def __init__(self, subject: str, expected: str, problem: str) -> None:
        self.expected = expected
        self.problem = problem
        super().__init__(f"the answer is not a valid {expected}: {problem}", subject=subject)


class ActorError(CaActorsError):
    """An actor could not do its job."""

    def __init__(self, message: str, *, run_id: str | None = None, node: str | None = None) -> None:
        self.run_id = run_id
        self.node = node
        where = ", ".join(f"{k} {v}" for k, v in (("run", run_id), ("node", node)) if v)
        super().__init__(f"{message} ({where})" if where else message)
