"""The storefront HTTP API (``/api/v1``): every cart event a storefront sends, for a
storefront written in any language.

A request names its shop by its API key (``Authorization: Bearer ck_...`` or
``X-Api-Key``; ``cartkeeper keys create``), never in the path: every cart it touches is
a cart of the key's shop, so a storefront cannot reach another shop's carts. A missing,
unknown or revoked key is 401 ``unauthenticated`` with ``WWW-Authenticate: Bearer``.

Bodies are plain JSON objects, read as the workflow reads them (``workflows.parsing``:
a wrong type is refused with its code, never coerced; ``quantity: 2.7`` is
``invalid_quantity``), then checked again by the cart client. Each cart endpoint answers
the cart's compact view (``CartView``: state, version, totals, order) or a coded error
(``starter.web.api_errors``). Every write honours ``Idempotency-Key``
(``starter.web.idempotency``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.web.api_errors import ERROR_RESPONSES, ApiError, WebErrorCode
from starter.web.api_keys import ApiKey
from starter.web.coupon_check import MAX_COUPON_CODE, CouponValidation, coupon_query
from starter.web.coupon_check import validate_coupon as validate_coupon_query
from starter.web.deps import Context, WebContext
from starter.web.idempotency import (
    HEADER,
    REPLAYED_HEADER,
    check_key,
    idempotent,
    request_digest,
)
from workflows.parsing import (
    MAX_AWAIT_SECONDS,
    parse_await_timeout,
    parse_cart_updated,
    parse_checkout_started,
    parse_customer_identified,
    parse_customer_visited,
    parse_payment_started,
)
from workflows.state import CartView, view_of
from workflows.validation import ID_PATTERN, MAX_AMOUNT, CartRefused

log = logging.getLogger("cartkeeper.web")

T = TypeVar("T")

router = APIRouter(prefix="/api/v1", tags=["storefront"])

#: seconds ``POST .../order`` waits when the body does not say
DEFAULT_AWAIT_SECONDS = 30.0

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKeyBearer",
    description="The shop's API key: `Authorization: Bearer ck_<prefix>_<secret>`.",
)
_api_key_header = APIKeyHeader(
    name="X-Api-Key",
    auto_error=False,
    scheme_name="ApiKeyHeader",
    description="The shop's API key, for clients that cannot set `Authorization`.",
)


# --------------------------------------------------------------------------- plumbing


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    """The read model failing (keys, idempotency records, coupons): 503, in JSON."""
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        log.error("the read model is unavailable: %r", error)
        raise ApiError(
            WebErrorCode.DATABASE_UNAVAILABLE, "the database is unavailable: try again"
        ) from None


def _unauthenticated(message: str, challenge: str = "Bearer") -> ApiError:
    return ApiError(WebErrorCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": challenge})


async def _authenticated(
    context: Context,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_api_key_header)],
) -> ApiKey:
    presented = bearer.credentials if bearer is not None else header
    if not presented:
        raise _unauthenticated("an API key is required: Authorization: Bearer ck_...")
    async with _database():
        key = await context.api_keys.verify(context.sessions, presented.strip(), now=context.now())
    if key is None:
        raise _unauthenticated(
            "the API key is not valid (unknown or revoked)", 'Bearer error="invalid_token"'
        )
    return key


@dataclass
class Storefront:
    """One authenticated request: its shop (the key's), and how it is answered."""

    context: WebContext
    key: ApiKey
    request: Request
    idempotency_key: str | None

    @property
    def shop_id(self) -> str:
        return self.key.shop_id

    async def answer(self, body: Any, action: Callable[[], Awaitable[JSONResponse]]) -> Response:
        """``action``'s answer; once per ``Idempotency-Key`` (writes only)."""
        if self.idempotency_key is None:  # nothing to keep: no fingerprint either
            async with _database():
                return await action()
        url = self.request.url
        path = f"{url.path}?{url.query}" if url.query else url.path
        async with _database():
            return await idempotent(
                self.context.sessions,
                self.key.scope,
                self.idempotency_key,
                request_digest(self.request.method, path, body),
                self.context.now,
                action,
            )

    async def cart(
        self, body: Any, event: Callable[[CartkeeperClient], Awaitable[CartView]]
    ) -> Response:
        """``event`` sent through the cart client; the cart's compact view."""

        async def action() -> JSONResponse:
            view = await event(await self.context.carts())
            # a flat dataclass of JSON values (its enums are strings): no need for
            # FastAPI's generic encoder, which walks it value by value
            return JSONResponse(asdict(view))

        return await self.answer(body, action)


async def _reader(
    request: Request, context: Context, key: Annotated[ApiKey, Depends(_authenticated)]
) -> Storefront:
    return Storefront(context, key, request, None)


async def _writer(
    request: Request,
    context: Context,
    key: Annotated[ApiKey, Depends(_authenticated)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            pattern=r"^[\x20-\x7e]{1,255}$",
            description="Any unique string (1-255 printable ASCII characters, a UUID say):"
            " sent again with the same request, the first answer is given again (header"
            f" `{REPLAYED_HEADER}: true`) instead of applying it twice. Kept for 24 hours.",
        ),
    ] = None,
) -> Storefront:
    if idempotency_key is not None:
        check_key(idempotency_key)
    return Storefront(context, key, request, idempotency_key)


