"""What the observer tests (integration and chaos) read: traced settings and the MLflow traces they lead to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.tracking import import_mlflow
from configs import Settings


def traced(settings: Settings, tmp_path: Path, **update: Any) -> Settings:
    return settings.model_copy(
        update={"traces": True, "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", **update}
    )


def mlflow_traces(settings: Settings) -> list[Any]:
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(settings.mlflow_uri())
    experiment = mlflow.MlflowClient().get_experiment_by_name(settings.mlflow_experiment)
    assert experiment is not None, "the observer created no experiment"
    return list(mlflow.search_traces(locations=[experiment.experiment_id], return_type="list"))
