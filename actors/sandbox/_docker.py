"""``sandbox: {mode: docker}``: the same contract as the pool, one container per execution.

The container runs ``python -I -m actors.sandbox._child`` from an image the operator names (one with
ca-actors installed, e.g. deploy/Dockerfile.agent's), with ``--network none`` when `network` is
false, a memory and process cap, a read-only root, no environment and the `nobody` user. Where no
image is configured or no container engine answers, the execution fails with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import struct
import time
from collections.abc import Mapping
from typing import Any

from actors.sandbox._limits import Limits, SandboxError, SandboxResult

_HEADER = struct.Struct(">I")


def docker_command(image: str, limits: Limits, docker: str = "docker") -> list[str]:
    """The ``docker run`` command line of one execution."""
    cmd = [docker, "run", "--rm", "-i", "--read-only", "--tmpfs", "/tmp:size=16m", "--workdir", "/tmp"]
    cmd += ["--user", "65534:65534", "--pids-limit", "16", "--memory", f"{limits.memory_mb}m", "--cpus", "1"]
    if not limits.network:
        cmd += ["--network", "none"]
    return [*cmd, image, "python", "-I", "-m", "actors.sandbox._child"]


async def run_in_docker(
    code: str, data: Mapping[str, Any], limits: Limits, *, image: str | None, docker: str = "docker"
) -> SandboxResult:
    """Run `code` in a fresh container of `image`.

    Raises:
        SandboxError: no image is configured, no container engine is installed or it does not answer.
    """
    if not image:
        raise SandboxError(
            "sandbox mode docker needs a container image: none is configured "
            "(set CA_SANDBOX_IMAGE or --sandbox-image to an image with ca-actors installed), "
            "or use mode: python"
        )
    binary = shutil.which(docker)
    if binary is None:
        raise SandboxError(f"sandbox mode docker: no container engine ({docker!r} is not installed)")
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *docker_command(image, limits, binary),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
    )
    config = {**limits.process_config(), "network": True}  # the container has no network already
    request = {"code": code, "data": dict(data), "cpu_s": limits.cpu_s, "output_bytes": limits.output_bytes}
    frames = b"".join(_frame(v) for v in (config, request))
    try:
        out, err = await asyncio.wait_for(proc.communicate(frames), timeout=limits.timeout_s + 30)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return SandboxResult(False, limit="timeout", error=f"container killed after {limits.timeout_s:g} s")
    replies = _frames(out)
    if len(replies) < 2:
        reason = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        # Docker's first line says why ("Cannot connect to the Docker daemon", "pull access denied", ...).
        why = reason[0].removeprefix("docker: ").strip() if reason else f"exit status {proc.returncode}"
        raise SandboxError(f"sandbox mode docker: the container did not run: {why}")
    reply = replies[1]
    return SandboxResult(
        ok=bool(reply.get("ok")),
        result=reply.get("result"),
        stdout=str(reply.get("stdout", "")),
        limit=reply.get("limit"),
        error=str(reply.get("error", "")),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _frame(value: Any) -> bytes:
    body = json.dumps(value, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def _frames(data: bytes) -> list[Any]:
    found: list[Any] = []
    while len(data) >= _HEADER.size:
        (size,) = _HEADER.unpack(data[: _HEADER.size])
        body, data = data[_HEADER.size : _HEADER.size + size], data[_HEADER.size + size :]
        if len(body) < size:
            break
        found.append(json.loads(body))
    return found
