"""Stock levels per shop and SKU in the read-model database, and the stock movements of
the order phase (DOMAIN.md section 3: statuses that decrease stock take it, those that
increase it give it back, Backordered marks an order that has no stock).

- ``set_stock_level``: the storefront sets how many units of a SKU the shop has (a whole
  number, 0 or more). ``stock_level``: one SKU's level, or ``None``: **not tracked**.
- **Not tracked**: a SKU the shop never set a level for has unlimited stock: a take never
  runs short of it and changes nothing for it, nor does a give-back (it stays untracked).
- ``list_stock_levels``: a shop's levels by SKU, a page at a time (keyset pagination:
  ``after`` is the last SKU of the previous page, never an offset, so a page is right
  even while levels are added). SKUs are ordered by code point on every backend.
- ``take_stock(sessions, shop, movement_key, lines)`` and ``give_back_stock(...)``:
  ``lines`` are ``(sku, quantity)`` pairs. Each movement is one transaction, applied
  at most once per ``(shop, movement_key)`` (table ``stock_movements``): the same key
  again changes nothing and answers the recorded result (``repeated``); the same key for
  another kind of movement or other lines is refused (``stock_movement_conflict``).
- A take is all or nothing and never makes a level negative: if any tracked line lacks
  stock, nothing is taken, nothing is recorded (the same key may be tried again, e.g.
  after a restock) and the answer lists the ``short`` SKUs: the order becomes
  Backordered ``B``. A give-back is not tied to a take here: the caller (the order
  phase) gives back only what an order took (keyed by the order's take), never for an
  order whose take ran short. Concurrent takes of the last unit: exactly one wins, on SQLite and
  PostgreSQL alike: each line is one conditional ``UPDATE ... SET level = level - q
  WHERE level >= q`` (PostgreSQL re-checks the condition after waiting for the row;
  SQLite write transactions begin ``IMMEDIATE`` and run one at a time). Lines are applied
  in SKU order, so two takes never wait for each other in a cycle.

Every refusal is a ``StockRefused`` with a ``lower_snake`` code; nothing is changed:

============================  ==========================================================
``invalid_stock_level``       a level that is not a whole number from 0 to 10^12
``invalid_sku``               not a non-empty text of at most 200 characters (a cart
                              line's SKU, ``workflows.validation.check_lines``)
``invalid_stock_movement``    lines that are not 1-200 ``(sku, quantity)`` pairs with
                              quantities from 1 to 100000 and no SKU twice, or a
                              movement key that is not 1-255 letters, digits and
                              ``. _ - : / # @ +`` (starting with a letter or digit)
``stock_movement_conflict``   the key was used for another movement (kind or lines)
``invalid_page``              ``limit`` not from 1 to 1000, ``after`` not a text
``invalid_shop_id``           not a valid shop id (``workflows.validation.valid_id``)
============================  ==========================================================

Times are timezone-aware UTC (``now``; a naive one is a ``ValueError``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from activities.catalog_models import (
    MOVEMENT_KEY_LENGTH,
    SKU_LENGTH,
    StockLevelRecord,
    StockMovementRecord,
)
from activities.checks import aware_utc, checked_shop_id
from activities.db import SessionFactory, by_code_point, insert_for, write_session
from workflows.codes import ErrorCode
from workflows.validation import (
    MAX_LINES,
    MAX_QUANTITY,
    CartRefused,
    check_text,
    is_int,
)

__all__ = [
    "MAX_STOCK_LEVEL",
    "MovementKind",
    "StockLevel",
    "StockMovement",
    "StockPage",
    "StockRefused",
    "give_back_stock",
    "list_stock_levels",
    "set_stock_level",
    "stock_level",
    "take_stock",
]

MAX_STOCK_LEVEL = 10**12
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MovementKind = Literal["take", "give_back"]
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/#@+\-]*\Z")


class StockRefused(Exception):
    """A stock request that cannot be applied; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StockLevel:
    shop_id: str
    sku: str
    level: int
    updated_at: datetime

    @classmethod
    def of(cls, row: StockLevelRecord) -> StockLevel:
        return cls(shop_id=row.shop_id, sku=row.sku, level=row.level, updated_at=row.updated_at)


