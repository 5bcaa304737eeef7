"""Prompt templates: placeholders are found, rendered from state and inputs, and escapes kept."""

from __future__ import annotations

import pytest

from configs import Placeholder, TemplateError, TemplateSyntaxError, placeholders, render, resolve_path

STATE = {
    "topic": "owls",
    "count": 3,
    "profile": {"bio": "Night bird", "tags": ["wise", "quiet"], "score": None},
    "notes": ["a", "ü"],
}


def test_explicit_state_placeholder_renders_the_field() -> None:
    assert render("About {state.topic}.", STATE) == "About owls."


def test_bare_placeholder_means_the_state_field() -> None:
    assert render("About {topic}, {count} times", STATE) == "About owls, 3 times"


def test_nested_paths_and_list_indexes_render() -> None:
    assert render("{state.profile.bio} / {profile.tags.1}", STATE) == "Night bird / quiet"


def test_node_inputs_come_before_state_for_bare_names() -> None:
    extra = {"topic": "cats", "who": {"name": "Ann"}}
    assert render("{topic} {state.topic} {who.name}", STATE, extra) == "cats owls Ann"


def test_runtime_item_and_index_render_from_extra() -> None:
    assert render("#{index}: {item}", STATE, {"item": "angle", "index": 2}) == "#2: angle"


def test_double_braces_are_literal_braces() -> None:
    assert render('Return {{"topic": "{topic}"}}', STATE) == 'Return {"topic": "owls"}'


def test_lists_and_dicts_render_as_one_line_json_and_none_as_empty() -> None:
    assert render("{notes}", STATE) == '["a", "ü"]'
    assert render("{profile.tags}|{profile.score}|", STATE) == '["wise", "quiet"]||'


def test_missing_path_raises_template_error_naming_the_path() -> None:
    with pytest.raises(TemplateError) as info:
        render("{state.profile.bioo}", STATE)
    assert info.value.path == "state.profile.bioo"
    assert "bioo" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_placeholders_strip_the_state_prefix_and_keep_offsets() -> None:
    found = placeholders("A {state.a.b} {{x}} {c}")
    assert found == [
        Placeholder(path=("a", "b"), offset=2, explicit_state=True),
        Placeholder(path=("c",), offset=20, explicit_state=False),
    ]


@pytest.mark.parametrize(
    ("template", "offset", "words"),
    [
        ("abc {topic", 4, "unclosed"),
        ("abc } d", 4, "single '}'"),
        ("x {a:>3}", 2, "format specs"),
        ("x {a!r}", 2, "format specs"),
        ("x {}", 2, "invalid placeholder"),
        ('x {"a": 1}', 2, "invalid placeholder"),
        ("x {state}", 2, "needs a field name"),
    ],
)
def test_malformed_templates_raise_with_the_offset(template: str, offset: int, words: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        placeholders(template)
    assert info.value.offset == offset
    assert words in info.value.message


def test_resolve_path_accepts_state_prefix_or_not() -> None:
    assert resolve_path(STATE, "state.profile.bio") == "Night bird"
    assert resolve_path(STATE, "profile.tags.0") == "wise"
    with pytest.raises(TemplateError):
        resolve_path(STATE, "notes.5")
