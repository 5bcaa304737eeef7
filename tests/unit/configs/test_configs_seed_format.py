"""The rest of the seed's file format: code nodes and their sandbox block, input templates, the seed's
gate form, the observability block, and warnings for seed keys this platform does not use."""

from __future__ import annotations

import itertools
from pathlib import Path
from textwrap import dedent

import pytest

from configs import ConfigError, GateSpec, input_value, load_flow, load_flow_text
from tests.conftest import EXAMPLES

HEADER = 'schema_version: "1.0"\nflow: {name: f}\n'
STATE = """
state:
  fields:
    numbers: {type: "list[int]", required: true}
    profile: {type: object, schema: {name: str, age: int}, default: {name: "", age: 0}}
    total: {type: int, default: 0}
    label: {type: str, default: ""}
"""


def flow(body: str) -> str:
    return HEADER + dedent(STATE) + dedent(body)


def linear(*nodes: str) -> str:
    ids = [n.split("id: ")[1].split(",")[0].split("}")[0].strip() for n in nodes]
    chain = ["START", *ids, "END"]
    edges = "\n".join(f"  - {{from: {a}, to: {b}}}" for a, b in itertools.pairwise(chain))
    return "nodes:\n" + "\n".join(f"  - {n}" for n in nodes) + "\nedges:\n" + edges + "\n"


def test_the_seed_code_node_form_validates_unchanged() -> None:
    loaded = load_flow(EXAMPLES / "sandbox_pipeline.yaml")
    assert loaded.warnings == []
    node = loaded.spec.node("sum_numbers")
    assert node.is_code
    assert node.sandbox is not None
    assert (node.sandbox.mode, node.sandbox.preset, node.sandbox.timeout, node.sandbox.network) == (
        "python",
        "low",
        10,
        False,
    )


def test_code_the_sandbox_refuses_fails_validation_at_its_line() -> None:
    text = flow(linear('{id: c, code: "x = 1\\nresult = x.__class__", outputs: [total], output_schema: {type: int}}'))
    with pytest.raises(ConfigError) as info:
        load_flow_text(text)
    (issue,) = info.value.issues
    assert issue.path == "nodes[0].code"
    assert "the sandbox refuses this code: Line 2" in issue.message
    assert "__class__" in issue.message


def test_an_unknown_sandbox_key_is_an_error_with_a_suggestion() -> None:
    text = flow(linear("{id: c, code: 'result = 1', outputs: [total], sandbox: {presett: low}}"))
    with pytest.raises(ConfigError) as info:
        load_flow_text(text)
    assert any(i.path == "nodes[0].sandbox.presett" and i.suggestion == "preset" for i in info.value.issues)


def test_an_unknown_preset_names_the_valid_ones() -> None:
    text = flow(linear("{id: c, code: 'result = 1', outputs: [total], sandbox: {preset: huge}}"))
    with pytest.raises(ConfigError) as info:
        load_flow_text(text)
    assert any("'low', 'medium' or 'high'" in i.message for i in info.value.issues)


def test_a_code_node_without_a_sandbox_block_gets_the_default_and_enabled_false_warns() -> None:
    loaded = load_flow_text(flow(linear("{id: c, code: 'result = 1', outputs: [total]}")))
    assert loaded.warnings == []
    unsafe = load_flow_text(flow(linear("{id: c, code: 'result = 1', outputs: [total], sandbox: {enabled: false}}")))
    (warning,) = unsafe.warnings
    assert warning.path == "nodes[0].sandbox.enabled"
    assert "--allow-unsandboxed" in warning.message


def test_a_template_input_that_is_one_placeholder_keeps_its_type() -> None:
    state = {"numbers": [1, 2], "profile": {"name": "Ada", "age": 36}, "total": 3}
    assert input_value("{numbers}", state) == [1, 2]
    assert input_value("{state.numbers}", state) == [1, 2]
    assert input_value("{profile.age}", state) == 36
    assert input_value("profile.name", state) == "Ada"
    assert input_value("{profile.name} is {profile.age}", state) == "Ada is 36"
    assert input_value("{item}", state, {"item": {"k": 1}}) == {"k": 1}


def test_template_inputs_validate_and_their_types_reach_the_prompt_checks() -> None:
    text = flow(
        linear(
            "{id: a, prompt: 'n {nums} {who}', outputs: [label],"
            " inputs: {nums: '{numbers}', who: '{state.profile.name} ({profile.age})'}}"
        )
    )
    assert load_flow_text(text).warnings == []


