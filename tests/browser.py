"""Playwright driving Debian's Chromium for the end-to-end tests, and the web app served
for real (uvicorn on a free port) against the test dev server's Temporal and a database.

``make test`` installs Chromium (``scripts/install-browser``) and passes its path in
``CARTKEEPER_CHROMIUM``; without it the tests look for ``chromium`` on the PATH and fail,
never skip, when there is none. Screenshots go to ``test-artifacts/`` (not committed;
``CARTKEEPER_TEST_ARTIFACTS`` moves it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright
from temporalio.client import Client

from activities.settings import Settings
from starter.web.app import create_app
from starter.web.server import WebServer, bind

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("CARTKEEPER_TEST_ARTIFACTS") or REPO / "test-artifacts")


def chromium_path() -> str:
    path = os.environ.get("CARTKEEPER_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "no Chromium for the browser tests: run scripts/install-browser (make test does)"
        )
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def served(
    settings: Settings, client: Client, session_factory: Any
) -> AsyncIterator[WebServer]:
    """The app on a free local port, with ``client`` as its Temporal."""

    async def factory() -> Client:
        return client

    sock = bind("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    server = WebServer(
        create_app(settings, temporal_client_factory=factory, session_factory=session_factory),
        sock,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under ``ARTIFACTS``."""
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)  # (creates the folder)
    return path
