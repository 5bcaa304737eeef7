"""A connection to NATS with JetStream, the ca-actors topology and a clean drain-then-close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import Self

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoServersError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel

from bus import topology
from configs.errors import BusError

log = structlog.get_logger(__name__)

MsgHandler = Callable[[Msg], Awaitable[None]]


class BusStatus(StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    CLOSED = "closed"


class Bus:
    """One NATS connection of one actor: core NATS, JetStream and the ca-actors buckets."""

    def __init__(self, url: str, *, name: str, dedup_window_s: float = 600.0) -> None:
        self.url = url
        self.name = name
        self.status = BusStatus.NEW
        self._dedup_window_s = dedup_window_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, KeyValue] = {}
        self._subs: list[Subscription] = []

    async def connect(self, *, timeout_s: float = 10.0) -> Self:
        """Connect (retrying until `timeout_s`), then set up streams and buckets idempotently.

        Raises:
            BusError: no server answered in time.
        """
        # nats-py retries the first connect forever when reconnects are unlimited: bound it ourselves.
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    name=self.name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                timeout=timeout_s,
            )
        except (TimeoutError, NoServersError, OSError) as exc:
            raise BusError(
                f"cannot connect to NATS at {self.url} within {timeout_s:g}s: {str(exc) or 'no answer'}"
            ) from exc
        self._js = self._nc.jetstream()
        self._kv = await topology.ensure_topology(self._js, dedup_window_s=self._dedup_window_s)
        self.status = BusStatus.CONNECTED
        return self

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise BusError("bus is not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusError("bus is not connected")
        return self._js

    def kv(self, bucket: str) -> KeyValue:
        """One of the buckets named in `bus.topology`."""
        return self._kv[bucket]

    async def publish(self, subject: str, msg: BaseModel, *, msg_id: str | None = None) -> None:
        """Publish a message durably to JetStream; `msg_id` makes re-publishing it a no-op."""
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.js.publish(subject, msg.model_dump_json().encode(), headers=headers)

    async def publish_nowait(self, subject: str, msg: BaseModel, *, msg_id: str | None = None) -> None:
        """Publish into a stream without waiting for its acknowledgement (events: order kept, no round trip).

        Messages leave in order on this connection, so the stream stores them in publish order; the
        server still deduplicates by `msg_id`.
        """
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.nc.publish(subject, msg.model_dump_json().encode(), headers=headers)

    async def subscribe(self, subject: str, cb: MsgHandler, *, queue: str = "") -> Subscription:
        """A core NATS subscription, unsubscribed on `close()`."""
        sub = await self.nc.subscribe(subject, queue=queue, cb=cb)
        self._subs.append(sub)
        return sub

    def track(self, sub: Subscription | JetStreamContext.PullSubscription) -> None:
        """Remember a subscription made through `js`/`nc` directly so `close()` unsubscribes it first."""
        inner = getattr(sub, "_sub", sub)
        if isinstance(inner, Subscription):
            self._subs.append(inner)

    async def close(self) -> None:
        """Unsubscribe everything (a pull subscription would make drain hang), drain, close. Idempotent."""
        if self.status is BusStatus.CLOSED or self._nc is None:
            self.status = BusStatus.CLOSED
            return
        self.status = BusStatus.CLOSED
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()
        nc = self._nc
        try:
            await asyncio.wait_for(nc.drain(), timeout=5)
        except Exception:  # noqa: BLE001 - a failed drain must not prevent closing
            log.warning("bus.drain_failed", name=self.name)
        if not nc.is_closed:
            # The server may be gone already (it is stopped last, but a signal can reach it first):
            # closing must still succeed and never raise.
            with contextlib.suppress(Exception):
                await nc.close()

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _on_error(self, exc: Exception) -> None:
        # Before the first connect succeeds, failures are retried and reported by `connect` itself.
        if self.status is BusStatus.CONNECTED:
            log.warning("nats.error", name=self.name, error=str(exc))

    async def _on_disconnect(self) -> None:
        if self.status is not BusStatus.CLOSED:
            log.warning("nats.disconnected", name=self.name)

    async def _on_reconnect(self) -> None:
        log.info("nats.reconnected", name=self.name)