@dataclass(frozen=True)
class StockPage:
    """A page of levels by SKU; ``next_after``: pass it as ``after`` for the next page
    (``None``: this is the last page)."""

    levels: tuple[StockLevel, ...]
    next_after: str | None


@dataclass(frozen=True)
class StockMovement:
    """The answer to a take or give-back.

    ``applied``: the stock was taken (given back) and the movement recorded. A take that
    was not applied lists its ``short`` SKUs; it changed and recorded nothing.
    ``levels``: per line (by SKU) the level after the movement, or for a take that ran
    short the level found (nothing was taken); ``None``: the SKU is not tracked.
    ``repeated``: the key had been applied before: this is the recorded answer, and
    nothing changed now (``at`` is when it was applied).
    """

    shop_id: str
    movement_key: str
    kind: MovementKind
    applied: bool
    #: ``(sku, quantity)`` by SKU
    lines: tuple[tuple[str, int], ...]
    levels: tuple[tuple[str, int | None], ...]
    short: tuple[str, ...]
    at: datetime | None
    repeated: bool = False

    @property
    def untracked(self) -> tuple[str, ...]:
        """The SKUs without a level (unlimited stock)."""
        return tuple(sku for sku, level in self.levels if level is None)


class _Short(Exception):
    """A take ran short: its transaction rolls back (nothing taken, nothing recorded)."""

    def __init__(self, result: StockMovement) -> None:
        super().__init__("short")
        self.result = result


# --------------------------------------------------------------------------- checks


def check_shop_id(shop_id: object) -> str:
    return checked_shop_id(shop_id, StockRefused)


def check_sku(sku: object) -> str:
    """A SKU as a cart line's (``workflows.validation.check_text``, at most 200)."""
    try:
        check_text(sku, "the sku", required=True, code=ErrorCode.INVALID_LINE, limit=SKU_LENGTH)
    except CartRefused as refused:
        raise StockRefused("invalid_sku", f"{refused.message}, not {sku!r}") from None
    assert isinstance(sku, str)
    if any(unicodedata.category(char) == "Cc" for char in sku):
        raise StockRefused("invalid_sku", f"a sku holds no control characters, not {sku!r}")
    return sku


def check_level(sku: str, level: object) -> int:
    if not is_int(level) or not 0 <= level <= MAX_STOCK_LEVEL:  # type: ignore[operator]
        raise StockRefused(
            "invalid_stock_level",
            f"the stock level of {sku!r} must be a whole number from 0 to {MAX_STOCK_LEVEL},"
            f" not {level!r}",
        )
    assert isinstance(level, int)
    return level


def check_movement_key(key: object) -> str:
    if not (isinstance(key, str) and len(key) <= MOVEMENT_KEY_LENGTH and _KEY_RE.match(key)):
        raise StockRefused(
            "invalid_stock_movement",
            f"the movement key {key!r} must be 1-{MOVEMENT_KEY_LENGTH} letters, digits and"
            " '._-:/#@+', starting with a letter or digit",
        )
    return key


def check_lines(lines: object) -> tuple[tuple[str, int], ...]:
    """``(sku, quantity)`` pairs, by SKU."""

    def refuse(message: str) -> StockRefused:
        return StockRefused("invalid_stock_movement", message)

    if isinstance(lines, str | bytes) or not isinstance(lines, Iterable):
        raise refuse("the lines must be a list of (sku, quantity) pairs")
    pairs = list(lines)
    if not 1 <= len(pairs) <= MAX_LINES:
        raise refuse(f"a movement has 1 to {MAX_LINES} lines, not {len(pairs)}")
    seen: dict[str, int] = {}
    for pair in pairs:
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise refuse(f"each line must be a (sku, quantity) pair, not {pair!r}")
        sku, quantity = check_sku(pair[0]), pair[1]
        if sku in seen:
            raise refuse(f"sku {sku!r} appears twice")
        if not is_int(quantity) or not 1 <= quantity <= MAX_QUANTITY:
            raise refuse(
                f"the quantity of {sku!r} must be a whole number from 1 to {MAX_QUANTITY},"
                f" not {quantity!r}"
            )
        seen[sku] = quantity
    return tuple(sorted(seen.items()))


