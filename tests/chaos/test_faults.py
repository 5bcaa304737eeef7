"""Faults hitting work in flight (the short form of `make chaos-faults`): every run succeeds once and
no provider call that completed is paid for again."""

from __future__ import annotations

import pytest

from tests.chaos.faults import measure


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["worker_kill", "nats_kill"])
async def test_runs_hit_by_a_fault_all_succeed_once_and_pay_each_call_once(fault: str) -> None:
    figures = await measure(fault, runs=20)
    assert figures.succeeded == 20, figures
    assert (figures.failed, figures.missing, figures.started_twice) == (0, 0, 0), figures
    assert figures.repeated_calls == 0, figures
    assert figures.triggers_answered == 20, figures
    assert figures.journal_entries >= 60, "every completed call is journaled"
