"""``nats-server`` configuration files, written by code: one server, or one member of a JetStream cluster.

The same renderer makes the config of the Kubernetes StatefulSet (`ca-actors deploy`), of the compose
file and of the multi-host test's three servers, so what is tested is what is deployed, and
authentication (accounts, users, TLS) can be added in one place::

    conf = NatsServerConfig(
        server_name="nats-0", store_dir="/data",
        cluster=NatsCluster(routes=["nats-route://nats-1.nats:6222", "nats-route://nats-2.nats:6222"]),
    )
    Path("nats.conf").write_text(conf.render())
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

CLIENT_PORT = 4222
CLUSTER_PORT = 6222
MONITOR_PORT = 8222


class NatsCluster(BaseModel):
    """The cluster block: this server's route listener and the routes to its peers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "ca-actors"
    host: str = "0.0.0.0"
    port: int = CLUSTER_PORT
    # ``nats-route://host:6222`` of every member (a server ignores the route to itself).
    routes: list[str] = Field(default_factory=list)


class NatsServerConfig(BaseModel):
    """What one ``nats-server`` is told: where it listens, where JetStream keeps its files, its cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A name, or ``$POD_NAME``: nats-server reads ``$NAME`` (unquoted) from its environment.
    server_name: str
    host: str = "0.0.0.0"
    port: int = CLIENT_PORT
    # The monitoring endpoint (``/healthz``, ``/jsz``: KEDA's nats-jetstream scaler reads consumer lag there).
    http_port: int | None = MONITOR_PORT
    store_dir: str
    max_file_store: str | None = None
    max_memory_store: str | None = None
    cluster: NatsCluster | None = None
    # On SIGTERM, stop taking clients and move them to the other members for this long, then exit.
    lame_duck_duration_s: int = Field(default=30, ge=30)  # nats-server refuses less
    max_payload: str | None = None
    log_file: str | None = None
    # Where it writes its pid: ``nats-server --signal ldm=<pid_file>`` puts it in lame duck mode.
    pid_file: str | None = None

    def render(self) -> str:
        """The config file's text (nats-server's own format)."""
        q = json.dumps  # a JSON string is a valid quoted string in the nats-server format
        name = self.server_name if self.server_name.startswith("$") else q(self.server_name)
        lines = [
            f"server_name: {name}",
            f"listen: {q(f'{self.host}:{self.port}')}",
        ]
        if self.http_port is not None:
            lines.append(f"http: {q(f'{self.host}:{self.http_port}')}")
        if self.max_payload:
            lines.append(f"max_payload: {self.max_payload}")
        lines.append(f"lame_duck_duration: {q(f'{self.lame_duck_duration_s}s')}")
        if self.log_file:
            lines.append(f"log_file: {q(self.log_file)}")
        if self.pid_file:
            lines.append(f"pid_file: {q(self.pid_file)}")
        js = [f"  store_dir: {q(self.store_dir)}"]
        if self.max_file_store:
            js.append(f"  max_file_store: {self.max_file_store}")
        if self.max_memory_store:
            js.append(f"  max_memory_store: {self.max_memory_store}")
        lines += ["jetstream {", *js, "}"]
        if self.cluster is not None:
            c = self.cluster
            routes = "".join(f"\n    {q(r)}" for r in c.routes)
            lines += [
                "cluster {",
                f"  name: {q(c.name)}",
                f"  listen: {q(f'{c.host}:{c.port}')}",
                f"  routes: [{routes}\n  ]",
                "}",
            ]
        return "\n".join(lines) + "\n"


def cluster_routes(hosts: list[str], port: int = CLUSTER_PORT) -> list[str]:
    """The route URLs of a cluster whose members listen on `hosts` (names or addresses)."""
    return [f"nats-route://{host}:{port}" for host in hosts]
