"""The payment-result webhook: ``POST /api/v1/webhooks/payments/{source}``.

A gateway (``source``: its name in ``CARTKEEPER_WEBHOOK_SECRETS``) signs each call with
the Standard Webhooks scheme (``standardwebhooks``: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; a timestamp more than 5 minutes off is refused). An unknown
source, a missing header, a bad signature, a changed body or a stale timestamp is 401
``invalid_signature``, and nothing is recorded or told to any cart.

The verified body is a JSON object: ``shop_id`` and ``cart_id`` route it (they must be
valid ids, else 422); everything else is the payment result, passed to the cart exactly
as it came (``CartkeeperClient.send_payment_result``): the workflow reads it and keeps
for an admin whatever it cannot read, so a garbled result is never lost at the edge. A
cart id without a workflow gets one (signal-with-start): a success for it is recorded as
a payment needing an admin.

Each (source, ``webhook-id``) is taken once (``webhook_deliveries``): the row is written
before the cart is signalled and marked delivered after. The answer is 200
``{"status": "delivered"}`` only once Temporal has accepted the signal (it is in the
cart's history); a replay of a delivered id is 200 ``{"status": "duplicate"}`` without
a second signal; a replay of an id whose delivery did not complete (Temporal was down)
signals again (the cart takes a repeated result as a repeat). A delivery under way
claims its row (``claimed_at``): another delivery of the same id that comes meanwhile
(a gateway retrying in parallel) waits for it and is answered ``duplicate`` once the
cart has the result, so the cart is signalled once, a garbled result included (the cart
does not deduplicate those itself); a delivery that failed before Temporal had the
signal gives its claim back, one that timed out (the signal may have reached the cart)
or whose process died holds it ``CLAIM_FOR`` at most. Temporal unavailable: 503 with
``Retry-After``, so the gateway tries again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from activities.db import SessionFactory, insert_for, write_session
from activities.web_models import CLIENT_KEY_LENGTH, WebhookDelivery
from starter.client_errors import CartkeeperError
from starter.web.api_errors import ERROR_RESPONSES, ApiError, WebErrorCode
from starter.web.deps import Context, WebContext
from workflows.codes import ErrorCode
from workflows.validation import ID_PATTERN, valid_id

log = logging.getLogger("cartkeeper.web")

router = APIRouter(tags=["webhooks"])

PATH = "/api/v1/webhooks/payments/{source}"
#: the largest body taken (a payment result is a few hundred bytes)
MAX_BODY_BYTES = 64 * 1024
#: how long a delivery waits for Temporal to accept the signal before answering 503
SIGNAL_TIMEOUT = 15.0
#: how long a delivery's claim holds off other deliveries of the same id (one that is
#: still signalling, or whose process died before it released the claim), and how long
#: such another delivery waits for it (it polls every ``CLAIM_POLL_SECONDS``)
CLAIM_FOR = timedelta(seconds=SIGNAL_TIMEOUT + 5)
CLAIM_POLL_SECONDS = 0.1
#: what a 503 asks the gateway to wait (seconds)
RETRY_AFTER = "30"
#: the body's routing fields: the rest is the payment result
ROUTING = ("shop_id", "cart_id")
#: how long a delivered id is remembered: replays older than this are refused by their
#: timestamp long before (a gateway's retries span a day or two)
RETENTION = timedelta(days=30)
#: how often (per database, per process) older deliveries are deleted
PURGE_EVERY = timedelta(hours=1)

_last_purge: weakref.WeakKeyDictionary[SessionFactory, datetime] = weakref.WeakKeyDictionary()


class WebhookAnswer(BaseModel):
    """``delivered``: the cart has the result; ``duplicate``: this ``webhook-id`` was
    delivered before (nothing was done again)."""

    status: Literal["delivered", "duplicate"]


class PaymentWebhook(BaseModel):
    """The body a gateway signs (for the OpenAPI document: the endpoint reads the raw
    bytes, and passes every field but the routing ones to the cart as they came)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shop_id": "demo",
                    "cart_id": "cart-42",
                    "attempt_id": "pi_1",
                    "status": "succeeded",
                    "amount": 2100,
                    "currency": "EUR",
                    "card_last4": "4242",
                    "gateway": "stripe",
                }
            ]
        }
    )

    shop_id: str = Field(pattern=ID_PATTERN, description="The shop's id (routes the call)")
    cart_id: str = Field(pattern=ID_PATTERN, description="The cart's id (routes the call)")
    attempt_id: str
    status: Literal["succeeded", "failed", "pending", "cancelled", "expired"]
    #: whole minor units of ``currency``
    amount: int
    currency: str | None = None
    card_last4: str | None = None
    gateway: str | None = None


