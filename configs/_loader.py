"""Loading a flow file: YAML -> models -> validation, every problem located by line and column."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from configs._issues import ConfigError, ConfigIssue
from configs._locs import KeyPath, Problem, error_messages, format_path
from configs._positions import Positions, positions
from configs._schema import FlowSpec
from configs._unknown import unknown_keys
from configs._validate import check_flow
from configs._yaml import MAX_BYTES, BoundedLoader, YAMLLimitError, size_problem, text_problem

_TOP_KEYS = "schema_version, flow, state, nodes, edges"


@dataclass(frozen=True)
class LoadedFlow:
    """A valid flow, the warnings found while loading it, and where it came from."""

    spec: FlowSpec
    warnings: list[ConfigIssue]
    file: str
    source: str


def load_flow(path: str | Path, *, tools: Collection[str] | None = None) -> LoadedFlow:
    """Read, parse and validate a flow file.

    Args:
        path: The YAML file.
        tools: Tool names nodes may use (None: not checked here).

    Returns:
        The flow and its warnings.

    Raises:
        ConfigError: The file cannot be read, is not valid YAML, or is not a valid flow; the error
            carries every problem found, each with file, line, column and key path.
    """
    file = str(path)
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never more: a huge file must not fill memory before it is refused
        too_large = size_problem(len(raw))
        if too_large:
            raise ConfigError([ConfigIssue(file, 1, 1, "", too_large)])
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() would
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "", f"cannot read the file: {exc}")]) from None
    return load_flow_text(text, file, tools=tools)


def load_flow_text(text: str, file: str = "<string>", *, tools: Collection[str] | None = None) -> LoadedFlow:
    """Parse and validate a flow given as YAML text.

    Args:
        text: The YAML text.
        file: Name used in issues.
        tools: Tool names nodes may use (None: not checked here).

    Returns:
        The flow and its warnings.

    Raises:
        ConfigError: The text is not valid YAML or not a valid flow (every problem at once), or it exceeds a
            limit of `configs._yaml` (size, nesting depth, aliases and their expansion).
    """
    too_large = text_problem(text)
    if too_large:
        raise ConfigError([ConfigIssue(file, 1, 1, "", too_large)])
    root, data = _parse_yaml(text, file)
    where = positions(root, text)
    if not isinstance(data, Mapping):
        got = "an empty document" if data is None else f"a {type(data).__name__}"
        issue = ConfigIssue(
            file, *where.find(()), "", f"the top level must be a mapping with keys {_TOP_KEYS}; got {got}"
        )
        raise ConfigError([issue])
    problems = [Problem(path, message, severity="warning") for path, message in where.duplicates]
    problems += unknown_keys(FlowSpec, data)
    spec: FlowSpec | None = None
    try:
        spec = FlowSpec.model_validate(data)
    except ValidationError as exc:
        problems += [Problem(path, message) for path, message in error_messages(exc, data)]
    if spec is not None:
        problems += check_flow(spec, tools=tools)
    issues = [_issue(problem, file, where, data) for problem in problems]
    errors = sorted((i for i in issues if i.severity == "error"), key=_order)
    warnings = sorted((i for i in issues if i.severity == "warning"), key=_order)
    if errors or spec is None:
        raise ConfigError(errors + warnings)
    return LoadedFlow(spec=spec, warnings=warnings, file=file, source=text)


def _parse_yaml(text: str, file: str) -> tuple[yaml.Node | None, Any]:
    try:
        root = yaml.compose(text, Loader=BoundedLoader)
        data = yaml.load(text, Loader=BoundedLoader) if root is not None else None  # a SafeLoader
    except YAMLLimitError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError([ConfigIssue(file, line, column, "", str(exc.problem))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError([ConfigIssue(file, line, column, "", f"invalid YAML: {detail}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    return root, data


def _issue(problem: Problem, file: str, where: Positions, data: Any) -> ConfigIssue:
    line, column = where.find(problem.path)
    if problem.offset is not None:
        value = _value_at(data, problem.path)
        exact = where.find_in_value(problem.path, value, problem.offset) if isinstance(value, str) else None
        line, column = exact or (line, column)
    return ConfigIssue(
        file=file,
        line=line,
        column=column,
        path=format_path(problem.path),
        message=problem.message,
        suggestion=problem.suggestion,
        severity=problem.severity,
    )


def _value_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not in_list and not (isinstance(data, Mapping) and part in data):
            return None
        data = data[part]
    return data


def _order(issue: ConfigIssue) -> tuple[int, int]:
    return (issue.line, issue.column)
