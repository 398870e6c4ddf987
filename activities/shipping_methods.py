"""Each shop's shipping methods with their cost, in the read-model database (DOMAIN.md
section 3, seed 002: "shipping methods with their cost are configured"; an order picks one
and gets its cost, which the admin may then edit on the order).

- ``list_methods``: a shop's methods by position, then id (``enabled_only``: the ones a
  customer may be offered). ``get_method``: one.
- ``add_method``, ``edit_method`` (only the fields given; the rest stay),
  ``delete_method``.
- ``method_snapshot``: the ``(method_id, name, cost, currency)`` an order records when it
  picks a method. The order keeps that snapshot, so editing or deleting a method later
  never changes or breaks an order: deleting is therefore never refused (except for a
  method that does not exist).

A method: ``method_id`` the admin gives (a slug: lower-case letters and digits, words
joined by ``_`` or ``-``, e.g. ``courier``, ``pick-up``, ``post_express``; at most 64
characters), ``name`` (1-128 characters, no control characters, lone surrogates or line
breaks), ``cost`` (whole minor units of ``currency``, 0 to
``workflows.validation.MAX_AMOUNT``; 0 is free shipping), ``currency`` (ISO 4217,
checked by ``workflows.validation.check_currency``, as the cart's), ``position``
(0-9999; by default 10 after the shop's last method) and ``enabled``.

Every refusal is a ``ShippingMethodRefused`` with a ``lower_snake`` code; nothing is
silently changed (no trimming, no lower-casing, no coercion of types):

=============================  =========================================================
``invalid_shipping_method``    a field is not valid; the message names the field
``shipping_method_exists``     adding an id the shop already has
``shipping_method_not_found``  editing, deleting or snapshotting an id the shop lacks
``invalid_shop_id``            not a valid shop id (``workflows.validation.valid_id``)
=============================  =========================================================

Writes run in one write transaction each (``activities.db.write_session``); two admins
adding the same id at once: one wins, the other gets ``shipping_method_exists``.
Times are timezone-aware UTC (``now``; a naive one is a ``ValueError``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from activities.catalog_models import METHOD_NAME_LENGTH, ShippingMethodRecord
from activities.checks import aware_utc, checked_shop_id
from activities.db import SessionFactory, by_code_point, write_session
from activities.models import ID_LENGTH
from workflows.validation import MAX_AMOUNT, CartRefused, check_currency, is_int

__all__ = [
    "MAX_POSITION",
    "MethodSnapshot",
    "ShippingMethod",
    "ShippingMethodRefused",
    "add_method",
    "delete_method",
    "edit_method",
    "get_method",
    "list_methods",
    "method_snapshot",
]

MAX_POSITION = 9_999
#: the gap a new method is put after the last one (room to put one between two others)
POSITION_STEP = 10
_METHOD_ID_RE = re.compile(r"^[a-z0-9]+(?:[_-][a-z0-9]+)*\Z")


class ShippingMethodRefused(Exception):
    """A request about shipping methods that cannot be applied; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MethodSnapshot(NamedTuple):
    """What an order records of the method it picked: the order keeps these values, so a
    method edited or deleted later changes nothing on the order. The order starts with
    ``cost`` as its shipping cost; the admin may edit it there."""

    method_id: str
    name: str
    cost: int
    currency: str


