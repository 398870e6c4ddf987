"""The order phase in the cart workflow on the dev server, with stand-ins for the three
order activities (the registry, stock, status e-mails) so that every answer they can
give is under the test's control: the workflow reads the registry before an admin's
status, performs stock moves one at a time and each e-mail once, waits for the order's
number before an e-mail, records what the activities refuse for good, and stays open
until a final status. The real activities: ``tests/test_order_activities.py``; end to
end through the CLI: ``tests/test_order_actions.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cart_activities import CartActivities
from starter.client import CartkeeperClient
from tests.conftest import new_id
from tests.test_order_phase import DEFAULTS
from tests.test_workflow_dev import LINES, SHOP, TOTAL, eventually, succeed, to_payment
from worker import WORKFLOW_RUNNER
from workflows.cart_workflow import CartWorkflow
from workflows.codes import CartState, JournalKind
from workflows.contract import (
    ACTIVITY_RESTORE_CART,
    Cart,
    CartPolicy,
    CustomerInfo,
    RestoreCartInput,
    RestoredCart,
    workflow_id,
)
from workflows.order_contract import (
    ACTIVITY_MOVE_ORDER_STOCK,
    ACTIVITY_READ_ORDER_STATUSES,
    ACTIVITY_SEND_STATUS_MAIL,
    OrderStatuses,
    ReadOrderStatusesInput,
    StatusMailInput,
    StatusMailResult,
    StockMoveInput,
    StockMoveResult,
)


@dataclass
class StandIns:
    """The order activities as a test wants them to answer."""

    stock: dict[str, int] = field(default_factory=dict)
    moves: list[StockMoveInput] = field(default_factory=list)
    applied: set[str] = field(default_factory=set)
    mails: list[StatusMailInput] = field(default_factory=list)
    registry_down: bool = False
    refuse_moves: bool = False
    relay_down: bool = False
    reads: int = 0

    @activity.defn(name=ACTIVITY_READ_ORDER_STATUSES)
    async def read(self, request: ReadOrderStatusesInput) -> OrderStatuses:
        self.reads += 1
        if self.registry_down:
            raise ApplicationError("database down", type="db_down", non_retryable=True)
        return DEFAULTS

    @activity.defn(name=ACTIVITY_MOVE_ORDER_STOCK)
    async def move(self, request: StockMoveInput) -> StockMoveResult:
        self.moves.append(request)
        if self.refuse_moves:
            raise ApplicationError("conflict", type="stock_movement_conflict", non_retryable=True)
        if request.key in self.applied:
            return StockMoveResult(request.key, "done")
        take = request.kind == "take"
        short = [
            ln.sku for ln in request.lines if take and self.stock.get(ln.sku, 10**9) < ln.quantity
        ]
        if short:
            return StockMoveResult(request.key, "short", short=short)
        for line in request.lines:
            if line.sku in self.stock:
                self.stock[line.sku] += -line.quantity if take else line.quantity
        self.applied.add(request.key)
        return StockMoveResult(request.key, "done")

    @activity.defn(name=ACTIVITY_SEND_STATUS_MAIL)
    async def send(self, request: StatusMailInput) -> StatusMailResult:
        self.mails.append(request)
        if self.relay_down and request.recipient == "customer":
            # a transient failure, retried (spaced out: the time-skipping test runs a day)
            raise ApplicationError("relay down", type="smtp_unavailable")
        if request.recipient == "department":
            return StatusMailResult(
                request.entry, request.recipient, "skipped", reason="no_department"
            )
        return StatusMailResult(
            request.entry, request.recipient, "sent", message_id=f"<{request.entry}>"
        )


def stand_in_worker(
    env: WorkflowEnvironment,
    queue: str,
    stand_ins: StandIns,
    cart_activities: list[Any],
) -> Worker:
    """A worker of the cart workflow with the cart's activities given and the order
    activities' stand-ins."""
    return Worker(
        env.client,
        task_queue=queue,
        workflows=[CartWorkflow],
        activities=[*cart_activities, stand_ins.read, stand_ins.move, stand_ins.send],
        workflow_runner=WORKFLOW_RUNNER,
    )


