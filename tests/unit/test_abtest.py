"""A/B tests (`config.ab_test`) and gates (`config.gates`): validation, variants, winner, MLflow runs, exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from actors.cli.evals import register
from actors.evals.abtest import check_gates, comparison_table, pick_winner, run_ab, variant_plan
from actors.evals.evaluate import Example
from actors.evals.scorers import parse_scorers
from configs import ConfigError, GateSpec, Settings, load_flow_text
from tests.helpers import plans, write_flow

FLOW = """\
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


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _text(ab: str = AB, gates: str = "") -> str:
    return FLOW.replace("AB", ab + gates)


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_flow_text(text, "ab.yaml")
    return [str(issue) for issue in caught.value.issues if issue.severity == "error"]


# --- validation -----------------------------------------------------------------------------------


def test_a_flow_without_ab_test_or_gates_validates_as_before() -> None:
    spec = load_flow_text(_text(ab=""), "ab.yaml").spec
    assert spec.config.ab_test is None
    assert spec.config.gates == []


def test_ab_test_and_gates_parse_into_typed_models() -> None:
    gates = "  gates:\n    - {metric: quality, min: 0.5}\n    - {metric: cost_usd, max: 0.01, on_fail: warn}\n"
    spec = load_flow_text(_text(gates=gates), "ab.yaml").spec
    ab = spec.config.ab_test
    assert ab is not None
    assert (ab.run_count, ab.parallel, [v.name for v in ab.variants]) == (2, True, ["short", "long"])
    assert ab.variants[1].nodes["answer"].prompt is not None
    assert spec.config.gates == [
        GateSpec(metric="quality", min=0.5),
        GateSpec(metric="cost_usd", max=0.01, on_fail="warn"),
    ]


def test_gates_may_be_a_mapping_of_metric_to_bounds() -> None:
    spec = load_flow_text(_text(gates="  gates:\n    quality: {min: 0.5}\n"), "ab.yaml").spec
    assert spec.config.gates == [GateSpec(metric="quality", min=0.5)]


def test_a_variant_naming_an_unknown_node_is_an_error_at_its_line_and_column() -> None:
    bad = AB.replace("        nodes:\n          answer:", "        nodes:\n          answr:")
    text = _text(bad)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "answr:" in row)
    issues = _issues(text)
    assert any(
        issue.startswith(f"ab.yaml:{line}:11: error: config.ab_test.variants[1].nodes.answr: unknown node 'answr'")
        and "did you mean 'answer'" in issue
        for issue in issues
    ), issues


def test_an_ab_test_needs_two_uniquely_named_variants() -> None:
    one = AB.split("      - name: long")[0]
    assert any("needs at least 2 variants, got 1" in i for i in _issues(_text(one)))
    twice = AB.replace("name: long", "name: short")
    assert any("duplicate variant name 'short'" in i for i in _issues(_text(twice)))


def test_a_variant_prompt_is_checked_like_a_node_prompt() -> None:
    issues = _issues(_text(AB.replace('{state.question}"}', '{state.qestion}"}')))
    assert any("variants[1].nodes.answer.prompt" in i and "did you mean 'question'" in i for i in issues), issues


def test_gates_need_a_known_metric_and_a_bound() -> None:
    issues = _issues(_text(gates="  gates:\n    - {metric: qualty, min: 1}\n    - {metric: exact_answer}\n"))
    assert any("unknown gate metric 'qualty'" in i and "did you mean 'quality'" in i for i in issues), issues
    assert any("gate on 'exact_answer' needs min, max or both" in i for i in issues), issues


# --- variants, winner, gates ----------------------------------------------------------------------


def test_a_variant_plan_overrides_prompts_and_models_under_its_own_flow_name(tmp_path: Path) -> None:
    (plan,) = plans(write_flow(tmp_path / "ab.yaml", _text()))
    ab = plan.spec.config.ab_test
    assert ab is not None
    short, long = (variant_plan(plan, v) for v in ab.variants)
    assert (short.flow, long.flow) == ("abq-short", "abq-long")
    assert short.spec.node("answer").prompt == "Q: {state.question}"
    assert long.spec.node("answer").prompt.startswith("Think step by step")
    llm = long.spec.node("answer").llm
    assert llm is not None
    assert llm.model == "mock/20ms"
    assert long.spec.edges[0].from_ == "START"


