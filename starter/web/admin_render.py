"""The admin console's pages: Jinja2 templates under ``templates/admin`` (autoescaped),
the layout's context, amounts and times as the console shows them, and flash messages
that survive the redirect after a form (post, redirect, get).

    return render_admin(request, "admin/orders.html", active="orders", rows=rows)
    return redirect_to(request, "/admin/orders/42", "Status changed to P")      # 303 + flash
    return redirect_to(request, url, "cart_locked: the cart is locked", ok=False)

Every page gets ``admin`` (the ``AdminSession``, or ``None``), ``csrf_field()`` (the
hidden input every POST form must hold), ``flash`` (the message of the last action, or
``None``), ``nav`` and ``active`` (the layout's navigation), ``now``, and the filters
``money(currency)`` (minor units, formatted with babel in that currency) and ``when`` /
``ago`` (UTC times). Pages load nothing from elsewhere: the style sheet is
``/admin/assets/admin.css`` (served by the app) and the CSP allows only the app's own
styles, scripts and images.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from activities.mail_render import money as babel_money
from starter.output import format_money, format_relative, format_time
from starter.web.admin_auth import (
    CSRF_FIELD,
    FLASH_COOKIE,
    AdminSession,
    clear_cookie,
    keys_of,
    set_cookie,
)
from starter.web.pages import PAGE_HEADERS, TEMPLATES, shown
from workflows.codes import currency_exponent

#: the console's pages: its own style sheet, scripts and images only; forms post here
ADMIN_CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:;"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
ADMIN_HEADERS = {**PAGE_HEADERS, "Content-Security-Policy": ADMIN_CSP}
#: (key, path, label) of the layout's navigation; a page passes ``active=<key>``
NAV = (
    ("dashboard", "/admin", "Dashboard"),
    ("carts", "/admin/carts", "Carts"),
    ("orders", "/admin/orders", "Orders"),
    ("statistics", "/admin/statistics", "Statistics"),
    ("settings", "/admin/settings", "Settings"),
    ("outbox", "/admin/outbox", "Outbox"),
)
#: a flash message is cut to this many characters (it travels in a cookie)
FLASH_LIMIT = 600
_FLASH_LIFETIME = timedelta(minutes=5)
_LOCALE = "en"


def money(amount: int | None, currency: str | None) -> str:
    """Minor units in ``currency`` as babel writes them (``€21.00``); without a currency,
    or one babel does not know, the plain ``21.00 XYZ``."""
    if amount is None:
        return "-"
    if currency:
        try:
            return babel_money(amount, currency, _LOCALE)
        except ValueError:
            pass
    return format_money(amount, currency)


def when(value: datetime | None) -> str:
    return f"{format_time(value)} UTC" if value is not None else "-"


def _ago(value: datetime | None, now: datetime) -> str:
    return format_relative(value, now) if value is not None else ""


#: each template is read and compiled once
ADMIN_PAGES = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
    finalize=shown,  # text stored before the rules, escaped
)
ADMIN_PAGES.filters["money"] = money
ADMIN_PAGES.filters["when"] = when
ADMIN_PAGES.globals["nav"] = NAV


def csrf_input(token: str) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, escape(token))


def _flash(request: Request) -> dict[str, Any] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > 4000:
        return None
    try:
        values = keys_of(request).flash.loads(raw)
    except BadSignature:
        return None
    if isinstance(values, list) and len(values) == 2 and isinstance(values[1], str):
        return {"ok": bool(values[0]), "text": values[1]}
    return None


def render_admin(
    request: Request, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A console page: ``template`` with the layout's context (see the module's doc) and
    ``context``; the flash message shown is then forgotten."""
    session = getattr(request.state, "admin", None)
    admin = session if isinstance(session, AdminSession) else None
    web = request.app.state.context
    now: datetime = web.now()
    flash = _flash(request)
    values: dict[str, Any] = {
        "admin": admin,
        "csrf_field": lambda: csrf_input(admin.csrf_token) if admin else Markup(""),
        "flash": flash,
        "active": "",
        "now": now,
        "ago": lambda value: _ago(value, now),
        **context,
    }
    html = ADMIN_PAGES.get_template(template).render(**values)
    response = HTMLResponse(html, status_code=status_code, headers=ADMIN_HEADERS)
    if flash is not None:
        clear_cookie(response, request, web.settings, FLASH_COOKIE)
    return response


