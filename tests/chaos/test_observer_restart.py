"""The observer as a process that dies: runs that end while it is down are traced when it is back, none twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from actors.observer.mlflow_sink import RUN_TAG
from bus import Bus, Role
from configs import Settings
from store import RunHistory, open_store
from tests.conftest import SEEDS
from tests.helpers import Actors, run_flow, until
from tests.support.observer import traced, traces_so_far


async def test_a_killed_observer_catches_up_on_restart_and_writes_each_run_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Runs that end while the observer is down are traced when it comes back; none twice."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "echo.yaml").write_text((SEEDS / "echo.yaml").read_text())
    s = traced(settings, tmp_path)
    store_url = s.store()
    async with Bus.of(s, Role.ADMIN, name="test-client") as bus:
        actors = Actors(bus, s.nats_url, flows, "mock", auth_file=s.nats_auth_file)
        await actors.listen()
        try:
            for kind in ("scheduler", "worker", "llm-gateway"):
                await actors.start(kind)
            observer_cmd = ["actor", "observer", "--nats", s.nats_url, "--store", store_url]
            observer_cmd += ["--mlflow-uri", s.mlflow_uri(), "--traces"]
            observer = await actors.spawn(observer_cmd)
            first = await run_flow(bus, "echo", {"message": "before the crash"})
            await wait_for_history(store_url, {first["run_id"]})
            actors.kill(observer)
            during = [await run_flow(bus, "echo", {"message": f"while down {i}"}) for i in range(3)]
            await actors.spawn(observer_cmd)
            expected = {first["run_id"], *(r["run_id"] for r in during)}
            histories = await wait_for_history(store_url, expected)
        finally:
            actors.stop_all()
    assert {h.run_id: h.status for h in histories} == dict.fromkeys(expected, "succeeded")

    # The observer writes a run's history, then its trace: wait for the traces of the last runs too.
    async def all_traced() -> list[Any]:
        found = await asyncio.to_thread(traces_so_far, s) or []
        return found if len(found) >= len(expected) else []

    traces = await until(all_traced, "every run is traced", timeout_s=60)
    assert sorted(t.info.tags[RUN_TAG] for t in traces) == sorted(expected)


async def wait_for_history(url: str, run_ids: set[str], timeout_s: float = 60) -> list[RunHistory]:
    """The history of every run in `run_ids`, once the observer (another process) has written them all."""
    async with open_store(url) as st:

        async def all_written() -> list[RunHistory]:
            found = [h for h in await st.list_runs(limit=1000) if h.run_id in run_ids]
            return found if len(found) == len(run_ids) else []

        return await until(all_written, f"the store holds the history of {len(run_ids)} run(s)", timeout_s=timeout_s)
