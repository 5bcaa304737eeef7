"""NaN and ±Infinity are not JSON numbers: trigger inputs, defaults and LLM outputs holding one are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from configs import ConfigError, FlowSpec, InputError, OutputError, initial_state, load_flow_text, validate_output
from configs._types import MAX_INPUT_DEPTH

FLOW = """\
schema_version: "1.0"
flow: {name: demo}
state:
  fields:
    score: {type: float}
    scores: {type: "list[float]"}
    weights: {type: "dict[str, float]"}
    meta: {type: dict}
    anything: {type: list}
    profile: {type: object, schema: {weight: float}}
nodes:
  - {id: rate, prompt: 'rate {meta}', outputs: [score]}
edges:
  - {from: START, to: rate}
  - {from: rate, to: END}
"""


@pytest.fixture(scope="module")
def spec() -> FlowSpec:
    return load_flow_text(FLOW, "flow.yaml").spec


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ('{"score": NaN}', "input 'score': NaN is not a finite number"),
        ('{"score": Infinity}', "input 'score': Infinity is not a finite number"),
        ('{"score": -Infinity}', "input 'score': -Infinity is not a finite number"),
        ('{"score": 1e400}', "input 'score': Infinity is not a finite number"),  # overflows to inf in json.loads
        ('{"score": "NaN"}', "input 'score' (float): Input should be a finite number, got 'NaN'"),
        ('{"score": "-inf"}', "input 'score' (float): Input should be a finite number, got '-inf'"),
        ('{"scores": [1, NaN]}', "input 'scores[1]': NaN is not a finite number"),
        ('{"weights": {"a": Infinity}}', "input 'weights.a': Infinity is not a finite number"),
        ('{"meta": {"deep": [{"x": NaN}]}}', "input 'meta.deep[0].x': NaN is not a finite number"),
        ('{"anything": [-Infinity]}', "input 'anything[0]': -Infinity is not a finite number"),
        ('{"profile": {"weight": NaN}}', "input 'profile.weight': NaN is not a finite number"),
    ],
)
def test_a_trigger_payload_with_nan_or_infinity_is_an_input_error(spec: FlowSpec, payload: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        initial_state(spec, json.loads(payload))
    assert info.value.problems == [
        problem if "(float)" in problem else f"{problem} (NaN and Infinity are not JSON numbers)"
    ]


def test_every_non_finite_input_is_reported_at_once(spec: FlowSpec) -> None:
    with pytest.raises(InputError) as info:
        initial_state(spec, json.loads('{"score": NaN, "scores": [Infinity, 2, -Infinity]}'))
    assert [p.split(":")[0] for p in info.value.problems] == ["input 'score'", "input 'scores[0]'", "input 'scores[2]'"]


def test_finite_numbers_still_pass(spec: FlowSpec) -> None:
    state = initial_state(spec, {"score": 0.5, "scores": [1, 2.5], "meta": {"x": 1e308}, "profile": {"weight": 3}})
    assert (state["score"], state["scores"], state["meta"], state["profile"]) == (
        0.5,
        [1.0, 2.5],
        {"x": 1e308},
        {"weight": 3.0},
    )


def test_a_payload_nested_past_the_depth_limit_is_an_input_error_not_a_crash(spec: FlowSpec) -> None:
    deep: Any = []
    for _ in range(50_000):  # json.loads would refuse it, but any caller may hand initial_state such a value
        deep = [deep]
    with pytest.raises(InputError) as info:
        initial_state(spec, {"anything": deep})
    assert info.value.problems == [f"input 'anything{'[0]' * 7}...': nested more than {MAX_INPUT_DEPTH} levels deep"]


def test_nan_deep_inside_a_payload_is_named_by_a_shortened_path(spec: FlowSpec) -> None:
    deep: Any = [float("nan")]
    for _ in range(MAX_INPUT_DEPTH - 3):
        deep = [deep]
    with pytest.raises(InputError, match=r"input 'anything\[0\]\[0\].*….*\[0\]': NaN is not a finite number"):
        initial_state(spec, {"anything": deep})


@pytest.mark.parametrize("default", [".nan", ".inf", "-.inf"])
def test_a_non_finite_default_in_a_flow_file_is_a_config_error(default: str) -> None:
    with pytest.raises(ConfigError, match=r"state\.fields\.score\.default: default .* does not fit type float"):
        load_flow_text(FLOW.replace("score: {type: float}", f"score: {{type: float, default: {default}}}"), "f.yaml")


def test_an_llm_answer_with_nan_is_sent_back_as_an_output_error(spec: FlowSpec) -> None:
    with pytest.raises(OutputError, match="finite number"):
        validate_output(spec, spec.nodes[0], json.loads('{"score": NaN}'))
