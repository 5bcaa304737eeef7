"""The calculator evaluates arithmetic only; datetime_now knows time zones; env_vars redacts secrets."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from actors.tools import ToolContext, ToolError, get_tool, run_tool


async def _call(name: str, ctx: ToolContext, **args: Any) -> Any:
    return await run_tool(get_tool(name), args, ctx)


async def _calc(ctx: ToolContext, expression: str) -> Any:
    return (await _call("calculator", ctx, expression=expression))["result"]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(2 + 3) * sqrt(16) / 2", 10.0),
        ("7 // 2 + 7 % 2", 4),
        ("2 ** 10", 1024),
        ("-3 + +1", -2),
        ("2 ** -1", 0.5),
        ("round(3.14159, 2)", 3.14),
        ("round(2.5)", 2),
        ("min(4, 2, 8) + max(1, 9) + abs(-1)", 12),
        ("1.5e3 - 500", 1000.0),
        ("2 ** 1000 // 2 ** 999", 2),
    ],
)
async def test_the_calculator_evaluates_arithmetic(ctx: ToolContext, expression: str, value: float) -> None:
    result = await _call("calculator", ctx, expression=expression)
    assert result == {"expression": expression, "result": value}


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("x + 1", "names are not allowed: 'x'"),
        ("__import__('os').system('id')", "unknown function \"__import__('os').system\""),
        ("__import__('os')", "unknown function '__import__'"),
        ("(1).__class__", "attributes are not allowed"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("'a' * 3", "only numbers are allowed, got 'a'"),
        ("True + 1", "only numbers are allowed, got True"),
        ("[1, 2]", "List is not allowed"),
        ("(lambda: 1)()", "unknown function"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("1 < 2", "Compare is not allowed"),
        ("1 << 100", "BinOp is not allowed"),
        ("round(2.5, ndigits=1)", "takes no keyword arguments"),
    ],
)
async def test_the_calculator_refuses_anything_but_arithmetic(ctx: ToolContext, expression: str, problem: str) -> None:
    with pytest.raises(ToolError) as info:
        await _call("calculator", ctx, expression=expression)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("9 ** 99999", "exponent 99999 is too large"),
        ("2 ** 2 ** 2 ** 2 ** 2", "exponent 65536 is too large"),
        ("99999 ** 9999", "is too large; use smaller numbers"),
        ("(2 ** 9000) * (2 ** 9000)", "result has more than 10000 bits"),
        ("10.0 ** 400", "too large (overflow)"),
        ("round(5, -10000000)", "round() digits must be an integer between"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "cannot compute"),
        ("(-8) ** 0.5", "is not a real number"),
        ("1 +", "invalid expression"),
        ("-" * 2000 + "1", "longer than 1000 characters"),
    ],
)
async def test_the_calculator_refuses_huge_or_undefined_results_quickly(
    ctx: ToolContext, expression: str, problem: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError) as info:
        await _call("calculator", ctx, expression=expression)
    assert problem in str(info.value)
    assert time.monotonic() - started < 1


async def test_datetime_now_returns_the_current_utc_time_by_default(ctx: ToolContext) -> None:
    result = await _call("datetime_now", ctx)
    now = dt.datetime.fromisoformat(result["iso"])
    assert now.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - now).total_seconds()) < 5
    assert result["timezone"] == "UTC"
    assert result["weekday"] == now.strftime("%A")
    assert result["unix"] == pytest.approx(time.time(), abs=5)


async def test_datetime_now_uses_an_iana_time_zone(ctx: ToolContext) -> None:
    result = await _call("datetime_now", ctx, timezone="Asia/Kolkata")
    assert result["utc_offset"] == "+0530"
    assert result["iso"].endswith("+05:30")


async def test_datetime_now_suggests_a_time_zone_for_a_typo(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"unknown time zone 'Europe/Pari'; did you mean Europe/Paris"):
        await _call("datetime_now", ctx, timezone="Europe/Pari")
    with pytest.raises(ToolError, match=r"unknown time zone '\.\./\.\./etc/passwd'"):
        await _call("datetime_now", ctx, timezone="../../etc/passwd")


SECRETS_ENV = {
    "PYTHONPATH": "/srv/app",
    "PYTHONHASHSEED": "0",
    "OPENAI_API_KEY": "sk-real",
    "github_token": "ghp_real",
    "DB_PASSWORD": "hunter2",
    "AWS_SECRET_ACCESS_KEY": "aws-real",
    "Keycloak_Realm": "demo",
    "DATABASE_URL": "postgres://app:hunter2@db:5432/app",
    "HOME": "/home/app",
}


async def test_env_vars_redacts_names_that_look_like_secrets(workspace: Any) -> None:
    ctx = ToolContext(workspace=workspace, env=SECRETS_ENV)
    result = await _call("env_vars", ctx)
    variables = result["variables"]
    assert list(variables) == sorted(SECRETS_ENV)
    for name in ("OPENAI_API_KEY", "github_token", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        assert variables[name] == "[REDACTED]"
    assert variables["DATABASE_URL"] == "postgres://app:[REDACTED]@db:5432/app"
    assert variables["HOME"] == "/home/app"
    assert variables["Keycloak_Realm"] == "demo"  # "key" inside a word is not a secret name
    assert "hunter2" not in repr(result)
    assert result["truncated"] is False


async def test_env_vars_returns_only_names_matching_the_pattern(workspace: Any) -> None:
    ctx = ToolContext(workspace=workspace, env=SECRETS_ENV)
    result = await _call("env_vars", ctx, pattern="PYTHON*")
    assert result == {
        "pattern": "PYTHON*",
        "variables": {"PYTHONHASHSEED": "0", "PYTHONPATH": "/srv/app"},
        "truncated": False,
    }
    assert (await _call("env_vars", ctx, pattern="python*"))["variables"] == {}  # names are case-sensitive
