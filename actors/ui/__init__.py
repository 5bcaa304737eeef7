"""The dashboard: FastAPI + Jinja2 + htmx pages over NATS and the run history, live over SSE.

Needs the ``[ui]`` extra (FastAPI, uvicorn, Jinja2); the static files (htmx and its SSE extension)
ship in ``static/``, so it works offline. It never imports MLflow or litellm.
"""

from actors.ui.actor import Dashboard
from actors.ui.app import Deps, create_app
from actors.ui.security import Guard

__all__ = ["Dashboard", "Deps", "Guard", "create_app"]
