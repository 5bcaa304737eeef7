"""What a provider asks for before a retry (Retry-After in seconds or as an HTTP date, retry-after-ms), and
the delay the gateway then waits: the asked delay up to a maximum, else a jittered exponential back-off."""

from __future__ import annotations

import email.utils

import pytest

from actors.llm.backend import retry_after_s, retry_delay_s

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
        ({"retry-after": email.utils.formatdate(NOW + 7, usegmt=True)}, 7.0),
        ({"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}, 0.0),  # a date in the past: now
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "-4"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "tomorrow-ish"}, None),
        ({}, None),
    ],
)
def test_the_delay_a_provider_asks_for_is_read_from_its_headers(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_s(headers, now=NOW) == expected


def test_an_asked_delay_is_waited_up_to_the_maximum() -> None:
    assert retry_delay_s(2.0, 0, 0.5, 30.0) == 2.0
    assert retry_delay_s(3600.0, 0, 0.5, 30.0) == 30.0


def test_without_an_asked_delay_the_back_off_doubles_with_jitter_in_its_upper_half() -> None:
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (10, 30.0)):
        delays = {retry_delay_s(None, attempt, 0.5, 30.0) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered: two gateways retrying together drift apart
