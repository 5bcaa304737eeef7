"""A node's retry policy and a flow's budget, resolved once for both engines (docs/control-flow.md, Failures).

The bus worker (`actors.worker.actor`) retries an attempt by redelivery, the LangGraph engine by waiting
in-process; both ask this module whether to retry, after how long, and what to say when they give up.
"""

from __future__ import annotations

from dataclasses import dataclass

from configs import FAILURE_KINDS, BudgetSpec, FailureKind, FlowSpec, NodeSpec


@dataclass(frozen=True)
class RetryPolicy:
    """A node's ``retry:`` with its defaults: attempts in all, the failure kinds that retry, back-off."""

    max_attempts: int
    on: frozenset[FailureKind]
    backoff_s: float

    @property
    def output_retries(self) -> int:
        """Bad-output retries inside one attempt (the conversation goes on with the validation error)."""
        return self.max_attempts - 1 if "bad_output" in self.on else 0

    def retries(self, kind: str, attempt: int) -> bool:
        """Whether a failure of `kind` in attempt `attempt` (from 1) gets another attempt."""
        return kind in self.on and attempt < self.max_attempts

    def delay_s(self, attempt: int) -> float:
        """The wait after a failed attempt `attempt` (from 1): ``backoff_ms * 2^(attempt-1)``."""
        return self.backoff_s * 2.0 ** (attempt - 1)


def retry_policy(spec: FlowSpec, node: NodeSpec) -> RetryPolicy:
    """The retry policy of `node`: its ``retry:``, else ``1 + config.execution.max_retries`` attempts on every kind."""
    policy = node.retry
    default_attempts = 1 + spec.config.execution.max_retries
    if policy is None:
        return RetryPolicy(max_attempts=default_attempts, on=frozenset(FAILURE_KINDS), backoff_s=0.5)
    return RetryPolicy(
        max_attempts=policy.max_attempts or default_attempts,
        on=frozenset(policy.on),
        backoff_s=policy.backoff_ms / 1000,
    )


def gave_up(problem: str, attempts: int) -> str:
    """The error of a node that failed for good after `attempts` attempts."""
    return f"{problem} (after {attempts} attempt{'s' if attempts > 1 else ''})"


def budget_of(spec: FlowSpec) -> BudgetSpec | None:
    """The spending limits of a flow's runs: the top-level ``budget:``, else ``config.budget``."""
    return spec.budget or spec.config.budget
