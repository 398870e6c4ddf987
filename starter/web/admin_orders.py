"""The console's orders (seed 002; DOMAIN.md section 3): the list (``GET /admin/orders``)
and one order (``GET /admin/orders/{shop_id}/{number}``); its actions are
``admin_order_actions``.

The list is the read model's orders list (``starter.orders.OrdersClient``, as
``cartkeeper orders list``): seed 002's columns (number, created at, status with its
colour, customer, delivery, total, paid, payment method, fully paid), not finished orders
included (no number, status ``N``, payment "not defined"; they link to their cart's page:
a locked cart is confirmed there). Filters from the query string: ``shop`` (default the
settings' ``default_shop``), ``status`` (a letter, or ``not_finished``), ``number``,
``email`` (the customer's, any case), ``created_from`` / ``created_to`` (days, UTC, both
included), ``sort`` (``newest``, ``oldest``), ``limit``; pages by keyset (``after``).
The counts per status (``orders counts``) head the page. A filter it cannot read is shown
on the page (400), never a 500.

An order's page asks the order's cart workflow (the source of truth; the read model's
last record when it does not answer, and the page says so): status history, delivery,
lines, payments and refunds, total, paid and balance, stock moves, status e-mails, notes
and the journal, with the forms of the actions an admin may take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities.order_status_rules import OrderStatusDef, StatusRefused
from activities.order_statuses import list_statuses
from activities.orders_query import NOT_FINISHED, OrderRow, OrdersQueryRefused, get_order
from activities.shipping_methods import ShippingMethod, ShippingMethodRefused, list_methods
from starter.orders import OrdersClient
from starter.web.admin_auth import AdminRefused, Viewer
from starter.web.admin_carts import cart_path, find_cart
from starter.web.admin_render import plain, render_admin, whole_number
from starter.web.deps import Context, WebContext
from workflows.codes import JournalKind
from workflows.order_checks import DELIVERY_FIELDS
from workflows.order_phase import DELIVERY_LOCKED_FIELDS
from workflows.state import Cart
from workflows.validation import valid_id

router = APIRouter(tags=["admin"], include_in_schema=False)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SORTS = ("newest", "oldest")
#: the filters the list reads from the query string (and keeps in its page links)
FILTER_NAMES = ("shop", "status", "number", "email", "created_from", "created_to", "sort")
#: a status colour the page draws (anything else is drawn grey: it goes into an SVG fill)
_COLOUR = re.compile(r"#[0-9A-Fa-f]{3}(?:[0-9A-Fa-f]{3})?")
UNKNOWN_COLOUR = "#a1a1aa"
#: the delivery's fields as the order's page shows and edits them
DELIVERY_LABELS = (
    ("method", "Method"),
    ("cost", "Cost"),
    ("tracking_code", "Tracking code"),
    ("recipient_name", "Recipient"),
    ("email", "E-mail"),
    ("phone", "Phone"),
    ("address", "Address"),
    ("postal_code", "Postal code"),
    ("city", "City"),
    ("country", "Country"),
    ("comment", "Comment"),
)
assert {name for name, _ in DELIVERY_LABELS} == set(DELIVERY_FIELDS)


def order_path(shop_id: str, number: int) -> str:
    return f"/admin/orders/{quote(shop_id, safe='')}/{number}"


def colour(value: str | None) -> str:
    """A status colour safe to draw (``#rgb`` / ``#rrggbb``), else grey."""
    return value if value is not None and _COLOUR.fullmatch(value) else UNKNOWN_COLOUR


def default_shop(context: WebContext) -> str:
    return context.settings.default_shop if context.settings else "demo"


def orders_client(context: WebContext) -> OrdersClient:
    """The read model's orders, with the settings' not finished conditions."""
    settings = context.settings
    return OrdersClient(
        context.sessions,
        not_finished_when=settings.not_finished_for if settings else None,
    )


async def shop_statuses(context: WebContext, shop_id: str) -> tuple[OrderStatusDef, ...]:
    try:
        return await list_statuses(context.sessions, shop_id)
    except StatusRefused:
        return ()


# --------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class ListQuery:
    """The list's filters as read from the query string (``problems``: what could not be
    read); ``kept``: the filters given, for the page links."""

    shop_id: str
    status: str | None
    number: int | None
    email: str | None
    since: datetime | None
    until: datetime | None
    sort: str
    limit: int
    after: str | None
    problems: tuple[str, ...]
    kept: dict[str, str]


def _day(value: str, name: str, problems: list[str], *, end: bool) -> datetime | None:
    """A day ``YYYY-MM-DD`` (UTC): its start, or (``end``) the next day's start."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: {value[:40]!r} is not a date YYYY-MM-DD")
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        return start + timedelta(days=1) if end else start
    except OverflowError:  # the calendar's last day: up to its end
        return None


def read_query(params: dict[str, str], shop_default: str) -> ListQuery:
    problems: list[str] = []
    given = {name: params.get(name, "").strip() for name in FILTER_NAMES}
    shop = given["shop"] or shop_default
    if not valid_id(shop):
        problems.append(f"shop: {shop[:70]!r} is not a shop id")
        shop = shop_default
    status = given["status"] or None
    if status is not None and status.lower() != NOT_FINISHED:
        if len(status) == 1 and "A" <= status.upper() <= "Z":
            status = status.upper()
        else:
            problems.append(f"status: {status[:40]!r} is one letter A-Z or {NOT_FINISHED}")
            status = None
    number = None
    if given["number"]:
        raw = given["number"]
        if whole_number(raw) is not None:
            number = int(raw)
        else:
            problems.append(f"number: {raw[:40]!r} is not an order number")
    email = given["email"] or None
    if email is not None and len(email) > 320:
        problems.append("email: too long")
        email = None
    sort = given["sort"] or "newest"
    if sort not in SORTS:
        problems.append(f"sort: {sort[:40]!r} is newest or oldest")
        sort = "newest"
    limit = DEFAULT_LIMIT
    raw_limit = params.get("limit", "")
    if raw_limit:
        if whole_number(raw_limit, 1, MAX_LIMIT) is not None:
            limit = int(raw_limit)
        else:
            problems.append(f"limit: a page has 1 to {MAX_LIMIT} orders")
    kept = {name: value for name, value in given.items() if value}
    kept["shop"] = shop
    if limit != DEFAULT_LIMIT:
        kept["limit"] = str(limit)
    return ListQuery(
        shop_id=shop,
        status=status,
        number=number,
        email=email,
        since=_day(given["created_from"], "created_from", problems, end=False),
        until=_day(given["created_to"], "created_to", problems, end=True),
        sort=sort,
        limit=limit,
        after=params.get("after") or None,
        problems=tuple(problems),
        kept=kept,
    )


@dataclass(frozen=True)
class StatusCount:
    """One entry of the counts heading the list (``letter`` ``not_finished`` included)."""

    letter: str
    name: str
    colour: str
    count: int


def status_counts(
    counts: dict[str, int], statuses: tuple[OrderStatusDef, ...]
) -> list[StatusCount]:
    """Every status an admin sees (0 when no order has it), then letters the shop no
    longer has that orders still carry, then the not finished orders."""
    shown = [
        StatusCount(s.letter, s.name, colour(s.colour), counts.get(s.letter, 0))
        for s in statuses
        if not s.hidden
    ]
    known = {s.letter for s in statuses}
    shown += [
        StatusCount(letter, "(unknown)", UNKNOWN_COLOUR, n)
        for letter, n in sorted(counts.items())
        if letter not in known and letter != NOT_FINISHED
    ]
    hidden = next((s for s in statuses if s.hidden), None)
    shown.append(
        StatusCount(
            NOT_FINISHED,
            "Not finished",
            colour(hidden.colour if hidden else None),
            counts.get(NOT_FINISHED, 0),
        )
    )
    return shown


def row_link(row: OrderRow) -> str:
    """An order's page; a not finished order's cart page (it has no number)."""
    if row.number is None:
        return cart_path(row.shop_id, row.cart_id)
    return order_path(row.shop_id, row.number)


@router.get("/admin/orders", summary="Orders")
async def orders_list(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    query = read_query(dict(request.query_params), default_shop(context))
    problems = list(query.problems)
    orders = orders_client(context)
    rows: tuple[OrderRow, ...] = ()
    next_link = None
    if not problems:
        try:
            page = await orders.list(
                query.shop_id,
                status=query.status,
                since=query.since,
                until=query.until,
                email=query.email,
                number=query.number,
                sort="oldest" if query.sort == "oldest" else "newest",
                limit=query.limit,
                after=query.after,
            )
        except OrdersQueryRefused as refused:
            problems.append(f"{refused.code}: {refused.message}")
        else:
            rows = page.rows
            if page.next_cursor:
                next_link = "/admin/orders?" + urlencode({**query.kept, "after": page.next_cursor})
    statuses = await shop_statuses(context, query.shop_id)
    counts = status_counts(await orders.counts(query.shop_id), statuses)
    return render_admin(
        request,
        "admin/orders.html",
        400 if problems else 200,
        active="orders",
        query=query,
        given={name: request.query_params.get(name, "") for name in FILTER_NAMES},
        counts=counts,
        statuses=[s for s in statuses if not s.hidden],
        rows=rows,
        row_link=row_link,
        colour=colour,
        problems=problems,
        next_link=next_link,
        first_link="/admin/orders?" + urlencode(query.kept) if query.after else None,
        not_finished=NOT_FINISHED,
    )


# --------------------------------------------------------------------------- one order


def order_not_found(shop_id: str, number: object) -> AdminRefused:
    return AdminRefused(
        404,
        "order_not_found",
        "No such order",
        f"Shop {str(shop_id)[:64]} has no order number {str(number)[:20]}.",
    )


def read_number(raw: str) -> int | None:
    return whole_number(raw)


async def find_order(context: WebContext, shop_id: str, raw_number: str) -> OrderRow:
    """The read model's row of the shop's order ``raw_number``, or a 404 page."""
    number = read_number(raw_number)
    if number is None or not valid_id(shop_id):
        raise order_not_found(shop_id, raw_number)
    try:
        return await get_order(context.sessions, shop_id, number)
    except OrdersQueryRefused:
        raise order_not_found(shop_id, number) from None


async def shipping_choices(
    context: WebContext, shop_id: str, current: str | None
) -> list[ShippingMethod]:
    """The shop's enabled shipping methods, and the order's current one even when it is
    disabled now."""
    try:
        methods = await list_methods(context.sessions, shop_id)
    except ShippingMethodRefused:
        return []
    return [m for m in methods if m.enabled or m.method_id == current]


def payment_rows(cart: Cart, currency: str | None) -> list[dict[str, Any]]:
    """The cart's payments and refunds as the page lists them (refunds negative)."""
    rows = []
    for attempt in cart.payments:
        shown = attempt.succeeded_amount if attempt.succeeded_amount is not None else attempt.amount
        rows.append(
            {
                "attempt": attempt,
                "kind": "refund" if attempt.refund else "payment",
                "amount": -shown if attempt.refund else shown,
                "currency": attempt.succeeded_currency or attempt.currency or currency,
                "at": attempt.result_at or attempt.started_at,
            }
        )
    return rows


@router.get("/admin/orders/{shop_id}/{number}", summary="One order")
async def order_page(
    shop_id: str, number: str, request: Request, admin: Viewer, context: Context
) -> HTMLResponse:
    row = await find_order(context, shop_id, number)
    found = await find_cart(context, shop_id, row.cart_id)
    cart = found.cart
    order = cart.order
    currency = order.currency if order is not None else row.currency
    delivery = order.delivery if order is not None else None
    editable = bool(order is not None and order.contents_editable)
    registry = await shop_statuses(context, shop_id)
    statuses = [s for s in registry if not s.hidden]
    journal = list(reversed(cart.journal))
    # the status as the list shows it: the registry's name and colour now, else the
    # order's own (a letter the shop no longer has)
    letter = order.status if order is not None else row.status
    known = next((s for s in registry if s.letter == letter), None)
    own_name = order.status_name if order is not None else row.status_name
    own_colour = order.status_colour if order is not None else row.status_colour
    return render_admin(
        request,
        "admin/order.html",
        active="orders",
        row=row,
        cart=cart,
        order=order,
        currency=currency,
        stale=found.stale,
        status=(
            letter,
            known.name if known else own_name,
            colour(known.colour if known else own_colour),
        ),
        path=order_path(shop_id, row.number or 0),
        cart_link=cart_path(shop_id, row.cart_id),
        list_link="/admin/orders?" + urlencode({"shop": shop_id}),
        colour=colour,
        plain=plain,
        statuses=statuses,
        methods=await shipping_choices(context, shop_id, delivery.method if delivery else None),
        delivery=delivery,
        delivery_labels=DELIVERY_LABELS,
        locked_fields=() if editable else DELIVERY_LOCKED_FIELDS,
        editable=editable,
        payments=payment_rows(cart, currency),
        notes=[e for e in journal if e.kind is JournalKind.ORDER_NOTE_ADDED],
        journal=journal,
        blank_lines=3,
    )
