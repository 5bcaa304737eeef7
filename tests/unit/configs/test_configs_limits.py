"""Hostile flow files are refused quickly with a located ConfigError: alias bombs, deep nesting, huge files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from configs import ConfigError, ConfigIssue, load_flow, load_flow_text
from configs._yaml import MAX_ALIASES, MAX_BYTES, MAX_CHARS, MAX_DEPTH, MAX_VALUES
from tests.conftest import ROOT, SEEDS

HEADER = 'schema_version: "1.0"\nflow: {name: demo}\nstate: {fields: {topic: {type: str}}}\n'
FLOW = (
    HEADER
    + "nodes:\n  - {id: a, prompt: 'on {topic}', outputs: [topic]}\nedges:\n  - {from: START, to: a}\n"
    + "  - {from: a, to: END}\n"
)


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: each level is a list of nine aliases to the level below (9^levels values)."""
    lines = ['lol0: &lol0 "lol"']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return HEADER + "x-bomb:\n" + "".join(f"  {line}\n" for line in lines)


def only_issue(text: str, file: str = "flow.yaml") -> ConfigIssue:
    with pytest.raises(ConfigError) as info:
        load_flow_text(text, file)
    (issue,) = info.value.issues
    return issue


def test_a_billion_laughs_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit() -> None:
    text = billion_laughs()
    assert len(text.encode()) < 1_000  # the attack is a small file
    issue = only_issue(text)
    assert f"expand to more than {MAX_VALUES} values" in issue.message
    assert "aliases are counted each time they are used" in issue.message
    # Located on the line of the alias that crossed the limit, past the header.
    assert issue.line > HEADER.count("\n")
    assert text.splitlines()[issue.line - 1][issue.column - 1] == "*"


def test_a_short_string_aliased_into_a_huge_one_is_refused_by_its_expanded_size() -> None:
    big = "y" * 200_000
    text = HEADER + f"x-big: &big {big}\nx-copies: [{', '.join(['*big'] * 60)}]\n"
    issue = only_issue(text)
    assert f"expand to more than {MAX_CHARS} characters" in issue.message


def test_too_many_aliases_are_refused() -> None:
    text = HEADER + "x-one: &one 1\nx-many: [" + ", ".join(["*one"] * (MAX_ALIASES + 1)) + "]\n"
    assert f"more than {MAX_ALIASES} aliases" in only_issue(text).message


@pytest.mark.parametrize("text", ["x: &a [*a]\n", "x: &a\n  b: *a\n"])
def test_a_recursive_alias_is_refused(text: str) -> None:
    issue = only_issue(HEADER + text)
    assert "refers to the collection that contains it" in issue.message
    assert (HEADER + text).splitlines()[issue.line - 1][issue.column - 1 :].startswith("*a")


def test_a_flow_may_still_share_values_with_anchors_and_merge_keys() -> None:
    text = (
        HEADER
        + "config:\n  llm: &defaults {temperature: 0.2, model: mock}\n"
        + "nodes:\n  - {id: a, llm: {<<: *defaults, model: other}, prompt: 'on {topic}', outputs: [topic]}\n"
        + "edges:\n  - {from: START, to: a}\n  - {from: a, to: END}\n"
    )
    llm = load_flow_text(text, "flow.yaml").spec.nodes[0].llm
    assert llm is not None
    assert (llm.model, llm.temperature) == ("other", 0.2)


def test_ten_thousand_nested_lists_are_refused_with_the_depth_limit() -> None:
    text = HEADER + "nodes: " + "[" * 10_000 + "]" * 10_000 + "\n"
    issue = only_issue(text)
    assert issue.message == f"nested more than {MAX_DEPTH} levels deep; flow files are limited to {MAX_DEPTH} levels"
    assert (issue.line, issue.column) == (4, 8 + MAX_DEPTH - 1)


def test_deep_block_mappings_are_refused_with_the_depth_limit() -> None:
    text = HEADER + "nodes:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(MAX_DEPTH + 10)) + "\n"
    assert "levels deep" in only_issue(text).message


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = MAX_DEPTH - 4  # the root, state, fields, deep: four levels above the default
    deep = "[" * depth + "]" * depth
    text = FLOW.replace("{topic: {type: str}}", f"{{topic: {{type: str}}, deep: {{type: list, default: {deep}}}}}")
    assert load_flow_text(text, "flow.yaml").spec.state.fields["deep"].default is not None


def test_a_file_over_one_megabyte_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as fh:
        fh.write(FLOW + "# " + "x" * (MAX_BYTES + 10) + "\n")
    with pytest.raises(ConfigError) as info:
        load_flow(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.column) == (str(path), 1, 1)
    assert f"over {MAX_BYTES} bytes" in issue.message
    assert f"over {MAX_BYTES} bytes" in only_issue(path.read_text()).message


def test_a_file_just_under_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "large.yaml"
    path.write_text(FLOW + "# " + "é" * ((MAX_BYTES - len(FLOW) - 3) // 2) + "\n", encoding="utf-8")
    assert path.stat().st_size <= MAX_BYTES
    assert load_flow(path).spec.flow.name == "demo"


def test_crlf_files_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "crlf.yaml"
    path.write_bytes(FLOW.replace("\n", "\r\n").encode())
    assert load_flow(path).source == FLOW


def test_ca_actors_validate_reports_an_alias_bomb_in_one_line(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    result = subprocess.run(
        [sys.executable, "-m", "actors", "validate", str(bomb), str(SEEDS / "article_writer.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bomb}:" in result.stderr
    assert "expand to more than" in result.stderr
    assert "Traceback" not in result.stderr
