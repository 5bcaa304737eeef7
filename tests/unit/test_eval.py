"""`ca-actors eval` without a stack: datasets, scorers, metrics, and what the command refuses before running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.evals.evaluate import EvalError, Example, RowResult, load_dataset, parse_example, summarize
from actors.evals.scorers import Judge, ScorerError, parse_scorer, parse_scorers, split_scorers
from actors.flow.llm import LLMReply
from configs import load_flow_text
from tests.support.evals import QA, evals_cli, qa_flow

# MLflow and the libraries it loads warn on import and use; none of these are ours to fix.


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


# --- the command line -----------------------------------------------------------------------------


async def test_eval_refuses_a_bad_dataset_or_a_missing_expectation_before_running(tmp_path: Path) -> None:
    flow = qa_flow(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a"}\n{"question": \n')
    result = await evals_cli("eval", str(flow), "-d", str(bad), "--llm", "mock")
    assert result.exit_code == 2
    assert f"{bad}:2: not JSON" in result.stderr

    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"question": "a"}\n')
    result = await evals_cli("eval", str(flow), "-d", str(flat), "-s", "exact:answer", "--llm", "mock")
    assert result.exit_code == 2
    assert "no expectation 'answer'" in result.stderr
    assert f"{flat}:1:" in result.stderr


def test_a_flat_example_has_no_expectations() -> None:
    assert parse_example('{"question": "a"}').expectations == {}
