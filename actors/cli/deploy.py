"""``ca-actors deploy FLOWS... --target compose|k8s --out DIR``: manifests for running flows on many machines."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from actors.deploy import ManifestError, analyse, compose_tree, k8s_tree, write_tree
from actors.deploy.gates import blocking_gates
from actors.flow import load_flows
from actors.runtime.presence import package_version
from actors.tracking import prompt_fetcher
from configs import Settings

HELP = """Generate deployment files for FLOWS (files or directories), validated before anything is written.

What it works out from the flows: one agent pool per node (Kubernetes: a Deployment scaled by a KEDA
ScaledObject on the node's JetStream consumer lag), agents for tools pinned to an actor
(`tools: [{name, actor}]`), and the secrets each process reads, as environment variable NAMES only
(provider keys go to the LLM gateway alone; tool keys to the agents): see secrets.env.example in DIR.

--target compose: DIR/compose.yaml (NATS with JetStream on a volume, the control plane, agents, MLflow,
an optional PostgreSQL profile), DIR/flows/ and DIR/secrets.env.example. Start it with
`docker compose -f DIR/compose.yaml up -d --scale agent=3`.

--target k8s: a kustomize base (3-node NATS cluster with JetStream file storage, streams with 3
replicas, one Deployment per role, ScaledObjects, PodDisruptionBudgets, NetworkPolicies, Secret
references) and overlays dev (a throw-away PostgreSQL) and prod. Apply with
`kubectl apply -k DIR/overlays/dev`. Needs KEDA in the cluster for the ScaledObjects.

Every manifest is checked against its schema (Kubernetes kinds with kubernetes-validate, strict;
compose with the Compose Specification's schema; ScaledObjects against KEDA's fields) and, for k8s,
rendered with `kubectl kustomize` when kubectl is installed. Needs the [deploy] extra.

--gates FILE (the JSON of `ca-actors eval --json` or `ab --json`): nothing is written when a verdict
says the result is not deployable (a gate with on_fail BLOCK_DEPLOY failed)."""


def _kustomize_check(tree: dict[str, str]) -> list[str]:
    """Render every overlay with ``kubectl kustomize`` (when kubectl is here); the problems found."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return []
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(tree, Path(tmp))
        for overlay in sorted(Path(tmp, "overlays").iterdir()):
            done = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                problems.append(f"kubectl kustomize overlays/{overlay.name}: {done.stderr.strip()}")
    return problems


def deploy(
    flows: Annotated[list[Path], typer.Argument(help="Flow files or directories to deploy.")],
    target: Annotated[str, typer.Option("--target", help="compose or k8s.")] = "compose",
    out: Annotated[Path, typer.Option("--out", help="Directory to write the files into.")] = Path("deploy-out"),
    version: Annotated[
        str | None, typer.Option("--tag", help="Image tag of ca-actors-agent / ca-actors-control.")
    ] = None,
    namespace: Annotated[str, typer.Option("--namespace", help="k8s: the namespace of the stack.")] = "ca-actors",
    max_agents: Annotated[int, typer.Option("--max-agents", min=1, help="k8s: most agents per node.")] = 10,
    lag_threshold: Annotated[
        int, typer.Option("--lag-threshold", min=1, help="k8s: pending work items per agent before KEDA adds one.")
    ] = 10,
    flows_dir: Annotated[
        str | None,
        typer.Option(
            "--flows-dir", help="compose: mount the flows from this path (relative to DIR) instead of copying them."
        ),
    ] = None,
    build_context: Annotated[
        str | None,
        typer.Option("--build-context", help="compose: build the images from this source tree (relative to DIR)."),
    ] = None,
    gates: Annotated[
        list[Path] | None,
        typer.Option(
            "--gates",
            help="A verdict of `ca-actors eval --json` / `ab --json` (repeatable): refuse to deploy when one is "
            "not deployable (a BLOCK_DEPLOY gate failed).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a directory that is not empty.")] = False,
) -> None:
    flow_set = load_flows(flows, fetch_prompts=prompt_fetcher(Settings.from_env().mlflow_uri()))
    for error in flow_set.errors:
        typer.echo(error, err=True)
    if flow_set.errors or not flow_set.plans:
        typer.echo("error: nothing deployed" + ("" if flow_set.plans else ": no valid flow found"), err=True)
        raise typer.Exit(1)
    try:
        blockers = blocking_gates(gates or [])
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if blockers:
        typer.echo("error: not deployable, a BLOCK_DEPLOY gate failed:\n  " + "\n  ".join(blockers), err=True)
        raise typer.Exit(1)
    if target not in ("compose", "k8s"):
        raise typer.BadParameter(f"--target must be compose or k8s, not {target!r}", param_hint="--target")
    if out.exists() and any(out.iterdir()) and not force:
        typer.echo(f"error: {out} is not empty; pass --force to write into it", err=True)
        raise typer.Exit(2)
    deployment = analyse(flow_set.plans)
    tag = version or package_version()
    try:
        if target == "compose":
            tree = compose_tree(deployment, version=tag, flows_dir=flows_dir, context=build_context)
        else:
            tree = k8s_tree(
                deployment, version=tag, namespace=namespace, max_agents=max_agents, lag_threshold=lag_threshold
            )
            problems = _kustomize_check(tree)
            if problems:
                raise ManifestError(problems)
    except ManifestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    written = write_tree(tree, out)
    pools = ", ".join(p.flow_node for p in deployment.pools)
    typer.echo(f"wrote {len(written)} files to {out} ({target}, images tagged {tag}), all validated")
    typer.echo(f"nodes: {pools}")
    for host in deployment.tool_hosts:
        typer.echo(f"tool host {host.actor}: {', '.join(host.tools)}")
    secrets = deployment.secret_names()
    typer.echo(f"secrets (names): {', '.join(secrets) if secrets else 'none'}; see {out / 'secrets.env.example'}")


def register(app: typer.Typer) -> None:
    app.command(help=HELP)(deploy)
