"""The cart's state machine: plain Python, no Temporal, no I/O, no clock.

``apply(cart, event, now, policy)`` checks an event against the cart and either refuses it
with ``CartRefused`` (leaving the cart untouched) or changes the cart in place.
``tick(cart, now, policy)`` applies every timer that is due. ``reschedule`` keeps the
cart's deadlines in step with its state; every transition calls it.

Rules that hold whatever the order of events (see ``tests/test_machine.py``):
- a succeeded payment is never lost: in an open cart it creates the order, in a closed
  one it is recorded as needing an admin;
- payment results are idempotent by attempt id and status, and a late negative result
  never undoes a success;
- a cart has at most one order, and its number is assigned once;
- the currency is fixed by the first update; refused events change nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta

from workflows.contract import (
    ADMIN_CONFIRM_STATUSES,
    ISO_4217,
    NEGATIVE_PAYMENT_STATUSES,
    ORDER_STATUS_OPEN,
    ORDER_STATUS_PROCESSED,
    PAYMENT_RESULT_STATUSES,
    AdminAction,
    Attention,
    AttentionKind,
    Cart,
    CartEvent,
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
    JournalEntry,
    JournalKind,
    LockReason,
    Order,
    OrderNumberAssigned,
    OrderSource,
    PaymentAttempt,
    PaymentMethod,
    PaymentResultReported,
    PaymentStarted,
    PaymentStatus,
    UnlockCart,
)

MAX_LINES = 200
MAX_QUANTITY = 100_000
MAX_AMOUNT = 10**12  # minor units
MAX_TEXT = 200

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_ATTEMPT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
# Syntax only: the edge (starter.client) validates deliverable form with email-validator.
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_LAST4_RE = re.compile(r"^[0-9]{4}$")
_TZ_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
_LOCALE_RE = re.compile(r"^[a-zA-Z]{2,3}([_-][A-Za-z0-9]{2,8})*$")

CUSTOMER = "customer"
GATEWAY = "gateway"
SYSTEM = "system"


class CartRefused(Exception):  # not "...Error": a refusal is an outcome, not a bug
    """The event was refused; the cart is unchanged."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- validation


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.match(value))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object, what: str, *, required: bool, code: ErrorCode) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise CartRefused(code, f"{what} must be a non-empty text of at most {MAX_TEXT} characters")


def check_currency(currency: object) -> str:
    if not isinstance(currency, str) or currency not in ISO_4217:
        raise CartRefused(
            ErrorCode.INVALID_CURRENCY, f"currency {currency!r} is not an ISO 4217 code"
        )
    return currency


def check_lines(lines: object) -> list[CartLine]:
    if not isinstance(lines, list):
        raise CartRefused(ErrorCode.INVALID_LINE, "lines must be a list")
    if len(lines) > MAX_LINES:
        raise CartRefused(ErrorCode.TOO_MANY_LINES, f"a cart holds at most {MAX_LINES} lines")
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, CartLine):
            raise CartRefused(ErrorCode.INVALID_LINE, "each line needs sku, name, quantity, price")
        _text(line.sku, "sku", required=True, code=ErrorCode.INVALID_LINE)
        _text(line.name, f"name of {line.sku}", required=True, code=ErrorCode.INVALID_LINE)
        if line.sku in seen:
            raise CartRefused(ErrorCode.DUPLICATE_SKU, f"sku {line.sku!r} appears twice")
        seen.add(line.sku)
        if not _is_int(line.quantity) or not 0 < line.quantity <= MAX_QUANTITY:
            raise CartRefused(
                ErrorCode.INVALID_QUANTITY,
                f"quantity of {line.sku!r} must be a whole number from 1 to {MAX_QUANTITY}",
            )
        if not _is_int(line.unit_price) or not 0 <= line.unit_price <= MAX_AMOUNT:
            raise CartRefused(
                ErrorCode.INVALID_PRICE,
                f"unit price of {line.sku!r} must be a whole number of minor units, 0 or more",
            )
    if sum(line.quantity * line.unit_price for line in lines) > MAX_AMOUNT:
        raise CartRefused(
            ErrorCode.INVALID_PRICE, f"the cart's total must not exceed {MAX_AMOUNT} minor units"
        )
    return lines


