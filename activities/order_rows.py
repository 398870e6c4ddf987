"""One line of the admin's orders list (``activities.orders_query``), made from a row of
``carts``: its columns and its ``listing`` (``listing_of``, written with the row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activities.order_status_rules import HIDDEN_LETTER, OrderStatusDef

#: ``OrderRow.payment_status``
PAID = "paid"
PARTIALLY_PAID = "partially_paid"
UNPAID = "unpaid"
NOT_DEFINED = "not_defined"


@dataclass(frozen=True)
class OrderRow:
    """One line of the orders list (seed 002's columns).

    ``number`` / ``reference``: the order's number and the number as shown (the prefix it
    was given with, ``order_numbers.reference``); both ``None`` for a not finished order.
    ``created_at``: when it was ordered (not finished: when it was locked).
    ``status``: the letter (``N`` for a not finished order); ``status_name`` and
    ``status_colour`` the registry's now (for a letter it no longer has: those the order
    recorded when it entered the status, else ``None``).
    ``customer_name`` comes from the snapshot's customer. ``delivery``: the order's
    (method, cost, tracking code, recipient, address, comment; ``None``: none set).
    ``total`` (the order's: its lines and its delivery's cost), ``amount_paid`` (less
    refunds): minor units of ``currency``. ``payment_method`` / ``payment_gateway``: of
    the last succeeded payment, else of the last attempt (``None``: none).
    ``payment_status``: ``paid``, ``partially_paid``, ``unpaid``, or ``not_defined`` for a
    not finished order.
    """

    shop_id: str
    cart_id: str
    number: int | None
    reference: str | None
    created_at: datetime
    status: str
    status_name: str | None
    status_colour: str | None
    customer_email: str | None
    customer_name: str | None
    delivery: dict[str, Any] | None
    total: int
    currency: str | None
    amount_paid: int
    payment_method: str | None
    payment_gateway: str | None
    fully_paid: bool
    not_finished: bool
    payment_status: str


def _payment(payments: object) -> tuple[str | None, str | None]:
    """(method, gateway) of the last succeeded payment, else of the last attempt
    (refunds are neither)."""
    attempts = (
        [p for p in payments if isinstance(p, dict) and p.get("refund") is not True]
        if isinstance(payments, list)
        else []
    )
    succeeded = [p for p in attempts if p.get("status") == "succeeded"]
    if not attempts:
        return None, None
    chosen = (succeeded or attempts)[-1]
    method, gateway = chosen.get("method"), chosen.get("gateway")
    return (
        method if isinstance(method, str) else None,
        gateway if isinstance(gateway, str) else None,
    )


def _paid_in(payments: object, currency: str | None) -> int:
    """The succeeded payments in ``currency`` (``workflows.money.paid_amount``)."""
    if not isinstance(payments, list):
        return 0
    total = 0
    for p in payments:
        if isinstance(p, dict) and p.get("status") == "succeeded":
            amount = p.get("succeeded_amount")
            if p.get("succeeded_currency") == currency and isinstance(amount, int):
                total += -amount if p.get("refund") is True else amount
    return total


def listing_of(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """What the orders list needs of a cart beyond its columns (``carts.listing``, made
    when the cart is projected, so a page never parses the whole snapshot): the
    customer's name, the payment method and gateway, what was paid in the cart's currency
    (less refunds), and the order's total, delivery and status name and colour."""
    customer = snapshot.get("customer")
    payments = snapshot.get("payments")
    order = snapshot.get("order")
    order = order if isinstance(order, dict) else {}
    method, gateway = _payment(payments)
    name = customer.get("name") if isinstance(customer, dict) else None
    total, delivery = order.get("total"), order.get("delivery")
    return {
        "customer_name": _text(name),
        "payment_method": method,
        "payment_gateway": gateway,
        "paid": _paid_in(payments, _text(snapshot.get("currency"))),
        "order_total": total if isinstance(total, int) else None,
        "delivery": delivery if isinstance(delivery, dict) else None,
        "status_name": _text(order.get("status_name")),
        "status_colour": _text(order.get("status_colour")),
    }


def order_row(
    values: Mapping[str, Any],
    statuses: Mapping[str, OrderStatusDef],
    references: Mapping[int, str],
) -> OrderRow:
    not_finished = values["state"] != "ordered"
    listing = values["listing"] if isinstance(values["listing"], dict) else {}
    name = listing.get("customer_name")
    method, gateway = _text(listing.get("payment_method")), _text(listing.get("payment_gateway"))
    number = None if not_finished else values["order_number"]
    letter = HIDDEN_LETTER if not_finished else (values["order_status"] or "")
    status = statuses.get(letter)
    order = listing if not not_finished else {}
    total = order.get("order_total")
    delivery = order.get("delivery")
    own_name, own_colour = order.get("status_name"), order.get("status_colour")
    if not_finished:
        paid = listing.get("paid")
        amount_paid = paid if isinstance(paid, int) else 0
        fully_paid, payment_status = False, NOT_DEFINED
    else:
        amount_paid = int(values["order_amount_paid"] or 0)
        fully_paid = bool(values["order_paid"])
        payment_status = PAID if fully_paid else PARTIALLY_PAID if amount_paid > 0 else UNPAID
    return OrderRow(
        shop_id=values["shop_id"],
        cart_id=values["cart_id"],
        number=number,
        reference=(references.get(number) or str(number)) if number is not None else None,
        created_at=values["created_at"],
        status=letter,
        # the registry's name now; a letter it no longer has: the name the order got
        status_name=status.name if status else _text(own_name),
        status_colour=status.colour if status else _text(own_colour),
        customer_email=values["customer_email"],
        customer_name=name if isinstance(name, str) else None,
        delivery=delivery if isinstance(delivery, dict) else None,
        # the order's total (its lines and its delivery's cost); a cart's otherwise
        total=total if isinstance(total, int) else int(values["total"]),
        currency=values["currency"],
        amount_paid=amount_paid,
        payment_method=method,
        payment_gateway=gateway,
        fully_paid=fully_paid,
        not_finished=not_finished,
        payment_status=payment_status,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