def _read(parse: Callable[[object], T], body: object) -> T:
    """``body`` read by a parser of ``workflows.parsing``; its refusal, coded."""
    try:
        return parse(body)
    except CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None


#: an authenticated read, and an authenticated write (``Idempotency-Key`` honoured)
Reader = Annotated[Storefront, Depends(_reader)]
Writer = Annotated[Storefront, Depends(_writer)]
CartId = Annotated[
    str, Path(description="The storefront's cart id: 1-64 letters, digits, '.', '_' or '-'.")
]


def _object(schema: dict[str, Any], *examples: tuple[str, dict[str, Any]]) -> Any:
    """A JSON-object body: its schema and examples for the OpenAPI document (the parsers
    of ``workflows.parsing`` read it)."""

    def document(generated: dict[str, Any]) -> None:
        generated.clear()  # ``dict[str, Any] | None`` would say "any object, or null"
        generated.update(schema)

    return Body(
        json_schema_extra=document,
        openapi_examples={name: {"value": value} for name, value in examples},
    )


_TEXT = {"type": "string", "minLength": 1, "maxLength": 200}
_MONEY = {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT, "description": "minor units"}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217"}
_ID = {"type": "string", "pattern": ID_PATTERN}

_LINES_SCHEMA = {
    "type": "object",
    "required": ["lines", "currency"],
    "additionalProperties": False,
    "properties": {
        "lines": {
            "type": "array",
            "maxItems": 200,
            "items": {
                "type": "object",
                "required": ["sku", "name", "quantity", "unit_price"],
                "additionalProperties": False,
                "properties": {
                    "sku": _TEXT,
                    "name": _TEXT,
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 100_000},
                    "unit_price": _MONEY,
                },
            },
        },
        "currency": _CURRENCY,
        "customer_id": {"anyOf": [_ID, {"type": "null"}]},
    },
}
_CUSTOMER_SCHEMA = {
    "type": "object",
    "required": ["customer"],
    "additionalProperties": False,
    "properties": {
        "customer": {
            "type": "object",
            "required": ["email"],
            "additionalProperties": False,
            "properties": {
                "email": {"type": "string", "format": "email"},
                "name": _TEXT,
                "phone": _TEXT,
                "locale": _TEXT,
                "time_zone": {**_TEXT, "description": "IANA, e.g. Europe/Paris"},
                "marketing_consent": {"type": "boolean"},
                "logged_in": {"type": "boolean"},
                "customer_id": _ID,
            },
        }
    },
}
_VISIT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"page": _TEXT},
}
_EMPTY_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {}}
_PAYMENT_SCHEMA = {
    "type": "object",
    "required": ["attempt_id", "method", "gateway", "amount"],
    "additionalProperties": False,
    "properties": {
        "attempt_id": {**_TEXT, "description": "the gateway's id of this attempt"},
        "method": {"type": "string", "enum": ["online", "offline"]},
        "gateway": _TEXT,
        "amount": _MONEY,
        "currency": _CURRENCY,
    },
}
_AWAIT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timeout_seconds": {"type": "number", "minimum": 0, "maximum": MAX_AWAIT_SECONDS}
    },
}
_COUPON_SCHEMA = {
    "type": "object",
    "required": ["code"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "minLength": 1, "maxLength": MAX_COUPON_CODE},
        "cart_id": _ID,
        "total": _MONEY,
        "currency": _CURRENCY,
    },
}