def check_customer(customer: object) -> CustomerInfo:
    if not isinstance(customer, CustomerInfo):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer details are missing")
    if not isinstance(customer.email, str) or not _EMAIL_RE.match(customer.email):
        raise CartRefused(ErrorCode.INVALID_EMAIL, f"{customer.email!r} is not an e-mail address")
    for what, value in (("name", customer.name), ("phone", customer.phone)):
        _text(value, what, required=False, code=ErrorCode.INVALID_CUSTOMER)
    if customer.customer_id is not None and not valid_id(customer.customer_id):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer_id is not a valid id")
    if customer.locale is not None and not (
        isinstance(customer.locale, str) and _LOCALE_RE.match(customer.locale)
    ):
        raise CartRefused(ErrorCode.INVALID_CUSTOMER, f"locale {customer.locale!r} is not valid")
    if customer.time_zone is not None and not (
        isinstance(customer.time_zone, str) and _TZ_RE.match(customer.time_zone)
    ):
        raise CartRefused(
            ErrorCode.INVALID_CUSTOMER, f"time zone {customer.time_zone!r} is not valid"
        )
    return customer


def check_amount(amount: object) -> int:
    if not _is_int(amount) or not 0 < amount <= MAX_AMOUNT:  # type: ignore[operator]
        raise CartRefused(
            ErrorCode.INVALID_AMOUNT, "amount must be a positive whole number of minor units"
        )
    return amount  # type: ignore[return-value]


def check_attempt_id(attempt_id: object) -> str:
    if not isinstance(attempt_id, str) or not _ATTEMPT_RE.match(attempt_id):
        raise CartRefused(ErrorCode.INVALID_PAYMENT, f"attempt id {attempt_id!r} is not valid")
    return attempt_id


def check_payment_result(event: PaymentResultReported) -> None:
    check_attempt_id(event.attempt_id)
    if event.status not in PAYMENT_RESULT_STATUSES:
        raise CartRefused(
            ErrorCode.INVALID_STATUS, f"{event.status!r} is not a payment result status"
        )
    if not _is_int(event.amount) or not 0 <= event.amount <= MAX_AMOUNT:
        raise CartRefused(ErrorCode.INVALID_AMOUNT, "amount must be whole minor units, 0 or more")
    if event.currency is not None:
        check_currency(event.currency)
    if event.card_last4 is not None and not (
        isinstance(event.card_last4, str) and _LAST4_RE.match(event.card_last4)
    ):
        raise CartRefused(ErrorCode.INVALID_PAYMENT, "card_last4 must be exactly four digits")
    if event.gateway is not None:
        _text(event.gateway, "gateway", required=False, code=ErrorCode.INVALID_PAYMENT)


def _refuse_storefront_change(cart: Cart) -> None:
    """Storefront changes are refused once a cart is locked, ordered, expired or deleted."""
    match cart.state:
        case CartState.LOCKED:
            raise CartRefused(ErrorCode.CART_LOCKED, "the cart is locked until an admin acts")
        case CartState.ORDERED:
            number = cart.order.number if cart.order else None
            suffix = f" (order {number})" if number else ""
            raise CartRefused(ErrorCode.ALREADY_ORDERED, f"the cart is already ordered{suffix}")
        case CartState.EXPIRED:
            raise CartRefused(ErrorCode.CART_EXPIRED, "the cart has expired")
        case CartState.DELETED:
            raise CartRefused(ErrorCode.CART_DELETED, "the cart was deleted")
        case _:
            return


def _refuse_closed(cart: Cart) -> None:
    if cart.state is CartState.EXPIRED:
        raise CartRefused(ErrorCode.CART_EXPIRED, "the cart has expired")
    if cart.state is CartState.DELETED:
        raise CartRefused(ErrorCode.CART_DELETED, "the cart was deleted")


