"""The reminder sequence's rules (``workflows.reminders``), through the state machine:
examples for each rule, then a hypothesis state machine that drives one cart through random
abandonments, plans, sends, clicks, payments and time, checking the rules after each step.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.test_machine import (
    DEFAULT,
    MINUTE,
    T0,
    Shop,
    customer,
    in_abandoned,
    in_active,
    in_payment_pending,
    succeeded,
)
from workflows.codes import CartState, ErrorCode, JournalKind, ReminderStatus, SkipReason
from workflows.events import (
    CustomerVisited,
    DeleteCart,
    PlannedReminder,
    RecoveryLinkClicked,
    ReminderOutcome,
    RemindersPlanned,
    SendReminder,
)
from workflows.machine import next_deadline
from workflows.reminders import needs_plan, next_due, sending, step
from workflows.state import Cart, CartPolicy

HOUR = timedelta(hours=1)


def plan(shop: Shop, *delays_hours: float, sequence: int | None = None) -> RemindersPlanned:
    """The plan ``plan_reminders`` would give: reminders r1, r2, ... after the abandonment."""
    cart = shop.cart
    assert cart.abandoned_at is not None
    return RemindersPlanned(
        sequence=cart.reminder_sequence if sequence is None else sequence,
        campaign_version=1,
        reminders=[
            PlannedReminder(
                reminder_id=f"r{n}",
                position=n,
                name=f"Reminder {n}",
                due_at=cart.abandoned_at + timedelta(hours=hours),
            )
            for n, hours in enumerate(delays_hours, start=1)
        ],
    )


def sent(shop: Shop, reminder_id: str, sequence: int | None = None) -> ReminderOutcome:
    return ReminderOutcome(
        reminder_id=reminder_id,
        sequence=shop.cart.reminder_sequence if sequence is None else sequence,
        status=ReminderStatus.SENT,
        at=shop.now,
        message_id=f"<{reminder_id}@test>",
    )


def skipped(shop: Shop, reminder_id: str, reason: SkipReason) -> ReminderOutcome:
    return ReminderOutcome(
        reminder_id=reminder_id,
        sequence=shop.cart.reminder_sequence,
        status=ReminderStatus.SKIPPED,
        at=shop.now,
        reason=reason,
    )


def deferred(shop: Shop, reminder_id: str, until: datetime) -> ReminderOutcome:
    return ReminderOutcome(
        reminder_id=reminder_id,
        sequence=shop.cart.reminder_sequence,
        status=ReminderStatus.PLANNED,
        at=shop.now,
        retry_at=until,
        detail="quiet hours",
    )


def statuses(cart: Cart) -> dict[str, tuple[ReminderStatus, SkipReason | None]]:
    return {item.reminder_id: (item.status, item.reason) for item in cart.reminders}


def abandoned_with_address() -> Shop:
    shop = in_active()
    shop.do(customer())
    shop.wait(timedelta(seconds=DEFAULT.abandon_after_seconds))
    assert shop.state() is CartState.ABANDONED
    return shop


# =========================================================================== examples


def test_abandoning_asks_for_a_plan_once() -> None:
    shop = abandoned_with_address()
    assert shop.cart.reminder_sequence == 1
    assert needs_plan(shop.cart)
    shop.do(plan(shop, 1, 24, 72))
    assert not needs_plan(shop.cart)
    assert [i.status for i in shop.cart.reminders] == [ReminderStatus.PLANNED] * 3
    assert JournalKind.REMINDERS_PLANNED in [e.kind for e in shop.cart.journal]


def test_each_reminder_waits_for_its_own_time_then_is_sent() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    assert next_deadline(shop.cart) == shop.cart.abandoned_at + HOUR  # type: ignore[operator]
    shop.wait_until_next_deadline()
    assert [i.reminder_id for i in sending(shop.cart)] == ["r1"]
    assert next_due(shop.cart) is None, "one reminder at a time"
    shop.later(MINUTE).do(sent(shop, "r1"))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SENT, None)
    shop.wait_until_next_deadline()
    assert [i.reminder_id for i in sending(shop.cart)] == ["r2"]


def test_a_plan_for_an_older_abandonment_is_ignored() -> None:
    shop = abandoned_with_address()
    shop.later(MINUTE).do(CustomerVisited())
    shop.wait(timedelta(seconds=DEFAULT.abandon_after_seconds))
    assert shop.cart.reminder_sequence == 2
    assert not shop.do(plan(shop, 1, sequence=1))
    assert needs_plan(shop.cart)


def test_customer_activity_stops_the_sequence_with_a_reason() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.later(MINUTE).do(CustomerVisited(page="/cart"))
    assert shop.state() is CartState.ACTIVE
    assert statuses(shop.cart) == {
        "r1": (ReminderStatus.SKIPPED, SkipReason.CART_ACTIVE),
        "r2": (ReminderStatus.SKIPPED, SkipReason.CART_ACTIVE),
    }
    skips = [e for e in shop.cart.journal if e.kind is JournalKind.REMINDER_SKIPPED]
    assert len(skips) == 2 and all("cart_active" in (e.detail or "") for e in skips)


def test_an_order_stops_the_sequence() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.wait_until_next_deadline()
    shop.later(MINUTE).do(sent(shop, "r1"))
    shop.do(*in_payment_steps())
    assert shop.state() is CartState.ORDERED
    assert statuses(shop.cart)["r2"] == (ReminderStatus.SKIPPED, SkipReason.ORDERED)
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SENT, None)


def in_payment_steps() -> list[Any]:
    """A gateway's success arriving for the abandoned cart (its start was never seen)."""
    return [succeeded(amount=1000)]


def test_a_payment_while_a_reminder_is_being_sent_wins_and_the_answer_is_kept() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.wait_until_next_deadline()
    assert sending(shop.cart)
    shop.do(*in_payment_steps())
    assert shop.state() is CartState.ORDERED
    shop.later(MINUTE).do(sent(shop, "r1"))
    assert shop.state() is CartState.ORDERED, "the e-mail never undoes the order"
    assert statuses(shop.cart) == {
        "r1": (ReminderStatus.SENT, None),
        "r2": (ReminderStatus.SKIPPED, SkipReason.ORDERED),
    }


def test_deletion_and_expiry_close_the_sequence() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.later(MINUTE).do(DeleteCart(admin="root"))
    assert {r for _s, r in statuses(shop.cart).values()} == {SkipReason.CART_CLOSED}

    shop = abandoned_with_address()
    shop.do(plan(shop, 24 * 40))
    shop.wait(timedelta(seconds=DEFAULT.lifetime_seconds))
    assert shop.state() is CartState.EXPIRED
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.CART_CLOSED)


def test_reminders_due_together_send_only_the_latest() -> None:
    """A worker down for two days: r1 (1 h) and r2 (24 h) are both due; only r2 goes."""
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24, 72))
    shop.wait(timedelta(hours=30))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.OVERDUE)
    assert statuses(shop.cart)["r2"][0] is ReminderStatus.SENDING
    assert statuses(shop.cart)["r3"][0] is ReminderStatus.PLANNED


def test_a_reminder_too_late_is_skipped_not_sent() -> None:
    policy = CartPolicy(reminder_max_lateness_seconds=3600)
    shop = in_active(policy)
    shop.do(customer())
    shop.wait(timedelta(seconds=policy.abandon_after_seconds))
    shop.do(plan(shop, 1))
    shop.wait(timedelta(hours=3))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.OVERDUE)
    assert not sending(shop.cart)


def test_quiet_hours_move_a_reminder_and_the_timer_follows() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 72))
    shop.wait_until_next_deadline()
    morning = shop.now + timedelta(hours=8)
    shop.do(deferred(shop, "r1", morning))
    item = step(shop.cart, "r1")
    assert item is not None and item.status is ReminderStatus.PLANNED
    assert item.due_at == morning and item.deferrals == 1
    assert next_deadline(shop.cart) == morning
    assert JournalKind.REMINDER_DEFERRED in [e.kind for e in shop.cart.journal]
    shop.wait_until_next_deadline()
    assert step(shop.cart, "r1").status is ReminderStatus.SENDING  # type: ignore[union-attr]


def test_quiet_hours_past_the_next_reminder_skip() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 2))
    shop.wait_until_next_deadline()
    shop.do(deferred(shop, "r1", shop.now + timedelta(hours=8)))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.QUIET_HOURS)
    assert statuses(shop.cart)["r2"][0] is ReminderStatus.PLANNED


def test_send_time_skips_are_kept_with_their_reason() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.wait_until_next_deadline()
    shop.do(skipped(shop, "r1", SkipReason.UNSUBSCRIBED))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.UNSUBSCRIBED)
    assert next_due(shop.cart) == step(shop.cart, "r2").due_at  # type: ignore[union-attr]


def test_a_repeated_answer_changes_nothing() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1))
    shop.wait_until_next_deadline()
    shop.do(sent(shop, "r1"))
    before = copy.deepcopy(shop.cart)
    assert not shop.do(sent(shop, "r1"))
    assert shop.cart == before


def test_abandoning_again_continues_with_the_reminders_not_sent() -> None:
    """Rule ``continue``: the plan (made by the activity, which leaves out what was sent)
    never brings a sent reminder back, even if it lists it."""
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.wait_until_next_deadline()
    shop.do(sent(shop, "r1"))
    shop.later(MINUTE).do(CustomerVisited())
    shop.wait(timedelta(seconds=DEFAULT.abandon_after_seconds))
    assert shop.cart.reminder_sequence == 2
    shop.do(plan(shop, 1, 24))
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SENT, None)
    r2 = step(shop.cart, "r2")
    assert r2 is not None and r2.status is ReminderStatus.PLANNED and r2.sequence == 2
    assert r2.due_at == shop.cart.abandoned_at + timedelta(hours=24)  # type: ignore[operator]


def test_planned_skips_come_with_the_plan() -> None:
    shop = in_active()
    shop.wait(timedelta(seconds=DEFAULT.abandon_after_seconds))
    event = plan(shop, 1)
    event.reminders[0].skipped = SkipReason.NO_ADDRESS
    shop.do(event)
    assert statuses(shop.cart)["r1"] == (ReminderStatus.SKIPPED, SkipReason.NO_ADDRESS)
    assert next_due(shop.cart) is None


def test_the_recovery_link_brings_the_cart_back_with_its_coupon() -> None:
    shop = abandoned_with_address()
    shop.do(plan(shop, 1, 24))
    shop.wait_until_next_deadline()
    shop.do(sent(shop, "r1"))
    shop.later(MINUTE).do(RecoveryLinkClicked(reminder_id="r1", coupon_code="K7Q2M9XA"))
    cart = shop.cart
    assert cart.state is CartState.ACTIVE
    assert (cart.recovered_via, cart.coupon_code) == ("r1", "K7Q2M9XA")
    assert statuses(cart)["r2"] == (ReminderStatus.SKIPPED, SkipReason.CART_ACTIVE)
    kinds = [e.kind for e in cart.journal]
    assert JournalKind.RECOVERY_LINK_CLICKED in kinds and JournalKind.CUSTOMER_RETURNED in kinds


def test_a_click_on_an_ordered_cart_is_recorded_only() -> None:
    shop = abandoned_with_address()
    shop.do(*in_payment_steps())
    shop.later(MINUTE).do(RecoveryLinkClicked(reminder_id="r1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.recovered_via == "r1"


def test_a_manual_send_goes_out_now_once() -> None:
    shop = abandoned_with_address()
    shop.do(SendReminder(admin="ann", reminder_id="manual-1"))
    item = step(shop.cart, "manual-1")
    assert item is not None and item.status is ReminderStatus.SENDING and item.manual
    assert shop.refused(SendReminder(admin="ann", reminder_id="manual-1")) is (
        ErrorCode.REMINDER_ALREADY_SENT
    )
    shop.do(sent(shop, "manual-1"))
    assert shop.refused(SendReminder(admin="ann", reminder_id="manual-1")) is (
        ErrorCode.REMINDER_ALREADY_SENT
    )
    entry = [e for e in shop.cart.journal if e.kind is JournalKind.REMINDER_SENT][-1]
    assert entry.actor == "admin:ann"


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: in_active(), ErrorCode.NOT_ABANDONED),
        (lambda: in_abandoned(), ErrorCode.NO_ADDRESS),
        (lambda: in_payment_pending(), ErrorCode.NOT_ABANDONED),
    ],
)
def test_a_manual_send_is_refused_where_it_cannot_go(build: Any, code: ErrorCode) -> None:
    shop = build()
    assert shop.refused(SendReminder(admin="ann", reminder_id="r1")) is code


def test_a_manual_send_in_quiet_hours_is_skipped_not_moved() -> None:
    shop = abandoned_with_address()
    shop.do(SendReminder(admin="ann", reminder_id="r9"))
    shop.do(deferred(shop, "r9", shop.now + timedelta(hours=5)))
    assert statuses(shop.cart)["r9"] == (ReminderStatus.SKIPPED, SkipReason.QUIET_HOURS)


# =========================================================================== stateful

IDS = ["r1", "r2", "r3"]


class ReminderMachine(RuleBasedStateMachine):
    """Random abandonments, plans (fresh and stale), answers (sent, skipped, deferred,
    repeated), clicks, manual sends, payments, deletions and time."""

    @initialize(with_address=st.booleans())
    def start(self, with_address: bool) -> None:
        self.shop = in_active()
        if with_address:
            self.shop.do(customer())
        self.sent_journal: Counter[str] = Counter()

    def _do(self, event: Any) -> None:
        try:
            self.shop.do(event)
        except Exception as error:  # refusals are fine; nothing else is
            from workflows.machine import CartRefused

            assert isinstance(error, CartRefused), error

    @rule(minutes=st.integers(1, 60 * 80))
    def time_passes(self, minutes: int) -> None:
        self.shop.wait(timedelta(minutes=minutes))

    @rule()
    def until_next_deadline(self) -> None:
        if next_deadline(self.shop.cart) is not None:
            self.shop.wait_until_next_deadline()

    @rule(delays=st.lists(st.integers(1, 100), min_size=0, max_size=3), stale=st.booleans())
    def plan_arrives(self, delays: list[int], stale: bool) -> None:
        cart = self.shop.cart
        if cart.abandoned_at is None:
            return
        sequence = cart.reminder_sequence - (1 if stale else 0)
        self._do(plan(self.shop, *delays, sequence=sequence))

    @rule(
        which=st.sampled_from(IDS),
        status=st.sampled_from(["sent", "skipped", "deferred"]),
        hours=st.integers(1, 30),
    )
    def answer(self, which: str, status: str, hours: int) -> None:
        shop = self.shop
        if status == "sent":
            event = sent(shop, which)
        elif status == "skipped":
            event = skipped(shop, which, SkipReason.CAP_REACHED)
        else:
            event = deferred(shop, which, shop.now + timedelta(hours=hours))
        self._do(event)

    @rule(which=st.sampled_from(IDS))
    def click(self, which: str) -> None:
        self._do(RecoveryLinkClicked(reminder_id=which, coupon_code="C0UP0N"))

    @rule()
    def visit(self) -> None:
        self._do(CustomerVisited())

    @rule(which=st.sampled_from(IDS))
    def manual(self, which: str) -> None:
        self._do(SendReminder(admin="ann", reminder_id=which))

    @rule()
    def pay(self) -> None:
        for event in in_payment_steps():
            self._do(event)

    @rule()
    def delete(self) -> None:
        self._do(DeleteCart(admin="root"))

    @invariant()
    def rules_hold(self) -> None:
        cart = self.shop.cart
        items = cart.reminders
        assert len({i.reminder_id for i in items}) == len(items), "one step per reminder"
        assert len(sending(cart)) <= 1, "one reminder at a time"
        if cart.state is not CartState.ABANDONED:
            assert all(i.status is not ReminderStatus.PLANNED for i in items), (
                "planned reminders only while abandoned"
            )
        for item in items:
            if item.status is ReminderStatus.SKIPPED:
                assert item.reason is not None, "every skip has its reason"
        sends = Counter(
            (e.detail or "").split(" ")[0].split(",")[0]
            for e in cart.journal
            if e.kind is JournalKind.REMINDER_SENT
        )
        assert all(n == 1 for n in sends.values()), f"a reminder sent twice: {sends}"
        due = next_due(cart)
        if due is not None:
            assert cart.state is CartState.ABANDONED
            deadline = next_deadline(cart)
            assert deadline is not None and deadline <= due


ReminderMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestReminderMachine = ReminderMachine.TestCase


def test_t0_is_utc() -> None:
    assert T0.tzinfo is not None
