"""`ca-actors eval`: datasets, scorers, runs over a real stack and their MLflow evaluation runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from actors.cli.evals import register
from actors.evals.evaluate import EvalError, Example, RowResult, evaluate_plan, load_dataset, parse_example, summarize
from actors.evals.scorers import Judge, ScorerError, parse_scorer, parse_scorers, split_scorers
from actors.flow.llm import LLMReply
from configs import Settings, load_flow_text
from tests.helpers import plans, write_flow, write_script

# MLflow and the libraries it loads warn on import and use; none of these are ours to fix.

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


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow tracking DB for the module (creating its tables takes a second or two)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _flow(tmp_path: Path, gates: str = "") -> Path:
    return write_flow(tmp_path / "qa.yaml", QA.replace("GATES", gates))


def _dataset(tmp_path: Path, rows: list[dict[str, Any]] = DATASET) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def _spec() -> Any:
    return load_flow_text(QA.replace("GATES", ""), "qa.yaml").spec


# --- datasets -------------------------------------------------------------------------------------


def test_a_dataset_line_is_inputs_with_expectations_or_a_flat_object_of_inputs(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"inputs": {"question": "a"}, "expectations": {"answer": "b"}}\n\n{"question": "c"}\n')
    examples = load_dataset(path, _spec())
    assert examples == [
        Example(inputs={"question": "a"}, expectations={"answer": "b"}, line=1),
        Example(inputs={"question": "c"}, expectations={}, line=3),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"inputs": [1]}', "'inputs' must be an object"),
        ('{"inputs": {}, "expected": {}}', "unknown key(s) 'expected'"),
    ],
)
def test_a_bad_dataset_line_is_reported_with_its_line_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "fine"}\n' + line + "\n")
    with pytest.raises(EvalError) as caught:
        load_dataset(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert message in str(caught.value)


def test_dataset_inputs_are_checked_against_the_flow_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "ok"}\n{"qestion": "typo"}\n')
    with pytest.raises(EvalError, match=r"d\.jsonl:2: .*qestion"):
        load_dataset(path, _spec())


def test_an_empty_dataset_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n")
    with pytest.raises(EvalError, match="no examples"):
        load_dataset(path)


# --- scorers --------------------------------------------------------------------------------------


def _grade(spec: str, value: Any, expected: Any = None, **kw: Any) -> bool | float:
    scorer = parse_scorer(spec, **kw)
    assert not isinstance(scorer, Judge)
    return scorer.score({"answer": value}, {} if expected is None else {"answer": expected}).value


def test_deterministic_scorers_grade_known_values(tmp_path: Path) -> None:
    assert _grade("exact:answer", " Paris ", "paris") is True
    assert _grade("exact:answer", "Paris, France", "Paris") is False
    assert _grade("exact:answer", [1, 2], [1, 2]) is True
    assert _grade("contains:answer", "It is Paris.", "paris") is True
    assert _grade("contains:answer", ["a", "b"], "b") is True
    assert _grade("contains:answer", "Rome", "Paris") is False
    assert _grade(r"regex:answer:^\d{1,3}$", "123") is True
    assert _grade(r"regex:answer:^\d{1,3}$", "1234") is False
    assert _grade("regex:answer", "Paris", "^P") is True  # the expectation is the pattern
    assert _grade("length:answer:2:5", "abc") is True
    assert _grade("length:answer::2", "abc") is False
    assert _grade("length:answer:3:", ["a", "b", "c"]) is True
    assert _grade("json_schema:answer", '{"a": 1}') is True
    assert _grade("json_schema:answer", "Paris") is False
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}')
    assert _grade("json_schema:answer:s.json", '{"a": 1}', base_dir=tmp_path) is True
    assert _grade("json_schema:answer:s.json", '{"a": "x"}', base_dir=tmp_path) is False


def test_scorer_lists_split_on_commas_before_a_scorer_name_only() -> None:
    assert split_scorers([r"exact:answer,regex:answer:^\d{1,3}$", "length:answer::5, judge"]) == [
        "exact:answer",
        r"regex:answer:^\d{1,3}$",
        "length:answer::5",
        "judge",
    ]


def test_scorer_names_are_metric_names_made_unique() -> None:
    scorers = parse_scorers(["exact:answer", "regex:answer:a", "regex:answer:b"], judge_model="mock")
    assert [s.name for s in scorers] == ["exact_answer", "regex_answer", "regex_answer_2", "judge"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("exakt:answer", "unknown scorer 'exakt'"),
        ("exact", "needs a state field"),
        ("regex:answer:(", "invalid pattern"),
        ("length:answer:x:3", "not a whole number"),
        ("length:answer", "length:FIELD:MIN:MAX"),
        ("judge", "needs a model"),
        ("json_schema:answer:missing.json", "cannot read the schema file"),
        ("exact:answr", "'answr' is not a state field"),
    ],
)
def test_a_misspelt_scorer_is_rejected_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(ScorerError, match=message.replace("(", r"\(")):
        parse_scorers([spec], state_fields=["question", "answer"])


def test_the_judge_asks_for_a_grade_and_reads_it() -> None:
    judge = parse_scorer("judge:answer", judge_model="mock")
    assert isinstance(judge, Judge)
    request = judge.request({"question": "q"}, {"answer": "Paris", "question": "q"}, {"answer": "Paris"})
    assert request.model == "mock"
    assert request.output_schema is not None
    assert '"Paris"' in request.messages[-1].content
    grade = judge.grade(LLMReply(content='{"score": 1.5, "rationale": "right"}'))
    assert (grade.value, grade.rationale) == (1.0, "right")
    with pytest.raises(ScorerError, match="failed"):
        judge.grade(LLMReply(error="down", error_kind="transient"))


def test_metrics_sum_cost_and_tokens_and_take_latency_percentiles() -> None:
    example = Example(inputs={})
    rows = [
        RowResult(example, "r1", "succeeded", latency_ms=10, cost_usd=0.01, tokens_in=5, tokens_out=1),
        RowResult(example, "r2", "failed", latency_ms=30, cost_usd=0.03, tokens_in=5, tokens_out=3),
    ]
    metrics = summarize(rows)
    assert metrics["success_rate"] == 0.5
    assert metrics["cost_usd_total"] == pytest.approx(0.04)
    assert metrics["cost_usd"] == pytest.approx(0.02)
    assert metrics["latency_p50_ms"] == 20
    assert metrics["latency_p95_ms"] == 30
    assert metrics["tokens"] == 7


# --- runs and MLflow ------------------------------------------------------------------------------


async def test_an_evaluation_runs_every_example_and_logs_scores_cost_and_latency_to_mlflow(
    tmp_path: Path, mlflow_uri: str
) -> None:
    import mlflow

    script = write_script(tmp_path / "script.json", {"answer": [{"answer": "Paris"}]})
    settings = Settings(data_dir=tmp_path, llm_override="mock", mock_script=script, mlflow_tracking_uri=mlflow_uri)
    (plan,) = plans(_flow(tmp_path))
    examples = load_dataset(_dataset(tmp_path), plan.spec)
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
    (plan,) = plans(_flow(tmp_path))
    examples = load_dataset(_dataset(tmp_path), plan.spec)
    report = await evaluate_plan(settings, plan, examples, parse_scorers([], judge_model="mock"), experiment="judged")
    metrics = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(report.logged.run_id).data.metrics
    assert metrics["judge"] == 0.0
    assert metrics["quality"] == 0.0


async def _cli(*args: str) -> Any:
    """Invoke the commands in a thread: their asyncio.run() must not touch this test's event loop."""
    app = typer.Typer()
    register(app)
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_eval_checks_the_flows_gates_and_exits_1_when_a_failing_gate_says_fail(
    tmp_path: Path, mlflow_uri: str
) -> None:
    gates = "  gates:\n    - {metric: exact_answer, min: 0.9}\n    - {metric: latency_ms, max: 60000, on_fail: warn}\n"
    flow = _flow(tmp_path, gates)
    script = write_script(tmp_path / "script.json", {"answer": [{"answer": "Paris"}]})
    common = ["-d", str(_dataset(tmp_path)), "--mock-script", str(script), "--mlflow-uri", mlflow_uri]
    result = await _cli("eval", str(flow), "-s", "exact:answer", *common, "--data-dir", str(tmp_path), "--json")
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert [(g["metric"], g["passed"]) for g in out["gates"]] == [("exact_answer", False), ("latency_ms", True)]
    assert out["metrics"]["exact_answer"] == pytest.approx(1 / 3)

    passing = _flow(tmp_path, "  gates:\n    - {metric: success_rate, min: 1}\n")
    result = await _cli("eval", str(passing), "-s", "exact:answer", *common, "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "PASS success_rate = 1 (min 1)" in result.stdout


async def test_eval_refuses_a_bad_dataset_or_a_missing_expectation_before_running(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n{"question": \n')
    result = await _cli("eval", str(flow), "-d", str(bad), "--llm", "mock")
    assert result.exit_code == 2
    assert f"{bad}:2: not JSON" in result.stderr

    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"question": "a"}\n')
    result = await _cli("eval", str(flow), "-d", str(flat), "-s", "exact:answer", "--llm", "mock")
    assert result.exit_code == 2
    assert "no expectation 'answer'" in result.stderr
    assert f"{flat}:1:" in result.stderr


def test_a_flat_example_has_no_expectations() -> None:
    assert parse_example('{"question": "a"}').expectations == {}
