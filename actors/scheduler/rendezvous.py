"""Pairs a trigger *request* (core NATS, has a reply inbox) with the run its stored copy created.

A trigger published to ``ca.trigger.<flow>`` reaches the scheduler twice: as a core NATS message (with
the requester's inbox, if any) and as the JetStream message that durably creates the run (without
it). Both carry the same subject and bytes; the JetStream side announces ``digest → run`` and the
request side waits for the announcement of its digest, whichever comes first.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict, deque

from actors.scheduler.messages import RunAnswer

# How far apart the request and the stored copy of one trigger may be seen, in seconds.
_WINDOW_S = 5.0


def digest(subject: str, data: bytes) -> str:
    return hashlib.sha256(subject.encode() + b"\x00" + data).hexdigest()[:32]


class Rendezvous:
    def __init__(self) -> None:
        self._waiting: dict[str, deque[asyncio.Future[RunAnswer]]] = defaultdict(deque)
        self._early: dict[str, deque[tuple[float, RunAnswer]]] = defaultdict(deque)

    def announce(self, key: str, answer: RunAnswer) -> None:
        """The stored copy of a trigger with this digest created a run."""
        waiting = self._waiting.get(key)
        while waiting:
            fut = waiting.popleft()
            if not fut.done():
                fut.set_result(answer)
                return
        self._early[key].append((time.monotonic(), answer))
        self._prune()

    async def wait(self, key: str, timeout_s: float) -> RunAnswer:
        """The answer for a request with this digest.

        Raises:
            TimeoutError: no run was created for it in time.
        """
        early = self._early.get(key)
        now = time.monotonic()
        while early:
            seen, answer = early.popleft()
            if now - seen <= _WINDOW_S:
                return answer
        fut: asyncio.Future[RunAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[key].append(fut)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            queue = self._waiting.get(key)
            if queue is not None:
                if fut in queue:
                    queue.remove(fut)
                if not queue:
                    del self._waiting[key]

    def _prune(self) -> None:
        cutoff = time.monotonic() - _WINDOW_S
        for key in list(self._early):
            queue = self._early[key]
            while queue and queue[0][0] < cutoff:
                queue.popleft()
            if not queue:
                del self._early[key]
