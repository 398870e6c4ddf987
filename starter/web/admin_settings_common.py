"""What the settings pages share: which shop a page or form is about, the form's text
fields, the way back after an action (post, redirect, get, with the answer or the
refusal's code as the flash message) and the sections' navigation.

A page reads the shop from ``?shop=`` (default: the settings' ``default_shop``); a form
posts it as the hidden field ``shop``. Every action is admins only (``Admin``), CSRF
checked by ``admin_auth`` before the route runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from starter.web.admin_auth import AdminRefused
from starter.web.admin_render import redirect_to
from starter.web.deps import WebContext
from workflows.validation import valid_id

#: (key, path, label) of the settings' sections
SECTIONS = (
    ("overview", "/admin/settings", "Overview"),
    ("statuses", "/admin/settings/statuses", "Order statuses"),
    ("shipping", "/admin/settings/shipping", "Shipping methods"),
    ("campaign", "/admin/settings/campaign", "Reminder campaign"),
    ("policy", "/admin/settings/policy", "Shop policy"),
    ("keys", "/admin/settings/api-keys", "API keys"),
)

Form = dict[str, str]


def default_shop(context: WebContext) -> str:
    return context.settings.default_shop if context.settings else "demo"


def invalid_shop(shop: str) -> AdminRefused:
    return AdminRefused(
        400,
        "invalid_shop_id",
        "Not a shop",
        f"{shop[:80]!r} is not a shop id (1-64 letters, digits, '.', '_' or '-').",
    )


def page_shop(request: Request, context: WebContext) -> str:
    """The shop a page shows (``?shop=``); not a shop id: a 400 page."""
    shop = request.query_params.get("shop", "").strip() or default_shop(context)
    if not valid_id(shop):
        raise invalid_shop(shop)
    return shop


async def read_form(request: Request) -> Form:
    """The posted form's text fields (already read, and cached, by the CSRF check)."""
    raw = await request.form()
    return {key: value for key, value in raw.items() if isinstance(value, str)}


def form_shop(form: Mapping[str, str], context: WebContext) -> str:
    """The shop a form is about (its hidden ``shop`` field)."""
    shop = form.get("shop", "").strip() or default_shop(context)
    if not valid_id(shop):
        raise invalid_shop(shop)
    return shop


def text(form: Mapping[str, str], name: str) -> str | None:
    """A text field, trimmed; ``None`` when it is missing or blank."""
    value = form.get(name, "").strip()
    return value or None


def checked(form: Mapping[str, str], name: str) -> bool:
    """A checkbox: on when the form holds it (a browser leaves an unchecked one out)."""
    return name in form


def section_path(path: str, shop: str) -> str:
    return f"{path}?shop={quote(shop, safe='')}"


def done(request: Request, path: str, shop: str, message: str) -> RedirectResponse:
    """Back to the section's page with what was done."""
    return redirect_to(request, section_path(path, shop), message)


def refused(request: Request, path: str, shop: str, code: str, message: str) -> RedirectResponse:
    """Back to the section's page with the refusal: ``code: message``."""
    return redirect_to(request, section_path(path, shop), f"{code}: {message}", ok=False)
