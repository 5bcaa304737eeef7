"""The pure parts of NATS security: role permissions derived from the subject module, credentials, URL
masking, the operator's endpoint allow-list, tool pinning, and what `up` puts on its children's argv."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from actors.flow import tools_pinned_to
from actors.launch.supervisor import Supervisor
from actors.llm import declared_endpoints, parse_allowed
from bus import ROLES, AuthFile, BusError, Credentials, Role, subjects, topology
from bus.auth import credentials_for
from bus.permissions import inbox_prefix, write_bucket
from configs import Settings, load_flow_text
from configs.urls import has_password, mask_url, split_credentials


def test_only_the_scheduler_and_the_admin_may_write_plans() -> None:
    writers = {role for role, grants in ROLES.items() if any(s in grants.publish for s in ("$KV.ca_plans.>", ">"))}
    assert writers == {Role.SCHEDULER, Role.ADMIN}


def test_no_role_but_the_admin_has_a_full_wildcard() -> None:
    for role, grants in ROLES.items():
        if role is not Role.ADMIN:
            assert ">" not in grants.publish + grants.subscribe, role
            assert "$JS.API.>" not in grants.publish, role


def test_each_role_hears_only_its_own_inbox_among_the_actors() -> None:
    for role, grants in ROLES.items():
        if role is Role.ADMIN:
            continue
        inboxes = [s for s in grants.subscribe if s.startswith("_INBOX")]
        assert f"{inbox_prefix(role)}.>" in inboxes
        assert all(i in (f"{inbox_prefix(role)}.>", "_INBOX.>") for i in inboxes), role
    for actor in (Role.SCHEDULER, Role.WORKER, Role.LLM_GATEWAY, Role.REGISTRY, Role.MEMORY, Role.OBSERVER):
        assert "_INBOX.>" not in ROLES[actor].subscribe, actor


def test_permissions_come_from_the_subject_module() -> None:
    assert subjects.LLM_COMPLETE in ROLES[Role.LLM_GATEWAY].subscribe
    assert subjects.LLM_COMPLETE in ROLES[Role.WORKER].publish
    assert subjects.LLM_COMPLETE not in ROLES[Role.WORKER].subscribe
    assert subjects.TRIGGER_ALL in ROLES[Role.SCHEDULER].subscribe
    assert set(write_bucket(topology.BUDGETS)) <= set(ROLES[Role.LLM_GATEWAY].publish)
    # The dashboard reads and sends only a person's control requests; the ingress only starts runs.
    assert not [s for s in ROLES[Role.DASHBOARD].publish if s.startswith("$KV.")]
    ingress = ROLES[Role.GATEWAY_INGRESS]
    assert [s for s in ingress.publish if not s.startswith("$")] == [subjects.TRIGGER_ALL]
    assert ingress.buckets == frozenset()


def test_only_managers_change_the_topology() -> None:
    managers = {role for role, grants in ROLES.items() if grants.manages_topology}
    assert managers == {Role.SCHEDULER, Role.ADMIN}
    assert not [s for s in ROLES[Role.WORKER].publish if ".STREAM.CREATE." in s or ".STREAM.UPDATE." in s]


def test_generated_credentials_are_private_and_stable(tmp_path: Path) -> None:
    first = AuthFile.load_or_create(tmp_path)
    again = AuthFile.load_or_create(tmp_path)
    assert (tmp_path / "nats-auth.json").stat().st_mode & 0o777 == 0o600
    assert first.credentials(Role.WORKER) == again.credentials(Role.WORKER)
    passwords = json.loads((tmp_path / "nats-auth.json").read_text())["users"]
    assert set(passwords) == {r.value for r in Role}
    assert len(set(passwords.values())) == len(Role)
    config = first.write_server_config(tmp_path / "server.conf")
    assert config.stat().st_mode & 0o777 == 0o600


def test_credentials_travel_to_a_child_by_environment_only() -> None:
    login = Credentials(user="worker", password=SecretStr("pw"), tls_ca=Path("/ca.pem"))
    assert login.env() == {"CA_NATS_USER": "worker", "CA_NATS_PASSWORD": "pw", "CA_NATS_TLS_CA": "/ca.pem"}
    assert Credentials.from_env(login.env()).password == SecretStr("pw")
    assert "pw" not in repr(login)


def test_settings_name_the_embedded_servers_user_of_each_role(tmp_path: Path) -> None:
    auth = AuthFile.load_or_create(tmp_path)
    settings = Settings(nats_auth_file=auth.path)
    login = credentials_for(settings, Role.OBSERVER)
    assert login.user == "observer"
    assert login.inbox_prefix == "_INBOX_observer"
    assert credentials_for(Settings(), Role.OBSERVER).empty


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://svc:s3cret@host:4222", "nats://svc:***@host:4222"),
        ("nats://tok3n@host:4222", "nats://***@host:4222"),
        ("postgresql://app:pa%40ss@db/app", "postgresql://app:***@db/app"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("sqlite:///tmp/store.db", "sqlite:///tmp/store.db"),
    ],
)
def test_a_password_in_a_url_is_masked_when_shown(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert has_password(url) == (url != shown)


def test_a_nats_urls_login_moves_into_the_settings_credentials() -> None:
    assert split_credentials("nats://u:p%40w@h:4222") == ("nats://h:4222", "u", "p@w")
    settings = Settings(nats_url="nats://svc:s3cret@host:4222")
    assert settings.nats_url == "nats://host:4222"
    assert settings.nats_user == "svc"
    assert settings.nats_password == SecretStr("s3cret")
    token = Settings(nats_url="nats://tok3n@host")
    assert token.nats_url == "nats://host"
    assert token.nats_token == SecretStr("tok3n")


def test_up_gives_its_children_urls_and_passwords_in_the_environment_not_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CA_NATS_AUTH_FILE", "/somewhere/else.json")
    settings = Settings(nats_url="nats://svc:s3cret@nats.internal:4222", store_url="postgresql://app:db-secret@db/app")
    supervisor = Supervisor(settings, Path("flows"), embedded=False, workers=1)
    for kind in ("scheduler", "worker", "memory", "observer", "llm-gateway", "registry"):
        argv = " ".join(supervisor._command(kind))
        assert "s3cret" not in argv
        assert "db-secret" not in argv
        assert "nats://" not in argv
        assert "postgresql" not in argv
        env = supervisor._environment(kind)
        assert env["CA_NATS_URL"] == "nats://nats.internal:4222"
        assert env["CA_NATS_USER"] == "svc"
        assert env["CA_NATS_PASSWORD"] == "s3cret"
        assert "CA_NATS_AUTH_FILE" not in env
    assert supervisor._environment("memory")["CA_STORE_URL"] == "postgresql://app:db-secret@db/app"
    monkeypatch.delenv("CA_STORE_URL", raising=False)
    assert "CA_STORE_URL" not in supervisor._environment("worker")


FLOW = """
schema_version: "1.0"
flow: {name: pinned}
config:
  llm: {model: openai/gpt-4o-mini, api_base: "http://vllm.internal/v1", api_key_env: VLLM_KEY}
