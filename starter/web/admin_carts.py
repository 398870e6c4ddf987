"""The console's carts: the list (``GET /admin/carts``) and one cart
(``GET /admin/carts/{shop_id}/{cart_id}``); its actions are ``admin_cart_actions``.

The list reads the read model (``admin_cart_query``): filters ``state``, ``shop``,
``email`` (the customer's, any case), ``created_from`` / ``created_to`` and
``updated_from`` / ``updated_to`` (days, UTC, both ends included), ``needs_admin``; pages
by keyset (``after``). A filter it cannot read is shown on the page (400), never a 500.

A cart's page asks the cart's workflow (the source of truth: lines, totals, payment
attempts with amount, gateway, card's last four digits and time, to match the gateway's
records, attention items, reminders, the journal as a timeline); when the workflow does
not answer (Temporal down, the workflow retired), it shows the read model's last record
and says so. It links the workflow in the Temporal UI (``Settings.temporal_ui_url``).
A *not finished order* (a cart at the payment step, locked say, with lines and no order
yet) gets the shop's order statuses an admin may set (``admin_cart_actions`` posts it):
its status makes it an order with a number.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from activities.campaigns import load_campaign
from activities.order_status_rules import OrderStatusDef, StatusRefused
from activities.order_statuses import list_statuses
from activities.read_model import get_cart_record
from starter.client_errors import CartkeeperError
from starter.web.admin_auth import AdminRefused, Viewer
from starter.web.admin_cart_query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CartFilters,
    CartQueryRefused,
    list_cart_page,
)
from starter.web.admin_render import render_admin, whole_number
from starter.web.deps import Context, WebContext
from workflows.contract import ADMIN_CONFIRM_STATUSES, Cart, CartState, ErrorCode, workflow_id
from workflows.order_phase import NOT_FINISHED_STATES
from workflows.validation import valid_id

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

STATES = [str(state) for state in CartState]
CONFIRM_STATUSES = sorted(ADMIN_CONFIRM_STATUSES, key="PO".find)
DEFAULT_TEMPORAL_UI = "http://localhost:8233"
#: how long the page waits for the cart's workflow before showing the read model's record
QUERY_TIMEOUT = 5.0
#: the filters the list reads from the query string
FILTER_NAMES = (
    "state",
    "shop",
    "email",
    "needs_admin",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
)


def cart_path(shop_id: str, cart_id: str) -> str:
    return f"/admin/carts/{quote(shop_id, safe='')}/{quote(cart_id, safe='')}"


# --------------------------------------------------------------------------- the list


def _day(value: str, name: str, problems: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        problems.append(f"{name}: {value!r} is not a date YYYY-MM-DD")
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _day_after(value: str, name: str, problems: list[str]) -> datetime | None:
    start = _day(value, name, problems)
    try:
        return start + timedelta(days=1) if start is not None else None
    except OverflowError:
        return None


def read_filters(query: dict[str, str]) -> tuple[CartFilters, list[str]]:
    """The list's filters from the query string, and what could not be read."""
    problems: list[str] = []
    state = None
    if query.get("state"):
        if query["state"] in STATES:
            state = CartState(query["state"])
        else:
            problems.append(f"state: {query['state']!r} is not one of {', '.join(STATES)}")
    shop = query.get("shop") or None
    if shop is not None and not valid_id(shop):
        problems.append(f"shop: {shop!r} is not a shop id")
        shop = None
    email = query.get("email", "").strip() or None
    if email is not None and len(email) > 320:
        problems.append("email: too long")
        email = None
    filters = CartFilters(
        state=state,
        shop_id=shop,
        email=email,
        needs_admin=True if query.get("needs_admin") else None,
        created_from=_day(query.get("created_from", ""), "created_from", problems),
        created_until=_day_after(query.get("created_to", ""), "created_to", problems),
        updated_from=_day(query.get("updated_from", ""), "updated_from", problems),
        updated_until=_day_after(query.get("updated_to", ""), "updated_to", problems),
    )
    return filters, problems


def _limit(raw: str | None, problems: list[str]) -> int:
    if not raw:
        return DEFAULT_LIMIT
    if whole_number(raw, 1, MAX_LIMIT) is not None:
        return int(raw)
    problems.append(f"limit: a page has 1 to {MAX_LIMIT} carts")
    return DEFAULT_LIMIT


