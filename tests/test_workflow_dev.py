"""The cart workflow on the real dev server: update-with-start, validators, search
attributes, continue-as-new, idempotency and the races of payment results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.read_model import get_cart_record
from starter.client import CartkeeperClient, CartkeeperError
from tests.conftest import new_id
from workflows.contract import (
    AttentionKind,
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CartView,
    CustomerInfo,
    ErrorCode,
    JournalKind,
    LockReason,
    PaymentMethod,
    PaymentStatus,
    workflow_id,
)

SHOP = "dev-shop"
LINES = [CartLine("sku-1", "Tea", 2, 450), CartLine("sku-2", "Cup", 1, 1200)]
TOTAL = 2100


async def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within}s (last: {value!r})")
        await asyncio.sleep(0.1)


async def order_settled(carts: CartkeeperClient, cart_id: str) -> Cart:
    """The cart once its order's first status is resolved, its stock moved and its status
    e-mails done (the order phase's effects that change the cart soon after the order;
    a cart without a customer address needs no relay for them)."""

    async def settled() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        order = cart.order
        if order is None or order.number is None or not order.statuses:
            return None
        moved = all(move.outcome != "pending" for move in order.stock_moves)
        mailed = all(mail.outcome != "pending" for mail in order.mails)
        return cart if order.statuses[-1].resolved and moved and mailed else None

    found: Cart = await eventually(settled)
    return found


async def whole(carts: CartkeeperClient, view: CartView) -> Cart:
    """The whole cart behind an update's compact answer (no older than the answer)."""
    cart = await carts.get_cart(view.shop_id, view.cart_id)
    assert cart.version >= view.version
    return cart


async def to_payment(carts: CartkeeperClient, cart_id: str, attempt: str = "att-1") -> CartView:
    await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    await carts.start_checkout(SHOP, cart_id)
    return await carts.start_payment(
        SHOP, cart_id, attempt_id=attempt, method="online", gateway="stripe", amount=TOTAL
    )


async def succeed(carts: CartkeeperClient, cart_id: str, attempt: str = "att-1", **kw: Any) -> None:
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id=attempt, status="succeeded", amount=TOTAL, **kw
    )


async def history_event_types(client: Client, cart_id: str) -> list[int]:
    handle = client.get_workflow_handle(workflow_id(SHOP, cart_id))
    return [event.event_type async for event in handle.fetch_history_events()]


async def runs_of(client: Client, cart_id: str, at_least: int = 1) -> list[Any]:
    """The cart's runs as visibility lists them (eventually consistent: poll a while)."""
    query = f'WorkflowId = "{workflow_id(SHOP, cart_id)}"'

    async def listed() -> list[Any]:
        runs = [wf async for wf in client.list_workflows(query)]
        return runs if len(runs) >= at_least else []

    try:
        result: list[Any] = await eventually(listed, within=10)
    except AssertionError:
        return [wf async for wf in client.list_workflows(query)]
    return result


# --------------------------------------------------------------------------- creation


