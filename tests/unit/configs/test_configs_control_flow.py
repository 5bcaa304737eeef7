"""Control flow in flow files: routes with conditions, bounded cycles, fan-outs and joins, maps, failures."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent, indent

import pytest

from configs import (
    ConfigError,
    ConfigIssue,
    ExprError,
    FanOutInfo,
    FlowSpec,
    MapInfo,
    analyze_graph,
    load_flow,
    load_flow_text,
    parse_expr,
)

SEEDS = Path("/work/shared/seed-configs")
STATE = """\
topic: {type: str, required: true}
score: {type: float, default: 0.0}
draft: {type: str, default: ""}
done: {type: bool, default: false}
notes: {type: "list[str]", default: []}
angles: {type: "list[str]", default: []}
profile: {type: object, schema: {bio: str}}
"""


def flow(body: str, fields: str = "") -> str:
    state = indent(STATE + dedent(fields), "    ")
    return f'schema_version: "1.0"\nflow:\n  name: demo\nstate:\n  fields:\n{state}' + dedent(body)


def errors_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_flow_text(text, "flow.yaml")
    return [issue for issue in info.value.issues if issue.severity == "error"]


def only_error(text: str) -> ConfigIssue:
    errors = errors_of(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def graph_flow(node_ids: str, edges: str) -> FlowSpec:
    """A flow whose nodes each write their own str field `<id>_out`."""
    ids = node_ids.split()
    fields = "".join(f'{node}_out: {{type: str, default: ""}}\n' for node in ids)
    nodes = "".join(f'  - {{id: {node}, prompt: "x", outputs: [{node}_out]}}\n' for node in ids)
    return load_flow_text(flow(f"nodes:\n{nodes}edges:\n{indent(dedent(edges), '  ')}", fields)).spec


ROUTES = """\
nodes:
  - {{id: score, prompt: "x", outputs: [score]}}
  - {{id: write, prompt: "x", outputs: [draft]}}
edges:
  - {{from: START, to: score}}
  - from: score
    routes:
{routes}
  - {{from: write, to: END}}
"""


def routes(*lines: str) -> str:
    return flow(ROUTES.format(routes="\n".join(f"      {line}" for line in lines)))


# Routes and conditions


def test_routes_without_a_default_route_are_an_error() -> None:
    issue = only_error(routes('- {condition: {logic: "score > 1"}, to: write}'))
    assert issue.path == "edges[1].routes"
    assert "routes need a default route" in issue.message


def test_two_default_routes_are_an_error() -> None:
    issue = only_error(routes("- {condition: {logic: default}, to: write}", "- {condition: {logic: default}, to: END}"))
    assert issue.path == "edges[1].routes[1].condition.logic"
    assert "exactly one default route" in issue.message


def test_the_default_route_cannot_have_max_iterations() -> None:
    issue = only_error(routes("- {condition: {logic: default}, to: write, max_iterations: 2}"))
    assert issue.path == "edges[1].routes[0].max_iterations"
    assert "default route cannot have max_iterations" in issue.message


def test_bad_expression_is_located_at_its_line_and_column_inside_the_value() -> None:
    text = routes('- {condition: {logic: "state.score > )"}, to: write}', "- {condition: {logic: default}, to: END}")
    issue = only_error(text)
    line = text.splitlines()[issue.line - 1]
    assert issue.path == "edges[1].routes[0].condition.logic"
    assert issue.column == line.index(")") + 1
    assert "unexpected ')' at column 15 of the expression" in issue.message
    assert str(issue).startswith(f"flow.yaml:{issue.line}:{issue.column}: error: edges[1].routes[0].condition.logic:")


def test_unknown_field_in_an_expression_suggests_the_closest_state_field() -> None:
    text = routes(
        '- {condition: {logic: "done and scroe > 0.5"}, to: write}', "- {condition: {logic: default}, to: END}"
    )
    issue = only_error(text)
    assert "unknown path state.scroe at column 10 of the expression" in issue.message
    assert issue.suggestion == "score"
    assert text.splitlines()[issue.line - 1][issue.column - 1 :].startswith("scroe")


def test_nested_path_in_an_expression_is_checked_against_the_object_schema() -> None:
    text = routes(
        "- {condition: {logic: \"profile.bioo == 'x'\"}, to: write}", "- {condition: {logic: default}, to: END}"
    )
    issue = only_error(text)
    assert "has no field 'bioo'" in issue.message
    assert issue.suggestion == "bio"


def test_item_in_a_route_condition_is_an_error() -> None:
    issue = only_error(
        routes('- {condition: {logic: "item > 1"}, to: write}', "- {condition: {logic: default}, to: END}")
    )
    assert "'item' at column 1 of the expression is only available in map nodes" in issue.message


def test_refused_construct_in_a_condition_is_an_error() -> None:
    issue = only_error(
        routes("- {condition: {logic: \"__import__('os')\"}, to: write}", "- {condition: {logic: default}, to: END}")
    )
    assert "calling '__import__'" in issue.message


def test_condition_expr_is_parsed_and_the_default_route_has_none() -> None:
    spec = load_flow(SEEDS / "review_loop.yaml").spec
    route, default = spec.edges[4].routes or []
    assert route.condition.expr is parse_expr("state.score >= 0.8")
    assert route.condition.expr.evaluate({"score": 0.9}) is True
    assert default.condition.is_default
    with pytest.raises(ExprError, match="default route has no expression"):
        _ = default.condition.expr


# Cycles

CYCLE = """\
nodes:
  - {{id: a, prompt: "x", outputs: [score]}}
  - {{id: b, prompt: "x", outputs: [draft]}}
