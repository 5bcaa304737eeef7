"""Schema checks of generated manifests, offline: Kubernetes kinds against `kubernetes-validate`'s
bundled schemas (strict), KEDA ScaledObjects and compose files against the schemas in ``schemas/``.

Needs the ``[deploy]`` extra (kubernetes-validate, jsonschema). Each problem is one line naming the
file, the document and the path of the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

from configs.errors import CaActorsError

KUBERNETES_VERSION = "1.31.0"
# Kinds kustomize reads, not the API server: checked by `kubectl kustomize` instead.
_KUSTOMIZE_KINDS = {"Kustomization", "Component"}


class ManifestError(CaActorsError, ValueError):
    """Generated manifests that do not validate; `problems` has one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("manifests do not validate:\n  " + "\n  ".join(problems))


class MissingExtraError(CaActorsError):
    """A command needs an optional extra that is not installed."""


def _missing_extra(exc: ImportError) -> MissingExtraError:
    return MissingExtraError(f"validating manifests needs the [deploy] extra: pip install 'ca-actors[deploy]' ({exc})")


@cache
def _schema(name: str) -> Any:
    return json.loads(resources.files("actors.deploy").joinpath("schemas", name).read_text())


def _where(path: Iterable[Any]) -> str:
    return "/".join(str(p) for p in path) or "(root)"


def _json_schema_problems(schema_name: str, doc: Any, label: str) -> list[str]:
    try:
        import jsonschema  # type: ignore[import-untyped] # jsonschema ships no type hints
    except ImportError as exc:
        raise _missing_extra(exc) from None
    schema = _schema(schema_name)
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{label}: {_where(e.absolute_path)}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def compose_problems(doc: Any, label: str = "compose.yaml") -> list[str]:
    """Problems of a compose file against the Compose Specification's schema."""
    return _json_schema_problems("compose-spec.json", doc, label)


def k8s_problems(doc: Any, label: str) -> list[str]:
    """Problems of one Kubernetes document: its kind's schema (strict), ScaledObjects against KEDA's fields."""
    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        return [f"{label}: not a Kubernetes object (no apiVersion/kind)"]
    name = f"{label}: {doc['kind']} {doc.get('metadata', {}).get('name', '?')}"
    if doc["kind"] in _KUSTOMIZE_KINDS:
        return []
    if doc["apiVersion"] == "keda.sh/v1alpha1":
        return _json_schema_problems("keda-scaledobject.json", doc, name)
    try:
        import kubernetes_validate
    except ImportError as exc:
        raise _missing_extra(exc) from None
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{name}: {_where(exc.path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {doc['apiVersion']} {doc['kind']} in Kubernetes {KUBERNETES_VERSION}"]
    return []


def check_k8s(files: dict[str, list[Any]]) -> None:
    """Raise `ManifestError` listing every problem of a tree of Kubernetes files (path → documents)."""
    problems = [
        p for path, docs in files.items() for i, doc in enumerate(docs) for p in k8s_problems(doc, f"{path}#{i}")
    ]
    if problems:
        raise ManifestError(problems)


def check_compose(doc: Any, label: str = "compose.yaml") -> None:
    """Raise `ManifestError` when a compose file does not validate."""
    problems = compose_problems(doc, label)
    if problems:
        raise ManifestError(problems)
