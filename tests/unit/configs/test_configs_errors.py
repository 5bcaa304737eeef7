"""Invalid flow files are rejected with every problem located by file, line, column and key path."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from configs import ConfigError, ConfigIssue, load_flow, load_flow_text

HEADER = """\
schema_version: "1.0"
flow:
  name: demo
state:
  fields:
    topic: {type: str, required: true}
    profile:
      type: object
      schema:
        bio: str
        tags: list[str]
    summary: {type: str, default: ""}
    done: {type: bool, default: false}
    items: {type: "list[str]", default: []}
"""
# HEADER is 14 lines; what tests append starts on line 15.


def issues_of(text: str, file: str = "flow.yaml") -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_flow_text(text, file)
    return info.value.issues


def errors_of(text: str) -> list[ConfigIssue]:
    return [issue for issue in issues_of(text) if issue.severity == "error"]


def only_error(text: str) -> ConfigIssue:
    errors = errors_of(text)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def flow(body: str) -> str:
    return HEADER + dedent(body)


def test_malformed_yaml_reports_the_parser_position_not_a_traceback() -> None:
    issue = only_error("schema_version: '1.0'\nnodes: [1, 2\nedges: []\n")
    assert (issue.line, issue.column) == (3, 6)
    assert issue.message.startswith("invalid YAML")
    assert str(issue).startswith("flow.yaml:3:6: error: invalid YAML")


def test_top_level_list_is_a_clear_error() -> None:
    issue = only_error("- a\n- b\n")
    assert "top level must be a mapping" in issue.message
    assert "got a list" in issue.message


def test_missing_required_keys_are_all_reported() -> None:
    errors = errors_of('schema_version: "1.0"\nflow: {description: x}\n')
    paths = {issue.path for issue in errors}
    assert {"flow.name", "nodes", "edges"} <= paths
    name = next(issue for issue in errors if issue.path == "flow.name")
    assert (name.line, name.column) == (2, 1)  # falls back to the nearest existing key
    assert "missing required key 'name'" in name.message


def test_unsupported_schema_version_names_the_valid_ones() -> None:
    text = flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """).replace('"1.0"', '"2.0"')
    issue = only_error(text)
    assert (issue.line, issue.column, issue.path) == (1, 1, "schema_version")
    assert "valid versions: 1.0" in issue.message


def test_missing_edge_target_suggests_the_closest_node() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "About {state.topic}", outputs: [summary]}
        edges:
          - {from: START, to: wrte}
          - {from: write, to: END}
        """)
    )
    assert (issue.line, issue.column) == (18, 19)
    assert issue.path == "edges[0].to"
    assert "unknown target 'wrte'" in issue.message
    assert issue.suggestion == "write"
    assert str(issue).endswith("(did you mean 'write'?)")


def test_unknown_edge_source_suggests_the_closest_node() -> None:
    errors = errors_of(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: writ, to: END}
        """)
    )
    source = next(issue for issue in errors if issue.path == "edges[1].from")
    assert source.suggestion == "write"
    assert (source.line, source.column) == (19, 6)


def test_output_that_is_not_a_state_field_suggests_the_closest_field() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: write
            prompt: "x"
            outputs: [sumary]
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert (issue.line, issue.column, issue.path) == (18, 15, "nodes[0].outputs[0]")
    assert "output 'sumary' is not a state field" in issue.message
    assert issue.suggestion == "summary"


def test_output_type_that_does_not_fit_the_state_field_is_an_error() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: check
            prompt: "x"
            outputs: [done]
            output_schema:
              type: object
              fields:
                - {name: done, type: str}
        edges:
          - {from: START, to: check}
          - {from: check, to: END}
        """)
    )
    assert issue.path == "nodes[0].output_schema.fields[0].type"
    assert issue.line == 22
    assert "str does not fit bool" in issue.message


def test_nested_output_type_mismatch_names_the_nested_field() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: gen
            prompt: "x"
            outputs: [profile]
            output_schema:
              type: object
              fields:
                - name: profile
                  type: object
                  schema: {bio: str, tags: "list[int]"}
        edges:
          - {from: START, to: gen}
          - {from: gen, to: END}
        """)
    )
    assert issue.path == "nodes[0].output_schema.fields[0].type"
    assert issue.line == 23
    assert "tags" in issue.message
    assert "int does not fit str" in issue.message


def test_output_schema_field_missing_from_the_state_schema_suggests_the_state_name() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: gen
            prompt: "x"
            outputs: [profile]
            output_schema:
              type: object
              fields:
                - {name: profile, type: object, schema: {bioo: str, tags: "list[str]"}}
        edges:
          - {from: START, to: gen}
          - {from: gen, to: END}
        """)
    )
    assert "field 'bio' (str) is missing" in issue.message


def test_output_schema_fields_must_match_outputs() -> None:
    errors = errors_of(
        flow("""\
        nodes:
          - id: write
            prompt: "x"
            outputs: [summary]
            output_schema:
              type: object
              fields:
                - {name: summry, type: str}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    by_path = {issue.path: issue for issue in errors}
    assert by_path["nodes[0].output_schema.fields[0].name"].suggestion == "summary"
    assert "has no field in output_schema" in by_path["nodes[0].outputs[0]"].message


