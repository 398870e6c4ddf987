"""The admin API's orders: the shop's orders list, counts and one order (read model),
and the admin's actions on an order named by its number (Temporal updates of the
order's cart, with the calling user as the admin).

    GET  /api/v1/admin/shops/{shop_id}/orders                      list, keyset pages
    GET  /api/v1/admin/shops/{shop_id}/orders/counts               per status
    GET  /api/v1/admin/shops/{shop_id}/orders/{number}             one order, in full
    POST /api/v1/admin/shops/{shop_id}/orders/{number}/status      {status, note}
    POST /api/v1/admin/shops/{shop_id}/orders/{number}/delivery    {fields..., note}
    POST /api/v1/admin/shops/{shop_id}/orders/{number}/lines       {lines, note}
    POST /api/v1/admin/shops/{shop_id}/orders/{number}/payments    {kind, amount, currency}
    POST /api/v1/admin/shops/{shop_id}/orders/{number}/notes       {note}

A not finished order (a locked cart) has no number: its status is set through its cart,
``POST /api/v1/admin/carts/{shop_id}/{cart_id}/status``. Each action answers the cart's
compact view (the order's status, total, paid amount and balance) or the refusal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from activities.orders_query import DEFAULT_LIMIT, MAX_LIMIT, get_order
from activities.read_model import get_cart_record
from activities.shipping_methods import method_snapshot
from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.order_actions import order_cart
from starter.orders import OrdersClient
from starter.output import jsonable
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
from starter.web.admin_api_carts import VIEW_EXAMPLE, ShopId
from workflows.contract import CartView, ErrorCode
from workflows.parsing import parse_line
from workflows.validation import CartRefused

router = admin_router("admin: orders")

#: the largest order number the read model holds (a 64-bit integer)
MAX_NUMBER = 2**63 - 1
Number = Annotated[
    int,
    Path(
        ge=1,
        le=MAX_NUMBER,
        description="The order's number (without the shop's prefix).",
        examples=[1042],
    ),
]
_VIEW = answers("The cart's compact view after the action", VIEW_EXAMPLE)
_ROW_EXAMPLE = {
    "shop_id": "demo",
    "cart_id": "cart-42",
    "number": 1042,
    "reference": "W-1042",
    "created_at": "2026-11-30T09:00:00+00:00",
    "status": "P",
    "status_name": "Processed",
    "status_colour": "#43a047",
    "total": 2100,
    "amount_paid": 2100,
    "currency": "EUR",
    "fully_paid": True,
    "payment_status": "paid",
}


def _orders(call: AdminCall) -> OrdersClient:
    settings = call.context.settings
    return OrdersClient(
        call.sessions, not_finished_when=settings.not_finished_for if settings else None
    )


# --------------------------------------------------------------------------- reading


@router.get(
    "/shops/{shop_id}/orders",
    summary="List orders",
    description="The shop's orders and not finished orders (locked carts: no number,"
    " status N, payment status `not_defined`), newest first (`sort=oldest`), a page at a"
    " time: the next page is `after=<next_cursor>` with the same filters. `status`: a"
    " letter (N also lists the not finished ones) or `not_finished`; `since` (included) /"
    " `until` (excluded; a day: up to its end) on the creation time, a day `YYYY-MM-DD`"
    " or an ISO 8601 time. A filter that cannot be read is 422 `invalid_filter`.",
    responses=answers("A page of orders", {"orders": [_ROW_EXAMPLE], "next_cursor": None}),
)
async def list_orders(
    shop_id: ShopId,
    call: Reader,
    status: Annotated[str | None, Query(max_length=20, examples=["P"])] = None,
    since: Annotated[str | None, Query(max_length=40, examples=["2026-11-01"])] = None,
    until: Annotated[str | None, Query(max_length=40, examples=["2026-11-30"])] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    number: Annotated[int | None, Query(ge=1, le=MAX_NUMBER)] = None,
    sort: Annotated[Literal["newest", "oldest"], Query()] = "newest",
    include_not_finished: Annotated[bool, Query()] = True,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    async def work() -> dict[str, Any]:
        page = await _orders(call).list(
            shop_id,
            status=status,
            since=when(since, "since"),
            until=when(until, "until", end=True),
            email=text_filter(email, "email"),
            number=number,
            include_not_finished=include_not_finished,
            sort=sort,
            limit=limit,
            after=after or None,
        )
        return {"orders": page.rows, "next_cursor": page.next_cursor}

    return await call.read(work)


@router.get(
    "/shops/{shop_id}/orders/counts",
    summary="Count orders per status",
    description="How many of the shop's orders have each status letter (letters without"
    " orders left out), and how many are not finished (`not_finished`, always there).",
    responses=answers(
        "Orders per status", {"shop_id": "demo", "counts": {"P": 12, "S": 3, "not_finished": 1}}
    ),
)
async def count_orders(shop_id: ShopId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        return {"shop_id": shop_id, "counts": await _orders(call).counts(shop_id)}

    return await call.read(work)


@router.get(
    "/shops/{shop_id}/orders/{number}",
    summary="Get an order",
    description="Order `number`: the list's fields, and `details` from the read model's"
    " last record of its cart (order total, balance, status history, delivery, lines,"
    " payments and refunds, stock moves, status e-mails). 404 `order_not_found`.",
    responses=answers(
        "The order",
        {**_ROW_EXAMPLE, "details": {"order_total": 2100, "balance": 0, "statuses": []}},
    ),
)
async def get_one(shop_id: ShopId, number: Number, call: Reader) -> Response:
    from starter.cli.order_details import details_json  # the CLI's `orders show --json`

    async def work() -> dict[str, Any]:
        row = await _orders(call).get(shop_id, number)
        cart = await get_cart_record(call.sessions, shop_id, row.cart_id)
        data: dict[str, Any] = jsonable(row)
        data["details"] = details_json(cart) if cart is not None else None
        return data

    return await call.read(work)


# --------------------------------------------------------------------------- acting


class StatusBody(JsonBody):
    status: str = Field(description="One of the shop's status letters (not N).")
    note: str | None = Field(default=None, description="Why (kept in the status history).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "S", "note": "sent with DHL"}]}
    )


class DeliveryBody(JsonBody):
    """The delivery's fields to change (those left out stay; `null` clears one)."""

    method: str | None = Field(
        default=None, description="A shipping method's id; without `cost`, its cost too."
    )
    cost: int | None = Field(default=None, description="Minor units of the order's currency.")
    tracking_code: str | None = None
    recipient_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2, upper case (DE).")
    city: str | None = None
    postal_code: str | None = None
    address: str | None = None
    comment: str | None = None
    note: str | None = Field(default=None, description="Why (kept in the order's journal).")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "method": "courier",
                    "recipient_name": "Ann Example",
                    "address": "Main st 1",
                    "postal_code": "10115",
                    "city": "Berlin",
                    "country": "DE",
                },
                {"tracking_code": "JJD0001", "comment": None},
            ]
        }
    )