def _aware(now: datetime | None) -> datetime:
    return aware_utc(now, "stock")


# --------------------------------------------------------------------------- levels


async def set_stock_level(
    sessions: SessionFactory,
    shop_id: str,
    sku: str,
    level: int,
    *,
    now: datetime | None = None,
) -> StockLevel:
    """Set the level of a SKU (it is tracked from now on)."""
    check_shop_id(shop_id)
    check_sku(sku)
    check_level(sku, level)
    now = _aware(now)
    async with write_session(sessions) as session:
        insert = insert_for(session, StockLevelRecord).values(
            shop_id=shop_id, sku=sku, level=level, created_at=now, updated_at=now
        )
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=["shop_id", "sku"],
                set_={"level": insert.excluded.level, "updated_at": insert.excluded.updated_at},
            )
        )
    return StockLevel(shop_id=shop_id, sku=sku, level=level, updated_at=now)


async def stock_level(sessions: SessionFactory, shop_id: str, sku: str) -> StockLevel | None:
    """The SKU's level, or ``None``: the SKU is not tracked (unlimited stock)."""
    check_shop_id(shop_id)
    check_sku(sku)
    async with sessions() as session:
        row = await session.get(StockLevelRecord, (shop_id, sku))
        return StockLevel.of(row) if row is not None else None


