"""`ca-actors eval` over a real stack: every example runs, and its scores, cost and latency go to MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.evals.evaluate import evaluate_plan, load_dataset
from actors.evals.scorers import parse_scorers
from configs import Settings
from tests.helpers import plans, write_script
from tests.support.evals import evals_cli, qa_dataset, qa_flow


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow tracking DB for the module (creating its tables takes a second or two)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


async def test_an_evaluation_runs_every_example_and_logs_scores_cost_and_latency_to_mlflow(
    tmp_path: Path, mlflow_uri: str
) -> None:
    import mlflow

    script = write_script(tmp_path / "script.json", {"answer": [{"answer": "Paris"}]})
    settings = Settings(data_dir=tmp_path, llm_override="mock", mock_script=script, mlflow_tracking_uri=mlflow_uri)
    (plan,) = plans(qa_flow(tmp_path))
    examples = load_dataset(qa_dataset(tmp_path), plan.spec)
    scorers = parse_scorers(["exact:answer", "length:answer:1:10"], judge_model="mock")
    report = await evaluate_plan(settings, plan, examples, scorers, experiment="eval-test")

    assert [row.status for row in report.rows] == ["succeeded"] * 3
    assert all(row.tokens_in > 0 and row.run_id for row in report.rows)
    run = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(report.logged.run_id)
    metrics = run.data.metrics
    assert metrics["exact_answer"] == pytest.approx(1 / 3)
    assert metrics["exact_answer/mean"] == pytest.approx(1 / 3)
    assert metrics["length_answer"] == 1.0
    assert 0.0 <= metrics["judge/mean"] <= 1.0
    assert metrics["quality"] == pytest.approx((1 / 3 + 1 + metrics["judge"]) / 3)
    assert metrics["success_rate"] == 1.0
    assert metrics["cost_usd_total"] == 0.0
    assert metrics["latency_ms"] > 0
    assert metrics["tokens_in_total"] == sum(row.tokens_in for row in report.rows)
    assert run.data.tags["ca.kind"] == "eval"
    assert run.data.tags["ca.flow"] == "qa"
    experiment = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_experiment(run.info.experiment_id)
    assert experiment.name == "eval-test"


async def test_a_judge_that_cannot_grade_scores_zero_instead_of_being_left_out(tmp_path: Path, mlflow_uri: str) -> None:
    import mlflow

    # The judge's request is made for node "judge": the mock script answers it without a usable score.
    script = write_script(
        tmp_path / "script.json", {"answer": [{"answer": "Paris"}], "judge": [{"score": "high", "rationale": "?"}]}
    )
    settings = Settings(data_dir=tmp_path, llm_override="mock", mock_script=script, mlflow_tracking_uri=mlflow_uri)
    (plan,) = plans(qa_flow(tmp_path))
    examples = load_dataset(qa_dataset(tmp_path), plan.spec)
    report = await evaluate_plan(settings, plan, examples, parse_scorers([], judge_model="mock"), experiment="judged")
    metrics = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(report.logged.run_id).data.metrics
    assert metrics["judge"] == 0.0
    assert metrics["quality"] == 0.0


async def test_eval_checks_the_flows_gates_and_exits_1_when_a_failing_gate_says_fail(
    tmp_path: Path, mlflow_uri: str
) -> None:
    gates = "  gates:\n    - {metric: exact_answer, min: 0.9}\n    - {metric: latency_ms, max: 60000, on_fail: warn}\n"
    flow = qa_flow(tmp_path, gates)
    script = write_script(tmp_path / "script.json", {"answer": [{"answer": "Paris"}]})
    common = ["-d", str(qa_dataset(tmp_path)), "--mock-script", str(script), "--mlflow-uri", mlflow_uri]
    result = await evals_cli("eval", str(flow), "-s", "exact:answer", *common, "--data-dir", str(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [(g["metric"], g["passed"]) for g in out["gates"]] == [("exact_answer", False), ("latency_ms", True)]
    assert out["metrics"]["exact_answer"] == pytest.approx(1 / 3)

    passing = qa_flow(tmp_path, "  gates:\n    - {metric: success_rate, min: 1}\n")
    result = await evals_cli("eval", str(passing), "-s", "exact:answer", *common, "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "PASS success_rate = 1 (min 1)" in result.stdout
