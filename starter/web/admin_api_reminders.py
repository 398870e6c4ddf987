"""The admin API's reminders of a shop's campaign, one at a time: add or replace one,
remove one (``starter.campaigns.CampaignClient``, as ``cartkeeper campaigns reminder-set``
and ``reminder-remove``), and what one would say to a cart now (``cartkeeper reminders
preview``).

    PUT    /api/v1/admin/shops/{shop_id}/campaign/reminders/{reminder_id}          set
    DELETE /api/v1/admin/shops/{shop_id}/campaign/reminders/{reminder_id}          remove
    GET    /api/v1/admin/shops/{shop_id}/campaign/reminders/{reminder_id}/preview  render

An edit answers the whole campaign as ``GET /shops/{shop_id}/campaign`` does (removed
reminders too); the calling user is kept as the campaign's last editor.

**A preview's links lead nowhere.** The e-mail is made by the send's own ``compose``
(the cart from the read model; nothing sent, recorded or issued, a coupon shows a sample
code), but its recovery and unsubscribe links are signed with a throwaway key, as the
console's preview does: a viewer may read a preview, and a real unsubscribe link would
let them act for the customer.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from activities.campaign_checks import CampaignRefused, check_shop_id
from activities.campaigns import CouponOffer, ReminderDefinition, ReminderVariant
from activities.links import Links
from starter.campaign_json import campaign_json
from starter.campaigns import PREVIEW_COUPON_CODE, CampaignClient
from starter.output import jsonable
from starter.web.admin_api_calls import (
    AdminCall,
    JsonBody,
    Reader,
    Writer,
    admin_router,
    answers,
    dumped,
)
from starter.web.admin_api_carts import ShopId
from starter.web.admin_api_shop import CAMPAIGN_EXAMPLE
from workflows.validation import ID_PATTERN, valid_id

log = logging.getLogger("cartkeeper.web.admin_api")

router = admin_router("admin: shop")

ReminderId = Annotated[
    str,
    Path(
        max_length=100,
        description="The reminder's id (1-64 letters, digits, '.', '_', '-').",
        examples=["coupon-24h"],
    ),
]

_REMINDER_EXAMPLE: dict[str, Any] = {
    "name": "A coupon after a day",
    "position": 1,
    "delay_seconds": 86400,
    "automatic": True,
    "subject": "10 % off the cart you left",
    "template": "reminder",
    "coupon": {"kind": "percent", "amount": 10, "expiry_days": 7},
    "b": {
        "subject": "A discount on the cart you left",
        "template": "reminder",
        "coupon": {"kind": "fixed", "amount": 500, "expiry_days": 7},
    },
}
_PREVIEW_EXAMPLE = {
    "shop_id": "demo",
    "cart_id": "cart-42",
    "cart_state": "abandoned",
    "reminder_id": "coupon-24h",
    "reminder_name": "A coupon after a day",
    "variant": "a",
    "template": "reminder",
    "locale": "en",
    "sender": "Demo Shop <shop@example.com>",
    "recipient": "Ann <ann@example.com>",
    "subject": "10 % off the cart you left",
    "text": "Hello Ann, ...",
    "html": "<!doctype html>...",
    "recovery_url": "https://shop.example.com/r/...",
    "unsubscribe_url": "https://shop.example.com/u/...",
    "coupon": {"kind": "percent", "amount": 10, "expiry_days": 7},
    "sample_coupon_code": PREVIEW_COUPON_CODE,
}


# --------------------------------------------------------------------------- bodies


class CouponBody(JsonBody):
    kind: str = Field(
        description="`percent` (`amount` 1-100) or `fixed` (`amount` in minor units of the"
        " cart's currency: 500 is 5.00 EUR, 500 JPY)."
    )
    amount: int
    expiry_days: int = Field(description="How long the coupon is valid (1-365 days).")


class VariantBody(JsonBody):
    subject: str = Field(description="Variant b's subject.")
    template: str = Field(description="Variant b's template.")
    coupon: CouponBody | None = Field(
        default=None, description="Variant b's coupon (none: no coupon)."
    )


class ReminderBody(JsonBody):
    """A reminder as the campaign's document writes it (``GET /campaign``'s items), its
    id in the path."""

    id: str | None = Field(default=None, description="Optional: the path's id again.")
    name: str = Field(description="The reminder's name (admins see it).")
    position: int = Field(description="Its place in the sequence, unique among the active ones.")
    delay_seconds: int = Field(description="After the abandonment: 60 s to 365 days.")
    automatic: bool = Field(default=True, description="false: only sent by an admin.")
    subject: str = Field(description="The e-mail's subject.")
    template: str = Field(description="The template (`reminder`).")
    coupon: CouponBody | None = Field(default=None, description="Its coupon (none: no coupon).")
    b: VariantBody | None = Field(
        default=None, description="Variant b (carts are split between a and b); none: one variant."
    )
    removed: Literal[False] = Field(
        default=False, description="Optional: false (a reminder set is active)."
    )

    model_config = ConfigDict(json_schema_extra={"examples": [_REMINDER_EXAMPLE]})


def _offer(coupon: CouponBody | None) -> CouponOffer | None:
    if coupon is None:
        return None
    kind: Any = coupon.kind  # checked where it is written (``invalid_coupon``)
    return CouponOffer(kind=kind, amount=coupon.amount, expiry_days=coupon.expiry_days)


def definition(reminder_id: str, body: ReminderBody) -> ReminderDefinition:
    """The reminder the body describes (its values are checked where it is written)."""
    if body.id is not None and body.id != reminder_id:
        raise CampaignRefused(
            "invalid_reminder_id",
            f"the body's id {body.id[:70]!r} is not the path's {reminder_id!r}",
        )
    b = body.b
    return ReminderDefinition(
        reminder_id=reminder_id,
        position=body.position,
        name=body.name,
        delay_seconds=body.delay_seconds,
        automatic=body.automatic,
        a=ReminderVariant(subject=body.subject, template=body.template, coupon=_offer(body.coupon)),
        b=None
        if b is None
        else ReminderVariant(subject=b.subject, template=b.template, coupon=_offer(b.coupon)),
    )


def checked(shop_id: str, reminder_id: str) -> None:
    """A shop and a reminder id that can be ones (``invalid_shop_id``,
    ``invalid_reminder_id``), before the database is asked."""
    check_shop_id(shop_id)
    if not valid_id(reminder_id):
        raise CampaignRefused("invalid_reminder_id", f"{reminder_id[:70]!r} is not a reminder id")


def _client(call: AdminCall) -> CampaignClient:
    return CampaignClient(call.sessions, clock=call.context.now)


# --------------------------------------------------------------------------- routes


@router.put(
    "/shops/{shop_id}/campaign/reminders/{reminder_id}",
    summary="Set one reminder of the campaign",
    description="Add the reminder, or replace the one with this id entirely (a removed one"
    " comes back), as `cartkeeper campaigns reminder-set`; the other reminders and the"
    " settings stay. A shop without a campaign gets one (default settings). The body is"
    " the reminder as `GET /campaign` lists it; `b` (a variant b) needs its own subject"
    " and template. Refused with the campaign's codes, 422: `duplicate_position`,"
    " `too_many_reminders`, `invalid_reminder_id`, `invalid_name`, `invalid_position`,"
    " `invalid_delay`, `invalid_subject`, `unknown_template`, `invalid_coupon`,"
    " `invalid_variant`; a wrong type `invalid_input`.",
    responses=answers("The campaign as it is now", CAMPAIGN_EXAMPLE),
)
async def set_reminder(
    shop_id: ShopId, reminder_id: ReminderId, call: Writer, body: ReminderBody
) -> Response:
    async def work() -> dict[str, Any]:
        checked(shop_id, reminder_id)
        config = await _client(call).set_reminder(
            shop_id, definition(reminder_id, body), by=call.username
        )
        log.info("%s set reminder %s of shop %s", call.username, reminder_id, shop_id)
        return campaign_json(config, include_removed=True)

    return await call.write(dumped(body), work)


@router.delete(
    "/shops/{shop_id}/campaign/reminders/{reminder_id}",
    summary="Remove one reminder of the campaign",
    description="As `cartkeeper campaigns reminder-remove`: the reminder is kept, flagged"
    " `removed` (statistics and the carts that planned it still name it; those carts skip"
    " it); setting it again brings it back. 404 `reminder_not_found` (unknown, or removed"
    " already).",
    responses=answers("The campaign as it is now", CAMPAIGN_EXAMPLE),
)
async def remove_reminder(shop_id: ShopId, reminder_id: ReminderId, call: Writer) -> Response:
    async def work() -> dict[str, Any]:
        checked(shop_id, reminder_id)
        config = await _client(call).remove_reminder(shop_id, reminder_id, by=call.username)
        log.info("%s removed reminder %s of shop %s", call.username, reminder_id, shop_id)
        return campaign_json(config, include_removed=True)

    return await call.write(None, work)


@router.get(
    "/shops/{shop_id}/campaign/reminders/{reminder_id}/preview",
    summary="Preview a reminder for a cart",
    description="What the reminder (`variant` a or b) would say to `cart` now, as"
    " `cartkeeper reminders preview`: From, To, subject, the text and the HTML part, made"
    " by the send's own code from the cart's record in the read model. Nothing is sent,"
    " recorded or issued: a coupon shows the sample code `sample_coupon_code`, and the"
    " links are signed with a throwaway key (they show where a real e-mail's links lead,"
    " but do nothing). Refused: `campaign_not_found`, `reminder_not_found` (unknown or"
    " removed), `cart_not_found` 404; `no_address` 409 (no e-mail address);"
    " `empty_cart` 409; `no_variant_b`, `unknown_template` 422.",
    responses=answers("The rendered e-mail", _PREVIEW_EXAMPLE),
)
async def preview_reminder(
    shop_id: ShopId,
    reminder_id: ReminderId,
    call: Reader,
    cart: Annotated[
        str, Query(pattern=ID_PATTERN, description="The cart to remind.", examples=["cart-42"])
    ],
    variant: Annotated[Literal["a", "b"], Query(description="Which variant.")] = "a",
) -> Response:
    async def work() -> dict[str, Any]:
        checked(shop_id, reminder_id)
        settings = call.context.settings
        shown = await _client(call).preview(
            shop_id,
            reminder_id,
            cart,
            links=Links(secrets.token_urlsafe(32)),  # throwaway: the links lead nowhere
            base_url=settings.public_url if settings else None,
            variant=variant,
        )
        data: dict[str, Any] = jsonable(shown)
        data["sample_coupon_code"] = PREVIEW_COUPON_CODE if shown.coupon is not None else None
        return data

    return await call.read(work)
