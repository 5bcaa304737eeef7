"""`ca-actors ab` over a real stack: one MLflow run per variant, the winner tagged, and the exit code of its gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.evals.abtest import run_ab
from actors.evals.evaluate import Example
from actors.evals.scorers import parse_scorers
from configs import Settings
from tests.helpers import plans, write_flow
from tests.support.evals import ab_flow, evals_cli


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


async def test_every_variant_is_one_mlflow_run_of_one_experiment_and_the_winner_is_tagged(
    tmp_path: Path, mlflow_uri: str
) -> None:
    import mlflow

    (plan,) = plans(write_flow(tmp_path / "ab.yaml", ab_flow()))
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


async def test_ab_prints_the_comparison_and_exits_1_when_a_gate_on_the_winner_fails(
    tmp_path: Path, mlflow_uri: str
) -> None:
    failing = write_flow(
        tmp_path / "fail.yaml", ab_flow(gates="  gates:\n    - {metric: latency_p50_ms, max: 0.001}\n")
    )
    common = ["--runs", "1", "--mlflow-uri", mlflow_uri, "--data-dir", str(tmp_path), "--experiment", "ab-cli"]
    result = await evals_cli("ab", str(failing), *common)
    assert result.exit_code == 1, result.output
    assert "winner: short" in result.stdout
    assert any(line.startswith("short") and line.endswith("← winner") for line in result.stdout.splitlines())
    assert "FAIL latency_p50_ms" in result.stdout

    passing = write_flow(tmp_path / "pass.yaml", ab_flow(gates="  gates:\n    - {metric: quality, min: 1}\n"))
    result = await evals_cli("ab", str(passing), *common, "-i", "question=Why?", "--sequential", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["winner"] == "short"
    assert [v["name"] for v in out["variants"]] == ["short", "long"]
    assert out["variants"][0]["rows"][0]["inputs"] == {"question": "Why?"}
    assert out["gates"] == [
        {
            "name": "quality",
            "metric": "quality",
            "value": 1.0,
            "min": 1.0,
            "max": None,
            "on_fail": "fail",
            "passed": True,
        }
    ]
