"""Fixtures shared by the test suite: a real nats-server per test, settings, seed-config paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bus import EmbeddedNats
from configs import Settings

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT.parent / "shared" / "seed-configs"
EXAMPLES = ROOT / "configs" / "examples"


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A fresh ``nats-server -js`` on a free port with its own store directory."""
    async with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    """Settings pointing at this test's server, with short redelivery times."""
    return Settings(nats_url=nats_server.url, data_dir=tmp_path, ack_wait_s=2.0, max_deliver=5)
