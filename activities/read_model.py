"""Reading the read model (CLI, admin tools) and the snapshot's encoding.

The workflow is the source of truth; these rows are its last projection, which may lag
the workflow by the projection interval (``CartPolicy.projection_interval_seconds``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from temporalio.api.common.v1 import Payload

from activities.db import SessionFactory
from activities.models import CartRecord
from activities.order_rows import listing_of
from workflows.contract import Cart, CartState, LockReason, ReminderStatus
from workflows.converter import DATA_CONVERTER

#: The largest integer the ``total`` column holds (BIGINT); larger totals are clamped.
MAX_DB_INT = 2**63 - 1
#: ``reminder_sends.detail`` holds at most this many characters
REMINDER_DETAIL_LIMIT = 600

_JSON_ENCODING = b"json/plain"


# --------------------------------------------------------------------------- the snapshot


def encode_cart(cart: Cart) -> dict[str, Any]:
    """The cart as Temporal's payload converter encodes it (JSON), as a dict."""
    (payload,) = DATA_CONVERTER.payload_converter.to_payloads([cart])
    if payload.metadata.get("encoding") != _JSON_ENCODING:  # pragma: no cover - defensive
        raise TypeError(f"a Cart encodes as {payload.metadata.get('encoding')!r}, not JSON")
    encoded = json.loads(payload.data)
    if not isinstance(encoded, dict):  # pragma: no cover - defensive
        raise TypeError("a Cart encodes as a JSON object")
    return encoded


def decode_cart(snapshot: dict[str, Any]) -> Cart:
    """The ``Cart`` a snapshot encodes (the inverse of ``encode_cart``)."""
    payload = Payload(
        metadata={"encoding": _JSON_ENCODING},
        data=json.dumps(snapshot, separators=(",", ":")).encode(),
    )
    (cart,) = DATA_CONVERTER.payload_converter.from_payloads([payload], [Cart])
    if not isinstance(cart, Cart):  # pragma: no cover - defensive
        raise TypeError("the snapshot does not decode to a Cart")
    return cart


def _text(value: str | None) -> str | None:
    """A text column's value. PostgreSQL text cannot hold NUL, and neither database takes
    a lone surrogate (a query with one fails on every try: the projection, and the order
    number written with it, would retry for ever). The workflow refuses both
    (``invalid_text``), but a cart from before that rule may hold them: NUL is dropped and
    a lone surrogate written as its escape (``\\ud800``) here; the snapshot (JSON) keeps
    the exact value."""
    if value is None:
        return None
    value = value.replace("\x00", "")
    return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode()


def cart_values(cart: Cart, projected_at: datetime) -> dict[str, Any]:
    """The ``carts`` row of a cart (every column), projected at ``projected_at``."""
    updated_at = cart.updated_at or cart.created_at or projected_at
    order = cart.order
    snapshot = encode_cart(cart)
    return {
        "shop_id": cart.shop_id,
        "cart_id": cart.cart_id,
        "state": str(cart.state),
        "version": cart.version,
        "currency": cart.currency,
        "total": max(min(cart.total, MAX_DB_INT), -MAX_DB_INT),
        "item_count": min(cart.item_count, MAX_DB_INT),
        "customer_email": _text(cart.customer.email) if cart.customer else None,
        "customer_id": _text(cart.customer_id),
        "order_number": order.number if order else None,
        "order_status": _text(order.status) if order else None,
        "order_paid": bool(order and order.paid),
        "order_amount_paid": min(order.amount_paid, MAX_DB_INT) if order else 0,
        "needs_admin": cart.needs_admin,
        "lock_reason": str(cart.lock_reason) if cart.lock_reason is not None else None,
        "attention": ",".join(str(item.kind) for item in cart.open_attention) or None,
        "lineage": cart.lineage,
        "recovered_via": _text(cart.recovered_via),
        "coupon_code": _text(cart.coupon_code),
        "created_at": cart.created_at or updated_at,
        "updated_at": updated_at,
        "last_activity_at": cart.last_activity_at,
        "locked_at": cart.locked_at,
        "abandoned_at": cart.abandoned_at,
        "ordered_at": cart.ordered_at,
        "closed_at": cart.closed_at,
        "payment_step_at": cart.payment_step_at,
        "last_payment_status": _payment_status(cart),
        "projected_at": projected_at,
        "snapshot": snapshot,
        "listing": listing_of(snapshot),
    }


def _payment_status(cart: Cart) -> str | None:
    """The status of the cart's current payment attempt (else of its latest one)."""
    attempt = cart.attempt(cart.current_attempt_id) if cart.current_attempt_id else None
    if attempt is None and cart.payments:
        attempt = cart.payments[-1]
    return str(attempt.status) if attempt is not None else None


