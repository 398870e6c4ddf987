"""End to end in a real browser (Playwright driving Debian's Chromium, ``tests.browser``):
the web app served by uvicorn on a free port, the dev server's Temporal and a real worker.
An admin signs in through the form, finds a locked cart first on the dashboard, opens it,
confirms it and sees the order's number; changes an order's status on its page; sends a
reminder by hand and finds it in the outbox (a worker of the test's own whose relay is the
local mail catcher). Screenshots of the pages go to ``test-artifacts/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.settings import Settings
from starter.client import CartkeeperClient
from starter.web import admin_users
from starter.web.server import WebServer
from tests.admin_fixtures import PASSWORD
from tests.browser import chromium, screenshot, served
from tests.conftest import TASK_QUEUE, new_id
from tests.test_web_admin_carts import (
    FAST_LOCK,
    QUICK_ABANDON,
    client_with,
    locked_cart,
    projected,
)
from tests.test_workflow_dev import SHOP, eventually, succeed, to_payment
from workflows.contract import CartLine, CartState, CustomerInfo


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


async def test_an_admin_changes_an_orders_status(
    browser: Browser, site: WebServer, dev_env: WorkflowEnvironment, session_factory: Any
) -> None:
    admin = new_id("ann")
    await admin_users.add_user(session_factory, admin, PASSWORD, role="admin")
    carts = client_with(dev_env, FAST_LOCK)
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id)

    async def numbered() -> int | None:
        cart = await carts.get_cart(SHOP, cart_id)
        order = cart.order
        ready = order is not None and order.number and order.statuses[-1].resolved
        return order.number if ready and order is not None else None

    number = await eventually(numbered)
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await sign_in(page, site.url, admin)
        await page.goto(f"{site.url}/admin/orders?shop={SHOP}&number={number}")
        await screenshot(page, "orders")
        await page.get_by_role("link", name="View").first.click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(str(number))
        await page.locator("select[name=status]").select_option("A")
        await page.get_by_role("button", name="Change status").click()
        await expect(page.locator(".flash.ok")).to_contain_text(f"order {number} is A Awaiting")
        await screenshot(page, "order")
        cart = await carts.get_cart(SHOP, cart_id)
        assert cart.order is not None and cart.order.status == "A"
        assert cart.order.statuses[-1].by == f"admin:{admin}" or admin in cart.order.statuses[-1].by
    finally:
        await context.close()


async def test_an_admin_sends_a_reminder_and_finds_it_in_the_outbox(
    browser: Browser, dev_env: WorkflowEnvironment, session_factory: Any, tmp_path: Path
) -> None:
    from activities.campaign_checks import ReminderDefinition, ReminderVariant
    from activities.campaigns import CampaignConfig, replace_campaign
    from activities.cart_activities import CartActivities
    from starter.mailcatcher import MailCatcher
    from worker import build_worker

    catcher = MailCatcher((tmp_path / "data" / "mail").resolve(), host="127.0.0.1", port=0)
    await catcher.start()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        task_queue=new_id("mail-queue"),
        secret_key=SecretStr("r" * 40),
        smtp_port=catcher.port,
    )
    assert settings.mail_dir.resolve() == catcher.mailbox.directory
    shop, admin = new_id("shop"), new_id("ann")
    await admin_users.add_user(session_factory, admin, PASSWORD, role="admin")
    by_hand = ReminderDefinition(
        reminder_id="by-hand",
        position=1,
        name="We kept your cart",
        delay_seconds=3600,
        automatic=False,
        a=ReminderVariant(subject="Your cart at the test shop", template="reminder"),
    )
    campaign = CampaignConfig(
        shop_id=shop, quiet_start_minute=0, quiet_end_minute=0, reminders=(by_hand,)
    )
    await replace_campaign(session_factory, campaign, datetime.now(UTC))
    worker = build_worker(dev_env.client, CartActivities(session_factory, dev_env.client), settings)
    carts = CartkeeperClient(
        dev_env.client, task_queue=settings.task_queue, policy_for=lambda _shop: QUICK_ABANDON
    )
    cart_id = new_id()
    context = await browser.new_context()
    try:
        async with worker, served(settings, dev_env.client, session_factory) as site:
            await carts.update_cart(shop, cart_id, [CartLine("tea", "Tea", 1, 450)], "EUR")
            await carts.identify_customer(shop, cart_id, CustomerInfo(email="eve@example.com"))

            async def abandoned() -> bool:
                return (await carts.get_cart(shop, cart_id)).state is CartState.ABANDONED

            await eventually(abandoned)
            page = await context.new_page()
            await sign_in(page, site.url, admin)
            await page.goto(f"{site.url}/admin/carts/{shop}/{cart_id}")
            await page.locator("select[name=reminder_id]").select_option("by-hand")
            await page.get_by_role("button", name="Send reminder now").click()
            await expect(page.locator(".flash.ok")).to_contain_text("Reminder by-hand requested")

            async def arrived() -> bool:
                await page.goto(f"{site.url}/admin/outbox")
                return "Your cart at the test shop" in await page.content()

            await eventually(arrived, within=30)
            await screenshot(page, "outbox")
            await page.get_by_role("link", name="Your cart at the test shop").first.click()
            await expect(page.locator("body")).to_contain_text("eve@example.com")
            # the HTML part, sandboxed in its frame: shown, with the cart's line
            await expect(page.frame_locator("iframe").locator("body")).to_contain_text("Tea")
            await screenshot(page, "outbox-message")
    finally:
        await context.close()
        await catcher.stop()
