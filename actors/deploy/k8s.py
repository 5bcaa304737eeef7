"""Kubernetes manifests for a `Deployment`: a kustomize base and two overlays (``dev``, ``prod``).

The base holds a 3-node NATS cluster (a StatefulSet: JetStream file storage, cluster routes, streams
with 3 replicas), one Deployment per control-plane role, one Deployment per flow node with a KEDA
``ScaledObject`` on its JetStream consumer's lag, PodDisruptionBudgets, requests and limits,
NetworkPolicies and references to Secrets the operator creates (never their values). The official NATS
Helm chart is the alternative to the StatefulSet here (see docs/deploy.md); kustomize cannot pull it
offline.
"""

from __future__ import annotations

from typing import Any

from actors.deploy.analysis import Deployment, NodePool, ToolHost
from actors.deploy.roles import (
    AGENT_GRACE_S,
    AGENT_IMAGE,
    CONTROL_GRACE_S,
    CONTROL_IMAGE,
    NATS_IMAGE,
    POSTGRES_IMAGE,
    USER_ID,
    WORKER,
    Resources,
    Role,
    control_roles,
)
from bus import topology
from bus.natsconf import CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT, NatsCluster, NatsServerConfig, cluster_routes

PART_OF = {"app.kubernetes.io/part-of": "ca-actors"}
NATS_REPLICAS = 3
NATS_HEADLESS = "nats-headless"
LLM_SECRET = "ca-actors-llm"
TOOLS_SECRET = "ca-actors-tools"
STORE_SECRET = "ca-actors-store"
FLOWS_CONFIGMAP = "ca-actors-flows"
MLFLOW_PORT = 5000
Doc = dict[str, Any]


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, **PART_OF}


def _meta(name: str, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": _labels(component), **extra}


def _resources(r: Resources) -> dict[str, Any]:
    return {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }


_SECURE_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
}
_SECURE_POD = {
    "runAsNonRoot": True,
    "runAsUser": USER_ID,
    "fsGroup": USER_ID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def nats_config() -> NatsServerConfig:
    """One member of the cluster: its name from the pod, routes to every member through the headless Service."""
    hosts = [f"nats-{i}.{NATS_HEADLESS}" for i in range(NATS_REPLICAS)]
    return NatsServerConfig(
        server_name="$POD_NAME",
        store_dir="/data/jetstream",
        max_file_store="10G",
        pid_file="/var/run/nats/nats.pid",
        cluster=NatsCluster(routes=cluster_routes(hosts)),
    )


def nats_manifests() -> list[Doc]:
    """ConfigMap, headless and client Services, StatefulSet and PodDisruptionBudget of the NATS cluster."""
    ports = [
        {"name": "client", "port": CLIENT_PORT},
        {"name": "cluster", "port": CLUSTER_PORT},
        {"name": "monitor", "port": MONITOR_PORT},
    ]
    probe = {"httpGet": {"path": "/healthz?js-enabled-only=true", "port": MONITOR_PORT}, "periodSeconds": 10}
    conf = nats_config()
    container = {
        "name": "nats",
        "image": NATS_IMAGE,
        "args": ["-c", "/etc/nats/nats.conf"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": p["name"], "containerPort": p["port"]} for p in ports],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/nats"},
            {"name": "data", "mountPath": "/data"},
            {"name": "pid", "mountPath": "/var/run/nats"},
        ],
        "resources": _resources(Resources("250m", "512Mi", "2", "2Gi")),
        "startupProbe": {**probe, "failureThreshold": 30},
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": MONITOR_PORT}, "periodSeconds": 30},
        # Lame duck mode: clients move to the other members before this one stops.
        "lifecycle": {"preStop": {"exec": {"command": ["nats-server", "--signal", f"ldm={conf.pid_file}"]}}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("nats-config", "nats"),
            "data": {"nats.conf": conf.render()},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(NATS_HEADLESS, "nats"),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": _labels("nats"),
                "ports": ports,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("nats", "nats"),
            "spec": {"selector": _labels("nats"), "ports": [ports[0], ports[2]]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("nats", "nats"),
            "spec": {
                "serviceName": NATS_HEADLESS,
                "replicas": NATS_REPLICAS,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": _labels("nats")},
                "template": {
                    "metadata": {"labels": _labels("nats")},
                    "spec": {
                        "terminationGracePeriodSeconds": conf.lame_duck_duration_s + 30,
                        "containers": [container],
                        "volumes": [
                            {"name": "config", "configMap": {"name": "nats-config"}},
                            {"name": "pid", "emptyDir": {}},
                        ],
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": _labels("nats")},
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}},
                    }
                ],
            },
        },
        _pdb("nats", "nats", max_unavailable=1),
    ]


