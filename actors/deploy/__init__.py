"""``ca-actors deploy``: manifests for running flows on many machines (Docker Compose, Kubernetes).

deployment = analyse(plans)               # which agents, tools and secrets the flows need
tree = k8s_tree(deployment, version="0.1.0")   # validated files, path -> text
write_tree(tree, Path("out"))
"""

from actors.deploy.analysis import Deployment, NodePool, ToolHost, analyse, dns_name, model_env
from actors.deploy.compose import render_compose
from actors.deploy.files import compose_tree, dump, k8s_tree, write_tree
from actors.deploy.k8s import render_k8s
from actors.deploy.validate import ManifestError, check_compose, check_k8s, compose_problems, k8s_problems

__all__ = [
    "Deployment",
    "ManifestError",
    "NodePool",
    "ToolHost",
    "analyse",
    "check_compose",
    "check_k8s",
    "compose_problems",
    "compose_tree",
    "dns_name",
    "dump",
    "k8s_problems",
    "k8s_tree",
    "model_env",
    "render_compose",
    "render_k8s",
    "write_tree",
]