class LineBody(JsonBody):
    sku: str
    quantity: int = Field(description="A whole number from 1.")
    unit_price: int = Field(description="Minor units of the order's currency.")
    name: str | None = Field(default=None, description="Default: the order's name of the SKU.")


class LinesBody(JsonBody):
    lines: list[LineBody] = Field(description="The order's whole contents (at least one).")
    note: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"lines": [{"sku": "tea", "quantity": 3, "unit_price": 450}]}]
        }
    )


class PaymentBody(JsonBody):
    kind: Literal["payment", "refund"] = Field(default="payment", description="payment or refund")
    amount: int = Field(description="Minor units of the order's currency (2100: 21.00 EUR).")
    currency: str = Field(description="ISO 4217: the order's currency.")
    reference: str | None = Field(default=None, description="The bank transfer's reference ...")
    note: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 2100, "currency": "EUR", "reference": "bank 2026-11-30"},
                {"kind": "refund", "amount": 500, "currency": "EUR", "note": "broken mug"},
            ]
        }
    )


class OrderNoteBody(JsonBody):
    note: str = Field(description="The note (up to 1000 characters).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"note": "called the customer: delivery on Friday"}]}
    )


async def _on_order(
    call: AdminCall, shop_id: str, number: int, body: JsonBody, action: Any
) -> Response:
    """``action(carts, cart_id)`` on order ``number``'s cart, once per key."""

    async def work() -> CartView:
        cart_id = await order_cart(call.sessions, shop_id, number)
        view: CartView = await action(await call.context.acting_carts(), cart_id)
        return view

    return await call.write(dumped(body), work)


@router.post(
    "/shops/{shop_id}/orders/{number}/status",
    summary="Set an order's status",
    description="The order enters status `status` of the shop (its effects follow: stock"
    " taken or given back, e-mails). Setting the status it has changes nothing. Refused:"
    " `unknown_status` 422, `status_hidden` 409 (N), `payment_required` 409 (a paid status"
    " the payments do not cover: record the payment first).",
    responses=_VIEW,
)
async def set_status(shop_id: ShopId, number: Number, call: Writer, body: StatusBody) -> Response:
    async def action(carts: CartkeeperClient, cart_id: str) -> CartView:
        return await carts.set_order_status(
            shop_id, cart_id, body.status, admin=call.username, note=body.note
        )

    return await _on_order(call, shop_id, number, body, action)