def _pdb(name: str, component: str, *, max_unavailable: int) -> Doc:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, component),
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": _labels(component)}},
    }


def _secret_env(names: list[str] | tuple[str, ...], secret: str) -> list[Doc]:
    """Each name from the operator's Secret `secret` (optional: a provider that is not used needs no key)."""
    return [{"name": n, "valueFrom": {"secretKeyRef": {"name": secret, "key": n, "optional": True}}} for n in names]


def _health_probe(kind: str) -> Doc:
    return {
        "exec": {"command": ["ca-actors", "health", "--kind", kind]},
        "initialDelaySeconds": 20,
        "periodSeconds": 30,
        "timeoutSeconds": 10,
        "failureThreshold": 3,
    }


def _deployment(
    name: str,
    component: str,
    *,
    image: str,
    args: list[str],
    env: list[Doc],
    resources: Resources,
    replicas: int | None,
    grace_s: int,
    kind: str,
    volumes: list[Doc] | None = None,
    mounts: list[Doc] | None = None,
) -> Doc:
    container: Doc = {
        "name": component,
        "image": image,
        "args": args,
        "env": [
            {"name": "CA_NATS_URL", "value": f"nats://nats:{CLIENT_PORT}"},
            {"name": "CA_ROLE", "value": kind},
            {"name": "CA_STREAM_REPLICAS", "value": str(NATS_REPLICAS)},
            *env,
        ],
        "resources": _resources(resources),
        "livenessProbe": _health_probe(kind),
        "securityContext": _SECURE_CONTAINER,
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod: Doc = {
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": _SECURE_POD,
        "containers": [container],
    }
    if volumes:
        pod["volumes"] = volumes
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, component),
        "spec": {
            # None for a Deployment KEDA scales: a re-apply must not reset what the autoscaler chose.
            **({"replicas": replicas} if replicas is not None else {}),
            "selector": {"matchLabels": _labels(component)},
            "template": {"metadata": {"labels": _labels(component)}, "spec": pod},
        },
    }


def _control(role: Role, deployment: Deployment, version: str) -> list[Doc]:
    args = ["actor", role.kind]
    env: list[Doc] = []
    volumes: list[Doc] = []
    mounts: list[Doc] = []
    if role.needs_flows:
        args += ["--flows", "/flows"]
        volumes.append({"name": "flows", "configMap": {"name": FLOWS_CONFIGMAP}})
        mounts.append({"name": "flows", "mountPath": "/flows", "readOnly": True})
    if role.needs_store:
        env.append({"name": "CA_STORE_URL", "valueFrom": {"secretKeyRef": {"name": STORE_SECRET, "key": "url"}}})
    if role.writes_traces:
        env.append({"name": "CA_MLFLOW_TRACKING_URI", "value": f"http://mlflow:{MLFLOW_PORT}"})
    if role.holds_llm_keys:
        env.append({"name": "CA_LLM_DEFAULT", "value": "mock"})
        env += _secret_env(deployment.gateway_env, LLM_SECRET)
    docs = [
        _deployment(
            role.kind,
            role.kind,
            image=f"{CONTROL_IMAGE}:{version}",
            args=args,
            env=env,
            resources=role.resources,
            replicas=role.replicas,
            grace_s=CONTROL_GRACE_S,
            kind=role.kind,
            volumes=volumes,
            mounts=mounts,
        )
    ]
    if role.replicas > 1:
        docs.append(_pdb(role.kind, role.kind, max_unavailable=1))
    return docs