def _write_responses(answer: str) -> dict[int | str, dict[str, Any]]:
    """A write's answers for the OpenAPI document: ``answer``, maybe replayed, or a
    refusal."""
    replayed = {
        "description": f"`true` when this is the kept answer of an earlier request with the"
        f" same `{HEADER}`",
        "schema": {"type": "string", "enum": ["true"]},
    }
    return {
        **ERROR_RESPONSES,
        200: {"description": answer, "headers": {REPLAYED_HEADER: replayed}},
    }


_CART_RESPONSES = _write_responses("The cart's compact view")


# --------------------------------------------------------------------------- carts


@router.get(
    "/carts/{cart_id}",
    summary="Get a cart",
    description="The cart's compact view, from its workflow (the source of truth)."
    " 404 `cart_not_found` when the shop has no such cart.",
    response_model=CartView,
    responses=ERROR_RESPONSES,
)
async def get_cart(cart_id: CartId, shop: Reader) -> Response:
    async def read(carts: CartkeeperClient) -> CartView:
        return view_of(await carts.get_cart(shop.shop_id, cart_id))

    return await shop.cart(None, read)


@router.put(
    "/carts/{cart_id}/lines",
    summary="Replace the cart's lines",
    description="The customer's whole cart: these lines replace the previous ones (an"
    " empty list empties it). Creates the cart on its first event. The currency is"
    " fixed by the first update (`currency_mismatch` 409 after); a locked or ordered"
    " cart refuses changes (409), an expired or deleted one is gone (410). Quantities"
    " and prices are whole numbers (prices in minor units).",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def update_lines(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[
        dict[str, Any],
        _object(
            _LINES_SCHEMA,
            (
                "two lines",
                {
                    "lines": [
                        {"sku": "tea", "name": "Green tea", "quantity": 2, "unit_price": 450},
                        {"sku": "cup", "name": "Cup", "quantity": 1, "unit_price": 1200},
                    ],
                    "currency": "EUR",
                },
            ),
        ),
    ],
) -> Response:
    event = _read(parse_cart_updated, body)
    return await shop.cart(
        body,
        lambda carts: carts.update_cart(
            shop.shop_id, cart_id, event.lines, event.currency, customer_id=event.customer_id
        ),
    )


@router.post(
    "/carts/{cart_id}/customer",
    summary="Identify the customer",
    description="Who the customer is: the e-mail address reminders go to (with the"
    " customer's consent, locale and time zone). Creates the cart on its first event.",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def identify_customer(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[
        dict[str, Any],
        _object(
            _CUSTOMER_SCHEMA,
            (
                "customer",
                {
                    "customer": {
                        "email": "ann@example.com",
                        "name": "Ann",
                        "locale": "en",
                        "time_zone": "Europe/Paris",
                        "marketing_consent": True,
                    }
                },
            ),
        ),
    ],
) -> Response:
    event = _read(parse_customer_identified, body)
    return await shop.cart(
        body, lambda carts: carts.identify_customer(shop.shop_id, cart_id, event.customer)
    )


@router.post(
    "/carts/{cart_id}/visits",
    summary="Record a visit",
    description="The customer is active (looked at a page): an abandoned cart becomes"
    " active again and its reminders stop. Creates the cart on its first event.",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def record_visit(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[
        dict[str, Any] | None, _object(_VISIT_SCHEMA, ("page", {"page": "/checkout"}))
    ] = None,
) -> Response:
    event = _read(parse_customer_visited, body if body is not None else {})
    return await shop.cart(
        body, lambda carts: carts.record_visit(shop.shop_id, cart_id, event.page)
    )


@router.post(
    "/carts/{cart_id}/checkout",
    summary="Start the checkout",
    description="The customer is on the checkout form. An empty cart is refused"
    " (`cart_empty` 409). The body is empty, or `{}`.",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def start_checkout(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[dict[str, Any] | None, _object(_EMPTY_SCHEMA, ("empty", {}))] = None,
) -> Response:
    _read(parse_checkout_started, body if body is not None else {})
    return await shop.cart(body, lambda carts: carts.start_checkout(shop.shop_id, cart_id))


@router.post(
    "/carts/{cart_id}/payments",
    summary="Start a payment attempt",
    description="A payment attempt starts at the gateway (`online`) or offline (bank"
    " transfer, cash on delivery: the order opens at once). The gateway's result comes"
    " by webhook; `POST .../order` waits for it. `amount` is in minor units of the"
    " cart's currency. The same attempt id again is answered the same; another attempt"
    " while one is pending is refused (409).",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def start_payment(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[
        dict[str, Any],
        _object(
            _PAYMENT_SCHEMA,
            (
                "online",
                {"attempt_id": "pi_1", "method": "online", "gateway": "stripe", "amount": 2100},
            ),
        ),
    ],
) -> Response:
    event = _read(parse_payment_started, body)
    return await shop.cart(
        body,
        lambda carts: carts.start_payment(
            shop.shop_id,
            cart_id,
            attempt_id=event.attempt_id,
            method=event.method,
            gateway=event.gateway,
            amount=event.amount,
            currency=event.currency,
        ),
    )


@router.post(
    "/carts/{cart_id}/order",
    summary="Wait for the order",
    description="For the customer back from the gateway: answers once the cart's order"
    " has its number (or once the cart left payment: the payment failed), or as the"
    f" cart is after `timeout_seconds` (default {DEFAULT_AWAIT_SECONDS:g}, at most"
    f" {MAX_AWAIT_SECONDS}). Changes nothing. 404 `cart_not_found` for a cart the shop"
    " does not have.",
    response_model=CartView,
    responses=_CART_RESPONSES,
)
async def await_order(
    cart_id: CartId,
    shop: Writer,
    body: Annotated[
        dict[str, Any] | None, _object(_AWAIT_SCHEMA, ("ten seconds", {"timeout_seconds": 10}))
    ] = None,
) -> Response:
    raw = body if body is not None else {}
    timeout = _read(parse_await_timeout, raw) if raw else DEFAULT_AWAIT_SECONDS
    return await shop.cart(
        body, lambda carts: carts.await_order(shop.shop_id, cart_id, timeout_seconds=timeout)
    )


# --------------------------------------------------------------------------- coupons


@router.post(
    "/coupons/validate",
    summary="Check a coupon",
    description="Whether a coupon of the key's shop applies now, and its discount:"
    " against an amount (`total` in minor units and `currency`), or against a cart"
    " (`cart_id`: its total and currency as last projected, which may lag the cart by"
    " a few seconds). A coupon that does not apply is answered 200 with `applies:"
    " false` and the refusal (`coupon_not_found`, `coupon_expired`, `coupon_used`,"
    " `coupon_currency_mismatch`); a cart that cannot take one is a coded error (404"
    " `cart_not_found`, 409 `cart_empty`, 410 `cart_expired` / `cart_deleted`). Changes"
    " nothing: redeeming is the order's business. Codes are read however they are"
    " typed (`szrc keey`).",
    response_model=CouponValidation,
    responses=_write_responses("Whether the coupon applies, and its discount"),
)
async def validate_coupon(
    shop: Writer,
    body: Annotated[
        dict[str, Any],
        _object(
            _COUPON_SCHEMA,
            ("an amount", {"code": "SZRC-KEEY", "total": 2100, "currency": "EUR"}),
            ("a cart", {"code": "szrc keey", "cart_id": "cart-42"}),
        ),
    ],
) -> Response:
    query = coupon_query(body)

    async def action() -> JSONResponse:
        found = await validate_coupon_query(shop.context, shop.shop_id, query)
        return JSONResponse(found.model_dump(mode="json"))

    return await shop.answer(body, action)
