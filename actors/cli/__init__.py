"""The ``ca-actors`` command line."""

from actors.cli.app import app, main

__all__ = ["app", "main"]
