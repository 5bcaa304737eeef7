"""A connection to NATS with JetStream, the ca-actors topology and a clean drain-then-close.

`Bus` is the only holder of nats-py's client and JetStream context: actors publish, ask, answer,
subscribe and read streams through its methods, with pydantic models as bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from enum import StrEnum
from types import TracebackType
from typing import Self, TypeVar

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from bus import topology
from bus.auth import Credentials, credentials_for
from bus.permissions import ROLES, Role
from bus.replay import Replay
from configs.errors import BadReplyError, BusError, NoResponderError, RequestTimeoutError
from configs.settings import Settings
from configs.urls import mask_url

log = structlog.get_logger(__name__)

MsgHandler = Callable[[Msg], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)


class BusStatus(StrEnum):
    NEW = "new"
    CONNECTED = "connected"
    CLOSED = "closed"


class Bus:
    """One NATS connection of one actor: core NATS, JetStream and the ca-actors buckets."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        dedup_window_s: float = 600.0,
        credentials: Credentials | None = None,
        role: Role | None = None,
        stream_replicas: int | None = None,
        topology: bool = True,
    ) -> None:
        """Args:
        url: one server, or several comma-separated (the seeds of a cluster: any one that answers will do,
            and the client learns the others from it).
        credentials: How to log in (`bus.auth`); None: anonymously.
        role: What the connection is for: it binds only that role's buckets and changes the topology only
            when the role may (`bus.permissions`); None: every bucket, topology created as needed.
        stream_replicas: replicas of the streams and buckets it creates (3 on a 3-node cluster); None
            keeps those of existing streams (1 for new ones).
        topology: set up the streams and buckets at connect (False for a short-lived probe such as
            ``ca-actors health``, which must not load the JetStream API).
        """
        self.url = url
        self.name = name
        self._credentials = credentials or Credentials()
        self._grants = ROLES[role] if role is not None else None
        self.status = BusStatus.NEW
        self._dedup_window_s = dedup_window_s
        self._replicas = stream_replicas
        self._setup_topology = topology
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, KeyValue] = {}
        # Unsubscribed before draining on close: an open pull subscription makes drain hang.
        self._subs: list[Subscription | JetStreamContext.PullSubscription] = []
        self._refused: list[str] = []

    @classmethod
    def of(cls, settings: Settings, role: Role, *, name: str) -> Self:
        """A connection of `role` to the settings' NATS server, logged in as that role (`bus.auth.credentials_for`)."""
        return cls(
            settings.nats_url,
            name=name,
            dedup_window_s=settings.dedup_window_s,
            credentials=credentials_for(settings, role),
            role=role,
            stream_replicas=settings.stream_replicas,
        )

    async def connect(self, *, timeout_s: float = 10.0) -> Self:
        """Connect (retrying until `timeout_s`), then set up streams and buckets idempotently.

        Raises:
            BusError: no server answered in time, or it refused the credentials.
        """
        refused = self._refused = []
        # nats-py retries the first connect forever when reconnects are unlimited: bound it ourselves.
        shown = mask_url(self.url)
        nc = Client()
        connecting = asyncio.ensure_future(
            nc.connect(
                [u.strip() for u in self.url.split(",") if u.strip()],
                name=self.name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]  # typed int, takes seconds as float
                connect_timeout=2,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnect,
                reconnected_cb=self._on_reconnect,
                **self._credentials.connect_options(),
            )
        )
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while not connecting.done():
                if refused:
                    raise BusError(f"NATS at {shown} refused the credentials: {refused[0]}")
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError()
                await asyncio.wait({connecting}, timeout=0.05)
            connecting.result()
            self._nc = nc
        except (TimeoutError, NoServersError, OSError) as exc:
            raise BusError(
                f"cannot connect to NATS at {shown} within {timeout_s:g}s: {str(exc) or 'no answer'}"
            ) from exc
        finally:
            if not connecting.done():
                connecting.cancel()
                with contextlib.suppress(BaseException):
                    await connecting
            if self._nc is None:
                with contextlib.suppress(Exception):
                    await nc.close()
        self._js = self._nc.jetstream()
        grants = self._grants
        if self._setup_topology:
            try:
                self._kv = await topology.ensure_topology(
                    self._js,
                    dedup_window_s=self._dedup_window_s,
                    # Without a login nobody's rights differ (no permissions to follow): any role may set it up.
                    manage=grants is None or grants.manages_topology or self._credentials.empty,
                    buckets=None if grants is None else sorted(grants.buckets),
                    replicas=self._replicas,
                )
            except (NatsError, NotFoundError, TimeoutError) as exc:
                await self._nc.close()
                raise BusError(f"NATS at {shown} has not the streams and buckets of ca-actors: {exc}") from exc
        self.status = BusStatus.CONNECTED
        return self

    @property
    def _client(self) -> Client:
        if self._nc is None:
            raise BusError("bus is not connected")
        return self._nc

    @property
    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise BusError("bus is not connected")
        return self._js

    def kv(self, bucket: str) -> KeyValue:
        """One of the buckets named in `bus.topology` (of those this connection's role reads).

        Raises:
            BusError: the connection is not bound to it (its role does not read it).
        """
        try:
            return self._kv[bucket]
        except KeyError:
            raise BusError(f"connection {self.name} does not read the bucket {bucket}") from None

    # --- publishing -------------------------------------------------------------------------------

    async def publish(self, subject: str, msg: BaseModel, *, msg_id: str | None = None) -> None:
        """Publish a message durably to JetStream (waiting for its ack); `msg_id` makes re-publishing it a no-op.

        Raises:
            BusError: the stream did not take it.
        """
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            await self._jetstream.publish(subject, msg.model_dump_json().encode(), headers=headers)
        except NatsError as exc:
            raise BusError(f"publish failed: {exc}", subject=subject) from exc

    async def publish_nowait(self, subject: str, msg: BaseModel, *, msg_id: str | None = None) -> None:
        """Publish into a stream without waiting for its acknowledgement (events: order kept, no round trip).

        Messages leave in order on this connection, so the stream stores them in publish order; the
        server still deduplicates by `msg_id`.
        """
        await self.send(subject, msg, headers={"Nats-Msg-Id": msg_id} if msg_id else None)

    async def send(self, subject: str, msg: BaseModel, *, headers: dict[str, str] | None = None) -> None:
        """Publish on core NATS: to whoever listens now, at most once (heartbeats, announcements).

        Raises:
            BusError: the connection is closed or its buffer is full.
        """
        try:
            await self._client.publish(subject, msg.model_dump_json().encode(), headers=headers)
        except NatsError as exc:
            raise BusError(f"send failed: {exc}", subject=subject) from exc

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until the server has everything published so far.

        Raises:
            BusError: it did not confirm within `timeout_s`.
        """
        try:
            await self._client.flush(timeout=max(1, round(timeout_s)))
        except (NatsError, TimeoutError) as exc:
            raise BusError(f"flush failed: {exc or 'timed out'}") from exc

    # --- requests ---------------------------------------------------------------------------------

    async def request(
        self,
        subject: str,
        body: BaseModel,
        reply: type[M],
        *,
        timeout_s: float,
        headers: dict[str, str] | None = None,
    ) -> M:
        """Ask whoever serves `subject` (one member of its queue group) and read the answer as `reply`.

        Raises:
            NoResponderError: nobody serves `subject`.
            RequestTimeoutError: no answer within `timeout_s` (also a `TimeoutError`).
            BadReplyError: the answer is not a valid `reply`.
            BusError: the connection failed.
        """
        try:
            data = body.model_dump_json().encode()
            msg = await self._client.request(subject, data, timeout=timeout_s, headers=headers)
        except NoRespondersError:
            raise NoResponderError(subject) from None
        except (NatsTimeoutError, TimeoutError):
            raise RequestTimeoutError(subject, timeout_s) from None
        except NatsError as exc:
            raise BusError(f"request failed: {exc}", subject=subject) from exc
        try:
            return reply.model_validate_json(msg.data)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise BadReplyError(subject, reply.__name__, problem) from None

    async def respond(self, msg: Msg, answer: BaseModel) -> None:
        """Answer a request; nothing happens when `msg` was a plain publish (no reply inbox).

        Raises:
            BusError: the answer could not be sent.
        """
        if msg.reply:
            await self.send(msg.reply, answer)

    async def gather(self, subject: str, body: BaseModel, reply: type[M], *, wait_s: float) -> list[M]:
        """Ask everyone listening on `subject` and collect the valid answers that come within `wait_s`."""
        inbox = self._client.new_inbox()
        answers: list[M] = []

        async def on_answer(msg: Msg) -> None:
            with contextlib.suppress(ValidationError):
                answers.append(reply.model_validate_json(msg.data))

        sub = await self._client.subscribe(inbox, cb=on_answer)
        try:
            await self._client.publish(subject, body.model_dump_json().encode(), reply=inbox)
            await asyncio.sleep(wait_s)
        finally:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        return answers

    # --- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, subject: str, cb: MsgHandler, *, queue: str = "") -> Subscription:
        """A core NATS subscription, unsubscribed on `close()`."""
        sub = await self._client.subscribe(subject, queue=queue, cb=cb)
        self._subs.append(sub)
        return sub

    async def pull_subscribe(
        self, subject: str, *, durable: str, stream: str, config: ConsumerConfig
    ) -> JetStreamContext.PullSubscription:
        """A durable pull consumer (created or updated with `config`), unsubscribed on `close()`.

        nats-py binds to an existing durable as it is: its AckWait is brought up to date here, so a
        consumer created by an older version (30 s) fails over as fast as `config` says.
        """
        with contextlib.suppress(NotFoundError):
            info = await self._jetstream.consumer_info(stream, durable)
            if config.ack_wait is not None and info.config.ack_wait != config.ack_wait:
                await self._jetstream.add_consumer(stream, replace(info.config, ack_wait=config.ack_wait))
        sub = await self._jetstream.pull_subscribe(subject, durable=durable, stream=stream, config=config)
        self._subs.append(sub)
        return sub

    def replay(
        self, subject: str, model: type[M], *, start_seq: int | None = None, new_only: bool = False
    ) -> Replay[M]:
        """Read `subject` as `model` (``async with bus.replay(...)``): from the first message its stream
        holds, from stream sequence `start_seq` on, or (`new_only`) only what is published from now on."""
        if new_only:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        elif start_seq is not None and start_seq > 1:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)

        async def open_sub() -> JetStreamContext.PushSubscription:
            sub = await self._jetstream.subscribe(subject, ordered_consumer=True, config=config)
            self._subs.append(sub)
            return sub

        async def close_sub(sub: JetStreamContext.PushSubscription) -> None:
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()

        return Replay(subject, model, open_sub=open_sub, close_sub=close_sub)

    async def consumer_ack_wait(self, stream: str, durable: str) -> float | None:
        """The AckWait of a durable consumer, in seconds (None: the server's default)."""
        info = await self._jetstream.consumer_info(stream, durable)
        wait: float | None = info.config.ack_wait
        return wait

    async def delete_consumer(self, stream: str, durable: str) -> bool:
        """Remove a durable consumer; False when there was none."""
        try:
            await self._jetstream.delete_consumer(stream, durable)
        except NotFoundError:
            return False
        return True

    async def last_sequence(self, stream: str) -> int:
        """The sequence of the last message `stream` holds (0 when it is empty)."""
        return int((await self._jetstream.stream_info(stream)).state.last_seq)

    async def stream_created(self, stream: str) -> str:
        """When a stream was created: it tells this instance of the stream from any other of that name."""
        return str((await self._jetstream.stream_info(stream)).created)

    async def close(self) -> None:
        """Unsubscribe everything (a pull subscription would make drain hang), drain, close. Idempotent."""
        if self.status is BusStatus.CLOSED or self._nc is None:
            self.status = BusStatus.CLOSED
            return
        self.status = BusStatus.CLOSED
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
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
        # Before the first connect succeeds, failures are retried and reported by `connect` itself: a
        # refused login at once (nats-py would retry it for ever).
        if self.status is BusStatus.NEW and "authorization" in str(exc).lower():
            self._refused.append(str(exc))
        if self.status is BusStatus.CONNECTED:
            log.warning("nats.error", name=self.name, error=str(exc))

    async def _on_disconnect(self) -> None:
        if self.status is not BusStatus.CLOSED:
            log.warning("nats.disconnected", name=self.name)

    async def _on_reconnect(self) -> None:
        log.info("nats.reconnected", name=self.name)
