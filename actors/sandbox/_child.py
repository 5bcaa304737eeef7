"""Layer 2, inside: the sandbox worker process (``python -I -m actors.sandbox._child``).

It reads its process limits (first frame), isolates itself once — a network namespace of its own
(else an audit hook refusing sockets), rlimits (address space, open files, file size, no core
dumps, no new processes, CPU), the `nobody` user when started as root, an audit hook refusing
files outside the standard library, processes, ``ctypes`` and frame inspection — says it is ready,
then runs executions one after the other. Frames are a 4-byte big-endian length and UTF-8 JSON.
"""

from __future__ import annotations

import errno
import importlib
import json
import math
import os
import resource
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from actors.sandbox._policy import CompileCache, PolicyViolation, restricted_globals

_HEADER = struct.Struct(">I")
CLONE_NEWNET = 0x40000000
NOBODY = 65534
_NET_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL}


class SandboxRefused(PolicyViolation):
    """An operation the audit hook refuses; `limit` names what stopped it."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)


def read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return json.loads(stream.read(size))


def write_frame(stream: IO[bytes], value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _unshare_network() -> str:
    """A network namespace of our own (only a down loopback): "netns", or "" where the kernel refuses."""
    try:
        if hasattr(os, "unshare"):  # Python 3.12+
            os.unshare(CLONE_NEWNET)
        else:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                return ""
            # Forget ctypes: code that imports it again goes through the audit hook, which refuses it.
            for name in [n for n in sys.modules if n == "ctypes" or n.startswith("ctypes.")]:
                del sys.modules[name]
    except OSError:
        return ""
    return "netns"


def _stdlib_roots() -> tuple[str, ...]:
    roots = {os.path.dirname(os.__file__), sys.base_prefix, sys.prefix}
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots))


def _audit_hook(*, refuse_sockets: bool, scratch: str) -> Callable[[str, tuple[Any, ...]], None]:
    roots = _stdlib_roots()
    scratch_root = os.path.realpath(scratch) + os.sep
    processes = (
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen",
        "os.kill", "os.killpg",
    )  # fmt: skip
    banned_imports = {"ctypes", "_ctypes", "subprocess", "_posixsubprocess", "pty", "multiprocessing", "signal"}
    if refuse_sockets:
        banned_imports |= {"socket", "_socket", "ssl", "_ssl", "select", "selectors"}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode = args[0], args[1]
            if isinstance(path, int):
                return  # an fd already open (our pipes)
            real = os.path.realpath(os.fsdecode(path))
            writes = isinstance(mode, str) and any(c in mode for c in "wax+")
            if real.startswith(scratch_root):
                return
            if writes or not real.startswith(roots) or "/proc/" in real:
                raise SandboxRefused("files", f"opening {os.fsdecode(path)!r} is not allowed")
        elif event.startswith(processes):
            raise SandboxRefused("processes", f"{event} is not allowed (no new processes)")
        elif event.startswith(("ctypes.", "sys._getframe", "sys._current_frames", "sys.settrace", "sys.setprofile")):
            raise SandboxRefused("policy", f"{event} is not allowed")
        elif event == "import" and args[0].partition(".")[0] in banned_imports:
            raise SandboxRefused("policy", f"import of {args[0]!r} is not allowed")
        elif refuse_sockets and event.startswith("socket."):
            raise SandboxRefused("network", f"{event} is not allowed (network: false)")

    return hook


def isolate(config: dict[str, Any], scratch: str) -> dict[str, Any]:
    """Apply the process limits of `config` once; returns what was achieved."""
    report: dict[str, Any] = {"network": "allowed" if config["network"] else "", "uid": os.getuid()}
    if not config["isolated"]:
        return {**report, "network": "allowed", "isolated": False}
    # What the allowed modules import lazily, while the interpreter's files are still readable.
    importlib.import_module("_strptime")  # datetime.strptime's

    if not config["network"]:
        report["network"] = _unshare_network() or "audit"
    memory = int(config["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (config["open_files"], config["open_files"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (config["file_size_bytes"], config["file_size_bytes"]))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if os.getuid() == 0:
        os.chown(scratch, NOBODY, NOBODY)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        report["uid"] = NOBODY
    # After the user change: root is not bound by RLIMIT_NPROC, anyone else is (0: no fork at all).
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    sys.setrecursionlimit(400)
    sys.addaudithook(_audit_hook(refuse_sockets=report["network"] == "audit", scratch=scratch))
    return {**report, "isolated": True}


def _set_cpu(cpu_s: float) -> None:
    """Give this execution `cpu_s` more CPU seconds (SIGXCPU kills the process past them)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = math.ceil(used + cpu_s)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY and soft > hard:
        soft = hard
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _limit_of(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, SandboxRefused):
        return exc.limit, str(exc)
    if isinstance(exc, PolicyViolation):
        return "policy", str(exc)
    if isinstance(exc, MemoryError):
        return "memory", "out of memory"
    if isinstance(exc, RecursionError):
        return "recursion", "maximum recursion depth exceeded"
    if isinstance(exc, BlockingIOError) and exc.errno == errno.EAGAIN:
        return "processes", "no new processes"
    if isinstance(exc, OSError) and exc.errno in _NET_ERRNOS:
        return "network", f"{exc.strerror} (network: false)"
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        return "files", "too many open files"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "files", "file too large"
    return "error", f"{type(exc).__name__}: {exc}"


