"""Payments and orders: the money rules of a cart.

- A payment attempt belongs to the cart as it was when the attempt started: it records the
  cart's total and contents version.
- A succeeded payment is never lost. In an open cart with lines it creates the order; in a
  cart without lines (or an id that never existed) it is recorded for an admin
  (``payment_without_cart``); in an expired or deleted cart, too (``paid_after_close``).
- An order is ``paid`` exactly when the succeeded payments in its currency cover its total
  (``settle``). A success whose amount differs from what was due is flagged
  (``amount_mismatch``, with both amounts), and so is one for an attempt whose cart changed
  after it started (``cart_changed_during_payment``); a success for an order already paid
  is a ``possible_double_charge``.
- Results are idempotent by attempt and status; a late negative result never undoes a
  success; a result that cannot be read is kept for an admin, never dropped.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from workflows.codes import (
    ISO_4217,
    NEGATIVE_PAYMENT_STATUSES,
    ORDER_STATUS_OPEN,
    ORDER_STATUS_PROCESSED,
    AttentionKind,
    CartState,
    JournalKind,
    LockReason,
    OrderSource,
    PaymentMethod,
    PaymentStatus,
)
from workflows.events import (
    ConfirmCart,
    PaymentResultReported,
    PaymentResultUnreadable,
    PaymentStarted,
)
from workflows.journal import (
    CUSTOMER,
    GATEWAY,
    SYSTEM,
    admin_actor,
    journal,
    raise_attention,
)
from workflows.parsing import mask_card_numbers
from workflows.state import Cart, Order, PaymentAttempt
from workflows.timers import lock
from workflows.validation import (
    MAX_ATTEMPTS,
    PAYMENT_RESULT_DETAILS,
    CartRefused,
    check_payment_result_core,
    check_payment_result_detail,
)

_RESULT_JOURNAL = {
    PaymentStatus.SUCCEEDED: JournalKind.PAYMENT_SUCCEEDED,
    PaymentStatus.FAILED: JournalKind.PAYMENT_FAILED,
    PaymentStatus.PENDING: JournalKind.PAYMENT_PENDING,
    PaymentStatus.CANCELLED: JournalKind.PAYMENT_CANCELLED,
    PaymentStatus.EXPIRED: JournalKind.PAYMENT_EXPIRED,
}


def customer_active(cart: Cart, now: datetime) -> None:
    """Customer activity: an abandoned cart becomes active again."""
    cart.last_activity_at = now
    if cart.state is CartState.ABANDONED:
        cart.state = CartState.ACTIVE
        journal(cart, now, JournalKind.CUSTOMER_RETURNED, CUSTOMER)


# --------------------------------------------------------------------------- starting


def payment_started(cart: Cart, event: PaymentStarted, now: datetime) -> bool:
    if cart.attempt(event.attempt_id) is not None:
        return False  # the same start again: nothing new
    method = PaymentMethod(event.method)
    cart.payments.append(
        PaymentAttempt(
            attempt_id=event.attempt_id,
            status=PaymentStatus.STARTED,
            amount=event.amount,
            method=method,
            gateway=event.gateway,
            currency=cart.currency,
            started_at=now,
            cart_total=cart.total,
            contents_version=cart.contents_version,
        )
    )
    cart.current_attempt_id = event.attempt_id
    journal(
        cart,
        now,
        JournalKind.PAYMENT_STARTED,
        CUSTOMER,
        f"{event.attempt_id} {method} {event.gateway} {event.amount} of {cart.total}",
    )
    customer_active(cart, now)
    if method is PaymentMethod.OFFLINE:
        create_order(cart, now, source=OrderSource.OFFLINE_PAYMENT, attempt_id=event.attempt_id)
    else:
        cart.state = CartState.PAYMENT_PENDING
        cart.payment_started_at = now
    return True


# --------------------------------------------------------------------------- results


def payment_result_unreadable(cart: Cart, event: PaymentResultUnreadable, now: datetime) -> bool:
    detail = f"{event.problem}; received: {event.excerpt}"
    for item in cart.open_attention:
        if item.kind is AttentionKind.INVALID_PAYMENT_RESULT and item.detail == detail:
            return False  # the same unreadable payload again (delivered at least once)
    journal(
        cart,
        now,
        JournalKind.PAYMENT_RESULT_UNREADABLE,
        GATEWAY,
        mask_card_numbers(event.problem),
    )
    raise_attention(
        cart,
        now,
        AttentionKind.INVALID_PAYMENT_RESULT,
        attempt_id=event.attempt_id,
        amount=event.amount,
        detail=detail,
    )
    return True


def _usable(cart: Cart, event: PaymentResultReported, now: datetime) -> PaymentResultReported:
    """The result to act on: a malformed optional detail (currency, card digits, gateway)
    is dropped and shown to an admin, so it never costs a succeeded payment its order."""
    usable = event
    for name in PAYMENT_RESULT_DETAILS:
        try:
            check_payment_result_detail(name, getattr(event, name))
        except CartRefused as refused:
            usable = replace(usable, **{name: None})  # type: ignore[arg-type]
            raise_attention(
                cart,
                now,
                AttentionKind.INVALID_PAYMENT_RESULT,
                attempt_id=event.attempt_id,
                amount=event.amount,
                detail=f"{refused.message}; the result was applied without it",
            )
    return usable


def payment_result(cart: Cart, event: PaymentResultReported, now: datetime) -> bool:
    """Apply a gateway's result (never refused; see the module's rules)."""
    try:
        check_payment_result_core(event)
    except CartRefused as refused:
        # Built in Python with a bad core (the JSON path never gets here: see parsing).
        return payment_result_unreadable(
            cart,
            PaymentResultUnreadable(
                problem=refused.message,
                excerpt=mask_card_numbers(repr(event))[:500],
                attempt_id=None,
            ),
            now,
        )
    status = PaymentStatus(event.status)
    attempt = cart.attempt(event.attempt_id)
    if attempt is not None and status in attempt.results:
        return _repeated_result(cart, attempt, event, now)
    event = _usable(cart, event, now)
    if attempt is None:
        if len(cart.payments) >= MAX_ATTEMPTS:
            raise_attention(
                cart,
                now,
                AttentionKind.TOO_MANY_PAYMENT_ATTEMPTS,
                attempt_id=event.attempt_id,
                amount=event.amount,
                detail=f"{status} for a new attempt beyond the {MAX_ATTEMPTS} kept"
                f" ({event.currency or cart.currency or 'no currency'})",
            )
            return True
        # The result came before its "payment started" (or the start was never reported).
        # It starts as ``started`` so that the result below is decisive.
        attempt = PaymentAttempt(
            attempt_id=event.attempt_id,
            status=PaymentStatus.STARTED,
            amount=event.amount,
            gateway=event.gateway,
            currency=event.currency or cart.currency,
        )
        cart.payments.append(attempt)
        if cart.current_attempt_id is None:
            cart.current_attempt_id = event.attempt_id
    attempt.results.append(status)
    attempt.result_at = now
    if event.card_last4:
        attempt.card_last4 = event.card_last4
    if event.gateway and not attempt.gateway:
        attempt.gateway = event.gateway
    detail = f"{event.attempt_id} {event.amount}" + (f" {event.currency}" if event.currency else "")

    if attempt.status is PaymentStatus.SUCCEEDED:
        _after_success(cart, attempt, event, status, detail, now)
        return True
    attempt.status = status
    journal(cart, now, _RESULT_JOURNAL[status], GATEWAY, detail)

    is_current = cart.current_attempt_id == event.attempt_id
    if status is PaymentStatus.SUCCEEDED:
        attempt.succeeded_amount = event.amount
        attempt.succeeded_currency = event.currency or attempt.currency or cart.currency
        _payment_succeeded(cart, attempt, now)
    elif status is PaymentStatus.PENDING:
        # A pending payment for a cart without lines makes no order and locks nothing:
        # there is nothing to sell (a later success is flagged, never an empty order).
        if is_current and cart.lines and cart.state.is_open and cart.state is not CartState.LOCKED:
            if cart.policy.process_pending_payments:
                create_order(
                    cart, now, source=OrderSource.PENDING_PAYMENT, attempt_id=attempt.attempt_id
                )
            else:
                lock(cart, now, LockReason.PAYMENT_PENDING)
    elif status in NEGATIVE_PAYMENT_STATUSES and (
        is_current and cart.state is CartState.PAYMENT_PENDING
    ):
        # The customer may try again (CS-Cart: a negative answer creates no order).
        cart.state = CartState.CHECKOUT
        cart.last_activity_at = now
    return True


def _repeated_result(
    cart: Cart, attempt: PaymentAttempt, event: PaymentResultReported, now: datetime
) -> bool:
    """The same status again for an attempt (webhooks are delivered at least once)."""
    if event.status is not PaymentStatus.SUCCEEDED or attempt.succeeded_amount is None:
        return False
    recorded = attempt.succeeded_amount
    if (
        event.currency in ISO_4217  # (a malformed one is no news: ignored as before)
        and event.currency != attempt.succeeded_currency
    ):
        _differing_success(
            cart,
            now,
            attempt,
            event,
            AttentionKind.PAYMENT_CURRENCY_MISMATCH,
            f"succeeded again in {event.currency} (recorded {attempt.succeeded_currency})",
            f"in another currency: {event.amount} {event.currency}, recorded"
            f" {recorded} {attempt.succeeded_currency}",
        )
        return True
    if event.amount != recorded:
        _differing_success(
            cart,
            now,
            attempt,
            event,
            AttentionKind.AMOUNT_MISMATCH,
            f"succeeded again with {event.amount} (recorded {recorded})",
            f"with another amount: {event.amount}, recorded {recorded}",
            expected_amount=recorded,
        )
        return True
    return False


def _differing_success(
    cart: Cart,
    now: datetime,
    attempt: PaymentAttempt,
    event: PaymentResultReported,
    kind: AttentionKind,
    ignored: str,
    difference: str,
    expected_amount: int | None = None,
) -> None:
    """A repeated success that differs from the one recorded: the recorded one stands,
    the new one is journaled as ignored and flagged for an admin."""
    journal(cart, now, JournalKind.PAYMENT_RESULT_IGNORED, GATEWAY, ignored)
    raise_attention(
        cart,
        now,
        kind,
        attempt_id=attempt.attempt_id,
        amount=event.amount,
        expected_amount=expected_amount,
        detail=f"attempt {attempt.attempt_id} reported succeeded again {difference}",
    )


def _after_success(
    cart: Cart,
    attempt: PaymentAttempt,
    event: PaymentResultReported,
    status: PaymentStatus,
    detail: str,
    now: datetime,
) -> None:
    """A result for an attempt that already succeeded (by the gateway or an admin)."""
    confirmed = attempt.confirmed_by is not None
    gateway_success = PaymentStatus.SUCCEEDED in attempt.results[:-1]
    if status is PaymentStatus.SUCCEEDED and confirmed and not gateway_success:
        # The gateway confirms what an admin confirmed: the gateway's amount counts.
        journal(cart, now, JournalKind.PAYMENT_SUCCEEDED, GATEWAY, detail)
        if event.currency is not None and event.currency != attempt.succeeded_currency:
            # The gateway's currency counts: the admin's confirmation assumed the cart's.
            raise_attention(
                cart,
                now,
                AttentionKind.PAYMENT_CURRENCY_MISMATCH,
                attempt_id=attempt.attempt_id,
                amount=event.amount,
                detail=f"the gateway reports {event.amount} {event.currency} for attempt"
                f" {attempt.attempt_id}, which {attempt.confirmed_by} confirmed as"
                f" {attempt.succeeded_amount} {attempt.succeeded_currency}",
            )
            attempt.succeeded_amount = event.amount
            attempt.succeeded_currency = event.currency
            if cart.order is not None:
                settle(cart, now)
            return
        if event.amount != attempt.succeeded_amount:
            raise_attention(
                cart,
                now,
                AttentionKind.AMOUNT_MISMATCH,
                attempt_id=attempt.attempt_id,
                amount=event.amount,
                expected_amount=attempt.succeeded_amount,
                detail=f"the gateway reports {event.amount} for attempt {attempt.attempt_id},"
                f" which {attempt.confirmed_by} confirmed as {attempt.succeeded_amount}",
            )
            attempt.succeeded_amount = event.amount
            if cart.order is not None:
                settle(cart, now)
        return
    # A late failed/cancelled/expired/pending never undoes a success.
    journal(cart, now, JournalKind.PAYMENT_RESULT_IGNORED, GATEWAY, f"{status} {detail}")
    if status in NEGATIVE_PAYMENT_STATUSES and confirmed and not gateway_success:
        raise_attention(
            cart,
            now,
            AttentionKind.CONFIRMED_PAYMENT_FAILED,
            attempt_id=attempt.attempt_id,
            amount=attempt.succeeded_amount,
            detail=f"the gateway reports {status} for attempt {attempt.attempt_id}, which"
            f" {attempt.confirmed_by} confirmed as paid",
        )


def _payment_succeeded(cart: Cart, attempt: PaymentAttempt, now: datetime) -> None:
    amount = attempt.succeeded_amount or 0
    if cart.state.is_final:
        raise_attention(
            cart,
            now,
            AttentionKind.PAID_AFTER_CLOSE,
            attempt_id=attempt.attempt_id,
            amount=amount,
            detail=f"a payment succeeded after the cart was {cart.state}",
        )
        return
    if (
        cart.currency is not None
        and attempt.succeeded_currency is not None
        and attempt.succeeded_currency != cart.currency
    ):
        raise_attention(
            cart,
            now,
            AttentionKind.PAYMENT_CURRENCY_MISMATCH,
            attempt_id=attempt.attempt_id,
            amount=amount,
            detail=f"paid in {attempt.succeeded_currency}, the cart is in {cart.currency}",
        )
    order = cart.order
    if order is None:
        if not cart.lines:
            raise_attention(
                cart,
                now,
                AttentionKind.PAYMENT_WITHOUT_CART,
                attempt_id=attempt.attempt_id,
                amount=amount,
                detail="a payment succeeded for a cart without lines: no order was created",
            )
            return
        create_order(cart, now, source=OrderSource.ONLINE_PAYMENT, attempt_id=attempt.attempt_id)
        cart.current_attempt_id = attempt.attempt_id
        order = cart.order
        assert order is not None
        due = order.total
    else:
        due = order.total - order.amount_paid
        if due <= 0:
            raise_attention(
                cart,
                now,
                AttentionKind.POSSIBLE_DOUBLE_CHARGE,
                attempt_id=attempt.attempt_id,
                amount=amount,
                expected_amount=0,
                detail=f"the order was already paid ({order.amount_paid} of {order.total},"
                f" attempt {order.attempt_id})",
            )
            settle(cart, now)
            return
    _flag_success(cart, attempt, due, now)
    settle(cart, now, attempt_id=attempt.attempt_id)


def _flag_success(cart: Cart, attempt: PaymentAttempt, due: int, now: datetime) -> None:
    """Flag what an admin must look at in a success that counts towards the order."""
    amount = attempt.succeeded_amount or 0
    currency = cart.order.currency if cart.order else None
    counted = attempt.succeeded_currency == currency
    if not counted and attempt.confirmed_by is not None:
        # (A gateway's success in another currency is flagged where it is recorded.)
        raise_attention(
            cart,
            now,
            AttentionKind.PAYMENT_CURRENCY_MISMATCH,
            attempt_id=attempt.attempt_id,
            amount=amount,
            detail=f"{attempt.confirmed_by} confirmed attempt {attempt.attempt_id} in"
            f" {attempt.succeeded_currency}; the order is in {currency}: it does not count",
        )
    if counted and amount != due:
        raise_attention(
            cart,
            now,
            AttentionKind.AMOUNT_MISMATCH,
            attempt_id=attempt.attempt_id,
            amount=amount,
            expected_amount=due,
            detail=f"paid {amount}, {'due' if cart.order and cart.order.amount_paid else 'total'}"
            f" {due}",
        )
    if attempt.contents_version is not None and attempt.contents_version != cart.contents_version:
        raise_attention(
            cart,
            now,
            AttentionKind.CART_CHANGED_DURING_PAYMENT,
            attempt_id=attempt.attempt_id,
            amount=amount,
            expected_amount=cart.total,
            detail=f"the cart changed after attempt {attempt.attempt_id} started: total"
            f" {attempt.cart_total} then, {cart.total} now",
        )


def paid_amount(cart: Cart, currency: str | None) -> int:
    """The succeeded payments of the cart in ``currency``, less the refunds recorded."""
    return sum(
        -(attempt.succeeded_amount or 0) if attempt.refund else attempt.succeeded_amount or 0
        for attempt in cart.payments
        if attempt.status is PaymentStatus.SUCCEEDED and attempt.succeeded_currency == currency
    )


def settle(cart: Cart, now: datetime, attempt_id: str | None = None, actor: str = GATEWAY) -> None:
    """Recompute what the order has been paid: ``paid`` exactly when the succeeded
    payments in its currency cover its total (``P`` then, ``O`` otherwise; in the order
    phase the status is the admins', or ``workflows.order_phase.payments_changed``'s).
    The order records the attempt that completed its payment."""
    order = cart.order
    assert order is not None
    order.amount_paid = paid_amount(cart, order.currency)
    covered = order.amount_paid >= order.total
    if covered and not order.paid:
        order.paid = True
        order.paid_at = now
        if not order.managed:
            order.status = ORDER_STATUS_PROCESSED
        order.attempt_id = (
            attempt_id
            or _covering_attempt(cart, order.currency, order.total)
            or order.attempt_id  # a free order: covered by no payment
        )
        if order.created_at != now:
            journal(
                cart,
                now,
                JournalKind.ORDER_PAID,
                actor,
                f"{order.amount_paid} of {order.total} ({order.attempt_id})",
            )
    elif not covered and order.paid:
        order.paid = False
        order.paid_at = None
        if not order.managed:
            order.status = ORDER_STATUS_OPEN
    if order.managed and order.statuses:
        from workflows.order_phase import payments_changed

        payments_changed(cart)


def _covering_attempt(cart: Cart, currency: str | None, total: int) -> str | None:
    """The succeeded attempt whose amount made the payments cover ``total`` (for good:
    a refund that uncovered it makes a later payment the one), else the last one."""
    paid = 0
    last = None
    covering = None
    for attempt in cart.payments:
        if attempt.status is not PaymentStatus.SUCCEEDED or attempt.succeeded_currency != currency:
            continue
        if attempt.refund:
            paid -= attempt.succeeded_amount or 0
            if paid < total:
                covering = None
            continue
        paid += attempt.succeeded_amount or 0
        last = attempt.attempt_id
        if covering is None and paid >= total:
            covering = attempt.attempt_id
    return covering or last


# --------------------------------------------------------------------------- orders


def create_order(
    cart: Cart,
    now: datetime,
    *,
    source: OrderSource,
    attempt_id: str | None,
    managed: bool = False,
    total: int | None = None,
) -> None:
    cart.order = Order(
        status=ORDER_STATUS_OPEN,
        source=source,
        total=cart.total if total is None else total,
        currency=cart.currency,
        created_at=now,
        paid=False,
        attempt_id=attempt_id,
        managed=managed,
    )
    cart.state = CartState.ORDERED
    cart.ordered_at = now
    cart.lock_reason = None
    journal(cart, now, JournalKind.ORDER_CREATED, SYSTEM, f"{source} {cart.total}")
    settle(cart, now)


def confirm(cart: Cart, event: ConfirmCart, now: datetime) -> None:
    """An admin converts a locked cart into an order. ``P``: the admin saw the payment
    (the current attempt is confirmed as paid, or a manual payment of the total is
    recorded); ``O``: the order waits for its money."""
    actor = admin_actor(event.admin)
    journal(cart, now, JournalKind.CART_CONFIRMED, actor, event.note)
    attempt = cart.attempt(cart.current_attempt_id) if cart.current_attempt_id else None
    if attempt is not None and attempt.status not in (PaymentStatus.STARTED, PaymentStatus.PENDING):
        attempt = None
    due = cart.total
    if event.status == ORDER_STATUS_PROCESSED:
        if attempt is None:
            attempt = PaymentAttempt(
                attempt_id=f"manual-{cart.version + 1}",
                status=PaymentStatus.STARTED,
                amount=cart.total,
                method=PaymentMethod.MANUAL,
                gateway="admin",
                currency=cart.currency,
                started_at=now,
                cart_total=cart.total,
                contents_version=cart.contents_version,
            )
            cart.payments.append(attempt)
        attempt.status = PaymentStatus.SUCCEEDED
        attempt.succeeded_amount = attempt.amount
        attempt.succeeded_currency = attempt.currency or cart.currency
        attempt.confirmed_by = event.admin
        journal(
            cart,
            now,
            JournalKind.PAYMENT_CONFIRMED,
            actor,
            f"{attempt.attempt_id} {attempt.succeeded_amount}",
        )
    create_order(
        cart,
        now,
        source=OrderSource.ADMIN_CONFIRMATION,
        attempt_id=attempt.attempt_id if attempt else cart.current_attempt_id,
    )
    if event.status == ORDER_STATUS_PROCESSED and attempt is not None:
        _flag_success(cart, attempt, due, now)
        settle(cart, now, attempt_id=attempt.attempt_id)