def test_unresolved_deep_placeholder_points_into_the_prompt_and_suggests_the_field() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: write
            prompt: "Bio: {state.profile.bioo}"
            outputs: [summary]
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert issue.path == "nodes[0].prompt"
    assert (issue.line, issue.column) == (17, 19)
    assert "{state.profile.bioo}" in issue.message
    assert issue.suggestion == "bio"


def test_unresolved_placeholder_in_a_literal_block_is_located_exactly() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: write
            prompt: |
              First line about {topic}.
                Then {state.profile.tags.first} here.
            outputs: [summary]
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert (issue.line, issue.column) == (19, 14)
    assert "tags" in issue.message
    assert "use an index" in issue.message


def test_bare_placeholder_typo_suggests_the_state_field() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "About {topik}", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert issue.suggestion == "topic"
    assert "'topik' is not a state field" in issue.message


def test_item_is_only_allowed_in_parallel_targets() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "About {item}", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert "{item} is only available" in issue.message


def test_format_specs_in_placeholders_are_rejected() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "About {topic!r}", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert "format specs and conversions are not supported" in issue.message


def test_node_inputs_must_resolve_to_state_paths() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: write
            prompt: "Bio: {b}"
            inputs: {b: state.profile.bioo}
            outputs: [summary]
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert issue.path == "nodes[0].inputs.b"
    assert issue.suggestion == "bio"


def test_unreachable_node_is_named() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
          - {id: orphan, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
          - {from: orphan, to: END}
        """)
    )
    assert (issue.line, issue.path) == (17, "nodes[1].id")
    assert issue.message == "node 'orphan' is not reachable from START"


def test_node_that_cannot_reach_end_is_named() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: a, prompt: "x", outputs: [summary]}
          - {id: b, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: a}
          - {from: a, to: [b, END]}
          - {from: b, to: b}
        """)
    )
    assert issue.path == "nodes[1].id"
    assert "node 'b' cannot reach END" in issue.message


def test_routes_without_a_default_route_are_an_error() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - from: write
            routes:
              - condition: {logic: "state.done"}
                to: END
        """)
    )
    assert issue.path == "edges[1].routes"
    assert (issue.line, issue.column) == (20, 5)
    assert "routes need a default route" in issue.message
    assert "- condition: {logic: default}" in issue.message


def test_edge_with_two_kinds_is_an_error() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary, done]}
        edges:
          - {from: START, to: write}
          - from: write
            to: END
            loop: {max_iterations: 2, condition_field: done, exit_to: END}
        """)
    )
    assert (issue.line, issue.column, issue.path) == (19, 5, "edges[1]")
    assert "edge has to and loop" in issue.message
    assert "exactly one of to, routes, loop, parallel" in issue.message


def test_loop_condition_field_must_be_a_bool_state_field() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - from: write
            loop: {max_iterations: 2, condition_field: summary, exit_to: END}
        """)
    )
    assert issue.path == "edges[1].loop.condition_field"
    assert "it must be a bool field" in issue.message


def test_parallel_fields_must_be_list_state_fields() -> None:
    errors = errors_of(
        flow("""\
        nodes:
          - {id: plan, prompt: "x", outputs: [items]}
          - {id: each, prompt: "{item} #{index}", outputs: [summary]}
        edges:
          - {from: START, to: plan}
          - from: plan
            parallel: {items_field: itemz, target_node: each, collect_field: summary}
          - {from: each, to: END}
        """)
    )
    by_path = {issue.path: issue for issue in errors}
    assert by_path["edges[1].parallel.items_field"].suggestion == "items"
    assert "it must be a list field" in by_path["edges[1].parallel.collect_field"].message


def test_bad_type_string_lists_the_valid_forms() -> None:
    text = flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """).replace('type: "list[str]"', 'type: "lst[str]"')
    issue = only_error(text)
    assert (issue.line, issue.path) == (14, "state.fields.items.type")
    assert "unknown type 'lst'" in issue.message
    assert "list[T]" in issue.message
    assert issue.suggestion == "list"