def check(cart: Cart, event: CartEvent, policy: CartPolicy) -> None:
    """Raise ``CartRefused`` if ``event`` cannot be applied to ``cart``; change nothing."""
    match event:
        case CartUpdated():
            _refuse_storefront_change(cart)
            currency = check_currency(event.currency)
            if cart.currency is not None and currency != cart.currency:
                raise CartRefused(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"the cart's currency is {cart.currency}; {currency} is refused",
                )
            check_lines(event.lines)
            if event.customer_id is not None and not valid_id(event.customer_id):
                raise CartRefused(ErrorCode.INVALID_CUSTOMER, "customer_id is not a valid id")
        case CustomerIdentified():
            _refuse_storefront_change(cart)
            check_customer(event.customer)
        case CustomerVisited():
            _refuse_closed(cart)
            if event.page is not None:
                _text(event.page, "page", required=False, code=ErrorCode.INVALID_INPUT)
        case CheckoutStarted():
            _refuse_storefront_change(cart)
            if not cart.lines:
                raise CartRefused(ErrorCode.CART_EMPTY, "the cart is empty")
        case PaymentStarted():
            _refuse_storefront_change(cart)
            if not cart.lines:
                raise CartRefused(ErrorCode.CART_EMPTY, "the cart is empty")
            check_attempt_id(event.attempt_id)
            if event.method not in (PaymentMethod.ONLINE, PaymentMethod.OFFLINE):
                raise CartRefused(ErrorCode.INVALID_PAYMENT, "method must be online or offline")
            _text(event.gateway, "gateway", required=True, code=ErrorCode.INVALID_PAYMENT)
            check_amount(event.amount)
            if event.currency is not None and event.currency != cart.currency:
                raise CartRefused(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"the cart's currency is {cart.currency}; {event.currency} is refused",
                )
            known = cart.attempt(event.attempt_id)
            if known is not None and not _same_start(known, event):
                raise CartRefused(
                    ErrorCode.DUPLICATE_ATTEMPT,
                    f"payment attempt {event.attempt_id!r} is already known",
                )
        case PaymentResultReported():
            check_payment_result(event)
        case ConfirmCart():
            _require_locked(cart, event, "confirmed")
            if event.status not in ADMIN_CONFIRM_STATUSES:
                raise CartRefused(
                    ErrorCode.INVALID_STATUS,
                    f"a confirmed order starts as {' or '.join(sorted(ADMIN_CONFIRM_STATUSES))}",
                )
        case UnlockCart():
            _require_locked(cart, event, "unlocked")
        case DeleteCart():
            _check_admin(event)
            if cart.state is CartState.ORDERED:
                raise CartRefused(
                    ErrorCode.ALREADY_ORDERED, "an ordered cart cannot be deleted"
                )
            if cart.state is CartState.EXPIRED:
                raise CartRefused(ErrorCode.CART_EXPIRED, "the cart has expired")
        case OrderNumberAssigned():
            if not _is_int(event.number) or event.number <= 0:
                raise CartRefused(ErrorCode.INVALID_INPUT, "an order number is positive")
        case _:
            raise CartRefused(ErrorCode.INVALID_INPUT, f"unknown event {type(event).__name__}")


def _require_locked(cart: Cart, event: AdminAction, done: str) -> None:
    _check_admin(event)
    _refuse_closed(cart)
    if cart.state is CartState.ORDERED:
        raise CartRefused(ErrorCode.ALREADY_ORDERED, "the cart is already ordered")
    if cart.state is not CartState.LOCKED:
        raise CartRefused(ErrorCode.NOT_LOCKED, f"only a locked cart can be {done} ({cart.state})")


def _check_admin(event: AdminAction) -> None:
    _text(event.admin, "admin", required=True, code=ErrorCode.INVALID_INPUT)
    if event.note is not None and (not isinstance(event.note, str) or len(event.note) > 1000):
        raise CartRefused(ErrorCode.INVALID_INPUT, "a note is a text of at most 1000 characters")


def _same_start(known: PaymentAttempt, event: PaymentStarted) -> bool:
    return (
        known.status is PaymentStatus.STARTED
        and known.method == event.method
        and known.gateway == event.gateway
        and known.amount == event.amount
    )


# --------------------------------------------------------------------------- transitions


