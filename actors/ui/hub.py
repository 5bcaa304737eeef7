"""One reader per run, however many browsers watch it: a run's SSE messages, read and rendered once, shared.

The first client of a run starts a task that reads the run's events from the stream (from its first one)
and renders each into its SSE message once; every client reads that list from the point it resumes at
(its ``Last-Event-ID``) and then waits for more. So 50 browsers on one busy run cost one consumer and one
rendering per event, not 50. A run nobody has watched for a while is dropped.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from actors.ui import sse
from bus import Bus, BusError, Event

log = structlog.get_logger(__name__)

# (sequence, event, what this feed remembers between its events) → (SSE event name, JSON data), or None.
Render = Callable[[int, Event, dict[str, Any]], tuple[str, dict[str, Any]] | None]
# A run's messages are kept while someone watches it, and this long after the last one left.
IDLE_S = 60.0


@dataclass
class _Feed:
    seqs: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    # Set (and replaced by a fresh one) whenever messages were added or the feed failed.
    grew: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    failed: BaseException | None = None
    memo: dict[str, Any] = field(default_factory=dict)


def _wake(feed: _Feed) -> None:
    """Wake every client waiting on `feed` (each then waits on the fresh event)."""
    grew, feed.grew = feed.grew, asyncio.Event()
    grew.set()


class RunFeeds:
    """The shared feeds of the runs being watched."""

    def __init__(self, bus: Bus, render: Render) -> None:
        self._bus = bus
        self._render = render
        self._feeds: dict[str, _Feed] = {}

    async def close(self) -> None:
        feeds, self._feeds = self._feeds, {}
        for feed in feeds.values():
            if feed.task is not None:
                feed.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, BusError):
                    await feed.task

    def _feed(self, subject: str) -> _Feed:
        self._drop_idle()
        feed = self._feeds.get(subject)
        if feed is None or feed.failed is not None:
            feed = _Feed()
            feed.task = asyncio.create_task(self._read(subject, feed))
            self._feeds[subject] = feed
        return feed

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for subject, feed in list(self._feeds.items()):
            if feed.watchers == 0 and now - feed.last_seen > IDLE_S and feed.task is not None:
                feed.task.cancel()
                del self._feeds[subject]

    async def _read(self, subject: str, feed: _Feed) -> None:
        try:
            async with self._bus.replay(subject, Event) as replay:
                while True:
                    entry = await replay.next_entry(timeout_s=None)
                    if entry is None:
                        continue
                    seq, event = entry
                    rendered = self._render(seq, event, feed.memo)
                    if rendered is None:
                        continue
                    feed.seqs.append(seq)
                    feed.texts.append(sse.message(seq, *rendered))
                    _wake(feed)
        except BusError as exc:
            log.warning("ui.feed_failed", subject=subject, error=str(exc))
            feed.failed = exc
            _wake(feed)

    async def stream(self, subject: str, *, after: int, heartbeat_s: float) -> AsyncIterator[str]:
        """The SSE messages of `subject` after sequence `after`, then live ones, with heartbeat comments."""
        feed = self._feed(subject)
        feed.watchers += 1
        try:
            yield "retry: 1000\n: connected\n\n"
            position = 0
            while feed.failed is None:
                # Skip what the client has (the feed may still be catching up to where it resumes).
                position = bisect.bisect_right(feed.seqs, after, lo=position)
                if position < len(feed.texts):
                    # Everything new at once: one write per wake-up, not one per event.
                    chunk = "".join(feed.texts[position:])
                    position, after = len(feed.texts), feed.seqs[-1]
                    yield chunk
                    continue
                grew = feed.grew
                try:
                    await asyncio.wait_for(grew.wait(), timeout=heartbeat_s)
                    quiet = False
                except TimeoutError:
                    quiet = True
                if quiet:
                    yield ": heartbeat\n\n"
        finally:
            feed.watchers -= 1
            feed.last_seen = time.monotonic()
