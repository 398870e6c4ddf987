"""Settings: what a reminder of the shop's campaign would say to a cart now, as
``cartkeeper reminders preview`` shows it (``CampaignClient.preview``: the send's own
``compose``, the cart from the read model; nothing is sent, recorded or issued, a
coupon shows a sample code).

    GET /admin/settings/campaign/preview?shop=S&reminder=R&variant=a|b&cart=C
        the page: the reminders to choose from, From, To, subject, the text part, and
        the HTML part in a sandboxed iframe
    GET /admin/settings/campaign/preview/html?shop=S&reminder=R&variant=a|b&cart=C
        the HTML part alone, for that iframe

Without ``cart`` the sample is the shop's latest abandoned cart with an e-mail address
and items, else its latest such cart of any state; without ``reminder``, the campaign's
first. A shop with no such cart has nothing to preview with: the page says so.

The e-mail's HTML is served from its own route with a Content-Security-Policy of its own
(``PREVIEW_CSP``): no script at all, nothing loaded from elsewhere, styles inline only,
sandboxed (a unique origin: no cookies, no forms, no pop-ups), framed by the console
only; the iframe is ``sandbox``ed too. Its links are signed with a throwaway key
(``Links`` made per preview): they show where a real e-mail's links lead, but clicking
one in a preview records no click and restores no cart.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, select

from activities.campaigns import CampaignConfig, CampaignRefused
from activities.db import SessionFactory
from activities.links import Links
from activities.models import CartRecord
from starter.campaigns import PREVIEW_COUPON_CODE, ReminderPreview
from starter.web.admin_auth import AdminRefused, Viewer
from starter.web.admin_render import ADMIN_CSP, render_admin
from starter.web.admin_settings_campaigns import campaigns
from starter.web.admin_settings_common import SECTIONS, page_shop
from starter.web.deps import Context, WebContext
from workflows.contract import CartState
from workflows.validation import valid_id

router = APIRouter(tags=["admin"], include_in_schema=False)

PATH = "/admin/settings/campaign/preview"
HTML_PATH = f"{PATH}/html"
#: the previewed e-mail: no script, nothing from elsewhere, sandboxed, framed here only
PREVIEW_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:;"
    " form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
PREVIEW_HEADERS = {
    "Content-Security-Policy": PREVIEW_CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
#: the preview page may frame the previewed e-mail (and nothing else)
PAGE_CSP = f"{ADMIN_CSP}; frame-src 'self'"
#: refusals that name something the shop does not have
_NOT_FOUND = {"campaign_not_found", "reminder_not_found", "cart_not_found"}


@dataclass(frozen=True)
class Asked:
    """What to preview; ``reminder_id`` / ``cart_id`` ``None``: the first / a sample."""

    shop_id: str
    reminder_id: str | None
    variant: str
    cart_id: str | None


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def asked(request: Request, context: WebContext) -> Asked:
    shop = page_shop(request, context)
    variant = _param(request, "variant") or "a"
    if variant not in ("a", "b"):
        raise AdminRefused(400, "invalid_variant", "No such variant", "A variant is a or b.")
    reminder, cart = _param(request, "reminder"), _param(request, "cart")
    for what, value in (("reminder", reminder), ("cart", cart)):
        if value is not None and not valid_id(value):
            raise AdminRefused(
                400, f"invalid_{what}_id", f"Not a {what} id", f"{value[:80]!r} is not a {what} id."
            )
    return Asked(shop, reminder, variant, cart)


async def sample_cart(sessions: SessionFactory, shop_id: str) -> str | None:
    """The cart a preview shows by default (see the module's doc)."""
    query = (
        select(CartRecord.cart_id)
        .where(
            CartRecord.shop_id == shop_id,
            CartRecord.customer_email.is_not(None),
            CartRecord.item_count > 0,
            CartRecord.currency.is_not(None),
        )
        .order_by(
            case((CartRecord.state == str(CartState.ABANDONED), 0), else_=1),
            CartRecord.updated_at.desc(),
            CartRecord.cart_id,
        )
        .limit(1)
    )
    async with sessions() as session:
        found = await session.scalar(query)
    return str(found) if found is not None else None


async def render_preview(
    context: WebContext, wanted: Asked, config: CampaignConfig, cart_id: str
) -> ReminderPreview:
    reminder_id = wanted.reminder_id
    if reminder_id is None:
        active = config.active_reminders
        if not active:
            raise CampaignRefused("reminder_not_found", "the campaign has no reminders")
        reminder_id = active[0].reminder_id
    settings = context.settings
    return await campaigns(context).preview(
        wanted.shop_id,
        reminder_id,
        cart_id,
        links=Links(secrets.token_urlsafe(32)),  # throwaway: the links lead nowhere
        base_url=settings.public_url if settings else None,
        variant="b" if wanted.variant == "b" else "a",
    )


def _refusal_status(code: str) -> int:
    return 404 if code in _NOT_FOUND else 400


@router.get(PATH, summary="Preview a reminder")
async def preview_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    wanted = asked(request, context)
    config = await campaigns(context).get(wanted.shop_id)
    cart_id = wanted.cart_id
    if cart_id is None and config is not None:
        cart_id = await sample_cart(context.sessions, wanted.shop_id)
    shown: ReminderPreview | None = None
    problem: tuple[str, str] | None = None
    status = 200
    if config is not None and cart_id is not None:
        try:
            shown = await render_preview(context, wanted, config, cart_id)
        except CampaignRefused as error:
            problem = (error.code, error.message)
            status = _refusal_status(error.code)
    frame = None
    if shown is not None:
        frame = f"{HTML_PATH}?" + urlencode(
            {
                "shop": wanted.shop_id,
                "reminder": shown.reminder_id,
                "variant": shown.variant,
                "cart": shown.cart_id,
            }
        )
    response = render_admin(
        request,
        "admin/settings_preview.html",
        status,
        active="settings",
        sections=SECTIONS,
        shop=wanted.shop_id,
        wanted=wanted,
        config=config,
        cart_id=cart_id,
        shown=shown,
        problem=problem,
        frame=frame,
        sample_code=PREVIEW_COUPON_CODE,
    )
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@router.get(HTML_PATH, summary="A previewed reminder's HTML")
async def preview_html(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    wanted = asked(request, context)
    config = await campaigns(context).get(wanted.shop_id)
    if config is None:
        raise AdminRefused(
            404, "campaign_not_found", "No campaign", f"Shop {wanted.shop_id} has no campaign."
        )
    cart_id = wanted.cart_id or await sample_cart(context.sessions, wanted.shop_id)
    if cart_id is None:
        raise AdminRefused(
            404,
            "cart_not_found",
            "No cart to preview with",
            f"Shop {wanted.shop_id} has no cart with an e-mail address and items.",
        )
    try:
        shown = await render_preview(context, wanted, config, cart_id)
    except CampaignRefused as error:
        raise AdminRefused(
            _refusal_status(error.code), error.code, "Cannot preview", error.message
        ) from None
    return HTMLResponse(shown.html, headers=PREVIEW_HEADERS)
