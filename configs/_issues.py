"""Problems found in flow files, trigger inputs and LLM outputs, and the errors that carry them.

CaActorsError
├── ConfigError (also ValueError)   a flow file is invalid: carries every ConfigIssue
├── InputError (also ValueError)    trigger inputs do not fit the flow's state fields
└── OutputError (also ValueError)   an LLM output does not fit the node's output_schema
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from configs.errors import CaActorsError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a flow file, located by file, line, column and key path."""

    file: str
    line: int
    column: int
    path: str
    message: str
    suggestion: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {where}{self.message}{hint}"


class ConfigError(CaActorsError, ValueError):
    """A flow file is invalid; `issues` holds every error (and warning) found, not only the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        errors = sum(1 for issue in self.issues if issue.severity == "error")
        warnings = len(self.issues) - errors
        file = self.issues[0].file if self.issues else "<unknown>"
        head = f"invalid flow file {file}: {_count(errors, 'error')}"
        if warnings:
            head += f", {_count(warnings, 'warning')}"
        super().__init__("\n".join([head, *(str(issue) for issue in self.issues)]))


class InputError(CaActorsError, ValueError):
    """Trigger inputs do not fit the flow's state fields; `problems` lists each one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"invalid inputs: {self.problems[0]}")
            return
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        super().__init__(f"invalid inputs ({_count(len(self.problems), 'problem')}):\n{lines}")


class OutputError(CaActorsError, ValueError):
    """An LLM output does not fit the node's output_schema.

    The message is written to be sent back to the LLM so that it can fix its answer.
    """

    def __init__(self, problems: Sequence[str], *, expected: str = "") -> None:
        self.problems = list(problems)
        self.expected = expected
        lines = "\n".join(f"- {problem}" for problem in self.problems)
        message = f"Your answer does not match the required format:\n{lines}"
        if expected:
            message += f"\nAnswer with {expected}."
        super().__init__(message)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to `name` (difflib), or None when nothing is close enough.

    Args:
        name: The misspelt name.
        candidates: The valid names.

    Returns:
        The closest valid name, or None.
    """
    matches = difflib.get_close_matches(name, [c for c in candidates if c != name], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