def test_a_template_input_with_an_unknown_field_is_located() -> None:
    text = flow(linear("{id: a, prompt: 'x {n}', inputs: {n: '{numbrs}'}, outputs: [label]}"))
    with pytest.raises(ConfigError) as info:
        load_flow_text(text)
    issue = next(i for i in info.value.issues if i.path == "nodes[0].inputs.n")
    assert "placeholder {numbrs}" in issue.message
    assert issue.suggestion == "numbers"


def test_the_seed_gate_form_maps_to_ours() -> None:
    gate = GateSpec.model_validate(
        {
            "name": "cost",
            "description": "average cost",
            "enabled": True,
            "metric": "cost_usd_avg",
            "threshold": 0.05,
            "min_threshold": 0.0,
            "action": "BLOCK_DEPLOY",
        }
    )
    assert (gate.metric, gate.max, gate.min, gate.on_fail, gate.name) == ("cost_usd", 0.05, 0.0, "block_deploy", "cost")
    assert GateSpec.model_validate({"metric": "duration_ms_avg", "threshold": 900, "action": "WARN"}).metric == (
        "latency_ms"
    )
    assert GateSpec.model_validate({"metric": "quality_score_avg", "min_threshold": 0.8}).metric == "quality"


def test_a_flow_with_seed_gates_validates() -> None:
    text = flow(
        linear("{id: a, prompt: 'x', outputs: [label]}")
        + """
config:
  gates:
    - {name: cost, metric: cost_usd_avg, threshold: 0.05, action: FAIL}
    - {name: speed, metric: duration_ms, threshold: 2000, action: WARN, enabled: false}
    - {name: quality, metric: quality_score_avg, min_threshold: 0.8, action: BLOCK_DEPLOY}
"""
    )
    gates = load_flow_text(text).spec.config.gates
    assert [(g.metric, g.on_fail, g.enabled) for g in gates] == [
        ("cost_usd", "fail", True),
        ("latency_ms", "warn", False),
        ("quality", "block_deploy", True),
    ]


def test_the_observability_block_is_typed_and_unused_keys_warn_where_they_are() -> None:
    text = flow(
        linear("{id: a, prompt: 'x', outputs: [label]}")
        + """
config:
  observability:
    mlflow: {enabled: true, tracking_uri: "sqlite:///m.db", experiment_name: seeds, log_artifacts: true}
  logging: {level: DEBUG}
"""
    )
    loaded = load_flow_text(text)
    mlflow = loaded.spec.config.observability.mlflow if loaded.spec.config.observability else None
    assert mlflow is not None
    assert (mlflow.enabled, mlflow.tracking_uri, mlflow.experiment_name) == (True, "sqlite:///m.db", "seeds")
    where = {w.path: w for w in loaded.warnings}
    assert set(where) == {"config.observability.mlflow.log_artifacts", "config.logging"}
    assert "is ignored" in where["config.observability.mlflow.log_artifacts"].message
    assert where["config.logging"].line > 1


def test_a_storage_backend_without_url_warns() -> None:
    text = flow(linear("{id: a, prompt: 'x', outputs: [label]}") + "config:\n  storage: {backend: postgres}\n")
    (warning,) = load_flow_text(text).warnings
    assert warning.path == "config.storage"
    assert "without url" in warning.message


def test_an_unused_key_of_a_tool_entry_warns_with_a_suggestion() -> None:
    text = flow(linear("{id: a, prompt: 'x', outputs: [label], tools: [{name: calculator, on_eror: continue}]}"))
    (warning,) = load_flow_text(text).warnings
    assert warning.path == "nodes[0].tools[0].on_eror"
    assert warning.suggestion == "on_error"


def test_up_passes_the_operators_sandbox_choices_to_its_workers(tmp_path: Path) -> None:
    from actors.launch.supervisor import Supervisor
    from configs import Settings

    settings = Settings(allow_unsandboxed=True, sandbox_image="agent:1")
    command = Supervisor(settings, tmp_path, embedded=True, workers=1)._command("worker")
    assert command[-3:] == ["--allow-unsandboxed", "--sandbox-image", "agent:1"]
    assert "--allow-unsandboxed" not in Supervisor(Settings(), tmp_path, embedded=True, workers=1)._command("worker")
