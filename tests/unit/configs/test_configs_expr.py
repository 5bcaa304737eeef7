"""The condition language parses a safe subset of Python and evaluates it without `eval`."""

from __future__ import annotations

from typing import Any

import pytest

from configs import ExprError, ExprEvalError, parse_expr

STATE: dict[str, Any] = {
    "score": 0.9,
    "flagged": False,
    "title": "Draft: Cats",
    "tags": ["a", "b"],
    "profile": {"name": "Ada", "langs": ["py", "c"]},
    "count": 7,
}


def value(text: str, **kwargs: Any) -> Any:
    return parse_expr(text).evaluate(STATE, **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("not false and false", False),
        ("true or false and false", True),
        ("not (true or false)", False),
        ("-count + 10", 3),
        ("7 // 2 + 7 % 2 + 1 / 4", 4.25),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),
    ],
)
def test_operators_follow_python_precedence(text: str, expected: Any) -> None:
    assert value(text) == expected


def test_in_and_not_in_work_on_lists_strings_and_literal_lists() -> None:
    assert value('"a" in state.tags') is True
    assert value('"z" not in tags') is True
    assert value('"Cats" in title') is True
    assert value("count in [1, 7, 9]") is True
    assert value("count not in (1, 2)") is True


def test_len_and_string_methods_are_available() -> None:
    assert value("len(state.tags) == 2 and len(title) > 3") is True
    assert value('title.startswith("Draft") and title.endswith("Cats")') is True
    assert value('state.title.lower() == "draft: cats"') is True


def test_literals_include_json_and_python_spellings() -> None:
    assert value("[true, True, false, False, null, None]") == [True, True, False, False, None, None]
    assert value("'x' + \"y\"") == "xy"


def test_bare_names_and_state_paths_mean_the_same_field() -> None:
    assert value("profile.name") == value("state.profile.name") == "Ada"
    assert value("state.profile.langs[1]") == "c"
    assert value("tags[-1]") == "b"
    expr = parse_expr("score > 0.5 and state.profile.name == 'Ada' and not flagged")
    assert expr.state_paths == frozenset({("score",), ("profile", "name"), ("flagged",)})
    assert expr.uses_item is False
    assert expr.text == "score > 0.5 and state.profile.name == 'Ada' and not flagged"


def test_item_and_index_read_the_map_item() -> None:
    expr = parse_expr("item.n * 10 + index")
    assert expr.uses_item is True
    assert expr.state_paths == frozenset()
    assert expr.evaluate({}, item={"n": 4}, index=2) == 42
    assert parse_expr("item").evaluate({}, item="x") == "x"


def test_parse_expr_is_cached() -> None:
    assert parse_expr("count > 1") is parse_expr("count > 1")


def test_syntax_error_reports_the_column_inside_the_expression() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("state.score > )")
    assert info.value.column == 15
    assert "unexpected ')' at column 15 of the expression" in str(info.value)


def test_syntax_error_columns_count_leading_spaces_and_suggest_python_operators() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("  a && b")
    assert info.value.column == 6
    assert "use `and` instead of `&&`" in info.value.message


def test_unclosed_parenthesis_is_named() -> None:
    with pytest.raises(ExprError) as info:
        parse_expr("(score > 1")
    assert info.value.column == 1
    assert "'(' is never closed" in info.value.message


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("__import__('os')", 1, "calling '__import__'"),
        ("state.x.__class__", 9, "'__class__'"),
        ("open('f')", 1, "calling 'open'"),
        ("title.upper()", 7, "the method .upper()"),
        ("(lambda: 1)", 2, "lambda is not allowed"),
        ("[x for x in tags]", 1, "a comprehension"),
        ("{'a': 1}", 1, "a dict literal"),
        ("count ** 2", 1, "'**'"),
        ("flagged is None", 1, "use == null"),
        ("tags[0:1]", 6, "a subscript other than an int or string literal"),
        ("'abc'.lower().x", 1, "attribute access or subscripts on anything but a path"),
        ("state", 1, "`state` without a field"),
    ],
)
def test_constructs_outside_the_whitelist_are_refused(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        parse_expr(text)
    assert fragment in info.value.message
    assert info.value.column == column
    assert "allowed:" in info.value.message


def test_expr_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        parse_expr("   ")


def test_missing_path_is_an_eval_error_naming_the_path() -> None:
    with pytest.raises(ExprEvalError) as info:
        value("state.profile.age > 3")
    assert info.value.path == "state.profile.age"
    assert "state.profile.age does not exist" in str(info.value)
    assert "its keys: name, langs" in str(info.value)


def test_missing_top_level_field_and_list_index_are_eval_errors() -> None:
    with pytest.raises(ExprEvalError, match=r"state.nope does not exist: the state has no key 'nope'"):
        value("nope")
    with pytest.raises(ExprEvalError, match=r"state.tags\[5\] does not exist: state.tags has 2 items"):
        value("tags[5]")


def test_comparing_a_string_with_a_number_is_a_clear_eval_error() -> None:
    with pytest.raises(ExprEvalError) as info:
        value('"a" < 3')
    assert "cannot compare str 'a' with int 3 using '<'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("title * 3", "cannot apply * to str"),
        ("count / 0", "division by zero"),
        ("len(count)", "len() needs a string, list or dict"),
        ("count.lower()", ".lower() needs a string"),
        ("1 in count", "'in' needs a string, list or dict"),
        ("-title", "unary - needs a number"),
        ("index + 1", "index is only available in a map node"),
        ("count.x", "state.count.x does not exist: state.count is int 7"),
    ],
)
def test_type_errors_during_evaluation_are_eval_errors(text: str, fragment: str) -> None:
    with pytest.raises(ExprEvalError) as info:
        value(text)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