def test_the_winner_has_the_best_quality_then_the_lowest_cost_then_the_lowest_latency() -> None:
    base = {"quality": 0.8, "cost_usd": 0.01, "latency_p50_ms": 100.0}
    assert pick_winner({"a": base, "b": base | {"quality": 0.9}}) == "b"
    assert pick_winner({"a": base, "b": base | {"cost_usd": 0.005}}) == "b"
    assert pick_winner({"a": base | {"latency_p50_ms": 50.0}, "b": base}) == "a"
    table = comparison_table({"a": base, "b": base | {"quality": 0.9}}, "b")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["VARIANT", "QUALITY", "SUCCESS"]
    assert lines[2].startswith("b")
    assert lines[2].endswith("← winner")
    assert "winner" not in lines[1]


def test_gates_pass_fail_or_warn_on_the_metrics() -> None:
    gates = [
        GateSpec(metric="quality", min=0.5),
        GateSpec(metric="cost_usd", max=0.01),
        GateSpec(metric="latency_ms", max=10, on_fail="warn"),
        GateSpec(metric="exact_answer", min=1),
    ]
    results = check_gates(gates, {"quality": 0.6, "cost_usd": 0.02, "latency_ms": 20})
    assert [(r.passed, r.blocking) for r in results] == [(True, False), (False, True), (False, False), (False, True)]
    assert [r.line().split()[0] for r in results] == ["PASS", "FAIL", "WARN", "FAIL"]
    assert results[3].line() == "FAIL exact_answer not measured (min 1)"


# --- runs and MLflow ------------------------------------------------------------------------------


async def test_every_variant_is_one_mlflow_run_of_one_experiment_and_the_winner_is_tagged(
    tmp_path: Path, mlflow_uri: str
) -> None:
    import mlflow

    (plan,) = plans(write_flow(tmp_path / "ab.yaml", _text()))
    ab = plan.spec.config.ab_test
    assert ab is not None
    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=mlflow_uri)
    examples = [Example(inputs=dict(ab.inputs))]
    report = await run_ab(settings, plan, ab, examples, parse_scorers(ab.scorers), experiment="ab-test")

    assert report.winner == "short"
    assert [len(r.rows) for r in report.results] == [2, 2]
    client = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("ab-test")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`ca.ab_id` = '{report.ab_id}'")
    by_variant = {run.data.tags["ca.variant"]: run for run in runs}
    assert set(by_variant) == {"short", "long"}
    short, long = by_variant["short"].data, by_variant["long"].data
    assert short.metrics["quality"] == 1.0
    assert short.metrics["length_answer/mean"] == 1.0
    assert long.metrics["quality"] == 0.0
    for data in (short, long):
        assert data.metrics["runs"] == 2
        assert data.metrics["success_rate"] == 1.0
        assert data.metrics["cost_usd_total"] == 0.0
        assert data.metrics["latency_p50_ms"] > 0
    assert long.metrics["latency_p50_ms"] > 20
    assert long.params["model"] == "mock/20ms"
    assert long.params["answer.prompt"].startswith("Think step by step")
    assert short.tags.get("ca.winner") == "true"
    assert "ca.winner" not in long.tags


async def _cli(*args: str) -> Any:
    """Invoke the commands in a thread: their asyncio.run() must not touch this test's event loop."""
    app = typer.Typer()
    register(app)
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_ab_prints_the_comparison_and_exits_1_when_a_gate_on_the_winner_fails(
    tmp_path: Path, mlflow_uri: str
) -> None:
    failing = write_flow(tmp_path / "fail.yaml", _text(gates="  gates:\n    - {metric: latency_p50_ms, max: 0.001}\n"))
    common = ["--runs", "1", "--mlflow-uri", mlflow_uri, "--data-dir", str(tmp_path), "--experiment", "ab-cli"]
    result = await _cli("ab", str(failing), *common)
    assert result.exit_code == 1, result.output
    assert "winner: short" in result.stdout
    assert any(line.startswith("short") and line.endswith("← winner") for line in result.stdout.splitlines())
    assert "FAIL latency_p50_ms" in result.stdout

    passing = write_flow(tmp_path / "pass.yaml", _text(gates="  gates:\n    - {metric: quality, min: 1}\n"))
    result = await _cli("ab", str(passing), *common, "-i", "question=Why?", "--sequential", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["winner"] == "short"
    assert [v["name"] for v in out["variants"]] == ["short", "long"]
    assert out["variants"][0]["rows"][0]["inputs"] == {"question": "Why?"}
    assert out["gates"] == [
        {"metric": "quality", "value": 1.0, "min": 1.0, "max": None, "on_fail": "fail", "passed": True}
    ]


async def test_ab_refuses_a_flow_without_an_ab_test(tmp_path: Path) -> None:
    result = await _cli("ab", str(write_flow(tmp_path / "plain.yaml", _text(ab=""))))
    assert result.exit_code == 2
    assert "has no config.ab_test" in result.stderr