def _refused(reason: str) -> ApiError:
    return ApiError(WebErrorCode.INVALID_SIGNATURE, f"the webhook does not verify: {reason}")


def _invalid(message: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> ApiError:
    return ApiError(code, message)


@router.post(
    PATH,
    summary="A payment gateway's result (Standard Webhooks)",
    response_model=WebhookAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PaymentWebhook.model_json_schema()}},
        }
    },
)
async def payment_webhook(
    source: str,
    request: Request,
    context: Context,
    webhook_id: Annotated[
        str | None, Header(alias="webhook-id", description="The message's unique id")
    ] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", description="Unix seconds when signed")
    ] = None,
    webhook_signature: Annotated[
        str | None,
        Header(alias="webhook-signature", description="`v1,<base64 HMAC-SHA256>`, space-separated"),
    ] = None,
) -> WebhookAnswer:
    """Verify the call, take each ``webhook-id`` once, and hand the result to the cart;
    answer only once the cart's workflow has it."""
    secrets = context.settings.webhook_secrets if context.settings else {}
    secret = secrets.get(source)
    if secret is None:
        log.warning("webhook from unknown source %r refused", source[:80])
        raise _refused("unknown source")
    if not (webhook_id and webhook_timestamp and webhook_signature):
        raise _refused("the webhook-id, webhook-timestamp and webhook-signature headers are needed")
    body = await _body(request)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": webhook_timestamp,
        "webhook-signature": webhook_signature,
    }
    try:
        Webhook(secret.get_secret_value()).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError, TypeError, OverflowError) as error:
        # ValueError: a signature or body that is not even base64 or UTF-8
        log.warning("webhook %r from %r refused: %s", webhook_id[:80], source, error)
        raise _refused(_reason(error)) from None
    if len(webhook_id) > CLIENT_KEY_LENGTH:
        raise _invalid(f"webhook-id must be at most {CLIENT_KEY_LENGTH} characters")
    shop_id, cart_id, result = _routed(body)
    return await _deliver(context, source, webhook_id, shop_id, cart_id, result)


async def _body(request: Request) -> bytes:
    """The raw body, refused past ``MAX_BODY_BYTES`` without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _invalid(f"the body must be at most {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _invalid(f"the body must be at most {MAX_BODY_BYTES} bytes")
    return bytes(body)


def _reason(error: Exception) -> str:
    message = str(error).lower()
    if "too old" in message or "too new" in message:
        return "the timestamp is more than 5 minutes off"
    if "missing" in message:
        return "a webhook header is missing"
    if "invalid signature headers" in message:
        return "webhook-timestamp is not a Unix time"
    return "no valid signature for this body"


def _routed(body: bytes) -> tuple[str, str, dict[str, Any]]:
    """The verified body's shop and cart ids, and the rest: the payment result."""
    try:
        # NaN and Infinity are kept as text: the cart flags them, JSON cannot carry them
        data = json.loads(body, parse_constant=str)
    except (ValueError, RecursionError):
        raise _invalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise _invalid("the body must be a JSON object with shop_id, cart_id and the result")
    for field in ROUTING:
        if not valid_id(data.get(field)):
            raise _invalid(
                f"{field} must be 1-64 letters, digits, '.', '_' or '-'", ErrorCode.INVALID_ID
            )
    result = {key: value for key, value in data.items() if key not in ROUTING}
    return data["shop_id"], data["cart_id"], result


async def _deliver(
    context: WebContext,
    source: str,
    webhook_id: str,
    shop_id: str,
    cart_id: str,
    result: dict[str, Any],
) -> WebhookAnswer:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + CLAIM_FOR.total_seconds()
    async with _database():
        await _purge_now_and_then(context.sessions, context.now())
    while True:
        async with _database():
            claim = await _claim(
                context.sessions, source, webhook_id, shop_id, cart_id, context.now()
            )
        if claim == "delivered":
            log.info("webhook %r from %r: a duplicate, not delivered again", webhook_id, source)
            return WebhookAnswer(status="duplicate")
        if claim == "taken":
            break
        # Another delivery of this id is signalling the cart: its answer is ours.
        if loop.time() >= give_up:
            raise _temporal_unavailable("a delivery of this webhook-id is still under way")
        await asyncio.sleep(CLAIM_POLL_SECONDS)

    async def signal() -> None:
        carts = await context.carts()
        await carts.send_payment_result(shop_id, cart_id, result)

    try:
        await asyncio.wait_for(signal(), SIGNAL_TIMEOUT)
    except TimeoutError:
        # The signal may have reached the cart: the claim holds until it expires.
        raise _temporal_unavailable("Temporal did not accept the result in time") from None
    except BaseException as error:
        await _release(context.sessions, source, webhook_id)  # a retry may go at once
        if isinstance(error, CartkeeperError) and error.code is ErrorCode.TEMPORAL_UNAVAILABLE:
            raise _temporal_unavailable(error.message) from None
        raise
    try:
        async with _database():
            await _mark_delivered(context.sessions, source, webhook_id, context.now())
    except ApiError:
        # The cart has it: the answer stands. A replay of this id (once the claim expired)
        # signals again, which the cart takes as a repeat.
        log.warning("webhook %r from %r delivered but not marked so", webhook_id, source)
    log.info("webhook %r from %r delivered to cart %s/%s", webhook_id, source, shop_id, cart_id)
    return WebhookAnswer(status="delivered")


