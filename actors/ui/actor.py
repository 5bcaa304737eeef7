"""The dashboard actor: the web application served by uvicorn inside the actor's event loop.

It registers like every actor (``ca-actors agents`` lists it, a drain stops it), is ready once its
socket listens, and on `stop()` lets uvicorn close its connections (SSE streams end) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from pathlib import Path

import structlog
import uvicorn

from actors.client import ActiveRuns
from actors.runtime.presence import Load
from actors.ui.app import Deps, create_app
from actors.ui.security import Guard
from bus import Bus
from configs import Settings
from configs.errors import ActorError
from store import Store

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the actor's host decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Dashboard:
    """Serves the dashboard on `settings.ui_host`:`settings.ui_port` (port 0: any free port, see `url`)."""

    def __init__(self, bus: Bus, store: Store, settings: Settings, *, flows: list[Path] | None = None) -> None:
        guard, generated = Guard.for_host(settings.ui_host, settings.ui_token)
        self.generated_token = guard.token if generated else None
        self._settings = settings
        self._active = ActiveRuns(bus)
        deps = Deps(
            bus, store, settings, self._active, guard, flows=list(flows or []), heartbeat_s=settings.ui_heartbeat_s
        )
        self.app = create_app(deps)
        config = uvicorn.Config(
            self.app,
            host=settings.ui_host,
            port=settings.ui_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # SSE streams are cut at shutdown instead of holding it for ever.
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        self.url = ""

    async def run(self, ready: Callable[[], None]) -> None:
        await self._active.start()
        task = asyncio.create_task(self._server.serve())
        try:
            while not self._server.started:
                if task.done():
                    with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
                        task.result()
                    raise ActorError(
                        f"the dashboard could not listen on {self._settings.ui_host}:{self._settings.ui_port}"
                    )
                await asyncio.sleep(0.02)
            port = self._server.servers[0].sockets[0].getsockname()[1]
            host = self._settings.ui_host
            self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
            log.info("ui.listening", url=self.url)
            ready()
            await task
        finally:
            if not task.done():
                self._server.should_exit = True
                await task
            await self.app.state.feeds.close()
            await self._active.stop()

    def stop(self) -> None:
        self._server.should_exit = True

    def serves(self) -> list[str]:
        return [self.url] if self.url else []

    def load(self) -> Load:
        return Load(in_flight=len(self._server.server_state.connections), max=0)

    def capabilities(self) -> list[str]:
        return ["dashboard"]
