"""The console's carts list on the read model: carts filtered by state, shop, customer
e-mail and created / updated time ranges, most recently updated first, paged by keyset.

``list_cart_page(sessions, CartFilters(...), limit=50, after=cursor)`` -> ``CartPage``:
the page's ``CartRow``s and ``next_cursor`` (``None`` on the last page). The keyset is
(``updated_at`` descending, shop id, cart id), so carts updated between two pages never
make a page skip or repeat a cart it had not yet reached (a cart updated meanwhile moves
to the top: it is seen again on a fresh first page). Cursors are opaque
(``activities.cursors``); a foreign or changed one is ``invalid_cursor``. Ids are compared
by code point on both backends. The ``ix_carts_updated_at`` index serves the order;
``ix_carts_shop_id_email`` the e-mail of one shop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from activities import cursors
from activities.db import SessionFactory
from activities.filter_text import filter_problem
from activities.models import CartRecord
from activities.read_model import CartRow
from workflows.contract import CartState
from workflows.validation import valid_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_VERSION = 1

#: the columns of a ``CartRow`` (never the snapshot)
ROW_COLUMNS = [CartRecord.__table__.c[field.name] for field in fields(CartRow)]


class CartQueryRefused(Exception):
    """``invalid_filter`` or ``invalid_cursor``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CartFilters:
    """Every filter is optional; time ranges include ``*_from`` and exclude ``*_until``."""

    state: CartState | None = None
    shop_id: str | None = None
    email: str | None = None
    needs_admin: bool | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None
    updated_from: datetime | None = None
    updated_until: datetime | None = None


@dataclass(frozen=True)
class CartPage:
    rows: tuple[CartRow, ...]
    next_cursor: str | None


def encode_cursor(row: CartRow) -> str:
    return cursors.encode_cursor(
        {
            "v": _CURSOR_VERSION,
            "t": row.updated_at.isoformat(),
            "s": row.shop_id,
            "c": row.cart_id,
        }
    )


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    data = cursors.decode_cursor(cursor, version=_CURSOR_VERSION, max_length=1000)
    bad = CartQueryRefused("invalid_cursor", "the page link is not one this list gave")
    if data is None:
        raise bad
    at, shop_id, cart_id = cursors.cursor_time(data.get("t")), data.get("s"), data.get("c")
    if at is None or not valid_id(shop_id) or not valid_id(cart_id):
        raise bad
    assert isinstance(shop_id, str) and isinstance(cart_id, str)
    return at, shop_id, cart_id


def _by_code_point(column: Any, dialect: str) -> Any:
    return column if dialect == "sqlite" else column.collate("C")


def where_clauses(filters: CartFilters) -> list[ColumnElement[bool]]:
    """The filters as SQL conditions on ``carts``; a shop that is not an id or an e-mail
    holding a control character (``activities.filter_text``) is ``invalid_filter``."""
    if filters.shop_id is not None and not valid_id(filters.shop_id):
        raise CartQueryRefused("invalid_filter", f"{filters.shop_id!r} is not a shop id")
    clauses: list[ColumnElement[bool]] = []
    if filters.state is not None:
        clauses.append(CartRecord.state == str(filters.state))
    if filters.shop_id is not None:
        clauses.append(CartRecord.shop_id == filters.shop_id)
    if filters.email:
        email = filters.email.strip()
        problem = filter_problem(email, "email")
        if problem is not None:  # NUL would fail the query on PostgreSQL
            raise CartQueryRefused("invalid_filter", problem)
        # lowered by the database on both sides, as the index is
        clauses.append(func.lower(CartRecord.customer_email) == func.lower(literal(email)))
    if filters.needs_admin is not None:
        clauses.append(CartRecord.needs_admin == filters.needs_admin)
    for column, start, end in (
        (CartRecord.created_at, filters.created_from, filters.created_until),
        (CartRecord.updated_at, filters.updated_from, filters.updated_until),
    ):
        if start is not None:
            clauses.append(column >= start)
        if end is not None:
            clauses.append(column < end)
    return clauses


def _after(dialect: str, cursor: str) -> ColumnElement[bool]:
    at, shop_id, cart_id = decode_cursor(cursor)
    shop = _by_code_point(CartRecord.__table__.c.shop_id, dialect)
    cart = _by_code_point(CartRecord.__table__.c.cart_id, dialect)
    return or_(
        CartRecord.updated_at < at,
        and_(
            CartRecord.updated_at == at,
            or_(shop > shop_id, and_(CartRecord.shop_id == shop_id, cart > cart_id)),
        ),
    )


async def _page(
    session: AsyncSession, filters: CartFilters, limit: int, after: str | None
) -> list[CartRow]:
    dialect = session.get_bind().dialect.name
    query = select(*ROW_COLUMNS).where(*where_clauses(filters))
    if after:
        query = query.where(_after(dialect, after))
    shop = _by_code_point(CartRecord.__table__.c.shop_id, dialect)
    cart = _by_code_point(CartRecord.__table__.c.cart_id, dialect)
    query = query.order_by(CartRecord.updated_at.desc(), shop, cart).limit(limit + 1)
    result = await session.execute(query)
    return [CartRow.from_mapping(row) for row in result.mappings().all()]


async def list_cart_page(
    sessions: SessionFactory,
    filters: CartFilters,
    *,
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
) -> CartPage:
    """A page of carts matching ``filters`` (see the module's doc)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise CartQueryRefused("invalid_filter", f"a page has 1 to {MAX_LIMIT} carts")
    async with sessions() as session:
        found = await _page(session, filters, limit, after)
    rows = tuple(found[:limit])
    more = len(found) > limit and rows
    return CartPage(rows, encode_cursor(rows[-1]) if more else None)


async def count_carts(sessions: SessionFactory, filters: CartFilters) -> int:
    query = select(func.count()).select_from(CartRecord).where(*where_clauses(filters))
    async with sessions() as session:
        return int(await session.scalar(query) or 0)
