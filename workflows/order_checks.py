"""What the order phase allows (``workflows.order_phase`` applies what passes). Plain
Python; refusals are ``CartRefused`` with an ``ErrorCode``; nothing is changed.

- ``set_order_status``: an order, or a cart with lines at the payment step (checkout,
  at the gateway, locked: a not finished order);
  a letter ``A``-``Z`` (any case) the shop has (``unknown_status``, checked once the
  workflow has read the registry), never ``N`` nor another hidden one
  (``status_hidden``); a status that counts as paid only when the payments cover the
  total (``payment_required``: record the payment first).
- ``edit_delivery``: an order; the tracking code and the comment in any status, the other
  fields only while the status has editable contents (``contents_not_editable``); each
  value checked (``invalid_delivery``; a control character, but tab and line breaks in
  the address and comment, or a lone surrogate: ``invalid_text``).
- ``edit_order_lines``: an order whose status has editable contents; lines as the
  storefront's (``workflows.validation.check_lines``), at least one.
- ``record_payment``: an order; a payment or a refund of a positive amount in the order's
  currency; a refund at most what was paid (``refund_exceeds_paid``).
- ``add_order_note``: an order or a cart at the payment step; a note is required.
"""

from __future__ import annotations

import re

from workflows.codes import CartState, ErrorCode
from workflows.money import paid_amount
from workflows.order_contract import PAYMENT_KIND, REFUND_KIND
from workflows.order_events import (
    AddOrderNote,
    EditDelivery,
    EditOrderLines,
    OrderManaged,
    OrderStatusesRead,
    RecordPayment,
    SetOrderStatus,
    StatusMailDone,
    StockMoved,
)
from workflows.order_phase import DELIVERY_LOCKED_FIELDS, NOT_FINISHED, NOT_FINISHED_STATES
from workflows.order_state import Delivery
from workflows.state import Cart, Order
from workflows.validation import (
    MAX_AMOUNT,
    MAX_ATTEMPTS,
    MAX_NOTE,
    CartRefused,
    check_admin,
    check_amount,
    check_currency,
    check_lines,
    check_text,
    is_int,
    refuse_closed,
    valid_id,
)

ORDER_EVENTS = (
    SetOrderStatus,
    EditDelivery,
    EditOrderLines,
    RecordPayment,
    AddOrderNote,
    OrderManaged,
    OrderStatusesRead,
    StockMoved,
    StatusMailDone,
)
#: payments and refunds an admin may record on one cart (with the gateway's attempts)
MAX_PAYMENTS = 2 * MAX_ATTEMPTS

_LETTER_RE = re.compile(r"^[A-Za-z]\Z")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+\Z")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}\Z")
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ().\-/]{2,39}\Z")
#: the longest text of each delivery field (others: ``MAX_TEXT``)
_DELIVERY_LIMITS = {"address": 500, "comment": MAX_NOTE, "tracking_code": 100, "postal_code": 20}
DELIVERY_FIELDS = tuple(Delivery.__dataclass_fields__)
#: the delivery fields that may have lines (tab, CR and LF allowed)
_MULTILINE_FIELDS = frozenset({"address", "comment"})


def check_order_event(cart: Cart, event: object) -> None:
    match event:
        case SetOrderStatus():
            check_set_status(cart, event)
        case EditDelivery():
            check_admin(event)
            order = _require_order(cart)
            check_delivery(event.changes)
            locked = sorted(set(event.changes) & set(DELIVERY_LOCKED_FIELDS))
            if locked and not order.contents_editable:
                raise CartRefused(
                    ErrorCode.CONTENTS_NOT_EDITABLE,
                    f"the delivery's {', '.join(locked)} cannot change while the order is "
                    f"{_status(order)} (only its tracking code and comment)",
                )
        case EditOrderLines():
            check_admin(event)
            order = _require_order(cart)
            if not order.contents_editable:
                raise CartRefused(
                    ErrorCode.CONTENTS_NOT_EDITABLE,
                    f"the contents cannot change while the order is {_status(order)}",
                )
            check_lines(event.lines)
            if not event.lines:
                raise CartRefused(ErrorCode.CART_EMPTY, "an order keeps at least one line")
        case RecordPayment():
            check_record_payment(cart, event)
        case AddOrderNote():
            check_admin(event)
            check_text(
                event.note,
                "note",
                required=True,
                code=ErrorCode.INVALID_INPUT,
                limit=MAX_NOTE,
                multiline=True,
            )
            if cart.state not in NOT_FINISHED_STATES:
                _require_order(cart)
        case OrderManaged() | OrderStatusesRead() | StockMoved() | StatusMailDone():
            if cart.order is None:
                raise CartRefused(ErrorCode.NOT_AN_ORDER, "the cart has no order")