state:
  fields:
    question: {type: str, required: true}
    answer: {type: str, default: ""}
nodes:
  - id: solve
    prompt: "{state.question}"
    tools: [calculator, {name: file_read, actor: box}, {name: http_request, actor: other}]
    outputs: [answer]
  - id: local
    llm: {model: ollama_chat/llama3.2, api_base: "http://127.0.0.1:11434"}
    prompt: "{state.question}"
    outputs: [answer]
edges: [{from: START, to: solve}, {from: solve, to: local}, {from: local, to: END}]
"""


def test_the_endpoints_a_flow_declares_are_its_nodes_pairs() -> None:
    spec = load_flow_text(FLOW, "<pinned>").spec
    assert declared_endpoints(spec) == {("http://vllm.internal/v1", "VLLM_KEY"), ("http://127.0.0.1:11434", None)}


def test_the_operators_endpoint_allow_list() -> None:
    assert parse_allowed("https://a/v1=A_KEY, https://b/v1 ,=C_KEY") == {
        ("https://a/v1", "A_KEY"),
        ("https://b/v1", None),
        (None, "C_KEY"),
    }
    with pytest.raises(ValueError, match="names no API base"):
        parse_allowed("=")


def test_a_tool_host_is_pinned_only_the_tools_a_flow_gives_its_name() -> None:
    spec = load_flow_text(FLOW, "<pinned>").spec
    assert tools_pinned_to(spec, "box") == {"file_read"}
    assert tools_pinned_to(spec, "other") == {"http_request"}
    assert tools_pinned_to(spec, "nobody") == set()


def test_a_creds_or_nkey_file_goes_to_nats_py_by_path_or_names_what_it_needs(tmp_path: Path) -> None:
    creds = tmp_path / "agent.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    login = Credentials.from_env({"CA_NATS_CREDS": str(creds)})
    if importlib.util.find_spec("nkeys") is None:
        with pytest.raises(BusError, match="needs the nkeys package"):
            login.connect_options()
    else:
        assert login.connect_options()["user_credentials"] == str(creds)
    with pytest.raises(BusError, match="does not exist"):
        Credentials(nkey_file=tmp_path / "missing.nk").connect_options()
