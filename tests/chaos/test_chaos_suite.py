"""The short chaos suite (part of ``make test``): on one stack of actor processes, runs of a 5-node flow whose
every step appends once to a file survive random SIGKILLs, a worker frozen past ack_wait and a nats-server
restart, with no run lost and no step applied twice. ``make chaos`` runs the long form
(tests/chaos/test_chaos_full.py); the figures are in docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bus import EmbeddedNats
from tests.support.chaos import assert_clean, freeze_scenario, harness, kill_scenario, report, restart_scenario

RUNS = 8
# One of each kind that holds work in flight (the full suite kills every kind at random).
KILLS = ("worker", "llm-gateway", "scheduler", "observer")


@pytest.mark.timeout(240)
async def test_kills_a_frozen_worker_and_a_nats_restart_lose_no_run_and_apply_no_step_twice(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    async with harness(nats_server, tmp_path) as h:
        killed = await kill_scenario(h, RUNS, settle_s=90, every_s=0.5, sequence=KILLS)
        report("short/kill-random-actor", killed)
        frozen = await freeze_scenario(h, RUNS, settle_s=60)
        report("short/sigstop-worker", frozen)
        restarted, away = await restart_scenario(h, RUNS, settle_s=60)
        report(f"short/restart-nats (away {away:.1f} s)", restarted)
    assert [k.kind for k in killed.kills] == list(KILLS)
    assert_clean(killed, RUNS)
    assert_clean(frozen, RUNS)
    assert_clean(restarted, RUNS)