def normalize_email(email: str) -> str:
    """An address as the reminder ledger and the suppressions keep it (caps, statistics,
    unsubscribes match on it whatever the case the customer wrote)."""
    return email.strip().lower()


def clip_detail(text: str | None) -> str | None:
    """A skip's detail as ``reminder_sends.detail`` holds it (at most
    ``REMINDER_DETAIL_LIMIT`` characters)."""
    if text is None or len(text) <= REMINDER_DETAIL_LIMIT:
        return text
    return text[: REMINDER_DETAIL_LIMIT - 1] + "…"


def skipped_reminder_values(cart: Cart, projected_at: datetime) -> list[dict[str, Any]]:
    """The ``reminder_sends`` rows (every column) of the cart's skipped reminders, as the
    workflow decided them (came back, ordered, overdue, quiet hours ...), so statistics
    count every skip. Empty for a cart without skipped reminders."""
    email = cart.customer.email if cart.customer else None
    address = _text(normalize_email(email)) if email else None
    return [
        {
            "shop_id": cart.shop_id,
            "cart_id": cart.cart_id,
            "lineage": cart.lineage or "",
            "reminder_id": step.reminder_id,
            "status": str(ReminderStatus.SKIPPED),
            "reason": str(step.reason) if step.reason is not None else None,
            "detail": clip_detail(_text(step.detail)),
            "variant": step.variant,
            "manual": step.manual,
            "email": address,
            "message_id": None,
            "coupon_code": None,
            "currency": cart.currency,
            "due_at": step.due_at,
            "created_at": step.at or projected_at,
            "updated_at": step.at or projected_at,
            "sent_at": None,
        }
        for step in cart.reminders
        if step.status == ReminderStatus.SKIPPED
    ]


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class CartRow:
    """One cart as the admin lists show it (the ``carts`` columns, without the snapshot)."""

    shop_id: str
    cart_id: str
    state: CartState
    version: int
    currency: str | None
    total: int
    item_count: int
    customer_email: str | None
    customer_id: str | None
    order_number: int | None
    order_status: str | None
    order_paid: bool
    order_amount_paid: int
    needs_admin: bool
    lock_reason: LockReason | None
    #: the kinds of the open attention items, comma-separated (``None``: none)
    attention: str | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime | None
    locked_at: datetime | None
    abandoned_at: datetime | None
    ordered_at: datetime | None
    closed_at: datetime | None
    projected_at: datetime

    @classmethod
    def from_mapping(cls, values: Mapping[Any, Any]) -> CartRow:
        """A row from the ``carts`` columns by name (extra keys, e.g. the snapshot, ignored)."""
        data = {name: values[name] for name in _ROW_FIELDS}
        data["state"] = CartState(data["state"])
        data["lock_reason"] = LockReason(data["lock_reason"]) if data["lock_reason"] else None
        return cls(**data)


_ROW_FIELDS = tuple(field.name for field in fields(CartRow))


#: The columns of a ``CartRow`` (everything but the snapshot).
_ROW_COLUMNS = [CartRecord.__table__.c[name] for name in _ROW_FIELDS]


# --------------------------------------------------------------------------- queries


async def list_carts(
    session_factory: SessionFactory,
    *,
    state: CartState | None = None,
    shop_id: str | None = None,
    needs_admin: bool | None = None,
    limit: int = 100,
) -> list[CartRow]:
    """Carts matching every given filter, most recently updated first."""
    query = select(*_ROW_COLUMNS)
    if state is not None:
        query = query.where(CartRecord.state == str(state))
    if shop_id is not None:
        query = query.where(CartRecord.shop_id == shop_id)
    if needs_admin is not None:
        query = query.where(CartRecord.needs_admin == needs_admin)
    query = query.order_by(
        CartRecord.updated_at.desc(), CartRecord.shop_id, CartRecord.cart_id
    ).limit(max(limit, 0))
    async with session_factory() as session:
        result = await session.execute(query)
        return [CartRow.from_mapping(row) for row in result.mappings().all()]


async def get_cart_record(
    session_factory: SessionFactory, shop_id: str, cart_id: str
) -> Cart | None:
    """The cart's last projected snapshot, or ``None`` if it was never projected."""
    query = select(CartRecord.snapshot).where(
        CartRecord.shop_id == shop_id, CartRecord.cart_id == cart_id
    )
    async with session_factory() as session:
        snapshot = (await session.execute(query)).scalar_one_or_none()
    return decode_cart(snapshot) if snapshot is not None else None


async def count_by_state(
    session_factory: SessionFactory, shop_id: str | None = None
) -> dict[str, int]:
    """How many carts are in each state (states without carts are left out)."""
    query = select(CartRecord.state, func.count()).group_by(CartRecord.state)
    if shop_id is not None:
        query = query.where(CartRecord.shop_id == shop_id)
    async with session_factory() as session:
        result = await session.execute(query)
        return {state: count for state, count in result.all()}
