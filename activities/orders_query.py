"""The admin's orders list on the read model (seed 002; DOMAIN.md section 3): orders and
*not finished* orders, filtered, sorted and paged by keyset, and counted per status.

What is listed. An **order** is a cart in state ``ordered`` (``carts.order_number``,
``order_status``, ``order_paid``, ``order_amount_paid``). A **not finished order** (seed
000) is a cart the shop's conditions (``not_finished_when``, ``NOT_FINISHED_CONDITIONS``;
default ``no_return`` only) make one: ``no_return``, a locked cart (the customer went to
pay and no payment result settled it), created when it was locked; ``payment_failed``, a
cart back at checkout after its online payment failed, was cancelled or expired;
``payment_step``, a cart at the checkout form or at the gateway (failed payments
included); those two created when the cart reached the payment step
(``carts.payment_step_at``). A not finished order has no number, its payment status is
``not_defined`` and it is shown with the hidden status ``N`` (Incomplete: "waiting for
the gateway"). An order's creation time is when it was ordered. A not finished order
that becomes an order leaves the list as not finished and comes back as an order, with
its new time.

- ``list_orders(sessions, shop_id, ...)`` -> ``OrderPage``: filters ``status`` (a letter,
  any case; ``N`` also selects the not finished ones, ``"not_finished"`` only them),
  ``since`` (included) / ``until`` (excluded) on the creation time, ``email`` (the
  customer's, any case; a control character in it is ``invalid_filter``:
  ``activities.filter_text``), ``number``; ``include_not_finished``; ``sort``
  ``newest`` (the default) or ``oldest``; ``limit`` (1-500) and ``after`` (the previous
  page's ``next_cursor``). Pages are a keyset on (creation time, cart id), never an
  offset: rows added between two pages never make a page skip or repeat a row.
- ``count_by_status(sessions, shop_id, not_finished_when=...)``: orders per status
  letter (letters without orders left out), and the not finished ones under
  ``NOT_FINISHED`` (always there).
- ``list_orders`` and ``count_by_status`` take the shop's ``not_finished_when``.
- ``get_order(sessions, shop_id, number)``: one order by its number.

A row's status name and colour are the shop's registry's now (``order_statuses``): a
renamed status shows its new name; a letter the registry no longer has shows the letter
with ``status_name`` ``None``. Refusals raise ``OrdersQueryRefused`` with a code:
``invalid_filter``, ``invalid_cursor``, ``order_not_found``.

Cost. Every filter is served by an index (migration 0010): (shop, state, ordered_at,
cart) for the list and the date range, (shop, state, order_status, ordered_at, cart) for
the status filter and the counts, (shop, state, locked_at, cart) for the locked not
finished ones, (shop, state, payment_step_at, cart) for those at the payment step and
(shop, state, last_payment_status, payment_step_at, cart) for those whose payment failed
(0011; one kind per state or status, each read in its index's order),
(shop, order_number) for a number and (shop, lower(e-mail)) for a customer. A page
reads at most ``limit + 1`` rows of each kind, plus the page's references (primary key
of ``order_numbers``) and the shop's statuses; the customer's name, the payment method, the
order's total, delivery and status name come from ``carts.listing``, a small JSON the
projection writes with the row (never the snapshot: on PostgreSQL every ``->`` on the
snapshot's JSON parses the whole document).
Cart ids are compared by code point on both backends (PostgreSQL: ``COLLATE "C"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from activities import cursors
from activities.db import SessionFactory
from activities.filter_text import filter_problem
from activities.models import CartRecord, OrderNumber
from activities.order_rows import (
    NOT_DEFINED,
    PAID,
    PARTIALLY_PAID,
    UNPAID,
    OrderRow,
    order_row,
)
from activities.order_status_rules import HIDDEN_LETTER, OrderStatusDef, StatusRefused
from activities.order_statuses import list_statuses
from workflows.validation import valid_id

#: the status filter and the ``count_by_status`` key of the not finished orders
NOT_FINISHED = "not_finished"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
SORTS = ("newest", "oldest")
Sort = Literal["newest", "oldest"]

__all__ = [
    "NOT_DEFINED",
    "PAID",
    "PARTIALLY_PAID",
    "UNPAID",
    "OrderPage",
    "OrderRow",
    "OrdersQueryRefused",
    "count_by_status",
    "get_order",
    "list_orders",
    "list_statements",
]

_ORDERED = "ordered"
_LOCKED = "locked"
_CHECKOUT = "checkout"
_AT_PAYMENT_STEP = ("checkout", "payment_pending")
_NEGATIVE = ("failed", "cancelled", "expired")
_ORDERS = "orders"

#: What makes a cart a not finished order (a shop chooses, seed 000): ``no_return``, no
#: return from the gateway (a locked cart: its result never came, or was ``pending``);
#: ``payment_failed``, an online payment failed, was cancelled or expired (the cart is
#: back at checkout); ``payment_step``, the cart reached the payment step (the checkout
#: form or the gateway; failed payments included).
NO_RETURN = "no_return"
PAYMENT_FAILED = "payment_failed"
PAYMENT_STEP = "payment_step"
NOT_FINISHED_CONDITIONS = (PAYMENT_STEP, PAYMENT_FAILED, NO_RETURN)
_LETTER = re.compile(r"[A-Z]")
_CURSOR_VERSION = 1


class OrdersQueryRefused(Exception):
    """A request of the orders list that cannot be answered; ``code`` is
    ``invalid_filter``, ``invalid_cursor`` or ``order_not_found``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class OrderPage:
    """A page of the list; ``next_cursor``: ``after`` for the next page (``None``: the
    last page)."""

    rows: tuple[OrderRow, ...]
    next_cursor: str | None


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class _Filters:
    shop_id: str
    #: a letter, or ``None``
    letter: str | None
    orders: bool
    not_finished: bool
    since: datetime | None
    until: datetime | None
    email: str | None
    number: int | None
    sort: Sort
    limit: int
    after: tuple[datetime, str] | None
    #: which carts are not finished orders (``NOT_FINISHED_CONDITIONS``)
    conditions: tuple[str, ...] = (NO_RETURN,)


