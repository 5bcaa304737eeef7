"""MLflow: the one package that imports it (besides `actors.evals`, whose GenAI evaluation it is).

Importing MLflow offline and quietly, experiments with their artifacts beside the tracking database,
and prompts fetched from the prompt registry. The observer's trace writer and the command line build
on these; nothing an agent runs imports this package.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.flow.prompt_registry import mlflow_uri_of, references, to_template
from configs import FlowSpec
from configs.errors import ActorError

__all__ = ["artifact_root", "experiment_id", "fetch_prompts", "import_mlflow", "prompt_fetcher"]


def import_mlflow() -> Any:
    """Import MLflow quietly and offline (no telemetry; litellm's price map from the package, not the web),
    its log lines going through our logging (`actors.runtime.logs`).

    Raises:
        ActorError: MLflow is not installed.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # MLflow's loggers then propagate to the root logger, which renders them like every other line.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    try:
        import mlflow
    except ImportError as exc:
        raise ActorError("MLflow is not installed: pip install 'ca-actors[mlflow]'") from exc
    return mlflow


def artifact_root(tracking_uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a SQLite tracking database (MLflow's default is
    ``./mlruns`` under whatever directory the process runs in); the server's choice otherwise."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def experiment_id(mlflow: Any, tracking_uri: str, name: str) -> str:
    """The id of experiment `name` at `tracking_uri`, created (with `artifact_root`) when missing."""
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_root(tracking_uri)))
    except Exception:
        found = client.get_experiment_by_name(name)  # created meanwhile by another process
        if found is None:
            raise
        return str(found.experiment_id)


def fetch_prompts(spec: FlowSpec, tracking_uri: str) -> dict[str, str]:
    """Fetch the registry prompts of `spec`: node id → template text (empty when there are none).

    Raises:
        ActorError: MLflow is missing, or a prompt cannot be loaded (the message names node and prompt).
    """
    refs = references(spec)
    if not refs:
        return {}
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    prompts: dict[str, str] = {}
    for node, ref in refs.items():
        uri = mlflow_uri_of(ref)
        try:
            prompt = mlflow.genai.load_prompt(uri, link_to_model=False)
        except Exception as exc:
            raise ActorError(
                f"flow '{spec.flow.name}', node '{node}': prompt {ref} not found in {tracking_uri}: {exc}"
            ) from exc
        if prompt is None or not isinstance(prompt.template, str):
            raise ActorError(f"flow '{spec.flow.name}', node '{node}': prompt {ref} is not a text prompt")
        prompts[node] = to_template(prompt.template)
    return prompts


def prompt_fetcher(tracking_uri: str) -> Callable[[FlowSpec], dict[str, str]]:
    """`fetch_prompts` bound to one tracking server, for `actors.flow.load_flows`."""
    return functools.partial(fetch_prompts, tracking_uri=tracking_uri)
