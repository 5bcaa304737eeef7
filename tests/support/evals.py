"""The flows, dataset and command line of the `eval` and `ab` tests (unit and integration alike)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from actors.cli.evals import register
from tests.helpers import write_flow

QA = """\
schema_version: "1.0"
flow: {name: qa}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: answer
    prompt: "Answer in a few words: {state.question}"
    outputs: [answer]
    output_schema: {type: str}
edges:
  - {from: START, to: answer}
  - {from: answer, to: END}
config:
  llm: {model: mock}
GATES
"""

DATASET = [
    {"inputs": {"question": "Capital of France?"}, "expectations": {"answer": "Paris"}},
    {"inputs": {"question": "Capital of Italy?"}, "expectations": {"answer": "Rome"}},
    {"inputs": {"question": "Capital of Spain?"}, "expectations": {"answer": "Madrid"}},
]

AB_FLOW = """\
schema_version: "1.0"
flow: {name: abq}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: answer
    prompt: "Q: {state.question}"
    outputs: [answer]
    output_schema: {type: str}
edges:
  - {from: START, to: answer}
  - {from: answer, to: END}
config:
  llm: {model: mock}
AB
"""

# The mock model's answer holds the start of the prompt: the long prompt makes answers too long.
AB = """\
  ab_test:
    run_count: 2
    parallel: true
    inputs: {question: "What is NATS?"}
    scorers: ["length:answer::50"]
    variants:
      - name: short
      - name: long
        model: mock/20ms
        nodes:
          answer: {prompt: "Think step by step and explain at length, then answer: {state.question}"}
"""


def qa_flow(tmp_path: Path, gates: str = "") -> Path:
    """The `qa` flow file, with `gates` (YAML under `config:`) if given."""
    return write_flow(tmp_path / "qa.yaml", QA.replace("GATES", gates))


def qa_dataset(tmp_path: Path, rows: list[dict[str, Any]] = DATASET) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def ab_flow(ab: str = AB, gates: str = "") -> str:
    """The text of the `abq` flow with its `ab_test` (and `gates`) under `config:`."""
    return AB_FLOW.replace("AB", ab + gates)


async def evals_cli(*args: str) -> Any:
    """Invoke the commands in a thread: their asyncio.run() must not touch this test's event loop."""
    app = typer.Typer()
    register(app)
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))
