"""Trigger payloads are checked on their bytes before parsing: every hostile shape is an InputError."""

from __future__ import annotations

import pytest

from configs import MAX_NUMBER_CHARS, MAX_PAYLOAD_BYTES, InputError, parse_payload


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b'{"n": ' + b"9" * 5000 + b"}", "number of 5,000 characters"),
        (b'{"n": -' + b"1" * (MAX_NUMBER_CHARS + 1) + b"}", "at most 100 are accepted"),
        (b'{"n": 1.5e' + b"9" * 200 + b"}", "number of"),
        (b'{"s": "caf\xc3\x28"}', "not valid UTF-8 (byte 10"),
        (b'{"s": "\xff"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested more than 64 levels"),
        (b'{"a": ' * 900 + b"1" + b"}" * 900, "nested more than 64 levels"),
        (b'{"s": "\\ud800"}', "lone surrogate"),
        (b'{"s": "\\udfff and text"}', "lone surrogate"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "at most 1,048,576 are accepted"),
        (b'{"unterminated": ', "not valid JSON"),
    ],
)
def test_a_hostile_payload_is_an_input_error_naming_the_limit(payload: bytes, says: str) -> None:
    with pytest.raises(InputError, match="invalid inputs") as caught:
        parse_payload(payload)
    assert says in str(caught.value)


def test_brackets_and_digits_inside_strings_do_not_count() -> None:
    text = "[" * 500 + "9" * 500 + "{"
    assert parse_payload(f'{{"s": "{text}", "q": "\\"[[[["}}'.encode()) == {"s": text, "q": '"[[[['}


def test_ordinary_payloads_parse_as_json_does() -> None:
    assert parse_payload(b"") == {}
    assert parse_payload('{"name": "Zoë 🚀", "n": 12345678901234567890, "x": 1.5e-7}'.encode()) == {
        "name": "Zoë 🚀",
        "n": 12345678901234567890,
        "x": 1.5e-7,
    }
    assert parse_payload(b'{"a": "\\ud83d\\ude80"}') == {"a": "🚀"}  # a valid surrogate pair
    assert parse_payload(b"[" * 64 + b"]" * 64) is not None