def scaled_object(pool: NodePool, namespace: str, *, max_replicas: int, lag_threshold: int) -> Doc:
    """KEDA's ``nats-jetstream`` scaler on the node's durable consumer: more pending work, more agents."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(pool.name, pool.name),
        "spec": {
            "scaleTargetRef": {"name": pool.name},
            "minReplicaCount": 1,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 10,
            "cooldownPeriod": 120,
            "triggers": [
                {
                    "type": "nats-jetstream",
                    "metadata": {
                        # The headless Service: KEDA asks each member, so it finds the consumer's leader.
                        "natsServerMonitoringEndpoint": f"{NATS_HEADLESS}.{namespace}.svc.cluster.local:{MONITOR_PORT}",
                        "account": "$G",
                        "stream": topology.WORK,
                        "consumer": pool.durable,
                        "lagThreshold": str(lag_threshold),
                        "activationLagThreshold": "0",
                        "useHttps": "false",
                    },
                }
            ],
        },
    }


def _pool(pool: NodePool, version: str, namespace: str, *, max_replicas: int, lag_threshold: int) -> list[Doc]:
    deployment = _deployment(
        pool.name,
        pool.name,
        image=f"{AGENT_IMAGE}:{version}",
        args=["agent", "--nodes", pool.flow_node],
        env=_secret_env(pool.env, TOOLS_SECRET),
        resources=WORKER.resources,
        replicas=None,
        grace_s=AGENT_GRACE_S,
        kind=WORKER.kind,
    )
    deployment["metadata"]["labels"]["ca-actors/flow-node"] = pool.flow_node.replace("_", "-")
    return [
        deployment,
        scaled_object(pool, namespace, max_replicas=max_replicas, lag_threshold=lag_threshold),
        _pdb(pool.name, pool.name, max_unavailable=1),
    ]


def _tool_host(host: ToolHost, version: str) -> Doc:
    return _deployment(
        host.name,
        host.name,
        image=f"{AGENT_IMAGE}:{version}",
        args=["agent", "--name", host.actor, "--serve-tools"],
        env=_secret_env(host.env, TOOLS_SECRET),
        resources=WORKER.resources,
        replicas=1,
        grace_s=AGENT_GRACE_S,
        kind=WORKER.kind,
    )


def _mlflow(version: str) -> list[Doc]:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta("mlflow-data", "mlflow"),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    container = {
        "name": "mlflow",
        "image": f"{CONTROL_IMAGE}:{version}",
        "command": ["mlflow", "server"],
        "args": [
            "--host=0.0.0.0",
            f"--port={MLFLOW_PORT}",
            "--workers=1",
            "--backend-store-uri=sqlite:////mlflow/mlflow.db",
            f"--allowed-hosts=mlflow,mlflow:{MLFLOW_PORT},localhost,localhost:{MLFLOW_PORT}",
        ],
        "ports": [{"name": "http", "containerPort": MLFLOW_PORT}],
        "volumeMounts": [{"name": "data", "mountPath": "/mlflow"}],
        "resources": _resources(Resources("100m", "512Mi", "1", "2Gi")),
        # MLflow takes 30-60 s to start (DESIGN §6).
        "startupProbe": {"tcpSocket": {"port": MLFLOW_PORT}, "periodSeconds": 5, "failureThreshold": 36},
        "securityContext": _SECURE_CONTAINER,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("mlflow", "mlflow"),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _labels("mlflow")},
            "template": {
                "metadata": {"labels": _labels("mlflow")},
                "spec": {
                    "securityContext": _SECURE_POD,
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "mlflow-data"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("mlflow", "mlflow"),
        "spec": {"selector": _labels("mlflow"), "ports": [{"name": "http", "port": MLFLOW_PORT}]},
    }
    return [pvc, deployment, service]


def _peer(component: str | None = None) -> Doc:
    return {"podSelector": {"matchLabels": _labels(component) if component else PART_OF}}


def network_policies() -> list[Doc]:
    """Deny all ingress to the stack's pods, then open NATS (clients from the stack, routes between
    members, monitoring from the stack and KEDA) and MLflow (from the observer)."""

    def policy(name: str, selector: Doc, ingress: list[Doc]) -> Doc:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(name, "network"),
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
        }

    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    return [
        policy("ca-actors-deny-ingress", {"matchLabels": PART_OF}, []),
        policy(
            "nats-clients",
            {"matchLabels": _labels("nats")},
            [
                {"from": [_peer()], "ports": [{"port": CLIENT_PORT}]},
                {"from": [_peer("nats")], "ports": [{"port": CLUSTER_PORT}]},
                {"from": [_peer(), keda], "ports": [{"port": MONITOR_PORT}]},
            ],
        ),
        policy(
            "mlflow-from-observer",
            {"matchLabels": _labels("mlflow")},
            [{"from": [_peer("observer")], "ports": [{"port": MLFLOW_PORT}]}],
        ),
    ]


def flows_configmap(deployment: Deployment) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(FLOWS_CONFIGMAP, "scheduler"),
        "data": {f.file_name: f.source for f in deployment.flows},
    }


def render_k8s(
    deployment: Deployment,
    *,
    version: str,
    namespace: str = "ca-actors",
    max_agents: int = 10,
    lag_threshold: int = 10,
) -> dict[str, list[Doc]]:
    """The kustomize tree as data: relative path → the documents of that file (kustomization files included)."""
    control = [doc for role in control_roles() for doc in _control(role, deployment, version)]
    agents = [
        doc
        for pool in deployment.pools
        for doc in _pool(pool, version, namespace, max_replicas=max_agents, lag_threshold=lag_threshold)
    ]
    agents += [_tool_host(host, version) for host in deployment.tool_hosts]
    base = {
        "base/namespace.yaml": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": PART_OF}}
        ],
        "base/nats.yaml": nats_manifests(),
        "base/flows.yaml": [flows_configmap(deployment)],
        "base/control.yaml": control,
        "base/agents.yaml": agents,
        "base/mlflow.yaml": _mlflow(version),
        "base/network.yaml": network_policies(),
    }
    base["base/kustomization.yaml"] = [
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": [path.removeprefix("base/") for path in base],
        }
    ]
    images = [
        {"name": AGENT_IMAGE, "newTag": version},
        {"name": CONTROL_IMAGE, "newTag": version},
    ]
    dev_store = f"postgresql://ca:ca-dev@postgres.{namespace}.svc.cluster.local:5432/ca"
    overlays = {
        "overlays/dev/kustomization.yaml": [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "resources": ["../../base", "postgres.yaml"],
                "images": images,
                # A throw-away store for trying the stack; production brings its own Secret (see prod).
                "secretGenerator": [
                    {"name": STORE_SECRET, "literals": [f"url={dev_store}"], "options": {"disableNameSuffixHash": True}}
                ],
            }
        ],
        "overlays/dev/postgres.yaml": _dev_postgres(),
        "overlays/prod/kustomization.yaml": [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": namespace,
                "resources": ["../../base"],
                "images": [{**image, "newName": f"registry.example.com/{image['name']}"} for image in images],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "llm-gateway"},
                        "patch": '[{"op": "replace", "path": "/spec/replicas", "value": 3}]',
                    },
                    {
                        "target": {"kind": "ScaledObject"},
                        "patch": '[{"op": "replace", "path": "/spec/minReplicaCount", "value": 2}]',
                    },
                ],
            }
        ],
    }
    return base | overlays


def _dev_postgres() -> list[Doc]:
    labels = _labels("postgres")
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("postgres", "postgres"),
            "spec": {
                "serviceName": "postgres",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "postgres",
                                "image": POSTGRES_IMAGE,
                                "env": [
                                    {"name": "POSTGRES_USER", "value": "ca"},
                                    {"name": "POSTGRES_DB", "value": "ca"},
                                    {"name": "POSTGRES_PASSWORD", "value": "ca-dev"},
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "ports": [{"name": "pg", "containerPort": 5432}],
                                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                                "resources": _resources(Resources("100m", "256Mi", "1", "1Gi")),
                                "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "ca"]}, "periodSeconds": 5},
                            }
                        ]
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
                    }
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("postgres", "postgres"),
            "spec": {"selector": labels, "ports": [{"name": "pg", "port": 5432}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("postgres-from-store-users", "network"),
            "spec": {
                "podSelector": {"matchLabels": labels},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"from": [_peer("memory"), _peer("observer")], "ports": [{"port": 5432}]},
                ],
            },
        },
    ]