@router.get("/admin/carts", summary="Carts")
async def carts_list(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    query = {name: request.query_params.get(name, "") for name in FILTER_NAMES}
    filters, problems = read_filters(query)
    limit = _limit(request.query_params.get("limit"), problems)
    after = request.query_params.get("after") or None
    rows: tuple[Any, ...] = ()
    next_link = None
    kept = {key: value for key, value in query.items() if value}
    if limit != DEFAULT_LIMIT:
        kept["limit"] = str(limit)
    first_link = "/admin/carts?" + urlencode(kept) if after else None
    if not problems:
        try:
            page = await list_cart_page(context.sessions, filters, limit=limit, after=after)
        except CartQueryRefused as refused:
            problems.append(refused.message)
        else:
            rows = page.rows
            if page.next_cursor:
                next_link = "/admin/carts?" + urlencode({**kept, "after": page.next_cursor})
    return render_admin(
        request,
        "admin/carts.html",
        400 if problems else 200,
        active="carts",
        query=query,
        states=STATES,
        rows=rows,
        problems=problems,
        next_link=next_link,
        first_link=first_link,
    )


# --------------------------------------------------------------------------- one cart


@dataclass(frozen=True)
class Found:
    """The cart, and why it is the read model's record (``None``: its workflow's); the
    Temporal namespace when Temporal could be reached."""

    cart: Cart
    stale: str | None
    namespace: str | None = None


def not_found(shop_id: str, cart_id: str) -> AdminRefused:
    return AdminRefused(
        404, "cart_not_found", "No such cart", f"There is no cart {cart_id} in shop {shop_id}."
    )


async def find_cart(context: WebContext, shop_id: str, cart_id: str) -> Found:
    """The cart from its workflow, else its last record in the read model, else 404."""
    why: str
    namespace = None
    try:
        carts = await context.carts()
        namespace = carts.client.namespace
        cart = await asyncio.wait_for(carts.get_cart(shop_id, cart_id), QUERY_TIMEOUT)
        return Found(cart, None, namespace)
    except TimeoutError:
        why = f"its workflow did not answer within {QUERY_TIMEOUT:g} s (is a worker running?)"
    except CartkeeperError as error:
        if error.code is ErrorCode.CART_NOT_FOUND:
            why = "its workflow is gone (retired)"
        else:
            why = f"its workflow did not answer ({error.code}: {error.message})"
    record = await get_cart_record(context.sessions, shop_id, cart_id)
    if record is None:
        raise not_found(shop_id, cart_id)
    return Found(record, why, namespace)


def workflow_link(context: WebContext, shop_id: str, cart_id: str, namespace: str | None) -> str:
    """The cart's workflow in the Temporal UI (an address that is not http(s) is
    replaced by the default: the link must never run anything)."""
    settings = context.settings
    base = (settings.temporal_ui_url if settings else "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        base = DEFAULT_TEMPORAL_UI
    namespace = namespace or "default"
    return (
        f"{base}/namespaces/{quote(namespace, safe='')}/workflows/"
        f"{quote(workflow_id(shop_id, cart_id), safe='')}"
    )


async def _reminder_choices(context: WebContext, shop_id: str) -> list[tuple[str, str]]:
    campaign = await load_campaign(context.sessions, shop_id)
    if campaign is None:
        return []
    return [(r.reminder_id, r.name) for r in campaign.reminders if not r.removed]


def not_finished_order(cart: Cart) -> bool:
    """The cart is a not finished order: at the payment step with lines, no order yet
    (an admin's status makes it one: ``set_order_status``)."""
    return cart.order is None and cart.state in NOT_FINISHED_STATES and bool(cart.lines)


async def settable_statuses(context: WebContext, shop_id: str) -> list[OrderStatusDef]:
    """The shop's statuses an admin may set (not the hidden ``N``); none when the
    registry cannot be read (the workflow checks the letter anyway)."""
    try:
        statuses = await list_statuses(context.sessions, shop_id)
    except StatusRefused:
        return []
    return [status for status in statuses if not status.hidden]


@router.get("/admin/carts/{shop_id}/{cart_id}", summary="One cart")
async def cart_page(
    shop_id: str, cart_id: str, request: Request, admin: Viewer, context: Context
) -> HTMLResponse:
    if not (valid_id(shop_id) and valid_id(cart_id)):
        raise not_found(shop_id, cart_id)
    found = await find_cart(context, shop_id, cart_id)
    cart = found.cart
    unfinished = not_finished_order(cart)
    return render_admin(
        request,
        "admin/cart.html",
        active="carts",
        cart=cart,
        stale=found.stale,
        path=cart_path(shop_id, cart_id),
        workflow_link=workflow_link(context, shop_id, cart_id, found.namespace),
        reminders=await _reminder_choices(context, shop_id),
        confirm_statuses=CONFIRM_STATUSES,
        not_finished=unfinished,
        order_statuses=await settable_statuses(context, shop_id) if unfinished else [],
        journal=list(reversed(cart.journal)),
        final=cart.state.is_final,
    )