async def list_stock_levels(
    sessions: SessionFactory,
    shop_id: str,
    *,
    after: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> StockPage:
    """The shop's levels by SKU (code point order), ``limit`` at most, those after the SKU
    ``after`` (keyset pagination)."""
    check_shop_id(shop_id)
    if not is_int(limit) or not 1 <= limit <= MAX_PAGE:
        raise StockRefused("invalid_page", f"limit must be from 1 to {MAX_PAGE}, not {limit!r}")
    if after is not None and not isinstance(after, str):
        raise StockRefused("invalid_page", f"after must be a SKU, not {after!r}")
    async with sessions() as session:
        key = by_code_point(StockLevelRecord.sku, session)
        query = select(StockLevelRecord).where(StockLevelRecord.shop_id == shop_id)
        if after is not None:
            query = query.where(key > after)
        rows = (await session.execute(query.order_by(key).limit(limit + 1))).scalars().all()
    levels = tuple(StockLevel.of(row) for row in rows[:limit])
    more = len(rows) > limit
    return StockPage(levels=levels, next_after=levels[-1].sku if more else None)


# --------------------------------------------------------------------------- movements


async def take_stock(
    sessions: SessionFactory,
    shop_id: str,
    movement_key: str,
    lines: Iterable[tuple[str, int]],
    *,
    now: datetime | None = None,
) -> StockMovement:
    """Take the lines' quantities, all or nothing, once per key (see the module's
    docstring). Not applied: ``short`` lists the SKUs that lack stock."""
    return await _move(sessions, "take", shop_id, movement_key, lines, now)


async def give_back_stock(
    sessions: SessionFactory,
    shop_id: str,
    movement_key: str,
    lines: Iterable[tuple[str, int]],
    *,
    now: datetime | None = None,
) -> StockMovement:
    """Give the lines' quantities back (an order cancelled, failed or declined), once per
    key. Always applied; an untracked SKU stays untracked."""
    return await _move(sessions, "give_back", shop_id, movement_key, lines, now)


async def _move(
    sessions: SessionFactory,
    kind: MovementKind,
    shop_id: str,
    movement_key: str,
    lines: object,
    now: datetime | None,
) -> StockMovement:
    check_shop_id(shop_id)
    check_movement_key(movement_key)
    wanted = check_lines(lines)
    at = _aware(now)
    earlier = await _recorded(sessions, shop_id, movement_key)
    if earlier is not None:
        return _repeated(earlier, kind, wanted)
    try:
        async with write_session(sessions) as session:
            # the key first: a concurrent movement with the same key waits here for this
            # one (PostgreSQL's unique index) and then fails; SQLite runs one at a time
            record = StockMovementRecord(
                shop_id=shop_id,
                movement_key=movement_key,
                kind=kind,
                lines=[[sku, quantity] for sku, quantity in wanted],
                levels=[],
                created_at=at,
            )
            session.add(record)
            await session.flush()
            levels, short = await _apply(session, kind, shop_id, wanted, at)
            result = StockMovement(
                shop_id=shop_id,
                movement_key=movement_key,
                kind=kind,
                applied=not short,
                lines=wanted,
                levels=levels,
                short=short,
                at=None if short else at,
            )
            if short:
                raise _Short(result)  # rolls the whole transaction back
            record.levels = [[sku, level] for sku, level in levels]
    except _Short as ran_short:
        return ran_short.result
    except IntegrityError:
        earlier = await _recorded(sessions, shop_id, movement_key)
        if earlier is None:
            raise
        return _repeated(earlier, kind, wanted)
    return result


async def _apply(
    session: AsyncSession,
    kind: MovementKind,
    shop_id: str,
    lines: tuple[tuple[str, int], ...],
    now: datetime,
) -> tuple[tuple[tuple[str, int | None], ...], tuple[str, ...]]:
    """Each line in turn (by SKU): one conditional ``UPDATE`` that answers the new level,
    or none (not tracked, or too little for a take)."""
    levels: list[tuple[str, int | None]] = []
    short: list[str] = []
    for sku, quantity in lines:
        row = (StockLevelRecord.shop_id == shop_id, StockLevelRecord.sku == sku)
        if kind == "take":
            change = update(StockLevelRecord).where(*row, StockLevelRecord.level >= quantity)
            new_level = StockLevelRecord.level - quantity
        else:
            change = update(StockLevelRecord).where(*row)
            new_level = StockLevelRecord.level + quantity
        after = await session.scalar(
            change.values(level=new_level, updated_at=now)
            .returning(StockLevelRecord.level)
            .execution_options(synchronize_session=False)
        )
        if after is None and kind == "take":
            found = await session.scalar(select(StockLevelRecord.level).where(*row))
            if found is not None:
                short.append(sku)
                levels.append((sku, found))
                continue
        levels.append((sku, after))
    if short:
        # the levels found: put back what this transaction took before it rolls back
        taken = dict(lines)
        levels = [
            (sku, level if sku in short or level is None else level + taken[sku])
            for sku, level in levels
        ]
    return tuple(levels), tuple(short)


async def _recorded(
    sessions: SessionFactory, shop_id: str, movement_key: str
) -> StockMovementRecord | None:
    async with sessions() as session:
        return (
            await session.execute(
                select(StockMovementRecord).where(
                    StockMovementRecord.shop_id == shop_id,
                    StockMovementRecord.movement_key == movement_key,
                )
            )
        ).scalar_one_or_none()


def _repeated(
    record: StockMovementRecord, kind: MovementKind, wanted: tuple[tuple[str, int], ...]
) -> StockMovement:
    """The recorded answer for a key applied before; another movement under the same key
    is refused."""
    lines = tuple((str(sku), int(quantity)) for sku, quantity in record.lines)
    if record.kind != kind or lines != wanted:
        raise StockRefused(
            "stock_movement_conflict",
            f"movement key {record.movement_key!r} was used for another movement"
            f" ({record.kind.replace('_', ' ')} of {_describe(lines)}) at"
            f" {record.created_at.isoformat()}",
        )
    recorded_kind: MovementKind = "take" if record.kind == "take" else "give_back"
    return StockMovement(
        shop_id=record.shop_id,
        movement_key=record.movement_key,
        kind=recorded_kind,
        applied=True,
        lines=lines,
        levels=tuple(
            (str(sku), None if level is None else int(level)) for sku, level in record.levels
        ),
        short=(),
        at=record.created_at,
        repeated=True,
    )


def _describe(lines: tuple[tuple[str, int], ...]) -> str:
    shown = ", ".join(f"{quantity} x {sku!r}" for sku, quantity in lines[:5])
    return shown + (f" and {len(lines) - 5} more lines" if len(lines) > 5 else "")
