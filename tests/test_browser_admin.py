"""End to end in a real browser (Playwright driving Debian's Chromium, ``tests.browser``):
the web app served by uvicorn on a free port, the dev server's Temporal and the session's
worker. An admin signs in through the form, finds a locked cart first on the dashboard,
opens it, confirms it and sees the order's number; screenshots of the pages go to
``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.settings import Settings
from starter.web import admin_users
from starter.web.server import WebServer
from tests.admin_fixtures import PASSWORD
from tests.browser import chromium, screenshot, served
from tests.conftest import TASK_QUEUE, new_id
from tests.test_web_admin_carts import FAST_LOCK, client_with, locked_cart, projected
from workflows.contract import CartState


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as found:
        yield found


@pytest.fixture
async def site(
    dev_env: WorkflowEnvironment, dev_worker: Worker, session_factory: Any, tmp_path: Path
) -> AsyncIterator[WebServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        task_queue=TASK_QUEUE,
        secret_key=SecretStr("b" * 40),
    )
    async with served(settings, dev_env.client, session_factory) as server:
        yield server


async def sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/admin")
    await expect(page).to_have_url(re.compile(r"/admin/login"))  # not signed in yet
    await screenshot(page, "login")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/admin$"))


async def test_an_admin_confirms_a_locked_cart_and_sees_its_number(
    browser: Browser,
    site: WebServer,
    dev_env: WorkflowEnvironment,
    session_factory: Any,
) -> None:
    admin = new_id("ann")
    await admin_users.add_user(session_factory, admin, PASSWORD, role="admin")
    carts = client_with(dev_env, FAST_LOCK)
    shop = new_id("shop")
    cart_id = await locked_cart(carts, shop)

    class Console:
        sessions = session_factory

    await projected(Console(), shop, cart_id, CartState.LOCKED)  # type: ignore[arg-type]

    context = await browser.new_context()
    page = await context.new_page()
    try:
        await sign_in(page, site.url, admin)
        await page.goto(f"{site.url}/admin?shop={shop}")
        locked = page.locator("#locked-carts")
        await expect(locked).to_contain_text(cart_id)
        await screenshot(page, "dashboard")
        await locked.get_by_role("link", name=cart_id).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(cart_id)
        await expect(page.locator("#payments")).to_contain_text("•••• 4242")
        await screenshot(page, "cart-locked")

        await page.get_by_role("button", name="Confirm order").click()
        flash = page.locator(".flash.ok")
        await expect(flash).to_contain_text(re.compile(r"Confirmed: order \d+"))
        number = int(re.search(r"order (\d+)", await flash.inner_text()).group(1))  # type: ignore[union-attr]
        await expect(page.locator("body")).to_contain_text(f"Order {number}")
        await screenshot(page, "cart-confirmed")

        cart = await carts.get_cart(shop, cart_id)
        assert cart.order is not None and cart.order.number == number
        assert any(e.actor == f"admin:{admin}" for e in cart.journal)

        await page.goto(f"{site.url}/admin/carts?shop={shop}")
        await expect(page.locator("body")).to_contain_text(cart_id)
        await screenshot(page, "carts")
    finally:
        await context.close()
