"""Server-sent events: a stream's events as SSE messages, each ``id`` its stream sequence, with heartbeats.

A browser that reconnects sends ``Last-Event-ID`` (or, when a page opens its stream again itself,
``?after=N``): the stream resumes at the next sequence, so nothing is lost or shown twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from bus import Bus, Event


def resume_point(request: Request) -> int:
    """The last sequence the client has: its ``Last-Event-ID`` header, else ``?after=``, else 0."""
    for raw in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if raw and raw.strip().isdigit():
            return int(raw.strip())
    return 0


def message(seq: int, event: str, data: dict[str, Any]) -> str:
    """One SSE message (JSON data on one line)."""
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream(
    bus: Bus,
    subject: str,
    *,
    after: int,
    heartbeat_s: float,
    render: Callable[[int, Event], tuple[str, dict[str, Any]] | None],
) -> AsyncIterator[str]:
    """SSE messages for every event on `subject` after sequence `after`, and a comment every `heartbeat_s`.

    `render` turns an event into (SSE event name, JSON data), or None to skip it. Runs until the client
    goes (Starlette cancels the response), which closes the stream's consumer.
    """
    # The reconnection delay the browser uses, then an immediate first byte (proxies flush headers).
    yield "retry: 1000\n: connected\n\n"
    async with bus.replay(subject, Event, start_seq=after + 1) as replay:
        while True:
            entry = await replay.next_entry(timeout_s=heartbeat_s)
            if entry is None:
                yield ": heartbeat\n\n"
                continue
            seq, event = entry
            rendered = render(seq, event)
            if rendered is not None:
                yield message(seq, *rendered)
