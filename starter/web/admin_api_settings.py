"""The admin API's shop settings in the read model: order statuses, shipping methods,
stock levels and order numbering (``activities.order_statuses``,
``activities.shipping_methods``, ``activities.stock``, ``activities.order_numbering`` check
and write; their refusals answer with their codes).

    GET    /api/v1/admin/shops/{shop_id}/statuses                   the registry
    POST   /api/v1/admin/shops/{shop_id}/statuses                   add (201)
    PATCH  /api/v1/admin/shops/{shop_id}/statuses/{letter}          edit what is given
    DELETE /api/v1/admin/shops/{shop_id}/statuses/{letter}          delete one you added
    GET    /api/v1/admin/shops/{shop_id}/shipping-methods           list
    POST   /api/v1/admin/shops/{shop_id}/shipping-methods           add (201)
    PATCH  /api/v1/admin/shops/{shop_id}/shipping-methods/{id}      edit what is given
    DELETE /api/v1/admin/shops/{shop_id}/shipping-methods/{id}      delete
    GET    /api/v1/admin/shops/{shop_id}/stock                      levels by SKU, paged
    GET    /api/v1/admin/shops/{shop_id}/stock/{sku}                one SKU's level
    PUT    /api/v1/admin/shops/{shop_id}/stock/{sku}                set it
    GET    /api/v1/admin/shops/{shop_id}/order-numbering            prefix, next number
    PATCH  /api/v1/admin/shops/{shop_id}/order-numbering            change them

The calling user is kept as the status registry's last editor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from activities import order_numbering, shipping_methods, stock
from activities.order_numbering import Numbering
from activities.stock import StockLevel
from starter.order_statuses import OrderStatusClient
from starter.web.admin_api_calls import (
    JsonBody,
    Reader,
    Refused,
    Writer,
    admin_router,
    answers,
    dumped,
    text_filter,
)
from starter.web.admin_api_carts import ShopId

router = admin_router("admin: settings")

Letter = Annotated[str, Path(description="The status's letter (any case).", examples=["G"])]
MethodId = Annotated[str, Path(description="The shipping method's id.", examples=["courier"])]
Sku = Annotated[str, Path(description="The SKU (it may hold slashes).", examples=["mug"])]
Inventory = Literal["decrease", "increase", "none"]

_STATUS_EXAMPLE = {
    "letter": "G",
    "name": "Gift wrapping",
    "colour": "#ff4081",
    "position": 150,
    "paid": False,
    "final": False,
    "notify_customer": False,
    "notify_department": False,
    "inventory": "none",
    "contents_editable": True,
    "hidden": False,
    "builtin": False,
}
_METHOD_EXAMPLE = {
    "shop_id": "demo",
    "method_id": "courier",
    "name": "Courier",
    "cost": 490,
    "currency": "EUR",
    "position": 10,
    "enabled": True,
    "created_at": "2026-11-30T09:00:00+00:00",
    "updated_at": "2026-11-30T09:00:00+00:00",
}
_LEVEL_EXAMPLE = {
    "shop_id": "demo",
    "sku": "mug",
    "tracked": True,
    "level": 12,
    "updated_at": "2026-11-30T09:00:00+00:00",
}
_NUMBERING_EXAMPLE = {
    "shop_id": "demo",
    "prefix": "W-",
    "next_number": 1043,
    "next_reference": "W-1043",
}


# --------------------------------------------------------------------------- statuses


class StatusFields(JsonBody):
    colour: str | None = Field(default=None, description="#rrggbb (a new status: grey).")
    position: int | None = Field(default=None, description="0-1000000, lower first.")
    paid: bool | None = Field(default=None, description="An order with it counts as paid.")
    final: bool | None = Field(default=None, description="The order is over.")
    notify_customer: bool | None = Field(
        default=None, description="Setting it e-mails the customer."
    )
    notify_department: bool | None = Field(default=None, description="... the orders department.")
    inventory: Inventory | None = Field(default=None, description="What setting it does to stock.")
    contents_editable: bool | None = Field(default=None, description="Lines and delivery editable.")


class NewStatus(StatusFields):
    letter: str = Field(description="One letter A-Z (any case: stored upper case).")
    name: str = Field(description="1-64 characters.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "letter": "G",
                    "name": "Gift wrapping",
                    "colour": "#ff4081",
                    "contents_editable": True,
                }
            ]
        }
    )


class StatusChanges(StatusFields):
    letter: str | None = Field(default=None, description="A new letter (a status you added).")
    name: str | None = None

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Gift wrap", "position": 65}]}
    )


def _statuses(call: Any) -> OrderStatusClient:
    return OrderStatusClient(call.sessions, clock=call.context.now)


@router.get(
    "/shops/{shop_id}/statuses",
    summary="List order statuses",
    description="The shop's order statuses by position (then letter) with their"
    " properties, and the registry's version (0 until the first edit: the defaults).",
    responses=answers(
        "The statuses",
        {"shop_id": "demo", "version": 3, "statuses": [_STATUS_EXAMPLE], "customised": True},
    ),
)
async def list_statuses(shop_id: ShopId, call: Reader) -> Response:
    return await call.read(lambda: _statuses(call).list(shop_id))


@router.post(
    "/shops/{shop_id}/statuses",
    status_code=201,
    summary="Add an order status",
    description="A new status; what is not given gets the default (grey, after the last"
    " status, flags off, inventory none). Refused: `status_limit_reached` 409 (26 already),"
    " `status_letter_taken` 409, `invalid_status` 422.",
    responses=answers("The new status", _STATUS_EXAMPLE, 201),
)
async def add_status(shop_id: ShopId, call: Writer, body: NewStatus) -> Response:
    values = body.model_dump(exclude_none=True, exclude={"letter", "name"})
    return await call.write(
        dumped(body),
        lambda: _statuses(call).add(shop_id, body.letter, body.name, by=call.username, **values),
        status=201,
    )


@router.patch(
    "/shops/{shop_id}/statuses/{letter}",
    summary="Edit an order status",
    description="Change what is given; the rest stays. Orders keep the name and colour"
    " their status had. Refused: `status_builtin` 409 (a default's letter, P and C's"
    " paid), `status_hidden` 409 (N keeps its flags), `unknown_status` 422,"
    " `invalid_status` 422 (nothing to change, a bad value).",
    responses=answers("The status as it is now", _STATUS_EXAMPLE),
)
async def edit_status(
    shop_id: ShopId, letter: Letter, call: Writer, body: StatusChanges
) -> Response:
    values = body.model_dump(exclude_none=True, exclude={"letter"})
    return await call.write(
        dumped(body),
        lambda: _statuses(call).edit(
            shop_id, letter, new_letter=body.letter, by=call.username, **values
        ),
    )


@router.delete(
    "/shops/{shop_id}/statuses/{letter}",
    summary="Delete an order status",
    description="Delete a status you added (orders that had it keep its name and colour)."
    " Refused: `status_builtin` 409 (a default), `unknown_status` 422.",
    responses=answers("The deleted status", _STATUS_EXAMPLE),
)
async def delete_status(shop_id: ShopId, letter: Letter, call: Writer) -> Response:
    return await call.write(None, lambda: _statuses(call).delete(shop_id, letter, by=call.username))


# --------------------------------------------------------------------------- shipping


class NewMethod(JsonBody):
    method_id: str = Field(description="Lower-case letters and digits, words joined by _ or -.")
    name: str = Field(description="1-128 characters.")
    cost: int = Field(description="Minor units of the currency (0: free).")
    currency: str = Field(description="ISO 4217.")
    position: int | None = Field(default=None, description="0-9999 (default: 10 after the last).")
    enabled: bool = Field(default=True, description="Offered to customers.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"method_id": "courier", "name": "Courier", "cost": 490, "currency": "EUR"}
            ]
        }
    )


class MethodChanges(JsonBody):
    name: str | None = None
    cost: int | None = None
    currency: str | None = None
    position: int | None = None
    enabled: bool | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"cost": 590, "enabled": False}]})


@router.get(
    "/shops/{shop_id}/shipping-methods",
    summary="List shipping methods",
    description="The shop's shipping methods by position (then id), with their cost;"
    " `enabled_only`: those offered to customers.",
    responses=answers("The methods", {"methods": [_METHOD_EXAMPLE]}),
)
async def list_methods(
    shop_id: ShopId, call: Reader, enabled_only: Annotated[bool, Query()] = False
) -> Response:
    async def work() -> dict[str, Any]:
        found = await shipping_methods.list_methods(
            call.sessions, shop_id, enabled_only=enabled_only
        )
        return {"methods": found}

    return await call.read(work)


@router.post(
    "/shops/{shop_id}/shipping-methods",
    status_code=201,
    summary="Add a shipping method",
    description="Refused: `shipping_method_exists` 409, `invalid_shipping_method` 422 (the"
    " message names the field).",
    responses=answers("The new method", _METHOD_EXAMPLE, 201),
)
async def add_method(shop_id: ShopId, call: Writer, body: NewMethod) -> Response:
    return await call.write(
        dumped(body),
        lambda: shipping_methods.add_method(
            call.sessions,
            shop_id,
            body.method_id,
            name=body.name,
            cost=body.cost,
            currency=body.currency,
            position=body.position,
            enabled=body.enabled,
            now=call.context.now(),
        ),
        status=201,
    )


@router.patch(
    "/shops/{shop_id}/shipping-methods/{method_id}",
    summary="Edit a shipping method",
    description="Change what is given (at least one field); orders that picked the method"
    " keep what they recorded. 404 `shipping_method_not_found`.",
    responses=answers("The method as it is now", _METHOD_EXAMPLE),
)
async def edit_method(
    shop_id: ShopId, method_id: MethodId, call: Writer, body: MethodChanges
) -> Response:
    return await call.write(
        dumped(body),
        lambda: shipping_methods.edit_method(
            call.sessions,
            shop_id,
            method_id,
            name=body.name,
            cost=body.cost,
            currency=body.currency,
            position=body.position,
            enabled=body.enabled,
            now=call.context.now(),
        ),
    )


@router.delete(
    "/shops/{shop_id}/shipping-methods/{method_id}",
    summary="Delete a shipping method",
    description="Orders that picked it keep their record of it. 404 `shipping_method_not_found`.",
    responses=answers("The deleted method", _METHOD_EXAMPLE),
)
async def delete_method(shop_id: ShopId, method_id: MethodId, call: Writer) -> Response:
    return await call.write(
        None, lambda: shipping_methods.delete_method(call.sessions, shop_id, method_id)
    )


# --------------------------------------------------------------------------- stock


class StockBody(JsonBody):
    level: int = Field(description="Units in stock: a whole number, 0 or more.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"level": 12}]})


def level_json(shop_id: str, sku: str, level: StockLevel | None) -> dict[str, Any]:
    return {
        "shop_id": shop_id,
        "sku": sku,
        "tracked": level is not None,
        "level": level.level if level is not None else None,
        "updated_at": level.updated_at if level is not None else None,
    }


@router.get(
    "/shops/{shop_id}/stock",
    summary="List stock levels",
    description="The shop's stock levels by SKU (code point order), a page at a time:"
    " the next page is `after=<next_after>`. A SKU without a level is not tracked"
    " (unlimited).",
    responses=answers("A page of levels", {"levels": [_LEVEL_EXAMPLE], "next_after": None}),
)
async def list_stock(
    shop_id: ShopId,
    call: Reader,
    after: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=stock.MAX_PAGE)] = stock.DEFAULT_PAGE,
) -> Response:
    return await call.read(
        lambda: stock.list_stock_levels(
            call.sessions, shop_id, after=text_filter(after, "after", strip=False), limit=limit
        )
    )


@router.get(
    "/shops/{shop_id}/stock/{sku:path}",
    summary="Get a SKU's stock level",
    description="The level, or `tracked: false` (`level` null): unlimited stock.",
    responses=answers("The level", _LEVEL_EXAMPLE),
)
async def get_stock(shop_id: ShopId, sku: Sku, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        return level_json(shop_id, sku, await stock.stock_level(call.sessions, shop_id, sku))

    return await call.read(work)


@router.put(
    "/shops/{shop_id}/stock/{sku:path}",
    summary="Set a SKU's stock level",
    description="The SKU is tracked from now. Refused: `invalid_stock_level` 422 (not a"
    " whole number from 0), `invalid_sku` 422.",
    responses=answers("The level", _LEVEL_EXAMPLE),
)
async def set_stock(shop_id: ShopId, sku: Sku, call: Writer, body: StockBody) -> Response:
    async def work() -> dict[str, Any]:
        level = await stock.set_stock_level(
            call.sessions, shop_id, sku, body.level, now=call.context.now()
        )
        return level_json(shop_id, sku, level)

    return await call.write(dumped(body), work)


# --------------------------------------------------------------------------- numbering


class NumberingChanges(JsonBody):
    prefix: str | None = Field(
        default=None, description="Shown before the numbers to come (up to 16 characters; '' none)."
    )
    start: int | None = Field(default=None, description="The next number: only forward.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"prefix": "W-", "start": 2000}]})


def numbering_json(numbering: Numbering) -> dict[str, Any]:
    return {
        "shop_id": numbering.shop_id,
        "prefix": numbering.prefix,
        "next_number": numbering.next_number,
        "next_reference": numbering.reference(numbering.next_number),
    }


@router.get(
    "/shops/{shop_id}/order-numbering",
    summary="Get the order numbering",
    description="The shop's prefix and the number its next order gets.",
    responses=answers("The numbering", _NUMBERING_EXAMPLE),
)
async def get_numbering(shop_id: ShopId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        return numbering_json(await order_numbering.numbering(call.sessions, shop_id))

    return await call.read(work)


@router.patch(
    "/shops/{shop_id}/order-numbering",
    summary="Change the order numbering",
    description="The prefix of the numbers to come and/or the next number, which only"
    " moves forward (`order_number_start_too_low` 409: no number is given twice)."
    " Refused: `invalid_order_number_prefix`, `invalid_order_number_start` 422.",
    responses=answers("The numbering", _NUMBERING_EXAMPLE),
)
async def set_numbering(shop_id: ShopId, call: Writer, body: NumberingChanges) -> Response:
    async def work() -> dict[str, Any]:
        if body.prefix is None and body.start is None:
            raise Refused("invalid_input", "give prefix and/or start")
        changed = await order_numbering.set_numbering(
            call.sessions, shop_id, prefix=body.prefix, start=body.start, now=call.context.now()
        )
        return numbering_json(changed)

    return await call.write(dumped(body), work)