def apply(cart: Cart, event: CartEvent, now: datetime, policy: CartPolicy) -> bool:
    """Apply ``event`` at ``now``. Returns whether the cart changed.

    Raises ``CartRefused`` (the cart unchanged) if the event is not allowed. A payment
    result is never refused for the cart's state; an invalid one is recorded for an admin.
    """
    if isinstance(event, PaymentResultReported):
        noticed = len(cart.attention)
        try:
            event = _usable_payment_result(cart, event, now, policy)
        except CartRefused as refused:
            _raise_attention(
                cart,
                now,
                policy,
                AttentionKind.INVALID_PAYMENT_RESULT,
                attempt_id=str(event.attempt_id)[:128],
                detail=refused.message,
            )
            _changed(cart, now, policy)
            return True
        changed = _payment_result(cart, event, now, policy) or len(cart.attention) > noticed
    else:
        check(cart, event, policy)
        changed = _apply_checked(cart, event, now, policy)
    if changed:
        _changed(cart, now, policy)
    return changed


def _usable_payment_result(
    cart: Cart, event: PaymentResultReported, now: datetime, policy: CartPolicy
) -> PaymentResultReported:
    """The result to act on. Its core (attempt, status, amount) must be valid; a bad
    optional detail (card digits, gateway, currency) is dropped and shown to an admin, so
    that a malformed detail never costs a succeeded payment its order."""
    check_attempt_id(event.attempt_id)
    core = PaymentResultReported(event.attempt_id, event.status, event.amount)
    check_payment_result(core)
    usable = core
    for name in ("currency", "card_last4", "gateway"):
        candidate = replace(usable, **{name: getattr(event, name)})
        try:
            check_payment_result(candidate)
        except CartRefused as refused:
            _raise_attention(
                cart,
                now,
                policy,
                AttentionKind.INVALID_PAYMENT_RESULT,
                attempt_id=event.attempt_id,
                amount=event.amount,
                detail=f"{refused.message}; the result was applied without it",
            )
            continue
        usable = candidate
    return usable


def _changed(cart: Cart, now: datetime, policy: CartPolicy) -> None:
    cart.version += 1
    cart.updated_at = now
    if cart.created_at is None:
        cart.created_at = now
    reschedule(cart, policy)


def _apply_checked(cart: Cart, event: CartEvent, now: datetime, policy: CartPolicy) -> bool:
    if cart.version == 0 and not isinstance(event, OrderNumberAssigned):
        _journal(cart, now, policy, JournalKind.CART_CREATED, SYSTEM)
    match event:
        case CartUpdated():
            _cart_updated(cart, event, now, policy)
        case CustomerIdentified():
            cart.customer = event.customer
            if event.customer.customer_id and not cart.customer_id:
                cart.customer_id = event.customer.customer_id
            _journal(
                cart,
                now,
                policy,
                JournalKind.CUSTOMER_IDENTIFIED,
                CUSTOMER,
                "logged in" if event.customer.logged_in else "guest",
            )
            _customer_active(cart, now, policy)
        case CustomerVisited():
            _journal(cart, now, policy, JournalKind.CUSTOMER_VISITED, CUSTOMER, event.page)
            if cart.state.is_open and cart.state is not CartState.LOCKED:
                _customer_active(cart, now, policy)
        case CheckoutStarted():
            _journal(cart, now, policy, JournalKind.CHECKOUT_STARTED, CUSTOMER)
            _customer_active(cart, now, policy)
            cart.state = CartState.CHECKOUT
        case PaymentStarted():
            return _payment_started(cart, event, now, policy)
        case ConfirmCart():
            _journal(cart, now, policy, JournalKind.CART_CONFIRMED, _admin(event), event.note)
            _create_order(
                cart,
                now,
                policy,
                status=event.status,
                source=OrderSource.ADMIN_CONFIRMATION,
                paid=event.status == ORDER_STATUS_PROCESSED,
                attempt_id=cart.current_attempt_id,
            )
        case UnlockCart():
            _journal(cart, now, policy, JournalKind.CART_UNLOCKED, _admin(event), event.note)
            cart.state = CartState.ACTIVE
            cart.lock_reason = None
            cart.last_activity_at = now
        case DeleteCart():
            if cart.state is CartState.DELETED:
                return False  # deleting twice is the same deletion
            _journal(cart, now, policy, JournalKind.CART_DELETED, _admin(event), event.note)
            cart.state = CartState.DELETED
            cart.closed_at = now
        case OrderNumberAssigned():
            if cart.order is None or cart.order.number is not None:
                return False  # a number is assigned once
            cart.order.number = event.number
            _journal(
                cart, now, policy, JournalKind.ORDER_NUMBER_ASSIGNED, SYSTEM, str(event.number)
            )
    return True


