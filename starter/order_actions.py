"""The admin's order actions in the Python client (``CartkeeperClient`` inherits them):
the order phase's updates (``workflows.order_contract``), validated here with the
workflow's own parsers and checks before anything is sent.

    view = await carts.set_order_status("shop-1", "cart-42", "A", admin="ann")
    view = await carts.edit_delivery("shop-1", "cart-42", admin="ann", method="dhl",
                                     cost=490, tracking_code=None)   # None clears a field
    view = await carts.edit_order_lines("shop-1", "cart-42", [CartLine(...)], admin="ann")
    view = await carts.record_payment("shop-1", "cart-42", admin="ann", amount=2100,
                                      currency="EUR", reference="bank 2026-11-30")
    view = await carts.add_order_note("shop-1", "cart-42", "called the customer", admin="ann")

Each answers the cart's ``CartView``; a refusal (here, or by the workflow: the cart's
state and the shop's statuses decide) is a ``CartkeeperError`` with its ``ErrorCode``.
An order is found by its number on the read model: ``order_cart(sessions, shop, number)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starter.client_errors import CartkeeperError, retry_closing
from workflows.codes import ErrorCode
from workflows.events import CartLine
from workflows.order_checks import DELIVERY_FIELDS, check_delivery
from workflows.order_contract import (
    ADD_ORDER_NOTE,
    EDIT_DELIVERY,
    EDIT_ORDER_LINES,
    PAYMENT_KIND,
    RECORD_PAYMENT,
    REFUND_KIND,
    SET_ORDER_STATUS,
)
from workflows.order_parsing import ORDER_MESSAGES
from workflows.order_phase import NOT_FINISHED
from workflows.validation import (
    MAX_NOTE,
    CartRefused,
    check_admin,
    check_amount,
    check_currency,
    check_lines,
    check_text,
    valid_id,
)

if TYPE_CHECKING:
    from activities.db import SessionFactory
    from workflows.state import CartView

__all__ = ["DELIVERY_FIELDS", "OrderActions", "check_letter", "order_cart"]

_PARSERS: dict[str, Callable[[object], Any]] = {spec.name: spec.parse for spec in ORDER_MESSAGES}
#: the ASCII letters (``str.isalpha`` would take any script's)
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _edge(check: Callable[[], Any]) -> Any:
    """A check of ``workflows`` run here: its refusal as a ``CartkeeperError``."""
    try:
        return check()
    except CartRefused as refused:
        raise CartkeeperError(refused.code, refused.message) from None


def _check_ids(shop_id: str, cart_id: str) -> None:
    for what, value in (("shop id", shop_id), ("cart id", cart_id)):
        if not valid_id(value):
            raise CartkeeperError(
                ErrorCode.INVALID_ID,
                f"{what} {value!r} must be 1-64 letters, digits, '.', '_' or '-'",
            )


def check_letter(letter: object) -> str:
    """A status an admin may ask for, upper-cased: one letter A-Z, never ``N`` (what
    ``workflows.order_checks.check_set_status`` refuses before it reads the registry)."""
    if not isinstance(letter, str) or len(letter) != 1 or letter not in _LETTERS:
        raise CartkeeperError(ErrorCode.INVALID_STATUS, "a status is one letter, A to Z")
    if letter.upper() == NOT_FINISHED:
        raise CartkeeperError(
            ErrorCode.STATUS_HIDDEN, "N (Incomplete) is set by the checkout, never by an admin"
        )
    return letter.upper()


async def order_cart(sessions: SessionFactory, shop_id: str, number: int) -> str:
    """The cart of the shop's order ``number``, from the read model (``OrdersQueryRefused``
    ``order_not_found`` when the shop has no such order)."""
    from activities.orders_query import get_order

    row = await get_order(sessions, shop_id, number)
    return row.cart_id


class OrderActions:
    """The order phase's admin updates; mixed into ``starter.client.CartkeeperClient``."""

    if TYPE_CHECKING:

        async def _admin_once(
            self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
        ) -> CartView: ...

    async def set_order_status(
        self,
        shop_id: str,
        cart_id: str,
        letter: str,
        *,
        admin: str = "admin",
        note: str | None = None,
    ) -> CartView:
        """The order enters status ``letter`` of the shop; a locked cart (a not finished
        order) becomes an order with it, and gets its number right after (see
        ``await_order``). Refused: ``unknown_status``, ``status_hidden``,
        ``payment_required`` (a paid status the payments do not cover), ``not_an_order``."""
        check_letter(letter)
        payload = {"admin": admin, "note": note, "status": letter}
        event = self._order_parsed(SET_ORDER_STATUS, payload)
        _edge(lambda: check_admin(event))
        return await self._order_admin(shop_id, cart_id, SET_ORDER_STATUS, payload)

    async def edit_delivery(
        self,
        shop_id: str,
        cart_id: str,
        *,
        admin: str = "admin",
        note: str | None = None,
        **fields: Any,
    ) -> CartView:
        """Change the fields given of the order's delivery (``DELIVERY_FIELDS``: method,
        cost in minor units, tracking_code, recipient_name, email, phone, country,
        city, postal_code, address, comment); ``None`` clears one. Only the tracking code
        and the comment change once the status's contents are not editable."""
        payload = {"admin": admin, "note": note, "delivery": dict(fields)}
        event = self._order_parsed(EDIT_DELIVERY, payload)
        _edge(lambda: check_admin(event))
        _edge(lambda: check_delivery(event.changes))
        return await self._order_admin(shop_id, cart_id, EDIT_DELIVERY, payload)

    async def edit_order_lines(
        self,
        shop_id: str,
        cart_id: str,
        lines: list[CartLine],
        *,
        admin: str = "admin",
        note: str | None = None,
    ) -> CartView:
        """Replace the order's lines (at least one) while its status allows it
        (``contents_not_editable`` otherwise). The total follows (plus the delivery's
        cost); stock the order holds is given back and the new lines are taken."""
        payload = {
            "admin": admin,
            "note": note,
            "lines": [dataclasses.asdict(line) for line in lines],
        }
        event = self._order_parsed(EDIT_ORDER_LINES, payload)
        _edge(lambda: check_admin(event))
        _edge(lambda: check_lines(event.lines))
        if not event.lines:
            raise CartkeeperError(ErrorCode.CART_EMPTY, "an order keeps at least one line")
        return await self._order_admin(shop_id, cart_id, EDIT_ORDER_LINES, payload)

    async def record_payment(
        self,
        shop_id: str,
        cart_id: str,
        *,
        admin: str = "admin",
        kind: str = PAYMENT_KIND,
        amount: int,
        currency: str,
        reference: str | None = None,
        note: str | None = None,
    ) -> CartView:
        """A payment (or, ``kind="refund"``, a refund) received outside the gateways, of
        ``amount`` minor units in the order's ``currency`` (``currency_mismatch``
        otherwise); a refund is at most what was paid (``refund_exceeds_paid``)."""
        payload = {
            "admin": admin,
            "note": note,
            "kind": kind,
            "amount": amount,
            "currency": currency,
            "reference": reference,
        }
        event = self._order_parsed(RECORD_PAYMENT, payload)
        _edge(lambda: check_admin(event))
        if event.kind not in (PAYMENT_KIND, REFUND_KIND):
            raise CartkeeperError(ErrorCode.INVALID_PAYMENT, "kind is payment or refund")
        _edge(lambda: check_amount(event.amount))
        _edge(lambda: check_currency(event.currency))
        _edge(
            lambda: check_text(
                event.reference, "reference", required=False, code=ErrorCode.INVALID_PAYMENT
            )
        )
        return await self._order_admin(shop_id, cart_id, RECORD_PAYMENT, payload)

    async def add_order_note(
        self, shop_id: str, cart_id: str, note: str, *, admin: str = "admin"
    ) -> CartView:
        """A note in the order's journal (an order, or a not finished order)."""
        payload = {"admin": admin, "note": note}
        event = self._order_parsed(ADD_ORDER_NOTE, payload)
        _edge(lambda: check_admin(event))
        _edge(
            lambda: check_text(
                event.note,
                "note",
                required=True,
                code=ErrorCode.INVALID_INPUT,
                limit=MAX_NOTE,
                multiline=True,
            )
        )
        return await self._order_admin(shop_id, cart_id, ADD_ORDER_NOTE, payload)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _order_parsed(name: str, payload: dict[str, Any]) -> Any:
        """The payload read as the workflow will read it (``workflows.order_parsing``)."""
        return _edge(lambda: _PARSERS[name](payload))

    async def _order_admin(
        self, shop_id: str, cart_id: str, update: str, payload: dict[str, Any]
    ) -> CartView:
        """Like ``CartkeeperClient._admin`` (the payload is already read): the open run's
        update, or a closed cart's brought back. Never creates a cart."""
        _check_ids(shop_id, cart_id)
        return await retry_closing(lambda: self._admin_once(shop_id, cart_id, update, payload))
