"""Loading the optional in-process LangGraph engine quietly."""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable
from typing import Any


def langgraph_runner() -> Callable[..., Awaitable[dict[str, Any]]]:
    """`actors.engines.langgraph.engine.run_langgraph`, imported without langchain_core's import-time warning.

    langchain_core (under ``langgraph.checkpoint``) installs its own warning filters while importing and
    then warns that a default will change; that is not ours to fix and would print on every run.
    """
    with warnings.catch_warnings():
        warnings.showwarning = lambda *args, **kwargs: None
        from actors.engines.langgraph.engine import run_langgraph
    return run_langgraph
