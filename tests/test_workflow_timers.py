"""Every timer path of the cart workflow on the time-skipping server, with the real default
durations (abandon after 60 min, lock after 30 min, expire after 30 days, retire after 1 day).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.read_model import get_cart_record
from starter.client import CartkeeperClient
from tests.conftest import TASK_QUEUE, new_id, start_cart
from workflows.contract import (
    CONFIRM,
    DELETE,
    GET_CART,
    PAYMENT_RESULT,
    START_CHECKOUT,
    START_PAYMENT,
    UNLOCK,
    UPDATE_CART,
    WORKFLOW_NAME,
    Cart,
    CartInput,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CartView,
    CheckoutStarted,
    ConfirmCart,
    DeleteCart,
    LockReason,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
    UnlockCart,
    workflow_id,
)

pytestmark = pytest.mark.usefixtures("ts_worker")

SHOP = "ts-shop"
LINES = [CartLine("sku-1", "Tea", 2, 450), CartLine("sku-2", "Cup", 1, 1200)]


async def update(handle: WorkflowHandle[Any, Any], name: str, arg: Any) -> Cart:
    """An update (answered with a compact view), then the whole cart (a query)."""
    view: CartView = await handle.execute_update(name, arg, result_type=CartView)
    cart = await query(handle)
    assert view.version == cart.version and view.state is cart.state
    return cart


async def query(handle: WorkflowHandle[Any, Any]) -> Cart:
    result: Cart = await handle.query(GET_CART, result_type=Cart)
    return result


async def result(handle: WorkflowHandle[Any, Any]) -> Cart:
    """The closed run's result (the cart as it was when the workflow finished)."""
    closed: Cart = await handle.result()
    return closed


async def new_cart(
    env: WorkflowEnvironment, policy: CartPolicy | None = None
) -> tuple[WorkflowHandle[Any, Any], Cart]:
    handle = await start_cart(env.client, SHOP, new_id(), policy)
    cart = await update(handle, UPDATE_CART, CartUpdated(lines=list(LINES), currency="EUR"))
    return handle, cart


async def pay_online(handle: WorkflowHandle[Any, Any], attempt: str = "att-1") -> Cart:
    await update(handle, START_CHECKOUT, CheckoutStarted())
    return await update(
        handle, START_PAYMENT, PaymentStarted(attempt, PaymentMethod.ONLINE, "stripe", 2100)
    )


async def test_inactivity_abandons_after_60_minutes(ts_env: WorkflowEnvironment) -> None:
    handle, cart = await new_cart(ts_env)
    assert cart.state is CartState.ACTIVE
    assert cart.abandon_at == cart.last_activity_at + timedelta(minutes=60)  # type: ignore[operator]
    await ts_env.sleep(timedelta(minutes=59))
    assert (await query(handle)).state is CartState.ACTIVE
    await ts_env.sleep(timedelta(minutes=2))
    cart = await query(handle)
    assert cart.state is CartState.ABANDONED
    assert cart.abandoned_at == cart.last_activity_at + timedelta(minutes=60)  # type: ignore[operator]


async def test_customer_back_after_abandonment_restarts_the_clock(
    ts_env: WorkflowEnvironment,
) -> None:
    handle, _ = await new_cart(ts_env)
    await ts_env.sleep(timedelta(minutes=61))
    assert (await query(handle)).state is CartState.ABANDONED
    cart = await update(handle, UPDATE_CART, CartUpdated(lines=LINES[:1], currency="EUR"))
    assert cart.state is CartState.ACTIVE
    await ts_env.sleep(timedelta(minutes=59))
    assert (await query(handle)).state is CartState.ACTIVE
    await ts_env.sleep(timedelta(minutes=2))
    assert (await query(handle)).state is CartState.ABANDONED


async def test_checkout_without_activity_abandons(ts_env: WorkflowEnvironment) -> None:
    handle, _ = await new_cart(ts_env)
    await update(handle, START_CHECKOUT, CheckoutStarted())
    await ts_env.sleep(timedelta(minutes=61))
    assert (await query(handle)).state is CartState.ABANDONED


async def test_no_payment_result_locks_after_30_minutes(ts_env: WorkflowEnvironment) -> None:
    handle, _ = await new_cart(ts_env)
    cart = await pay_online(handle)
    assert cart.state is CartState.PAYMENT_PENDING
    await ts_env.sleep(timedelta(minutes=29))
    assert (await query(handle)).state is CartState.PAYMENT_PENDING
    await ts_env.sleep(timedelta(minutes=2))
    cart = await query(handle)
    assert cart.state is CartState.LOCKED
    assert cart.lock_reason is LockReason.NO_PAYMENT_RESULT
    assert cart.locked_at == cart.payment_started_at + timedelta(minutes=30)  # type: ignore[operator]
    # Locked carts do not abandon: an hour later it is still waiting for an admin.
    await ts_env.sleep(timedelta(hours=2))
    assert (await query(handle)).state is CartState.LOCKED


async def test_pending_result_locks_at_once_by_default(ts_env: WorkflowEnvironment) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    await handle.signal(PAYMENT_RESULT, PaymentResultReported("att-1", PaymentStatus.PENDING, 2100))
    cart = await query(handle)
    assert cart.state is CartState.LOCKED
    assert cart.lock_reason is LockReason.PAYMENT_PENDING


