"""How the command line ends when something goes wrong: one line on stderr and a distinct exit code.

| code | meaning |
|---|---|
| 0 | done (a run succeeded) |
| 1 | a run failed, was rejected or was not answered |
| 2 | bad arguments or inputs, an invalid flow file or URL |
| 3 | another stack already runs from the data folder |
| 4 | NATS or the store cannot be reached |

``--debug`` (anywhere on the command line) or ``CA_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from configs import ConfigError, InputError
from configs.errors import BusError, CaActorsError
from store import StoreError, UnknownBackendError

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_UNREACHABLE = 4


def exit_code(error: CaActorsError) -> int:
    """The exit code of an error the command line reports."""
    if isinstance(error, ConfigError | InputError | UnknownBackendError):
        return EXIT_USAGE
    if isinstance(error, BusError | StoreError):
        return EXIT_UNREACHABLE
    return EXIT_FAILED


def _ours(error: BaseException) -> CaActorsError | None:
    """Our error inside `error` (itself, or the only one of an exception group)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error if isinstance(error, CaActorsError) else None


def run_cli(command: Callable[..., object], argv: list[str] | None = None) -> None:
    """Run `command` (the typer app) on `argv`, reporting our own errors in one line each."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CA_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        command(args=args, prog_name="ca-actors")
    except BaseException as exc:
        error = _ours(exc)
        if error is None or debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(exit_code(error))
