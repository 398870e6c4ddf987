"""Settings: a shop's shipping methods with their cost (seed 002), what
``cartkeeper shipping-methods list|add|edit|delete`` does, in the browser.

    GET  /admin/settings/shipping?shop=S                    the list
    POST /admin/settings/shipping/add                       method_id, name, cost, currency,
                                                            position (blank: after the
                                                            last), enabled (checkbox)
    POST /admin/settings/shipping/{method_id}/edit          name, cost, currency, position
                                                            (what differs is changed)
    POST /admin/settings/shipping/{method_id}/enable
    POST /admin/settings/shipping/{method_id}/disable
    POST /admin/settings/shipping/{method_id}/delete

A cost is typed as a decimal amount of the currency (``4.90`` EUR, ``490`` JPY, ``1.250``
KWD; a comma works as the decimal mark too) and stored in minor units with the currency's
ISO 4217 exponent (``workflows.codes.currency_exponent``): 4.90 EUR is 490. More decimals
than the currency has, a sign, thousands separators or anything not a number is refused
(``invalid_shipping_method``, the message says why); nothing is rounded.
``activities.shipping_methods`` checks the rest and writes; its refusals come back as the
flash message with their code. Its functions take no editor's name: the console's log
records who did what.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from activities import shipping_methods as methods
from activities.shipping_methods import ShippingMethod, ShippingMethodRefused
from starter.web.admin_auth import Admin, AdminSession, Viewer
from starter.web.admin_render import AmountUnreadable, money, plain, render_admin, to_minor
from starter.web.admin_settings_common import (
    SECTIONS,
    Form,
    checked,
    done,
    form_shop,
    page_shop,
    read_form,
    refused,
    text,
)
from starter.web.admin_stats_query import shop_currencies
from starter.web.deps import Context, WebContext

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

PATH = "/admin/settings/shipping"
DEFAULT_CURRENCY = "EUR"


def _invalid(message: str) -> ShippingMethodRefused:
    return ShippingMethodRefused("invalid_shipping_method", message)


def currency_of(raw: str | None) -> str:
    """The form's currency, upper-cased, checked as the cart's currency is."""
    if raw is None:
        raise _invalid("give the cost's currency (ISO 4217, e.g. EUR)")
    return methods.check_method_currency(raw.upper())


def minor_units(raw: str | None, currency: str) -> int:
    """A decimal amount of ``currency`` as minor units (see the module's doc)."""
    if raw is None:
        raise _invalid("give the cost (0 for free shipping)")
    try:
        return to_minor(raw, currency)
    except AmountUnreadable as unreadable:
        digits = unreadable.exponent
        if unreadable.too_many_decimals:
            allowed = f"{digits} decimal{'s' if digits != 1 else ''}" if digits else "no decimals"
            raise _invalid(
                f"{currency} amounts have {allowed}: {raw[:40]!r} cannot be charged"
            ) from None
        example = decimal_text(490 * 10 ** max(0, digits - 2), currency)
        raise _invalid(
            f"the cost {raw[:40]!r} is not an amount: write it like {example} ({currency})"
        ) from None


def decimal_text(minor: int, currency: str) -> str:
    """Minor units as the form writes them back (``490`` EUR: ``4.90``)."""
    return plain(minor, currency)


def _position(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise _invalid(f"the position must be a whole number from 0 to 9999, not {raw[:20]!r}")
    return int(raw)


def changes_of(method: ShippingMethod, form: Form) -> dict[str, Any]:
    """What the edit form changes of ``method`` (the cost read in the form's currency)."""
    currency = currency_of(text(form, "currency") or method.currency)
    values: dict[str, Any] = {"currency": currency}
    name = text(form, "name")
    if name is not None:
        values["name"] = name
    cost = text(form, "cost")
    if cost is not None:
        values["cost"] = minor_units(cost, currency)
    position = _position(text(form, "position"))
    if position is not None:
        values["position"] = position
    return {field: value for field, value in values.items() if getattr(method, field) != value}


def describe(method: ShippingMethod) -> str:
    enabled = "enabled" if method.enabled else "disabled"
    return (
        f"{method.method_id} ({method.name}), {money(method.cost, method.currency)},"
        f" position {method.position}, {enabled}"
    )


@router.get(PATH, summary="Shipping methods")
async def shipping_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    shop = page_shop(request, context)
    listed = await methods.list_methods(context.sessions, shop)
    currencies = await shop_currencies(context.sessions, shop)
    return render_admin(
        request,
        "admin/settings_shipping.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        methods=listed,
        decimal_text=decimal_text,
        default_currency=currencies[0] if currencies else DEFAULT_CURRENCY,
    )


@router.post(f"{PATH}/add", summary="Add a shipping method")
async def add_method(request: Request, admin: Admin, context: Context) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        currency = currency_of(text(form, "currency"))
        method = await methods.add_method(
            context.sessions,
            shop,
            form.get("method_id", "").strip(),
            name=text(form, "name") or "",
            cost=minor_units(text(form, "cost"), currency),
            currency=currency,
            position=_position(text(form, "position")),
            enabled=checked(form, "enabled"),
            now=context.now(),
        )
    except ShippingMethodRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s added shipping method %s of shop %s", admin.username, method.method_id, shop)
    return done(request, PATH, shop, f"Shipping method added: {describe(method)}")


async def _change(
    request: Request,
    context: WebContext,
    admin: AdminSession,
    method_id: str,
    what: str,
    form_changes: bool = False,
    **fixed: Any,
) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        changes = dict(fixed)
        if form_changes:
            current = await methods.get_method(context.sessions, shop, method_id)
            changes = changes_of(current, form)
            if not changes:
                return done(request, PATH, shop, f"Nothing changed: {describe(current)}")
        method = await methods.edit_method(
            context.sessions, shop, method_id, now=context.now(), **changes
        )
    except ShippingMethodRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s %s shipping method %s of shop %s", admin.username, what, method_id, shop)
    return done(request, PATH, shop, f"Shipping method {what}: {describe(method)}")


@router.post(PATH + "/{method_id}/edit", summary="Edit a shipping method")
async def edit_method(
    method_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _change(request, context, admin, method_id, "saved", form_changes=True)


@router.post(PATH + "/{method_id}/enable", summary="Enable a shipping method")
async def enable_method(
    method_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _change(request, context, admin, method_id, "enabled", enabled=True)


@router.post(PATH + "/{method_id}/disable", summary="Disable a shipping method")
async def disable_method(
    method_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _change(request, context, admin, method_id, "disabled", enabled=False)


@router.post(PATH + "/{method_id}/delete", summary="Delete a shipping method")
async def delete_method(
    method_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        method = await methods.delete_method(context.sessions, shop, method_id)
    except ShippingMethodRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s deleted shipping method %s of shop %s", admin.username, method_id, shop)
    return done(
        request,
        PATH,
        shop,
        f"Shipping method {method.method_id} ({method.name}) deleted: orders that picked it"
        " keep their record of it",
    )