@dataclass(frozen=True)
class ShippingMethod:
    shop_id: str
    method_id: str
    name: str
    #: minor units of ``currency``
    cost: int
    currency: str
    position: int
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ShippingMethodRecord) -> ShippingMethod:
        return cls(
            shop_id=row.shop_id,
            method_id=row.method_id,
            name=row.name,
            cost=row.cost,
            currency=row.currency,
            position=row.position,
            enabled=row.enabled,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def snapshot(self) -> MethodSnapshot:
        return MethodSnapshot(self.method_id, self.name, self.cost, self.currency)


# --------------------------------------------------------------------------- checks


def _refuse(message: str) -> ShippingMethodRefused:
    return ShippingMethodRefused("invalid_shipping_method", message)


def check_shop_id(shop_id: object) -> str:
    return checked_shop_id(shop_id, ShippingMethodRefused)


def check_method_id(method_id: object) -> str:
    if (
        not isinstance(method_id, str)
        or len(method_id) > ID_LENGTH
        or not _METHOD_ID_RE.match(method_id)
    ):
        raise _refuse(
            f"the method id {method_id!r} must be 1-{ID_LENGTH} lower-case letters and digits,"
            " words joined by '_' or '-' (e.g. 'courier', 'pick-up')"
        )
    return method_id


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise _refuse("the name must be a non-empty text")
    if len(name) > METHOD_NAME_LENGTH:
        raise _refuse(f"the name has {len(name)} characters; at most {METHOD_NAME_LENGTH}")
    if name != name.strip():
        raise _refuse("the name must not start or end with a space")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp") for char in name):
        raise _refuse(
            "the name must not contain control or formatting characters, lone surrogates or"
            " line breaks"
        )
    return name


def check_cost(cost: object) -> int:
    if not is_int(cost):
        raise _refuse(f"the cost must be an integer number of minor units, not {cost!r}")
    assert isinstance(cost, int)
    if not 0 <= cost <= MAX_AMOUNT:
        raise _refuse(f"the cost must be from 0 to {MAX_AMOUNT} minor units, not {cost}")
    return cost


def check_method_currency(currency: object) -> str:
    try:
        return check_currency(currency)  # the cart's own check (workflows.validation)
    except CartRefused as refused:
        raise _refuse(f"the currency: {refused.message}") from None


def check_position(position: object) -> int:
    if not is_int(position):
        raise _refuse(f"the position must be an integer, not {position!r}")
    assert isinstance(position, int)
    if not 0 <= position <= MAX_POSITION:
        raise _refuse(f"the position must be from 0 to {MAX_POSITION}, not {position}")
    return position


def check_enabled(enabled: object) -> bool:
    if not isinstance(enabled, bool):
        raise _refuse(f"enabled must be true or false, not {enabled!r}")
    return enabled


def _aware(now: datetime | None) -> datetime:
    return aware_utc(now, "shipping method")


def _not_found(shop_id: str, method_id: str) -> ShippingMethodRefused:
    return ShippingMethodRefused(
        "shipping_method_not_found", f"shop {shop_id!r} has no shipping method {method_id!r}"
    )


# --------------------------------------------------------------------------- reads


async def list_methods(
    sessions: SessionFactory, shop_id: str, *, enabled_only: bool = False
) -> list[ShippingMethod]:
    """The shop's methods by position, then id (only the enabled ones if asked)."""
    check_shop_id(shop_id)
    async with sessions() as session:
        query = select(ShippingMethodRecord).where(ShippingMethodRecord.shop_id == shop_id)
        if enabled_only:
            query = query.where(ShippingMethodRecord.enabled.is_(True))
        query = query.order_by(
            ShippingMethodRecord.position,
            by_code_point(ShippingMethodRecord.method_id, session),
        )
        rows = (await session.execute(query)).scalars().all()
        return [ShippingMethod.of(row) for row in rows]


async def get_method(sessions: SessionFactory, shop_id: str, method_id: str) -> ShippingMethod:
    """One method (enabled or not), or ``shipping_method_not_found``."""
    check_shop_id(shop_id)
    check_method_id(method_id)
    async with sessions() as session:
        row = await session.get(ShippingMethodRecord, (shop_id, method_id))
        if row is None:
            raise _not_found(shop_id, method_id)
        return ShippingMethod.of(row)


async def method_snapshot(sessions: SessionFactory, shop_id: str, method_id: str) -> MethodSnapshot:
    """What an order records when it picks the method: ``(method_id, name, cost,
    currency)`` as they are now. The order keeps them (the method may be edited or
    deleted afterwards). A disabled method is answered too: whether it may still be
    picked is the order's rule (a storefront offers ``list_methods(enabled_only=True)``)."""
    return (await get_method(sessions, shop_id, method_id)).snapshot()


# --------------------------------------------------------------------------- writes


async def add_method(
    sessions: SessionFactory,
    shop_id: str,
    method_id: str,
    *,
    name: str,
    cost: int,
    currency: str,
    position: int | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> ShippingMethod:
    """A new method; ``position`` by default 10 after the shop's last one (at most 9999).
    ``shipping_method_exists`` if the shop has the id already."""
    check_shop_id(shop_id)
    check_method_id(method_id)
    check_name(name)
    check_cost(cost)
    check_method_currency(currency)
    if position is not None:
        check_position(position)
    check_enabled(enabled)
    now = _aware(now)
    exists = ShippingMethodRefused(
        "shipping_method_exists", f"shop {shop_id!r} has a shipping method {method_id!r} already"
    )
    try:
        async with write_session(sessions) as session:
            if await session.get(ShippingMethodRecord, (shop_id, method_id)) is not None:
                raise exists
            if position is None:
                last = await session.scalar(
                    select(func.max(ShippingMethodRecord.position)).where(
                        ShippingMethodRecord.shop_id == shop_id
                    )
                )
                position = min((last or 0) + POSITION_STEP, MAX_POSITION)
            row = ShippingMethodRecord(
                shop_id=shop_id,
                method_id=method_id,
                name=name,
                cost=cost,
                currency=currency,
                position=position,
                enabled=enabled,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            added = ShippingMethod.of(row)
    except IntegrityError:
        raise exists from None  # another admin added it at the same time
    return added


async def edit_method(
    sessions: SessionFactory,
    shop_id: str,
    method_id: str,
    *,
    name: str | None = None,
    cost: int | None = None,
    currency: str | None = None,
    position: int | None = None,
    enabled: bool | None = None,
    now: datetime | None = None,
) -> ShippingMethod:
    """Change the fields given (not ``None``); the others stay. Orders that recorded the
    method keep their snapshot. At least one field must be given."""
    check_shop_id(shop_id)
    check_method_id(method_id)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name)
    if cost is not None:
        changes["cost"] = check_cost(cost)
    if currency is not None:
        changes["currency"] = check_method_currency(currency)
    if position is not None:
        changes["position"] = check_position(position)
    if enabled is not None:
        changes["enabled"] = check_enabled(enabled)
    if not changes:
        raise _refuse("nothing to change: give a name, cost, currency, position or enabled")
    now = _aware(now)
    async with write_session(sessions) as session:
        row = (
            await session.execute(
                select(ShippingMethodRecord)
                .where(
                    ShippingMethodRecord.shop_id == shop_id,
                    ShippingMethodRecord.method_id == method_id,
                )
                .with_for_update()  # (SQLite: the IMMEDIATE transaction serializes)
            )
        ).scalar_one_or_none()
        if row is None:
            raise _not_found(shop_id, method_id)
        if any(getattr(row, field) != value for field, value in changes.items()):
            for field, value in changes.items():
                setattr(row, field, value)
            row.updated_at = now
            await session.flush()
        return ShippingMethod.of(row)


async def delete_method(sessions: SessionFactory, shop_id: str, method_id: str) -> ShippingMethod:
    """Delete the method and answer what it was. Never refused for a method that exists:
    orders keep their own snapshot of it (``method_snapshot``)."""
    check_shop_id(shop_id)
    check_method_id(method_id)
    async with write_session(sessions) as session:
        row = await session.get(ShippingMethodRecord, (shop_id, method_id))
        if row is None:
            raise _not_found(shop_id, method_id)
        deleted = ShippingMethod.of(row)
        result = await session.execute(
            delete(ShippingMethodRecord)
            .where(
                ShippingMethodRecord.shop_id == shop_id,
                ShippingMethodRecord.method_id == method_id,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:  # another admin deleted it meanwhile
            raise _not_found(shop_id, method_id)
    return deleted
