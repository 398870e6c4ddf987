"""The admin API's carts: the list (read model), one cart (its workflow), the admin's
actions on a cart (Temporal updates with the calling user as the admin, so the cart's
journal records who acted) and the journals of a cart and of a customer.

    GET  /api/v1/admin/carts                                  list, filtered, keyset pages
    GET  /api/v1/admin/carts/{shop_id}/{cart_id}              the whole cart
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/confirm      {status P|O, note}
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/unlock       {note}
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/delete       {note}
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/resolve      {items, note}
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/remind       {reminder_id, note}
    POST /api/v1/admin/carts/{shop_id}/{cart_id}/status       {status, note}
    GET  /api/v1/admin/carts/{shop_id}/{cart_id}/journal      oldest first
    GET  /api/v1/admin/shops/{shop_id}/journal?email=...      a customer's, newest first

Every action answers the cart's compact view (``CartView``) or the workflow's refusal
(``not_locked`` 409 ...). A confirmation (and a status that makes a not finished order an
order) waits up to ``NUMBER_WAIT`` seconds for the order's number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from activities import journal_query
from activities.journal_query import CartJournal, JournalItem, JournalPage
from activities.read_model import get_cart_record
from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.output import cart_json, jsonable
from starter.web.admin_api_calls import (
    AdminCall,
    JsonBody,
    Reader,
    Writer,
    admin_router,
    answers,
    dumped,
    text_filter,
    when,
)
from starter.web.admin_cart_query import DEFAULT_LIMIT, MAX_LIMIT, CartFilters, list_cart_page
from workflows.contract import ADMIN_CONFIRM_STATUSES, CartState, CartView, ErrorCode
from workflows.validation import ID_PATTERN, valid_id

router = admin_router("admin: carts")

#: seconds an answer waits for a new order's number
NUMBER_WAIT = 8.0
#: seconds ``GET`` waits for the cart's workflow before answering the read model's record
QUERY_TIMEOUT = 5.0
CONFIRM_STATUSES = sorted(ADMIN_CONFIRM_STATUSES, key="PO".find)

ShopId = Annotated[str, Path(description="The shop's id.", examples=["demo"])]
CartId = Annotated[str, Path(description="The storefront's cart id.", examples=["cart-42"])]

VIEW_EXAMPLE = {
    "shop_id": "demo",
    "cart_id": "cart-42",
    "state": "ordered",
    "version": 9,
    "total": 2100,
    "currency": "EUR",
    "item_count": 3,
    "order_number": 1042,
    "order_status": "P",
    "order_paid": True,
    "amount_paid": 2100,
    "order_status_name": "Processed",
    "order_final": False,
    "order_total": 2100,
    "balance": 0,
    "needs_admin": False,
    "attention": [],
    "lock_reason": None,
}
_VIEW = answers("The cart's compact view after the action", VIEW_EXAMPLE)
_ITEM_EXAMPLE = {
    "at": "2026-11-30T09:00:00+00:00",
    "shop_id": "demo",
    "cart_id": "cart-42",
    "kind": "cart_confirmed",
    "actor": "admin:ann",
    "detail": "order P; PayPal shows it",
    "source": "journal",
}


class NoteBody(JsonBody):
    note: str | None = Field(default=None, description="Why (kept in the cart's journal).")

    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "asked by the customer"}]})


class ConfirmBody(JsonBody):
    status: str = Field(
        default="P",
        description="P processed: you saw the payment (the current attempt is recorded as"
        " paid by you); O open: the order awaits its payment.",
    )
    note: str | None = Field(default=None, description="Why (kept in the cart's journal).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "P", "note": "PayPal shows the payment"}]}
    )


class ResolveBody(JsonBody):
    items: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None,
        description="The attention items' numbers (the cart's `attention`); none: all.",
    )
    note: str | None = Field(default=None, description="What you did (kept with the items).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [2], "note": "refunded 1.00 in the gateway"}]}
    )


class RemindBody(JsonBody):
    reminder_id: str = Field(description="A reminder of the shop's campaign.")
    note: str | None = Field(default=None, description="Why (kept in the cart's journal).")

    model_config = ConfigDict(json_schema_extra={"examples": [{"reminder_id": "first"}]})


class StatusBody(JsonBody):
    status: str = Field(description="One of the shop's status letters (not N).")
    note: str | None = Field(default=None, description="Why (kept in the order's status history).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "A", "note": "stock checked"}]}
    )


# --------------------------------------------------------------------------- reading


@router.get(
    "/carts",
    summary="List carts",
    description="Carts from the read model (the workflows' projection: it may lag a cart"
    " by the projection interval), most recently updated first, a page at a time: the"
    " next page is `after=<next_cursor>` with the same filters (`next_cursor` null: the"
    " last page). Times: a day `YYYY-MM-DD` (UTC; `*_to` includes it) or an ISO 8601"
    " time. A filter that cannot be read is 422 `invalid_filter` / `invalid_input`, a"
    " cursor this list did not give `invalid_cursor`.",
    responses=answers(
        "A page of carts",
        {
            "carts": [
                {
                    "shop_id": "demo",
                    "cart_id": "cart-42",
                    "state": "locked",
                    "total": 2100,
                    "currency": "EUR",
                    "needs_admin": True,
                    "lock_reason": "payment_pending",
                    "updated_at": "2026-11-30T09:00:00+00:00",
                }
            ],
            "next_cursor": "eyJ2IjoxLC...",
        },
    ),
)
async def list_carts(
    call: Reader,
    state: Annotated[CartState | None, Query(description="Only carts in this state.")] = None,
    shop: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only this shop's carts.")
    ] = None,
    email: Annotated[
        str | None, Query(max_length=320, description="The customer's e-mail (any case).")
    ] = None,
    needs_admin: Annotated[
        bool | None, Query(description="Only carts that need an admin (true).")
    ] = None,
    created_from: Annotated[str | None, Query(max_length=40, examples=["2026-11-01"])] = None,
    created_to: Annotated[str | None, Query(max_length=40, examples=["2026-11-30"])] = None,
    updated_from: Annotated[str | None, Query(max_length=40)] = None,
    updated_to: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Carts a page.")] = DEFAULT_LIMIT,
    after: Annotated[
        str | None, Query(max_length=1000, description="The previous page's next_cursor.")
    ] = None,
) -> Response:
    async def work() -> dict[str, Any]:
        filters = CartFilters(
            state=state,
            shop_id=shop,
            email=text_filter(email, "email"),
            needs_admin=needs_admin,
            created_from=when(created_from, "created_from"),
            created_until=when(created_to, "created_to", end=True),
            updated_from=when(updated_from, "updated_from"),
            updated_until=when(updated_to, "updated_to", end=True),
        )
        page = await list_cart_page(call.sessions, filters, limit=limit, after=after or None)
        return {"carts": page.rows, "next_cursor": page.next_cursor}

    return await call.read(work)


@router.get(
    "/carts/{shop_id}/{cart_id}",
    summary="Get a cart",
    description="The whole cart (lines, customer, payment attempts with amount, gateway,"
    " card's last four digits and time, order, attention items, reminders, journal) from"
    " its workflow, the source of truth: `source` is `workflow`. When the workflow does"
    f" not answer within {QUERY_TIMEOUT:g} s (Temporal down, the workflow retired), the"
    " read model's last record, `source` `read_model` and `stale` saying why. 404"
    " `cart_not_found` when neither has it.",
    responses=answers(
        "The cart",
        {"shop_id": "demo", "cart_id": "cart-42", "state": "locked", "source": "workflow"},
    ),
)
async def get_cart(shop_id: ShopId, cart_id: CartId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        if not (valid_id(shop_id) and valid_id(cart_id)):  # never asked of the database
            raise CartkeeperError(ErrorCode.INVALID_ID, "the shop's or the cart's id is not an id")
        why: str
        try:
            carts = await call.context.carts()
            cart = await asyncio.wait_for(carts.get_cart(shop_id, cart_id), QUERY_TIMEOUT)
            return {**cart_json(cart, source="workflow"), "stale": None}
        except TimeoutError:
            why = f"its workflow did not answer within {QUERY_TIMEOUT:g} s"
        except CartkeeperError as error:
            if error.code is ErrorCode.INVALID_ID:
                raise
            why = (
                "its workflow is gone (retired)"
                if error.code is ErrorCode.CART_NOT_FOUND
                else f"its workflow did not answer ({error.code}: {error.message})"
            )
        record = await get_cart_record(call.sessions, shop_id, cart_id)
        if record is None:
            raise CartkeeperError(
                ErrorCode.CART_NOT_FOUND, f"no cart {cart_id!r} in shop {shop_id!r}"
            )
        return {**cart_json(record, source="read_model"), "stale": why}

    return await call.read(work)


def item_json(item: JournalItem) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(item)
    data.pop("key", None)
    return data


@router.get(
    "/carts/{shop_id}/{cart_id}/journal",
    summary="A cart's journal",
    description="What happened to the cart, oldest first, from the read model: its"
    " journal entries (admin actions with `actor` `admin:<user>`), the reminders sent and"
    " skipped and the recovery clicks. A cart keeps its newest entries only: `dropped`"
    " says how many older ones are gone. 404 `journal_not_found` for a cart the shop does"
    " not have.",
    responses=answers(
        "The cart's journal",
        {
            "shop_id": "demo",
            "cart_id": "cart-42",
            "state": "ordered",
            "customer_email": "ann@example.com",
            "dropped": 0,
            "items": [_ITEM_EXAMPLE],
        },
    ),
)
async def cart_journal(shop_id: ShopId, cart_id: CartId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        found: CartJournal = await journal_query.cart_journal(call.sessions, shop_id, cart_id)
        return {
            "shop_id": found.shop_id,
            "cart_id": found.cart_id,
            "state": found.state,
            "customer_email": found.customer_email,
            "dropped": found.dropped,
            "items": [item_json(item) for item in found.items],
        }

    return await call.read(work)


@router.get(
    "/shops/{shop_id}/journal",
    summary="A customer's journal",
    description="What happened to every cart of the customer (`email`, any case) in the"
    " shop, newest first, a page at a time (`after=<next_cursor>`, the same e-mail)."
    " `dropped`: per cart read for the page, how many of its oldest entries are gone.",
    responses=answers(
        "A page of the customer's journal",
        {
            "shop_id": "demo",
            "email": "ann@example.com",
            "items": [_ITEM_EXAMPLE],
            "dropped": {"cart-42": 0},
            "next_cursor": None,
        },
    ),
)
async def customer_journal(
    shop_id: ShopId,
    call: Reader,
    email: Annotated[str, Query(max_length=320, examples=["ann@example.com"])],
    limit: Annotated[int, Query(ge=1, le=journal_query.MAX_LIMIT)] = journal_query.DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    async def work() -> dict[str, Any]:
        page: JournalPage = await journal_query.customer_journal(
            call.sessions, shop_id, email, limit=limit, after=after or None
        )
        return {
            "shop_id": page.shop_id,
            "email": page.email,
            "items": [item_json(item) for item in page.items],
            "dropped": dict(page.dropped),
            "next_cursor": page.next_cursor,
        }

    return await call.read(work)


# --------------------------------------------------------------------------- acting


async def act(
    call: AdminCall,
    body: JsonBody | None,
    action: Callable[[CartkeeperClient], Awaitable[CartView]],
) -> Response:
    """``action`` through the cart client, once per ``Idempotency-Key``."""

    async def work() -> CartView:
        return await action(await call.context.acting_carts())

    return await call.write(dumped(body), work)


async def numbered(carts: CartkeeperClient, shop_id: str, cart_id: str, view: CartView) -> CartView:
    """``view``, or once its new order has its number (given right after), the cart
    then; ``view`` itself when the number takes longer."""
    if view.order_status is None or view.order_number is not None:
        return view
    try:
        return await asyncio.wait_for(
            carts.await_order(shop_id, cart_id, timeout_seconds=NUMBER_WAIT), NUMBER_WAIT * 1.5
        )
    except TimeoutError:
        return view
    except CartkeeperError as error:
        if error.code is not ErrorCode.UPDATE_PENDING:
            raise
        return view


@router.post(
    "/carts/{shop_id}/{cart_id}/confirm",
    summary="Confirm a locked cart",
    description="The locked cart becomes an order with status P (you saw the payment) or"
    " O (it awaits its payment), and gets its number (the answer waits up to"
    f" {NUMBER_WAIT:g} s for it). Refused: `not_locked` 409, `invalid_status` 422.",
    responses=_VIEW,
)
async def confirm(
    shop_id: ShopId, cart_id: CartId, call: Writer, body: ConfirmBody | None = None
) -> Response:
    given = body or ConfirmBody()

    async def action(carts: CartkeeperClient) -> CartView:
        if given.status not in CONFIRM_STATUSES:
            raise CartkeeperError(
                ErrorCode.INVALID_STATUS,
                f"{given.status[:10]!r} is not one of {', '.join(CONFIRM_STATUSES)}",
            )
        view = await carts.confirm(
            shop_id, cart_id, admin=call.username, note=given.note, status=given.status
        )
        return await numbered(carts, shop_id, cart_id, view)

    return await act(call, body, action)


@router.post(
    "/carts/{shop_id}/{cart_id}/unlock",
    summary="Unlock a locked cart",
    description="The customer can go on with the same cart (it is active again; its"
    " payment attempts stay on record). Refused: `not_locked` 409.",
    responses=_VIEW,
)
async def unlock(
    shop_id: ShopId, cart_id: CartId, call: Writer, body: NoteBody | None = None
) -> Response:
    note = body.note if body else None
    return await act(
        call, body, lambda carts: carts.unlock(shop_id, cart_id, admin=call.username, note=note)
    )


@router.post(
    "/carts/{shop_id}/{cart_id}/delete",
    summary="Delete a cart",
    description="The customer starts again with an empty cart. Deleting twice is one"
    " deletion. Refused for an order (`already_ordered` 409) and an expired cart (410).",
    responses=_VIEW,
)
async def delete(
    shop_id: ShopId, cart_id: CartId, call: Writer, body: NoteBody | None = None
) -> Response:
    note = body.note if body else None
    return await act(
        call, body, lambda carts: carts.delete(shop_id, cart_id, admin=call.username, note=note)
    )


@router.post(
    "/carts/{shop_id}/{cart_id}/resolve",
    summary="Resolve attention items",
    description="Resolve the attention items numbered `items` (all open ones without it),"
    " with a note of what you did; they stay on the cart with who resolved them."
    " Refused: `nothing_to_resolve` 409.",
    responses=_VIEW,
)
async def resolve(
    shop_id: ShopId, cart_id: CartId, call: Writer, body: ResolveBody | None = None
) -> Response:
    given = body or ResolveBody()
    return await act(
        call,
        body,
        lambda carts: carts.resolve(
            shop_id, cart_id, admin=call.username, note=given.note, items=given.items
        ),
    )


@router.post(
    "/carts/{shop_id}/{cart_id}/remind",
    summary="Send a reminder now",
    description="Send reminder `reminder_id` of the shop's campaign to an abandoned cart"
    " now (once per cart). The cart answers at once; the send-time checks decide, and"
    " the outcome (sent, or skipped with its reason) shows in the cart's `reminders`."
    " Refused: `not_abandoned`, `no_address`, `reminder_already_sent` 409.",
    responses=_VIEW,
)
async def remind(shop_id: ShopId, cart_id: CartId, call: Writer, body: RemindBody) -> Response:
    return await act(
        call,
        body,
        lambda carts: carts.send_reminder(
            shop_id, cart_id, body.reminder_id, admin=call.username, note=body.note
        ),
    )


@router.post(
    "/carts/{shop_id}/{cart_id}/status",
    summary="Set the status of a cart's order",
    description="The order of the cart enters status `status`; a not finished order (a"
    " locked cart, no number yet) becomes an order with it and gets its number (the"
    f" answer waits up to {NUMBER_WAIT:g} s for it). Refused: `unknown_status` 422,"
    " `status_hidden` 409 (N is set by the checkout), `payment_required` 409 (a paid"
    " status the payments do not cover), `not_an_order` 409.",
    responses=_VIEW,
)
async def set_status(shop_id: ShopId, cart_id: CartId, call: Writer, body: StatusBody) -> Response:
    async def action(carts: CartkeeperClient) -> CartView:
        view = await carts.set_order_status(
            shop_id, cart_id, body.status, admin=call.username, note=body.note
        )
        return await numbered(carts, shop_id, cart_id, view)

    return await act(call, body, action)