edges:
  - {{from: START, to: a}}
  - from: a
    routes:
      - {{condition: {{logic: "score < 0.5"}}, to: b{bound}}}
      - {{condition: {{logic: default}}, to: END}}
  - {{from: b, to: a}}
"""


def test_unbounded_cycle_through_routes_is_named() -> None:
    issue = only_error(flow(CYCLE.format(bound="")))
    assert "unbounded cycle a → b → a: add max_iterations to one of its routes" in issue.message
    assert issue.path == "edges[1].from"


def test_the_same_cycle_is_valid_with_max_iterations_on_a_route() -> None:
    loaded = load_flow_text(flow(CYCLE.format(bound=", max_iterations: 3")))
    assert loaded.spec.edges[1].routes is not None
    assert loaded.spec.edges[1].routes[0].max_iterations == 3


def test_a_cycle_of_plain_edges_is_unbounded_even_with_a_loop_elsewhere() -> None:
    text = flow("""\
        nodes:
          - {id: a, prompt: "x", outputs: [done]}
          - {id: b, prompt: "x", outputs: [draft]}
        edges:
          - {from: START, to: a}
          - from: a
            loop: {max_iterations: 2, condition_field: done, exit_to: b}
          - from: b
            routes:
              - {condition: {logic: "len(draft) < 3"}, to: a}
              - {condition: {logic: default}, to: END}
        """)
    issue = only_error(text)
    assert "unbounded cycle a → b → a" in issue.message


def test_seed_review_loop_is_bounded_by_its_self_loop() -> None:
    assert load_flow(SEEDS / "review_loop.yaml").warnings == []


# Fan-outs and joins

DIAMOND = """\
nodes:
  - {{id: a, prompt: "x", outputs: [draft]}}
  - {{id: b, prompt: "x", outputs: [{b_out}]}}
  - {{id: c, prompt: "x", outputs: [{c_out}]}}
  - {{id: d, prompt: "x", outputs: [done]}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: [b, c]}}
  - {{from: b, to: d}}
  - {{from: c, to: d}}
  - {{from: d, to: END}}