def _temporal_unavailable(message: str) -> ApiError:
    return ApiError(
        ErrorCode.TEMPORAL_UNAVAILABLE,
        f"{message}; the cart may not have the result: send it again",
        headers={"Retry-After": RETRY_AFTER},
    )


@asynccontextmanager
async def _database() -> AsyncIterator[None]:
    """The read model failing: 503 ``database_unavailable`` in JSON (the gateway retries)."""
    try:
        yield
    except (SQLAlchemyError, OSError) as error:
        log.error("the read model is unavailable: %r", error)
        raise ApiError(
            WebErrorCode.DATABASE_UNAVAILABLE,
            "the database is unavailable: try again",
            headers={"Retry-After": RETRY_AFTER},
        ) from None


async def _claim(
    sessions: SessionFactory,
    source: str,
    webhook_id: str,
    shop_id: str,
    cart_id: str,
    now: datetime,
) -> Literal["taken", "delivered", "under_way"]:
    """Take the delivery of this source and id (``taken``: this request signals the
    cart), unless the cart has it (``delivered``) or another delivery of it is under way
    (``under_way``: its claim is younger than ``CLAIM_FOR``)."""
    async with write_session(sessions) as session:
        inserted = await session.execute(
            insert_for(session, WebhookDelivery)
            .values(
                source=source,
                webhook_id=webhook_id,
                shop_id=shop_id,
                cart_id=cart_id,
                received_at=now,
                claimed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["source", "webhook_id"])
        )
        if getattr(inserted, "rowcount", 0) == 1:
            return "taken"
        row = (
            await session.execute(
                select(
                    WebhookDelivery.delivered_at, WebhookDelivery.shop_id, WebhookDelivery.cart_id
                ).where(WebhookDelivery.source == source, WebhookDelivery.webhook_id == webhook_id)
            )
        ).one_or_none()
        if row is None:  # purged in between: take it as new
            return "taken"
        if (row.shop_id, row.cart_id) != (shop_id, cart_id):
            log.warning(
                "webhook %r from %r came again for cart %s/%s (first for %s/%s)",
                webhook_id,
                source,
                shop_id,
                cart_id,
                row.shop_id,
                row.cart_id,
            )
        if row.delivered_at is not None:
            return "delivered"
        taken = await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.source == source,
                WebhookDelivery.webhook_id == webhook_id,
                WebhookDelivery.delivered_at.is_(None),
                or_(
                    WebhookDelivery.claimed_at.is_(None),
                    WebhookDelivery.claimed_at <= now - CLAIM_FOR,
                ),
            )
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
    return "taken" if getattr(taken, "rowcount", 0) == 1 else "under_way"


async def _release(sessions: SessionFactory, source: str, webhook_id: str) -> None:
    """Give the claim back after a failed delivery (best effort: it expires anyway)."""
    try:
        async with write_session(sessions) as session:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.source == source,
                    WebhookDelivery.webhook_id == webhook_id,
                    WebhookDelivery.delivered_at.is_(None),
                )
                .values(claimed_at=None)
                .execution_options(synchronize_session=False)
            )
    except (SQLAlchemyError, OSError) as error:
        log.warning("webhook %r from %r: claim not released: %r", webhook_id, source, error)


async def _mark_delivered(
    sessions: SessionFactory, source: str, webhook_id: str, now: datetime
) -> None:
    async with write_session(sessions) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.source == source, WebhookDelivery.webhook_id == webhook_id)
            .values(delivered_at=now)
            .execution_options(synchronize_session=False)
        )


async def _purge_now_and_then(sessions: SessionFactory, now: datetime) -> None:
    """Delete deliveries older than ``RETENTION``, at most every ``PURGE_EVERY``."""
    last = _last_purge.get(sessions)
    if last is not None and now - last < PURGE_EVERY:
        return
    _last_purge[sessions] = now
    async with write_session(sessions) as session:
        await session.execute(
            delete(WebhookDelivery)
            .where(WebhookDelivery.received_at < now - RETENTION)
            .execution_options(synchronize_session=False)
        )
