"""The long chaos suite (``make chaos``; marked ``chaos_full``, left out of ``make test``): 100 runs per scenario
(``CA_CHAOS_RUNS``), figures appended to ``CA_CHAOS_FIGURES`` (JSON lines) for docs/reliability.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bus import EmbeddedNats
from tests.support.chaos import (
    KILLABLE,
    assert_clean,
    freeze_scenario,
    harness,
    kill_scenario,
    report,
    restart_scenario,
)

pytestmark = pytest.mark.chaos_full

RUNS = int(os.environ.get("CA_CHAOS_RUNS", "100"))
FIGURES = Path(os.environ["CA_CHAOS_FIGURES"]) if os.environ.get("CA_CHAOS_FIGURES") else None
SETTLE_S = 60 + 3 * RUNS


@pytest.mark.timeout(int(SETTLE_S) + 180)
async def test_every_run_completes_once_while_a_random_actor_is_killed_every_few_seconds(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with harness(nats_server, tmp_path) as h:
        # Triggers for ~50 s (0.5 s apart), an actor killed every ~2 s plus its restart.
        result = await kill_scenario(h, RUNS, settle_s=SETTLE_S, every_s=2.0, publish_every_s=0.5)
    report("kill-random-actor", result, FIGURES)
    assert len(result.kills) >= 6
    assert {k.kind for k in result.kills} == set(KILLABLE)
    assert_clean(result, RUNS)


@pytest.mark.timeout(int(SETTLE_S) + 180)
async def test_a_worker_frozen_past_ack_wait_then_thawed_applies_no_step_twice(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with harness(nats_server, tmp_path) as h:
        result = await freeze_scenario(h, RUNS, settle_s=SETTLE_S, frozen_s=5.0)
    report("sigstop-worker", result, FIGURES)
    assert_clean(result, RUNS)


@pytest.mark.timeout(int(SETTLE_S) + 180)
async def test_no_trigger_is_lost_when_nats_server_restarts_under_load(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with harness(nats_server, tmp_path) as h:
        result, away = await restart_scenario(h, RUNS, settle_s=SETTLE_S, down_s=2.0)
    report(f"restart-nats (away {away:.1f} s)", result, FIGURES)
    assert_clean(result, RUNS)