"""


def test_two_branches_writing_one_field_without_a_reducer_is_a_join_conflict() -> None:
    issue = only_error(flow(DIAMOND.format(b_out="score", c_out="score")))
    assert issue.path == "nodes[2].outputs[0]"
    assert "join conflict at 'd'" in issue.message
    assert "'score' is written by 'b' (branch 0) and 'c' (branch 1) of the fan-out from 'a'" in issue.message
    assert "declare a reducer (append, extend, merge, max, min, sum)" in issue.message


def test_a_reducer_resolves_the_join_conflict() -> None:
    fields = "total: {type: float, default: 0.0, reducer: max}\n"
    spec = load_flow_text(flow(DIAMOND.format(b_out="total", c_out="total"), fields)).spec
    assert spec.state.fields["total"].reducer == "max"


def test_branch_node_with_routes_breaks_the_branch_rule() -> None:
    text = flow("""\
        nodes:
          - {id: a, prompt: "x", outputs: [draft]}
          - {id: b, prompt: "x", outputs: [score]}
          - {id: c, prompt: "x", outputs: [done]}
          - {id: d, prompt: "x", outputs: [topic]}
        edges:
          - {from: START, to: a}
          - {from: a, to: [b, c]}
          - from: b
            routes:
              - {condition: {logic: "score > 1"}, to: d}
              - {condition: {logic: default}, to: END}
          - {from: c, to: d}
          - {from: d, to: END}
        """)
    issue = only_error(text)
    assert issue.path == "edges[2].from"
    assert "node 'b' is in a branch of the fan-out from 'a' and has a routes edge" in issue.message
    assert "only single-target `to` edges" in issue.message


def test_several_fan_outs_may_not_all_end_at_end() -> None:
    text = flow("""\
        nodes:
          - {id: a, prompt: "x", outputs: [draft]}
          - {id: b, prompt: "x", outputs: [score]}
        edges:
          - {from: START, to: [a, b]}
          - {from: a, to: [END, END]}
          - {from: b, to: END}
        """)
    messages = [issue.message for issue in errors_of(text)]
    assert any("fan-out target 'END' is listed twice" in message for message in messages)


def test_branch_node_reached_from_outside_its_branch_is_an_error() -> None:
    text = flow("""\
        nodes:
          - {id: a, prompt: "x", outputs: [draft]}
          - {id: b, prompt: "x", outputs: [score]}
          - {id: c, prompt: "x", outputs: [done]}
        edges:
          - {from: START, to: [a, b]}
          - {from: a, to: c}
          - {from: b, to: c}
          - from: c
            routes:
              - {condition: {logic: done, max_iterations: 1}, to: b}
              - {condition: {logic: default}, to: END}
        """)
    messages = [issue.message for issue in errors_of(text)]
    assert any(
        "node 'b' is in branch 1 of the fan-out from 'START' but is also reached from 'c'" in m for m in messages
    )


# Reducers

REDUCED = """\
nodes:
  - id: a
    prompt: "x"
    outputs: [{output}]
    output_schema: {{type: object, fields: [{{name: {output}, type: {type}}}]}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: END}}
"""


def test_append_takes_one_item_of_the_list_field() -> None:
    text = flow(REDUCED.format(output="log", type="str"), 'log: {type: "list[str]", default: [], reducer: append}\n')
    spec = load_flow_text(text).spec
    assert spec.state.fields["log"].reducer == "append"


def test_append_output_of_the_wrong_item_type_is_an_error() -> None:
    text = flow(REDUCED.format(output="log", type="int"), 'log: {type: "list[str]", default: [], reducer: append}\n')
    issue = only_error(text)
    assert "output 'log' (int) does not fit state field 'log' (list[str], reducer append)" in issue.message


def test_without_append_an_item_output_does_not_fit_a_list_field() -> None:
    text = flow(REDUCED.format(output="log", type="str"), 'log: {type: "list[str]", default: []}\n')
    assert "does not fit state field 'log' (list[str])" in only_error(text).message


def test_extend_needs_a_list_output() -> None:
    text = flow(REDUCED.format(output="log", type="str"), 'log: {type: "list[str]", default: [], reducer: extend}\n')
    assert "reducer extend" in only_error(text).message


def test_reducer_must_fit_the_field_type() -> None:
    text = flow(REDUCED.format(output="log", type="str"), 'log: {type: str, default: "", reducer: sum}\n')
    issue = only_error(text)
    assert issue.path == "state.fields.log.reducer"
    assert "reducer 'sum' needs a int or float field; state field 'log' is str" in issue.message


def test_unknown_reducer_lists_the_valid_ones() -> None:
    text = flow(REDUCED.format(output="log", type="str"), 'log: {type: "list[str]", default: [], reducer: apend}\n')
    issue = only_error(text)
    assert issue.path == "state.fields.log.reducer"
    assert "'append', 'extend', 'merge', 'max', 'min' or 'sum'" in issue.message


# foreach, on_error, retry

FOREACH = """\
nodes:
  - {{id: plan, prompt: "x", outputs: [angles]}}
  - id: research
    prompt: "{prompt}"
    outputs: [draft]
    foreach: {foreach}
  - {{id: write, prompt: "{{notes}}", outputs: [summary]}}
