"""The chat flow of the memory tests (integration, e2e and chaos): two nodes with memory, and its mock script."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import write_flow

CHAT = """
schema_version: "1.0"
flow: {name: chat}
state:
  fields:
    user_id: {type: str, required: true}
    message: {type: str, required: true}
    reply: {type: str, default: ""}
    mood: {type: str, default: ""}
nodes:
  - id: respond
    prompt: "{state.message}"
    outputs: [reply]
    output_schema: {type: object, fields: [{name: reply, type: str}]}
    memory: {scope: node, key: "{state.user_id}", read: recent, limit: 5, max_items: MAX}
  - id: feel
    prompt: "How does this feel: {state.reply}"
    outputs: [mood]
    output_schema: {type: object, fields: [{name: mood, type: str}]}
    memory: {scope: node}
edges:
  - {from: START, to: respond}
  - {from: respond, to: feel}
  - {from: feel, to: END}
"""


SCRIPT = {"respond": [{"reply": "[{memory}] heard {state.message}"}], "feel": [{"mood": "[{memory}] fine"}]}


def chat_flow(tmp_path: Path, max_items: int = 100) -> Path:
    return write_flow(tmp_path / "chat.yaml", CHAT.replace("MAX", str(max_items)))
