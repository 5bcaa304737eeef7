"""structlog configured once per process: console lines on a terminal, JSON lines otherwise.

The standard library's loggers (nats, litellm, uvicorn, mlflow) go through the same renderer; the
actors bind ``actor``, ``run_id``, ``flow`` and ``node`` with contextvars. A log line that belongs to
a run (it has ``run_id`` and ``flow``) is also published as a ``log`` event of that run, once the
process's actor has attached its bus (`RUN_LOGS.attach`), so a dashboard can stream a run's logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from bus import Bus, Event, LogData, subjects

LogFormat = Literal["auto", "console", "json"]


_RESERVED = frozenset({"event", "level", "timestamp", "run_id", "flow", "node", "actor"})


class RunLogEvents:
    """A structlog processor publishing each log line of a run as a ``log`` event of the run."""

    def __init__(self) -> None:
        self._bus: Bus | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender = ""
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, bus: Bus, sender: str) -> None:
        """Publish through `bus` from now on (the process's actor connection; call it from its loop)."""
        self._bus, self._sender, self._loop = bus, sender, asyncio.get_running_loop()

    def detach(self, bus: Bus) -> None:
        if self._bus is bus:
            self._bus = None

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        bus, run_id, flow = self._bus, event_dict.get("run_id"), event_dict.get("flow")
        if bus is None or not isinstance(run_id, str) or not isinstance(flow, str):
            return event_dict
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return event_dict
        if loop is not self._loop:
            return event_dict  # another thread's loop: the bus is not safe to use from there
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
            return event_dict  # not a run id or flow the bus accepts: the line is still logged
        task = loop.create_task(self._publish(bus, subject, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return event_dict

    async def _publish(self, bus: Bus, subject: str, event: Event) -> None:
        try:
            await bus.publish_nowait(subject, event)
        except Exception:  # noqa: BLE001 - a log line must never break the code that logged it
            return


RUN_LOGS = RunLogEvents()


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
    run_logs: list[structlog.typing.Processor] = [RUN_LOGS]
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, *run_logs, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        # Not cached: a process that configures again (tests, CliRunner) gets the new settings everywhere.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=[*shared[1:], renderer], foreign_pre_chain=shared[:1])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
