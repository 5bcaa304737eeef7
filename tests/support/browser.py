"""Headless Chromium (Debian's ``chromium`` package, driven by Playwright) for the dashboard's browser tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = ROOT / "docs" / "img"


def screenshots(tmp_path: Path) -> Path:
    """Where the browser tests save their screenshots: docs/img with ``CA_UPDATE_SCREENSHOTS=1`` (how the
    docs' pictures are made), else the test's own folder, so a test run leaves the checkout as it was."""
    return DOCS_IMG if os.environ.get("CA_UPDATE_SCREENSHOTS") == "1" else tmp_path


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium; fails with the fix when the package is missing (`.ci/run` installs it)."""
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install -y chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()