def test_default_that_does_not_fit_its_type_is_an_error() -> None:
    text = flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """).replace("default: false", "default: maybe")
    issue = only_error(text)
    assert issue.path == "state.fields.done.default"
    assert "does not fit type bool" in issue.message


@pytest.mark.parametrize(("node_id", "bad"), [("a.b", "."), ("a b", " "), ("a*", "*")])
def test_node_ids_must_be_nats_subject_tokens(node_id: str, bad: str) -> None:
    issue = only_error(
        flow(f"""\
        nodes:
          - {{id: "{node_id}", prompt: "x", outputs: [summary]}}
        edges:
          - {{from: START, to: "{node_id}"}}
          - {{from: "{node_id}", to: END}}
        """)
    )
    assert issue.path == "nodes[0].id"
    assert f"{bad!r} is not allowed" in issue.message


def test_reserved_and_duplicate_node_ids_are_errors() -> None:
    errors = errors_of(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: [summary]}
          - {id: write, prompt: "x", outputs: [summary]}
          - {id: END, prompt: "x", outputs: [summary]}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    messages = [issue.message for issue in errors]
    assert any("duplicate node id 'write'" in m for m in messages)
    assert any("'END' is reserved" in m for m in messages)


def test_all_errors_are_reported_at_once_in_file_order() -> None:
    with pytest.raises(ConfigError) as info:
        load_flow_text(
            flow("""\
                nodes:
                  - {id: write, prompt: "About {topik}", outputs: [sumary]}
                edges:
                  - {from: START, to: wrte}
                  - {from: write, to: END}
                """),
            "multi.yaml",
        )
    errors = [issue for issue in info.value.issues if issue.severity == "error"]
    assert [issue.path for issue in errors] == ["nodes[0].prompt", "nodes[0].outputs[0]", "edges[0].to"]
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid flow file multi.yaml: 3 errors"
    assert all(line.startswith("multi.yaml:") for line in lines[1:])


def test_an_unknown_key_is_an_error_located_with_the_closest_known_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_flow_text(
            flow("""\
            nodes:
              - id: write
                promt: "x"
                outputs: [summary]
            edges:
              - {from: START, to: write}
              - {from: write, to: END}
            """)
        )
    [issue] = caught.value.issues
    assert issue.severity == "error"
    assert (issue.line, issue.column, issue.path) == (17, 5, "nodes[0].promt")
    assert issue.message == "unknown key 'promt' in nodes[0]"
    assert issue.suggestion == "prompt"


def test_extension_keys_are_kept_without_warnings() -> None:
    loaded = load_flow_text(
        flow("""\
        triggers: [{kind: cron, every: 1h}]
        budget: {max_cost_usd: 1}
        nodes:
          - id: write
            prompt: "x {memory}"
            outputs: [summary]
            memory: true
            retry: {max_attempts: 2}
            timeout_s: 30
            llm: {model: m, top_p: 0.5}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        config:
          observability: {mlflow: true}
          sandbox: {mode: docker, image: python}
        """)
    )
    # Triggers are kept, with a warning that this version does not serve them.
    assert [w.path for w in loaded.warnings] == ["triggers"]
    assert loaded.spec.config.observability is not None
    assert loaded.spec.config.observability.mlflow is not None
    assert loaded.spec.config.observability.mlflow.enabled
    assert loaded.spec.triggers == [{"kind": "cron", "every": "1h"}]
    assert loaded.spec.nodes[0].timeout_s == 30
    assert loaded.spec.nodes[0].llm is not None
    assert (loaded.spec.nodes[0].llm.model_extra or {}) == {"top_p": 0.5}


def test_node_without_outputs_is_a_warning() -> None:
    loaded = load_flow_text(
        flow("""\
        nodes:
          - {id: notify, prompt: "x"}
        edges:
          - {from: START, to: notify}
          - {from: notify, to: END}
        """)
    )
    assert [w.message for w in loaded.warnings] == [
        "node 'notify' has no outputs; its answer is not stored in the state"
    ]


def test_load_flow_reports_an_unreadable_file_as_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_flow(missing)
    assert info.value.issues[0].file == str(missing)
    assert "cannot read the file" in info.value.issues[0].message


def test_load_flow_names_the_file_in_issues(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("nodes: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_flow(path)
    assert str(info.value.issues[0]).startswith(f"{path}:")
    assert isinstance(info.value, ValueError)


def test_duplicate_keys_are_warnings_naming_the_key() -> None:
    loaded = load_flow_text(
        flow("""\
        nodes:
          - id: write
            prompt: "x"
            prompt: "y"
            outputs: [summary]
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert [(w.line, w.path, w.message) for w in loaded.warnings] == [
        (18, "nodes[0].prompt", "duplicate key 'prompt' in nodes[0]")
    ]
    assert loaded.spec.nodes[0].prompt == "y"


def test_scalar_output_schema_with_several_outputs_is_an_error() -> None:
    issue = only_error(
        flow("""\
        nodes:
          - id: write
            prompt: "x"
            outputs: [summary, done]
            output_schema: {type: str}
        edges:
          - {from: START, to: write}
          - {from: write, to: END}
        """)
    )
    assert issue.path == "nodes[0].output_schema.type"
    assert "needs exactly one output, got 2" in issue.message


def test_wrong_value_types_are_reported_by_key_path() -> None:
    errors = errors_of(
        flow("""\
        nodes:
          - {id: write, prompt: "x", outputs: summary}
        edges:
          - {from: START, to: write}
          - from: write
            loop: {max_iterations: 0, condition_field: done, exit_to: END}
        """)
    )
    by_path = {issue.path: issue for issue in errors}
    assert "valid list" in by_path["nodes[0].outputs"].message
    assert (by_path["nodes[0].outputs"].line, by_path["nodes[0].outputs"].column) == (16, 30)
    assert "greater than or equal to 1" in by_path["edges[1].loop.max_iterations"].message
