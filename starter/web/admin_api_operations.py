"""The admin API's operations of a shop that the CLI has and the console shows: the cart
policy new carts get, the daily digest sent by hand, and the local mail catcher's outbox.

    GET  /api/v1/admin/shops/{shop_id}/policy    the shop's effective cart policy
    POST /api/v1/admin/shops/{shop_id}/digest    send the day's digest now (or preview it)
    GET  /api/v1/admin/outbox                    the mail catcher's messages, newest first

The policy is read-only: it is set in the environment of the processes
(``CARTKEEPER_POLICY``, ``CARTKEEPER_SHOP_POLICIES``), and a cart keeps the policy it was
created with. The digest is sent once per shop and day (``cartkeeper digest send``): a
second call for the same day answers ``already_sent`` and sends nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response
from pydantic import ConfigDict, Field

from activities.digest import DigestActivities
from activities.smtp import MailError
from starter.web.admin_api_calls import (
    JsonBody,
    Reader,
    Refused,
    Writer,
    admin_router,
    answers,
    check_shop,
    dumped,
)
from starter.web.admin_api_carts import ShopId
from starter.web.admin_outbox import PAGE_SIZE, mailbox_of, read_page
from starter.web.admin_settings import policy_values
from workflows.alerts_contract import ALERT_FAILED, ALERT_SENDING

router = admin_router("admin: shop")


# --------------------------------------------------------------------------- policy


@router.get(
    "/shops/{shop_id}/policy",
    summary="Get the shop's cart policy",
    description="What new carts of the shop get (timers in seconds, limits), each value"
    " with where it comes from (`default`, `CARTKEEPER_POLICY`,"
    " `CARTKEEPER_SHOP_POLICIES (shop)`). Read-only: set in the processes' environment."
    " 422 `invalid_id` (the shop), `invalid_policy` (the environment's policy is not"
    " one).",
    responses=answers(
        "The policy",
        {
            "shop_id": "demo",
            "policy": {"abandon_after_seconds": 3600, "lock_after_seconds": 900},
            "sources": {"abandon_after_seconds": "default", "lock_after_seconds": "default"},
        },
    ),
)
async def get_policy(shop_id: ShopId, call: Reader) -> Response:
    async def work() -> dict[str, Any]:
        settings = call.context.settings
        if settings is None:
            raise Refused("invalid_policy", "no settings")
        check_shop(shop_id)
        values, problem = policy_values(settings, shop_id)
        if problem is not None:
            raise Refused("invalid_policy", problem)
        return {
            "shop_id": shop_id,
            "policy": {value.name: value.value for value in values},
            "sources": {value.name: value.source for value in values},
        }

    return await call.read(work)


# --------------------------------------------------------------------------- digest


class DigestRequest(JsonBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"day": "2026-12-01", "dry_run": False}]}
    )

    day: str | None = Field(
        default=None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="The digest's date, YYYY-MM-DD (default: today in the shop's time"
        " zone); its recovered orders are those of the day before.",
    )
    dry_run: bool = Field(
        default=False, description="Build the digest and answer it (subject, text): send nothing."
    )


@router.post(
    "/shops/{shop_id}/digest",
    summary="Send the shop's daily digest now",
    description="Builds the shop's digest of `day` and sends it to the shop's admins"
    " (`CARTKEEPER_SHOP_ADMINS`), once per shop and day: `status` `sent`, `already_sent`"
    " (it went out earlier, by its schedule or by hand: not again) or `nothing_to_report`."
    " `dry_run`: `subject`, `text` and `empty`, nothing sent. Refused: 422 `invalid_id`,"
    " `no_admins` (none configured, unless `dry_run`), `send_failed` (the relay refused"
    " it); 409 `digest_sending` (another process is sending it right now: ask again"
    " shortly); 503 `mail_unavailable` (the relay cannot be reached: try again).",
    responses=answers(
        "What was done",
        {"shop_id": "demo", "day": "2026-12-01", "status": "sent", "recipients": 1},
    ),
)
async def send_digest(shop_id: ShopId, body: DigestRequest, call: Writer) -> Response:
    async def work() -> dict[str, Any]:
        settings = call.context.settings
        if settings is None:
            raise Refused("no_admins", "no settings")
        check_shop(shop_id)
        admins = settings.admins_for(shop_id)
        if not admins and not body.dry_run:
            raise Refused(
                "no_admins",
                f"shop {shop_id!r} has no admin addresses (CARTKEEPER_SHOP_ADMINS)",
            )
        activities = DigestActivities(call.sessions, settings)
        try:
            day = date.fromisoformat(body.day) if body.day else activities.today(shop_id)
        except ValueError:
            raise Refused("invalid_input", f"day: {body.day!r} is not a date") from None
        if body.dry_run:
            rendered = activities.render(built := await activities.build(shop_id, day))
            return {
                "shop_id": shop_id,
                "day": day.isoformat(),
                "status": "dry_run",
                "recipients": len(admins),
                "subject": rendered.subject,
                "text": rendered.text,
                "empty": built.empty,
            }
        try:
            result = await activities.send(shop_id, day)
        except MailError as error:
            code = "mail_unavailable" if error.transient else "send_failed"
            raise Refused(code, error.message) from None
        if result.status == ALERT_FAILED:
            raise Refused("send_failed", result.detail or "not sent")
        if result.status == ALERT_SENDING:
            raise Refused("digest_sending", "another process is sending this digest right now")
        return {
            "shop_id": shop_id,
            "day": day.isoformat(),
            "status": result.status,
            "recipients": result.recipients,
            "message_id": result.message_id,
            "sent_at": result.sent_at,
            "detail": result.detail,
        }

    return await call.write(dumped(body), work)


# --------------------------------------------------------------------------- outbox


@router.get(
    "/outbox",
    summary="List the mail catcher's messages",
    description="The messages the local mail catcher of `cartkeeper dev` received, newest"
    " first, `limit` at a time (`next_before` asks for the older ones); `total` counts"
    " them all. 404 `mailbox_not_found` when this deployment has no mail catcher.",
    responses=answers(
        "The messages",
        {
            "messages": [
                {
                    "id": 12,
                    "received_at": "2026-12-01T10:00:00+00:00",
                    "to": "ada@example.com",
                    "from": "shop@example.com",
                    "subject": "We saved your cart",
                }
            ],
            "next_before": 2,
            "total": 12,
        },
    ),
)
async def list_outbox(
    call: Reader,
    before: Annotated[int | None, Query(ge=1, le=10**9)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE_SIZE,
) -> Response:
    async def work() -> dict[str, Any]:
        mailbox = mailbox_of(call.context)
        if mailbox is None:
            raise Refused("mailbox_not_found", "no mail catcher here: nothing is kept")
        page = read_page(mailbox, before, limit)
        return {
            "messages": [
                {
                    "id": item.id,
                    "received_at": item.received_at,
                    "to": item.to,
                    "from": item.sender,
                    "subject": item.subject,
                }
                for item in page.items
            ],
            "next_before": page.next_before,
            "total": page.total,
        }

    return await call.read(work)
