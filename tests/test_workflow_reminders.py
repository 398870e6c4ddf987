"""The cart workflow runs the reminder sequence on its own durable timers: on the
time-skipping server with the real delays (1 h, 24 h, 72 h after a 60-minute abandonment),
with scripted ``plan_reminders`` / ``send_reminder`` activities so each test decides what
the campaign and the relay say. (``tests/test_reminder_activities.py`` tests the real
activities against a real SMTP server; ``tests/test_reminders_end_to_end.py`` both.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.conftest import start_cart
from worker import WORKFLOW_RUNNER
from workflows.alerts_contract import ACTIVITY_SEND_LOCK_ALERT, AlertResult, LockAlertInput
from workflows.cart_workflow import CartWorkflow
from workflows.codes import SkipReason
from workflows.contract import (
    ACTIVITY_PLAN_REMINDERS,
    ACTIVITY_PROJECT_CART,
    ACTIVITY_RESTORE_CART,
    ACTIVITY_SEND_REMINDER,
    GET_CART,
    IDENTIFY_CUSTOMER,
    PAYMENT_RESULT,
    RECOVERY_LINK_CLICKED,
    SEND_REMINDER,
    START_PAYMENT,
    UNLOCK,
    UPDATE_CART,
    Cart,
    CartPolicy,
    CartState,
    CustomerInfo,
    PlannedReminder,
    PlanRemindersInput,
    ProjectCartInput,
    ProjectedCart,
    ReminderOutcome,
    RemindersPlanned,
    ReminderStatus,
    RestoreCartInput,
    RestoredCart,
    SendReminderInput,
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

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
DELAYS = {"first": 1, "second": 24, "third": 72}


@dataclass
class Script:
    """What the scripted activities answer, and what they were asked."""

    plans: list[PlanRemindersInput] = field(default_factory=list)
    sends: list[tuple[str, str, datetime]] = field(default_factory=list)
    #: reminder id -> what ``send_reminder`` answers (default: sent)
    answers: dict[str, Any] = field(default_factory=dict)
    #: attempts that fail (transient) before the answer, by reminder id
    failures: dict[str, int] = field(default_factory=dict)
    #: set while a send is in flight, released by the test
    hold: asyncio.Event | None = None
    in_flight: asyncio.Event = field(default_factory=asyncio.Event)


SCRIPTS: dict[str, Script] = {}
#: the carts of this module, terminated when it ends (the time-skipping server would
#: otherwise wait on their tasks once this module's worker is gone)
HANDLES: list[WorkflowHandle[Any, Any]] = []


@activity.defn(name=ACTIVITY_PLAN_REMINDERS)
async def plan_reminders(request: PlanRemindersInput) -> RemindersPlanned:
    script = SCRIPTS[request.cart_id]
    script.plans.append(request)
    return RemindersPlanned(
        sequence=request.sequence,
        campaign_version=1,
        reminders=[
            PlannedReminder(
                reminder_id=name,
                position=n,
                name=name.title(),
                due_at=request.abandoned_at + hours * HOUR,
                skipped=None if request.email else SkipReason.NO_ADDRESS,
            )
            for n, (name, hours) in enumerate(DELAYS.items(), start=1)
            if name not in request.sent
        ],
    )


@activity.defn(name=ACTIVITY_SEND_REMINDER)
async def send_reminder(request: SendReminderInput) -> ReminderOutcome:
    cart_id = request.cart.cart_id
    script = SCRIPTS[cart_id]
    now = activity.info().current_attempt_scheduled_time
    script.sends.append((request.reminder_id, str(request.cart.state), now))
    if script.failures.get(request.reminder_id, 0) > 0:
        script.failures[request.reminder_id] -= 1
        raise ApplicationError("relay unavailable (421)")
    if script.hold is not None:
        script.in_flight.set()
        await script.hold.wait()
    answer = script.answers.get(request.reminder_id)
    if callable(answer):
        answer = answer(request, now)
    if isinstance(answer, ReminderOutcome):
        return answer
    return ReminderOutcome(
        reminder_id=request.reminder_id,
        sequence=request.sequence,
        status=ReminderStatus.SENT,
        at=now,
        message_id=f"<{request.reminder_id}.{cart_id}@test>",
    )


#: lock alerts asked for, by cart id: (locked_at, when it was asked)
ALERTS: dict[str, list[tuple[datetime, datetime]]] = {}
#: carts whose first alert the relay refuses for good (``failed``: tried again later)
REFUSE_FIRST_ALERT: set[str] = set()


@activity.defn(name=ACTIVITY_SEND_LOCK_ALERT)
async def send_lock_alert(request: LockAlertInput) -> AlertResult:
    asked = ALERTS.setdefault(request.cart_id, [])
    asked.append((request.locked_at, activity.info().current_attempt_scheduled_time))
    if request.cart_id in REFUSE_FIRST_ALERT and len(asked) == 1:
        return AlertResult(status="failed", detail="550 mailbox unavailable")
    return AlertResult(status="sent", recipients=2)


@activity.defn(name=ACTIVITY_PROJECT_CART)
async def project_cart(request: ProjectCartInput) -> ProjectedCart:
    if request.assign_number:
        return ProjectedCart(
            version=request.cart.version + 1, number=7, assigned_at=request.cart.updated_at
        )
    return ProjectedCart(version=request.cart.version)


@activity.defn(name=ACTIVITY_RESTORE_CART)
async def restore_cart(request: RestoreCartInput) -> RestoredCart:
    return RestoredCart(cart=None, source="none", detail="not in this test")


# The order phase's activities (an order made during a sequence): stand-ins that answer
# at once (tests/test_order_workflow.py tests the workflow's use of them).
@activity.defn(name=ACTIVITY_READ_ORDER_STATUSES)
async def read_order_statuses(request: ReadOrderStatusesInput) -> OrderStatuses:
    from tests.test_order_phase import DEFAULTS

    return DEFAULTS


@activity.defn(name=ACTIVITY_MOVE_ORDER_STOCK)
async def move_order_stock(request: StockMoveInput) -> StockMoveResult:
    return StockMoveResult(request.key, "done")


@activity.defn(name=ACTIVITY_SEND_STATUS_MAIL)
async def send_order_status_mail(request: StatusMailInput) -> StatusMailResult:
    return StatusMailResult(request.entry, request.recipient, "sent", message_id="<status@test>")


QUEUE = f"reminders-{uuid.uuid4().hex[:6]}"
SHOP = "rem-shop"


@pytest.fixture(scope="module")
async def scripted_worker(ts_env: WorkflowEnvironment) -> AsyncIterator[Worker]:
    async with Worker(
        ts_env.client,
        task_queue=QUEUE,
        workflows=[CartWorkflow],
        activities=[
            plan_reminders,
            send_reminder,
            send_lock_alert,
            project_cart,
            restore_cart,
            read_order_statuses,
            move_order_stock,
            send_order_status_mail,
        ],
        workflow_runner=WORKFLOW_RUNNER,
    ) as worker:
        yield worker
        for handle in HANDLES:
            with contextlib.suppress(Exception):
                await handle.terminate("the test module ended")


async def abandoned_cart(
    env: WorkflowEnvironment, *, email: str | None = "ann@example.com", **policy: Any
) -> tuple[WorkflowHandle[Any, Any], Script]:
    cart_id = f"cart-{uuid.uuid4().hex[:10]}"
    script = SCRIPTS[cart_id] = Script()
    handle = await start_cart(env.client, SHOP, cart_id, CartPolicy(**policy), task_queue=QUEUE)
    HANDLES.append(handle)
    await handle.execute_update(
        UPDATE_CART,
        {
            "lines": [{"sku": "tea", "name": "Tea", "quantity": 2, "unit_price": 450}],
            "currency": "EUR",
        },
    )
    if email:
        await handle.execute_update(IDENTIFY_CUSTOMER, {"customer": {"email": email}})
    return handle, script


async def cart_of(handle: WorkflowHandle[Any, Any]) -> Cart:
    result: Cart = await handle.query(GET_CART, result_type=Cart)
    return result


def status(cart: Cart) -> dict[str, tuple[str, str | None]]:
    return {
        item.reminder_id: (str(item.status), str(item.reason) if item.reason else None)
        for item in cart.reminders
    }


pytestmark = pytest.mark.usefixtures("scripted_worker")


async def test_the_sequence_runs_on_the_real_delays(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)
    await ts_env.sleep(HOUR + timedelta(minutes=1))
    cart = await cart_of(handle)
    assert cart.state is CartState.ABANDONED
    assert len(script.plans) == 1 and script.plans[0].email == "ann@example.com"
    assert status(cart) == {n: ("planned", None) for n in DELAYS}
    abandoned_at = cart.abandoned_at
    assert abandoned_at is not None
    await ts_env.sleep(HOUR)
    assert [s[0] for s in script.sends] == ["first"]
    await ts_env.sleep(24 * HOUR)
    await ts_env.sleep(48 * HOUR)
    cart = await cart_of(handle)
    assert status(cart) == {n: ("sent", None) for n in DELAYS}
    # each one at its time (the activity was scheduled when its timer fired)
    for (name, _state, at), hours in zip(script.sends, DELAYS.values(), strict=True):
        assert timedelta(0) <= at - (abandoned_at + hours * HOUR) < timedelta(seconds=5), name
    sent_entries = [e for e in cart.journal if e.kind == "reminder_sent"]
    assert len(sent_entries) == 3
    assert len(script.sends) == 3, "exactly one send per reminder"


async def test_a_cart_without_address_skips_every_reminder_with_the_reason(
    ts_env: WorkflowEnvironment,
) -> None:
    handle, script = await abandoned_cart(ts_env, email=None)
    await ts_env.sleep(HOUR + timedelta(minutes=1))
    cart = await cart_of(handle)
    assert status(cart) == {n: ("skipped", "no_address") for n in DELAYS}
    await ts_env.sleep(80 * HOUR)
    assert script.sends == []


async def test_a_payment_while_a_reminder_is_being_sent(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)
    script.hold = asyncio.Event()
    # (time stands still while an activity runs: the sleep ends once the send is released)
    sleeping = asyncio.create_task(ts_env.sleep(2 * HOUR + timedelta(minutes=1)))
    await asyncio.wait_for(script.in_flight.wait(), 30)
    await handle.signal(
        PAYMENT_RESULT,
        {"attempt_id": "pi_9", "status": "succeeded", "amount": 900, "currency": "EUR"},
    )
    for _ in range(50):
        if (await cart_of(handle)).state is CartState.ORDERED:
            break
        await asyncio.sleep(0.1)
    script.hold.set()
    await sleeping
    for _ in range(50):
        cart = await cart_of(handle)
        if cart.reminders[0].status is ReminderStatus.SENT:
            break
        await asyncio.sleep(0.1)
    assert cart.state is CartState.ORDERED and cart.order is not None and cart.order.paid
    assert status(cart) == {
        "first": ("sent", None),
        "second": ("skipped", "ordered"),
        "third": ("skipped", "ordered"),
    }
    await ts_env.sleep(80 * HOUR)
    assert [s[0] for s in script.sends] == ["first"]


async def test_a_transient_failure_is_retried_and_sent_once(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)
    script.failures["first"] = 3
    await ts_env.sleep(2 * HOUR + timedelta(minutes=5))
    cart = await cart_of(handle)
    assert status(cart)["first"] == ("sent", None)
    assert [s[0] for s in script.sends] == ["first"] * 4


async def test_quiet_hours_move_the_reminder(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)

    def night(request: SendReminderInput, now: datetime) -> ReminderOutcome:
        if len([s for s in script.sends if s[0] == "first"]) == 1:
            return ReminderOutcome(
                reminder_id="first",
                sequence=request.sequence,
                status=ReminderStatus.PLANNED,
                at=now,
                retry_at=now + 8 * HOUR,
                detail="quiet hours 21:00-08:00 Australia/Brisbane",
            )
        return ReminderOutcome(
            reminder_id="first", sequence=request.sequence, status=ReminderStatus.SENT, at=now
        )

    script.answers["first"] = night
    await ts_env.sleep(2 * HOUR + timedelta(minutes=1))
    cart = await cart_of(handle)
    first = cart.reminders[0]
    assert first.status is ReminderStatus.PLANNED and first.deferrals == 1
    await ts_env.sleep(8 * HOUR)
    cart = await cart_of(handle)
    assert cart.reminders[0].status is ReminderStatus.SENT
    assert script.sends[1][2] - script.sends[0][2] >= 8 * HOUR - timedelta(seconds=5)


async def test_the_recovery_link_brings_the_cart_back(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)
    await ts_env.sleep(2 * HOUR + timedelta(minutes=1))
    await handle.signal(RECOVERY_LINK_CLICKED, {"reminder_id": "first", "coupon_code": "K7Q2M9XA"})
    for _ in range(50):
        cart = await cart_of(handle)
        if cart.state is CartState.ACTIVE:
            break
        await asyncio.sleep(0.1)
    assert cart.state is CartState.ACTIVE
    assert (cart.recovered_via, cart.coupon_code) == ("first", "K7Q2M9XA")
    assert status(cart)["second"] == ("skipped", "cart_active")
    # abandoned again: rule "continue" plans what was not sent, from the new abandonment
    await ts_env.sleep(HOUR + timedelta(minutes=1))
    cart = await cart_of(handle)
    assert cart.state is CartState.ABANDONED and cart.reminder_sequence == 2
    assert script.plans[-1].sent == ["first"]
    assert status(cart)["second"] == ("planned", None)


async def test_a_bad_click_is_journaled_not_lost(ts_env: WorkflowEnvironment) -> None:
    handle, _script = await abandoned_cart(ts_env)
    await handle.signal(RECOVERY_LINK_CLICKED, {"reminder_id": 7})
    await asyncio.sleep(0.5)
    cart = await cart_of(handle)
    refused = [e for e in cart.journal if e.kind == "admin_action_refused"]
    assert refused and "recovery_link_clicked" in (refused[-1].detail or "")


async def test_an_admin_sends_a_reminder_now(ts_env: WorkflowEnvironment) -> None:
    handle, script = await abandoned_cart(ts_env)
    await ts_env.sleep(HOUR + timedelta(minutes=1))
    view = await handle.execute_update(SEND_REMINDER, {"admin": "ann", "reminder_id": "winback"})
    assert view["state"] == "abandoned"
    for _ in range(50):
        cart = await cart_of(handle)
        if status(cart).get("winback") == ("sent", None):
            break
        await asyncio.sleep(0.1)
    assert status(cart)["winback"] == ("sent", None)
    assert [s[0] for s in script.sends] == ["winback"]
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(SEND_REMINDER, {"admin": "ann", "reminder_id": "winback"})
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "reminder_already_sent"


async def test_customer_identified_after_abandonment_still_counts(
    ts_env: WorkflowEnvironment,
) -> None:
    """The plan reads the address when the cart is abandoned: identify before."""
    handle, script = await abandoned_cart(ts_env, email=None)
    await handle.execute_update(
        IDENTIFY_CUSTOMER,
        {"customer": {"email": "bob@example.com", "time_zone": "America/Los_Angeles"}},
    )
    await ts_env.sleep(HOUR + timedelta(minutes=1))
    assert script.plans[-1].email == "bob@example.com"
    cart = await cart_of(handle)
    assert cart.customer == CustomerInfo(email="bob@example.com", time_zone="America/Los_Angeles")


@pytest.mark.parametrize("refused_first", [False, True])
async def test_the_admins_are_alerted_once_per_lock(
    ts_env: WorkflowEnvironment, refused_first: bool
) -> None:
    """Locked for 30 minutes: one alert (a refused one is tried again after a pause);
    unlocked and locked again: a new lock, a new alert."""
    handle, _script = await abandoned_cart(ts_env, lock_alert_after_seconds=1800)
    cart_id = (await cart_of(handle)).cart_id
    if refused_first:
        REFUSE_FIRST_ALERT.add(cart_id)
    await handle.execute_update(
        START_PAYMENT,
        {"attempt_id": "pi_1", "method": "online", "gateway": "stripe", "amount": 900},
    )
    await ts_env.sleep(30 * 60 + 10)  # locked (no payment result)
    cart = await cart_of(handle)
    assert cart.state is CartState.LOCKED and cart.locked_at is not None
    await ts_env.sleep(30 * 60 + 60)
    cart = await cart_of(handle)
    asked = list(ALERTS[cart_id])
    assert asked[0][0] == cart.locked_at
    assert timedelta(0) <= asked[0][1] - (cart.locked_at + 30 * 60 * SECOND) < 5 * SECOND
    assert len(asked) == (2 if refused_first else 1)
    sent = [e for e in cart.journal if e.kind == "lock_alert_sent"]
    assert len(sent) == 1 and "2 admin(s)" in (sent[0].detail or "")
    await ts_env.sleep(2 * HOUR)
    assert len(ALERTS[cart_id]) == len(asked), "one alert per lock"
    await handle.execute_update(UNLOCK, {"admin": "ann"})
    await handle.execute_update(
        START_PAYMENT,
        {"attempt_id": "pi_2", "method": "online", "gateway": "stripe", "amount": 900},
    )
    await ts_env.sleep(61 * 60 + 10)
    assert len(ALERTS[cart_id]) == len(asked) + 1
    assert ALERTS[cart_id][-1][0] == (await cart_of(handle)).locked_at
