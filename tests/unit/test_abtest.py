"""A/B tests (`config.ab_test`) and gates (`config.gates`) without a stack: validation, variants, winner, gates."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.evals.abtest import check_gates, comparison_table, pick_winner, variant_plan
from configs import ConfigError, GateSpec, load_flow_text
from tests.helpers import plans, write_flow
from tests.support.evals import AB, ab_flow, evals_cli


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_flow_text(text, "ab.yaml")
    return [str(issue) for issue in caught.value.issues if issue.severity == "error"]


# --- validation -----------------------------------------------------------------------------------


def test_a_flow_without_ab_test_or_gates_validates_as_before() -> None:
    spec = load_flow_text(ab_flow(ab=""), "ab.yaml").spec
    assert spec.config.ab_test is None
    assert spec.config.gates == []


def test_ab_test_and_gates_parse_into_typed_models() -> None:
    gates = "  gates:\n    - {metric: quality, min: 0.5}\n    - {metric: cost_usd, max: 0.01, on_fail: warn}\n"
    spec = load_flow_text(ab_flow(gates=gates), "ab.yaml").spec
    ab = spec.config.ab_test
    assert ab is not None
    assert (ab.run_count, ab.parallel, [v.name for v in ab.variants]) == (2, True, ["short", "long"])
    assert ab.variants[1].nodes["answer"].prompt is not None
    assert spec.config.gates == [
        GateSpec(metric="quality", min=0.5),
        GateSpec(metric="cost_usd", max=0.01, on_fail="warn"),
    ]


def test_gates_may_be_a_mapping_of_metric_to_bounds() -> None:
    spec = load_flow_text(ab_flow(gates="  gates:\n    quality: {min: 0.5}\n"), "ab.yaml").spec
    assert spec.config.gates == [GateSpec(metric="quality", min=0.5)]


def test_a_variant_naming_an_unknown_node_is_an_error_at_its_line_and_column() -> None:
    bad = AB.replace("        nodes:\n          answer:", "        nodes:\n          answr:")
    text = ab_flow(bad)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "answr:" in row)
    issues = _issues(text)
    assert any(
        issue.startswith(f"ab.yaml:{line}:11: error: config.ab_test.variants[1].nodes.answr: unknown node 'answr'")
        and "did you mean 'answer'" in issue
        for issue in issues
    ), issues


def test_an_ab_test_needs_two_uniquely_named_variants() -> None:
    one = AB.split("      - name: long")[0]
    assert any("needs at least 2 variants, got 1" in i for i in _issues(ab_flow(one)))
    twice = AB.replace("name: long", "name: short")
    assert any("duplicate variant name 'short'" in i for i in _issues(ab_flow(twice)))


def test_a_variant_prompt_is_checked_like_a_node_prompt() -> None:
    issues = _issues(ab_flow(AB.replace('{state.question}"}', '{state.qestion}"}')))
    assert any("variants[1].nodes.answer.prompt" in i and "did you mean 'question'" in i for i in issues), issues


def test_gates_need_a_known_metric_and_a_bound() -> None:
    issues = _issues(ab_flow(gates="  gates:\n    - {metric: qualty, min: 1}\n    - {metric: exact_answer}\n"))
    assert any("unknown gate metric 'qualty'" in i and "did you mean 'quality'" in i for i in issues), issues
    assert any("gate on 'exact_answer' needs min, max or both" in i for i in issues), issues


# --- variants, winner, gates ----------------------------------------------------------------------


def test_a_variant_plan_overrides_prompts_and_models_under_its_own_flow_name(tmp_path: Path) -> None:
    (plan,) = plans(write_flow(tmp_path / "ab.yaml", ab_flow()))
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


# --- the command line -----------------------------------------------------------------------------


async def test_ab_refuses_a_flow_without_an_ab_test(tmp_path: Path) -> None:
    result = await evals_cli("ab", str(write_flow(tmp_path / "plain.yaml", ab_flow(ab=""))))
    assert result.exit_code == 2
    assert "has no config.ab_test" in result.stderr


def test_seed_gates_skip_when_disabled_and_block_deploy_marks_the_result_not_deployable() -> None:
    from actors.evals.abtest import deployable

    gates = [
        GateSpec.model_validate({"name": "cost", "metric": "cost_usd_avg", "threshold": 0.01, "action": "WARN"}),
        GateSpec.model_validate({"metric": "duration_ms_avg", "threshold": 1, "action": "FAIL", "enabled": False}),
        GateSpec.model_validate({"metric": "quality_score_avg", "min_threshold": 0.8, "action": "BLOCK_DEPLOY"}),
    ]
    results = check_gates(gates, {"quality": 0.6, "cost_usd": 0.02, "latency_ms": 20})
    assert [r.gate.metric for r in results] == ["cost_usd", "quality"]  # the disabled gate is skipped
    warn, block = results
    assert not warn.passed
    assert not warn.blocking
    assert warn.line().startswith("WARN cost_usd [cost] = 0.02")
    assert block.blocking
    assert block.blocks_deploy
    assert "blocks deploy" in block.line()
    assert not deployable(results)
    assert deployable(check_gates(gates, {"quality": 0.9, "cost_usd": 0.001}))