def _admin(event: AdminAction) -> str:
    return f"admin:{event.admin}"


def _customer_active(cart: Cart, now: datetime, policy: CartPolicy) -> None:
    """Customer activity: an abandoned cart becomes active again."""
    cart.last_activity_at = now
    if cart.state is CartState.ABANDONED:
        cart.state = CartState.ACTIVE
        _journal(cart, now, policy, JournalKind.CUSTOMER_RETURNED, CUSTOMER)


def _cart_updated(cart: Cart, event: CartUpdated, now: datetime, policy: CartPolicy) -> None:
    before = {line.sku: line for line in cart.lines}
    after = {line.sku: line for line in event.lines}
    for sku, line in after.items():
        old = before.get(sku)
        if old is None:
            _journal(
                cart, now, policy, JournalKind.ITEM_ADDED, CUSTOMER, f"{sku} x{line.quantity}"
            )
        elif old.quantity != line.quantity:
            _journal(
                cart,
                now,
                policy,
                JournalKind.QUANTITY_CHANGED,
                CUSTOMER,
                f"{sku} x{old.quantity} -> x{line.quantity}",
            )
    for sku in before.keys() - after.keys():
        _journal(cart, now, policy, JournalKind.ITEM_REMOVED, CUSTOMER, sku)
    cart.lines = [CartLine(ln.sku, ln.name, ln.quantity, ln.unit_price) for ln in event.lines]
    cart.currency = event.currency
    if event.customer_id is not None:
        cart.customer_id = event.customer_id
    _customer_active(cart, now, policy)
    if cart.state is CartState.PAYMENT_PENDING:
        # The customer came back from the gateway and changed the cart: shopping again. The
        # attempt stays on record, and its success would still create the order.
        cart.state = CartState.ACTIVE


def _payment_started(cart: Cart, event: PaymentStarted, now: datetime, policy: CartPolicy) -> bool:
    if cart.attempt(event.attempt_id) is not None:
        return False  # the same start again: nothing new
    method = PaymentMethod(event.method)  # ``check`` accepts the plain string too
    cart.payments.append(
        PaymentAttempt(
            attempt_id=event.attempt_id,
            status=PaymentStatus.STARTED,
            amount=event.amount,
            method=method,
            gateway=event.gateway,
            currency=cart.currency,
            started_at=now,
        )
    )
    cart.current_attempt_id = event.attempt_id
    _journal(
        cart,
        now,
        policy,
        JournalKind.PAYMENT_STARTED,
        CUSTOMER,
        f"{event.attempt_id} {method} {event.gateway} {event.amount}",
    )
    _customer_active(cart, now, policy)
    if method is PaymentMethod.OFFLINE:
        _create_order(
            cart,
            now,
            policy,
            status=ORDER_STATUS_OPEN,
            source=OrderSource.OFFLINE_PAYMENT,
            paid=False,
            attempt_id=event.attempt_id,
        )
    else:
        cart.state = CartState.PAYMENT_PENDING
        cart.payment_started_at = now
    return True


_RESULT_JOURNAL = {
    PaymentStatus.SUCCEEDED: JournalKind.PAYMENT_SUCCEEDED,
    PaymentStatus.FAILED: JournalKind.PAYMENT_FAILED,
    PaymentStatus.PENDING: JournalKind.PAYMENT_PENDING,
    PaymentStatus.CANCELLED: JournalKind.PAYMENT_CANCELLED,
    PaymentStatus.EXPIRED: JournalKind.PAYMENT_EXPIRED,
}


