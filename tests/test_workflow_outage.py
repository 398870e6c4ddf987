"""Effects off the critical path: with the read model's database really down, carts are
still created and changed, admins still act, timers fire on time, search attributes stay
current and continue-as-new still happens; when it returns, the read model catches up and
each order gets exactly one number. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from activities.models import OrderNumber
from activities.read_model import get_cart_record
from starter.client import CartkeeperClient
from tests.conftest import new_id
from tests.outage import OutageDatabase, outage_database, worker_on
from workflows.contract import (
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    JournalKind,
    workflow_id,
)

SHOP = "outage"
LINES = [CartLine("tea", "Tea", 2, 450), CartLine("cup", "Cup", 1, 1200)]
TOTAL = 2100
BACKENDS = ["sqlite", "postgresql"]
POLICY = CartPolicy(
    abandon_after_seconds=4,
    lock_after_seconds=2,
    projection_interval_seconds=0.5,
    continue_as_new_after_events=60,
)
T = TypeVar("T")


async def within(seconds: float, check: Callable[[], Awaitable[T | None]]) -> T:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds}s")
        await asyncio.sleep(0.1)


async def in_state(carts: CartkeeperClient, cart_id: str, state: CartState) -> Cart:
    async def reached() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.state is state else None

    return await within(15, reached)


async def answered(call: Awaitable[T]) -> T:
    """An update answers while the database is down (it used to wait for it)."""
    return await asyncio.wait_for(call, 10)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_database_outage_stops_nothing(
    dev_env: WorkflowEnvironment, backend: str, tmp_path: Path
) -> None:
    async with (
        outage_database(backend, tmp_path) as database,
        worker_on(dev_env.client, database, POLICY) as carts,
    ):
        await database.down()
        outage_started = datetime.now(UTC)

        # The storefront: new carts start and change without the database.
        paying, silent, offline, busy, idle = (new_id() for _ in range(5))
        for cart_id in (paying, silent, offline, busy, idle):
            view = await answered(carts.update_cart(SHOP, cart_id, LINES, "EUR"))
            assert view.version == 1 and view.total == TOTAL
        for cart_id in (paying, silent):
            await answered(carts.start_checkout(SHOP, cart_id))
            await answered(
                carts.start_payment(
                    SHOP, cart_id, attempt_id="p1", method="online", gateway="stripe", amount=TOTAL
                )
            )
        # An online success makes a paid order; its number waits for the database.
        await carts.report_payment_result(
            SHOP, paying, attempt_id="p1", status="succeeded", amount=TOTAL
        )
        view = await answered(carts.await_order(SHOP, paying, timeout_seconds=1))
        assert view.state is CartState.ORDERED and view.order_paid
        assert view.order_number is None, "no number while the database is down"
        # An offline payment opens an order at once.
        view = await answered(
            carts.start_payment(
                SHOP, offline, attempt_id="b1", method="offline", gateway="bank", amount=TOTAL
            )
        )
        assert view.state is CartState.ORDERED and view.order_status == "O"

        # Timers fire on time: the silent gateway's cart locks, the idle cart abandons.
        locked = await in_state(carts, silent, CartState.LOCKED)
        assert locked.lock_at is None and locked.locked_at is not None
        late = (datetime.now(UTC) - locked.locked_at).total_seconds()
        assert late < 5, f"the lock fired {late:.1f}s late"
        abandoned = await in_state(carts, idle, CartState.ABANDONED)
        assert abandoned.abandoned_at is not None

        # Admins still act on it.
        view = await answered(carts.confirm(SHOP, silent, admin="ann", note="seen in Stripe"))
        assert view.state is CartState.ORDERED and view.order_paid

        # Search attributes stay current: ops find the abandoned cart in the Temporal UI.
        query = f'WorkflowId = "{workflow_id(SHOP, idle)}" AND CartState = "abandoned"'

        async def listed() -> list[Any]:
            return [wf async for wf in dev_env.client.list_workflows(query)]

        await within(15, listed)

        # Continue-as-new still happens.
        first_run = (await carts.handle(SHOP, busy).describe()).run_id
        for n in range(40):
            await answered(carts.record_visit(SHOP, busy, f"/page-{n}"))

        async def continued() -> bool:
            return (await carts.handle(SHOP, busy).describe()).run_id != first_run

        await within(15, continued)
        assert (await carts.get_cart(SHOP, busy)).version >= 41

        # Nothing reached the database meanwhile.
        assert (datetime.now(UTC) - outage_started).total_seconds() > 2
        await database.up()
        await caught_up(carts, database, [paying, silent, offline, busy, idle])
        for cart_id in (paying, silent, offline):
            await one_number(carts, database, cart_id)


async def caught_up(carts: CartkeeperClient, database: OutageDatabase, cart_ids: list[str]) -> None:
    """Every cart's read-model row reaches its workflow's version."""

    async def done() -> bool:
        for cart_id in cart_ids:
            cart = await carts.get_cart(SHOP, cart_id)
            needs_number = cart.order is not None and cart.order.number is None
            record = await get_cart_record(database.session_factory, SHOP, cart_id)
            if needs_number or record is None or record.version != cart.version:
                return False
            assert record.state is cart.state
        return True

    await within(60, done)


async def one_number(carts: CartkeeperClient, database: OutageDatabase, cart_id: str) -> None:
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.order is not None and cart.order.number is not None
    kinds = [entry.kind for entry in cart.journal]
    assert kinds.count(JournalKind.ORDER_NUMBER_ASSIGNED) == 1
    async with database.session_factory() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OrderNumber)
            .where(OrderNumber.shop_id == SHOP, OrderNumber.cart_id == cart_id)
        )
    assert count == 1, "each order gets exactly one number"


async def test_an_hour_without_the_database_on_the_time_skipping_server(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The real default timers (abandon after 60 minutes, lock after 30) while PostgreSQL
    refuses connections for an hour of server time."""

    from tests.conftest import start_cart

    async with outage_database("postgresql", tmp_path) as database:
        policy = CartPolicy()
        async with worker_on(ts_env.client, database, policy) as carts:
            await database.down()
            idle = await start_cart(ts_env.client, SHOP, new_id(), policy, carts.task_queue)
            paying = await start_cart(ts_env.client, SHOP, new_id(), policy, carts.task_queue)
            try:
                await _an_hour_down(ts_env, database, idle, paying)
            finally:
                # Carts left on a task queue nobody polls would stop the shared server's
                # time skipping for every later test.
                for handle in (idle, paying):
                    await handle.terminate("test over")


