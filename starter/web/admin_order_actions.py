"""The actions of an order's page, each a POST form (CSRF-checked, admins only) that calls
the order's cart workflow through ``CartkeeperClient`` (``starter.order_actions``) with
the signed-in admin's user name, so the order's journal and status history record who
acted:

    POST /admin/orders/{shop_id}/{number}/status    status (a letter of the shop), note
    POST /admin/orders/{shop_id}/{number}/delivery  the delivery's fields (those posted;
                                                    an empty one clears it), note
    POST /admin/orders/{shop_id}/{number}/lines     sku, name, quantity, unit_price (one
                                                    of each per line, repeated), note
    POST /admin/orders/{shop_id}/{number}/payment   kind (payment, refund), amount,
                                                    reference, note
    POST /admin/orders/{shop_id}/{number}/note      note

Amounts are typed as decimals in the order's currency (``21.50``; ``21,50`` too) and
sent as minor units with the currency's exponent (``parse_amount``); what cannot be read
is refused with its code before anything is sent. Each action redirects (303) back to the
order's page with the workflow's answer ("Status set: order 12 is A Awaiting, total
€21.00, paid €0.00, balance €21.00") or its refusal (``contents_not_editable: ...``) as
the flash message. An update no worker applied in time says so: it is queued and may
still apply.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from activities.orders_query import OrderRow
from activities.shipping_methods import ShippingMethodRefused, method_snapshot
from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.web.admin_auth import Admin, AdminSession
from starter.web.admin_orders import find_order, order_path
from starter.web.admin_render import AmountUnreadable, answer_action, money, to_minor
from starter.web.deps import Context, WebContext
from workflows.codes import ErrorCode
from workflows.events import CartLine
from workflows.order_checks import DELIVERY_FIELDS
from workflows.order_contract import PAYMENT_KIND, REFUND_KIND
from workflows.order_state import Delivery
from workflows.parsing import parse_line
from workflows.state import CartView
from workflows.validation import MAX_LINES, CartRefused

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)


Action = Callable[[CartkeeperClient, WebContext, OrderRow, AdminSession, FormData], Awaitable[str]]


# --------------------------------------------------------------------------- reading forms


def parse_amount(text: str, currency: str | None, what: str = "amount") -> int:
    """``text`` (``21.50``, ``21,5``, ``21``) as minor units of ``currency`` (its ISO 4217
    exponent: ``JPY`` has none, ``KWD`` three); ``invalid_amount`` otherwise."""
    value = text.strip()
    if currency is None:
        raise CartkeeperError(ErrorCode.INVALID_AMOUNT, f"{what}: the order has no currency")
    try:
        return to_minor(value, currency)
    except AmountUnreadable as unreadable:
        exponent = unreadable.exponent
        if unreadable.too_many_decimals:
            decimals = len(re.split(r"[.,]", value, maxsplit=1)[1])
            raise CartkeeperError(
                ErrorCode.INVALID_AMOUNT,
                f"{what}: {value!r} has {decimals} decimals; {currency} has {exponent or 'none'}",
            ) from None
        example = "2100" if exponent == 0 else "21." + "5" * exponent
        raise CartkeeperError(
            ErrorCode.INVALID_AMOUNT,
            f"{what}: {value[:40]!r} is not an amount in {currency}: write it like {example}",
        ) from None


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def _strings(form: FormData, name: str) -> list[str]:
    return [value if isinstance(value, str) else "" for value in form.getlist(name)]


def read_lines(form: FormData, currency: str | None) -> list[CartLine]:
    """The lines of the contents form: one ``sku``, ``name``, ``quantity`` and
    ``unit_price`` per row; a row without a SKU, or of quantity 0, is left out (that
    removes a line). A line without a name keeps the SKU as its name."""
    skus, names = _strings(form, "sku"), _strings(form, "name")
    quantities, prices = _strings(form, "quantity"), _strings(form, "unit_price")
    if not len(skus) == len(names) == len(quantities) == len(prices):
        raise CartkeeperError(ErrorCode.INVALID_LINE, "every line has a SKU, name, qty and price")
    if len(skus) > MAX_LINES + 10:
        raise CartkeeperError(ErrorCode.TOO_MANY_LINES, f"an order has at most {MAX_LINES} lines")
    lines: list[CartLine] = []
    for index, (sku, name, quantity, price) in enumerate(
        zip(skus, names, quantities, prices, strict=True)
    ):
        sku, quantity = sku.strip(), quantity.strip()
        if not sku:
            continue
        if not (quantity.isascii() and quantity.isdigit() and len(quantity) <= 9):
            raise CartkeeperError(
                ErrorCode.INVALID_QUANTITY,
                f"line {index + 1} ({sku[:40]}): {quantity[:20]!r} is not a whole quantity",
            )
        if int(quantity) == 0:
            continue
        unit_price = parse_amount(price, currency, f"line {index + 1} ({sku[:40]}) unit price")
        raw = {
            "sku": sku,
            "name": name.strip() or sku,
            "quantity": int(quantity),
            "unit_price": unit_price,
        }
        try:
            lines.append(parse_line(raw, index))
        except CartRefused as refused:
            raise CartkeeperError(refused.code, refused.message) from None
    if not lines:
        raise CartkeeperError(ErrorCode.CART_EMPTY, "an order keeps at least one line")
    return lines


def delivery_changes(
    form: FormData, current: Delivery | None, currency: str | None
) -> dict[str, Any]:
    """The delivery fields the form changes: those posted whose value differs from the
    order's (an empty field clears it; the cost is an amount, empty is 0; a country is
    upper-cased). Fields the form did not post (disabled: not editable in this status)
    stay as they are."""
    now = current or Delivery()
    changes: dict[str, Any] = {}
    for name in DELIVERY_FIELDS:
        if name not in form:
            continue
        raw = form.get(name)
        text = raw.strip() if isinstance(raw, str) else ""
        value: Any
        if name == "cost":
            value = parse_amount(text, currency, "delivery cost") if text else 0
        else:
            value = (text.upper() if name == "country" else text) or None
        if value != getattr(now, name):
            changes[name] = value
    return changes


# --------------------------------------------------------------------------- running


def describe(view: CartView, what: str) -> str:
    """``Status set: order 12 is A Awaiting, total €21.00, paid €0.00, balance €21.00``."""
    currency = view.currency
    number = view.order_number if view.order_number is not None else "(number pending)"
    status = " ".join(part for part in (view.order_status, view.order_status_name) if part)
    total = view.order_total if view.order_total is not None else view.total
    final = " (final)" if view.order_final else ""
    return (
        f"{what}: order {number} is {status or '-'}{final}, total {money(total, currency)},"
        f" paid {money(view.amount_paid, currency)}, balance {money(view.balance, currency)}"
    )


async def _act(
    request: Request,
    context: WebContext,
    admin: AdminSession,
    shop_id: str,
    number: str,
    verb: str,
    action: Action,
) -> RedirectResponse:
    row = await find_order(context, shop_id, number)
    form = await request.form()  # read (and cached) by the CSRF check
    back = order_path(shop_id, row.number or 0)

    async def work() -> str:
        return await action(await context.acting_carts(), context, row, admin, form)

    subject = f"order {shop_id}/{number}"
    return await answer_action(
        request, back, verb, subject, admin, work(), refusals=(ShippingMethodRefused,)
    )


# --------------------------------------------------------------------------- the actions


async def _status(
    carts: CartkeeperClient, context: WebContext, row: OrderRow, admin: AdminSession, form: FormData
) -> str:
    letter = _text(form, "status") or ""
    view = await carts.set_order_status(
        row.shop_id, row.cart_id, letter, admin=admin.username, note=_text(form, "note")
    )
    return describe(view, "Status set")


async def _delivery(
    carts: CartkeeperClient, context: WebContext, row: OrderRow, admin: AdminSession, form: FormData
) -> str:
    cart = await carts.get_cart(row.shop_id, row.cart_id)
    order = cart.order
    currency = order.currency if order is not None else row.currency
    changes = delivery_changes(form, order.delivery if order is not None else None, currency)
    if not changes:
        return "Nothing to change: the delivery is as given"
    method = changes.get("method")
    if isinstance(method, str) and "cost" not in changes:
        snapshot = await method_snapshot(context.sessions, row.shop_id, method)
        if snapshot.currency != currency:
            raise CartkeeperError(
                ErrorCode.CURRENCY_MISMATCH,
                f"shipping method {snapshot.method_id} costs"
                f" {money(snapshot.cost, snapshot.currency)}; the order is in {currency}:"
                " give the cost",
            )
        changes["cost"] = snapshot.cost
    view = await carts.edit_delivery(
        row.shop_id, row.cart_id, admin=admin.username, note=_text(form, "note"), **changes
    )
    return describe(view, f"Delivery changed ({', '.join(sorted(changes))})")


async def _lines(
    carts: CartkeeperClient, context: WebContext, row: OrderRow, admin: AdminSession, form: FormData
) -> str:
    lines = read_lines(form, row.currency)
    view = await carts.edit_order_lines(
        row.shop_id, row.cart_id, lines, admin=admin.username, note=_text(form, "note")
    )
    count = len(lines)
    return describe(view, f"Contents replaced ({count} line{'s' if count != 1 else ''})")


async def _payment(
    carts: CartkeeperClient, context: WebContext, row: OrderRow, admin: AdminSession, form: FormData
) -> str:
    kind = _text(form, "kind") or PAYMENT_KIND
    if kind not in (PAYMENT_KIND, REFUND_KIND):
        raise CartkeeperError(ErrorCode.INVALID_PAYMENT, "kind is payment or refund")
    amount = parse_amount(_text(form, "amount") or "", row.currency)
    currency = row.currency or ""
    view = await carts.record_payment(
        row.shop_id,
        row.cart_id,
        admin=admin.username,
        kind=kind,
        amount=amount,
        currency=currency,
        reference=_text(form, "reference"),
        note=_text(form, "note"),
    )
    recorded = "Refund" if kind == REFUND_KIND else "Payment"
    return describe(view, f"{recorded} of {money(amount, currency)} recorded")


async def _note(
    carts: CartkeeperClient, context: WebContext, row: OrderRow, admin: AdminSession, form: FormData
) -> str:
    view = await carts.add_order_note(
        row.shop_id, row.cart_id, _text(form, "note") or "", admin=admin.username
    )
    return describe(view, "Note added")


@router.post("/admin/orders/{shop_id}/{number}/status", summary="Set an order's status")
async def set_status(
    shop_id: str, number: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, number, "status change", _status)


@router.post("/admin/orders/{shop_id}/{number}/delivery", summary="Edit an order's delivery")
async def edit_delivery(
    shop_id: str, number: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, number, "delivery change", _delivery)


@router.post("/admin/orders/{shop_id}/{number}/lines", summary="Replace an order's lines")
async def edit_lines(
    shop_id: str, number: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, number, "contents change", _lines)


@router.post("/admin/orders/{shop_id}/{number}/payment", summary="Record a payment or refund")
async def record_payment(
    shop_id: str, number: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, number, "payment", _payment)


@router.post("/admin/orders/{shop_id}/{number}/note", summary="Add a note to an order")
async def add_note(
    shop_id: str, number: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, number, "note", _note)
