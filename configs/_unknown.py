"""Errors for keys a flow file uses that the models do not know: a misspelled key must not pass silently."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from configs._issues import closest
from configs._locs import KeyPath, Problem, format_path
from configs._schema import LLMSpec, MlflowSpec, ObservabilitySpec, StorageSpec

# Models whose extra keys are passed on (to the LLM provider): warn only about likely typos.
_PASSTHROUGH: tuple[type[BaseModel], ...] = (LLMSpec,)
# Seed blocks with keys of the earlier platform this one does not use: a warning says each is ignored.
_IGNORED: tuple[type[BaseModel], ...] = (ObservabilitySpec, MlflowSpec, StorageSpec)


def unknown_keys(model: type[BaseModel], data: Any, path: KeyPath = ()) -> list[Problem]:
    """Return an error for every key of `data` (recursively) that `model` does not declare.

    Args:
        model: The model that `data` is meant for.
        data: The raw data from the YAML file (anything; non-mappings are skipped).
        path: Key path of `data`.

    Returns:
        One error per unknown key, naming the closest known key.
    """
    if not isinstance(data, Mapping):
        return []
    known = {info.alias or name: info.annotation for name, info in model.model_fields.items()}
    problems: list[Problem] = []
    for key, value in data.items():
        if key in known:
            problems += _descend(known[key], value, (*path, key))
            continue
        hint = closest(str(key), known)
        if issubclass(model, _PASSTHROUGH) and hint is None:
            continue
        where = format_path(path) or "the top level"
        if issubclass(model, _IGNORED) and hint is None:
            message = f"key {key!r} in {where} is ignored (used: {', '.join(known)})"
            problems.append(Problem((*path, key), message, severity="warning"))
            continue
        listing = "" if hint else f" (known keys: {', '.join(known)})"
        problems.append(Problem((*path, key), f"unknown key {key!r} in {where}{listing}", hint, "error"))
    return problems


def _descend(annotation: Any, value: Any, path: KeyPath) -> list[Problem]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return unknown_keys(annotation, value, path)
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        for arg in args:
            arg_origin = get_origin(arg) or arg
            if isinstance(value, Mapping) and (arg_origin is dict or _is_model(arg)):
                return _descend(arg, value, path)
            if isinstance(value, list) and arg_origin is list:
                return _descend(arg, value, path)
        return []
    if origin is list and args and isinstance(value, list):
        problems: list[Problem] = []
        for index, item in enumerate(value):
            problems += _descend(args[0], item, (*path, index))
        return problems
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        problems = []
        for key, item in value.items():
            problems += _descend(args[1], item, (*path, key))
        return problems
    return []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
