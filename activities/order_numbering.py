"""Order numbers, per shop: given once per order, in sequence, never twice.

Each shop has a counter (``order_numbering``: the next number and the prefix shown before
it), made at its first order. ``allocate`` gives an order its number inside the caller's
write transaction (the projection's): it finds the number the order already has (a retry,
a replay, a second projection), else locks the shop's counter row (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite write transactions begin ``IMMEDIATE`` and run one at a
time), looks again (a concurrent call for the same order may have just committed), and
takes the counter's number. A shop's numbers follow each other without gaps (except
where an admin moved the next number forward, and between numbers given before migration
0009, when all shops shared one sequence), and two shops count independently.
``order_numbers.reference`` keeps the number as shown when it was given (prefix, then
number): a later prefix never renames an order.

``numbering`` / ``set_numbering``: a shop's prefix (at most 16 characters: letters,
digits and ``- _ . / #``, starting with a letter or digit; empty for none) and the next
number, which may only move forward: a start at or below a number already given is
refused (``order_number_start_too_low``), so no number is ever given twice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy import insert as insert_into
from sqlalchemy.ext.asyncio import AsyncSession

from activities.checks import checked_shop_id
from activities.db import SessionFactory, dialect_insert, write_session
from activities.models import PREFIX_LENGTH, OrderNumber, OrderNumbering

log = logging.getLogger("cartkeeper.order_numbers")

_NUMBERS = OrderNumber.__table__
_COUNTERS = OrderNumbering.__table__
_PREFIX = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_./#-]{{0,{PREFIX_LENGTH - 1}}}")
#: the largest number a shop can start at (the reference must fit: 16 + 19 characters)
MAX_START = 10**18


class NumberingRefused(Exception):
    """A numbering change that is refused; ``code`` is one of the ``lower_snake`` codes
    of this module."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Numbering:
    shop_id: str
    prefix: str
    #: the number the shop's next order gets
    next_number: int

    def reference(self, number: int) -> str:
        return f"{self.prefix}{number}"


# --------------------------------------------------------------------------- allocating


@cache
def _statements(dialect: str) -> tuple[Any, Any, Any, Any, Any]:
    """(find, make counter, lock counter, insert number, advance counter), with bound
    parameters."""
    find = select(_NUMBERS.c.number).where(
        _NUMBERS.c.shop_id == bindparam("shop_id"),
        _NUMBERS.c.cart_id == bindparam("cart_id"),
        _NUMBERS.c.lineage == bindparam("lineage"),
    )
    make = (
        dialect_insert(dialect, _COUNTERS)
        .values(
            shop_id=bindparam("shop_id"),
            prefix="",
            next_number=1,
            updated_at=bindparam("created_at"),
        )
        .on_conflict_do_nothing(index_elements=["shop_id"])
    )
    lock = (
        select(_COUNTERS.c.next_number, _COUNTERS.c.prefix)
        .where(_COUNTERS.c.shop_id == bindparam("shop_id"))
        .with_for_update()
    )
    insert = insert_into(OrderNumber).values(
        shop_id=bindparam("shop_id"),
        number=bindparam("number"),
        cart_id=bindparam("cart_id"),
        lineage=bindparam("lineage"),
        reference=bindparam("reference"),
        created_at=bindparam("created_at"),
    )
    advance = (
        update(OrderNumbering)
        .where(_COUNTERS.c.shop_id == bindparam("counter_shop"))
        .values(next_number=bindparam("counter_next"), updated_at=bindparam("counter_at"))
    )
    return find, make, lock, insert, advance


async def allocate(
    session: AsyncSession, dialect: str, shop_id: str, cart_id: str, lineage: str | None
) -> int:
    """The order number of (shop, cart, lineage), given in ``session``'s (write)
    transaction on the first call and found on every later one (see above)."""
    key = {"shop_id": shop_id, "cart_id": cart_id, "lineage": lineage or ""}
    find, make, lock, insert, advance = _statements(dialect)
    number = (await session.execute(find, key)).scalar_one_or_none()
    if number is not None:  # a retry: no lock taken
        return int(number)
    now = datetime.now(UTC)
    await session.execute(make, {"shop_id": shop_id, "created_at": now})
    counter = (await session.execute(lock, {"shop_id": shop_id})).one()
    number = (await session.execute(find, key)).scalar_one_or_none()
    if number is not None:  # a concurrent call for this order held the lock before us
        return int(number)
    number = int(counter.next_number)
    await session.execute(
        insert,
        {**key, "number": number, "reference": f"{counter.prefix}{number}", "created_at": now},
    )
    await session.execute(
        advance, {"counter_shop": shop_id, "counter_next": number + 1, "counter_at": now}
    )
    log.info("cart %s/%s: order number %s allocated", shop_id, cart_id, number)
    return number


# --------------------------------------------------------------------------- configuring


def check_shop_id(shop_id: object) -> str:
    return checked_shop_id(shop_id, NumberingRefused)


async def numbering(sessions: SessionFactory, shop_id: str) -> Numbering:
    """The shop's prefix and next number (no prefix and 1 before its first order)."""
    check_shop_id(shop_id)
    async with sessions() as session:
        row = await session.get(OrderNumbering, shop_id)
    if row is None:
        return Numbering(shop_id, "", 1)
    return Numbering(shop_id, row.prefix, row.next_number)


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or (prefix and not _PREFIX.fullmatch(prefix)):
        raise NumberingRefused(
            "invalid_order_number_prefix",
            f"a prefix is up to {PREFIX_LENGTH} letters, digits and - _ . / #, starting"
            f" with a letter or digit (or empty for none), not {prefix!r}",
        )
    return prefix


def check_start(start: object) -> int:
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= MAX_START:
        raise NumberingRefused(
            "invalid_order_number_start",
            f"the next number is a whole number from 1 to {MAX_START}, not {start!r}",
        )
    return start


async def set_numbering(
    sessions: SessionFactory,
    shop_id: str,
    *,
    prefix: str | None = None,
    start: int | None = None,
    now: datetime | None = None,
) -> Numbering:
    """Change what is given: the prefix of the numbers to come, and the next number (only
    forward). The numbering as it then is."""
    check_shop_id(shop_id)
    if prefix is not None:
        check_prefix(prefix)
    if start is not None:
        check_start(start)
    at = now or datetime.now(UTC)
    async with write_session(sessions) as session:
        dialect = session.get_bind().dialect.name
        _find, make, lock, _insert, _advance = _statements(dialect)
        await session.execute(make, {"shop_id": shop_id, "created_at": at})
        counter = (await session.execute(lock, {"shop_id": shop_id})).one()
        row = await session.get(OrderNumbering, shop_id)
        assert row is not None
        if start is not None and start != counter.next_number:
            if start < counter.next_number:
                raise NumberingRefused(
                    "order_number_start_too_low",
                    f"shop {shop_id} has given numbers up to {counter.next_number - 1}:"
                    f" the next number can be {counter.next_number} or more, not {start}",
                )
            row.next_number = start
        if prefix is not None:
            row.prefix = prefix
        row.updated_at = at
        return Numbering(shop_id, row.prefix, row.next_number)
