"""The links in reminder e-mail: ``/r/{token}`` (recovery) and ``/u/{token}`` (unsubscribe).

Mail scanners (a company's link checker, a mail provider's preview) fetch every link in
a message before the customer does, so **a GET changes nothing** on either link.

``GET /r/{token}`` answers a page that posts itself back at once (an inline script, with
a button for browsers without scripts): the customer's browser makes the click, the
scanner's fetch does not. ``POST /r/{token}`` records the click (``recovery_clicks``),
finds the coupon the reminder gave (if it can still be used), tells the cart's workflow
(``recovery_link_clicked``: an abandoned cart becomes active and gets the coupon), and
redirects (303) to the shop's ``restore_url`` with ``{cart_id}`` and ``{coupon}`` filled
in. Temporal being down delays nothing beyond ``signal_timeout`` and loses nothing the
shop needs: the click is recorded first, and the customer is redirected anyway. A shop
without a campaign (no ``restore_url``) gets a "your cart is saved" page.

``GET /u/{token}`` asks for confirmation only. ``POST /u/{token}`` suppresses the address
for the shop, once; a body ``List-Unsubscribe=One-Click`` (RFC 8058, the mail client's own
button) is recorded as ``one_click``, the page's form as ``link``.

A changed or foreign token is ``link_invalid`` (400), an old recovery link
``link_expired`` (410); neither changes anything: the routes' ``Recovery`` and
``Unsubscribe`` dependencies read the token, and ``link_refused`` (the app's handler of
``LinkRefused``) answers. Pages name the shop and nothing else (never the address, the
cart or the coupon), and the token is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from activities.campaigns import load_campaign
from activities.links import LinkRefused, RecoveryClaim, UnsubscribeClaim
from starter.client_errors import CartkeeperError
from starter.web import store
from starter.web.deps import Context, WebContext
from starter.web.pages import error_page, render
from workflows.contract import ErrorCode

log = logging.getLogger("cartkeeper.web")

router = APIRouter(tags=["links"])

#: longer tokens are refused unread (ours are a few hundred characters)
MAX_TOKEN_LENGTH = 4096


async def link_refused(_request: Request, refused: LinkRefused) -> Response:
    if refused.code == "link_expired":
        return error_page(
            410,
            refused.code,
            "This link has expired",
            "The link in your e-mail is too old to use. Visit the shop to see your cart.",
        )
    return error_page(
        400,
        refused.code,
        "This link is not valid",
        "The link is incomplete or was changed. Open it again from the e-mail, or copy"
        " the whole link into your browser.",
    )


def _short(token: str) -> str:
    if len(token) > MAX_TOKEN_LENGTH:
        raise LinkRefused("link_invalid", "the link is not valid")
    return token


async def _recovery_claim(token: str, context: Context) -> RecoveryClaim:
    return context.links.read_recovery(_short(token))


async def _unsubscribe_claim(token: str, context: Context) -> UnsubscribeClaim:
    return context.links.read_unsubscribe(_short(token))


#: the path's ``{token}`` as a recovery / unsubscribe link (else ``LinkRefused``)
Recovery = Annotated[RecoveryClaim, Depends(_recovery_claim)]
Unsubscribe = Annotated[UnsubscribeClaim, Depends(_unsubscribe_claim)]


def restore_target(template: str, cart_id: str, coupon: str | None) -> str | None:
    """The campaign's ``restore_url`` with ``{cart_id}`` and ``{coupon}`` filled in
    (URL-encoded; no coupon: empty), read as ``check_restore_url`` reads it (a format
    string: ``{{`` is a brace), or ``None`` when it is not an http(s) URL."""
    try:
        url = template.format(cart_id=quote(cart_id, safe=""), coupon=quote(coupon or "", safe=""))
    except (LookupError, AttributeError, ValueError):  # a template check_restore_url refuses
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def form_action_source(url: str) -> str:
    """``url``'s origin as a CSP source (scheme, host in ASCII, port; never a user or a
    password), or every http(s) origin if it cannot be written as one."""
    parts = urlsplit(url)
    try:
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port
    except (UnicodeError, ValueError):
        host, port = "", None
    if not host or not all(c.isalnum() or c in "-." for c in host):
        return "https: http:"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


# --------------------------------------------------------------------------- recovery


@router.get("/r/{token}", summary="Open a recovery link (a page that posts it; changes nothing)")
async def recovery_page(claim: Recovery, context: Context) -> Response:
    campaign = await load_campaign(context.sessions, claim.shop_id)
    target = restore_target(campaign.restore_url, claim.cart_id, None) if campaign else None
    # The form's POST ends in a redirect to the shop: CSP's form-action covers redirects.
    origin = f" {form_action_source(target)}" if target is not None else ""
    nonce = secrets.token_urlsafe(16)
    return render(
        "recovery.html",
        shop_name=campaign.shop_name if campaign else claim.shop_id,
        nonce=nonce,
        csp=(
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}';"
            f" form-action 'self'{origin}; base-uri 'none'; frame-ancestors 'none'"
        ),
    )


@router.post("/r/{token}", summary="Follow a reminder's recovery link (records the click)")
async def recovery_link(claim: Recovery, context: Context) -> Response:
    now = context.now()
    facts = await store.recovery_facts(
        context.sessions, claim.shop_id, claim.cart_id, claim.reminder, now
    )
    await store.record_click(
        context.sessions, claim.shop_id, claim.cart_id, facts.lineage, claim.reminder, now
    )
    await _tell_the_cart(context, claim, facts.coupon_code)
    campaign = await load_campaign(context.sessions, claim.shop_id)
    if campaign is None:
        return render("cart_saved.html", shop_name=claim.shop_id)
    target = restore_target(campaign.restore_url, claim.cart_id, facts.coupon_code)
    if target is None:
        log.warning("shop %s: restore_url is not an http(s) URL", claim.shop_id)
        return render("cart_saved.html", shop_name=campaign.shop_name)
    return RedirectResponse(
        target,
        status_code=303,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def _tell_the_cart(context: WebContext, claim: RecoveryClaim, coupon: str | None) -> None:
    """Signal the cart's workflow; any failure is logged, never shown to the customer."""
    where = f"cart {claim.shop_id}/{claim.cart_id}"
    try:
        await asyncio.wait_for(
            context.signaller.recovery_link_clicked(
                claim.shop_id, claim.cart_id, claim.reminder, coupon
            ),
            context.signal_timeout,
        )
    except CartkeeperError as error:
        if error.code is ErrorCode.CART_NOT_FOUND:
            log.info("%s: recovery click recorded; the cart has no workflow to tell", where)
        else:
            log.warning("%s: recovery click recorded, not signalled: %s", where, error)
    except Exception as error:  # Temporal unreachable or slow (TimeoutError), a refused payload
        log.warning("%s: recovery click recorded, not signalled: %r", where, error)


# --------------------------------------------------------------------------- unsubscribe


async def _shop_name(context: WebContext, shop_id: str) -> str:
    campaign = await load_campaign(context.sessions, shop_id)
    return campaign.shop_name if campaign else shop_id


@router.get("/u/{token}", summary="Ask to confirm unsubscribing (changes nothing)")
async def unsubscribe_page(claim: Unsubscribe, context: Context) -> Response:
    return render("unsubscribe.html", shop_name=await _shop_name(context, claim.shop_id))


@router.post("/u/{token}", summary="Unsubscribe (the page's form, or RFC 8058 one-click)")
async def unsubscribe(claim: Unsubscribe, request: Request, context: Context) -> Response:
    source = store.ONE_CLICK if await _one_click(request) else store.LINK
    added = await store.record_unsubscribe(
        context.sessions, claim.shop_id, claim.email, source, context.now()
    )
    if added:
        log.info("shop %s: an address unsubscribed (%s)", claim.shop_id, source)
    return render("unsubscribed.html", shop_name=await _shop_name(context, claim.shop_id))


async def _one_click(request: Request) -> bool:
    """The body is RFC 8058's ``List-Unsubscribe=One-Click`` (form-urlencoded or
    multipart/form-data, as mail clients send it)."""
    try:
        form = await request.form(max_files=0, max_fields=20, max_part_size=4096)
    except Exception:  # an unreadable body: still an unsubscribe, from the page
        return False
    value = form.get("List-Unsubscribe")
    return isinstance(value, str) and value.strip().lower() == "one-click"
