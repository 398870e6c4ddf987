"""Each shop's order statuses in the read-model database: letter-coded, editable, at most
26 (CS-Cart; DOMAIN.md section 3).

- ``list_statuses`` / ``load_registry``: a shop's statuses by position, then letter (the
  defaults below while the shop never edited them) and the registry's version.
- ``add_status``, ``edit_status`` (the fields given; the rest stay), ``delete_status``.
- ``find_status``: any status by letter (the order phase sets ``N`` itself);
  ``status_for_admin``: a status an admin may set on an order: ``unknown_status`` for a
  letter the shop does not have, ``status_hidden`` for ``N`` Incomplete.
- ``status_snapshot``: the ``(letter, name, colour)`` an order records when its status is
  set. Orders keep it, so renaming, recolouring or deleting a status (or giving a deleted
  status's letter to a new one) never makes an order's history unreadable.

The rules, the refusal codes (``StatusRefused``) and the defaults are in
``activities.order_status_rules`` (import them from here).

Writes. Every change is checked before anything is locked and again, against the shop's
current statuses, in one write transaction that locks the shop's row in
``order_status_registries`` (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions
that write begin ``IMMEDIATE`` and so run one at a time). Two admins adding the 26th and a
27th status at once: the second waits for the first and is refused
(``status_limit_reached``). A shop's first edit writes its registry row and the defaults;
two first edits racing: the loser's insert fails on the primary key and its transaction
runs again, finding the row. Every change bumps the registry's ``version`` once (an edit
that changes nothing writes nothing).

The defaults (all ``builtin``: they cannot be deleted, and keep their letters):

======  =========================  =======  ====  =====  ========  ==========  =========
letter  name                       colour   paid  final  notifies  inventory   contents
                                                                               editable
======  =========================  =======  ====  =====  ========  ==========  =========
``O``   Open                       #1e88e5              cust+dept  decrease
``P``   Processed                  #43a047  yes         cust+dept  decrease
``C``   Complete                   #2e7d32  yes   yes   customer   decrease
``A``   Awaiting                   #90caf9                         decrease    yes
``H``   Awaiting (has payments)    #42a5f5                         decrease    yes
``R``   Preparing shipment         #7e57c2              customer   decrease    yes
``S``   Shipped                    #26a69a              customer   decrease
``V``   Delivered                  #1b5e20        yes   customer   decrease
``B``   Backordered                #fb8c00              cust+dept  none
``Y``   Awaiting call              #fdd835              dept       none
``F``   Failed                     #e53935        yes   customer   increase
``D``   Declined                   #c62828        yes   customer   increase
``I``   Cancelled                  #757575        yes   cust+dept  increase
``N``   Incomplete (hidden)        #bdbdbd                         none
======  =========================  =======  ====  =====  ========  ==========  =========

Positions go 10, 20, ... 140 in this order (room to put a status between two others).

Why so:

- ``paid``: only ``P`` and ``C``, as CS-Cart (which counts an order paid only when it is
  Processed or Complete, however they are renamed): their ``paid`` cannot be turned off.
  An admin may mark other statuses paid.
- ``final``: the order is over: ``C``, ``V`` (delivered), ``F``, ``D``, ``I``.
- ``inventory``: statuses of an order that goes ahead take its stock (``O``, ``P``,
  ``C`` and the fulfilment stages); those that end it without a sale give it back
  (``F``, ``D``, ``I``); ``N`` (waiting for the gateway), ``B`` (no stock to take) and
  ``Y`` (waiting for a call, nothing ordered yet) change nothing (CS-Cart).
- ``contents_editable``: the three stages before the parcel leaves (seed 002): awaiting,
  awaiting with payments, preparing shipment.
- Notifications: the customer hears of every step that concerns them (not of the two
  internal "awaiting" stages, nor of a call request they made themselves); the orders
  department of new orders (``O``, ``P``), of orders it must act on (``B``, ``Y``) and of
  cancellations by the customer (``I``).
- The fulfilment stages of seed 002 take free letters: ``A`` Awaiting, ``H`` Awaiting
  (Has payments), ``R`` Preparing shipment (Ready to ship), ``S`` Shipped, ``V``
  Delivered (deliVered: ``D`` is Declined). Seed 002's "Created" and "Payment step" are
  the cart's own states, and its "Cancelled" is ``I``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activities.checks import aware_utc
from activities.db import SessionFactory, write_transaction
from activities.models import OrderStatusRecord, OrderStatusRegistry
from activities.order_status_rules import (
    ALWAYS_PAID,
    DEFAULT_COLOUR,
    DEFAULT_LETTERS,
    DEFAULT_STATUSES,
    EDITABLE_FIELDS,
    HIDDEN_LETTER,
    INVENTORY_EFFECTS,
    MAX_NAME,
    MAX_POSITION,
    MAX_STATUSES,
    InventoryEffect,
    OrderStatusDef,
    StatusRefused,
    StatusSnapshot,
    check_admin,
    check_changes,
    check_shop_id,
    deleted_status,
    edited_status,
    find,
    for_admin,
    new_status,
    normalize_letter,
    ordered,
    status_snapshot,
)

__all__ = [
    "ALWAYS_PAID",
    "DEFAULT_COLOUR",
    "DEFAULT_LETTERS",
    "DEFAULT_STATUSES",
    "EDITABLE_FIELDS",
    "HIDDEN_LETTER",
    "INVENTORY_EFFECTS",
    "MAX_NAME",
    "MAX_POSITION",
    "MAX_STATUSES",
    "InventoryEffect",
    "OrderStatusDef",
    "StatusRefused",
    "StatusRegistry",
    "StatusSnapshot",
    "add_status",
    "delete_status",
    "edit_status",
    "find_status",
    "list_statuses",
    "load_registry",
    "normalize_letter",
    "status_for_admin",
    "status_snapshot",
]


@dataclass(frozen=True)
class StatusRegistry:
    """A shop's order statuses (by position, then letter) and the registry's version
    (0, and ``customised`` false, while the shop has the untouched defaults)."""

    shop_id: str
    version: int
    statuses: tuple[OrderStatusDef, ...]
    customised: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


# --------------------------------------------------------------------------- rows


def _definition(row: OrderStatusRecord) -> OrderStatusDef:
    return OrderStatusDef(
        letter=row.letter,
        name=row.name,
        colour=row.colour,
        position=row.position,
        paid=row.paid,
        final=row.final,
        notify_customer=row.notify_customer,
        notify_department=row.notify_department,
        inventory=row.inventory,  # type: ignore[arg-type]  # written checked
        contents_editable=row.contents_editable,
        hidden=row.hidden,
        builtin=row.builtin,
    )


def _record(shop_id: str, status: OrderStatusDef, now: datetime) -> OrderStatusRecord:
    return OrderStatusRecord(shop_id=shop_id, created_at=now, updated_at=now, **asdict(status))


async def _rows(session: AsyncSession, shop_id: str) -> list[OrderStatusRecord]:
    result = await session.execute(
        select(OrderStatusRecord).where(OrderStatusRecord.shop_id == shop_id)
    )
    return list(result.scalars())


def _aware(now: datetime) -> datetime:
    return aware_utc(now, "order-status")


# --------------------------------------------------------------------------- reading


async def load_registry(sessions: SessionFactory, shop_id: str) -> StatusRegistry:
    """The shop's statuses and the registry's version (the defaults, version 0, for a
    shop that never edited them)."""
    check_shop_id(shop_id)
    async with sessions() as session:
        registry = await session.get(OrderStatusRegistry, shop_id)
        if registry is None:
            return StatusRegistry(shop_id, 0, ordered(DEFAULT_STATUSES), customised=False)
        statuses = ordered(_definition(row) for row in await _rows(session, shop_id))
        return StatusRegistry(
            shop_id,
            registry.version,
            statuses,
            customised=True,
            updated_at=registry.updated_at,
            updated_by=registry.updated_by,
        )


async def list_statuses(sessions: SessionFactory, shop_id: str) -> tuple[OrderStatusDef, ...]:
    """The shop's statuses by position, then letter (the defaults if it never edited)."""
    return (await load_registry(sessions, shop_id)).statuses


