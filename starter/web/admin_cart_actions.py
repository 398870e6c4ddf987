"""The actions of a cart's page, each a POST form (CSRF-checked, admins only) that calls
the cart's workflow through ``CartkeeperClient`` with the signed-in admin's user name,
so the cart's journal records who acted:

    POST /admin/carts/{shop_id}/{cart_id}/confirm   status (P or O), note
    POST /admin/carts/{shop_id}/{cart_id}/unlock    note
    POST /admin/carts/{shop_id}/{cart_id}/delete    note
    POST /admin/carts/{shop_id}/{cart_id}/resolve   item (one number; none: every open
                                                    item), note
    POST /admin/carts/{shop_id}/{cart_id}/remind    reminder_id, note
    POST /admin/carts/{shop_id}/{cart_id}/status    status (a letter of the shop), note:
                                                    a not finished order becomes an
                                                    order with that status

Each redirects (303) back to the cart's page with the workflow's answer ("Confirmed:
order 1042 (P), paid") or its refusal (``not_locked: ...``) as the flash message. An
update no worker applied in time says so: it is queued and may still apply.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from starter.client import CartkeeperClient
from starter.client_errors import CartkeeperError
from starter.web.admin_auth import Admin, AdminSession
from starter.web.admin_carts import CONFIRM_STATUSES, cart_path, not_found
from starter.web.admin_order_actions import describe
from starter.web.admin_render import answer_action, money, whole_number
from starter.web.deps import Context
from workflows.contract import CartView, ErrorCode
from workflows.validation import valid_id

log = logging.getLogger("cartkeeper.web.admin")

router = APIRouter(tags=["admin"], include_in_schema=False)

#: seconds a confirmation waits for the order's number before answering without it
NUMBER_WAIT = 8.0

Form = dict[str, str]
Action = Callable[[CartkeeperClient, str, str, AdminSession, Form], Awaitable[str]]


def _text(form: Form, name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


async def _act(
    request: Request,
    context: Context,
    admin: AdminSession,
    shop_id: str,
    cart_id: str,
    verb: str,
    action: Action,
) -> RedirectResponse:
    if not (valid_id(shop_id) and valid_id(cart_id)):
        raise not_found(shop_id, cart_id)
    raw = await request.form()  # read (and cached) by the CSRF check
    form = {key: value for key, value in raw.items() if isinstance(value, str)}
    back = cart_path(shop_id, cart_id)

    async def work() -> str:
        return await action(await context.acting_carts(), shop_id, cart_id, admin, form)

    return await answer_action(request, back, verb, f"cart {shop_id}/{cart_id}", admin, work())


async def _numbered(
    carts: CartkeeperClient, shop_id: str, cart_id: str, view: CartView
) -> CartView:
    """The cart once its new order has its number (the numbering activity gives it right
    after), or ``view`` when that takes longer than ``NUMBER_WAIT``."""
    try:
        return await asyncio.wait_for(
            carts.await_order(shop_id, cart_id, timeout_seconds=NUMBER_WAIT), NUMBER_WAIT * 1.5
        )
    except (TimeoutError, CartkeeperError) as error:
        if isinstance(error, CartkeeperError) and error.code is not ErrorCode.UPDATE_PENDING:
            raise
    return view


def _attention(view: CartView) -> str:
    return f"; needs an admin: {', '.join(view.attention)}" if view.attention else ""


async def _confirm(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    status = form.get("status") or CONFIRM_STATUSES[0]
    if status not in CONFIRM_STATUSES:
        raise CartkeeperError(
            ErrorCode.INVALID_STATUS, f"{status!r} is not one of {', '.join(CONFIRM_STATUSES)}"
        )
    view = await carts.confirm(
        shop_id, cart_id, admin=admin.username, note=_text(form, "note"), status=status
    )
    view = await _numbered(carts, shop_id, cart_id, view)
    number = str(view.order_number) if view.order_number is not None else "(number pending)"
    paid = (
        "paid"
        if view.order_paid
        else f"not fully paid: {money(view.amount_paid, view.currency)} of"
        f" {money(view.order_total or view.total, view.currency)}"
    )
    return f"Confirmed: order {number} ({view.order_status}), {paid}" + _attention(view)


async def _unlock(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    view = await carts.unlock(shop_id, cart_id, admin=admin.username, note=_text(form, "note"))
    return f"Unlocked: the cart is {view.state} again; the customer can go on with it"


async def _delete(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    view = await carts.delete(shop_id, cart_id, admin=admin.username, note=_text(form, "note"))
    return f"Deleted: the cart is {view.state}; the customer starts again with an empty one"


async def _resolve(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    item = _text(form, "item")
    if item is not None and whole_number(item, 1, 2**31 - 1) is None:
        raise CartkeeperError(ErrorCode.INVALID_INPUT, f"{item!r} is not an attention item number")
    view = await carts.resolve(
        shop_id,
        cart_id,
        admin=admin.username,
        note=_text(form, "note"),
        items=[int(item)] if item is not None else None,
    )
    left = f"; still open: {', '.join(view.attention)}" if view.attention else ""
    which = f"item #{item}" if item is not None else "every open item"
    return f"Resolved {which}{left}"


async def _remind(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    reminder = form.get("reminder_id", "").strip()
    await carts.send_reminder(
        shop_id, cart_id, reminder, admin=admin.username, note=_text(form, "note")
    )
    return (
        f"Reminder {reminder} requested: the send-time checks decide; its outcome shows"
        " under Reminders"
    )


async def _status(
    carts: CartkeeperClient, shop_id: str, cart_id: str, admin: AdminSession, form: Form
) -> str:
    letter = form.get("status", "").strip()
    view = await carts.set_order_status(
        shop_id, cart_id, letter, admin=admin.username, note=_text(form, "note")
    )
    if view.order_status is not None and view.order_number is None:
        view = await _numbered(carts, shop_id, cart_id, view)
    return describe(view, "Status set") + _attention(view)


@router.post("/admin/carts/{shop_id}/{cart_id}/confirm", summary="Confirm a locked cart")
async def confirm(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "confirmation", _confirm)


@router.post("/admin/carts/{shop_id}/{cart_id}/unlock", summary="Unlock a locked cart")
async def unlock(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "unlock", _unlock)


@router.post("/admin/carts/{shop_id}/{cart_id}/delete", summary="Delete a cart")
async def delete(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "deletion", _delete)


@router.post("/admin/carts/{shop_id}/{cart_id}/resolve", summary="Resolve attention items")
async def resolve(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "resolution", _resolve)


@router.post("/admin/carts/{shop_id}/{cart_id}/remind", summary="Send a reminder now")
async def remind(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "reminder", _remind)


@router.post("/admin/carts/{shop_id}/{cart_id}/status", summary="Set a not finished order's status")
async def set_status(
    shop_id: str, cart_id: str, request: Request, admin: Admin, context: Context
) -> RedirectResponse:
    return await _act(request, context, admin, shop_id, cart_id, "status change", _status)