def _status(order: Order) -> str:
    return f"{order.status} ({order.status_name})" if order.status_name else order.status


def _require_order(cart: Cart) -> Order:
    refuse_closed(cart)
    if cart.state is not CartState.ORDERED or cart.order is None:
        raise CartRefused(ErrorCode.NOT_AN_ORDER, f"the cart is not an order ({cart.state})")
    return cart.order


def check_set_status(cart: Cart, event: SetOrderStatus) -> None:
    check_admin(event)
    if not isinstance(event.status, str) or not _LETTER_RE.match(event.status):
        raise CartRefused(ErrorCode.INVALID_STATUS, "a status is one letter, A to Z")
    letter = event.status.upper()
    if letter == NOT_FINISHED:
        raise CartRefused(
            ErrorCode.STATUS_HIDDEN, "N (Incomplete) is set by the checkout, never by an admin"
        )
    refuse_closed(cart)
    if cart.state in NOT_FINISHED_STATES:
        if not cart.lines:
            raise CartRefused(ErrorCode.CART_EMPTY, "an empty cart cannot become an order")
    else:
        _require_order(cart)
    if event.statuses is None:
        return  # the workflow checks again once it has read the registry
    definition = event.statuses.find(letter)
    if definition is None:
        raise CartRefused(ErrorCode.UNKNOWN_STATUS, f"the shop has no status {letter}")
    if definition.hidden:
        raise CartRefused(
            ErrorCode.STATUS_HIDDEN, f"{letter} ({definition.name}) is never set by an admin"
        )
    order = cart.order
    if definition.paid and (order is None or order.status != letter):
        due = order.total if order is not None else cart.total
        paid = order.amount_paid if order is not None else paid_amount(cart, cart.currency)
        if paid < due:
            raise CartRefused(
                ErrorCode.PAYMENT_REQUIRED,
                f"{letter} ({definition.name}) counts as paid; the payments cover {paid} of "
                f"{due}: record the payment first",
            )


def check_delivery(changes: object) -> None:
    if not isinstance(changes, dict) or not changes:
        raise CartRefused(ErrorCode.INVALID_DELIVERY, "give at least one delivery field")
    for name, value in changes.items():
        if name not in DELIVERY_FIELDS:
            raise CartRefused(ErrorCode.INVALID_DELIVERY, f"{name!r} is not a delivery field")
        if name == "cost":
            if not is_int(value) or not 0 <= value <= MAX_AMOUNT:  # type: ignore[operator]
                raise CartRefused(
                    ErrorCode.INVALID_DELIVERY,
                    "cost must be a whole number of minor units, 0 or more",
                )
            continue
        if value is None:
            continue
        check_text(
            value,
            name,
            required=True,
            code=ErrorCode.INVALID_DELIVERY,
            limit=_DELIVERY_LIMITS.get(name, 200),
            multiline=name in _MULTILINE_FIELDS,
        )
        assert isinstance(value, str)
        pattern = {"email": _EMAIL_RE, "country": _COUNTRY_RE, "phone": _PHONE_RE}.get(name)
        if pattern is not None and not pattern.match(value):
            raise CartRefused(ErrorCode.INVALID_DELIVERY, f"{name} {value[:60]!r} is not valid")
        if name == "method" and not valid_id(value):
            raise CartRefused(ErrorCode.INVALID_DELIVERY, "method is a shipping method's id")


def check_record_payment(cart: Cart, event: RecordPayment) -> None:
    check_admin(event)
    order = _require_order(cart)
    if event.kind not in (PAYMENT_KIND, REFUND_KIND):
        raise CartRefused(ErrorCode.INVALID_PAYMENT, "kind is payment or refund")
    check_amount(event.amount)
    currency = check_currency(event.currency)
    if currency != order.currency:
        raise CartRefused(
            ErrorCode.CURRENCY_MISMATCH, f"the order is in {order.currency}; {currency} is refused"
        )
    check_text(event.reference, "reference", required=False, code=ErrorCode.INVALID_PAYMENT)
    if event.kind == REFUND_KIND and event.amount > order.amount_paid:
        raise CartRefused(
            ErrorCode.REFUND_EXCEEDS_PAID,
            f"a refund of {event.amount} exceeds what was paid ({order.amount_paid})",
        )
    if len(cart.payments) >= MAX_PAYMENTS:
        raise CartRefused(
            ErrorCode.TOO_MANY_ATTEMPTS, f"a cart keeps at most {MAX_PAYMENTS} payments"
        )
