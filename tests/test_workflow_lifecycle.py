"""Edges of a cart's life: continue-as-new leaves no handler unfinished and carries the
projected version; an order that is not fully paid keeps its workflow open."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.read_model import get_cart_record
from starter.client import CartkeeperClient
from tests.conftest import new_id, start_cart
from tests.test_workflow_dev import SHOP, TOTAL, eventually, to_payment
from workflows.contract import (
    PAYMENT_RESULT,
    Cart,
    CartPolicy,
    CartState,
    CartView,
    workflow_id,
)


async def run_ids(client: Client, cart_id: str) -> str:
    description = await client.get_workflow_handle(workflow_id(SHOP, cart_id)).describe()
    return description.run_id


async def test_continue_as_new_answers_waiting_handlers_and_carries_the_projection(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
    session_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    carts = carts_with(CartPolicy(continue_as_new_after_events=40, projection_interval_seconds=0))
    cart_id = new_id()
    await to_payment(carts, cart_id)
    first_run = await run_ids(carts.client, cart_id)
    # The customer is back from the gateway and waits for the order (twice: a raw
    # update sees what the workflow does, the client what a storefront sees) ...
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    raw = asyncio.create_task(
        handle.execute_update("await_order", {"timeout_seconds": 120}, result_type=dict)
    )
    client_wait = asyncio.create_task(carts.await_order(SHOP, cart_id, timeout_seconds=60))
    await asyncio.sleep(0.5)
    # ... while the storefront keeps the cart busy until it continues as new.
    with caplog.at_level(logging.WARNING, logger="temporalio"):
        for n in range(30):
            await carts.record_visit(SHOP, cart_id, f"/p{n}")
            if await run_ids(carts.client, cart_id) != first_run:
                break
        answered = await asyncio.wait_for(raw, 30)
    assert await run_ids(carts.client, cart_id) != first_run, "it should have continued"
    # The run answered its waiting call before it ended (not abandoned, not failed) ...
    assert answered["state"] == "payment_pending" and answered["order_number"] is None
    # ... and the client asks the next run for the rest of its time: the order comes.
    assert not client_wait.done()
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="succeeded", amount=TOTAL
    )
    view = await asyncio.wait_for(client_wait, 30)
    assert view.state is CartState.ORDERED and view.order_number is not None
    unfinished = [r.getMessage() for r in caplog.records if "unfinished" in r.getMessage().lower()]
    assert unfinished == []
    # The new run knows what the read model holds: it starts from the carried version.
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    started = await anext(aiter(handle.fetch_history_events()))
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    payload = started.workflow_execution_started_event_attributes.input.payloads[0]
    carried = json.loads(payload.data)
    record = await get_cart_record(session_factory, SHOP, cart_id)
    assert record is not None
    assert 0 < carried["projected_version"] <= record.version
    assert carried["cart"]["version"] >= carried["projected_version"]

    async def caught_up() -> bool:
        cart = await carts.get_cart(SHOP, cart_id)
        row = await get_cart_record(session_factory, SHOP, cart_id)
        return row is not None and row.version == cart.version

    await eventually(caught_up)


async def signal_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the run is closed (a signal to a closed run is refused)."""
    try:
        await handle.signal(
            PAYMENT_RESULT, {"attempt_id": "probe", "status": "failed", "amount": 0}
        )
    except RPCError:
        return True
    return False


async def _offline_order(ts_env: WorkflowEnvironment, policy: CartPolicy) -> Any:
    handle = await start_cart(ts_env.client, SHOP, new_id(), policy)
    await handle.execute_update(
        "update_cart",
        {
            "lines": [{"sku": "tea", "name": "Tea", "quantity": 1, "unit_price": TOTAL}],
            "currency": "EUR",
        },
        result_type=CartView,
    )
    await handle.execute_update(
        "start_payment",
        {"attempt_id": "bank-1", "method": "offline", "gateway": "bank", "amount": TOTAL},
        result_type=CartView,
    )
    return handle


@pytest.mark.usefixtures("ts_worker")
async def test_an_order_stays_open_until_an_admin_sets_a_final_status(
    ts_env: WorkflowEnvironment,
) -> None:
    """The order phase: unpaid (Open) for days, then paid (the workflow makes it
    Processed), the order's workflow stays open; a final status retires it a day later."""
    policy = CartPolicy(lifetime_seconds=10 * 86400, retire_after_seconds=86400)
    handle = await _offline_order(ts_env, policy)
    # Days later the bank transfer has not arrived: the order's workflow is still open.
    await ts_env.sleep(timedelta(days=3))
    cart: Cart = await handle.query("get_cart", result_type=Cart)
    assert cart.order is not None and not cart.order.paid and cart.order.number is not None
    assert cart.order.status == "O" and cart.order.managed
    assert not await signal_closed(handle)
    await handle.signal(
        PAYMENT_RESULT, {"attempt_id": "bank-1", "status": "succeeded", "amount": TOTAL}
    )
    await ts_env.sleep(timedelta(hours=1))
    cart = await handle.query("get_cart", result_type=Cart)
    assert cart.order is not None and cart.order.paid and cart.order.status == "P"
    # Paid but not finished (Processed is not final): still open days later.
    await ts_env.sleep(timedelta(days=2))
    assert not await signal_closed(handle)
    await handle.execute_update("set_order_status", {"admin": "ann", "status": "C"})
    await ts_env.sleep(timedelta(days=2))
    closed: Cart = await handle.result()
    assert closed.order is not None and closed.order.paid and closed.order.final


@pytest.mark.usefixtures("ts_worker")
async def test_an_unpaid_order_outlives_its_lifetime_until_an_admin_ends_it(
    ts_env: WorkflowEnvironment,
) -> None:
    """An Open order is the admins' to end (Cancelled, Declined ...): its lifetime does not
    retire it (an order from before the order phase still retires then: the recorded
    histories)."""
    policy = CartPolicy(lifetime_seconds=5 * 86400, retire_after_seconds=3600)
    handle = await _offline_order(ts_env, policy)
    await ts_env.sleep(timedelta(days=6))
    assert not await signal_closed(handle)
    await handle.execute_update("set_order_status", {"admin": "ann", "status": "I"})
    await ts_env.sleep(timedelta(hours=2))
    closed: Cart = await handle.result()
    assert closed.order is not None and not closed.order.paid and closed.order.status == "I"
