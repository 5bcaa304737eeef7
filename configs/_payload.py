"""Trigger payloads checked for size, encoding, nesting and number length before they are parsed.

`json.loads` itself fails on hostile input with errors nobody expects from a parser: a 5,000-digit
integer raises a plain ValueError (Python's int string limit), invalid UTF-8 a UnicodeDecodeError, a
list nested 100,000 deep a RecursionError, and a lone surrogate escape (``"\\ud800"``) parses but can
never be encoded again. `parse_payload` looks at the raw bytes first (linear time, no recursion) and
turns every such case into an `InputError` that names the limit.
"""

from __future__ import annotations

import json
import re
from typing import Any

from configs._issues import InputError
from configs._types import MAX_INPUT_DEPTH

# NATS's default max payload is 1 MiB: nothing bigger can arrive, but a raised server limit must not
# let a 64 MiB document into the scheduler's memory.
MAX_PAYLOAD_BYTES = 1 << 20
# Characters of one JSON number: a float has at most 17 significant digits and an exponent; an id
# needs ~40. Python refuses to convert an int of more than 4,300 digits, and quadratic time before that.
MAX_NUMBER_CHARS = 100

# A JSON string (the unrolled form: linear, no backtracking on long strings).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER_CHARS + 1},}}")


def parse_payload(data: bytes, *, what: str = "inputs") -> Any:
    """Parse a JSON payload from outside, refusing what would break (or stall) a parser or a later encoder.

    Args:
        data: The raw bytes of the message (empty means ``{}``).
        what: What the payload is, for the messages.

    Returns:
        The parsed JSON value.

    Raises:
        InputError: the payload is too big, not UTF-8, nested too deep, has a too-long number, holds a
            lone surrogate, or is not valid JSON.
    """
    if len(data) > MAX_PAYLOAD_BYTES:
        raise InputError([f"{what} are {len(data):,} bytes; at most {MAX_PAYLOAD_BYTES:,} are accepted"])
    try:
        text = data.decode("utf-8") if data else "{}"
    except UnicodeDecodeError as exc:
        raise InputError([f"{what} are not valid UTF-8 (byte {exc.start}: {exc.reason})"]) from None
    outside_strings = _STRING.sub('""', text)
    depth = _max_depth(outside_strings)
    if depth > MAX_INPUT_DEPTH:
        raise InputError([f"{what} are nested more than {MAX_INPUT_DEPTH} levels deep (lists and objects)"])
    long_number = _LONG_NUMBER.search(outside_strings)
    if long_number is not None:
        size = len(long_number.group(0))
        raise InputError([f"{what} hold a number of {size:,} characters; at most {MAX_NUMBER_CHARS} are accepted"])
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError([f"{what} are not valid JSON: {exc}"]) from None
    except (ValueError, RecursionError) as exc:  # limits above make these unreachable; never let one escape
        raise InputError([f"{what} cannot be read: {type(exc).__name__}: {exc}"]) from None
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError([f"{what} hold a lone surrogate escape (\\ud800-\\udfff), which is not text"]) from None
    return value


def _max_depth(text: str) -> int:
    """Deepest nesting of brackets in JSON text whose strings were blanked out (stops past the limit)."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", text):
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_INPUT_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest
