"""Exhaustive tests of the cart's pure state machine (``workflows.machine``).

Three parts:
1. example-based tests, one per rule of the spec (DOMAIN.md sections 2 and 6);
2. a hypothesis ``RuleBasedStateMachine`` driving one cart with random storefront, gateway,
   admin and timer events, checking the transition model of every step and the global
   invariants after every step;
3. a list-of-steps property: replaying the same events gives the same cart (the workflow is
   replayed by Temporal), also across a continue-as-new round trip through the payload
   converter.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from workflows.contract import (
    ISO_4217,
    NEGATIVE_PAYMENT_STATUSES,
    ORDER_STATUS_OPEN,
    ORDER_STATUS_PROCESSED,
    PAYMENT_RESULT_STATUSES,
    Attention,
    AttentionKind,
    Cart,
    CartLine,
    CartPolicy,
    CartState,
    CartUpdated,
    CheckoutStarted,
    ConfirmCart,
    CustomerIdentified,
    CustomerInfo,
    CustomerVisited,
    DeleteCart,
    ErrorCode,
    JournalKind,
    LockReason,
    Order,
    OrderNumberAssigned,
    OrderSource,
    PaymentAttempt,
    PaymentMethod,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
    PaymentStatus,
    ResolveAttention,
    UnlockCart,
)
from workflows.events import CancellationRequested
from workflows.machine import (
    CartRefused,
    is_retired,
    next_deadline,
)
from workflows.machine import apply as machine_apply
from workflows.machine import tick as machine_tick
from workflows.parsing import parse_payment_result
from workflows.timers import reschedule as machine_reschedule
from workflows.validation import MAX_AMOUNT, MAX_LINES, MAX_QUANTITY


def apply(cart: Cart, event: Any, now: datetime, policy: CartPolicy | None = None) -> bool:
    """The machine with the policy of the earlier API (the cart now carries its policy)."""
    if policy is not None:
        cart.policy = policy
    return machine_apply(cart, event, now).changed


def tick(cart: Cart, now: datetime, policy: CartPolicy | None = None) -> bool:
    if policy is not None:
        cart.policy = policy
    return machine_tick(cart, now).changed


def reschedule(cart: Cart, policy: CartPolicy | None = None) -> None:
    if policy is not None:
        cart.policy = policy
    machine_reschedule(cart)


# A night of a DST change in Europe: irrelevant to a UTC machine, which is the point.
T0 = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)
DEFAULT = CartPolicy()
MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
TINY = timedelta(microseconds=1)

OPEN_STATES = frozenset(s for s in CartState if s.is_open)
FINAL_STATES = frozenset(s for s in CartState if s.is_final)

#: the refusal of a storefront change (update, identify, checkout, payment) by state
STOREFRONT_REFUSAL = {
    CartState.LOCKED: ErrorCode.CART_LOCKED,
    CartState.ORDERED: ErrorCode.ALREADY_ORDERED,
    CartState.EXPIRED: ErrorCode.CART_EXPIRED,
    CartState.DELETED: ErrorCode.CART_DELETED,
}
#: the refusal of an admin confirm or unlock by state (only a locked cart is accepted)
ADMIN_REFUSAL = {
    CartState.ACTIVE: ErrorCode.NOT_LOCKED,
    CartState.CHECKOUT: ErrorCode.NOT_LOCKED,
    CartState.PAYMENT_PENDING: ErrorCode.NOT_LOCKED,
    CartState.ABANDONED: ErrorCode.NOT_LOCKED,
    CartState.ORDERED: ErrorCode.ALREADY_ORDERED,
    CartState.EXPIRED: ErrorCode.CART_EXPIRED,
    CartState.DELETED: ErrorCode.CART_DELETED,
}


# =========================================================================== helpers


def line(sku: str = "A", quantity: int = 1, price: int = 1000, name: str | None = None) -> CartLine:
    return CartLine(sku=sku, name=name or f"item {sku}", quantity=quantity, unit_price=price)


def update(*lines: CartLine, currency: str = "EUR") -> CartUpdated:
    return CartUpdated(lines=list(lines) if lines else [line()], currency=currency)


def online(attempt_id: str = "a1", amount: int = 1000) -> PaymentStarted:
    return PaymentStarted(attempt_id, PaymentMethod.ONLINE, "stripe", amount)


def offline(attempt_id: str = "a1", amount: int = 1000) -> PaymentStarted:
    return PaymentStarted(attempt_id, PaymentMethod.OFFLINE, "bank_transfer", amount)


def result(
    attempt_id: str = "a1", status: PaymentStatus = PaymentStatus.SUCCEEDED, amount: int = 1000
) -> PaymentResultReported:
    return PaymentResultReported(attempt_id, status, amount, card_last4="4242")


def succeeded(attempt_id: str = "a1", amount: int = 1000) -> PaymentResultReported:
    return result(attempt_id, PaymentStatus.SUCCEEDED, amount)


def customer(email: str = "ann@example.com") -> CustomerIdentified:
    return CustomerIdentified(CustomerInfo(email=email, name="Ann"))


def attention_of(cart: Cart, kind: AttentionKind) -> list[Attention]:
    return [a for a in cart.attention if a.kind is kind]


def journal_kinds(cart: Cart) -> list[JournalKind]:
    return [entry.kind for entry in cart.journal]


class Shop:
    """One cart, a clock and a policy: the workflow's view without Temporal."""

    def __init__(self, policy: CartPolicy = DEFAULT, now: datetime = T0) -> None:
        self.cart = Cart(shop_id="shop-1", cart_id="cart-1", policy=policy)
        self.policy = policy
        self.now = now

    def do(self, *events: Any) -> bool:
        changed = False
        for event in events:
            changed = apply(self.cart, event, self.now, self.policy)
        return changed

    def refused(self, event: Any) -> ErrorCode:
        before = copy.deepcopy(self.cart)
        with pytest.raises(CartRefused) as info:
            apply(self.cart, event, self.now, self.policy)
        assert self.cart == before, "a refused event changed the cart"
        assert isinstance(info.value.code, ErrorCode)
        assert info.value.message
        return info.value.code

    def later(self, delta: timedelta) -> Shop:
        self.now += delta
        return self

    def wait(self, delta: timedelta) -> bool:
        """Let ``delta`` pass and fire the timers that are due, as the workflow does."""
        self.now += delta
        return tick(self.cart, self.now, self.policy)

    def wait_until_next_deadline(self) -> bool:
        deadline = next_deadline(self.cart)
        assert deadline is not None
        self.now = max(self.now, deadline)
        return tick(self.cart, self.now, self.policy)

    def state(self) -> CartState:
        """A call, not a property, so that type checkers do not narrow it across events."""
        return self.cart.state


# Builders of a cart in each state, by the shortest way the spec describes.


def in_active(policy: CartPolicy = DEFAULT) -> Shop:
    shop = Shop(policy)
    shop.do(update(line("A", 2, 500)))
    return shop


def in_checkout(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_active(policy)
    shop.later(MINUTE).do(CheckoutStarted(), customer())
    return shop


def in_payment_pending(policy: CartPolicy = DEFAULT, attempt_id: str = "a1") -> Shop:
    shop = in_checkout(policy)
    shop.later(MINUTE).do(online(attempt_id))
    return shop


def in_locked(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_payment_pending(policy)
    shop.wait(timedelta(seconds=policy.lock_after_seconds))
    return shop


def in_abandoned(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_active(policy)
    shop.wait(timedelta(seconds=policy.abandon_after_seconds))
    return shop


def in_ordered(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_payment_pending(policy)
    shop.later(MINUTE).do(succeeded())
    return shop


def in_expired(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_active(policy)
    shop.wait(timedelta(seconds=policy.lifetime_seconds))
    return shop


def in_deleted(policy: CartPolicy = DEFAULT) -> Shop:
    shop = in_active(policy)
    shop.later(MINUTE).do(DeleteCart(admin="root"))
    return shop


BUILDERS: dict[CartState, Callable[..., Shop]] = {
    CartState.ACTIVE: in_active,
    CartState.CHECKOUT: in_checkout,
    CartState.PAYMENT_PENDING: in_payment_pending,
    CartState.LOCKED: in_locked,
    CartState.ABANDONED: in_abandoned,
    CartState.ORDERED: in_ordered,
    CartState.EXPIRED: in_expired,
    CartState.DELETED: in_deleted,
}


# =========================================================================== reachability


def test_every_state_has_a_builder() -> None:
    assert set(BUILDERS) == set(CartState)


@pytest.mark.parametrize("state", list(CartState), ids=str)
def test_every_state_is_reachable(state: CartState) -> None:
    shop = BUILDERS[state]()
    assert shop.state() is state
    check_static_invariants(shop.cart, shop.policy)


def test_a_new_cart_is_active_and_has_no_timers() -> None:
    cart = Cart(shop_id="s", cart_id="c")
    assert cart.state is CartState.ACTIVE
    assert cart.version == 0
    assert next_deadline(cart) is None
    assert not tick(cart, T0 + timedelta(days=365), DEFAULT)
    assert not is_retired(cart, T0)


def test_first_event_creates_the_cart_with_a_journal_entry() -> None:
    shop = in_active()
    cart = shop.cart
    assert cart.version == 1
    assert cart.created_at == cart.updated_at == cart.last_activity_at == T0
    assert journal_kinds(cart)[:2] == [JournalKind.CART_CREATED, JournalKind.ITEM_ADDED]
    assert cart.currency == "EUR"
    assert cart.total == 1000


# =========================================================================== payments


def test_success_before_payment_started_creates_the_order() -> None:
    shop = in_checkout()
    assert shop.later(MINUTE).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    order = shop.cart.order
    assert order is not None
    assert order.paid and order.status == ORDER_STATUS_PROCESSED
    assert order.source is OrderSource.ONLINE_PAYMENT
    assert order.attempt_id == "a1"
    assert order.total == shop.cart.total
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    assert attempt.results == [PaymentStatus.SUCCEEDED]
    # The start reported afterwards is told the truth, and changes nothing.
    assert shop.later(SECOND).refused(online("a1")) is ErrorCode.ALREADY_ORDERED


def test_success_before_payment_started_of_a_second_attempt_creates_the_order() -> None:
    shop = in_payment_pending(attempt_id="a1")
    shop.later(MINUTE).do(result("a1", PaymentStatus.FAILED))
    assert shop.state() is CartState.CHECKOUT
    shop.later(MINUTE).do(succeeded("a2"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.attempt_id == "a2"
    assert shop.cart.current_attempt_id == "a2"


def test_failure_before_payment_started_creates_no_order() -> None:
    shop = in_checkout()
    assert shop.later(MINUTE).do(result("a1", PaymentStatus.FAILED))
    assert shop.state() is CartState.CHECKOUT
    assert shop.cart.order is None
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.FAILED


def test_success_after_lock_creates_the_order() -> None:
    shop = in_locked()
    assert shop.cart.lock_reason is LockReason.NO_PAYMENT_RESULT
    shop.later(timedelta(hours=9)).do(succeeded("a1"))  # Adyen #798: 9 h later
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid
    assert shop.cart.lock_reason is None
    assert not shop.cart.attention


def test_success_after_pending_lock_creates_the_order() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(result("a1", PaymentStatus.PENDING))
    assert shop.cart.lock_reason is LockReason.PAYMENT_PENDING
    shop.later(timedelta(days=2)).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid


def test_success_after_abandonment_creates_the_order() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(result("a1", PaymentStatus.CANCELLED))
    assert shop.state() is CartState.CHECKOUT
    shop.wait(timedelta(hours=2))
    assert shop.state() is CartState.ABANDONED
    shop.later(timedelta(days=1)).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid


def test_success_after_unlock_creates_the_order() -> None:
    shop = in_locked()
    shop.later(MINUTE).do(UnlockCart(admin="root"))
    assert shop.state() is CartState.ACTIVE
    shop.later(MINUTE).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid
    assert shop.cart.order.attempt_id == "a1"


def test_success_after_the_customer_changed_the_cart_creates_the_order() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(update(line("A", 2, 500), line("B", 1, 300)))
    assert shop.state() is CartState.ACTIVE
    shop.later(MINUTE).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.total == 1300


@pytest.mark.parametrize("closed", [CartState.EXPIRED, CartState.DELETED], ids=str)
def test_success_after_close_is_recorded_as_paid_after_close(closed: CartState) -> None:
    shop = in_payment_pending()
    if closed is CartState.EXPIRED:
        shop.wait(timedelta(days=31))
    else:
        shop.later(MINUTE).do(DeleteCart())
    assert shop.state() is closed
    closed_retire = shop.cart.retire_at
    version = shop.cart.version
    assert shop.later(timedelta(hours=3)).do(succeeded("a1", 1000))
    assert shop.state() is closed, "a final state is final"
    assert shop.cart.order is None
    assert shop.cart.version == version + 1
    (att,) = attention_of(shop.cart, AttentionKind.PAID_AFTER_CLOSE)
    assert att.attempt_id == "a1" and att.amount == 1000 and att.at == shop.now
    assert shop.cart.needs_admin
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    # The late event keeps the workflow open a while longer for more late events.
    assert closed_retire is not None and shop.cart.retire_at is not None
    assert shop.cart.retire_at == shop.now + timedelta(seconds=DEFAULT.retire_after_seconds)
    assert shop.cart.retire_at > closed_retire
    # ... and a duplicate delivery of the same success is not a second attention.
    assert not shop.later(MINUTE).do(succeeded("a1", 1000))
    assert len(attention_of(shop.cart, AttentionKind.PAID_AFTER_CLOSE)) == 1


def test_unknown_attempt_success_after_close_is_recorded() -> None:
    shop = in_deleted()
    shop.later(MINUTE).do(succeeded("zz-unknown", 777))
    (att,) = attention_of(shop.cart, AttentionKind.PAID_AFTER_CLOSE)
    assert att.attempt_id == "zz-unknown" and att.amount == 777


@pytest.mark.parametrize("status", sorted(PAYMENT_RESULT_STATUSES), ids=str)
def test_duplicate_result_is_idempotent(status: PaymentStatus) -> None:
    shop = in_payment_pending()
    assert shop.later(MINUTE).do(result("a1", status))
    snapshot = copy.deepcopy(shop.cart)
    assert not shop.later(MINUTE).do(result("a1", status))
    assert shop.cart == snapshot
    assert shop.cart.version == snapshot.version


def test_late_failure_of_older_attempt_leaves_order_paid() -> None:
    """Mollie #1159 / #668: a late "expired" of an old attempt cancelled the paid order."""
    shop = in_payment_pending(attempt_id="a1")
    shop.later(MINUTE).do(CheckoutStarted())  # the customer came back and tries again
    shop.later(MINUTE).do(online("a2"))
    shop.later(MINUTE).do(succeeded("a2"))
    order = copy.deepcopy(shop.cart.order)
    for status in NEGATIVE_PAYMENT_STATUSES | {PaymentStatus.PENDING}:
        assert shop.later(MINUTE).do(result("a1", status))
        assert shop.state() is CartState.ORDERED
        assert shop.cart.order == order
    assert order is not None and order.paid and order.attempt_id == "a2"
    a2 = shop.cart.attempt("a2")
    assert a2 is not None and a2.status is PaymentStatus.SUCCEEDED
    assert not shop.cart.attention


def test_late_failure_of_the_succeeded_attempt_never_undoes_it() -> None:
    shop = in_ordered()
    order = copy.deepcopy(shop.cart.order)
    for status in (
        PaymentStatus.FAILED,
        PaymentStatus.CANCELLED,
        PaymentStatus.EXPIRED,
        PaymentStatus.PENDING,
    ):
        version = shop.cart.version
        assert shop.later(MINUTE).do(result("a1", status))
        assert shop.cart.version == version + 1
        assert journal_kinds(shop.cart)[-1] is JournalKind.PAYMENT_RESULT_IGNORED
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    assert attempt.results[0] is PaymentStatus.SUCCEEDED and len(attempt.results) == 5
    assert shop.cart.order == order


def test_failure_then_success_of_the_same_attempt_creates_the_order() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(result("a1", PaymentStatus.FAILED))
    shop.later(MINUTE).do(succeeded("a1"))
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid


def test_second_success_by_another_attempt_is_a_possible_double_charge() -> None:
    shop = in_payment_pending(attempt_id="a1")
    shop.later(MINUTE).do(CheckoutStarted(), online("a2"))
    shop.later(MINUTE).do(succeeded("a2"))
    order = copy.deepcopy(shop.cart.order)
    shop.later(MINUTE).do(succeeded("a1", 1000))
    assert shop.state() is CartState.ORDERED
    assert order is not None and shop.cart.order is not None
    assert shop.cart.order.amount_paid == 2000, "the money is counted: 2 x 1000 paid"
    assert replace(shop.cart.order, amount_paid=1000) == order, "still one order, paid by a2"
    (att,) = attention_of(shop.cart, AttentionKind.POSSIBLE_DOUBLE_CHARGE)
    assert att.attempt_id == "a1" and att.amount == 1000
    assert att.detail is not None and "a2" in att.detail
    assert shop.cart.needs_admin


def test_offline_payment_creates_an_open_unpaid_order_at_once() -> None:
    shop = in_checkout()
    assert shop.later(MINUTE).do(offline("a1"))
    assert shop.state() is CartState.ORDERED
    order = shop.cart.order
    assert order is not None
    assert order.status == ORDER_STATUS_OPEN and not order.paid and order.paid_at is None
    assert order.source is OrderSource.OFFLINE_PAYMENT
    assert order.attempt_id == "a1"
    assert order.total == 1000 and order.currency == "EUR"
    assert shop.cart.lock_at is None and shop.cart.abandon_at is None


def test_offline_payment_given_as_plain_string_is_offline() -> None:
    """The payload converter or a client may hand the method over as its plain value."""
    shop = in_checkout()
    shop.later(MINUTE).do(PaymentStarted("a1", "offline", "bank", 1000))  # type: ignore[arg-type]
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.status == ORDER_STATUS_OPEN
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.method is PaymentMethod.OFFLINE


def test_offline_order_is_paid_by_a_later_success() -> None:
    shop = in_checkout()
    shop.later(MINUTE).do(offline("a1"))
    created = copy.deepcopy(shop.cart.order)
    shop.later(timedelta(days=2)).do(succeeded("a1"))
    order = shop.cart.order
    assert order is not None and created is not None
    assert order.paid and order.status == ORDER_STATUS_PROCESSED and order.paid_at == shop.now
    assert order.created_at == created.created_at and order.source is created.source
    assert JournalKind.ORDER_PAID in journal_kinds(shop.cart)


def test_online_success_creates_a_processed_paid_order() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(succeeded("a1"))
    order = shop.cart.order
    assert shop.state() is CartState.ORDERED
    assert order is not None
    assert order.status == ORDER_STATUS_PROCESSED and order.paid
    assert order.paid_at == order.created_at == shop.now == shop.cart.ordered_at
    assert order.source is OrderSource.ONLINE_PAYMENT
    assert order.number is None, "the number comes from OrderNumberAssigned"
    assert shop.cart.retire_at == shop.now + timedelta(seconds=DEFAULT.retire_after_seconds)
    assert shop.cart.lock_at is None and shop.cart.expire_at is None


@pytest.mark.parametrize("status", sorted(NEGATIVE_PAYMENT_STATUSES), ids=str)
def test_negative_result_returns_to_checkout_for_another_try(status: PaymentStatus) -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(result("a1", status))
    assert shop.state() is CartState.CHECKOUT
    assert shop.cart.order is None
    assert shop.cart.lock_at is None
    shop.later(MINUTE).do(online("a2"))
    assert shop.state() is CartState.PAYMENT_PENDING
    assert shop.cart.current_attempt_id == "a2"


def test_negative_result_of_an_old_attempt_does_not_touch_the_current_one() -> None:
    shop = in_payment_pending(attempt_id="a1")
    shop.later(MINUTE).do(CheckoutStarted(), online("a2"))
    shop.later(MINUTE).do(result("a1", PaymentStatus.FAILED))
    assert shop.state() is CartState.PAYMENT_PENDING
    assert shop.cart.current_attempt_id == "a2"


def test_pending_without_processing_locks_the_cart() -> None:
    shop = in_payment_pending(CartPolicy(process_pending_payments=False))
    shop.later(MINUTE).do(result("a1", PaymentStatus.PENDING))
    assert shop.state() is CartState.LOCKED
    assert shop.cart.lock_reason is LockReason.PAYMENT_PENDING
    assert shop.cart.locked_at == shop.now
    assert shop.cart.order is None
    assert shop.cart.needs_admin
    assert shop.refused(update()) is ErrorCode.CART_LOCKED


def test_pending_with_processing_creates_an_open_order() -> None:
    shop = in_payment_pending(CartPolicy(process_pending_payments=True))
    shop.later(MINUTE).do(result("a1", PaymentStatus.PENDING))
    assert shop.state() is CartState.ORDERED
    order = shop.cart.order
    assert order is not None
    assert order.status == ORDER_STATUS_OPEN and not order.paid
    assert order.source is OrderSource.PENDING_PAYMENT
    shop.later(MINUTE).do(succeeded("a1"))
    assert order.paid and order.status == ORDER_STATUS_PROCESSED


def test_no_result_locks_exactly_after_lock_after() -> None:
    shop = in_payment_pending(DEFAULT)
    started = shop.cart.payment_started_at
    assert started == shop.now
    assert shop.cart.lock_at == started + timedelta(minutes=30)
    assert not shop.wait(timedelta(minutes=30) - TINY)
    assert shop.state() is CartState.PAYMENT_PENDING
    assert shop.wait(TINY)
    assert shop.state() is CartState.LOCKED
    assert shop.cart.lock_reason is LockReason.NO_PAYMENT_RESULT
    assert shop.cart.locked_at == started + timedelta(minutes=30)
    assert journal_kinds(shop.cart)[-1] is JournalKind.CART_LOCKED


def test_late_timer_locks_at_the_deadline_not_at_the_tick() -> None:
    shop = in_payment_pending(DEFAULT)
    started = shop.cart.payment_started_at
    assert started is not None
    shop.wait(timedelta(hours=5))  # the worker was down
    assert shop.state() is CartState.LOCKED
    assert shop.cart.locked_at == started + timedelta(minutes=30)
    assert shop.cart.journal[-1].at == started + timedelta(minutes=30)
    assert shop.cart.updated_at == shop.now


def test_payment_pending_never_abandons() -> None:
    shop = in_payment_pending(CartPolicy(lock_after_seconds=3 * 3600))
    shop.wait(timedelta(hours=2))
    assert shop.state() is CartState.PAYMENT_PENDING


def test_inactivity_abandons_after_60_minutes() -> None:
    shop = in_active(DEFAULT)
    assert shop.cart.abandon_at == T0 + timedelta(minutes=60)
    assert not shop.wait(timedelta(minutes=60) - TINY)
    assert shop.state() is CartState.ACTIVE
    assert shop.wait(TINY)
    assert shop.state() is CartState.ABANDONED
    assert shop.cart.abandoned_at == T0 + timedelta(minutes=60)
    assert journal_kinds(shop.cart)[-1] is JournalKind.CART_ABANDONED


def test_inactivity_in_checkout_abandons() -> None:
    shop = in_checkout(DEFAULT)
    activity = shop.cart.last_activity_at
    assert activity is not None
    shop.wait(timedelta(minutes=59))
    assert shop.state() is CartState.CHECKOUT
    shop.now = activity + timedelta(minutes=60)
    shop.wait(timedelta(0))
    assert shop.state() is CartState.ABANDONED


def test_activity_postpones_abandonment() -> None:
    shop = in_active(DEFAULT)
    shop.wait(timedelta(minutes=50))
    shop.do(CustomerVisited(page="/cart"))
    shop.wait(timedelta(minutes=50))
    assert shop.state() is CartState.ACTIVE
    shop.wait(timedelta(minutes=10))
    assert shop.state() is CartState.ABANDONED


def test_lifetime_expires_after_30_days() -> None:
    shop = in_active(DEFAULT)
    assert shop.cart.expire_at == T0 + timedelta(days=30)
    shop.wait(timedelta(days=30) - TINY)
    assert shop.state() is CartState.ABANDONED
    assert shop.wait(TINY)
    assert shop.state() is CartState.EXPIRED
    assert shop.cart.closed_at == T0 + timedelta(days=30)
    assert next_deadline(shop.cart) == shop.cart.retire_at
    assert shop.cart.abandon_at is None and shop.cart.expire_at is None


def test_a_long_wait_applies_every_due_timer_in_order() -> None:
    shop = in_active(DEFAULT)
    version = shop.cart.version
    assert shop.wait(timedelta(days=400))
    assert shop.state() is CartState.EXPIRED
    kinds = journal_kinds(shop.cart)
    assert kinds[-2:] == [JournalKind.CART_ABANDONED, JournalKind.CART_EXPIRED]
    assert shop.cart.version == version + 2
    assert not shop.wait(timedelta(days=400))


def test_a_lifetime_shorter_than_the_abandonment_still_expires() -> None:
    """Magento #37878: a lifetime shorter than the cron interval did nothing."""
    shop = in_active(CartPolicy(abandon_after_seconds=3600, lifetime_seconds=600))
    shop.wait(timedelta(minutes=10))
    assert shop.state() is CartState.EXPIRED
    assert shop.cart.closed_at == T0 + timedelta(minutes=10)


def test_locked_cart_expires_after_its_lifetime() -> None:
    shop = in_locked(DEFAULT)
    shop.wait(timedelta(days=31))
    assert shop.state() is CartState.EXPIRED


@pytest.mark.parametrize(
    "comeback",
    [CustomerVisited(page="/"), update(line("A", 3, 500)), customer()],
    ids=["visit", "update", "identify"],
)
def test_customer_returns_and_the_abandoned_cart_is_active(comeback: Any) -> None:
    shop = in_abandoned()
    shop.later(timedelta(days=2)).do(comeback)
    assert shop.state() is CartState.ACTIVE
    assert shop.cart.last_activity_at == shop.now
    assert JournalKind.CUSTOMER_RETURNED in journal_kinds(shop.cart)
    assert shop.cart.abandon_at == shop.now + timedelta(minutes=60)
    assert shop.cart.expire_at == shop.now + timedelta(days=30)


def test_checkout_and_payment_from_abandoned_are_allowed() -> None:
    shop = in_abandoned()
    shop.later(MINUTE).do(online("a1"))
    assert shop.state() is CartState.PAYMENT_PENDING


def test_retirement_waits_after_the_order() -> None:
    shop = in_ordered()
    retire = shop.cart.retire_at
    assert retire == shop.now + timedelta(days=1)
    assert not is_retired(shop.cart, retire - TINY)
    assert is_retired(shop.cart, retire)
    assert not shop.wait(timedelta(days=2)), "tick does not retire; the workflow does"


# =========================================================================== currency


def test_currency_is_fixed_by_the_first_update() -> None:
    shop = in_active()
    assert shop.refused(update(currency="USD")) is ErrorCode.CURRENCY_MISMATCH
    assert shop.cart.currency == "EUR"
    in_usd = PaymentStarted("a1", PaymentMethod.ONLINE, "stripe", 1000, currency="USD")
    assert shop.refused(in_usd) is ErrorCode.CURRENCY_MISMATCH
    assert shop.do(PaymentStarted("a1", PaymentMethod.ONLINE, "stripe", 1000, currency="EUR"))
    assert ErrorCode.CURRENCY_MISMATCH.http_status == 409


def test_an_empty_update_keeps_the_currency() -> None:
    shop = in_active()
    shop.later(MINUTE).do(CartUpdated(lines=[], currency="EUR"))
    assert shop.cart.currency == "EUR" and shop.cart.total == 0
    assert shop.refused(CartUpdated(lines=[], currency="GBP")) is ErrorCode.CURRENCY_MISMATCH
    assert shop.refused(CheckoutStarted()) is ErrorCode.CART_EMPTY
    assert shop.refused(online()) is ErrorCode.CART_EMPTY


def test_payment_result_in_another_currency_needs_an_admin() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(
        PaymentResultReported("a1", PaymentStatus.SUCCEEDED, 1100, currency="USD")
    )
    (att,) = attention_of(shop.cart, AttentionKind.PAYMENT_CURRENCY_MISMATCH)
    assert att.attempt_id == "a1" and att.amount == 1100
    assert shop.cart.currency == "EUR"
    assert shop.state() is CartState.ORDERED, "the money was taken: the order exists"
    assert shop.cart.order is not None and shop.cart.order.currency == "EUR"


# =========================================================================== validation


@pytest.mark.parametrize(
    ("bad_line", "code"),
    [
        (line(quantity=0), ErrorCode.INVALID_QUANTITY),
        (line(quantity=-1), ErrorCode.INVALID_QUANTITY),
        (line(quantity=True), ErrorCode.INVALID_QUANTITY),
        (line(quantity=1.5), ErrorCode.INVALID_QUANTITY),  # type: ignore[arg-type]
        (line(quantity=2.0), ErrorCode.INVALID_QUANTITY),  # type: ignore[arg-type]
        (line(quantity=MAX_QUANTITY + 1), ErrorCode.INVALID_QUANTITY),
        (line(price=-1), ErrorCode.INVALID_PRICE),
        (line(price=9.99), ErrorCode.INVALID_PRICE),  # type: ignore[arg-type]
        (line(price=False), ErrorCode.INVALID_PRICE),
        (line(price=MAX_AMOUNT + 1), ErrorCode.INVALID_PRICE),
        (line(sku=""), ErrorCode.INVALID_LINE),
        (line(sku="   "), ErrorCode.INVALID_LINE),
        (line(name="x" * 201), ErrorCode.INVALID_LINE),
        (CartLine("A", "", 1, 1), ErrorCode.INVALID_LINE),
        ({"sku": "A", "name": "a", "quantity": 1, "unit_price": 1}, ErrorCode.INVALID_LINE),
    ],
    ids=lambda v: v.value if isinstance(v, ErrorCode) else None,
)
def test_invalid_line_is_refused(bad_line: Any, code: ErrorCode) -> None:
    for shop in (Shop(), in_active()):  # a new cart and a cart with items
        assert shop.refused(CartUpdated(lines=[line("Z"), bad_line], currency="EUR")) is code
        assert code.http_status == 422


def test_zero_price_is_allowed() -> None:
    shop = Shop()
    shop.do(update(line("GIFT", 1, 0)))
    assert shop.cart.total == 0


def test_duplicate_sku_is_refused() -> None:
    shop = in_active()
    event = update(line("A", 1, 100), line("B"), line("A", 2, 100))
    assert shop.refused(event) is ErrorCode.DUPLICATE_SKU


def test_too_many_lines_are_refused() -> None:
    shop = Shop()
    event = update(*(line(f"S{i}") for i in range(MAX_LINES + 1)))
    assert shop.refused(event) is ErrorCode.TOO_MANY_LINES
    assert shop.do(update(*(line(f"S{i}") for i in range(MAX_LINES))))


@pytest.mark.parametrize("currency", ["XYZ", "eur", "", "EURO", None, 978])
def test_unknown_currency_is_refused(currency: Any) -> None:
    assert Shop().refused(update(currency=currency)) is ErrorCode.INVALID_CURRENCY
    assert ErrorCode.INVALID_CURRENCY.http_status == 422


@pytest.mark.parametrize(
    "email", ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.de", None]
)
def test_invalid_email_is_refused(email: Any) -> None:
    shop = in_checkout()
    assert shop.refused(customer(email)) is ErrorCode.INVALID_EMAIL


@pytest.mark.parametrize(
    "info",
    [
        CustomerInfo(email="a@b.de", customer_id="bad id"),
        CustomerInfo(email="a@b.de", name=""),
        CustomerInfo(email="a@b.de", locale="english please"),
        CustomerInfo(email="a@b.de", time_zone="Europe/Ber lin"),
        None,
    ],
)
def test_invalid_customer_is_refused(info: Any) -> None:
    assert in_active().refused(CustomerIdentified(info)) is ErrorCode.INVALID_CUSTOMER


def test_valid_customer_is_recorded() -> None:
    shop = in_active()
    shop.later(MINUTE).do(
        CustomerIdentified(
            CustomerInfo(
                email="ann@example.com",
                locale="de-DE",
                time_zone="Europe/Berlin",
                logged_in=True,
                customer_id="c-42",
            )
        )
    )
    assert shop.cart.customer is not None and shop.cart.customer.email == "ann@example.com"
    assert shop.cart.customer_id == "c-42"
    assert shop.cart.journal[-1].detail == "logged in"


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (PaymentStarted("bad id!", PaymentMethod.ONLINE, "stripe", 1), ErrorCode.INVALID_PAYMENT),
        (PaymentStarted("a1", "card", "stripe", 1), ErrorCode.INVALID_PAYMENT),  # type: ignore[arg-type]
        (PaymentStarted("a1", PaymentMethod.ONLINE, "", 1), ErrorCode.INVALID_PAYMENT),
        (PaymentStarted("a1", PaymentMethod.ONLINE, "stripe", 0), ErrorCode.INVALID_AMOUNT),
        (PaymentStarted("a1", PaymentMethod.ONLINE, "stripe", -5), ErrorCode.INVALID_AMOUNT),
        (PaymentStarted("a1", PaymentMethod.ONLINE, "stripe", True), ErrorCode.INVALID_AMOUNT),
        (ConfirmCart(admin=""), ErrorCode.INVALID_INPUT),
        (OrderNumberAssigned(0), ErrorCode.INVALID_INPUT),
        (OrderNumberAssigned(-3), ErrorCode.INVALID_INPUT),
        (OrderNumberAssigned(True), ErrorCode.INVALID_INPUT),
        (CustomerVisited(page=""), ErrorCode.INVALID_INPUT),
        (object(), ErrorCode.INVALID_INPUT),
    ],
    ids=lambda v: v.value if isinstance(v, ErrorCode) else None,
)
def test_invalid_event_is_refused(event: Any, code: ErrorCode) -> None:
    assert in_checkout().refused(event) is code


def test_a_different_start_for_a_known_attempt_is_refused() -> None:
    shop = in_payment_pending()
    assert shop.refused(online("a1", amount=999)) is ErrorCode.DUPLICATE_ATTEMPT
    assert ErrorCode.DUPLICATE_ATTEMPT.http_status == 409


def test_the_same_start_again_changes_nothing() -> None:
    shop = in_payment_pending()
    snapshot = copy.deepcopy(shop.cart)
    assert not shop.later(MINUTE).do(online("a1"))
    assert shop.cart == snapshot


@pytest.mark.parametrize(
    "event",
    [
        PaymentResultReported("bad id!", PaymentStatus.SUCCEEDED, 1000),
        PaymentResultReported("a1", PaymentStatus.STARTED, 1000),
        PaymentResultReported("a1", "bogus", 1000),  # type: ignore[arg-type]
        PaymentResultReported("a1", PaymentStatus.FAILED, -1),
    ],
    ids=["attempt", "started", "bogus", "amount"],
)
def test_invalid_payment_result_is_never_refused_but_needs_an_admin(
    event: PaymentResultReported,
) -> None:
    shop = in_payment_pending()
    before = copy.deepcopy(shop.cart)
    assert shop.later(MINUTE).do(event)
    assert shop.cart.version == before.version + 1
    assert shop.state() is before.state
    assert shop.cart.payments == before.payments
    (att,) = attention_of(shop.cart, AttentionKind.INVALID_PAYMENT_RESULT)
    assert att.detail
    assert shop.cart.needs_admin


@pytest.mark.parametrize(
    ("detail", "value"),
    [("currency", "XYZ"), ("card_last4", "42"), ("gateway", "")],
)
def test_a_bad_detail_never_costs_a_success_its_order(detail: str, value: str) -> None:
    shop = in_payment_pending()
    event = replace(PaymentResultReported("a1", PaymentStatus.SUCCEEDED, 1000), **{detail: value})  # type: ignore[arg-type]
    assert shop.later(MINUTE).do(event)
    assert shop.state() is CartState.ORDERED
    assert shop.cart.order is not None and shop.cart.order.paid
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and getattr(attempt, detail, None) != value
    (att,) = attention_of(shop.cart, AttentionKind.INVALID_PAYMENT_RESULT)
    assert detail.split("_")[0] in (att.detail or "") or "gateway" in (att.detail or "")


@pytest.mark.parametrize(
    ("detail", "value"),
    [("currency", "XYZ"), ("card_last4", "42"), ("gateway", "")],
)
def test_a_bad_detail_on_a_failure_still_returns_the_customer_to_checkout(
    detail: str, value: str
) -> None:
    shop = in_payment_pending()
    event = replace(PaymentResultReported("a1", PaymentStatus.FAILED, 1000), **{detail: value})  # type: ignore[arg-type]
    assert shop.later(MINUTE).do(event)
    assert shop.state() is CartState.CHECKOUT
    assert attention_of(shop.cart, AttentionKind.INVALID_PAYMENT_RESULT)


def test_payment_result_status_given_as_plain_string_is_understood() -> None:
    shop = in_payment_pending()
    shop.later(MINUTE).do(PaymentResultReported("a1", "succeeded", 1000))  # type: ignore[arg-type]
    assert shop.state() is CartState.ORDERED
    attempt = shop.cart.attempt("a1")
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED


# =========================================================================== state refusals

STOREFRONT_EVENTS: dict[str, Callable[[], Any]] = {
    "update": lambda: update(line("A", 5, 500)),
    "identify": customer,
    "checkout": CheckoutStarted,
    "payment": lambda: online("a9"),
    "offline": lambda: offline("a9"),
}


@pytest.mark.parametrize("state", sorted(STOREFRONT_REFUSAL), ids=str)
@pytest.mark.parametrize("name", sorted(STOREFRONT_EVENTS))
def test_storefront_changes_are_refused_when_not_open_for_shopping(
    state: CartState, name: str
) -> None:
    shop = BUILDERS[state]()
    assert shop.later(MINUTE).refused(STOREFRONT_EVENTS[name]()) is STOREFRONT_REFUSAL[state]


@pytest.mark.parametrize(
    "state",
    [CartState.ACTIVE, CartState.CHECKOUT, CartState.PAYMENT_PENDING, CartState.ABANDONED],
    ids=str,
)
@pytest.mark.parametrize("name", sorted(STOREFRONT_EVENTS))
def test_storefront_changes_are_accepted_while_shopping(state: CartState, name: str) -> None:
    shop = BUILDERS[state]()
    assert shop.later(MINUTE).do(STOREFRONT_EVENTS[name]())


def test_http_statuses_of_state_refusals() -> None:
    assert ErrorCode.CART_LOCKED.http_status == 409
    assert ErrorCode.ALREADY_ORDERED.http_status == 409
    assert ErrorCode.NOT_LOCKED.http_status == 409
    assert ErrorCode.CART_EMPTY.http_status == 409
    assert ErrorCode.CART_EXPIRED.http_status == 410
    assert ErrorCode.CART_DELETED.http_status == 410


def test_http_status_mapping_is_sensible() -> None:
    for code in ErrorCode:
        assert code.http_status in {404, 409, 410, 422, 500, 503, 504}, code
    assert ErrorCode.CART_NOT_FOUND.http_status == 404
    assert ErrorCode.TEMPORAL_UNAVAILABLE.http_status == 503
    assert ErrorCode.INTERNAL.http_status == 500
    for code in (
        ErrorCode.INVALID_INPUT,
        ErrorCode.INVALID_ID,
        ErrorCode.INVALID_LINE,
        ErrorCode.INVALID_QUANTITY,
        ErrorCode.INVALID_PRICE,
        ErrorCode.DUPLICATE_SKU,
        ErrorCode.TOO_MANY_LINES,
        ErrorCode.INVALID_EMAIL,
        ErrorCode.INVALID_CUSTOMER,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.INVALID_PAYMENT,
        ErrorCode.INVALID_STATUS,
        ErrorCode.INVALID_CURRENCY,
    ):
        assert code.http_status == 422, code
    # A closed cart is gone (410); a conflict with its state is 409; never a success code.
    assert all(400 <= code.http_status < 600 for code in ErrorCode)


def test_visits_are_recorded_even_when_locked_or_ordered() -> None:
    for builder in (in_locked, in_ordered):
        shop = builder()
        state = shop.state()
        assert shop.later(MINUTE).do(CustomerVisited(page="/thanks"))
        assert shop.state() is state
        assert journal_kinds(shop.cart)[-1] is JournalKind.CUSTOMER_VISITED
    assert in_expired().refused(CustomerVisited()) is ErrorCode.CART_EXPIRED
    assert in_deleted().refused(CustomerVisited()) is ErrorCode.CART_DELETED


# =========================================================================== admin


@pytest.mark.parametrize(
    ("status", "paid"), [(ORDER_STATUS_PROCESSED, True), (ORDER_STATUS_OPEN, False)]
)
def test_admin_confirms_a_locked_cart(status: str, paid: bool) -> None:
    shop = in_locked()
    shop.later(MINUTE).do(ConfirmCart(admin="root", note="seen in Stripe", status=status))
    assert shop.state() is CartState.ORDERED
    order = shop.cart.order
    assert order is not None
    assert order.status == status and order.paid is paid
    assert order.source is OrderSource.ADMIN_CONFIRMATION
    assert order.attempt_id == "a1"
    assert order.total == shop.cart.total
    assert shop.cart.lock_reason is None
    entry = next(e for e in shop.cart.journal if e.kind is JournalKind.CART_CONFIRMED)
    assert entry.actor == "admin:root" and entry.detail == "seen in Stripe"


def test_success_of_the_confirmed_attempt_is_not_a_double_charge() -> None:
    shop = in_locked()
    shop.later(MINUTE).do(ConfirmCart(status=ORDER_STATUS_PROCESSED))
    order = copy.deepcopy(shop.cart.order)
    shop.later(timedelta(hours=2)).do(succeeded("a1"))
    assert shop.cart.order == order
    assert not shop.cart.attention
    # A success by another attempt is one, though.
    shop.later(MINUTE).do(succeeded("a2"))
    (att,) = attention_of(shop.cart, AttentionKind.POSSIBLE_DOUBLE_CHARGE)
    assert att.attempt_id == "a2"


def test_success_after_confirmation_as_open_pays_the_order() -> None:
    shop = in_locked()
    shop.later(MINUTE).do(ConfirmCart(status=ORDER_STATUS_OPEN))
    shop.later(MINUTE).do(succeeded("a1"))
    assert shop.cart.order is not None and shop.cart.order.paid
    assert shop.cart.order.status == ORDER_STATUS_PROCESSED


@pytest.mark.parametrize("state", sorted(ADMIN_REFUSAL), ids=str)
@pytest.mark.parametrize("action", [ConfirmCart, UnlockCart], ids=["confirm", "unlock"])
def test_admin_confirm_and_unlock_only_from_locked(state: CartState, action: type) -> None:
    shop = BUILDERS[state]()
    assert shop.later(MINUTE).refused(action(admin="root")) is ADMIN_REFUSAL[state]


def test_admin_confirm_with_another_status_is_refused() -> None:
    assert in_locked().refused(ConfirmCart(status="C")) is ErrorCode.INVALID_STATUS


def test_unlock_returns_to_active_with_the_same_lines() -> None:
    shop = in_locked()
    lines = copy.deepcopy(shop.cart.lines)
    shop.later(MINUTE).do(UnlockCart(admin="root"))
    assert shop.state() is CartState.ACTIVE
    assert shop.cart.lines == lines
    assert shop.cart.lock_reason is None
    assert shop.cart.last_activity_at == shop.now
    assert shop.cart.abandon_at == shop.now + timedelta(minutes=60)
    # The customer continues with the same cart.
    shop.later(MINUTE).do(update(line("A", 2, 500), line("B", 1, 1)), online("a2"))
    assert shop.state() is CartState.PAYMENT_PENDING


def test_delete_is_idempotent() -> None:
    shop = in_locked()
    assert shop.later(MINUTE).do(DeleteCart(admin="root"))
    assert shop.state() is CartState.DELETED
    assert shop.cart.closed_at == shop.now
    snapshot = copy.deepcopy(shop.cart)
    assert not shop.later(MINUTE).do(DeleteCart(admin="other"))
    assert shop.cart == snapshot


@pytest.mark.parametrize(
    ("state", "code"),
    [(CartState.ORDERED, ErrorCode.ALREADY_ORDERED), (CartState.EXPIRED, ErrorCode.CART_EXPIRED)],
    ids=str,
)
def test_delete_is_refused_for_orders_and_expired_carts(state: CartState, code: ErrorCode) -> None:
    assert BUILDERS[state]().refused(DeleteCart()) is code


@pytest.mark.parametrize(
    "state",
    [
        CartState.ACTIVE,
        CartState.CHECKOUT,
        CartState.PAYMENT_PENDING,
        CartState.LOCKED,
        CartState.ABANDONED,
    ],
    ids=str,
)
def test_delete_from_every_open_state(state: CartState) -> None:
    shop = BUILDERS[state]()
    assert shop.later(MINUTE).do(DeleteCart())
    assert shop.state() is CartState.DELETED
    assert not shop.wait(timedelta(days=365)), "no timer fires in a deleted cart"


def test_order_number_is_assigned_once() -> None:
    shop = in_ordered()
    version = shop.cart.version
    assert shop.do(OrderNumberAssigned(1001))
    assert shop.cart.order is not None and shop.cart.order.number == 1001
    assert shop.cart.version == version + 1
    assert not shop.do(OrderNumberAssigned(1002))
    assert not shop.do(OrderNumberAssigned(1001))
    assert shop.cart.order.number == 1001
    assert shop.cart.version == version + 1
    code = shop.refused(update())
    assert code is ErrorCode.ALREADY_ORDERED


def test_order_number_without_an_order_changes_nothing() -> None:
    for builder in (Shop, in_active, in_locked, in_expired):
        shop = builder()
        snapshot = copy.deepcopy(shop.cart)
        assert not shop.do(OrderNumberAssigned(7))
        assert shop.cart == snapshot


# =========================================================================== journal


def test_journal_is_bounded_and_counts_what_it_dropped() -> None:
    policy = CartPolicy(journal_limit=5)
    shop = Shop(policy)
    total_entries = 0
    for i in range(30):
        before = len(shop.cart.journal) + shop.cart.journal_dropped
        shop.later(SECOND).do(CustomerVisited(page=f"/p{i}"))
        after = len(shop.cart.journal) + shop.cart.journal_dropped
        assert after > before
        total_entries = after
        assert len(shop.cart.journal) <= 5
    assert shop.cart.journal_dropped == total_entries - 5
    assert shop.cart.journal[-1].detail == "/p29"
    assert [e.at for e in shop.cart.journal] == sorted(e.at for e in shop.cart.journal)


def test_journal_limit_zero_keeps_the_last_entry() -> None:
    shop = Shop(CartPolicy(journal_limit=0))
    shop.do(update(), CustomerVisited())
    assert len(shop.cart.journal) == 1
    assert shop.cart.journal[0].kind is JournalKind.CUSTOMER_VISITED


def test_journal_tells_the_story() -> None:
    shop = Shop()
    shop.do(update(line("A", 1, 100), line("B", 1, 100)))
    shop.later(MINUTE).do(update(line("A", 3, 100)))
    kinds = journal_kinds(shop.cart)
    assert kinds == [
        JournalKind.CART_CREATED,
        JournalKind.ITEM_ADDED,
        JournalKind.ITEM_ADDED,
        JournalKind.QUANTITY_CHANGED,
        JournalKind.ITEM_REMOVED,
    ]
    assert shop.cart.journal[-2].detail == "A x1 -> x3"


# =========================================================================== deadlines


@pytest.mark.parametrize("state", list(CartState), ids=str)
def test_deadlines_match_the_state(state: CartState) -> None:
    cart = BUILDERS[state]().cart
    assert (cart.abandon_at is not None) is (state in (CartState.ACTIVE, CartState.CHECKOUT))
    assert (cart.lock_at is not None) is (state is CartState.PAYMENT_PENDING)
    assert (cart.expire_at is not None) is state.is_open
    assert (cart.retire_at is not None) is (not state.is_open)
    snapshot = copy.deepcopy(cart)
    reschedule(cart, DEFAULT)
    assert cart == snapshot, "reschedule is a function of the state"


# =========================================================================== the model


#: attention kinds that record money an admin must look at
MONEY_FLAGS = frozenset(
    {
        AttentionKind.PAID_AFTER_CLOSE,
        AttentionKind.POSSIBLE_DOUBLE_CHARGE,
        AttentionKind.PAYMENT_CURRENCY_MISMATCH,
        AttentionKind.AMOUNT_MISMATCH,
        AttentionKind.PAYMENT_WITHOUT_CART,
        AttentionKind.CART_CHANGED_DURING_PAYMENT,
    }
)


def paid_in(cart: Cart, currency: str | None) -> int:
    """The model's sum of succeeded payments in ``currency``."""
    return sum(
        a.succeeded_amount or 0
        for a in cart.payments
        if a.status is PaymentStatus.SUCCEEDED and a.succeeded_currency == currency
    )


def is_reflected(cart: Cart, attempt_id: str) -> bool:
    """A succeeded attempt is reflected in the cart, so an admin or the shop sees it: it
    counts towards the order, or an attention item about it is raised."""
    attempt = cart.attempt(attempt_id)
    assert attempt is not None and attempt.status is PaymentStatus.SUCCEEDED
    flagged = {a.kind for a in cart.attention if a.attempt_id == attempt_id}
    counted = cart.order is not None and attempt.succeeded_currency == cart.order.currency
    return counted or bool(flagged & MONEY_FLAGS)


def unstorable(value: Any, path: str = "cart") -> list[str]:
    """Where ``value`` (a cart) holds text no database stores or reads back whole: a
    control character other than tab and line breaks (which notes may have), or a lone
    surrogate."""
    if isinstance(value, str):
        bad = [c for c in value if c in UNSTORABLE or "\ud800" <= c <= "\udfff"]
        return [f"{path}: {value!r}"] if bad else []
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in unstorable(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in unstorable(k, path) + unstorable(v, path)]
    if hasattr(value, "__dataclass_fields__"):
        return [p for f in value.__dataclass_fields__ for p in unstorable(getattr(value, f), f)]
    return []


#: control characters no cart keeps (tab, LF and CR: only where a note has lines)
UNSTORABLE = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]) - set("\t\n\r")


def check_static_invariants(cart: Cart, policy: CartPolicy) -> None:
    """What holds for every cart, whatever happened before."""
    # Outside text is refused with a control character or a lone surrogate, or (what a
    # gateway sent) kept escaped: every text of the cart can be stored and read back.
    assert not unstorable(cart), unstorable(cart)[:3]
    assert cart.total == sum(ln.quantity * ln.unit_price for ln in cart.lines)
    assert cart.item_count == sum(ln.quantity for ln in cart.lines)
    assert len({ln.sku for ln in cart.lines}) == len(cart.lines)
    for ln in cart.lines:
        assert type(ln.quantity) is int and 0 < ln.quantity <= MAX_QUANTITY
        assert type(ln.unit_price) is int and 0 <= ln.unit_price <= MAX_AMOUNT
    assert cart.currency is None or cart.currency in ISO_4217
    if cart.lines:
        assert cart.currency is not None

    # One order, exactly when ordered; its total is the cart's (lines are frozen once ordered).
    assert (cart.order is not None) is (cart.state is CartState.ORDERED)
    if cart.order is not None:
        order = cart.order
        assert order.total == cart.total
        assert order.currency == cart.currency
        assert order.paid is (order.status == ORDER_STATUS_PROCESSED)
        assert (order.paid_at is not None) is order.paid
        assert order.created_at == cart.ordered_at
        # The money rule: paid exactly when the succeeded payments in its currency cover it.
        assert order.amount_paid == paid_in(cart, order.currency)
        assert order.paid is (order.amount_paid >= order.total)
        if order.paid and order.total > 0:  # a free order is paid by no payment
            paid_by = cart.attempt(order.attempt_id or "")
            assert paid_by is not None and paid_by.status is PaymentStatus.SUCCEEDED
        # Every mismatch is flagged: a part payment or an overpayment has a money flag.
        if order.amount_paid not in (0, order.total):
            assert {a.kind for a in cart.attention} & MONEY_FLAGS, "an unflagged mismatch"
        assert order.number is None or order.number > 0

    # Payments.
    ids = [p.attempt_id for p in cart.payments]
    assert len(ids) == len(set(ids)), "an attempt is recorded once"
    for attempt in cart.payments:
        assert attempt.status in PaymentStatus
        confirmed = attempt.confirmed_by is not None
        if confirmed:
            assert attempt.status is PaymentStatus.SUCCEEDED, "an admin confirmed it as paid"
        if attempt.results:
            assert (
                attempt.status is PaymentStatus.SUCCEEDED or attempt.status is attempt.results[-1]
            )
            assert (attempt.status is PaymentStatus.SUCCEEDED) is (
                PaymentStatus.SUCCEEDED in attempt.results or confirmed
            )
            assert len(set(attempt.results)) == len(attempt.results), "results are deduplicated"
        else:
            assert attempt.status is (
                PaymentStatus.SUCCEEDED if confirmed else PaymentStatus.STARTED
            )
        assert (attempt.succeeded_amount is not None) is (attempt.status is PaymentStatus.SUCCEEDED)
        if attempt.status is PaymentStatus.SUCCEEDED:
            assert is_reflected(cart, attempt.attempt_id), attempt
    if cart.current_attempt_id is not None:
        assert cart.current_attempt_id in ids

    # Paid-after-close only in closed carts; double charge only next to a paid order.
    if attention_of(cart, AttentionKind.PAID_AFTER_CLOSE):
        assert cart.state.is_final
    if attention_of(cart, AttentionKind.POSSIBLE_DOUBLE_CHARGE):
        assert cart.order is not None
    for item in attention_of(cart, AttentionKind.PAYMENT_WITHOUT_CART):
        assert item.attempt_id is not None
    assert cart.needs_admin is (
        cart.state is CartState.LOCKED or any(a.is_open for a in cart.attention)
    )
    assert [a.id for a in cart.attention] == sorted({a.id for a in cart.attention})
    for item in cart.attention:
        assert (item.resolved_at is None) is (item.resolved_by is None)

    # State details.
    # A closed cart keeps the reason it was locked for (history); an order clears it.
    if cart.state is CartState.LOCKED:
        assert cart.lock_reason is not None
    elif not cart.state.is_final:
        assert cart.lock_reason is None
    if cart.state is CartState.LOCKED:
        assert cart.locked_at is not None
    if cart.state is CartState.ABANDONED:
        assert cart.abandoned_at is not None
    if cart.state.is_final:
        assert cart.closed_at is not None
    if cart.state is CartState.PAYMENT_PENDING:
        assert cart.payment_started_at is not None
        assert cart.current_attempt_id is not None

    # Journal.
    assert len(cart.journal) <= max(policy.journal_limit, 1)
    assert cart.journal_dropped >= 0

    # Deadlines follow the state (nothing scheduled before the first event).
    if cart.version > 0:
        assert cart.created_at is not None and cart.updated_at is not None
        shopping = cart.state in (CartState.ACTIVE, CartState.CHECKOUT)
        assert (cart.abandon_at is not None) is shopping
        assert (cart.lock_at is not None) is (cart.state is CartState.PAYMENT_PENDING)
        assert (cart.expire_at is not None) is cart.state.is_open, "carts are never forgotten"
        assert (cart.retire_at is not None) is (not cart.state.is_open)
        if cart.state is CartState.PAYMENT_PENDING:
            assert cart.payment_started_at is not None
            assert cart.lock_at == cart.payment_started_at + timedelta(
                seconds=policy.lock_after_seconds
            )
        if cart.retire_at is not None and cart.state.is_final:
            assert cart.closed_at is not None and cart.retire_at >= cart.closed_at + timedelta(
                seconds=policy.retire_after_seconds
            )
    else:
        assert next_deadline(cart) is None


def check_history_invariants(prev: Cart, cart: Cart) -> None:
    """What holds between any earlier snapshot ``prev`` and the cart now."""
    if prev.state.is_final:
        assert cart.state is prev.state, "final states are final"
        assert cart.closed_at == prev.closed_at
    if prev.state is CartState.ORDERED:
        assert cart.state is CartState.ORDERED, "ordered never goes back"
    if prev.order is not None:
        assert cart.order is not None, "an order is never removed"
        assert cart.order.created_at == prev.order.created_at
        assert cart.order.total == prev.order.total
        assert cart.order.source is prev.order.source
        if prev.order.number is not None:
            assert cart.order.number == prev.order.number, "the number is assigned once"
        # (less is counted only when the gateway's word replaces an admin's confirmation:
        # another amount or another currency, flagged either way)
        assert cart.order.amount_paid >= prev.order.amount_paid or any(
            a.kind in (AttentionKind.AMOUNT_MISMATCH, AttentionKind.PAYMENT_CURRENCY_MISMATCH)
            for a in cart.attention
        ), "money is not taken back silently"
        if prev.order.paid and not cart.order.paid:
            # Only the gateway's lower amount (or other currency) for a payment an admin
            # confirmed.
            assert any(
                a.kind in (AttentionKind.AMOUNT_MISMATCH, AttentionKind.PAYMENT_CURRENCY_MISMATCH)
                and (attempt := cart.attempt(a.attempt_id or "")) is not None
                and attempt.confirmed_by is not None
                for a in cart.attention[len(prev.attention) :]
            )
    if prev.currency is not None:
        assert cart.currency == prev.currency, "the currency is fixed"
    for old in prev.payments:
        new = cart.attempt(old.attempt_id)
        assert new is not None, "an attempt is never forgotten"
        assert new.results[: len(old.results)] == old.results
        if old.status is PaymentStatus.SUCCEEDED:
            assert new.status is PaymentStatus.SUCCEEDED, "a success is never undone"
    assert [p.attempt_id for p in cart.payments[: len(prev.payments)]] == [
        p.attempt_id for p in prev.payments
    ]

    def facts(item: Attention) -> tuple[Any, ...]:
        return (item.id, item.kind, item.at, item.attempt_id, item.amount, item.detail)

    assert [facts(a) for a in cart.attention[: len(prev.attention)]] == [
        facts(a) for a in prev.attention
    ], "attention only grows"
    for old_item, new_item in zip(prev.attention, cart.attention, strict=False):
        if not old_item.is_open:
            assert new_item == old_item, "a resolution stays"
    assert cart.version >= prev.version
    if cart.version == prev.version:
        assert cart == prev, "no change without a new version"
    else:
        assert cart != prev
    assert cart.journal_dropped >= prev.journal_dropped
    assert len(cart.journal) + cart.journal_dropped >= len(prev.journal) + prev.journal_dropped
    if prev.created_at is not None:
        assert cart.created_at == prev.created_at


# --------------------------------------------------------------------------- strategies

ATTEMPTS = ["a1", "a2", "a3"]
BAD_ATTEMPT = "bad id!"
SKUS = ["A", "B", "C"]
VALID_CURRENCY = "EUR"

#: text as a storefront, an admin or a gateway may send it: mostly plain, sometimes with
#: a control character (NUL, tab, line break, ESC, DEL, C1) or a lone surrogate
UNSAFE_CHARS = ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\ud800", "\udfff"]
texts = st.text(st.sampled_from(["a", "Z", " ", "é", "€", "\u2028", *UNSAFE_CHARS]), max_size=5)
names = st.one_of(st.sampled_from(["Mug", "T-shirt"]), st.sampled_from(["Mug"]), texts)
notes = st.one_of(st.none(), st.none(), st.sampled_from(["called", "a\r\nb\tc"]), texts)


def unsafe(text: object, *, multiline: bool = False) -> bool:
    """The model of the text rules: a control character (but tab and line breaks in a
    note) or a lone surrogate."""
    allowed = set("\t\n\r") if multiline else set()
    return isinstance(text, str) and any(
        (c in UNSTORABLE or c in "\t\n\r" or "\ud800" <= c <= "\udfff") and c not in allowed
        for c in text
    )


valid_lines = st.lists(
    st.builds(
        CartLine,
        sku=st.sampled_from(SKUS),
        name=st.sampled_from(["Mug", "T-shirt"]),
        quantity=st.integers(1, 5),
        unit_price=st.integers(0, 5000),
    ),
    max_size=3,
    unique_by=lambda ln: ln.sku,
)
bad_line = st.one_of(
    st.builds(
        CartLine,
        sku=st.sampled_from(SKUS),
        name=st.just("Mug"),
        quantity=st.sampled_from([0, -1, True, 1.5, MAX_QUANTITY + 1]),
        unit_price=st.just(100),
    ),
    st.builds(
        CartLine,
        sku=st.sampled_from(SKUS),
        name=st.just("Mug"),
        quantity=st.just(1),
        unit_price=st.sampled_from([-1, 1.5, MAX_AMOUNT + 1]),
    ),
    st.builds(
        CartLine,
        sku=st.sampled_from(["", " "]),
        name=st.just("x"),
        quantity=st.just(1),
        unit_price=st.just(1),
    ),
    st.builds(
        CartLine, sku=st.sampled_from(SKUS), name=names, quantity=st.just(1), unit_price=st.just(1)
    ),
    st.builds(
        CartLine,
        sku=st.sampled_from(["A\x00", "\ud800"]),
        name=names,
        quantity=st.just(1),
        unit_price=st.just(1),
    ),
)
#: mostly valid carts; sometimes an invalid line or a duplicated sku
lines_strategy = st.one_of(
    valid_lines,
    valid_lines,
    valid_lines,
    st.lists(
        st.one_of(bad_line, valid_lines.map(lambda ls: ls[0] if ls else line())),
        min_size=1,
        max_size=3,
    ),
)
currencies = st.sampled_from(["EUR", "EUR", "EUR", "EUR", "USD", "XYZ", "eur"])
emails = st.sampled_from(
    ["ann@example.com", "bob@shop.test", "not-an-email", "a b@c.de", "@x.y", "a\x00@b.de"]
)
customers = st.builds(
    CustomerInfo,
    email=emails,
    name=st.one_of(st.none(), st.just("Ann"), texts),
    logged_in=st.booleans(),
    customer_id=st.sampled_from([None, None, "c-1", "bad id"]),
)
result_statuses = st.sampled_from(
    [*sorted(PAYMENT_RESULT_STATUSES), PaymentStatus.SUCCEEDED, PaymentStatus.STARTED, "bogus"]
)
seconds = st.one_of(
    st.integers(1, 3600),
    st.sampled_from([600, 1800, 3600, 2 * 3600, 86400, 3 * 86400, 31 * 86400]),
)
POLICIES = [
    DEFAULT,
    CartPolicy(journal_limit=5),
    CartPolicy(process_pending_payments=True, journal_limit=8),
    # short clocks so that lifetimes run out within a few steps
    CartPolicy(
        abandon_after_seconds=900,
        lock_after_seconds=600,
        lifetime_seconds=2 * 3600,
        retire_after_seconds=3600,
        journal_limit=12,
    ),
    CartPolicy(abandon_after_seconds=600, lifetime_seconds=600, process_pending_payments=True),
]


def _lines_refusal(lines: list[Any]) -> ErrorCode | None:
    """The model of ``check_lines`` (3 lines at most here): the first line's first problem,
    texts first (their characters, then blank), then the sku's repeat, quantity, price."""
    seen: set[str] = set()
    for ln in lines:
        for text in (ln.sku, ln.name):
            if unsafe(text):
                return ErrorCode.INVALID_TEXT
            if not text.strip():
                return ErrorCode.INVALID_LINE
        if ln.sku in seen:
            return ErrorCode.DUPLICATE_SKU
        seen.add(ln.sku)
        if not (type(ln.quantity) is int and 0 < ln.quantity <= MAX_QUANTITY):
            return ErrorCode.INVALID_QUANTITY
        if not (type(ln.unit_price) is int and 0 <= ln.unit_price <= MAX_AMOUNT):
            return ErrorCode.INVALID_PRICE
    return None


def _valid_result(event: PaymentResultReported) -> bool:
    """The core of a result (attempt, status, amount) is usable."""
    return (
        event.attempt_id != BAD_ATTEMPT
        and event.status in PAYMENT_RESULT_STATUSES
        and event.amount >= 0
    )


def _sanitized(event: PaymentResultReported) -> tuple[PaymentResultReported, int]:
    """The result without its bad optional details, and how many were dropped."""
    bad: dict[str, None] = {}
    if event.currency is not None and event.currency not in ISO_4217:
        bad["currency"] = None
    if event.card_last4 is not None and not (
        len(event.card_last4) == 4 and event.card_last4.isdigit()
    ):
        bad["card_last4"] = None
    if event.gateway is not None and (not event.gateway.strip() or unsafe(event.gateway)):
        bad["gateway"] = None
    return replace(event, **bad), len(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the stateful test


class CartMachine(RuleBasedStateMachine):
    """One cart driven by random storefront, gateway, admin and timer events.

    Every rule checks the transition it caused against a model of the spec; the
    invariants check the cart itself and its history (via the previous snapshot).
    """

    def __init__(self) -> None:
        super().__init__()
        self.cart = Cart(shop_id="shop-1", cart_id="cart-1")
        self.policy = DEFAULT
        self.now = T0
        #: a deep copy of the cart as it is now, kept up to date by ``_apply`` and ``_tick``
        self.current = copy.deepcopy(self.cart)
        #: the cart after the previous step, and after its first change (history invariants)
        self.prev = self.current
        self.first: Cart | None = None

    @initialize(
        policy=st.sampled_from(POLICIES),
        start=st.integers(0, 86400),
        state=st.none() | st.sampled_from(list(CartState)),
    )
    def setup(self, policy: CartPolicy, start: int, state: CartState | None) -> None:
        """A new cart, or (half the time) one already brought to some state by its builder."""
        self.policy = policy
        self.cart.policy = policy
        self.current = self.prev = copy.deepcopy(self.cart)
        self.now = T0 + timedelta(seconds=start)
        if state is not None:
            shop = BUILDERS[state](policy)
            self.cart, self.now = shop.cart, shop.now + timedelta(seconds=start)
            self.current = self.prev = copy.deepcopy(self.cart)

    # ---- plumbing

    def _snapshot(self) -> Cart:
        """A deep copy of the cart as it is now, taken before the last change."""
        assert self.current == self.cart, "the cart changed outside _apply and _tick"
        return self.current

    def _apply(self, event: Any) -> tuple[Cart, bool | ErrorCode]:
        """Apply ``event``; check the generic rules; return the cart before and the outcome."""
        before = self._snapshot()
        try:
            changed = apply(self.cart, event, self.now, self.policy)
        except CartRefused as refused:
            assert not isinstance(event, PaymentResultReported), "results are never refused"
            assert self.cart == before, f"refused {event!r} changed the cart"
            assert isinstance(refused.code, ErrorCode)
            hypothesis_event(f"refused {type(event).__name__}: {refused.code}")
            return before, refused.code
        if changed:
            assert self.cart.version == before.version + 1
            assert self.cart.updated_at == self.now
            self.current = copy.deepcopy(self.cart)
        else:
            assert self.cart == before, f"{event!r} changed the cart but said it did not"
        hypothesis_event(f"state {self.cart.state}")
        return before, changed

    def _tick(self) -> None:
        before = self._snapshot()
        due = [
            d
            for d in (before.abandon_at, before.lock_at, before.expire_at)
            if d is not None and d <= self.now
        ]
        changed = tick(self.cart, self.now, self.policy)
        assert changed is bool(due), "tick changes the cart iff a timer is due"
        if not changed:
            assert self.cart == before
        else:
            assert self.cart.version > before.version
            assert self.cart.updated_at == self.now
            self.current = copy.deepcopy(self.cart)
        if before.expire_at is not None and before.expire_at <= self.now:
            assert self.cart.state is CartState.EXPIRED
            assert self.cart.closed_at == before.expire_at
        elif before.lock_at is not None and before.lock_at <= self.now:
            assert self.cart.state is CartState.LOCKED
            assert self.cart.lock_reason is LockReason.NO_PAYMENT_RESULT
            assert self.cart.locked_at == before.lock_at
        elif before.abandon_at is not None and before.abandon_at <= self.now:
            assert self.cart.state is CartState.ABANDONED
            assert self.cart.abandoned_at == before.abandon_at
        # tick applies everything due: no open cart keeps a deadline in the past.
        if self.cart.state.is_open:
            for deadline in (self.cart.abandon_at, self.cart.lock_at, self.cart.expire_at):
                assert deadline is None or deadline > self.now
            nd = next_deadline(self.cart)
            assert nd is None or nd > self.now
            assert nd is not None or self.cart.version == 0
        assert not tick(self.cart, self.now, self.policy), "a second tick finds nothing due"
        hypothesis_event(f"state {self.cart.state}")

    # ---- time

    @rule(delta=seconds, then_tick=st.booleans())
    def time_passes(self, delta: int, then_tick: bool) -> None:
        """Time passes; without a tick the timer races the next event."""
        self.now += timedelta(seconds=delta)
        if then_tick:
            self._tick()

    @precondition(lambda self: next_deadline(self.cart) is not None)
    @rule(early=st.booleans())
    def timer_fires(self, early: bool) -> None:
        """Jump to the next deadline exactly (or just before it) and tick."""
        deadline = next_deadline(self.cart)
        assert deadline is not None
        target = deadline - TINY if early else deadline
        self.now = max(self.now, target)
        self._tick()

    # ---- storefront

    @precondition(
        lambda self: self.cart.state in (CartState.ACTIVE, CartState.CHECKOUT, CartState.ABANDONED)
    )
    @rule(attempt_id=st.sampled_from(ATTEMPTS), lines=valid_lines.filter(bool))
    def customer_goes_to_the_gateway(self, attempt_id: str, lines: list[CartLine]) -> None:
        """The common path, taken in one step: fill the cart, check out, pay online."""
        before, outcome = self._apply(CartUpdated(lines, self.cart.currency or "EUR"))
        assert outcome is True
        before, outcome = self._apply(CheckoutStarted())
        assert outcome is True and before.lines
        amount = self.cart.total or 1
        before, outcome = self._apply(
            PaymentStarted(attempt_id, PaymentMethod.ONLINE, "stripe", amount)
        )
        known = before.attempt(attempt_id)
        if known is None:
            assert outcome is True and self.cart.state is CartState.PAYMENT_PENDING
        elif known.status is PaymentStatus.STARTED and known.amount == amount:
            assert outcome is False
        else:
            assert outcome is ErrorCode.DUPLICATE_ATTEMPT

    @rule(lines=lines_strategy, currency=currencies, customer_id=st.sampled_from([None, "c-7"]))
    def cart_updated(self, lines: list[Any], currency: str, customer_id: str | None) -> None:
        event = CartUpdated(lines=lines, currency=currency, customer_id=customer_id)
        before, outcome = self._apply(event)
        if before.state in STOREFRONT_REFUSAL:
            assert outcome is STOREFRONT_REFUSAL[before.state]
        elif currency not in ISO_4217:
            assert outcome is ErrorCode.INVALID_CURRENCY
        elif before.currency is not None and currency != before.currency:
            assert outcome is ErrorCode.CURRENCY_MISMATCH
        elif (refusal := _lines_refusal(lines)) is not None:
            assert outcome is refusal
        else:
            assert outcome is True
            assert self.cart.lines == lines and self.cart.lines is not lines
            assert self.cart.currency == currency
            assert self.cart.last_activity_at == self.now
            expected = {
                CartState.ABANDONED: CartState.ACTIVE,
                CartState.PAYMENT_PENDING: CartState.ACTIVE,
            }.get(before.state, before.state)
            assert self.cart.state is expected

    @rule(info=customers)
    def customer_identified(self, info: CustomerInfo) -> None:
        before, outcome = self._apply(CustomerIdentified(info))
        if before.state in STOREFRONT_REFUSAL:
            assert outcome is STOREFRONT_REFUSAL[before.state]
        elif unsafe(info.email):
            assert outcome is ErrorCode.INVALID_TEXT
        elif "@" not in info.email or info.email.startswith("@") or " " in info.email:
            assert outcome is ErrorCode.INVALID_EMAIL
        elif unsafe(info.name):
            assert outcome is ErrorCode.INVALID_TEXT
        elif (info.name is not None and not info.name.strip()) or info.customer_id == "bad id":
            assert outcome is ErrorCode.INVALID_CUSTOMER
        else:
            assert outcome is True
            assert self.cart.customer == info
            if before.state is CartState.ABANDONED:
                assert self.cart.state is CartState.ACTIVE

    @rule(page=st.sampled_from([None, "/", "/cart"]))
    def customer_visited(self, page: str | None) -> None:
        before, outcome = self._apply(CustomerVisited(page=page))
        if before.state is CartState.EXPIRED:
            assert outcome is ErrorCode.CART_EXPIRED
        elif before.state is CartState.DELETED:
            assert outcome is ErrorCode.CART_DELETED
        else:
            assert outcome is True
            if before.state is CartState.ABANDONED:
                assert self.cart.state is CartState.ACTIVE
            else:
                assert self.cart.state is before.state

    @rule()
    def checkout_started(self) -> None:
        before, outcome = self._apply(CheckoutStarted())
        if before.state in STOREFRONT_REFUSAL:
            assert outcome is STOREFRONT_REFUSAL[before.state]
        elif not before.lines:
            assert outcome is ErrorCode.CART_EMPTY
        else:
            assert outcome is True
            assert self.cart.state is CartState.CHECKOUT

    @rule(
        attempt_id=st.sampled_from([*ATTEMPTS, BAD_ATTEMPT]),
        method=st.sampled_from([PaymentMethod.ONLINE, PaymentMethod.ONLINE, PaymentMethod.OFFLINE]),
        amount=st.one_of(st.none(), st.none(), st.integers(-1, 5000)),
    )
    def payment_started(self, attempt_id: str, method: PaymentMethod, amount: int | None) -> None:
        amount = max(self.cart.total, 1) if amount is None else amount
        event = PaymentStarted(attempt_id, method, "stripe", amount)
        before, outcome = self._apply(event)
        known = before.attempt(attempt_id)
        if before.state in STOREFRONT_REFUSAL:
            assert outcome is STOREFRONT_REFUSAL[before.state]
        elif not before.lines:
            assert outcome is ErrorCode.CART_EMPTY
        elif attempt_id == BAD_ATTEMPT:
            assert outcome is ErrorCode.INVALID_PAYMENT
        elif amount <= 0:
            assert outcome is ErrorCode.INVALID_AMOUNT
        elif known is not None:
            same = (
                known.status is PaymentStatus.STARTED
                and known.method is method
                and known.amount == amount
            )
            assert outcome is (False if same else ErrorCode.DUPLICATE_ATTEMPT)
        else:
            assert outcome is True
            attempt = self.cart.attempt(attempt_id)
            assert attempt is not None and attempt.status is PaymentStatus.STARTED
            assert attempt.started_at == self.now and attempt.method is method
            assert self.cart.current_attempt_id == attempt_id
            if method is PaymentMethod.OFFLINE:
                assert self.cart.state is CartState.ORDERED
                order = self.cart.order
                assert order is not None and order.source is OrderSource.OFFLINE_PAYMENT
                assert order.paid is (order.amount_paid >= order.total)  # a free cart: paid
            else:
                assert self.cart.state is CartState.PAYMENT_PENDING
                assert self.cart.lock_at == self.now + timedelta(
                    seconds=self.policy.lock_after_seconds
                )

    # ---- gateway

    @rule(
        attempt_id=st.sampled_from([*ATTEMPTS, *ATTEMPTS, "zz-unknown", BAD_ATTEMPT]),
        status=result_statuses,
        amount=st.sampled_from([1000, 1000, 0, 250, -1]),
        currency=st.sampled_from([None, None, None, "EUR", "USD", "XYZ"]),
        card_last4=st.sampled_from([None, "4242", "42"]),
        gateway=st.one_of(st.none(), st.none(), st.just("stripe"), texts),
    )
    def payment_result(
        self,
        attempt_id: str,
        status: Any,
        amount: int,
        currency: str | None,
        card_last4: str | None,
        gateway: str | None,
    ) -> None:
        self._result(
            PaymentResultReported(attempt_id, status, amount, currency, card_last4, gateway)
        )

    @rule(
        attempt_id=st.one_of(st.sampled_from(ATTEMPTS), texts),
        status=st.one_of(st.sampled_from(["succeeded", "pending", "failed"]), texts),
        extra=st.dictionaries(texts, texts, max_size=2),
        gateway=st.one_of(st.none(), texts),
    )
    def gateway_sends_raw_text(
        self, attempt_id: str, status: str, extra: dict[str, str], gateway: str | None
    ) -> None:
        """A webhook's JSON as it came (``parse_payment_result``), its text perhaps with
        control characters or lone surrogates: never refused, and what the cart keeps of
        it is storable (the invariant), flagged for an admin when it could not be read."""
        raw: dict[str, Any] = {**extra, "attempt_id": attempt_id, "status": status}
        raw.update(amount=1000, gateway=gateway)
        event = parse_payment_result(raw)
        before, outcome = self._apply(event)
        assert isinstance(outcome, bool), "a payment result is never refused"
        if isinstance(event, PaymentResultUnreadable):
            hypothesis_event("raw result unreadable")
            assert unstorable(event) == [], "what is kept of an unreadable result is escaped"
            new = self.cart.attention[len(before.attention) :]
            assert [a.kind for a in new] in ([AttentionKind.INVALID_PAYMENT_RESULT], [])
        elif unsafe(gateway) and (attempt := self.cart.attempt(attempt_id)) is not None:
            hypothesis_event("raw result applied without its gateway")
            assert attempt.gateway != gateway, "a gateway name with such text is dropped"
            earlier = before.attempt(attempt_id)
            # A result the attempt already had is a repeat (``_repeated_result``): nothing
            # of it is kept, so its gateway needs no admin; a new one's gateway is flagged.
            repeat = earlier is not None and status in [str(r) for r in earlier.results]
            assert (
                any(
                    a.kind is AttentionKind.INVALID_PAYMENT_RESULT
                    and "gateway holds" in (a.detail or "")
                    for a in self.cart.attention[len(before.attention) :]
                )
                or not outcome
                or repeat
            )

    @precondition(lambda self: self.cart.current_attempt_id is not None)
    @rule(
        status=st.sampled_from(
            [
                PaymentStatus.SUCCEEDED,
                PaymentStatus.SUCCEEDED,
                PaymentStatus.PENDING,
                PaymentStatus.FAILED,
                PaymentStatus.EXPIRED,
            ]
        )
    )
    def gateway_answers_the_current_attempt(self, status: PaymentStatus) -> None:
        assert self.cart.current_attempt_id is not None
        self._result(PaymentResultReported(self.cart.current_attempt_id, status, 1000))

    @precondition(lambda self: self.cart.current_attempt_id is not None)
    @rule(
        how=st.sampled_from(["exact", "exact", "short", "over", "due", "tiny"]),
        other_currency=st.sampled_from([False, False, False, True]),
    )
    def gateway_pays_the_current_attempt(self, how: str, other_currency: bool) -> None:
        """Money-focused: a success for the current attempt whose amount is the cart's
        total, short of it, over it, what is still due, or a token amount."""
        assert self.cart.current_attempt_id is not None
        total = self.cart.order.total if self.cart.order else self.cart.total
        due = total - (self.cart.order.amount_paid if self.cart.order else 0)
        amount = {
            "exact": total,
            "short": max(total - 1, 0),
            "over": total + 1,
            "due": max(due, 0),
            "tiny": 1,
        }[how]
        currency = "USD" if other_currency and self.cart.currency != "USD" else None
        self._result(
            PaymentResultReported(
                self.cart.current_attempt_id, PaymentStatus.SUCCEEDED, amount, currency
            )
        )

    @precondition(lambda self: self.cart.state is CartState.PAYMENT_PENDING)
    @rule(lines=valid_lines.filter(bool))
    def customer_changes_the_cart_during_payment(self, lines: list[CartLine]) -> None:
        """Back from the gateway, the customer changes the cart (the attempt stays)."""
        before, outcome = self._apply(CartUpdated(lines, self.cart.currency or "EUR"))
        assert outcome is True
        assert self.cart.state is CartState.ACTIVE
        if lines != before.lines:
            assert self.cart.contents_version == before.contents_version + 1

    def _result(self, event: PaymentResultReported) -> None:
        """Apply a payment result and check it against the model of the spec."""
        attempt_id, status = event.attempt_id, event.status
        before, outcome = self._apply(event)
        assert isinstance(outcome, bool), "a payment result is never refused"
        new = self.cart.attention[len(before.attention) :]
        if not _valid_result(event):
            # Recorded for an admin (once: the same unreadable payload again is a repeat).
            assert [a.kind for a in new] in ([AttentionKind.INVALID_PAYMENT_RESULT], [])
            assert outcome is bool(new)
            assert self.cart.payments == before.payments
            assert self.cart.state is before.state and self.cart.order == before.order
            return
        status = PaymentStatus(status)
        prev = before.attempt(attempt_id)
        if prev is not None and status in prev.results:
            # A repeat is idempotent; a success repeated with another amount is flagged.
            if (
                status is PaymentStatus.SUCCEEDED
                and prev.succeeded_amount is not None
                and event.currency in ISO_4217
                and event.currency != prev.succeeded_currency
            ):
                # ... and one in another currency too (the money is not counted twice).
                assert outcome is True
                assert [a.kind for a in new] == [AttentionKind.PAYMENT_CURRENCY_MISMATCH]
            elif (
                status is PaymentStatus.SUCCEEDED
                and prev.succeeded_amount is not None
                and event.amount != prev.succeeded_amount
            ):
                assert outcome is True
                assert [a.kind for a in new] == [AttentionKind.AMOUNT_MISMATCH]
            else:
                assert outcome is False
            assert self.cart.payments == before.payments
            return
        event, dropped = _sanitized(event)
        invalid = [a for a in new if a.kind is AttentionKind.INVALID_PAYMENT_RESULT]
        assert len(invalid) == dropped, "each bad detail is shown to an admin"
        assert outcome is True
        attempt = self.cart.attempt(attempt_id)
        assert attempt is not None
        assert attempt.results == [*(prev.results if prev else []), status]
        new_kinds = [a.kind for a in new if a.kind is not AttentionKind.INVALID_PAYMENT_RESULT]
        if prev is not None and prev.status is PaymentStatus.SUCCEEDED:
            # After a success: a gateway success confirms an admin's confirmation (its
            # amount counts); a negative result is recorded, and flagged if an admin had
            # confirmed the payment; nothing else changes.
            assert attempt.status is PaymentStatus.SUCCEEDED
            assert self.cart.state is before.state
            confirmed_only = (
                prev.confirmed_by is not None and PaymentStatus.SUCCEEDED not in prev.results
            )
            if status is PaymentStatus.SUCCEEDED and confirmed_only:
                if event.currency is not None and event.currency != prev.succeeded_currency:
                    # The gateway's currency counts over the one the admin assumed.
                    assert new_kinds == [AttentionKind.PAYMENT_CURRENCY_MISMATCH]
                    assert attempt.succeeded_currency == event.currency
                else:
                    differs = event.amount != prev.succeeded_amount
                    assert new_kinds == ([AttentionKind.AMOUNT_MISMATCH] if differs else [])
                assert attempt.succeeded_amount == event.amount
            elif status in NEGATIVE_PAYMENT_STATUSES and confirmed_only:
                assert new_kinds == [AttentionKind.CONFIRMED_PAYMENT_FAILED]
                assert self.cart.order == before.order
            else:
                assert new_kinds == []
                assert self.cart.order == before.order
            return
        assert attempt.status is status
        is_current = before.current_attempt_id in (None, attempt_id)
        if status is PaymentStatus.SUCCEEDED:
            self._check_success(before, prev, event, new_kinds)
            return
        assert new_kinds == []
        if (
            status is PaymentStatus.PENDING
            and is_current
            and before.lines
            and before.state
            in (
                CartState.ACTIVE,
                CartState.CHECKOUT,
                CartState.PAYMENT_PENDING,
                CartState.ABANDONED,
            )
        ):
            if self.policy.process_pending_payments:
                assert self.cart.state is CartState.ORDERED
                order = self.cart.order
                assert order is not None and order.source is OrderSource.PENDING_PAYMENT
            else:
                assert self.cart.state is CartState.LOCKED
                assert self.cart.lock_reason is LockReason.PAYMENT_PENDING
            return
        assert self.cart.order == before.order, "only a success or pending makes an order"
        if (
            status in NEGATIVE_PAYMENT_STATUSES
            and is_current
            and before.state is CartState.PAYMENT_PENDING
        ):
            assert self.cart.state is CartState.CHECKOUT
        else:
            assert self.cart.state is before.state

    def _check_success(
        self,
        before: Cart,
        prev: PaymentAttempt | None,
        event: PaymentResultReported,
        new_kinds: Sequence[AttentionKind],
    ) -> None:
        """The money rules of a success: the order, its paid flag and every flag."""
        cart = self.cart
        attempt = cart.attempt(event.attempt_id)
        assert attempt is not None
        amount = event.amount
        currency = event.currency or (prev.currency if prev else None) or before.currency
        assert attempt.succeeded_amount == amount and attempt.succeeded_currency == currency
        hypothesis_event(f"success in {before.state}")
        foreign = before.currency is not None and currency != before.currency
        changed = (
            attempt.contents_version is not None
            and attempt.contents_version != cart.contents_version
        )
        currency_flag = [AttentionKind.PAYMENT_CURRENCY_MISMATCH] if foreign else []
        if before.state.is_final:
            assert cart.state is before.state and cart.order is None
            assert new_kinds == [AttentionKind.PAID_AFTER_CLOSE]
            assert cart.attention[-1].attempt_id == event.attempt_id
            return
        if before.order is None:
            if not before.lines:
                hypothesis_event("success without a cart")
                assert cart.order is None and cart.state is before.state
                assert new_kinds == [*currency_flag, AttentionKind.PAYMENT_WITHOUT_CART]
                return
            assert cart.state is CartState.ORDERED
            order = cart.order
            assert order is not None and order.source is OrderSource.ONLINE_PAYMENT
            assert order.total == before.total and order.created_at == self.now
            assert cart.current_attempt_id == event.attempt_id
            due = order.total
        else:
            due = before.order.total - before.order.amount_paid
            if due <= 0:
                assert new_kinds == [*currency_flag, AttentionKind.POSSIBLE_DOUBLE_CHARGE]
                return
            order = cart.order
            assert order is not None
        counted = not foreign
        expected = list(currency_flag)
        if counted and amount != due:
            hypothesis_event("amount mismatch")
            expected.append(AttentionKind.AMOUNT_MISMATCH)
            assert cart.attention[-1 - changed].expected_amount == due
        if changed:
            hypothesis_event("cart changed during payment")
            expected.append(AttentionKind.CART_CHANGED_DURING_PAYMENT)
        assert new_kinds == expected
        before_paid = before.order.amount_paid if before.order else paid_in(before, before.currency)
        assert order.amount_paid == before_paid + (amount if counted else 0)
        assert order.paid is (order.amount_paid >= order.total)

    # ---- admin

    @rule(status=st.sampled_from([ORDER_STATUS_PROCESSED, ORDER_STATUS_OPEN, "C"]))
    def admin_confirms(self, status: str) -> None:
        before, outcome = self._apply(ConfirmCart(admin="root", status=status))
        if before.state is not CartState.LOCKED:
            assert outcome is ADMIN_REFUSAL[before.state]
            return
        if not before.lines:
            assert outcome is ErrorCode.CART_EMPTY
            return
        if status == "C":
            assert outcome is ErrorCode.INVALID_STATUS
            return
        assert outcome is True
        order = self.cart.order
        assert order is not None and order.source is OrderSource.ADMIN_CONFIRMATION
        current = before.attempt(before.current_attempt_id or "")
        usable = current is not None and current.status in (
            PaymentStatus.STARTED,
            PaymentStatus.PENDING,
        )
        if status == ORDER_STATUS_PROCESSED:
            # The admin saw the payment: the current attempt (or a manual payment of the
            # total) is recorded as paid, by them.
            if usable:
                assert current is not None
                confirmed = self.cart.attempt(current.attempt_id)
                assert confirmed is not None and confirmed.succeeded_amount == current.amount
            else:
                confirmed = self.cart.payments[-1]
                assert confirmed.method is PaymentMethod.MANUAL
                assert confirmed.succeeded_amount == before.total
            assert confirmed.status is PaymentStatus.SUCCEEDED
            assert confirmed.confirmed_by == "root"
            assert order.attempt_id == confirmed.attempt_id
            kinds = {a.kind for a in self.cart.attention}
            if confirmed.succeeded_currency != order.currency:
                assert AttentionKind.PAYMENT_CURRENCY_MISMATCH in kinds
            elif confirmed.succeeded_amount != order.total:
                assert AttentionKind.AMOUNT_MISMATCH in kinds
        else:
            assert order.attempt_id == before.current_attempt_id
            assert self.cart.payments == before.payments
        assert order.paid is (order.amount_paid >= order.total)

    @rule(everything=st.booleans())
    def admin_resolves(self, everything: bool) -> None:
        open_ids = [a.id for a in self.cart.attention if a.is_open]
        items = None if everything or not open_ids else open_ids[:1]
        before, outcome = self._apply(ResolveAttention(admin="root", note="done", items=items))
        if not open_ids:
            assert outcome is ErrorCode.NOTHING_TO_RESOLVE
            return
        assert outcome is True
        resolved = open_ids if items is None else items
        for item in self.cart.attention:
            if item.id in resolved:
                assert not item.is_open and item.resolved_by == "root"
                assert item.resolution == "done" and item.resolved_at == self.now
        assert self.cart.state is before.state and self.cart.order == before.order

    @rule(payload=st.sampled_from(["not json", "[1, 2]", '{"status": "SUCCEEDED"}']))
    def gateway_sends_something_unreadable(self, payload: str) -> None:
        event = PaymentResultUnreadable(problem="unreadable", excerpt=payload)
        before, outcome = self._apply(event)
        new = self.cart.attention[len(before.attention) :]
        assert [a.kind for a in new] in ([AttentionKind.INVALID_PAYMENT_RESULT], [])
        assert outcome is bool(new), "kept once, never dropped"
        assert self.cart.payments == before.payments and self.cart.state is before.state

    @rule(really=st.sampled_from([True, False, False, False]))
    def cancellation_requested(self, really: bool) -> None:
        if not really:  # it deletes: not too often, or little else gets tested
            return
        before, outcome = self._apply(CancellationRequested())
        assert outcome is True, "recorded, whatever the state"
        assert self.cart.journal[-1].kind in (
            JournalKind.CANCELLATION_REQUESTED,
            JournalKind.CART_DELETED,
        )
        if before.state in (CartState.ORDERED, CartState.EXPIRED, CartState.DELETED):
            assert self.cart.state is before.state and self.cart.order == before.order
        else:
            assert self.cart.state is CartState.DELETED

    @rule(note=notes, admin=st.sampled_from(["root"] * 6 + ["ro\x00ot", "\ud800"]))
    def admin_unlocks(self, note: str | None, admin: str) -> None:
        before, outcome = self._apply(UnlockCart(admin=admin, note=note))
        if unsafe(admin) or unsafe(note, multiline=True):
            assert outcome is ErrorCode.INVALID_TEXT, "checked before the cart's state"
        elif note is not None and not note.strip():
            assert outcome is ErrorCode.INVALID_INPUT
        elif before.state is not CartState.LOCKED:
            assert outcome is ADMIN_REFUSAL[before.state]
        else:
            assert outcome is True
            assert self.cart.state is CartState.ACTIVE
            assert self.cart.lines == before.lines

    @rule(really=st.sampled_from([True, False, False]))
    def admin_deletes(self, really: bool) -> None:
        if not really:  # deleting is final: not too often, or little else gets tested
            return
        before, outcome = self._apply(DeleteCart(admin="root"))
        if before.state is CartState.ORDERED:
            assert outcome is ErrorCode.ALREADY_ORDERED
        elif before.state is CartState.EXPIRED:
            assert outcome is ErrorCode.CART_EXPIRED
        elif before.state is CartState.DELETED:
            assert outcome is False
        else:
            assert outcome is True
            assert self.cart.state is CartState.DELETED

    # ---- order numbers

    @rule(number=st.integers(-1, 50))
    def order_number_assigned(self, number: int) -> None:
        before, outcome = self._apply(OrderNumberAssigned(number))
        if number <= 0:
            assert outcome is ErrorCode.INVALID_INPUT
        elif before.order is None or before.order.number is not None:
            assert outcome is False
        else:
            assert outcome is True
            assert self.cart.order is not None and self.cart.order.number == number

    # ---- invariants

    @invariant()
    def cart_is_consistent(self) -> None:
        check_static_invariants(self.cart, self.policy)
        assert self.current == self.cart, "the cart changed outside _apply and _tick"
        check_history_invariants(self.prev, self.cart)
        if self.first is not None:
            check_history_invariants(self.first, self.cart)
        elif self.cart.version > 0:
            self.first = self.current
        self.prev = self.current


TestCartMachine = CartMachine.TestCase
TestCartMachine.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --------------------------------------------------------------------------- replay


@dataclass
class Wait:
    seconds: int
    tick: bool


def _event_strategy() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(CartUpdated, lines=lines_strategy, currency=currencies),
        st.builds(CustomerIdentified, customer=customers),
        st.builds(CustomerVisited, page=st.sampled_from([None, "/"])),
        st.just(CheckoutStarted()),
        st.builds(
            PaymentStarted,
            attempt_id=st.sampled_from(ATTEMPTS),
            method=st.sampled_from(list(PaymentMethod)),
            gateway=st.just("stripe"),
            amount=st.sampled_from([1000, 500, 0]),
        ),
        st.builds(
            PaymentResultReported,
            attempt_id=st.sampled_from([*ATTEMPTS, "zz"]),
            status=result_statuses,
            amount=st.sampled_from([1000, 500]),
        ),
        st.builds(ConfirmCart, status=st.sampled_from([ORDER_STATUS_PROCESSED, ORDER_STATUS_OPEN])),
        st.just(UnlockCart()),
        st.just(DeleteCart()),
        st.builds(OrderNumberAssigned, number=st.integers(1, 9)),
        st.builds(Wait, seconds=seconds, tick=st.booleans()),
    )


def _run(cart: Cart, steps: list[Any], policy: CartPolicy, start: datetime) -> datetime:
    now = start
    for step in steps:
        if isinstance(step, Wait):
            now += timedelta(seconds=step.seconds)
            if step.tick:
                tick(cart, now, policy)
            continue
        with contextlib.suppress(CartRefused):
            apply(cart, copy.deepcopy(step), now, policy)
        check_static_invariants(cart, policy)
    return now


def _round_trip(cart: Cart) -> Cart:
    """What continue-as-new does to the carried cart: the default payload converter."""
    from temporalio.converter import DataConverter

    converter = DataConverter.default.payload_converter
    (payload,) = converter.to_payloads([cart])
    (back,) = converter.from_payloads([payload], [Cart])
    assert isinstance(back, Cart)
    return back


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(_event_strategy(), max_size=30),
    split=st.integers(0, 30),
    policy=st.sampled_from(POLICIES),
)
def test_replay_is_deterministic_and_survives_continue_as_new(
    steps: list[Any], split: int, policy: CartPolicy
) -> None:
    """Temporal replays the workflow: the same events must give the same cart, also when
    the cart is carried across continue-as-new through the payload converter."""
    first = Cart(shop_id="shop-1", cart_id="cart-1")
    _run(first, steps, policy, T0)

    second = Cart(shop_id="shop-1", cart_id="cart-1")
    split = min(split, len(steps))
    now = _run(second, steps[:split], policy, T0)
    carried = _round_trip(second)
    assert carried == second
    _run(carried, steps[split:], policy, now)  # the new run goes on where the old one ended
    assert carried == first


def test_round_trip_of_a_full_cart() -> None:
    shop = in_locked()
    shop.later(MINUTE).do(ConfirmCart(status=ORDER_STATUS_OPEN), OrderNumberAssigned(5))
    shop.later(MINUTE).do(succeeded("a1"), succeeded("a2"))
    cart = _round_trip(shop.cart)
    assert cart == shop.cart
    assert cart.state is CartState.ORDERED and isinstance(cart.order, Order)
    assert isinstance(cart.payments[0], PaymentAttempt)
    assert cart.payments[0].status is PaymentStatus.SUCCEEDED
    assert cart.order.created_at.tzinfo is not None