async def test_pending_result_opens_an_order_when_the_shop_processes_pending(
    ts_env: WorkflowEnvironment,
) -> None:
    handle, _ = await new_cart(ts_env, CartPolicy(process_pending_payments=True))
    await pay_online(handle)
    await handle.signal(PAYMENT_RESULT, PaymentResultReported("att-1", PaymentStatus.PENDING, 2100))
    await ts_env.sleep(timedelta(seconds=5))
    cart = await query(handle)
    assert cart.state is CartState.ORDERED
    assert cart.order is not None and cart.order.status == "O" and not cart.order.paid
    assert cart.order.number is not None


async def test_late_success_after_lock_creates_the_order(ts_env: WorkflowEnvironment) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    await ts_env.sleep(timedelta(hours=3))
    assert (await query(handle)).state is CartState.LOCKED
    await handle.signal(
        PAYMENT_RESULT,
        PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2100, card_last4="4242"),
    )
    await ts_env.sleep(timedelta(seconds=5))
    cart = await query(handle)
    assert cart.state is CartState.ORDERED
    assert cart.order is not None and cart.order.status == "P" and cart.order.paid
    assert cart.order.number is not None
    assert cart.payments[0].card_last4 == "4242"


async def test_admin_unlock_then_abandon_then_lifetime_expires(
    ts_env: WorkflowEnvironment, session_factory: Any
) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    await ts_env.sleep(timedelta(minutes=31))
    cart = await update(handle, UNLOCK, UnlockCart(admin="ann"))
    assert cart.state is CartState.ACTIVE
    assert [line.sku for line in cart.lines] == ["sku-1", "sku-2"]
    await ts_env.sleep(timedelta(minutes=61))
    assert (await query(handle)).state is CartState.ABANDONED
    await ts_env.sleep(timedelta(days=30))
    cart = await query(handle)
    assert cart.state is CartState.EXPIRED
    assert cart.closed_at == cart.last_activity_at + timedelta(days=30)  # type: ignore[operator]
    # After a day of waiting for late events the workflow finishes, its record projected.
    assert (await result(handle)).state is CartState.EXPIRED
    record = await get_cart_record(session_factory, SHOP, cart.cart_id)
    assert record is not None and record.state is CartState.EXPIRED
    assert record.version == cart.version


async def test_admin_confirm_of_a_locked_cart_numbers_the_order(
    ts_env: WorkflowEnvironment,
) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    await ts_env.sleep(timedelta(minutes=31))
    cart = await update(handle, CONFIRM, ConfirmCart(admin="ann", note="seen in Stripe"))
    assert cart.state is CartState.ORDERED
    await ts_env.sleep(timedelta(seconds=2))
    cart = await query(handle)
    assert cart.order is not None and cart.order.number is not None
    assert cart.order.status == "P"


async def test_ordered_cart_retires_and_a_late_double_charge_is_still_recorded(
    ts_env: WorkflowEnvironment, session_factory: Any
) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    await handle.signal(
        PAYMENT_RESULT, PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2100)
    )
    # The order phase keeps the workflow until a final status: an admin completes it.
    await ts_env.sleep(timedelta(seconds=5))
    await handle.execute_update("set_order_status", {"admin": "ann", "status": "C"})
    await ts_env.sleep(timedelta(days=2))
    closed = await result(handle)
    assert closed.state is CartState.ORDERED and closed.order is not None
    assert closed.order.status == "C" and closed.order.final
    number = closed.order.number
    assert number is not None
    # A second success for another attempt arrives after the workflow has closed: the
    # client's signal-with-start is refused (REJECT_DUPLICATE) with the closed run's id,
    # and a new run restores the cart from that run's result and records the success.
    carts = CartkeeperClient(ts_env.client, task_queue=TASK_QUEUE)
    await carts.report_payment_result(
        SHOP, closed.cart_id, attempt_id="att-2", status="succeeded", amount=2100
    )
    await ts_env.sleep(timedelta(seconds=5))
    again = ts_env.client.get_workflow_handle(workflow_id(SHOP, closed.cart_id), result_type=Cart)
    cart = await query(again)
    assert [e.kind for e in cart.journal if e.kind == "cart_restored"] == ["cart_restored"]
    assert cart.lineage == closed.lineage, "the same cart, continued"
    assert cart.order is not None and cart.order.number == number
    assert [a.kind for a in cart.attention] == ["possible_double_charge"]
    assert cart.needs_admin
    await ts_env.sleep(timedelta(days=2))
    assert (await result(again)).attention == cart.attention
    record = await get_cart_record(session_factory, SHOP, closed.cart_id)
    assert record is not None and [a.kind for a in record.attention] == ["possible_double_charge"]


async def test_success_after_deletion_and_close_needs_an_admin(
    ts_env: WorkflowEnvironment,
) -> None:
    handle, _ = await new_cart(ts_env)
    await pay_online(handle)
    cart = await update(handle, DELETE, DeleteCart(admin="ann"))
    assert cart.state is CartState.DELETED
    await ts_env.sleep(timedelta(days=2))
    assert (await result(handle)).state is CartState.DELETED
    # A gateway that signals with start itself names the closed run to continue from.
    again = await ts_env.client.start_workflow(
        WORKFLOW_NAME,
        CartInput(shop_id=SHOP, cart_id=cart.cart_id, restore_run_id=handle.result_run_id),
        id=handle.id,
        task_queue=TASK_QUEUE,
        result_type=Cart,
        start_signal=PAYMENT_RESULT,
        start_signal_args=[PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 2100)],
    )
    await ts_env.sleep(timedelta(seconds=5))
    cart = await query(again)
    assert cart.state is CartState.DELETED, cart.attention
    assert cart.order is None
    assert [a.kind for a in cart.attention] == ["paid_after_close"]
    assert cart.attention[0].attempt_id == "att-1"