async def find_status(sessions: SessionFactory, shop_id: str, letter: str) -> OrderStatusDef:
    """The shop's status ``letter`` (any case; hidden ones too), or ``unknown_status``."""
    return find(await list_statuses(sessions, shop_id), letter)


async def status_for_admin(sessions: SessionFactory, shop_id: str, letter: str) -> OrderStatusDef:
    """The status an admin asks to set on an order: ``unknown_status`` if the shop has no
    such letter, ``status_hidden`` for ``N`` Incomplete (only the checkout sets it). What
    the order records is ``status_snapshot`` of the answer."""
    return for_admin(await list_statuses(sessions, shop_id), letter)


# --------------------------------------------------------------------------- writing


class _Locked:
    """A shop's statuses inside a write transaction, its registry row locked (if it has
    one yet: ``bump`` makes it, with the defaults)."""

    def __init__(
        self,
        session: AsyncSession,
        shop_id: str,
        registry: OrderStatusRegistry | None,
        rows: list[OrderStatusRecord],
    ) -> None:
        self.session = session
        self.shop_id = shop_id
        self.registry = registry
        self.rows = {row.letter: row for row in rows}

    @classmethod
    async def open(cls, session: AsyncSession, shop_id: str) -> _Locked:
        registry = await session.get(OrderStatusRegistry, shop_id, with_for_update=True)
        rows = await _rows(session, shop_id) if registry is not None else []
        return cls(session, shop_id, registry, rows)

    @property
    def statuses(self) -> tuple[OrderStatusDef, ...]:
        if self.registry is None:
            return DEFAULT_STATUSES
        return tuple(_definition(row) for row in self.rows.values())

    async def bump(self, now: datetime, by: str | None) -> None:
        """The registry row (made, with the default statuses, on a shop's first edit),
        its version bumped."""
        if self.registry is None:
            self.registry = OrderStatusRegistry(
                shop_id=self.shop_id, version=0, created_at=now, updated_at=now
            )
            self.session.add(self.registry)
            await self.session.flush()  # the primary key decides between racing first edits
            for status in DEFAULT_STATUSES:
                row = _record(self.shop_id, status, now)
                self.session.add(row)
                self.rows[status.letter] = row
        self.registry.version += 1
        self.registry.updated_at = now
        self.registry.updated_by = by