def _refuse(message: str) -> OrdersQueryRefused:
    return OrdersQueryRefused("invalid_filter", message)


def _shop(shop_id: object) -> str:
    if not valid_id(shop_id):
        raise _refuse(f"{shop_id!r} is not a valid shop id")
    assert isinstance(shop_id, str)
    return shop_id


def _number(number: object) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise _refuse(f"an order number is a whole number from 1, not {number!r}")
    return number


def _time(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _refuse(f"{name} must be a timezone-aware datetime, not {value!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise _refuse(f"{name} is out of range: {value!r}") from None


def _filters(
    shop_id: object,
    *,
    status: object = None,
    since: object = None,
    until: object = None,
    email: object = None,
    number: object = None,
    include_not_finished: bool = True,
    sort: object = "newest",
    limit: object = DEFAULT_LIMIT,
    after: object = None,
    not_finished_when: object = (NO_RETURN,),
) -> _Filters:
    shop = _shop(shop_id)
    conditions = check_conditions(not_finished_when)
    letter: str | None = None
    orders, not_finished = True, bool(include_not_finished)
    if status is not None:
        text = status.strip() if isinstance(status, str) else ""
        if text.lower() == NOT_FINISHED:
            if not include_not_finished:
                raise _refuse("status not_finished, but not finished orders are excluded")
            orders = False
        elif _LETTER.fullmatch(text.upper()):
            letter = text.upper()
            not_finished = not_finished and letter == HIDDEN_LETTER
        else:
            raise _refuse(f"a status is one letter A-Z or {NOT_FINISHED!r}, not {status!r}")
    start, end = _time(since, "since"), _time(until, "until")
    if start is not None and end is not None and start >= end:
        raise _refuse(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    address: str | None = None
    if email is not None:
        if not isinstance(email, str) or not email.strip():
            raise _refuse(f"an e-mail filter is a non-empty text, not {email!r}")
        address = email.strip()  # lowered by the database, as the stored address
        problem = filter_problem(address, "email")
        if problem is not None:  # NUL would fail the query on PostgreSQL
            raise _refuse(problem)
    wanted = _number(number) if number is not None else None
    if wanted is not None:
        not_finished = False  # they have no number
    if sort not in SORTS:
        raise _refuse(f"sort is one of {', '.join(SORTS)}, not {sort!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _refuse(f"limit must be from 1 to {MAX_LIMIT}, not {limit!r}")
    position = decode_cursor(after, sort) if after is not None else None
    return _Filters(
        shop_id=shop,
        letter=letter,
        orders=orders,
        not_finished=not_finished,
        since=start,
        until=end,
        email=address,
        number=wanted,
        sort=sort,  # type: ignore[arg-type]  # checked against SORTS
        limit=limit,
        after=position,
        conditions=conditions,
    )


def check_conditions(conditions: object) -> tuple[str, ...]:
    """The conditions that make a cart a not finished order, in their canonical order."""
    if isinstance(conditions, str) or not isinstance(conditions, list | tuple | frozenset | set):
        raise _refuse(f"not_finished_when is a list of conditions, not {conditions!r}")
    unknown = [c for c in conditions if c not in NOT_FINISHED_CONDITIONS]
    if unknown:
        raise _refuse(
            f"unknown not finished condition(s) {unknown!r}: {', '.join(NOT_FINISHED_CONDITIONS)}"
        )
    return tuple(c for c in NOT_FINISHED_CONDITIONS if c in conditions)


# --------------------------------------------------------------------------- cursors


def encode_cursor(sort: str, created_at: datetime, cart_id: str) -> str:
    """An opaque cursor: the sort and the last row's (creation time, cart id)."""
    return cursors.encode_cursor(
        {"v": _CURSOR_VERSION, "s": sort, "t": created_at.isoformat(), "c": cart_id}
    )


def decode_cursor(cursor: object, sort: str) -> tuple[datetime, str]:
    """The (creation time, cart id) a cursor of ``sort`` holds, or ``invalid_cursor``."""
    bad = OrdersQueryRefused(
        "invalid_cursor", "the cursor is not one this list gave (use next_cursor as given)"
    )
    data = cursors.decode_cursor(cursor, version=_CURSOR_VERSION, max_length=1000)
    if data is None:
        raise bad
    created_at, cart_id = cursors.cursor_time(data.get("t")), data.get("c")
    if created_at is None or not isinstance(cart_id, str) or not valid_id(cart_id):
        raise bad
    if data.get("s") != sort:
        raise OrdersQueryRefused(
            "invalid_cursor", f"the cursor belongs to the {data.get('s')!r} sort, not {sort!r}"
        )
    return created_at, cart_id


# --------------------------------------------------------------------------- statements

_ROW_COLUMNS = (
    CartRecord.shop_id,
    CartRecord.cart_id,
    CartRecord.state,
    CartRecord.order_number,
    CartRecord.order_status,
    CartRecord.order_paid,
    CartRecord.order_amount_paid,
    CartRecord.total,
    CartRecord.currency,
    CartRecord.customer_email,
    CartRecord.listing,
)


def _cart_key(dialect: str) -> ColumnElement[str]:
    """The cart id compared by code point (PostgreSQL's default collation orders
    ``a-2`` and ``A-1`` otherwise than SQLite and Python)."""
    column = CartRecord.__table__.c.cart_id
    return column if dialect == "sqlite" else column.collate("C")


def _kind_where(kind: str) -> tuple[Any, list[ColumnElement[bool]]]:
    """The creation-time column and the conditions of one kind of row: each kind is an
    equality on the leading columns of an index ordered by its time, so a page reads
    at most ``limit + 1`` rows of it."""
    if kind == _ORDERS:
        return CartRecord.ordered_at, [CartRecord.state == _ORDERED]
    if kind == NO_RETURN:
        return CartRecord.locked_at, [CartRecord.state == _LOCKED]
    family, value = kind.split(":", 1)
    if family == PAYMENT_STEP:
        return CartRecord.payment_step_at, [CartRecord.state == value]
    return CartRecord.payment_step_at, [
        CartRecord.state == _CHECKOUT,
        CartRecord.last_payment_status == value,
    ]


def _kinds(filters: _Filters) -> list[str]:
    kinds = [_ORDERS] if filters.orders else []
    if filters.not_finished:
        conditions = filters.conditions
        kinds += [NO_RETURN] if NO_RETURN in conditions else []
        if PAYMENT_STEP in conditions:  # the failed payments' carts are among them
            kinds += [f"{PAYMENT_STEP}:{state}" for state in _AT_PAYMENT_STEP]
        elif PAYMENT_FAILED in conditions:
            kinds += [f"{PAYMENT_FAILED}:{status}" for status in _NEGATIVE]
    return kinds


def _select(filters: _Filters, dialect: str, kind: str) -> Select[Any]:
    """The rows of one kind (orders, or one kind of not finished ones), in the list's
    order, at most ``limit + 1`` of them after the cursor."""
    created, where = _kind_where(kind)
    cart = _cart_key(dialect)
    query = select(*_ROW_COLUMNS, created.label("created_at")).where(
        CartRecord.shop_id == filters.shop_id, *where, created.is_not(None)
    )
    if kind == _ORDERS and filters.letter is not None:
        query = query.where(CartRecord.order_status == filters.letter)
    if filters.number is not None:
        query = query.where(CartRecord.order_number == filters.number)
    if filters.email is not None:
        # lowered by the database on both sides (SQLite's lower() knows ASCII only)
        query = query.where(
            func.lower(CartRecord.customer_email) == func.lower(literal(filters.email))
        )
    if filters.since is not None:
        query = query.where(created >= filters.since)
    if filters.until is not None:
        query = query.where(created < filters.until)
    newest = filters.sort == "newest"
    if filters.after is not None:
        at, cart_id = filters.after
        if newest:
            query = query.where(created <= at, or_(created < at, cart < cart_id))
        else:
            query = query.where(created >= at, or_(created > at, cart > cart_id))
    order = (created.desc(), cart.desc()) if newest else (created.asc(), cart.asc())
    return query.order_by(*order).limit(filters.limit + 1)


def _statements(filters: _Filters, dialect: str) -> list[Select[Any]]:
    return [_select(filters, dialect, kind) for kind in _kinds(filters)]


def list_statements(dialect: str, shop_id: str, **filters: Any) -> list[Select[Any]]:
    """The statements ``list_orders`` runs for these arguments (the same keywords) on
    ``dialect`` (for ``EXPLAIN``): the orders', then the not finished ones' of each
    condition (each when it applies)."""
    return _statements(_filters(shop_id, **filters), dialect)


async def _references(
    session: AsyncSession, shop_id: str, numbers: Sequence[int]
) -> dict[int, str]:
    if not numbers:
        return {}
    query = select(OrderNumber.number, OrderNumber.reference).where(
        OrderNumber.shop_id == shop_id, OrderNumber.number.in_(sorted(set(numbers)))
    )
    return {int(n): ref for n, ref in (await session.execute(query)).all()}


async def _statuses(sessions: SessionFactory, shop_id: str) -> dict[str, OrderStatusDef]:
    try:
        return {status.letter: status for status in await list_statuses(sessions, shop_id)}
    except StatusRefused as refused:  # pragma: no cover - the shop id was checked
        raise _refuse(refused.message) from None


async def _rows(filters: _Filters, session: AsyncSession, dialect: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for statement in _statements(filters, dialect):
        found += [dict(row) for row in (await session.execute(statement)).mappings()]
    newest = filters.sort == "newest"
    found.sort(key=lambda row: (row["created_at"], row["cart_id"]), reverse=newest)
    return found


async def _finish(
    sessions: SessionFactory, session: AsyncSession, shop_id: str, rows: list[dict[str, Any]]
) -> list[OrderRow]:
    numbers = [row["order_number"] for row in rows if row["state"] == _ORDERED]
    references = await _references(session, shop_id, [n for n in numbers if n is not None])
    statuses = await _statuses(sessions, shop_id)
    return [order_row(row, statuses, references) for row in rows]


# --------------------------------------------------------------------------- queries


async def list_orders(
    sessions: SessionFactory,
    shop_id: str,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    email: str | None = None,
    number: int | None = None,
    include_not_finished: bool = True,
    sort: Sort = "newest",
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
    not_finished_when: Sequence[str] = (NO_RETURN,),
) -> OrderPage:
    """A page of the shop's orders and not finished orders (see the module's doc)."""
    filters = _filters(
        shop_id,
        status=status,
        since=since,
        until=until,
        email=email,
        number=number,
        include_not_finished=include_not_finished,
        sort=sort,
        limit=limit,
        after=after,
        not_finished_when=not_finished_when,
    )
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
        found = await _rows(filters, session, dialect)
        page = found[: filters.limit]
        rows = await _finish(sessions, session, filters.shop_id, page)
    cursor = None
    if len(found) > filters.limit and rows:
        last = rows[-1]
        cursor = encode_cursor(filters.sort, last.created_at, last.cart_id)
    return OrderPage(rows=tuple(rows), next_cursor=cursor)


async def get_order(sessions: SessionFactory, shop_id: str, number: int) -> OrderRow:
    """The shop's order ``number``, or ``order_not_found``."""
    page = await list_orders(sessions, shop_id, number=_number(number), limit=1)
    if not page.rows:
        raise OrdersQueryRefused("order_not_found", f"shop {shop_id} has no order number {number}")
    return page.rows[0]


async def count_by_status(
    sessions: SessionFactory, shop_id: str, *, not_finished_when: Sequence[str] = (NO_RETURN,)
) -> dict[str, int]:
    """How many orders have each status letter (letters without orders are left out),
    and how many are not finished, under ``NOT_FINISHED`` (always there, maybe 0)."""
    filters = _filters(shop_id, not_finished_when=not_finished_when)
    shop = filters.shop_id
    orders = (
        select(CartRecord.order_status, func.count())
        .where(CartRecord.shop_id == shop, CartRecord.state == _ORDERED)
        .group_by(CartRecord.order_status)
    )
    kinds = [kind for kind in _kinds(filters) if kind != _ORDERS]
    async with sessions() as session:
        counts = {letter or "": int(n) for letter, n in (await session.execute(orders)).all()}
        counts[NOT_FINISHED] = 0
        for kind in kinds:
            created, where = _kind_where(kind)
            query = select(func.count()).where(
                and_(CartRecord.shop_id == shop, *where, created.is_not(None))
            )
            counts[NOT_FINISHED] += int((await session.execute(query)).scalar_one())
    return counts