def redirect_to(
    request: Request, location: str, message: str | None = None, *, ok: bool = True
) -> RedirectResponse:
    """303 to ``location`` (a path of the console), with ``message`` shown there once."""
    response = RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
    if message:
        text = message if len(message) <= FLASH_LIMIT else message[: FLASH_LIMIT - 3] + "..."
        value = keys_of(request).flash.dumps([ok, text])
        settings = request.app.state.context.settings
        set_cookie(response, request, settings, FLASH_COOKIE, value, _FLASH_LIFETIME)
    return response


def whole_number(raw: object, low: int = 1, high: int = 2**63 - 1) -> int | None:
    """``raw`` as a whole number in ``low..high`` written in ASCII digits (at most 19 of
    them), else ``None``: ``str.isdigit`` takes "²" and ``int`` refuses 5,000 digits, and
    neither may become a 500."""
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        return None
    value = int(raw)
    return value if low <= value <= high else None


#: seconds a console action may take in all (the client's update timeout comes first)
ACTION_TIMEOUT = 30.0

_log = logging.getLogger("cartkeeper.web")


async def answer_action(
    request: Request,
    back: str,
    verb: str,
    subject: str,
    admin: AdminSession,
    work: Awaitable[str],
    refusals: tuple[type[Exception], ...] = (),
) -> RedirectResponse:
    """Run an action's ``work`` (its flash message) and redirect to ``back`` with the
    workflow's answer, its refusal (``code: message``, also for ``refusals`` carrying
    ``code`` and ``message``) or, when no worker applied it in time, that it is queued."""
    from starter.client_errors import CartkeeperError
    from workflows.codes import ErrorCode

    try:
        message = await asyncio.wait_for(work, ACTION_TIMEOUT)
    except CartkeeperError as error:
        if error.code is not ErrorCode.UPDATE_PENDING:
            _log.info("%s: %s of %s refused: %s", admin.username, verb, subject, error)
            return redirect_to(request, back, f"{error.code}: {error.message}", ok=False)
        message = ""
    except refusals as refused:
        code, text = getattr(refused, "code", "refused"), getattr(refused, "message", refused)
        return redirect_to(request, back, f"{code}: {text}", ok=False)
    except TimeoutError:
        message = ""
    if not message:
        return redirect_to(
            request,
            back,
            f"{ErrorCode.UPDATE_PENDING}: the {verb} was sent but no worker applied it in time;"
            " it is queued and may still apply. Reload this page before sending it again.",
            ok=False,
        )
    _log.info("%s: %s of %s", admin.username, verb, subject)
    return redirect_to(request, back, message)


# --------------------------------------------------------------------------- amounts in forms

_DECIMAL = re.compile(r"([0-9]{1,15})(?:[.,]([0-9]{1,15}))?", re.ASCII)


class AmountUnreadable(ValueError):
    """A typed amount that is not one: ``too_many_decimals`` says which kind."""

    def __init__(self, exponent: int, too_many_decimals: bool) -> None:
        super().__init__("too many decimals" if too_many_decimals else "not an amount")
        self.exponent = exponent
        self.too_many_decimals = too_many_decimals


def to_minor(text: str, currency: str) -> int:
    """A typed amount (``21.50``, ``21,5``, ``21``) as minor units of ``currency`` (its
    ISO 4217 exponent: ``JPY`` has none, ``KWD`` three); ``AmountUnreadable`` otherwise."""
    exponent = currency_exponent(currency)
    found = _DECIMAL.fullmatch(text)
    if found is None:
        raise AmountUnreadable(exponent, too_many_decimals=False)
    whole, fraction = found.group(1), found.group(2) or ""
    if len(fraction) > exponent:
        raise AmountUnreadable(exponent, too_many_decimals=True)
    minor: int = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    return minor


def plain(amount: int | None, currency: str | None) -> str:
    """Minor units as the forms take them back: ``2150`` EUR is ``21.50`` (no grouping,
    no symbol; ``to_minor`` reads it)."""
    if amount is None:
        return ""
    exponent = currency_exponent(currency)
    whole, fraction = divmod(abs(amount), 10**exponent)
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole}" + (f".{fraction:0{exponent}d}" if exponent else "")