@router.post(
    "/shops/{shop_id}/orders/{number}/delivery",
    summary="Change an order's delivery",
    description="The delivery's fields given change (`null` clears one; the cost is set,"
    " never cleared); the others stay. `method` without `cost` takes the method's cost,"
    " which must be in the order's currency (`currency_mismatch` 409: give `cost`). Only"
    " the tracking code and the comment change once the status does not allow editing"
    " (`contents_not_editable` 409). A bad value: `invalid_delivery` 422; an unknown"
    " method `shipping_method_not_found` 404.",
    responses=_VIEW,
)
async def delivery(shop_id: ShopId, number: Number, call: Writer, body: DeliveryBody) -> Response:
    changes = body.model_dump(exclude_unset=True, exclude={"note"})

    async def action(carts: CartkeeperClient, cart_id: str) -> CartView:
        method = changes.get("method")
        if isinstance(method, str) and "cost" not in changes:
            snapshot = await method_snapshot(call.sessions, shop_id, method)
            row = await get_order(call.sessions, shop_id, number)
            if snapshot.currency != row.currency:
                raise CartkeeperError(
                    ErrorCode.CURRENCY_MISMATCH,
                    f"shipping method {snapshot.method_id} costs {snapshot.cost}"
                    f" {snapshot.currency}; the order is in {row.currency}: give cost",
                )
            changes["cost"] = snapshot.cost
        return await carts.edit_delivery(
            shop_id, cart_id, admin=call.username, note=body.note, **changes
        )

    return await _on_order(call, shop_id, number, body, action)


@router.post(
    "/shops/{shop_id}/orders/{number}/lines",
    summary="Replace an order's lines",
    description="The order's whole contents, while its status allows editing them"
    " (`contents_not_editable` 409 otherwise). The total follows (plus the delivery's"
    " cost); stock the order holds is given back and taken for the new lines. A line"
    " without `name` takes the order's name of its SKU (else the SKU). A bad line:"
    " `invalid_line` / `invalid_quantity` / `invalid_price` 422; no line `cart_empty` 409.",
    responses=_VIEW,
)
async def lines(shop_id: ShopId, number: Number, call: Writer, body: LinesBody) -> Response:
    async def action(carts: CartkeeperClient, cart_id: str) -> CartView:
        names: dict[str, str] = {}
        if any(line.name is None for line in body.lines):
            names = {line.sku: line.name for line in (await carts.get_cart(shop_id, cart_id)).lines}
        raw = [
            {**line.model_dump(), "name": line.name or names.get(line.sku, line.sku)}
            for line in body.lines
        ]
        try:
            parsed = [parse_line(line, index) for index, line in enumerate(raw)]
        except CartRefused as refused:
            raise CartkeeperError(refused.code, refused.message) from None
        return await carts.edit_order_lines(
            shop_id, cart_id, parsed, admin=call.username, note=body.note
        )

    return await _on_order(call, shop_id, number, body, action)


@router.post(
    "/shops/{shop_id}/orders/{number}/payments",
    summary="Record a payment or a refund",
    description="A payment (or `kind: refund`) of order `number` received outside the"
    " gateways, in minor units of the order's currency (`currency_mismatch` 409"
    " otherwise). A refund is at most what was paid (`refund_exceeds_paid` 409). The"
    " paid amount and balance follow; payments that cover an Open order make it P.",
    responses=_VIEW,
)
async def payments(shop_id: ShopId, number: Number, call: Writer, body: PaymentBody) -> Response:
    async def action(carts: CartkeeperClient, cart_id: str) -> CartView:
        return await carts.record_payment(
            shop_id,
            cart_id,
            admin=call.username,
            kind=body.kind,
            amount=body.amount,
            currency=body.currency,
            reference=body.reference,
            note=body.note,
        )

    return await _on_order(call, shop_id, number, body, action)


@router.post(
    "/shops/{shop_id}/orders/{number}/notes",
    summary="Add a note to an order",
    description="A note in the order's journal, with your name.",
    responses=_VIEW,
)
async def notes(shop_id: ShopId, number: Number, call: Writer, body: OrderNoteBody) -> Response:
    async def action(carts: CartkeeperClient, cart_id: str) -> CartView:
        return await carts.add_order_note(shop_id, cart_id, body.note, admin=call.username)

    return await _on_order(call, shop_id, number, body, action)