def _payment_result(
    cart: Cart, event: PaymentResultReported, now: datetime, policy: CartPolicy
) -> bool:
    status = PaymentStatus(event.status)
    attempt = cart.attempt(event.attempt_id)
    if attempt is not None and status in attempt.results:
        return False  # the same result again (webhooks are delivered at least once)
    if attempt is None:
        # The result came before its "payment started" (or the start was never reported).
        # It starts as ``started`` so that the result below is decisive (a success must
        # create the order, not be taken for a success already recorded).
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
    detail = f"{event.attempt_id} {event.amount}" + (
        f" {event.currency}" if event.currency else ""
    )

    if attempt.status is PaymentStatus.SUCCEEDED:
        # A late failed/cancelled/expired/pending never undoes a success.
        _journal(
            cart, now, policy, JournalKind.PAYMENT_RESULT_IGNORED, GATEWAY, f"{status} {detail}"
        )
        return True
    attempt.status = status
    attempt.amount = event.amount
    _journal(cart, now, policy, _RESULT_JOURNAL[status], GATEWAY, detail)

    if (
        event.currency is not None
        and cart.currency is not None
        and event.currency != cart.currency
    ):
        _raise_attention(
            cart,
            now,
            policy,
            AttentionKind.PAYMENT_CURRENCY_MISMATCH,
            attempt_id=event.attempt_id,
            amount=event.amount,
            detail=f"paid in {event.currency}, the cart is in {cart.currency}",
        )

    is_current = cart.current_attempt_id == event.attempt_id
    if status is PaymentStatus.SUCCEEDED:
        _payment_succeeded(cart, attempt, now, policy)
    elif status is PaymentStatus.PENDING:
        if is_current and cart.state.is_open and cart.state is not CartState.LOCKED:
            if policy.process_pending_payments:
                _create_order(
                    cart,
                    now,
                    policy,
                    status=ORDER_STATUS_OPEN,
                    source=OrderSource.PENDING_PAYMENT,
                    paid=False,
                    attempt_id=attempt.attempt_id,
                )
            else:
                _lock(cart, now, policy, LockReason.PAYMENT_PENDING)
    elif status in NEGATIVE_PAYMENT_STATUSES and (
        is_current and cart.state is CartState.PAYMENT_PENDING
    ):
        # The customer may try again (CS-Cart: a negative answer creates no order).
        cart.state = CartState.CHECKOUT
        cart.last_activity_at = now
    return True


def _payment_succeeded(
    cart: Cart, attempt: PaymentAttempt, now: datetime, policy: CartPolicy
) -> None:
    if cart.state.is_final:
        _raise_attention(
            cart,
            now,
            policy,
            AttentionKind.PAID_AFTER_CLOSE,
            attempt_id=attempt.attempt_id,
            amount=attempt.amount,
            detail=f"a payment succeeded after the cart was {cart.state}",
        )
        return
    order = cart.order
    if order is None:
        _create_order(
            cart,
            now,
            policy,
            status=ORDER_STATUS_PROCESSED,
            source=OrderSource.ONLINE_PAYMENT,
            paid=True,
            attempt_id=attempt.attempt_id,
        )
        cart.current_attempt_id = attempt.attempt_id
        return
    if not order.paid:
        # An open order (offline, pending or confirmed as open) is now paid.
        order.paid = True
        order.paid_at = now
        order.status = ORDER_STATUS_PROCESSED
        order.attempt_id = attempt.attempt_id
        _journal(cart, now, policy, JournalKind.ORDER_PAID, GATEWAY, attempt.attempt_id)
        return
    if order.attempt_id == attempt.attempt_id:
        # An admin confirmed the order as paid for this very attempt before its result
        # came: the success confirms that payment, it is not a second one.
        return
    _raise_attention(
        cart,
        now,
        policy,
        AttentionKind.POSSIBLE_DOUBLE_CHARGE,
        attempt_id=attempt.attempt_id,
        amount=attempt.amount,
        detail=f"the order was already paid by attempt {order.attempt_id}",
    )


def _create_order(
    cart: Cart,
    now: datetime,
    policy: CartPolicy,
    *,
    status: str,
    source: OrderSource,
    paid: bool,
    attempt_id: str | None,
) -> None:
    cart.order = Order(
        status=status,
        source=source,
        total=cart.total,
        currency=cart.currency,
        created_at=now,
        paid=paid,
        attempt_id=attempt_id,
        paid_at=now if paid else None,
    )
    cart.state = CartState.ORDERED
    cart.ordered_at = now
    cart.lock_reason = None
    _journal(cart, now, policy, JournalKind.ORDER_CREATED, SYSTEM, f"{status} {source}")


