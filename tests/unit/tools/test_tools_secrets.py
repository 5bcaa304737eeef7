"""One redactor for tool results and traces: secret names and credential formats are masked, look-alikes are not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.runtime.redact import MASK, Redactor, redact_text, secret_key
from actors.tools import ToolContext, get_tool, run_tool

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3\nq9u5Zx0=\n-----END RSA PRIVATE KEY-----"

# Realistic secrets: variable name -> value. Every value must be gone from env_vars' result.
SECRET_ENV = {
    "MYSQL_PWD": "Sup3r-S3cret!",
    "DB_PASS": "hunter2hunter2",
    "SMTP_PASS": "mail-pass-123",
    "SENTRY_DSN": "https://0123456789abcdef0123456789abcdef@o4504.ingest.sentry.io/4505",
    "JWT": JWT,
    "GH_PAT": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "STRIPE_SK": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "OPENAI_API_KEY": "sk-proj-Xh3kq9TzVb2LmN4pQr7sT1uV",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "SLACK_BOT_TOKEN": "xoxb-2048-4096-abcdefABCDEF123456",
    "GOOGLE_MAPS_KEY": "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "GITHUB_TOKEN": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "TELEGRAM_BOT_TOKEN": "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0",
    "DJANGO_SECRET_KEY": "django-insecure-+4x$k2!v9@q1",
    "PGPASSWORD": "pg-password-9",
    "REDIS_PASSWD": "r3dis-pw",
    "SESSION": "s%3Aabc123def456.sig",
    "SESSION_SECRET": "keyboard cat",
    "COOKIE_SECRET": "cookie-monster-77",
    "NPM_AUTH": "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "MAILGUN_APIKEY": "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
    "TLS_PRIVATE_KEY": PEM,
    "CI_JOB_JWT": JWT,
    "VAULT_CREDENTIALS": "role=app secret=xyz",
    "HF_AUTH": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    # Innocent names, credential values: masked by their format.
    "BUILD_NOTE": "deploy with sk_live_51Habcdefghijklmnop",
    "CALLBACK": f"call with {JWT} please",
}
# Values shown with only the password part masked (or a secret of another variable).
URL_ENV = {
    "BACKUP_CMD": ("mysqldump -pSup3r-S3cret! app", "mysqldump -p[REDACTED] app"),
    "DATABASE_URL": ("postgres://app:hunter2@db:5432/app", "postgres://app:[REDACTED]@db:5432/app"),
    "BROKER": ("amqp://guest:guest-pass@rabbit:5672/", "amqp://guest:[REDACTED]@rabbit:5672/"),
}
# Harmless look-alikes: shown exactly as they are.
HARMLESS_ENV = {
    "PATH": "/usr/local/bin:/usr/bin",
    "KEYBOARD_LAYOUT": "us",
    "TOKENIZERS_PARALLELISM": "false",
    "PWD": "/srv/app",
    "OLDPWD": "/srv",
    "SSH_AUTH_SOCK": "/tmp/ssh-XXXX/agent.12",
    "MAX_TOKENS": "4096",
    "SESSION_TIMEOUT": "30",
    "AUTHOR_NAME": "Ada Lovelace",
    "KEY_FILE": "/etc/ssl/private/app.pem",
    "COMPASS_HOME": "/opt/compass",
    "STRIPE_PUBLISHABLE": "pk_live_51Habcdefghijklmnop",
    "API_BASE_URL": "https://api.example.com/v1",
    "MOTD": "basic principles of bearer bonds",
    "LANG": "C.UTF-8",
}


async def test_env_vars_masks_every_realistic_secret_and_shows_look_alikes(workspace: Any) -> None:
    env = {**SECRET_ENV, **{k: v for k, (v, _) in URL_ENV.items()}, **HARMLESS_ENV}
    ctx = ToolContext(workspace=workspace, env=env)
    result = await run_tool(get_tool("env_vars"), {}, ctx)
    shown = result["variables"]
    text = json.dumps(result)
    leaked = [name for name, value in SECRET_ENV.items() if value in text]
    assert leaked == []
    assert all(MASK in shown[name] for name in SECRET_ENV)
    assert {name: shown[name] for name in URL_ENV} == {name: masked for name, (_, masked) in URL_ENV.items()}
    assert {name: shown[name] for name in HARMLESS_ENV} == HARMLESS_ENV


@pytest.mark.parametrize(
    "key",
    ["Cookie", "Set-Cookie", "X-Auth", "session", "Authorization", "x-api-key", "accessToken", "DB_PASS", "jwt"],
)
def test_the_redactor_masks_values_under_secret_keys(key: str) -> None:
    assert Redactor(environ={})({key: "opaque-value-1234", "other": 1}) == {key: MASK, "other": 1}


@pytest.mark.parametrize(
    "key", ["key_points", "pass_rate", "session_id", "prompt_tokens", "keywords", "path", "author", "bypass"]
)
def test_the_redactor_keeps_keys_that_only_look_secret(key: str) -> None:
    assert Redactor(environ={})({key: "visible"}) == {key: "visible"}


def test_a_flag_under_a_secret_looking_key_stays_visible() -> None:
    assert Redactor(environ={})({"pass": True, "token": None}) == {"pass": True, "token": None}


@pytest.mark.parametrize(
    "secret",
    [
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "xoxp-2048-4096-abcdefABCDEF123456",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
        JWT,
        PEM,
        "Bearer abc.def-123_456",
    ],
)
def test_credential_formats_are_masked_inside_text(secret: str) -> None:
    text = redact_text(f"the tool said: {secret} (end)")
    assert secret not in text
    assert text.startswith("the tool said: ")
    assert text.endswith(" (end)")


def test_passwords_in_urls_dsns_and_assignments_are_masked_inside_text() -> None:
    text = redact_text(
        "connect mysql://root:toor@db/app then https://0123456789abcdef0123@sentry.io/1 "
        "with password=hunter2, Cookie: session=abc123; theme=dark and {'client_secret': 'shh-42'}"
    )
    assert text == (
        "connect mysql://root:[REDACTED]@db/app then https://[REDACTED]@sentry.io/1 "
        "with password=[REDACTED], Cookie: [REDACTED]; theme=dark and {'client_secret': [REDACTED]}"
    )


def test_prose_that_mentions_secrets_stays_readable() -> None:
    prose = "Pass: 3 of 4. The key: keep it simple. Basic principles of the session layer."
    assert redact_text(prose) == prose


def test_the_redactor_masks_secret_environment_values_wherever_they_appear() -> None:
    redact = Redactor(environ={"MYSQL_PWD": "Sup3r-S3cret!", "HOME": "/home/app"})
    assert redact(["login with Sup3r-S3cret! at /home/app"]) == ["login with [REDACTED] at /home/app"]


def test_redacting_a_long_text_is_linear_not_quadratic() -> None:
    # 2 MB of one word: a backtracking name=value pattern would take minutes here (the per-test timeout fails it).
    text = "a" * 2_000_000
    assert redact_text(text) == text


def test_secret_key_reads_names_in_every_style() -> None:
    assert [secret_key(k) for k in ("MYSQL_PWD", "mysqlPwd", "DBPASSWORD", "githubToken", "X-Auth", "GH_PAT")] == [
        True
    ] * 6
    assert [secret_key(k) for k in ("PATH", "KEYBOARD_LAYOUT", "TOKENIZERS_PARALLELISM", "monkey", "patch")] == [
        False
    ] * 5