@pytest.fixture
async def shop(
    dev_env: WorkflowEnvironment, session_factory: Any
) -> AsyncIterator[tuple[CartkeeperClient, StandIns]]:
    stand_ins = StandIns()
    queue = f"orders-{uuid.uuid4().hex[:8]}"
    worker = stand_in_worker(
        dev_env, queue, stand_ins, CartActivities(session_factory, dev_env.client).all()
    )
    policy = CartPolicy(projection_interval_seconds=0, retire_after_seconds=2)
    async with worker:
        yield (
            CartkeeperClient(dev_env.client, task_queue=queue, policy_for=lambda _s: policy),
            stand_ins,
        )


async def paid_order(carts: CartkeeperClient, cart_id: str) -> Cart:
    await to_payment(carts, cart_id)
    await carts.identify_customer(SHOP, cart_id, CustomerInfo(email="ann@example.com", locale="de"))
    await succeed(carts, cart_id)

    async def settled() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        order = cart.order
        if order is None or order.number is None or not order.statuses:
            return None
        moved = all(move.outcome != "pending" for move in order.stock_moves)
        return cart if order.statuses[-1].resolved and moved else None

    cart: Cart = await eventually(settled)
    return cart


async def admin(carts: CartkeeperClient, cart_id: str, name: str, payload: dict[str, Any]) -> Any:
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    return await handle.execute_update(name, {"admin": "ann", **payload}, result_type=dict)


async def refused(carts: CartkeeperClient, cart_id: str, name: str, payload: dict[str, Any]) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await admin(carts, cart_id, name, payload)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return str(cause.type)


async def test_an_order_goes_from_processed_to_delivered(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    carts, stand_ins = shop
    stand_ins.stock = {"sku-1": 5}
    cart_id = new_id()
    cart = await paid_order(carts, cart_id)
    order = cart.order
    assert order is not None and order.managed and order.status == "P"
    assert order.status_name == "Processed" and order.number is not None
    assert stand_ins.stock == {"sku-1": 3}
    # The e-mails of P waited for the number, and each went once.
    await eventually(lambda: _mails(carts, cart_id, 2))
    assert [(m.entry, m.recipient, m.order_number) for m in stand_ins.mails] == [
        (1, "customer", order.number),
        (1, "department", order.number),
    ]
    assert (
        stand_ins.mails[0].customer_email == "ann@example.com" and stand_ins.mails[0].locale == "de"
    )

    view = await admin(carts, cart_id, "set_order_status", {"status": "A", "note": "checking"})
    assert (view["order_status"], view["order_status_name"]) == ("A", "Awaiting")
    await admin(
        carts,
        cart_id,
        "edit_order_lines",
        {"lines": [{"sku": "sku-1", "name": "Tea", "quantity": 1, "unit_price": 450}]},
    )
    await admin(carts, cart_id, "edit_delivery", {"delivery": {"method": "dhl", "cost": 500}})
    for letter in "RS":
        await admin(carts, cart_id, "set_order_status", {"status": letter})
    assert (
        await refused(
            carts,
            cart_id,
            "edit_order_lines",
            {"lines": [{"sku": "sku-1", "name": "Tea", "quantity": 3, "unit_price": 450}]},
        )
        == "contents_not_editable"
    )
    assert await refused(carts, cart_id, "set_order_status", {"status": "N"}) == "status_hidden"
    assert await refused(carts, cart_id, "set_order_status", {"status": "Q"}) == "unknown_status"
    await admin(carts, cart_id, "add_order_note", {"note": "left the warehouse"})
    view = await admin(carts, cart_id, "set_order_status", {"status": "V"})
    assert view["order_final"] is True
    assert (view["total"], view["order_total"], view["balance"]) == (450, 950, 950 - TOTAL)

    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id), result_type=Cart)
    final: Cart = await asyncio.wait_for(handle.result(), timeout=30)
    order = final.order
    assert order is not None
    assert [e.letter for e in order.statuses] == ["P", "A", "R", "S", "V"]
    assert order.total == 450 + 500 and order.balance == 950 - TOTAL
    # P took 2; the new lines gave 2 back and took 1: held 1 at the end.
    assert stand_ins.stock == {"sku-1": 4}
    assert len({m.key for m in stand_ins.moves}) == len(stand_ins.moves) == 3
    sent = [(m.entry, m.recipient) for m in stand_ins.mails]
    assert sent == sorted(set(sent), key=sent.index), "each e-mail once"
    assert {m.letter for m in stand_ins.mails} == {"P", "R", "S", "V"}
    kinds = [e.kind for e in final.journal]
    assert JournalKind.ORDER_NOTE_ADDED in kinds and JournalKind.STATUS_MAIL_SKIPPED in kinds
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.COMPLETED


