"""``ca-actors init NAME``: a commented starter flow, its mock script, and how to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bus import subjects

STARTER = """\
# {name}: a starter flow. Edit the prompts, add nodes, then:
#   ca-actors validate {flow_file}        # every problem with file:line:column
# run: ca-actors run {flow_file} -i topic="actors and messages" --mock-script {mock_file}
# (drop --mock-script and the flow's model is used: set config.llm.model, e.g. ollama_chat/llama3.2)
schema_version: "1.0"

flow:
  name: {name}                       # becomes the subject ca.trigger.{name}
  description: Research a topic, then write a short answer about it

state:                               # what a run knows; inputs are checked against it
  fields:
    topic: {{type: str, required: true, description: What to write about}}
    facts: {{type: "list[str]", default: [], description: Three facts found first}}
    answer: {{type: str, default: "", description: The short answer}}

nodes:
  - id: research
    prompt: "List three facts about {{state.topic}}."
    outputs: [facts]
    output_schema: {{type: object, fields: [{{name: facts, type: "list[str]"}}]}}
  - id: write
    prompt: |
      Using these facts: {{state.facts}}
      write two sentences about {{topic}}.
    outputs: [answer]
    output_schema: {{type: object, fields: [{{name: answer, type: str}}]}}
    retry: {{max_attempts: 2, on: [bad_output, llm_error]}}

edges:
  - {{from: START, to: research}}
  - {{from: research, to: write}}
  - {{from: write, to: END}}

config:
  llm: {{model: mock}}                 # the model of every node that names none
  execution: {{timeout: 120}}
"""

MOCK = """\
# Mock script for {flow_file}: node id -> the model's answers, in order (the last one repeats).
# Strings are templates over the state, like prompts.
research:
  - {{facts: ["{{topic}} started as an idea", "{{topic}} is used every day", "{{topic}} keeps changing"]}}
write:
  - {{answer: "A short answer about {{topic}}, from the facts."}}
"""


def register(app: typer.Typer) -> None:
    app.command(name="init")(init)


def init(
    name: Annotated[str, typer.Argument(help="The flow's name: letters, digits, _ and -.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the files.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a commented starter flow NAME.yaml and its mock script NAME.mock.yaml, ready to run offline."""
    try:
        subjects.token(name, "flow name")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    flow_file, mock_file = directory / f"{name}.yaml", directory / f"{name}.mock.yaml"
    existing = [str(f) for f in (flow_file, mock_file) if f.exists()]
    if existing and not force:
        typer.echo(f"error: {', '.join(existing)} exist(s); pass --force to overwrite", err=True)
        raise typer.Exit(2)
    directory.mkdir(parents=True, exist_ok=True)
    names = {"name": name, "flow_file": flow_file, "mock_file": mock_file}
    flow_file.write_text(STARTER.format(**names))
    mock_file.write_text(MOCK.format(**names))
    typer.echo(f"wrote {flow_file} and {mock_file}; run it offline with:")
    typer.echo(f'  ca-actors run {flow_file} -i topic="actors and messages" --mock-script {mock_file}')
