"""The admin API's reminder campaigns, storefront API keys and recovery statistics.

    GET  /api/v1/admin/shops/{shop_id}/campaign      the campaign (removed reminders too)
    PUT  /api/v1/admin/shops/{shop_id}/campaign      replace it with a JSON document
    GET  /api/v1/admin/api-keys                       every key (or one shop's), no secrets
    POST /api/v1/admin/api-keys                       a new key, shown once (201)
    POST /api/v1/admin/api-keys/{prefix}/revoke       refused from now on
    GET  /api/v1/admin/stats/recovery                 reminders, clicks, recovered revenue

**A new key is shown once.** Only its hash is stored; the answer to ``POST /api-keys``
holds the plain key (``key``). An ``Idempotency-Key`` replay of that request answers the
same key's record with ``key`` null: the plain key is never kept, not even among the
idempotency records. A lost key is revoked and another created.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Body, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field

from activities.campaign_checks import check_shop_id
from activities.stats import recovery_stats
from starter.campaign_json import campaign_json
from starter.campaigns import CampaignClient
from starter.output import jsonable
from starter.web.admin_api_calls import (
    JsonBody,
    Reader,
    Refused,
    Writer,
    admin_router,
    answers,
    dumped,
    respond,
)
from starter.web.admin_api_carts import ShopId
from starter.web.api_keys import ApiKey, create_key, list_keys, revoke_key
from workflows.validation import ID_PATTERN

router = admin_router("admin: shop")

#: the recovery statistics' default range: this many days up to today
DEFAULT_DAYS = 30
CAMPAIGN_EXAMPLE = {
    "shop_id": "demo",
    "version": 7,
    "enabled": True,
    "shop_name": "Demo Shop",
    "sender": "shop@example.com",
    "restore_url": "https://shop.example.com/cart/{cart_id}?coupon={coupon}",
    "requires_consent": False,
    "restart_rule": "continue",
    "quiet_start_minute": 1260,
    "quiet_end_minute": 480,
    "default_time_zone": "UTC",
    "cap_count": 3,
    "cap_period_days": 7,
    "reminders": [
        {
            "id": "saved-cart",
            "position": 0,
            "name": "We saved your cart",
            "delay_seconds": 3600,
            "automatic": True,
            "subject": "We saved your cart",
            "template": "reminder",
            "coupon": None,
            "b": None,
        }
    ],
}
_KEY_EXAMPLE = {
    "id": 3,
    "shop_id": "demo",
    "name": "storefront",
    "prefix": "3f9a0c4e71b2",
    "created_at": "2026-11-30T09:00:00+00:00",
    "created_by": "ann",
    "revoked_at": None,
    "last_used_at": None,
    "revoked": False,
}


# --------------------------------------------------------------------------- campaigns


@router.get(
    "/shops/{shop_id}/campaign",
    summary="Get the reminder campaign",
    description="The shop's campaign: its settings and reminders (removed ones too,"
    " `removed: true`), as `cartkeeper campaigns show --json`. 404 `campaign_not_found`.",
    responses=answers("The campaign", {**CAMPAIGN_EXAMPLE, "reminders": []}),
)
async def get_campaign(shop_id: ShopId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        check_shop_id(shop_id)  # never asked of the database (PostgreSQL stores no NUL)
        config = await CampaignClient(call.sessions, clock=call.context.now).show(shop_id)
        return campaign_json(config, include_removed=True)

    return await call.read(work)


@router.put(
    "/shops/{shop_id}/campaign",
    summary="Replace the reminder campaign",
    description="The whole campaign as a JSON document (what `GET` answers, and"
    " `cartkeeper campaigns dump` writes): every setting and the reminders, written in one"
    " edit (one new version). **The shop's reminders the document does not list are"
    " removed** (kept, flagged removed). `shop_id` and `version` in the document are"
    " ignored. A document that cannot be read: `invalid_document` 422; a bad value its"
    " code (`invalid_sender`, `unknown_template` ...) 422.",
    responses=answers("The campaign as it is now", CAMPAIGN_EXAMPLE),
)
async def put_campaign(
    shop_id: ShopId,
    call: Writer,
    document: Annotated[
        dict[str, Any], Body(openapi_examples={"a campaign": {"value": CAMPAIGN_EXAMPLE}})
    ],
) -> Response:
    async def work() -> dict[str, Any]:
        client = CampaignClient(call.sessions, clock=call.context.now)
        config = await client.load(shop_id, document, by=call.username)
        return campaign_json(config, include_removed=True)

    return await call.write(document, work)


# --------------------------------------------------------------------------- API keys


class NewKey(JsonBody):
    shop_id: str = Field(description="The shop whose carts the key reaches.")
    name: str = Field(description="What the key is for (1-64 printable characters).")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"shop_id": "demo", "name": "php-shop"}]}
    )


def key_json(key: ApiKey) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(key)
    data["revoked"] = key.revoked
    return data


@router.get(
    "/api-keys",
    summary="List API keys",
    description="Every storefront API key (or `shop`'s), revoked ones included, never"
    " their secrets: prefix, shop, name, who created it and when, last use (to the"
    " minute), revocation.",
    responses=answers("The keys", {"keys": [_KEY_EXAMPLE]}),
)
async def list_api_keys(
    call: Reader, shop: Annotated[str | None, Query(pattern=ID_PATTERN)] = None
) -> Response:
    async def work() -> dict[str, Any]:
        return {"keys": [key_json(key) for key in await list_keys(call.sessions, shop)]}

    return await call.read(work)


@router.post(
    "/api-keys",
    status_code=201,
    summary="Create an API key",
    description="A new key of `shop_id` for its storefront (`Authorization: Bearer"
    " ck_...`). `key` holds the plain key this once: only its hash is stored. A replay"
    " (same `Idempotency-Key`) answers the same key's record with `key` null. Refused:"
    " `invalid_id` (the shop), `invalid_input` (the name) 422.",
    responses=answers("The new key", {**_KEY_EXAMPLE, "key": "ck_3f9a0c4e71b2_..."}, 201),
)
async def create_api_key(call: Writer, body: NewKey) -> Response:
    plain: list[str] = []

    async def work() -> dict[str, Any]:
        key, secret = await create_key(
            call.sessions, body.shop_id, body.name, now=call.context.now(), created_by=call.username
        )
        plain.append(secret)
        return {**key_json(key), "key": None}  # what is kept for a replay

    response = await call.write_response(dumped(body), lambda: respond(work, 201))
    if not plain or response.status_code != 201:
        return response
    data = json.loads(bytes(response.body))
    data["key"] = plain[0]  # made by this request: shown this once
    return JSONResponse(data, status_code=201, headers={"Cache-Control": "no-store"})


@router.post(
    "/api-keys/{prefix}/revoke",
    summary="Revoke an API key",
    description="No request is taken with the key from now on. Revoking twice keeps the"
    " first time. 404 `api_key_not_found`; a prefix that is not one `invalid_input` 422.",
    responses=answers("The key", {**_KEY_EXAMPLE, "revoked": True}),
)
async def revoke_api_key(
    prefix: Annotated[str, Path(max_length=100, examples=["3f9a0c4e71b2"])], call: Writer
) -> Response:
    async def work() -> dict[str, Any]:
        return key_json(await revoke_key(call.sessions, prefix, now=call.context.now()))

    return await call.write(None, work)


# --------------------------------------------------------------------------- statistics


def _day(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Refused("invalid_filter", f"{name}: {value[:40]!r} is not a day YYYY-MM-DD") from None


@router.get(
    "/stats/recovery",
    summary="Recovery statistics",
    description="Per reminder and variant and in total over the days `from` to `to`"
    " (UTC, both included; default: the last 30 days), for one `shop` or every shop:"
    " e-mails sent, carts and customers reached, skips by reason, carts that clicked,"
    " ordered and paid after a click, their revenue per currency; recovered orders per"
    " month; the recovery rate. An order counts as recovered only when the customer came"
    " back through a recovery link.",
    responses=answers(
        "The statistics",
        {
            "start": "2026-11-01T00:00:00+00:00",
            "end": "2026-12-01T00:00:00+00:00",
            "shop_id": "demo",
            "reminders": [],
            "total": {"emails_sent": 40, "paid_orders": 6, "revenue": {"EUR": 12600}},
            "months": [],
            "recovery_rate": 0.15,
        },
    ),
)
async def recovery(
    call: Reader,
    start: Annotated[
        str | None, Query(alias="from", max_length=10, examples=["2026-11-01"])
    ] = None,
    end: Annotated[str | None, Query(alias="to", max_length=10, examples=["2026-11-30"])] = None,
    shop: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> Response:
    async def work() -> dict[str, Any]:
        try:
            last = _day(end, "to") or call.context.now().astimezone(UTC).date()
            first = _day(start, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
            begin = datetime(first.year, first.month, first.day, tzinfo=UTC)
            stop = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        except OverflowError:
            raise Refused("invalid_filter", "the range leaves the calendar") from None
        if first > last:
            raise Refused("invalid_filter", "from is after to")
        result = await recovery_stats(call.sessions, begin, stop, shop)
        return result.as_json()

    return await call.read(work)