edges:
  - {{from: START, to: plan}}
  - {{from: plan, to: research}}
  - {{from: research, to: write}}
  - {{from: write, to: END}}
"""
SUMMARY = 'summary: {type: str, default: ""}\n'


def test_foreach_node_may_use_its_item_name_and_index() -> None:
    body = FOREACH.format(
        prompt="{angle} ({index}) {item} on {topic}",
        foreach="{items: state.angles, as: angle, collect: notes, max_concurrency: 2}",
    )
    spec = load_flow_text(flow(body, SUMMARY)).spec
    each = spec.node("research").foreach
    assert each is not None
    assert (each.items, each.as_, each.collect, each.max_concurrency) == ("state.angles", "angle", "notes", 2)


def test_foreach_errors_are_all_reported() -> None:
    body = FOREACH.format(prompt="{angle}", foreach="{items: state.topic, as: topic, collect: notse}")
    errors = {issue.path: issue for issue in errors_of(flow(body, SUMMARY))}
    assert "items 'state.topic' is str; it must be a list" in errors["nodes[1].foreach.items"].message
    assert "as 'topic' is a state field" in errors["nodes[1].foreach.as"].message
    assert errors["nodes[1].foreach.collect"].suggestion == "notes"
    assert "{angle}" in errors["nodes[1].prompt"].message


def test_foreach_on_a_parallel_target_is_an_error() -> None:
    body = FOREACH.format(prompt="{item}", foreach="{items: angles, collect: notes}").replace(
        "{from: plan, to: research}",
        "{from: plan, parallel: {items_field: angles, target_node: research, collect_field: notes}}",
    )
    issue = only_error(flow(body, SUMMARY))
    assert issue.path == "nodes[1].foreach"
    assert "has a foreach and is also the target_node of a parallel edge" in issue.message


ON_ERROR = """\
nodes:
  - {{id: a, prompt: "x", outputs: [draft], on_error: {target}, retry: {{max_attempts: 2, on: [{kind}]}}, timeout_s: 5}}
  - {{id: fallback, prompt: "Failed: {{error}}", outputs: [draft]}}
edges:
  - {{from: START, to: a}}
  - {{from: a, to: END}}
  - {{from: fallback, to: END}}
