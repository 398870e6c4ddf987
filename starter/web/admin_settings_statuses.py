"""Settings: a shop's letter-coded order statuses (seed 003), what
``cartkeeper statuses list|add|edit|delete`` does, in the browser.

    GET  /admin/settings/statuses?shop=S                 the list, with colours and flags
    POST /admin/settings/statuses/add                    letter, name, colour, position,
                                                         inventory, the flags (checkboxes)
    POST /admin/settings/statuses/{letter}/edit          what differs from the status now
    POST /admin/settings/statuses/{letter}/delete

``activities.order_statuses`` checks and writes (the admin's user name is kept as the
registry's last editor); its refusals come back as the flash message with their code:
``status_limit_reached`` (a 27th status), ``status_letter_taken``, ``status_builtin``
(deleting or re-lettering a default, turning P or C unpaid), ``status_hidden``,
``unknown_status``, ``invalid_status``.

An edit sends only what differs from the status as it is, so a form that shows the
hidden N's name, colour and position only is not refused for flags it does not show.
The flags' checkboxes are read only when the form says it holds them (``flags``): a
browser leaves unchecked boxes out.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from activities import order_statuses
from activities.order_statuses import (
    ALWAYS_PAID,
    INVENTORY_EFFECTS,
    MAX_STATUSES,
    OrderStatusDef,
    StatusRefused,
)
from starter.web.admin_auth import Admin, Viewer
from starter.web.admin_render import render_admin
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
from starter.web.deps import Context

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

PATH = "/admin/settings/statuses"
#: (field, label) of the flags an admin sets
FLAGS = (
    ("paid", "paid"),
    ("final", "final"),
    ("notify_customer", "notifies the customer"),
    ("notify_department", "notifies the orders department"),
    ("contents_editable", "contents editable"),
)


def flag_names(status: OrderStatusDef) -> list[str]:
    """The flags that are on, as the CLI lists them."""
    names = [label for field, label in FLAGS if getattr(status, field)]
    if status.hidden:
        names.append("hidden")
    if status.builtin:
        names.append("default")
    return names


def _position(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise StatusRefused(
            "invalid_status", f"a position is a whole number from 0 to 1,000,000, not {raw[:20]!r}"
        )
    return int(raw)


def _values(form: Form) -> dict[str, Any]:
    """The properties a form gives (those left blank are not given)."""
    values: dict[str, Any] = {}
    name = text(form, "name")
    if name is not None:
        values["name"] = name
    colour = text(form, "colour")
    if colour is not None:
        values["colour"] = colour
    position = _position(text(form, "position"))
    if position is not None:
        values["position"] = position
    inventory = text(form, "inventory")
    if inventory is not None:
        values["inventory"] = inventory
    if checked(form, "flags"):
        values.update({field: checked(form, field) for field, _label in FLAGS})
    return values


def changes_of(status: OrderStatusDef, form: Form) -> dict[str, Any]:
    """What the edit form changes of ``status``."""
    values = _values(form)
    if "colour" in values and isinstance(values["colour"], str):
        values["colour"] = values["colour"].lower()
    new_letter = text(form, "new_letter")
    if new_letter is not None and new_letter.upper() != status.letter:
        values["letter"] = new_letter
    return {name: value for name, value in values.items() if getattr(status, name) != value}


def _describe(status: OrderStatusDef) -> str:
    flags = ", ".join(flag_names(status)) or "no flags"
    return (
        f"{status.letter} {status.name} ({status.colour}, position {status.position},"
        f" inventory {status.inventory}; {flags})"
    )


@router.get(PATH, summary="Order statuses")
async def statuses_page(request: Request, admin: Viewer, context: Context) -> HTMLResponse:
    shop = page_shop(request, context)
    registry = await order_statuses.load_registry(context.sessions, shop)
    return render_admin(
        request,
        "admin/settings_statuses.html",
        active="settings",
        sections=SECTIONS,
        shop=shop,
        registry=registry,
        flags=FLAGS,
        flag_names=flag_names,
        always_paid=ALWAYS_PAID,
        inventory_effects=INVENTORY_EFFECTS,
        max_statuses=MAX_STATUSES,
        room=MAX_STATUSES - len(registry.statuses),
    )


@router.post(f"{PATH}/add", summary="Add an order status")
async def add_status(request: Request, admin: Admin, context: Context) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        values = _values(form)
        name = values.pop("name", "")
        status = await order_statuses.add_status(
            context.sessions,
            shop,
            form.get("letter", "").strip(),
            name,
            now=context.now(),
            by=admin.username,
            **values,
        )
    except StatusRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s added order status %s of shop %s", admin.username, status.letter, shop)
    return done(request, PATH, shop, f"Status added: {_describe(status)}")


@router.post(PATH + "/{letter}/edit", summary="Edit an order status")
async def edit_status(
    letter: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        current = await order_statuses.find_status(context.sessions, shop, letter)
        changes = changes_of(current, form)
        if not changes:
            return done(request, PATH, shop, f"Nothing changed: {_describe(current)}")
        status = await order_statuses.edit_status(
            context.sessions, shop, current.letter, changes, now=context.now(), by=admin.username
        )
    except StatusRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s edited order status %s of shop %s: %s", admin.username, letter, shop, changes)
    return done(request, PATH, shop, f"Status saved: {_describe(status)}")


@router.post(PATH + "/{letter}/delete", summary="Delete an order status")
async def delete_status(
    letter: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    form = await read_form(request)
    shop = form_shop(form, context)
    try:
        status = await order_statuses.delete_status(
            context.sessions, shop, letter, now=context.now(), by=admin.username
        )
    except StatusRefused as error:
        return refused(request, PATH, shop, error.code, error.message)
    log.info("%s deleted order status %s of shop %s", admin.username, status.letter, shop)
    return done(
        request,
        PATH,
        shop,
        f"Status {status.letter} ({status.name}) deleted: orders that had it keep its name",
    )
