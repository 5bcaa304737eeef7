"""The registry's view of actors: live, stale or dead from the age of the last heartbeat; expected ones pending."""

from __future__ import annotations

from actors.runtime import roster as registry
from actors.runtime.presence import ActorInfo


def test_status_follows_the_age_of_the_last_heartbeat() -> None:
    info = ActorInfo(id="a", kind="worker", heartbeat_at=100.0)
    assert registry.status_of(info, now=101.0, heartbeat_s=1.0) == "live"
    assert registry.status_of(info, now=103.5, heartbeat_s=1.0) == "stale"
    assert registry.status_of(info, now=111.0, heartbeat_s=1.0) == "dead"


def test_an_expected_agent_is_pending_until_it_shows_up() -> None:
    wanted = [registry.Expected(name="gpu-1", serves=["f.n"])]
    assert [r["status"] for r in registry.listing([], wanted, now=10.0, heartbeat_s=1.0)] == ["pending"]
    arrived = ActorInfo(id="gpu-1", kind="worker", name="gpu-1", heartbeat_at=9.5, serves=["f.n"])
    rows = registry.listing([arrived], wanted, now=10.0, heartbeat_s=1.0)
    assert [(r["id"], r["status"]) for r in rows] == [("gpu-1", "live")]
    assert set(rows[0]) >= {"id", "kind", "host", "pid", "status", "heartbeat_age_s", "load", "serves"}