def execute(request: dict[str, Any], cache: CompileCache, config: dict[str, Any]) -> dict[str, Any]:
    """Run one request; the reply holds `result` and `stdout`, or the limit that stopped it."""
    started = time.perf_counter()
    hits = cache.hits
    if config["isolated"]:
        _set_cpu(float(request["cpu_s"]))
    data = request.get("data") or {}
    try:
        code = cache.get(request["code"], restricted=config["restricted"])
    except (PolicyViolation, SyntaxError) as exc:
        # Refused before any of it ran: the worker stays clean and is kept.
        error = f"syntax error: {exc.msg} (line {exc.lineno})" if isinstance(exc, SyntaxError) else str(exc)
        return {"ok": False, "limit": "policy", "error": error, "ran": False, "cached": False}
    try:
        scope = restricted_globals(data) if config["restricted"] else {"__name__": "node", **data}
        exec(code, scope)
        printer = scope.get("_print")
        reply: dict[str, Any] = {
            "ok": True,
            "result": scope.get("result"),
            "stdout": str(printer()) if config["restricted"] and callable(printer) else "",
        }
    except BaseException as exc:  # noqa: BLE001 - everything the code raised becomes its result
        limit, message = _limit_of(exc)
        reply = {"ok": False, "limit": limit, "error": message}
    if reply["ok"]:
        try:
            size = len(json.dumps(reply, ensure_ascii=False).encode())
        except (TypeError, ValueError) as exc:
            reply = {"ok": False, "limit": "error", "error": f"result is not JSON: {exc}"}
        except MemoryError:
            reply = {"ok": False, "limit": "memory", "error": "out of memory"}
        else:
            if size > int(request["output_bytes"]):
                reply = {"ok": False, "limit": "output", "error": f"output over {request['output_bytes']} bytes"}
    reply["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    reply["cached"] = cache.hits > hits
    return reply


def _on_cpu_limit(stdout: IO[bytes]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        # Past the execution's CPU seconds: answer for it and end the process (the pool replaces it).
        write_frame(stdout, {"ok": False, "limit": "cpu", "error": "CPU time limit reached"})
        os._exit(0)

    return handler


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    signal.signal(signal.SIGXCPU, _on_cpu_limit(stdout))
    # Nothing the code prints reaches the pipe to the parent.
    sys.stdout = sys.stderr
    config = read_frame(stdin)
    if config is None:
        return
    report = isolate(config, os.getcwd())
    write_frame(stdout, {"ready": True, **report})
    cache = CompileCache()
    while True:
        request = read_frame(stdin)
        if request is None:
            return
        try:
            reply = execute(request, cache, config)
        except MemoryError:
            reply = {"ok": False, "limit": "memory", "error": "out of memory"}
        try:
            write_frame(stdout, reply)
        except (TypeError, ValueError) as exc:  # a result JSON cannot hold
            write_frame(stdout, {"ok": False, "limit": "error", "error": f"the result is not JSON: {exc}"})
        except MemoryError:
            write_frame(stdout, {"ok": False, "limit": "memory", "error": "out of memory"})


if __name__ == "__main__":
    main()
