"""structlog configured once per process: console lines on a terminal, JSON lines otherwise.

The standard library's loggers (nats, litellm, uvicorn, mlflow) go through the same renderer; the
actors bind ``actor``, ``run_id``, ``flow`` and ``node`` with contextvars. A log line that belongs to
a run (it has ``run_id`` and ``flow``) is also published as a ``log`` event of that run, through the
connection of the actor whose task logged it (`publish_run_logs`), so a dashboard can stream a run's logs.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from actors.runtime.redact import Redactor
from bus import Bus, Event, LogData, subjects

LogFormat = Literal["auto", "console", "json"]


_RESERVED = frozenset({"event", "level", "timestamp", "run_id", "flow", "node", "actor"})
# The one redactor (`actors.runtime.redact`), made once per process when logging is configured.
_REDACTOR: list[Redactor] = []


def _redact_line(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every field of a log line (the message and a traceback too) with secrets masked."""
    if not _REDACTOR:
        _REDACTOR.append(Redactor())
    redactor = _REDACTOR[0]
    for key, value in event_dict.items():
        if key in ("level", "timestamp", "run_id", "flow", "node", "actor"):
            continue
        if isinstance(value, str | dict | list | tuple):
            event_dict[key] = redactor(value)
        elif isinstance(value, BaseException):
            event_dict[key] = redactor(f"{type(value).__name__}: {value}")
    return event_dict


class RunLogSink:
    """Where the log lines of one actor's runs go: ``log`` events published through its connection."""

    def __init__(self, bus: Bus, sender: str) -> None:
        self._bus = bus
        self._sender = sender
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, event_dict: MutableMapping[str, Any], run_id: str, flow: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is not self._loop:
            return  # another thread's loop: the bus is not safe to use from there
        fields = {k: v for k, v in event_dict.items() if k not in _RESERVED}
        node = event_dict.get("node")
        try:
            line = LogData(
                level=str(event_dict.get("level", "info")),
                message=str(event_dict.get("event", "")),
                fields=json.loads(json.dumps(fields, default=str)),
            )
            event = Event.of(
                line, run_id=run_id, flow=flow, node=node if isinstance(node, str) else None, sender=self._sender
            )
            subject = subjects.event(run_id, "log")
        except ValueError:
            return  # not a run id or flow the bus accepts: the line is still logged
        task = loop.create_task(self._send(subject, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, subject: str, event: Event) -> None:
        try:
            await self._bus.publish_nowait(subject, event)
        except Exception:  # noqa: BLE001 - a log line must never break the code that logged it
            return


# The sink of the actor whose task (and the tasks it starts) is running: set by `publish_run_logs`.
_SINK: contextvars.ContextVar[RunLogSink | None] = contextvars.ContextVar("ca_run_log_sink", default=None)


def publish_run_logs(bus: Bus, sender: str) -> None:
    """From now on, in this task and the tasks it starts, log lines of a run are also its ``log`` events.

    Call it at the start of an actor's own task (`actors.runtime.ActorHost` does): the setting stays
    inside that task's context, so actors sharing a process each publish through their own connection.
    """
    _SINK.set(RunLogSink(bus, sender))


def _run_log_events(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: a line with ``run_id`` and ``flow`` goes to the current actor's sink too."""
    sink, run_id, flow = _SINK.get(), event_dict.get("run_id"), event_dict.get("flow")
    if sink is not None and isinstance(run_id, str) and isinstance(flow, str):
        sink.publish(event_dict, run_id, flow)
    return event_dict


class _Stderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured.

    Test runners and ``typer.testing.CliRunner`` swap ``sys.stderr`` and close their copy afterwards;
    a handler bound to it would then fail every later log line of the process.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Route structlog and the standard library (nats, litellm) to stderr in one format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelName(level.upper())
    _REDACTOR[:] = [Redactor()]  # the environment as it is now (a stack sets keys before configuring)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, _redact_line, _run_log_events, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        # Not cached: a process that configures again (tests, CliRunner) gets the new settings everywhere.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[*shared[1:], _redact_line, renderer], foreign_pre_chain=shared[:1]
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


class FaultTally:
    """One warning for a burst of the same fault (work redelivered, say), not one per message.

    The first occurrence warns at once; later ones within `every_s` are counted and reported with
    the next warning.
    """

    def __init__(self, event: str, *, every_s: float = 10.0) -> None:
        self._event = event
        self._every_s = every_s
        self._last = -float("inf")
        self._unreported = 0

    def add(self, **fields: Any) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        structlog.get_logger(__name__).warning(self._event, count=self._unreported, within_s=self._every_s, **fields)
        self._last = now
        self._unreported = 0
