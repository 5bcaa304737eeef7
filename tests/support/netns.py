"""Separate "hosts" on this machine: Linux network namespaces on one bridge, each with its own address.

`Network` makes a bridge (no address of its own but the test driver's, `.254`) and, per host, a
namespace joined to it by a veth pair; a host reaches the others only through its own ``eth0``.
Processes run in a host with ``ip netns exec``. `link_down` / `link_up` cut and restore one host's
cable. Everything (processes, namespaces, the bridge) goes away in `close()`, which the fixture calls
whatever happened; names are unique per test run, so parallel runs and leftovers never collide.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@dataclass
class Host:
    name: str
    netns: str
    veth: str
    address: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Network:
    """A bridge and the namespaces on it (root needed)."""

    def __init__(self, logs: Path) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.bridge = f"cab{tag}"
        # 10.<200-249>.<0-255>.0/24: private, and unlikely to be any real network of this machine.
        n = int(tag, 16)
        self.prefix = f"10.{200 + n % 50}.{(n >> 8) % 256}"
        self.driver_address = f"{self.prefix}.254"
        self.logs = logs
        self.hosts: dict[str, Host] = {}

    def start(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.driver_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        host = Host(name, f"ca-{self.tag}-{name}", f"cav{self.tag}{index:x}", f"{self.prefix}.{index}")
        subprocess.run(["ip", "netns", "add", host.netns], check=True)
        self.hosts[name] = host
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        _ip("addr", "add", f"{host.address}/24", "dev", "eth0", ns=host.netns)
        _ip("link", "set", "eth0", "up", ns=host.netns)
        _ip("link", "set", "lo", "up", ns=host.netns)
        return host

    def run(self, host: str, args: list[str], *, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        """Start `args` inside `host`'s namespace, output to logs/<log>.log."""
        h = self.hosts[host]
        self.logs.mkdir(parents=True, exist_ok=True)
        out = (self.logs / f"{log}.log").open("ab")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, *args],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        h.procs.append(proc)
        return proc

    def link_down(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].veth, "down")

    def link_up(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].veth, "up")

    def close(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL), delete the namespaces and the bridge. Idempotent.

        Hosts stop in the reverse order of their creation: the actors before the servers they talk to.
        """
        procs = [p for h in reversed(self.hosts.values()) for p in reversed(h.procs) if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.netns], check=False, capture_output=True)
        self.hosts.clear()
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
