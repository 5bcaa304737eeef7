"""Prompts kept in the MLflow prompt registry: ``prompt: mlflow:/prompts/<name>[@alias | /version]``.

This module is the pure part (references, templates); `actors.tracking.fetch_prompts` fetches them.
A flow's registry prompts are fetched once, when its plan is compiled (by the scheduler at start, or by
``ca-actors run``), and stored in the plan: every worker runs the same text, and the plan's version
changes when an alias moves to another prompt version. MLflow writes variables as ``{{name}}``; they
become ``{name}`` placeholders of the flow's templates (``{{state.topic}}`` → ``{state.topic}``).
"""

from __future__ import annotations

import re

from configs import FlowSpec
from configs.errors import ActorError

PREFIX = "mlflow:/prompts/"
_REF = re.compile(r"^mlflow:/prompts/(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>\d+))?$")
_MLFLOW_VAR = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def references(spec: FlowSpec) -> dict[str, str]:
    """Node id → registry reference, for the nodes whose prompt is one."""
    return {n.id: n.prompt.strip() for n in spec.nodes if n.prompt and n.prompt.strip().startswith(PREFIX)}


def mlflow_uri_of(ref: str) -> str:
    """The MLflow ``prompts:/`` URI of a reference (latest version when it names neither alias nor version).

    Raises:
        ActorError: not a valid reference.
    """
    match = _REF.match(ref)
    if match is None:
        raise ActorError(f"{ref!r} is not a prompt reference; write mlflow:/prompts/<name>[@alias|/version]")
    name, alias, version = match.group("name", "alias", "version")
    if alias:
        return f"prompts:/{name}@{alias}"
    if version:
        return f"prompts:/{name}/{version}"
    return f"prompts:/{name}@latest"


def to_template(text: str) -> str:
    """An MLflow prompt template as a flow template: ``{{var}}`` → ``{var}``, other braces literal."""
    out: list[str] = []
    last = 0
    for match in _MLFLOW_VAR.finditer(text):
        out.append(text[last : match.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + match.group(1) + "}")
        last = match.end()
    out.append(text[last:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)