async def _an_hour_down(
    ts_env: WorkflowEnvironment, database: OutageDatabase, idle: Any, paying: Any
) -> None:
    from datetime import timedelta

    from workflows.contract import CartView

    for handle in (idle, paying):
        await handle.execute_update(
            "update_cart",
            {
                "lines": [{"sku": "tea", "name": "Tea", "quantity": 1, "unit_price": 450}],
                "currency": "EUR",
            },
            result_type=CartView,
        )
    await paying.execute_update(
        "start_payment",
        {"attempt_id": "p1", "method": "online", "gateway": "stripe", "amount": 450},
        result_type=CartView,
    )
    await ts_env.sleep(timedelta(minutes=61))
    idle_cart = await idle.query("get_cart", result_type=Cart)
    paying_cart = await paying.query("get_cart", result_type=Cart)
    assert idle_cart.state is CartState.ABANDONED
    assert paying_cart.state is CartState.LOCKED
    assert idle_cart.abandoned_at == idle_cart.last_activity_at + timedelta(minutes=60)  # type: ignore[operator]
    # An admin confirms, an hour into the outage: answered, the number waits.
    view = await paying.execute_update("confirm", {"admin": "ann"}, result_type=CartView)
    assert view.state is CartState.ORDERED and view.order_number is None
    await database.up()
    await ts_env.sleep(timedelta(minutes=1))

    async def numbered() -> Cart | None:
        cart = await paying.query("get_cart", result_type=Cart)
        record = await get_cart_record(database.session_factory, SHOP, cart.cart_id)
        done = cart.order is not None and cart.order.number is not None
        return cart if done and record and record.version == cart.version else None

    cart = await within(60, numbered)
    assert [e.kind for e in cart.journal].count(JournalKind.ORDER_NUMBER_ASSIGNED) == 1
