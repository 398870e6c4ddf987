"""An order's details for ``cartkeeper orders show`` and the order actions: its state in
a few fields (status, total, paid, balance), and in full (status history, delivery,
lines, payments and refunds, stock moves, status e-mails), from the cart's snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workflows.order_state import Delivery
    from workflows.state import Cart, CartView, Order

#: the delivery's fields in the order they are shown, with their labels
DELIVERY_LABELS = (
    ("method", "method"),
    ("cost", "cost"),
    ("tracking_code", "tracking"),
    ("recipient_name", "recipient"),
    ("email", "e-mail"),
    ("phone", "phone"),
    ("address", "address"),
    ("postal_code", "postal code"),
    ("city", "city"),
    ("country", "country"),
    ("comment", "comment"),
)


# --------------------------------------------------------------------------- in a few fields


def order_summary(cart: Cart) -> dict[str, Any]:
    """What an order action prints: the order's state after it (JSON-ready)."""
    from starter.output import jsonable

    order = cart.order
    summary: dict[str, Any] = {
        "shop_id": cart.shop_id,
        "cart_id": cart.cart_id,
        "state": str(cart.state),
        "number": order.number if order else None,
        "status": order.status if order else None,
        "status_name": order.status_name if order else None,
        "final": bool(order and order.final),
        "contents_editable": bool(order and order.contents_editable),
        "currency": order.currency if order else cart.currency,
        "total": order.total if order else cart.total,
        "amount_paid": order.amount_paid if order else 0,
        "balance": order.balance if order else cart.total,
        "paid": bool(order and order.paid),
        #: a status the workflow is about to set (``H``, ``P``, ``O``, ``B``), if any
        "wanted_status": order.wanted_status if order else None,
        "delivery": jsonable(order.delivery) if order and order.delivery else None,
    }
    return summary


def view_summary(view: CartView) -> dict[str, Any]:
    """The summary from an update's answer alone (when the cart could not be read after
    it): its total is the lines' (the delivery's cost is not in the view)."""
    return {
        "shop_id": view.shop_id,
        "cart_id": view.cart_id,
        "state": str(view.state),
        "number": view.order_number,
        "status": view.order_status,
        "status_name": view.order_status_name,
        "final": view.order_final,
        "contents_editable": None,
        "currency": view.currency,
        "total": view.total,
        "amount_paid": view.amount_paid,
        "balance": view.total - view.amount_paid,
        "paid": view.order_paid,
        "wanted_status": None,
        "delivery": None,
    }


def describe_summary(summary: dict[str, Any]) -> str:
    """``order 12: S Shipped, total 21.00 EUR, paid 21.00 EUR, balance 0.00 EUR``."""
    from starter.output import format_money

    number = summary["number"]
    title = f"order {number}" if number is not None else "order (number pending)"
    status = summary["status"] or "-"
    if summary["status_name"]:
        status += f" {summary['status_name']}"
    if summary["final"]:
        status += " (final)"
    currency = summary["currency"]
    text = (
        f"{title}: {status}, total {format_money(summary['total'], currency)},"
        f" paid {format_money(summary['amount_paid'], currency)},"
        f" balance {format_money(summary['balance'], currency)}"
    )
    if summary["wanted_status"]:
        text += f" (becoming {summary['wanted_status']})"
    return text


# --------------------------------------------------------------------------- in full


def delivery_text(delivery: Delivery | None, currency: str | None) -> str:
    """The delivery on one line (``-``: none)."""
    from starter.output import format_money

    if delivery is None:
        return "-"
    parts = []
    for name, label in DELIVERY_LABELS:
        value = getattr(delivery, name)
        if name == "cost":
            parts.append(f"{label} {format_money(value, currency)}")
        elif value is not None:
            parts.append(f"{label} {value}")
    return ", ".join(parts)