def _lock(cart: Cart, now: datetime, policy: CartPolicy, reason: LockReason) -> None:
    cart.state = CartState.LOCKED
    cart.lock_reason = reason
    cart.locked_at = now
    _journal(cart, now, policy, JournalKind.CART_LOCKED, SYSTEM, str(reason))


def _raise_attention(
    cart: Cart,
    now: datetime,
    policy: CartPolicy,
    kind: AttentionKind,
    *,
    attempt_id: str | None = None,
    amount: int | None = None,
    detail: str | None = None,
) -> None:
    cart.attention.append(
        Attention(kind=kind, at=now, attempt_id=attempt_id, amount=amount, detail=detail)
    )
    _journal(cart, now, policy, JournalKind.ATTENTION_RAISED, SYSTEM, f"{kind}: {detail}")


def _journal(
    cart: Cart,
    now: datetime,
    policy: CartPolicy,
    kind: JournalKind,
    actor: str,
    detail: str | None = None,
) -> None:
    cart.journal.append(JournalEntry(at=now, kind=kind, actor=actor, detail=detail))
    excess = len(cart.journal) - max(policy.journal_limit, 1)
    if excess > 0:
        del cart.journal[:excess]
        cart.journal_dropped += excess


# --------------------------------------------------------------------------- timers


def reschedule(cart: Cart, policy: CartPolicy) -> None:
    """Set the cart's deadlines from its state; ``None`` where no timer applies."""
    cart.abandon_at = cart.lock_at = cart.expire_at = cart.retire_at = None
    activity = cart.last_activity_at or cart.created_at
    state = cart.state
    if state in (CartState.ACTIVE, CartState.CHECKOUT) and activity is not None:
        cart.abandon_at = activity + timedelta(seconds=policy.abandon_after_seconds)
    if state is CartState.PAYMENT_PENDING and cart.payment_started_at is not None:
        cart.lock_at = cart.payment_started_at + timedelta(seconds=policy.lock_after_seconds)
    if state.is_open and activity is not None:
        cart.expire_at = activity + timedelta(seconds=policy.lifetime_seconds)
    if state is CartState.ORDERED and cart.ordered_at is not None:
        cart.retire_at = cart.ordered_at + timedelta(seconds=policy.retire_after_seconds)
    if state.is_final and cart.closed_at is not None:
        # Late events (a payment after expiry, say) extend the wait from the last change.
        last = max(cart.closed_at, cart.updated_at or cart.closed_at)
        cart.retire_at = last + timedelta(seconds=policy.retire_after_seconds)


def next_deadline(cart: Cart) -> datetime | None:
    """The earliest timer of the cart (including ``retire_at``), or ``None``."""
    deadlines = [d for d in (cart.abandon_at, cart.lock_at, cart.expire_at, cart.retire_at) if d]
    return min(deadlines) if deadlines else None


def tick(cart: Cart, now: datetime, policy: CartPolicy) -> bool:
    """Apply every timer due at ``now`` (earliest first). Returns whether the cart changed."""
    changed = False
    while True:
        due = [
            (deadline, name)
            for name, deadline in (
                ("expire", cart.expire_at),
                ("lock", cart.lock_at),
                ("abandon", cart.abandon_at),
            )
            if deadline is not None and deadline <= now
        ]
        if not due:
            return changed
        deadline, name = min(due)
        if name == "expire":
            cart.state = CartState.EXPIRED
            cart.closed_at = deadline
            _journal(cart, deadline, policy, JournalKind.CART_EXPIRED, SYSTEM)
        elif name == "lock":
            _lock(cart, deadline, policy, LockReason.NO_PAYMENT_RESULT)
        else:
            cart.state = CartState.ABANDONED
            cart.abandoned_at = deadline
            _journal(cart, deadline, policy, JournalKind.CART_ABANDONED, SYSTEM)
        _changed(cart, now, policy)
        changed = True


def is_retired(cart: Cart, now: datetime) -> bool:
    """The workflow may finish: the cart is ordered or closed and its wait is over."""
    return cart.retire_at is not None and cart.retire_at <= now
