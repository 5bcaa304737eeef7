"""The agent flow of the agent-node tests (integration and e2e): one node that answers with the help of tools."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import write_flow

AGENT = """
schema_version: "1.0"
flow: {name: helper}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: solve
    prompt: "Answer with the help of your tools: {state.question}"
    tools: TOOLS
    max_tool_calls: MAX
    outputs: [answer]
    output_schema: {type: object, fields: [{name: answer, type: str}]}
edges: [{from: START, to: solve}, {from: solve, to: END}]
"""


def agent_flow(tmp_path: Path, tools: str = "[calculator, datetime_now]", max_calls: int = 10, extra: str = "") -> Path:
    return write_flow(tmp_path / "agent.yaml", AGENT.replace("TOOLS", tools).replace("MAX", str(max_calls)) + extra)