async def test_update_with_start_creates_the_cart_once(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    first = await carts.update_cart(SHOP, cart_id, LINES[:1], "EUR")
    assert first.state is CartState.ACTIVE and first.total == 900 and first.version == 1
    second = await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    assert second.total == TOTAL and second.version == 2
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING
    # One run served both calls; the journal says what the customer did.
    runs = await runs_of(carts.client, cart_id)
    assert len(runs) == 1
    assert [e.kind for e in (await whole(carts, second)).journal] == [
        "cart_created",
        "item_added",
        "item_added",
    ]


async def test_storefront_events_can_create_the_cart_in_any_order(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    view = await carts.identify_customer(
        SHOP, cart_id, CustomerInfo(email="Ann@Example.com", name="Ann", time_zone="Europe/Paris")
    )
    cart = await whole(carts, view)
    assert cart.customer is not None and cart.customer.email == "Ann@example.com"
    visited = await whole(carts, await carts.record_visit(SHOP, cart_id, page="/cart"))
    assert visited.journal[-1].kind == "customer_visited"


async def test_concurrent_updates_are_applied_one_by_one(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, LINES[:1], "EUR")
    results = await asyncio.gather(
        *(
            carts.update_cart(SHOP, cart_id, [CartLine("sku-1", "Tea", q, 450)], "EUR")
            for q in range(1, 9)
        )
    )
    assert sorted(r.version for r in results) == list(range(2, 10))
    final = await carts.get_cart(SHOP, cart_id)
    assert final.version == max(r.version for r in results)
    assert final.total == final.lines[0].quantity * 450


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("lines", "currency", "code"),
    [
        ([CartLine("a", "A", 0, 100)], "EUR", ErrorCode.INVALID_QUANTITY),
        ([CartLine("a", "A", -1, 100)], "EUR", ErrorCode.INVALID_QUANTITY),
        ([CartLine("a", "A", 1, -5)], "EUR", ErrorCode.INVALID_PRICE),
        ([CartLine("a", "A", 1, 5), CartLine("a", "A", 1, 5)], "EUR", ErrorCode.DUPLICATE_SKU),
        ([CartLine("a", "A", 1, 5)], "EURO", ErrorCode.INVALID_CURRENCY),
    ],
)
async def test_invalid_input_is_refused_at_the_edge(
    carts: CartkeeperClient, lines: list[CartLine], currency: str, code: ErrorCode
) -> None:
    cart_id = new_id()
    with pytest.raises(CartkeeperError) as refused:
        await carts.update_cart(SHOP, cart_id, lines, currency)
    assert refused.value.code is code
    assert refused.value.http_status == 422
    # Refused at the edge: no workflow was started.
    with pytest.raises(CartkeeperError) as missing:
        await carts.get_cart(SHOP, cart_id)
    assert missing.value.code is ErrorCode.CART_NOT_FOUND


async def test_invalid_ids_and_email_are_refused(carts: CartkeeperClient) -> None:
    with pytest.raises(CartkeeperError) as bad_id:
        await carts.update_cart(SHOP, "cart with spaces", LINES, "EUR")
    assert bad_id.value.code is ErrorCode.INVALID_ID
    with pytest.raises(CartkeeperError) as bad_email:
        await carts.identify_customer(SHOP, new_id(), CustomerInfo(email="not-an-email"))
    assert bad_email.value.code is ErrorCode.INVALID_EMAIL
    with pytest.raises(CartkeeperError) as bad_zone:
        await carts.identify_customer(
            SHOP, new_id(), CustomerInfo(email="a@example.com", time_zone="Mars/Olympus")
        )
    assert bad_zone.value.code is ErrorCode.INVALID_CUSTOMER


async def test_validators_refuse_and_the_history_keeps_no_trace(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    before = await history_event_types(carts.client, cart_id)
    with pytest.raises(CartkeeperError) as mismatch:
        await carts.update_cart(SHOP, cart_id, LINES, "USD")
    assert mismatch.value.code is ErrorCode.CURRENCY_MISMATCH
    assert mismatch.value.http_status == 409
    with pytest.raises(CartkeeperError) as not_locked:
        await carts.confirm(SHOP, cart_id, admin="ann")
    assert not_locked.value.code is ErrorCode.NOT_LOCKED
    after = await history_event_types(carts.client, cart_id)
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    assert after.count(accepted) == before.count(accepted)
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.currency == "EUR" and cart.version == 1


async def test_storefront_changes_to_locked_and_ordered_carts_are_refused(
    carts: CartkeeperClient,
) -> None:
    locked = new_id()
    await to_payment(carts, locked)
    await carts.report_payment_result(
        SHOP, locked, attempt_id="att-1", status="pending", amount=TOTAL
    )
    with pytest.raises(CartkeeperError) as refused:
        await carts.update_cart(SHOP, locked, LINES[:1], "EUR")
    assert refused.value.code is ErrorCode.CART_LOCKED
    ordered = new_id()
    await to_payment(carts, ordered)
    await succeed(carts, ordered)
    await carts.await_order(SHOP, ordered, timeout_seconds=10)
    with pytest.raises(CartkeeperError) as refused:
        await carts.start_checkout(SHOP, ordered)
    assert refused.value.code is ErrorCode.ALREADY_ORDERED
    deleted = new_id()
    await carts.update_cart(SHOP, deleted, LINES, "EUR")
    await carts.delete(SHOP, deleted, admin="ann")
    with pytest.raises(CartkeeperError) as refused:
        await carts.update_cart(SHOP, deleted, LINES, "EUR")
    assert refused.value.code is ErrorCode.CART_DELETED
    assert refused.value.http_status == 410


async def test_admin_action_on_an_unknown_cart_is_not_found(carts: CartkeeperClient) -> None:
    with pytest.raises(CartkeeperError) as missing:
        await carts.confirm(SHOP, new_id(), admin="ann")
    assert missing.value.code is ErrorCode.CART_NOT_FOUND
    assert missing.value.http_status == 404


# --------------------------------------------------------------------------- orders


async def test_online_payment_creates_a_numbered_order(
    carts: CartkeeperClient, session_factory: Any
) -> None:
    cart_id = new_id()
    view = await to_payment(carts, cart_id)
    assert view.state is CartState.PAYMENT_PENDING
    await succeed(carts, cart_id, card_last4="4242")
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert cart.state is CartState.ORDERED
    assert cart.order is not None and cart.order.status == "P" and cart.order.paid
    assert cart.order.number is not None and cart.order.total == TOTAL
    assert cart.payments[0].card_last4 == "4242"

    async def projected() -> Any:
        record = await get_cart_record(session_factory, SHOP, cart_id)
        # (the order phase goes on changing the cart: its first status, its stock)
        return record if record and record.version >= cart.version else None

    record = await eventually(projected)
    assert record.order.number == cart.order.number


async def test_offline_payment_opens_an_order_at_once(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    cart = await carts.start_payment(
        SHOP,
        cart_id,
        attempt_id="bank-1",
        method=PaymentMethod.OFFLINE,
        gateway="bank",
        amount=TOTAL,
    )
    assert cart.state is CartState.ORDERED
    assert cart.order_status == "O" and not cart.order_paid and cart.amount_paid == 0
    numbered = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert numbered.order is not None and numbered.order.number is not None


async def test_order_numbers_are_unique_and_assigned_once(carts: CartkeeperClient) -> None:
    cart_ids = [new_id() for _ in range(12)]
    await asyncio.gather(*(to_payment(carts, c) for c in cart_ids))
    # Every success twice, concurrently: still one order and one number per cart.
    await asyncio.gather(*(succeed(carts, c) for c in cart_ids + cart_ids))
    await asyncio.gather(*(carts.await_order(SHOP, c, 10) for c in cart_ids))
    done = [await carts.get_cart(SHOP, c) for c in cart_ids]
    numbers = [c.order.number for c in done if c.order]
    assert len(numbers) == 12 and None not in numbers and len(set(numbers)) == 12
    for cart in done:
        assert not cart.attention
        assert [j.kind for j in cart.journal].count(JournalKind.ORDER_NUMBER_ASSIGNED) == 1


async def test_await_order_returns_when_the_payment_fails(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    waiting = asyncio.create_task(carts.await_order(SHOP, cart_id, timeout_seconds=20))
    await asyncio.sleep(0.3)
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="failed", amount=TOTAL
    )
    cart = await asyncio.wait_for(waiting, 10)
    assert cart.state is CartState.CHECKOUT and cart.order_status is None


# --------------------------------------------------------------------------- races


async def test_success_before_payment_started_creates_the_order(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    await succeed(carts, cart_id, attempt="early-1")
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert cart.state is CartState.ORDERED and cart.order is not None
    assert cart.order.attempt_id == "early-1" and cart.order.number is not None
    with pytest.raises(CartkeeperError) as late_start:
        await carts.start_payment(
            SHOP, cart_id, attempt_id="early-1", method="online", gateway="stripe", amount=TOTAL
        )
    assert late_start.value.code is ErrorCode.ALREADY_ORDERED


async def test_result_for_a_cart_never_seen_is_kept_but_makes_no_order(
    carts: CartkeeperClient,
) -> None:
    """Signal-with-start: a success for a cart id that never existed is recorded and
    flagged for an admin, never turned into an empty order."""
    cart_id = new_id()
    await succeed(carts, cart_id, attempt="ghost-1", currency="EUR")
    view = await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    assert view.order_status is None and view.attention == ["payment_without_cart"]
    cart = await whole(carts, view)
    assert cart.order is None and cart.lines == []
    attempt = cart.attempt("ghost-1")
    assert attempt is not None and attempt.succeeded_amount == TOTAL
    assert cart.needs_admin


async def test_success_racing_the_lock_timeout_is_never_lost(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    carts = carts_with(CartPolicy(lock_after_seconds=1, projection_interval_seconds=0))
    cart_ids = [new_id() for _ in range(10)]
    await asyncio.gather(*(to_payment(carts, c) for c in cart_ids))
    # Results land just before, at and after the lock deadline.
    await asyncio.sleep(0.8)
    for i, cart_id in enumerate(cart_ids):
        await succeed(carts, cart_id)
        await asyncio.sleep(0.05 if i % 2 else 0)
    await asyncio.gather(*(carts.await_order(SHOP, c, 10) for c in cart_ids))
    done = [await carts.get_cart(SHOP, c) for c in cart_ids]
    for cart in done:
        assert cart.state is CartState.ORDERED
        assert cart.order is not None and cart.order.paid and cart.order.number is not None


async def test_success_after_lock_and_unlock_creates_the_order(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    carts = carts_with(CartPolicy(lock_after_seconds=1, projection_interval_seconds=0))
    cart_id = new_id()
    await to_payment(carts, cart_id)

    async def locked() -> bool:
        return (await carts.get_cart(SHOP, cart_id)).state is CartState.LOCKED

    await eventually(locked)
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.lock_reason is LockReason.NO_PAYMENT_RESULT
    view = await carts.unlock(SHOP, cart_id, admin="ann")
    assert view.state is CartState.ACTIVE
    await succeed(carts, cart_id)
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert cart.state is CartState.ORDERED and cart.order is not None and cart.order.paid


async def test_late_negative_result_for_an_older_attempt_never_undoes_a_success(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id, attempt="att-1")
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="failed", amount=TOTAL
    )
    await carts.start_payment(
        SHOP, cart_id, attempt_id="att-2", method="online", gateway="stripe", amount=TOTAL
    )
    await succeed(carts, cart_id, attempt="att-2")
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="expired", amount=TOTAL
    )
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-2", status="expired", amount=TOTAL
    )
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert cart.state is CartState.ORDERED
    assert cart.order is not None and cart.order.paid and cart.order.attempt_id == "att-2"
    statuses = {p.attempt_id: p.status for p in cart.payments}
    assert statuses == {"att-1": PaymentStatus.EXPIRED, "att-2": PaymentStatus.SUCCEEDED}


async def test_duplicate_results_are_idempotent(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    for _ in range(3):
        await succeed(carts, cart_id)
    await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    first = await order_settled(carts, cart_id)
    await succeed(carts, cart_id)
    again = await carts.get_cart(SHOP, cart_id)
    assert again.version == first.version
    assert again.payments[0].results == [PaymentStatus.SUCCEEDED]
    # The storefront retrying its "payment started" is also harmless.
    retry = new_id()
    a = await to_payment(carts, retry)
    b = await carts.start_payment(
        SHOP, retry, attempt_id="att-1", method="online", gateway="stripe", amount=TOTAL
    )
    assert b.version == a.version


async def test_second_success_is_a_possible_double_charge_not_a_second_order(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id, attempt="att-1")
    await succeed(carts, cart_id, attempt="att-2")
    await carts.await_order(SHOP, cart_id, timeout_seconds=10)
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.order is not None and cart.order.attempt_id == "att-1"
    assert [a.kind for a in cart.attention] == [AttentionKind.POSSIBLE_DOUBLE_CHARGE]
    assert cart.attention[0].attempt_id == "att-2" and cart.needs_admin


async def test_admin_confirm_racing_a_gateway_success_makes_one_order(
    carts: CartkeeperClient,
) -> None:
    cart_ids = [new_id() for _ in range(6)]
    for cart_id in cart_ids:
        await to_payment(carts, cart_id)
        await carts.report_payment_result(
            SHOP, cart_id, attempt_id="att-1", status="pending", amount=TOTAL
        )

    async def race(cart_id: str) -> Cart:
        confirm = carts.confirm(SHOP, cart_id, admin="ann")
        success = succeed(carts, cart_id)
        outcomes = await asyncio.gather(confirm, success, return_exceptions=True)
        refused = outcomes[0]
        if isinstance(refused, CartkeeperError):
            assert refused.code is ErrorCode.ALREADY_ORDERED
        return await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))

    for cart in await asyncio.gather(*(race(c) for c in cart_ids)):
        assert cart.state is CartState.ORDERED
        assert cart.order is not None and cart.order.paid and cart.order.number is not None
        assert not cart.attention


async def test_success_after_deletion_is_recorded_for_an_admin(
    carts: CartkeeperClient,
) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.delete(SHOP, cart_id, admin="ann")
    again = await carts.delete(SHOP, cart_id, admin="ann")  # deleting twice: one deletion
    await succeed(carts, cart_id)

    async def recorded() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.attention else None

    cart = await eventually(recorded)
    assert cart.state is CartState.DELETED and cart.order is None
    assert [a.kind for a in cart.attention] == [AttentionKind.PAID_AFTER_CLOSE]
    assert again.version == cart.version - 1


async def test_success_after_the_workflow_closed_is_recorded(
    carts_with: Callable[[CartPolicy], CartkeeperClient], session_factory: Any
) -> None:
    carts = carts_with(CartPolicy(retire_after_seconds=1, projection_interval_seconds=0))
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.delete(SHOP, cart_id, admin="ann")
    handle = carts.handle(SHOP, cart_id)
    closed = await asyncio.wait_for(handle.result(), 20)
    assert closed.state is CartState.DELETED
    await succeed(carts, cart_id)

    async def recorded() -> Any:
        record = await get_cart_record(session_factory, SHOP, cart_id)
        return record if record and record.attention else None

    record = await eventually(recorded)
    assert record.state is CartState.DELETED
    assert [a.kind for a in record.attention] == [AttentionKind.PAID_AFTER_CLOSE]
    # The storefront cannot bring the deleted cart back either.
    with pytest.raises(CartkeeperError) as refused:
        await carts.update_cart(SHOP, cart_id, LINES, "EUR")
    assert refused.value.code is ErrorCode.CART_DELETED


# --------------------------------------------------------------------------- ops


async def test_search_attributes_and_summary(carts: CartkeeperClient) -> None:
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.identify_customer(
        SHOP, cart_id, CustomerInfo(email="secret.person@example.com", name="Secret Person")
    )
    await succeed(carts, cart_id)
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    assert cart.order is not None
    query = f'CartOrderNumber = {cart.order.number} AND CartState = "ordered"'

    async def found() -> list[Any]:
        return [wf async for wf in carts.client.list_workflows(query)]

    listed = (await eventually(found))[0]
    values = {key.name: value for key, value in listed.typed_search_attributes}
    assert values["CartShop"] == SHOP and values["CartOrderNumber"] == cart.order.number
    for value in values.values():
        assert "secret" not in str(value).lower()
    description = await carts.client.get_workflow_handle(listed.id).describe()
    assert await description.static_summary() == f"cart {cart_id} of shop {SHOP}"
    details = await _current_details(carts.client, listed.id)
    assert details.startswith("**ordered**") and f"#{cart.order.number}" in details
    assert "secret" not in details.lower()


async def _current_details(client: Client, wf_id: str) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    from temporalio.api.sdk.v1 import WorkflowMetadata

    metadata = await client.get_workflow_handle(wf_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return str(metadata.current_details)


async def test_continue_as_new_carries_the_whole_cart(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    carts = carts_with(CartPolicy(continue_as_new_after_events=40, projection_interval_seconds=0))
    cart_id = new_id()
    await carts.identify_customer(SHOP, cart_id, CustomerInfo(email="ann@example.com"))
    for quantity in range(1, 16):
        await carts.update_cart(SHOP, cart_id, [CartLine("sku-1", "Tea", quantity, 450)], "EUR")
    before = await carts.get_cart(SHOP, cart_id)
    await carts.start_checkout(SHOP, cart_id)
    await carts.start_payment(
        SHOP, cart_id, attempt_id="att-1", method="online", gateway="stripe", amount=6750
    )
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="succeeded", amount=6750
    )
    cart = await whole(carts, await carts.await_order(SHOP, cart_id, timeout_seconds=10))
    runs = await runs_of(carts.client, cart_id, at_least=2)
    assert len(runs) >= 2, "the cart should have continued as new"
    assert cart.customer is not None and cart.customer.email == "ann@example.com"
    assert cart.lines == [CartLine("sku-1", "Tea", 15, 450)]
    assert cart.journal_dropped == 0
    assert cart.journal[: len(before.journal)] == before.journal
    assert cart.created_at == before.created_at
    assert cart.order is not None and cart.order.number is not None
    assert cart.version > before.version
    assert [j.kind for j in cart.journal].count(JournalKind.ITEM_ADDED) == 1


async def test_continue_as_new_keeps_the_deadlines(
    carts_with: Callable[[CartPolicy], CartkeeperClient],
) -> None:
    carts = carts_with(
        CartPolicy(
            continue_as_new_after_events=30, lock_after_seconds=3, projection_interval_seconds=0
        )
    )
    cart_id = new_id()
    cart = await whole(carts, await to_payment(carts, cart_id))
    lock_at = cart.lock_at
    for _ in range(8):
        await carts.record_visit(SHOP, cart_id, page="/checkout")

    async def locked() -> Cart | None:
        current = await carts.get_cart(SHOP, cart_id)
        return current if current.state is CartState.LOCKED else None

    cart = await eventually(locked, within=15)
    assert cart.locked_at == lock_at
    runs = await runs_of(carts.client, cart_id, at_least=2)
    assert len(runs) >= 2
    assert cart.locked_at == cart.payment_started_at + timedelta(seconds=3)  # type: ignore[operator]


async def test_a_new_carts_first_call_is_one_rpc(
    dev_env: WorkflowEnvironment, carts: CartkeeperClient
) -> None:
    from temporalio.client import Interceptor, OutboundInterceptor

    calls: list[str] = []

    class Counting(OutboundInterceptor):
        def __getattribute__(self, name: str) -> Any:
            attribute = super().__getattribute__(name)
            if name.startswith(("start_", "signal_", "query_", "describe", "fetch_")):
                calls.append(name)
            return attribute

    class Counter(Interceptor):
        def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
            return Counting(next)

    client = Client(
        dev_env.client.service_client, namespace=dev_env.client.namespace, interceptors=[Counter()]
    )
    counted = CartkeeperClient(client, task_queue=carts.task_queue)
    cart_id = new_id()
    view = await counted.update_cart(SHOP, cart_id, LINES, "EUR")
    assert view.version == 1
    assert calls == ["start_update_with_start_workflow"], "one RPC for a new cart"
    calls.clear()
    await counted.update_cart(SHOP, cart_id, LINES[:1], "EUR")
    assert calls == ["start_workflow_update"], "then plain updates"
