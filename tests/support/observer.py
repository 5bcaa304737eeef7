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
    found = traces_so_far(settings)
    assert found is not None, "the observer created no experiment"
    return found


def traces_so_far(settings: Settings) -> list[Any] | None:
    """The traces of the settings' experiment, or None while the observer has not created it."""
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(settings.mlflow_uri())
    experiment = mlflow.MlflowClient().get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return None
    return list(mlflow.search_traces(locations=[experiment.experiment_id], return_type="list"))
