"""Prompts from the MLflow prompt registry (a real SQLite tracking store): `prompt: mlflow:/prompts/name@alias`."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.flow import load_flows
from actors.flow.prompt_registry import mlflow_uri_of, to_template
from actors.launch.stack import LocalStack
from actors.tracking import import_mlflow, prompt_fetcher
from configs import Settings
from configs.errors import ActorError
from tests.helpers import EventLog, run_flow, write_flow

FLOW = """
schema_version: "1.0"
flow: {name: registry}
state:
  fields:
    topic: {type: str, required: true}
    line: {type: str, default: ""}
nodes:
  - id: summarize
    prompt: "mlflow:/prompts/one_liner@production"
    outputs: [line]
edges: [{from: START, to: summarize}, {from: summarize, to: END}]
"""


def register(uri: str) -> None:
    """Two versions of `one_liner`; the alias `production` points at the second."""
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(uri)
    mlflow.genai.register_prompt("one_liner", template="Old prompt about {{topic}}")
    mlflow.genai.register_prompt("one_liner", template='Summarize {{ state.topic }} in one line, as {"line": ...}')
    mlflow.genai.set_prompt_alias("one_liner", alias="production", version=2)


def test_mlflow_templates_become_flow_templates() -> None:
    assert to_template("Hi {{name}}, {{ state.a.b }}") == "Hi {name}, {state.a.b}"
    assert to_template('JSON like {"k": 1}') == 'JSON like {{"k": 1}}'
    assert mlflow_uri_of("mlflow:/prompts/p@prod") == "prompts:/p@prod"
    assert mlflow_uri_of("mlflow:/prompts/p/3") == "prompts:/p/3"
    assert mlflow_uri_of("mlflow:/prompts/p") == "prompts:/p@latest"
    with pytest.raises(ActorError, match="not a prompt reference"):
        mlflow_uri_of("mlflow:/prompts/")


async def test_a_node_runs_the_prompt_its_alias_points_at(settings: Settings, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    register(uri)
    flows = load_flows([write_flow(tmp_path / "registry.yaml", FLOW)], fetch_prompts=prompt_fetcher(uri))
    assert flows.errors == []
    (plan,) = flows.plans
    assert plan.prompts == {"summarize": 'Summarize {state.topic} in one line, as {{"line": ...}}'}
    s = settings.model_copy(update={"llm_override": "mock"})
    async with LocalStack(s, flows.plans, embedded=False) as stack:
        assert stack.client is not None
        log = await EventLog().start(stack.client)
        result = await run_flow(stack.client, "registry", {"topic": "NATS"})
    assert result["status"] == "succeeded", result
    (called,) = log.of("llm.called")
    assert 'Summarize NATS in one line, as {"line": ...}' in called.data.messages[-1]["content"]


def test_a_missing_prompt_is_a_load_error_naming_the_node(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    flows = load_flows([write_flow(tmp_path / "registry.yaml", FLOW)], fetch_prompts=prompt_fetcher(uri))
    assert flows.plans == []
    (error,) = flows.errors
    assert "node 'summarize'" in error
    assert "mlflow:/prompts/one_liner@production not found" in error


def test_a_registry_prompt_is_checked_like_a_prompt_in_the_file(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(uri)
    mlflow.genai.register_prompt("one_liner", template="Summarize {{state.topc}}")
    mlflow.genai.set_prompt_alias("one_liner", alias="production", version=1)
    flows = load_flows([write_flow(tmp_path / "registry.yaml", FLOW)], fetch_prompts=prompt_fetcher(uri))
    assert flows.plans == []
    (error,) = flows.errors
    assert "node 'summarize': the registry prompt" in error
    assert "topc" in error
    assert "topic" in error  # the suggestion


def test_an_ab_variant_cannot_point_at_the_registry(tmp_path: Path) -> None:
    body = FLOW.replace('prompt: "mlflow:/prompts/one_liner@production"', 'prompt: "Summarize {state.topic}"')
    body += """config:
  ab_test:
    variants:
      - name: a
      - name: b
        nodes: {summarize: {prompt: "mlflow:/prompts/other@x"}}
"""
    flows = load_flows([write_flow(tmp_path / "ab.yaml", body)])
    (error,) = flows.errors
    assert "registry prompts (mlflow:/prompts/...) are for nodes" in error