"""


def test_on_error_target_is_reachable_and_may_use_the_error() -> None:
    spec = load_flow_text(flow(ON_ERROR.format(target="fallback", kind="timeout"))).spec
    node = spec.node("a")
    assert node.on_error == "fallback"
    assert node.retry is not None
    assert (node.retry.max_attempts, node.retry.backoff_ms, node.retry.on) == (2, 500, ["timeout"])


def test_on_error_naming_an_unknown_node_suggests_the_closest() -> None:
    errors = errors_of(flow(ON_ERROR.format(target="fallbak", kind="timeout")))
    by_path = {issue.path: issue for issue in errors}
    assert by_path["nodes[0].on_error"].suggestion == "fallback"
    assert "{error} is only available in a node that is another node's on_error target" in (
        by_path["nodes[1].prompt"].message
    )


def test_retry_on_values_must_be_failure_kinds() -> None:
    issue = only_error(flow(ON_ERROR.format(target="fallback", kind="crash")))
    assert issue.path.startswith("nodes[0].retry.on")
    assert "'llm_error', 'timeout' or 'bad_output'" in issue.message


# analyze_graph


def test_review_loop_has_one_map_and_no_fan_outs() -> None:
    graph = analyze_graph(load_flow(SEEDS / "review_loop.yaml").spec)
    assert dict(graph.maps) == {"research": MapInfo("research", ("angles",), "item", None, "notes")}
    assert dict(graph.fanouts) == {}
    assert dict(graph.joins) == {}


def test_diamond_fans_out_to_two_branches_joining_at_d() -> None:
    spec = graph_flow(
        "a b c d",
        "- {from: START, to: a}\n- {from: a, to: [b, c]}\n- {from: b, to: d}\n"
        "- {from: c, to: d}\n- {from: d, to: END}\n",
    )
    graph = analyze_graph(spec)
    assert dict(graph.fanouts) == {"a": FanOutInfo("a", (("b",), ("c",)), "d")}
    assert dict(graph.joins) == {"d": "a"}
    assert dict(graph.branch_of) == {"b": ("a", 0), "c": ("a", 1)}
    assert analyze_graph(spec) is graph


def test_uneven_branches_keep_their_nodes_in_order() -> None:
    spec = graph_flow(
        "a b b2 c d",
        "- {from: START, to: a}\n- {from: a, to: [b, c]}\n- {from: b, to: b2}\n"
        "- {from: b2, to: d}\n- {from: c, to: d}\n- {from: d, to: END}\n",
    )
    graph = analyze_graph(spec)
    assert graph.fanouts["a"] == FanOutInfo("a", (("b", "b2"), ("c",)), "d")
    assert dict(graph.branch_of) == {"b": ("a", 0), "b2": ("a", 0), "c": ("a", 1)}


def test_branches_may_join_at_end() -> None:
    spec = graph_flow(
        "a b c", "- {from: START, to: a}\n- {from: a, to: [b, c]}\n- {from: b, to: END}\n- {from: c, to: END}\n"
    )
    graph = analyze_graph(spec)
    assert graph.fanouts["a"] == FanOutInfo("a", (("b",), ("c",)), "END")
    assert dict(graph.joins) == {"END": "a"}


def test_a_fan_out_target_that_is_the_join_has_an_empty_branch() -> None:
    spec = graph_flow(
        "s a j", "- {from: START, to: s}\n- {from: s, to: [a, j]}\n- {from: a, to: j}\n- {from: j, to: END}\n"
    )
    graph = analyze_graph(spec)
    assert graph.fanouts["s"] == FanOutInfo("s", (("a",), ()), "j")
    assert dict(graph.branch_of) == {"a": ("s", 0)}


def test_foreach_node_is_a_map_with_its_own_item_name() -> None:
    body = FOREACH.format(
        prompt="{angle}", foreach="{items: state.angles, as: angle, collect: notes, max_concurrency: 3}"
    )
    graph = analyze_graph(load_flow_text(flow(body, SUMMARY)).spec)
    assert dict(graph.maps) == {"research": MapInfo("research", ("angles",), "angle", 3, "notes")}


def test_a_node_inside_a_fan_out_branch_cannot_take_on_error() -> None:
    ids = "a b c d h"
    fields = "".join(f'{node}_out: {{type: str, default: ""}}\n' for node in ids.split())
    nodes = "".join(
        f'  - {{id: {node}, prompt: "x", outputs: [{node}_out]{", on_error: h" if node == "b" else ""}}}\n'
        for node in ids.split()
    )
    edges = """\
- {from: START, to: a}
- {from: a, to: [b, c]}
- {from: b, to: d}
- {from: c, to: d}
- {from: d, to: END}
- {from: h, to: END}
"""
    issue = only_error(flow(f"nodes:\n{nodes}edges:\n{indent(edges, '  ')}", fields))
    assert issue.path == "nodes[1].on_error"
    assert "cannot take on_error" in issue.message
