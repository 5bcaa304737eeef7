"""A Docker Compose file for a `Deployment`: NATS with JetStream on a volume, the control plane, N agents.

One command starts it (``docker compose up -d --scale agent=3``); secrets come from an env file
(``secrets.env``, optional: a stack on the mock model needs none).
"""

from __future__ import annotations

from typing import Any

from actors.deploy.analysis import Deployment
from actors.deploy.roles import (
    AGENT_GRACE_S,
    AGENT_IMAGE,
    CONTROL_GRACE_S,
    CONTROL_IMAGE,
    NATS_IMAGE,
    POSTGRES_IMAGE,
    WORKER,
    Role,
    control_roles,
)
from bus.natsconf import CLIENT_PORT, MONITOR_PORT, NatsServerConfig

SECRETS_FILE = "secrets.env"
NATS_URL = f"nats://nats:{CLIENT_PORT}"
MLFLOW_PORT = 5000


def nats_config() -> NatsServerConfig:
    """The compose stack's single NATS server (a cluster is the Kubernetes manifests' job)."""
    return NatsServerConfig(server_name="nats-0", store_dir="/data/jetstream", max_file_store="10G")


def _health(kind: str) -> dict[str, Any]:
    return {
        "test": ["CMD", "ca-actors", "health", "--kind", kind],
        "interval": "30s",
        "timeout": "10s",
        "start_period": "30s",
        "retries": 3,
    }


def _image(family: str, version: str, context: str | None) -> dict[str, Any]:
    name = AGENT_IMAGE if family == "agent" else CONTROL_IMAGE
    spec: dict[str, Any] = {"image": f"{name}:{version}"}
    if context is not None:
        spec["build"] = {"context": context, "dockerfile": f"deploy/Dockerfile.{family}"}
    return spec


def _env_file() -> list[dict[str, Any]]:
    return [{"path": SECRETS_FILE, "required": False}]


def _actor(role: Role, version: str, context: str | None, flows_dir: str) -> dict[str, Any]:
    command = ["actor", role.kind]
    env: dict[str, str] = {"CA_NATS_URL": NATS_URL, "CA_ROLE": role.kind}
    service: dict[str, Any] = {**_image(role.image, version, context), "command": command}
    volumes: list[str] = []
    if role.needs_flows:
        command += ["--flows", "/flows"]
        volumes.append(f"{flows_dir}:/flows:ro")
    if role.needs_store:
        env["CA_STORE_URL"] = "${CA_STORE_URL:-sqlite:////data/store.db}"
        volumes.append("store-data:/data")
    if role.writes_traces:
        env["CA_MLFLOW_TRACKING_URI"] = f"http://mlflow:{MLFLOW_PORT}"
    if role.holds_llm_keys:
        # `mock` unless the flows name a model or CA_LLM_DEFAULT says otherwise (e.g. ollama_chat/llama3.2).
        env["CA_LLM_DEFAULT"] = "${CA_LLM_DEFAULT:-mock}"
        service["env_file"] = _env_file()
    service["environment"] = env
    if volumes:
        service["volumes"] = volumes
    depends: dict[str, Any] = {"nats": {"condition": "service_healthy"}}
    if role.writes_traces:
        depends["mlflow"] = {"condition": "service_started"}
    service |= {
        "depends_on": depends,
        "restart": "unless-stopped",
        "healthcheck": _health(role.kind),
        "stop_signal": "SIGTERM",
        "stop_grace_period": f"{CONTROL_GRACE_S}s",
    }
    if role.replicas > 1:
        service["deploy"] = {"replicas": role.replicas}
    return service


def _agent(deployment: Deployment, version: str, context: str | None, *, replicas: int) -> dict[str, Any]:
    service: dict[str, Any] = {
        **_image("agent", version, context),
        "command": ["agent"],
        "environment": {"CA_NATS_URL": NATS_URL, "CA_ROLE": WORKER.kind},
    }
    if deployment.agent_env():
        service["env_file"] = _env_file()
    return service | {
        "depends_on": {"nats": {"condition": "service_healthy"}},
        "restart": "unless-stopped",
        "healthcheck": _health(WORKER.kind),
        "stop_signal": "SIGTERM",
        "stop_grace_period": f"{AGENT_GRACE_S}s",
        "deploy": {"replicas": replicas},
    }


def render_compose(
    deployment: Deployment,
    *,
    version: str,
    flows_dir: str = "./flows",
    context: str | None = None,
    agents: int = 2,
) -> dict[str, Any]:
    """The compose file as data.

    Args:
        flows_dir: where the scheduler's flow files are, relative to the compose file.
        context: the repository root relative to the compose file, to build the images (None: pull them).
        agents: agent replicas (``--scale agent=N`` overrides it).
    """
    conf = nats_config()
    services: dict[str, Any] = {
        "nats": {
            "image": NATS_IMAGE,
            "command": ["-c", "/etc/nats/nats.conf"],
            "configs": [{"source": "nats-conf", "target": "/etc/nats/nats.conf"}],
            "volumes": ["nats-data:/data"],
            "ports": [f"127.0.0.1:{CLIENT_PORT}:{CLIENT_PORT}", f"127.0.0.1:{MONITOR_PORT}:{MONITOR_PORT}"],
            "healthcheck": {
                "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{MONITOR_PORT}/healthz"],
                "interval": "5s",
                "timeout": "3s",
                "retries": 10,
            },
            "restart": "unless-stopped",
            "stop_grace_period": f"{conf.lame_duck_duration_s + 10}s",
        }
    }
    for role in control_roles():
        services[role.kind] = _actor(role, version, context, flows_dir)
    services["agent"] = _agent(deployment, version, context, replicas=agents)
    for host in deployment.tool_hosts:
        tool_host = _agent(deployment, version, context, replicas=1)
        tool_host["command"] = ["agent", "--name", host.actor, "--serve-tools"]
        if host.env:
            tool_host["env_file"] = _env_file()
        services[host.name] = tool_host
    services["mlflow"] = {
        **_image("control", version, context),
        "entrypoint": ["mlflow"],
        "command": [
            "server",
            "--host",
            "0.0.0.0",
            "--port",
            str(MLFLOW_PORT),
            "--workers",
            "1",
            "--backend-store-uri",
            "sqlite:////mlflow/mlflow.db",
            "--allowed-hosts",
            f"mlflow,mlflow:{MLFLOW_PORT},localhost,localhost:{MLFLOW_PORT},127.0.0.1:{MLFLOW_PORT}",
            "--x-frame-options",
            "NONE",
        ],
        "volumes": ["mlflow-data:/mlflow"],
        "ports": [f"127.0.0.1:{MLFLOW_PORT}:{MLFLOW_PORT}"],
        "restart": "unless-stopped",
    }
    services["postgres"] = {
        "image": POSTGRES_IMAGE,
        "profiles": ["postgres"],
        "environment": {
            "POSTGRES_USER": "ca",
            "POSTGRES_DB": "ca",
            "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env for the postgres profile}",
        },
        "volumes": ["postgres-data:/var/lib/postgresql/data"],
        "healthcheck": {"test": ["CMD", "pg_isready", "-U", "ca"], "interval": "5s", "timeout": "3s", "retries": 10},
        "restart": "unless-stopped",
    }
    return {
        "name": "ca-actors",
        "services": services,
        "configs": {"nats-conf": {"content": conf.render()}},
        "volumes": {name: {} for name in ("nats-data", "store-data", "mlflow-data", "postgres-data")},
    }