def details_json(cart: Cart) -> dict[str, Any]:
    """The order's details (``orders show --json``): its statuses, delivery, lines,
    payments and refunds, balance, stock moves and status e-mails."""
    from starter.output import jsonable

    order = cart.order
    if order is None:  # a not finished order: its lines and payments only
        return {
            "order_total": cart.total,
            "balance": None,
            "statuses": [],
            "delivery": None,
            "lines": jsonable(cart.lines),
            "payments": jsonable(cart.payments),
            "stock_moves": [],
            "status_mails": [],
        }
    return {
        "order_total": order.total,
        "balance": order.balance,
        "statuses": jsonable(order.statuses),
        "delivery": jsonable(order.delivery),
        "lines": jsonable(cart.lines),
        "payments": jsonable(cart.payments),
        "stock_moves": jsonable(order.stock_moves),
        "status_mails": jsonable(order.mails),
    }


def render_details(cart: Cart) -> str:
    """The order's lines, status history, payments, stock moves and status e-mails (the
    tables ``orders show`` prints after the order's fields)."""
    from starter.output import format_money, table

    order = cart.order
    currency = order.currency if order else cart.currency
    parts = ["", "lines"]
    parts.append(
        table(
            ["SKU", "NAME", "QTY", "UNIT PRICE", "SUBTOTAL"],
            [
                [
                    line.sku,
                    line.name,
                    str(line.quantity),
                    format_money(line.unit_price, currency),
                    format_money(line.subtotal, currency),
                ]
                for line in cart.lines
            ],
            right=(2, 3, 4),
        )
        if cart.lines
        else "  -"
    )
    if order is not None:
        parts += ["", "status history", _statuses(order)]
    parts += ["", "payments", _payments(cart, currency)]
    if order is not None:
        parts += ["", "stock moves", _stock_moves(order)]
        parts += ["", "status e-mails", _mails(order)]
    return "\n".join(parts)


def _statuses(order: Order) -> str:
    from starter.output import format_time, table

    if not order.statuses:
        return "  -"
    rows = [
        [
            str(entry.seq),
            entry.letter,
            entry.name or "(not read yet)",
            format_time(entry.at),
            entry.by,
            entry.note or "",
        ]
        for entry in order.statuses
    ]
    return table(["#", "LETTER", "NAME", "AT (UTC)", "BY", "NOTE"], rows)


def _payments(cart: Cart, currency: str | None) -> str:
    from starter.output import format_money, format_time, table

    if not cart.payments:
        return "  -"
    rows = []
    for attempt in cart.payments:
        kind = "refund" if attempt.refund else "payment"
        if attempt.confirmed_by:
            kind += f" by {attempt.confirmed_by}"
        shown = attempt.succeeded_amount if attempt.succeeded_amount is not None else attempt.amount
        amount = -shown if attempt.refund else shown
        rows.append(
            [
                attempt.attempt_id,
                kind,
                str(attempt.method) if attempt.method else "-",
                str(attempt.status),
                format_money(amount, attempt.succeeded_currency or attempt.currency or currency),
                format_time(attempt.result_at or attempt.started_at),
                attempt.reference or "",
            ]
        )
    return table(["ATTEMPT", "KIND", "METHOD", "STATUS", "AMOUNT", "AT (UTC)", "REFERENCE"], rows)


def _stock_moves(order: Order) -> str:
    from starter.output import format_time, table

    if not order.stock_moves:
        held = "holds no stock" if order.stock_held is None else "holds stock"
        return f"  - (the order {held})"
    rows = [
        [
            move.kind.replace("_", " "),
            ", ".join(f"{line.sku} x{line.quantity}" for line in move.lines),
            move.outcome + (f" ({', '.join(move.short)})" if move.short else ""),
            format_time(move.at) if move.at else "-",
            str(move.entry),
        ]
        for move in order.stock_moves
    ]
    return table(["MOVE", "LINES", "OUTCOME", "AT (UTC)", "STATUS #"], rows)


def _mails(order: Order) -> str:
    from starter.output import format_time, table

    if not order.mails:
        return "  -"
    rows = [
        [
            str(mail.entry),
            mail.letter,
            mail.recipient,
            mail.outcome + (f" ({mail.reason})" if mail.reason else ""),
            format_time(mail.at) if mail.at else "-",
        ]
        for mail in order.mails
    ]
    return table(["STATUS #", "LETTER", "TO", "OUTCOME", "AT (UTC)"], rows)
