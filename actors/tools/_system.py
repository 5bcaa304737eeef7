"""System tools: ``datetime_now`` and ``env_vars`` (secrets redacted)."""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import zoneinfo
from collections.abc import Mapping
from typing import Any

from actors.runtime.redact import redact_env, secret_values

from ._base import FunctionTool, ToolContext, ToolError, object_schema

MAX_ENV_VARS = 500


def _zone(name: str) -> dt.tzinfo:
    """The IANA time zone called ``name``; a ToolError suggesting close names when unknown."""
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        close = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; use an IANA name such as 'Europe/Paris'"
        raise ToolError(f"unknown time zone {name!r}{hint}") from exc


async def _datetime_now(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """The current time in a time zone (UTC by default)."""
    zone_name = str(args.get("timezone", "UTC"))
    now = dt.datetime.now(_zone(zone_name))
    return {
        "iso": now.isoformat(),
        "timezone": zone_name,
        "utc_offset": now.strftime("%z"),
        "date": now.date().isoformat(),
        "time": now.time().replace(microsecond=0).isoformat(),
        "weekday": now.strftime("%A"),
        "unix": round(now.timestamp(), 3),
    }


async def _env_vars(args: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Environment variables whose names match a glob pattern, secrets redacted."""
    pattern = str(args.get("pattern", "*"))
    names = sorted(name for name in ctx.env if fnmatch.fnmatchcase(name, pattern))
    known = secret_values(ctx.env)  # a secret's value repeated in a harmless-looking variable is masked too
    shown = {name: redact_env(name, ctx.env[name], known) for name in names[:MAX_ENV_VARS]}
    return {"pattern": pattern, "variables": shown, "truncated": len(names) > MAX_ENV_VARS}


DATETIME_NOW = FunctionTool(
    name="datetime_now",
    description="The current date and time, in UTC or in an IANA time zone such as 'Europe/Paris'.",
    parameters=object_schema(
        {"timezone": {"type": "string", "description": "IANA time zone name (default 'UTC')."}},
    ),
    fn=_datetime_now,
    timeout_s=5.0,
)

ENV_VARS = FunctionTool(
    name="env_vars",
    description=(
        "Read environment variables whose names match a glob pattern (case-sensitive, e.g. 'PYTHON*'). "
        "Secrets are shown as [REDACTED]: values of names such as *_KEY, *_SECRET, *_TOKEN, *_PASSWORD, *_PASS, "
        "*_DSN, JWT, and values that look like credentials (API keys, tokens, URL passwords, private keys)."
    ),
    parameters=object_schema(
        {"pattern": {"type": "string", "description": "Glob pattern for the names (default '*')."}},
    ),
    fn=_env_vars,
    timeout_s=5.0,
)

SYSTEM_TOOLS = (DATETIME_NOW, ENV_VARS)
