"""Layer 2, outside: a pool of pre-started sandbox worker processes, one set per process profile.

Each worker is ``python -I -m actors.sandbox._child`` with an empty environment and a scratch
working directory of its own. An execution sends one JSON frame and waits for one back, at most
its wall-clock timeout: past it the worker is killed and replaced. A worker is also replaced after
any limit was hit (its state is not trusted any more) and after `recycle_after` executions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import structlog

from actors.sandbox._limits import Limits, SandboxError, SandboxResult

log = structlog.get_logger(__name__)
_HEADER = struct.Struct(">I")
# Frames a little over the output cap are refused without reading them (the child checks the cap too).
_FRAME_SLACK = 64 * 1024
PoolStatus = Literal["new", "open", "closed"]


@dataclass(frozen=True)
class PoolStats:
    """What the registry shows of a pool: workers started and idle, executions in flight and done."""

    workers: int
    busy: int
    executions: int
    recycled: int
    network: str


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, scratch: Path, ready: Mapping[str, Any]) -> None:
        self.proc = proc
        self.scratch = scratch
        self.ready = ready
        self.executions = 0

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            await self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


async def _read_frame(stream: asyncio.StreamReader, cap: int) -> Any:
    header = await stream.readexactly(_HEADER.size)
    (size,) = _HEADER.unpack(header)
    if size > cap:
        raise _TooBig(size)
    return json.loads(await stream.readexactly(size))


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def _frame(value: Any) -> bytes:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


class _SubPool:
    """The workers of one process profile."""

    def __init__(self, limits: Limits, size: int, recycle_after: int) -> None:
        self.limits = limits
        self.size = size
        self.recycle_after = recycle_after
        self.idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self.started = 0
        self.busy = 0
        self.executions = 0
        self.recycled = 0
        self.network = ""
        self._spawning: set[asyncio.Task[None]] = set()
        self._all: set[_Worker] = set()
        self._closed = False

    async def fill(self) -> None:
        await asyncio.gather(*(self._add() for _ in range(self.size - self.started)))

    async def _add(self) -> None:
        self.started += 1
        try:
            worker = await self._spawn()
        except BaseException:
            self.started -= 1
            raise
        if self._closed:
            await worker.kill()
            return
        self._all.add(worker)
        self.idle.put_nowait(worker)

    async def _spawn(self) -> _Worker:
        scratch = Path(tempfile.mkdtemp(prefix="ca-sandbox-"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            "actors.sandbox._child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=scratch,
            env={},
            start_new_session=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(_frame(self.limits.process_config()))
        try:
            await proc.stdin.drain()
            ready = await asyncio.wait_for(_read_frame(proc.stdout, 1 << 16), timeout=30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, _TooBig) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            shutil.rmtree(scratch, ignore_errors=True)
            raise SandboxError(f"a sandbox worker failed to start: {exc!r}") from exc
        self.network = str(ready.get("network", ""))
        return _Worker(proc, scratch, ready)

    def _replace(self, worker: _Worker) -> None:
        """Kill `worker` and start another in its place (in the background: the caller has its result)."""
        self.recycled += 1
        self._all.discard(worker)

        async def again() -> None:
            await worker.kill()
            self.started -= 1
            if not self._closed:
                try:
                    await self._add()
                except SandboxError:
                    log.exception("sandbox.respawn_failed")

        task = asyncio.create_task(again())
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def run(self, code: str, data: Mapping[str, Any], limits: Limits) -> SandboxResult:
        if self.started < self.size and self.idle.empty():
            await self._add()
        worker = await self.idle.get()
        self.busy += 1
        started = time.perf_counter()
        try:
            result = await self._exchange(worker, code, data, limits)
        finally:
            self.busy -= 1
            self.executions += 1
        worker.executions += 1
        tainted = not result.ok and result.limit != "error" and result.extra.get("ran", True)
        if tainted or worker.executions >= self.recycle_after:
            self._replace(worker)
        else:
            self.idle.put_nowait(worker)
        took = round((time.perf_counter() - started) * 1000, 3)
        return SandboxResult(
            result.ok, result.result, result.stdout, result.limit, result.error, took, result.cached, result.extra
        )

    async def _exchange(self, worker: _Worker, code: str, data: Mapping[str, Any], limits: Limits) -> SandboxResult:
        proc = worker.proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        request = {"code": code, "data": dict(data), "cpu_s": limits.cpu_s, "output_bytes": limits.output_bytes}
        try:
            frame = _frame(request)
        except (TypeError, ValueError) as exc:
            return SandboxResult(False, limit="error", error=f"inputs are not JSON: {exc}")
        try:
            proc.stdin.write(frame)
            await proc.stdin.drain()
            reply = await asyncio.wait_for(
                _read_frame(proc.stdout, limits.output_bytes + _FRAME_SLACK), timeout=limits.timeout_s
            )
        except TimeoutError:
            await worker.kill()
            return SandboxResult(False, limit="timeout", error=f"killed after {limits.timeout_s:g} s of wall clock")
        except _TooBig as exc:
            await worker.kill()
            return SandboxResult(False, limit="output", error=f"output of {exc.size} bytes is over the cap")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            await worker.kill()
            return SandboxResult(False, limit=_death(proc.returncode), error=f"worker died ({proc.returncode})")
        return SandboxResult(
            ok=bool(reply.get("ok")),
            result=reply.get("result"),
            stdout=str(reply.get("stdout", "")),
            limit=reply.get("limit"),
            error=str(reply.get("error", "")),
            cached=bool(reply.get("cached")),
            extra={"worker_ms": reply.get("duration_ms"), "ran": reply.get("ran", True)},
        )

    async def close(self) -> None:
        self._closed = True
        await asyncio.gather(*list(self._spawning), return_exceptions=True)
        await asyncio.gather(*(w.kill() for w in list(self._all)))
        self._all.clear()


def _death(returncode: int | None) -> Literal["cpu", "memory", "crash"]:
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "cpu"
    if returncode == -signal.SIGSEGV:
        return "memory"
    return "crash"


class SandboxPool:
    """Sandbox workers for node code and the ``python_exec`` tool; an async context manager.

        async with SandboxPool(size=2) as pool:
            result = await pool.run("result = sum(inputs['xs'])", {"inputs": {"xs": [1, 2]}}, Limits())

    `size` workers per process profile (the memory, files, network and layers of `Limits`) are
    started when the profile is first used (`start` starts the default one ahead).
    """

    def __init__(self, size: int = 2, *, recycle_after: int = 200) -> None:
        self.size = size
        self.recycle_after = recycle_after
        self.status: PoolStatus = "new"
        self._pools: dict[tuple[Any, ...], _SubPool] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, limits: Limits | None = None) -> None:
        """Start the workers of `limits`'s profile (default: `Limits()`) now, not at the first execution."""
        self.status = "open"
        await self._pool(limits or Limits()).fill()

    def _pool(self, limits: Limits) -> _SubPool:
        if self.status == "closed":
            raise SandboxError("the sandbox pool is closed")
        key = limits.profile()
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _SubPool(limits, self.size, self.recycle_after)
        return pool

    async def run(self, code: str, data: Mapping[str, Any], limits: Limits) -> SandboxResult:
        """Run `code` with the names in `data` (``inputs``, ``memory``, ...) under `limits`.

        Returns:
            Its ``result`` (and printed text), or the limit that stopped it; never raises for the code.

        Raises:
            SandboxError: no worker could be started.
        """
        self.status = "open"
        return await self._pool(limits).run(code, data, limits)

    def stats(self) -> PoolStats:
        pools = list(self._pools.values())
        return PoolStats(
            workers=sum(p.started for p in pools),
            busy=sum(p.busy for p in pools),
            executions=sum(p.executions for p in pools),
            recycled=sum(p.recycled for p in pools),
            network=", ".join(sorted({p.network for p in pools if p.network})),
        )

    async def close(self) -> None:
        """Stop every worker (idempotent)."""
        if self.status == "closed":
            return
        self.status = "closed"
        await asyncio.gather(*(p.close() for p in self._pools.values()))
