"""The orders part of ``make run``'s demo (``starter.demo_orders``) on the session's dev
server: the demo carts of ``starter.simulate`` (fast timers), then the orders demo, with
the real worker (``build_worker``) on a scratch read model and a mail catcher. The orders
end in the expected statuses with the expected history, stock moved once, every order has
its number (on the read model too) and the status e-mails arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from activities.cart_activities import CartActivities
from activities.orders_query import get_order
from activities.settings import Settings
from starter.catalog import CatalogClient
from starter.client import CartkeeperClient
from starter.demo_orders import (
    CANCELLED,
    DEMO_ADMIN,
    DEMO_STOCK,
    NOT_FINISHED,
    PAID_LATER,
    ROLES,
    SHIPPED,
    OrderDemo,
    order_demo,
    pick,
    prepare_stock,
    render_order_demo,
    workflow_query,
)
from starter.mailcatcher import MailCatcher
from starter.simulate import PRODUCTS, Simulation, simulate
from tests.conftest import new_id
from tests.conftest_db import ScratchDatabase, scratch_database
from workflows.journal import SYSTEM, admin_actor
from workflows.order_phase import effects_pending
from workflows.order_state import MOVE_DONE, STOCK_GIVE_BACK, STOCK_TAKE
from workflows.state import Cart

ADMIN = admin_actor(DEMO_ADMIN)


@dataclass
class Stack:
    db: ScratchDatabase
    catcher: MailCatcher
    settings: Settings
    carts: CartkeeperClient
    catalog: CatalogClient


@pytest.fixture
async def stack(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Stack]:
    from worker import build_worker

    shop = new_id("demo")
    async with scratch_database("sqlite", tmp_path) as db:
        catcher = MailCatcher(tmp_path / "mail", port=0)
        await catcher.start()
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db.url,
            default_shop=shop,
            task_queue=new_id("demo-orders"),
            smtp_port=catcher.port,
            shop_admins={shop: ["admin@demo.example.com"]},
            secret_key=SecretStr("s" * 40),
        )
        client = dev_env.client
        try:
            async with build_worker(client, CartActivities(db.session_factory, client), settings):
                yield Stack(
                    db,
                    catcher,
                    settings,
                    CartkeeperClient(client, task_queue=settings.task_queue),
                    CatalogClient(db.session_factory),
                )
        finally:
            await catcher.stop()


async def all_settled(stack: Stack, result: Simulation, within: float = 30) -> list[Cart]:
    """Every demo cart once no order of them waits for a stock move or an e-mail."""
    deadline = time.monotonic() + within
    while True:
        carts = [await stack.carts.get_cart(result.shop_id, s.cart_id) for s in result.carts]
        if not any(effects_pending(c) for c in carts) or time.monotonic() > deadline:
            return carts
        await _sleep()


async def _sleep() -> None:
    await asyncio.sleep(0.5)


async def test_the_demo_takes_its_orders_through_statuses(stack: Stack) -> None:
    shop = stack.settings.default_shop
    before = await prepare_stock(stack.catalog, shop)
    assert before == {sku: DEMO_STOCK for sku, _name, _price in PRODUCTS}
    result = await simulate(
        stack.carts.client,
        carts=12,
        shop_id=shop,
        task_queue=stack.settings.task_queue,
        seed=7,
        speed=10,
        out=lambda _line: None,
    )
    assert not result.timed_out and not result.errors
    said: list[str] = []
    demo = await order_demo(
        stack.carts, stack.catalog, result, stock_before=before, out=said.append
    )
    assert demo.ok, render_order_demo(demo)
    assert [o.role for o in demo.orders] == list(ROLES) and not demo.missing
    assert said and DEMO_ADMIN in said[0]

    # --- the statuses each order went through, and by whom
    shipped, paid_later = demo.order(SHIPPED), demo.order(PAID_LATER)
    cancelled, not_finished = demo.order(CANCELLED), demo.order(NOT_FINISHED)
    assert shipped and paid_later and cancelled and not_finished
    assert shipped.history == [
        ("P", SYSTEM),
        ("A", ADMIN),
        ("R", ADMIN),
        ("S", ADMIN),
        ("V", ADMIN),
    ]
    assert paid_later.history == [("O", SYSTEM), ("P", SYSTEM)]
    assert cancelled.history == [("P", SYSTEM), ("I", ADMIN)]
    assert not_finished.history == [("O", ADMIN)]
    assert (shipped.scenario, paid_later.scenario) == ("paid_online", "offline")
    assert not_finished.scenario == "pending"

    # --- the shipped order: its delivery, paid in full (the courier too), final
    assert shipped.cart and shipped.cart.order and demo.method is not None
    order = shipped.cart.order
    assert order.final and order.paid and order.balance == 0
    assert order.delivery is not None
    assert (order.delivery.method, order.delivery.cost) == (demo.method.method_id, demo.method.cost)
    assert order.delivery.tracking_code and order.delivery.recipient_name
    assert demo.method.currency == order.currency
    assert [m.method_id for m in await stack.catalog.shipping_methods(shop)] == [
        demo.method.method_id
    ]
    # --- paid later: two payments recorded by the admin; cancelled: refunded in full
    assert paid_later.cart and paid_later.cart.order
    assert paid_later.cart.order.paid
    assert [p.confirmed_by for p in paid_later.cart.payments if p.gateway == "admin"] == [
        DEMO_ADMIN,
        DEMO_ADMIN,
    ]
    assert cancelled.cart and cancelled.cart.order
    assert cancelled.cart.order.final and cancelled.cart.order.amount_paid == 0

    # --- stock: taken once by each order, given back once by the cancelled one
    def moves(cart: Cart | None) -> list[tuple[str, str]]:
        assert cart is not None and cart.order is not None
        return [(m.kind, m.outcome) for m in cart.order.stock_moves]

    taken = (STOCK_TAKE, MOVE_DONE)
    assert moves(shipped.cart) == [taken]
    assert moves(paid_later.cart) == [taken]
    assert moves(not_finished.cart) == [taken]
    assert moves(cancelled.cart) == [taken, (STOCK_GIVE_BACK, MOVE_DONE)]
    assert cancelled.cart.order.stock_held is None
    carts = await all_settled(stack, result)
    held: dict[str, int] = {}
    for cart in carts:
        if cart.order is not None and cart.order.stock_held is not None:
            for line in cart.order.stock_held:
                held[line.sku] = held.get(line.sku, 0) + line.quantity
    for sku, level in before.items():
        now = await stack.catalog.stock_level(shop, sku)
        assert now is not None and now.level == level - held.get(sku, 0), sku
    assert demo.stock_after and all(
        level == before[sku] - held.get(sku, 0) for sku, level in demo.stock_after.items()
    )

    # --- numbers: one each, distinct, and on the read model
    numbers = [o.number for o in demo.orders]
    assert None not in numbers and len(set(numbers)) == len(numbers)
    for moved in demo.orders:
        assert moved.number is not None
        row = await _eventually_row(stack, shop, moved.number)
        assert row.cart_id == moved.cart_id

    # --- every status e-mail was sent once, and the mail catcher has it
    received = {
        str(stack.catcher.mailbox.message(stored.id)["Message-ID"])
        for stored in stack.catcher.mailbox.messages()
    }
    for moved in demo.orders:
        assert moved.cart and moved.cart.order
        mails = moved.cart.order.mails
        assert mails and all(m.outcome == "sent" for m in mails), mails
        assert {m.message_id for m in mails} <= received
    shipped_mails = [m.letter for m in shipped.cart.order.mails if m.recipient == "customer"]
    assert shipped_mails == ["P", "R", "S", "V"]

    # --- the summary: each order, and how to see them
    summary = render_order_demo(demo, mail=str(stack.catcher.mailbox.directory), ui="http://ui/x")
    for moved in demo.orders:
        assert f"#{moved.number} " in summary and moved.cart_id in summary
    assert "P > A > R > S > V" in summary and "locked > O" in summary
    assert f"orders show {shipped.number} --shop {shop}" in summary
    assert f"orders list --shop {shop}" in summary
    assert "mail list" in summary and "http://ui/x" in summary
    assert f"stock list --shop {shop}" in summary
    sku = shipped.cart.lines[0].sku
    assert f"{sku} {DEMO_STOCK} -> {DEMO_STOCK - held[sku]}" in summary
    assert "stopped" not in summary and "not settled" not in summary
    assert workflow_query(demo).startswith('WorkflowId IN ("cart:')


async def _eventually_row(stack: Stack, shop: str, number: int, within: float = 15) -> Any:
    from activities.orders_query import OrdersQueryRefused

    deadline = time.monotonic() + within
    while True:
        try:
            return await get_order(stack.db.session_factory, shop, number)
        except OrdersQueryRefused:
            if time.monotonic() > deadline:
                raise
        await _sleep()


# --------------------------------------------------------------------------- without a server


def test_too_few_carts_leave_roles_out_and_say_so() -> None:
    demo = OrderDemo("demo", DEMO_ADMIN, missing=list(ROLES))
    assert pick(Simulation("demo")) == {}
    text = render_order_demo(demo, ui="http://ui/x")
    assert "none: no demo cart ended as an order or a locked cart" in text
    assert "no shipped order" in text and "no not_finished order" in text
    assert "cartkeeper orders list\n" in text + "\n"
    assert "orders show" not in text and "http://ui/x" not in text


async def test_the_stock_is_set_once_and_topped_up_when_low(tmp_path: Path) -> None:
    async with scratch_database("sqlite", tmp_path) as db:
        catalog = CatalogClient(db.session_factory)
        first, last = PRODUCTS[0][0], PRODUCTS[-1][0]
        await catalog.set_stock("shop", first, 7)
        await catalog.set_stock("shop", last, 40)
        levels = await prepare_stock(catalog, "shop")
        assert levels[first] == DEMO_STOCK and levels[last] == 40
        assert set(levels) == {sku for sku, _n, _p in PRODUCTS}
        assert await prepare_stock(catalog, "shop") == levels