async def test_a_new_orders_statuses_come_with_its_number_and_effects_are_written_once(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    """The projection that numbers a new order reads its statuses (no activity of its
    own), and the results of the order's effects are written together, not one by one
    (within the projection interval: 5 s here, the default)."""
    shop_carts, stand_ins = shop
    policy = CartPolicy(projection_interval_seconds=5, retire_after_seconds=2)
    carts = CartkeeperClient(
        shop_carts.client, task_queue=shop_carts.task_queue, policy_for=lambda _s: policy
    )
    cart_id = new_id()
    cart = await paid_order(carts, cart_id)
    await eventually(lambda: _mails(carts, cart_id, 2))
    order = cart.order
    assert order is not None and order.status == "P" and order.status_name == "Processed"
    assert stand_ins.reads == 0, "the registry was read by the projection"

    async def written() -> list[str] | None:
        """The activities from the projection that numbered the order on, once all are
        done (a projection of the cart before the payment may still have been under way
        when it came: the number waited for it)."""
        history = await carts.client.get_workflow_handle(workflow_id(SHOP, cart_id)).fetch_history()
        scheduled: list[str] = []
        done = started = 0
        for event in history.events:
            if event.HasField("activity_task_completed_event_attributes"):
                done += 1
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            started += 1
            attributes = event.activity_task_scheduled_event_attributes
            payload = attributes.input.payloads[0].data if attributes.input.payloads else b""
            numbering = b'"assign_number":true' in payload.replace(b" ", b"")
            if scheduled or numbering:
                scheduled.append(attributes.activity_type.name)
        return scheduled if scheduled.count("project_cart") >= 2 and done == started else None

    scheduled = await eventually(written)
    assert ACTIVITY_READ_ORDER_STATUSES not in scheduled
    # numbered with its statuses; then the stock move and both e-mails; then their
    # results, together
    assert scheduled[0] == scheduled[-1] == "project_cart"
    assert scheduled.count("project_cart") == 2, scheduled
    assert sorted(scheduled[1:4]) == sorted(
        [ACTIVITY_MOVE_ORDER_STOCK, ACTIVITY_SEND_STATUS_MAIL, ACTIVITY_SEND_STATUS_MAIL]
    ), scheduled
    assert [move.outcome for move in order.stock_moves] == ["done"]
    final = await carts.get_cart(SHOP, cart_id)
    assert final.order is not None and all(m.outcome != "pending" for m in final.order.mails)


async def _mails(carts: CartkeeperClient, cart_id: str, count: int) -> bool:
    cart = await carts.get_cart(SHOP, cart_id)
    assert cart.order is not None
    return sum(m.outcome != "pending" for m in cart.order.mails) >= count


async def test_a_not_finished_order_gets_its_number_with_its_status(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    carts, _ = shop
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await carts.report_payment_result(
        SHOP, cart_id, attempt_id="att-1", status="pending", amount=TOTAL
    )
    assert (await carts.get_cart(SHOP, cart_id)).state is CartState.LOCKED
    view = await admin(carts, cart_id, "set_order_status", {"status": "Y", "note": "will call"})
    assert view["state"] == "ordered" and view["order_status"] == "Y"
    settled = await carts.await_order(SHOP, cart_id, 10)
    assert settled.order_number is not None


async def test_an_unreadable_registry_refuses_the_status_and_the_signal_is_journaled(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    carts, stand_ins = shop
    cart_id = new_id()
    await paid_order(carts, cart_id)
    stand_ins.registry_down = True
    assert (
        await refused(carts, cart_id, "set_order_status", {"status": "A"}) == "statuses_unavailable"
    )
    stand_ins.registry_down = False
    handle = carts.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    await handle.signal("set_order_status", {"admin": "bob", "status": "Q"})
    await handle.signal("set_order_status", {"admin": "bob", "status": "A"})

    async def applied() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if cart.order and cart.order.status == "A" else None

    cart: Cart = await eventually(applied)
    refusals = [e for e in cart.journal if e.kind is JournalKind.ADMIN_ACTION_REFUSED]
    assert [e.actor for e in refusals] == ["admin:bob"]
    assert refusals[0].detail is not None and "unknown_status" in refusals[0].detail


async def test_a_stock_move_refused_for_good_is_recorded_and_not_retried(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    carts, stand_ins = shop
    stand_ins.refuse_moves = True
    cart_id = new_id()
    await to_payment(carts, cart_id)
    await succeed(carts, cart_id)

    async def recorded() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        moves = cart.order.stock_moves if cart.order else []
        return cart if moves and moves[0].outcome == "failed" else None

    cart: Cart = await eventually(recorded)
    assert any(e.kind is JournalKind.STOCK_MOVE_FAILED for e in cart.journal)
    await asyncio.sleep(1)
    assert len(stand_ins.moves) == 1
    assert cart.order is not None and cart.order.stock_held is None


async def test_lines_stay_as_they_were_for_the_order(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    """The storefront cannot change an order's lines: only an admin, while allowed."""
    carts, _ = shop
    cart_id = new_id()
    await paid_order(carts, cart_id)
    from starter.client import CartkeeperError

    with pytest.raises(CartkeeperError) as failed:
        await carts.update_cart(SHOP, cart_id, LINES[:1], "EUR")
    assert failed.value.code == "already_ordered"
    _ = timedelta


# --------------------------------------------------------------------------- review findings


async def test_an_order_from_before_the_order_phase_stays_out_of_it_in_a_new_run(
    shop: tuple[CartkeeperClient, StandIns],
) -> None:
    """An order that an earlier run (before the order phase) created and carried over
    (continue-as-new) never enters the phase: no stock, no status e-mail, it retires as
    it did."""
    from datetime import UTC, datetime

    from workflows.codes import PaymentMethod, PaymentStatus
    from workflows.contract import WORKFLOW_NAME, CartInput
    from workflows.events import CartUpdated, CheckoutStarted, PaymentResultReported, PaymentStarted
    from workflows.machine import apply

    carts, stand_ins = shop
    cart_id = new_id()
    policy = CartPolicy(projection_interval_seconds=0, retire_after_seconds=3600)
    cart = Cart(shop_id=SHOP, cart_id=cart_id, lineage="old-run", policy=policy)
    now = datetime.now(UTC) - timedelta(minutes=5)
    for event in (
        CartUpdated([LINES[0]], "EUR"),
        CheckoutStarted(),
        PaymentStarted("att-1", PaymentMethod.ONLINE, "stripe", 900),
        PaymentResultReported("att-1", PaymentStatus.SUCCEEDED, 900, "EUR"),
    ):
        now += timedelta(seconds=1)
        apply(cart, event, now)
    assert cart.order is not None and not cart.order.managed
    cart.order.number = 77
    handle = await carts.client.start_workflow(
        WORKFLOW_NAME,
        CartInput(
            shop_id=SHOP,
            cart_id=cart_id,
            policy=policy,
            cart=cart,
            projected_version=cart.version,
        ),
        id=workflow_id(SHOP, cart_id),
        task_queue=carts.task_queue,
    )
    await handle.signal(
        "payment_result", {"attempt_id": "att-2", "status": "failed", "amount": 900}
    )

    async def recorded() -> Cart | None:
        found = await carts.get_cart(SHOP, cart_id)
        return found if len(found.payments) == 2 else None

    after: Cart = await eventually(recorded)
    await asyncio.sleep(0.5)
    assert after.order is not None and not after.order.managed and not after.order.statuses
    assert after.retire_at is not None
    assert stand_ins.moves == [] and stand_ins.mails == [] and stand_ins.reads == 0


async def test_admin_signals_apply_in_the_order_they_came(
    dev_env: WorkflowEnvironment, session_factory: Any
) -> None:
    """Signals sent while no worker ran (a status, new lines, two more statuses) apply in
    order, though a status waits for the registry."""
    stand_ins = StandIns()
    queue = f"orders-{uuid.uuid4().hex[:8]}"
    policy = CartPolicy(projection_interval_seconds=0, retire_after_seconds=2)
    carts = CartkeeperClient(dev_env.client, task_queue=queue, policy_for=lambda _s: policy)

    def worker() -> Worker:
        return stand_in_worker(
            dev_env, queue, stand_ins, CartActivities(session_factory, dev_env.client).all()
        )

    cart_id = new_id()
    async with worker():
        await paid_order(carts, cart_id)
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    line = {"sku": "sku-1", "name": "Tea", "quantity": 1, "unit_price": 450}
    await handle.signal("set_order_status", {"admin": "bob", "status": "A"})
    await handle.signal("edit_order_lines", {"admin": "bob", "lines": [line]})
    await handle.signal("add_order_note", {"admin": "bob", "note": "after the lines"})
    await handle.signal("set_order_status", {"admin": "bob", "status": "R"})
    await handle.signal("set_order_status", {"admin": "eve", "status": "S"})
    async with worker():

        async def shipped() -> Cart | None:
            cart = await carts.get_cart(SHOP, cart_id)
            return cart if cart.order and cart.order.status == "S" else None

        cart: Cart = await eventually(shipped)
    refusals = [e for e in cart.journal if e.kind is JournalKind.ADMIN_ACTION_REFUSED]
    assert refusals == []
    assert [e.letter for e in cart.order.statuses] == ["P", "A", "R", "S"]  # type: ignore[union-attr]
    assert [(ln.sku, ln.quantity) for ln in cart.lines] == [("sku-1", 1)]
    kinds = [e.kind for e in cart.journal]
    assert kinds.index(JournalKind.ORDER_LINES_CHANGED) < kinds.index(JournalKind.ORDER_NOTE_ADDED)


async def test_a_signal_after_a_status_waits_for_the_restore_of_a_retired_cart(
    dev_env: WorkflowEnvironment, session_factory: Any
) -> None:
    """An admin's status to a retired cart (brought back: a restore, here a slow one)
    and a note sent after it: the note is applied after the status."""
    stand_ins = StandIns()
    queue = f"orders-{uuid.uuid4().hex[:8]}"
    policy = CartPolicy(projection_interval_seconds=0, retire_after_seconds=1)
    carts = CartkeeperClient(dev_env.client, task_queue=queue, policy_for=lambda _s: policy)
    cart_activities = CartActivities(session_factory, dev_env.client)

    @activity.defn(name=ACTIVITY_RESTORE_CART)
    async def slow_restore(request: RestoreCartInput) -> RestoredCart:
        await asyncio.sleep(3)
        return await cart_activities.restore_cart(request)

    def worker() -> Worker:
        return stand_in_worker(
            dev_env, queue, stand_ins, [slow_restore, cart_activities.project_cart]
        )

    cart_id = new_id()
    handle = dev_env.client.get_workflow_handle(workflow_id(SHOP, cart_id))
    async with worker():
        await paid_order(carts, cart_id)
        await carts.set_order_status(SHOP, cart_id, "V", admin="bob")  # final: retires

        async def retired() -> bool:
            return (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED

        await eventually(retired, within=30)
    async with worker():
        update = asyncio.create_task(carts.set_order_status(SHOP, cart_id, "C", admin="bob"))

        async def running() -> bool:
            return (await handle.describe()).status is WorkflowExecutionStatus.RUNNING

        await eventually(running)
        await asyncio.sleep(1.0)  # the update is in; the restore (3 s) runs
        await handle.signal("add_order_note", {"admin": "eve", "note": "after the status C"})
        await asyncio.wait_for(update, 60)

        async def noted() -> Cart | None:
            cart = await carts.get_cart(SHOP, cart_id)
            kinds = [e.kind for e in cart.journal]
            return cart if JournalKind.ORDER_NOTE_ADDED in kinds else None

        cart: Cart = await eventually(noted)
    kinds = [e.kind for e in cart.journal]
    last_status = max(i for i, k in enumerate(kinds) if k is JournalKind.ORDER_STATUS_CHANGED)
    assert last_status < kinds.index(JournalKind.ORDER_NOTE_ADDED), "the note overtook the status"
    assert cart.order is not None and cart.order.status == "C"


async def test_a_status_mail_the_relay_never_takes_is_given_up(
    shop: tuple[CartkeeperClient, StandIns], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay down for good: the customer's e-mail is retried until
    ``STATUS_MAIL_GIVE_UP`` after its status (a day; seconds here), then skipped
    ``send_failed`` with the last error and journaled, and the order's workflow is not
    kept open by it. (The time-skipping server cannot run this for a day of retries: its
    sleep RPC fails under the activity churn.)"""
    from workflows import order_effects, order_phase

    monkeypatch.setattr(order_phase, "STATUS_MAIL_GIVE_UP", timedelta(seconds=4))
    monkeypatch.setattr(order_effects, "EFFECT_GIVE_UP", timedelta(seconds=1))
    monkeypatch.setattr(order_effects, "EFFECT_PAUSE", timedelta(milliseconds=300))
    carts, stand_ins = shop
    stand_ins.relay_down = True
    cart_id = new_id()
    cart = await paid_order(carts, cart_id)
    assert cart.order is not None

    def customer_mail(cart: Cart) -> Any:
        assert cart.order is not None
        return next(m for m in cart.order.mails if m.recipient == "customer")

    assert customer_mail(cart).outcome == "pending"

    async def given_up() -> Cart | None:
        cart = await carts.get_cart(SHOP, cart_id)
        return cart if customer_mail(cart).outcome != "pending" else None

    cart = await eventually(given_up)
    mail = customer_mail(cart)
    assert (mail.outcome, mail.reason) == ("skipped", "send_failed")
    assert cart.order is not None
    assert mail.at - cart.order.statuses[0].at >= timedelta(seconds=4)
    tries = [m for m in stand_ins.mails if m.recipient == "customer"]
    assert len(tries) > 1, "retried before it was given up"
    skipped = [e for e in cart.journal if e.kind is JournalKind.STATUS_MAIL_SKIPPED]
    assert any("P to the customer: send_failed" in (e.detail or "") for e in skipped)
    # Given up: no more attempts (nothing keeps the workflow open for it).
    await asyncio.sleep(1)
    assert len([m for m in stand_ins.mails if m.recipient == "customer"]) == len(tries)