async def add_status(
    sessions: SessionFactory,
    shop_id: str,
    letter: str,
    name: str,
    *,
    now: datetime,
    by: str | None = None,
    **values: Any,
) -> OrderStatusDef:
    """Add a status: ``values`` are its other editable fields (``colour``, ``position``,
    ``paid``, ``final``, ``notify_customer``, ``notify_department``, ``inventory``,
    ``contents_editable``); not given: a grey colour, after the last status, every flag
    off, inventory ``none``. The letter is upper-cased. Refused with
    ``status_limit_reached`` (the 27th), ``status_letter_taken`` or ``invalid_status``."""
    check_shop_id(shop_id)
    check_admin(by)
    now = _aware(now)
    new_status((), letter, name, **values)  # refuse wrong values before taking the lock

    async def work(session: AsyncSession) -> OrderStatusDef:
        locked = await _Locked.open(session, shop_id)
        status = new_status(locked.statuses, letter, name, **values)
        await locked.bump(now, by)
        session.add(_record(shop_id, status, now))
        return status

    return await write_transaction(sessions, work)


async def edit_status(
    sessions: SessionFactory,
    shop_id: str,
    letter: str,
    changes: Mapping[str, Any],
    *,
    now: datetime,
    by: str | None = None,
) -> OrderStatusDef:
    """Change the fields named in ``changes`` (``EDITABLE_FIELDS``) of status ``letter``;
    the others stay. ``letter`` in ``changes`` re-letters a status an admin added (a
    default keeps its letter: ``status_builtin``). ``N`` keeps its flags and stays hidden
    (``status_hidden``); ``P`` and ``C`` stay paid (``status_builtin``). The status as it
    is now."""
    check_shop_id(shop_id)
    check_admin(by)
    now = _aware(now)
    normalize_letter(letter)
    check_changes(changes, letter)

    async def work(session: AsyncSession) -> OrderStatusDef:
        locked = await _Locked.open(session, shop_id)
        before, after = edited_status(locked.statuses, letter, changes)
        if after == before:
            return after  # nothing changes: nothing written, the version stays
        await locked.bump(now, by)
        row = locked.rows.pop(before.letter)
        if after.letter != before.letter:
            await session.delete(row)
            await session.flush()  # the old letter is free before the new row is written
            moved = _record(shop_id, after, now)
            moved.created_at = row.created_at
            session.add(moved)
            return after
        for name, value in asdict(after).items():
            setattr(row, name, value)
        row.updated_at = now
        return after

    return await write_transaction(sessions, work)


async def delete_status(
    sessions: SessionFactory,
    shop_id: str,
    letter: str,
    *,
    now: datetime,
    by: str | None = None,
) -> OrderStatusDef:
    """Delete a status an admin added; the deleted status. Orders that had it keep its
    snapshot (``status_snapshot``). Refused with ``status_builtin`` for a default and
    ``unknown_status`` for a letter the shop does not have."""
    check_shop_id(shop_id)
    check_admin(by)
    now = _aware(now)
    normalize_letter(letter)

    async def work(session: AsyncSession) -> OrderStatusDef:
        locked = await _Locked.open(session, shop_id)
        status = deleted_status(locked.statuses, letter)
        await locked.bump(now, by)
        await session.delete(locked.rows.pop(status.letter))
        return status

    return await write_transaction(sessions, work)
