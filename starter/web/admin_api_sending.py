"""The admin API's manual reminder to many carts at once, with a dry run
(``starter.reminder_sending``, as ``cartkeeper reminders send``).

    POST /api/v1/admin/shops/{shop_id}/campaign/reminders/{reminder_id}/send

The carts are the shop's carts of the read model in ``state`` (default ``abandoned``)
abandoned since ``abandoned_since``, or exactly ``cart_ids``. Each is checked as its
workflow and the sending would check it; ``dry_run`` answers who would get the reminder
and why the others would not, and sends nothing. Otherwise the carts that pass are sent
the request (with the calling user as the admin: each cart's journal records who sent
it) and the answer says per cart whether it was sent, skipped (why), is still being
sent, or what its workflow refused. At most ``MAX_CARTS`` carts a request.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response
from pydantic import ConfigDict, Field
from sqlalchemy import func, select

from activities.models import CartRecord
from starter.output import jsonable
from starter.reminder_sending import CartSelection, SendReport, check_carts, send_checked
from starter.web.admin_api_calls import (
    AdminCall,
    JsonBody,
    Refused,
    Writer,
    admin_router,
    answers,
    check_shop,
    dumped,
    when,
)
from starter.web.admin_api_carts import ShopId
from starter.web.deps import UPDATE_TIMEOUT
from workflows.codes import CartState
from workflows.validation import valid_id

log = logging.getLogger("cartkeeper.web.admin_api")

router = admin_router("admin: shop")

#: carts one request may select (more: ``too_many_carts``, narrow the selection)
MAX_CARTS = 1000
#: seconds the answer waits, in all, for the outcomes of the requests the carts took
OUTCOME_WAIT = 10.0
STATES = [str(state) for state in CartState]

_RESULT_EXAMPLE = {
    "shop_id": "demo",
    "cart_id": "cart-42",
    "status": "would_send",
    "state": "abandoned",
    "email": "ann@example.com",
    "abandoned_at": "2026-11-29T18:00:00+00:00",
    "reason": None,
    "detail": None,
    "variant": None,
    "offer": "10 % off for 7 days",
    "message_id": None,
    "coupon_code": None,
}
_REPORT_EXAMPLE = {
    "shop_id": "demo",
    "reminder_id": "winback",
    "dry_run": True,
    "checked_at": "2026-11-30T09:00:00+00:00",
    "results": [
        _RESULT_EXAMPLE,
        {
            **_RESULT_EXAMPLE,
            "cart_id": "cart-43",
            "status": "not_sent",
            "email": "bea@example.com",
            "reason": "quiet_hours",
            "detail": "22:10 in Australia/Brisbane is within the quiet hours 21:00-08:00",
            "offer": None,
        },
    ],
    "counts": {"would_send": 1, "not_sent": 1},
    "reasons": {"quiet_hours": 1},
}


class SendBody(JsonBody):
    cart_ids: list[str] | None = Field(
        default=None,
        max_length=MAX_CARTS,
        description="Exactly these carts (each reported, with why it gets nothing); not"
        " with `state` or `abandoned_since`.",
    )
    state: str | None = Field(
        default=None,
        description=f"With `abandoned_since`: the carts in this state ({', '.join(STATES)};"
        " default abandoned).",
    )
    abandoned_since: str | None = Field(
        default=None,
        description="The carts abandoned at or after this time: a day `YYYY-MM-DD` (UTC)"
        " or an ISO 8601 time (no offset: UTC).",
    )
    note: str | None = Field(default=None, description="Why (kept in each cart's journal).")
    dry_run: bool = Field(
        default=False, description="Only say who would get it and why not the others."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"abandoned_since": "2026-11-22", "dry_run": True},
                {"cart_ids": ["cart-42", "cart-43"], "note": "black friday"},
            ]
        }
    )


def selection_of(shop_id: str, body: SendBody) -> CartSelection:
    """The carts the body selects (``invalid_input``, ``invalid_filter``, ``invalid_id``
    when it cannot be read)."""
    check_shop(shop_id)
    if body.cart_ids is not None:
        if body.state is not None or body.abandoned_since is not None:
            raise Refused(
                "invalid_input", "give either cart_ids or abandoned_since (and state), not both"
            )
        if not body.cart_ids:
            raise Refused("invalid_input", "cart_ids: give at least one cart")
        for cart_id in body.cart_ids:
            if not valid_id(cart_id):
                raise Refused("invalid_id", f"cart_ids: {cart_id[:70]!r} is not a cart id")
        return CartSelection(shop_id, cart_ids=tuple(body.cart_ids))
    since = when(body.abandoned_since, "abandoned_since")
    if since is None:
        raise Refused("invalid_input", "give cart_ids, or abandoned_since (and state)")
    if body.state is not None and body.state not in STATES:
        raise Refused(
            "invalid_filter", f"state: {body.state[:40]!r} is not one of {', '.join(STATES)}"
        )
    state = CartState(body.state) if body.state is not None else CartState.ABANDONED
    return CartSelection(shop_id, state=state, abandoned_since=since)


async def _count(call: AdminCall, selection: CartSelection) -> int:
    """How many carts a filter selects (as ``reminder_sending.select_carts`` does)."""
    if selection.cart_ids is not None:
        return len(set(selection.cart_ids))
    query = (
        select(func.count()).select_from(CartRecord).where(CartRecord.shop_id == selection.shop_id)
    )
    if selection.state is not None:
        query = query.where(CartRecord.state == str(selection.state))
    if selection.abandoned_since is not None:
        query = query.where(CartRecord.abandoned_at >= selection.abandoned_since)
    async with call.sessions() as session:
        return int(await session.scalar(query) or 0)


def report_json(report: SendReport) -> dict[str, Any]:
    data: dict[str, Any] = jsonable(report)
    data["counts"] = report.counts()
    data["reasons"] = report.reasons()
    return data


@router.post(
    "/shops/{shop_id}/campaign/reminders/{reminder_id}/send",
    summary="Send a reminder to many carts",
    description="Send the reminder now to the carts chosen (once per cart), as `cartkeeper"
    " reminders send`: `cart_ids`, or the shop's carts in `state` (default abandoned)"
    " abandoned since `abandoned_since`, read from the read model. Each cart is checked"
    " as its workflow and the sending would check it (abandoned, an address, not sent yet;"
    " the campaign has the reminder, consent, not unsubscribed or bounced, no newer cart or"
    " order of the customer, the cap, quiet hours: a manual reminder then is skipped)."
    " `dry_run`: each cart's `status` is `would_send`, or `not_sent` with its `reason` and"
    " `detail`; nothing is sent. Otherwise the carts that pass are sent the request, your"
    " name kept in each cart's journal, and each result is `sent` (`message_id`,"
    f" `coupon_code`), `skipped` (`reason`), `sending` (its outcome not known within"
    f" {OUTCOME_WAIT:g} s), `refused` (the workflow's code: the cart changed since its"
    " projection) or `failed` (Temporal or a worker did not answer); a named cart the read"
    " model lacks is `not_found`. One cart's failure never stops the others: the answer is"
    f" 200 with every cart's result. Refused: more than {MAX_CARTS} carts"
    " `too_many_carts` 422 (narrow the selection); `invalid_input`, `invalid_filter`,"
    " `invalid_id`, `invalid_reminder` 422.",
    responses=answers("Each cart's result", _REPORT_EXAMPLE),
)
async def send_reminder(
    shop_id: ShopId,
    reminder_id: Annotated[
        str, Path(max_length=100, description="A reminder of the shop's campaign.")
    ],
    call: Writer,
    body: SendBody,
) -> Response:
    async def work() -> dict[str, Any]:
        selection = selection_of(shop_id, body)
        count = await _count(call, selection)
        if count > MAX_CARTS:
            raise Refused(
                "too_many_carts",
                f"{count} carts match; at most {MAX_CARTS} a request: give a later"
                " abandoned_since, or cart_ids",
            )
        now: datetime = call.context.now()
        report = await check_carts(
            call.sessions, selection, reminder_id, admin=call.username, note=body.note, now=now
        )
        if body.dry_run:
            return report_json(report)
        if any(result.status == "would_send" for result in report.results):
            report = await send_checked(
                await call.context.carts(),
                report,
                admin=call.username,
                note=body.note,
                outcome_wait=OUTCOME_WAIT,
                request_timeout=UPDATE_TIMEOUT + 5,
            )
        else:
            report = replace(report, dry_run=False)
        log.info(
            "%s sent reminder %s of shop %s: %s",
            call.username,
            reminder_id,
            shop_id,
            report.counts(),
        )
        return report_json(report)

    return await call.write(dumped(body), work)
