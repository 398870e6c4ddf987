"""The journal per cart and per customer on the read model (the "Orders" issue, point 10):
what happened to a cart (visits, lines added and removed, checkout, payment attempts,
reminders, admin actions), from its snapshot's ``journal``, with the reminder ledger's
rows (``reminder_sends``: sent and skipped) and the recovery clicks (``recovery_clicks``),
which outlive carts.

- ``cart_journal(sessions, shop_id, cart_id)`` -> ``CartJournal``: one cart's journal,
  oldest first (``journal_not_found`` when the shop has no such cart).
- ``customer_journal(sessions, shop_id, email, limit=, after=)`` -> ``JournalPage``: the
  journals of every cart of the customer in the shop (its e-mail in any case), merged,
  newest first, a page at a time (``after``: the previous page's ``next_cursor``).

Items. A journal entry keeps its ``JournalKind`` value as ``kind`` and its actor and
detail. A ledger row is ``reminder_sent`` (at its ``sent_at``) or ``reminder_skipped``
(at its ``updated_at``, the reason in the detail); rows still ``planned`` or ``sending``
are left out (nothing was decided yet). A click is ``recovery_clicked`` (actor
``customer``). ``source`` says where an item comes from (``journal``, ``reminder_ledger``,
``recovery_clicks``): a reminder the workflow sent shows twice, once as the cart saw it
and once as the ledger recorded it. Ledger rows and clicks belong to the cart of their
lineage (a cart id reused by a new cart does not inherit the old cart's rows; a row with
no lineage, e.g. a click on a cart not projected yet, belongs to the cart of its id). A
customer's journal also has the ledger rows recorded with the customer's address whose
cart is no longer in ``carts`` as it was (and their clicks).

The snapshot's journal is capped (``CartPolicy.journal_limit``): the oldest entries are
dropped and counted (``journal_dropped``). The answers say how many per cart
(``CartJournal.dropped``, ``JournalPage.dropped``).

Order and pages. Items are ordered by (time, cart id, a per-item key): the key of a
journal entry is its number in the cart's life (``journal_dropped`` + its position, which
does not change when older entries are dropped), a ledger row's its reminder and lineage,
a click's its id. Pages are a keyset on that triple, never an offset: items added between
two pages never make a page skip or repeat one. Ties are broken by code point in Python,
the same on every backend.

Cost. The customer's carts are found by the index on (shop_id, lower(customer_email))
(migration 0006); only ``journal`` and ``journal_dropped`` are read from their snapshots
(never the whole cart decoded), and after the first page only the carts created at or
before the cursor's time (a cart's entries are never older than the cart). Ledger rows
are read by primary key (shop, cart ...) and by the index on the address; clicks by the
index on (shop, cart). A page merges the journals of those carts in Python.

Refusals raise ``JournalQueryRefused`` with a code: ``invalid_filter`` (a bad shop, cart,
e-mail or limit), ``invalid_cursor``, ``journal_not_found``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from activities import cursors
from activities.db import SessionFactory
from activities.filter_text import filter_problem
from activities.models import CartRecord, RecoveryClick, ReminderSend
from activities.read_model import normalize_email
from workflows.validation import valid_id

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
#: ``JournalItem.kind`` of the ledger's rows and of clicks
REMINDER_SENT = "reminder_sent"
REMINDER_SKIPPED = "reminder_skipped"
RECOVERY_CLICKED = "recovery_clicked"
#: ``JournalItem.source``
FROM_JOURNAL = "journal"
FROM_LEDGER = "reminder_ledger"
FROM_CLICKS = "recovery_clicks"
#: the longest e-mail address accepted (``reminder_sends.email``)
MAX_EMAIL = 320

_CURSOR_VERSION = 1
#: cart ids per ``IN (...)`` list
_CHUNK = 500


class JournalQueryRefused(Exception):
    """A request of the journal that cannot be answered; ``code`` is ``invalid_filter``,
    ``invalid_cursor`` or ``journal_not_found``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class JournalItem:
    """One thing that happened to a cart. ``at``: timezone-aware UTC. ``kind``: the
    ``JournalKind`` value of a journal entry, or ``reminder_sent`` / ``reminder_skipped``
    (ledger) / ``recovery_clicked`` (click). ``actor``: ``customer``, ``gateway``,
    ``system``, ``admin:<name>`` (a ledger row sent by hand: ``admin``). ``source``:
    ``journal``, ``reminder_ledger`` or ``recovery_clicks``. ``key``: the item's place
    among items of the same time and cart (see the module's doc)."""

    at: datetime
    shop_id: str
    cart_id: str
    kind: str
    actor: str
    detail: str | None
    source: str
    key: str

    @property
    def position(self) -> tuple[datetime, str, str]:
        return (self.at, self.cart_id, self.key)


@dataclass(frozen=True)
class CartJournal:
    """A cart's journal, oldest first. ``dropped``: the oldest journal entries the
    snapshot no longer has (``Cart.journal_dropped``)."""

    shop_id: str
    cart_id: str
    state: str
    customer_email: str | None
    items: tuple[JournalItem, ...]
    dropped: int


@dataclass(frozen=True)
class JournalPage:
    """A page of a customer's journal, newest first. ``next_cursor``: ``after`` for the
    next page (``None``: the last page). ``dropped``: per cart of the customer read for
    this page, how many of its oldest journal entries its snapshot no longer has (0:
    none)."""

    shop_id: str
    email: str
    items: tuple[JournalItem, ...]
    next_cursor: str | None
    dropped: Mapping[str, int]


# --------------------------------------------------------------------------- checking


def _refuse(message: str) -> JournalQueryRefused:
    return JournalQueryRefused("invalid_filter", message)


def _id(value: object, what: str) -> str:
    if not valid_id(value):
        raise _refuse(f"{value!r} is not a valid {what} id")
    assert isinstance(value, str)
    return value


def _email(email: object) -> str:
    """The address as given, stripped (any case), or ``invalid_filter``."""
    text = email.strip() if isinstance(email, str) else ""
    at = text.find("@")
    if not text or len(text) > MAX_EMAIL or at <= 0 or at == len(text) - 1:
        raise _refuse(f"an e-mail is a non-empty address like ann@example.com, not {email!r}")
    problem = filter_problem(text, "email")  # a NUL would fail the query on PostgreSQL
    if problem is not None:
        raise _refuse(problem)
    if " " in text:
        raise _refuse(f"an e-mail holds no spaces, not {email!r}")
    return text


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _refuse(f"limit must be from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


# --------------------------------------------------------------------------- cursors


def cursor_scope(shop_id: str, email: str) -> str:
    """What a cursor is for: a digest of the shop and the customer (never the address)."""
    digest = hashlib.sha256(f"{shop_id}\0{normalize_email(email)}".encode()).hexdigest()
    return digest[:16]


def encode_cursor(item: JournalItem, scope: str) -> str:
    """An opaque cursor: the position of the page's last item in the journal ``scope``
    (``cursor_scope``) stands for."""
    at, cart_id, key = item.position
    return cursors.encode_cursor(
        {"v": _CURSOR_VERSION, "s": scope, "t": at.isoformat(), "c": cart_id, "k": key}
    )


def decode_cursor(cursor: object, scope: str) -> tuple[datetime, str, str]:
    """The position a cursor holds, or ``invalid_cursor`` (also for a cursor another
    customer's or shop's journal gave)."""
    bad = JournalQueryRefused(
        "invalid_cursor", "the cursor is not one this journal gave (use next_cursor as given)"
    )
    data = cursors.decode_cursor(cursor, version=_CURSOR_VERSION, max_length=2000)
    if data is None or data.get("s") != scope:
        raise bad
    at, cart_id, key = cursors.cursor_time(data.get("t")), data.get("c"), data.get("k")
    if at is None or not isinstance(key, str) or not key or len(key) > 300:
        raise bad
    if not isinstance(cart_id, str) or not valid_id(cart_id):
        raise bad
    return at, cart_id, key


# --------------------------------------------------------------------------- items


def _time(value: object) -> datetime | None:
    """A snapshot's time (ISO 8601 text) as aware UTC; ``None`` if unreadable."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def journal_items(shop_id: str, cart_id: str, entries: object, dropped: int) -> list[JournalItem]:
    """The items of a snapshot's ``journal`` (entries it cannot read are skipped)."""
    items: list[JournalItem] = []
    if not isinstance(entries, list):
        return items
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        at, kind = _time(entry.get("at")), _text(entry.get("kind"))
        if at is None or kind is None:
            continue
        items.append(
            JournalItem(
                at=at,
                shop_id=shop_id,
                cart_id=cart_id,
                kind=kind,
                actor=_text(entry.get("actor")) or "",
                detail=_text(entry.get("detail")),
                source=FROM_JOURNAL,
                key=f"j{dropped + position:012d}",
            )
        )
    return items


def ledger_item(row: Mapping[str, Any]) -> JournalItem | None:
    """The item of a ``reminder_sends`` row (``None`` while it is not decided)."""
    status = row["status"]
    if status == "sent":
        kind, at = REMINDER_SENT, row["sent_at"] or row["updated_at"]
    elif status == "skipped":
        kind, at = REMINDER_SKIPPED, row["updated_at"]
    else:
        return None
    parts = [f"reminder {row['reminder_id']}"]
    if row["variant"]:
        parts.append(f"variant {row['variant']}")
    if kind == REMINDER_SKIPPED:
        parts.append(f"skipped {row['reason'] or 'without a reason'}")
    if row["coupon_code"]:
        parts.append(f"coupon {row['coupon_code']}")
    detail = ", ".join(parts)
    if kind == REMINDER_SKIPPED and row["detail"]:
        detail += f": {row['detail']}"
    return JournalItem(
        at=at,
        shop_id=row["shop_id"],
        cart_id=row["cart_id"],
        kind=kind,
        actor="admin" if row["manual"] else "system",
        detail=detail,
        source=FROM_LEDGER,
        key=f"r{row['reminder_id']}/{row['lineage']}",
    )


def click_item(row: Mapping[str, Any]) -> JournalItem:
    return JournalItem(
        at=row["clicked_at"],
        shop_id=row["shop_id"],
        cart_id=row["cart_id"],
        kind=RECOVERY_CLICKED,
        actor="customer",
        detail=f"recovery link of reminder {row['reminder_id']}",
        source=FROM_CLICKS,
        key=f"c{int(row['id']):015d}",
    )


# --------------------------------------------------------------------------- reading


_CART_BASE = (
    CartRecord.shop_id,
    CartRecord.cart_id,
    CartRecord.state,
    CartRecord.lineage,
    CartRecord.customer_email,
    CartRecord.created_at,
)
_CART_COLUMNS = (
    *_CART_BASE,
    CartRecord.snapshot["journal"].label("journal"),
    CartRecord.snapshot["journal_dropped"].label("journal_dropped"),
)
#: PostgreSQL's refusals of a ``json`` document holding ``\\u0000`` (22P05: it cannot be
#: converted to text) or a lone surrogate's escape (22P02: invalid input syntax)
_UNREADABLE_JSON = frozenset({"22P05", "22P02"})
_LEDGER_COLUMNS = tuple(
    ReminderSend.__table__.c[name]
    for name in (
        "shop_id",
        "cart_id",
        "lineage",
        "reminder_id",
        "status",
        "reason",
        "detail",
        "variant",
        "manual",
        "coupon_code",
        "email",
        "updated_at",
        "sent_at",
    )
)
_CLICK_COLUMNS = tuple(
    RecoveryClick.__table__.c[name]
    for name in ("id", "shop_id", "cart_id", "lineage", "reminder_id", "clicked_at")
)


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


def _belongs(lineage: str | None, lineages: Mapping[str, str | None], cart_id: str) -> bool:
    """A ledger row or click of ``lineage`` belongs to the cart ``cart_id`` as read."""
    if cart_id not in lineages:
        return False
    current = lineages[cart_id]
    return not lineage or not current or lineage == current


async def _ledger_rows(
    session: AsyncSession, shop_id: str, cart_ids: Sequence[str], email: str | None = None
) -> list[dict[str, Any]]:
    """The ledger rows of the carts, and (``email``: normalized) those of the address."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    statements = [
        select(*_LEDGER_COLUMNS).where(
            ReminderSend.shop_id == shop_id, ReminderSend.cart_id.in_(chunk)
        )
        for chunk in _chunks(sorted(cart_ids))
    ]
    if email is not None:
        statements.append(
            select(*_LEDGER_COLUMNS).where(
                ReminderSend.email == email, ReminderSend.shop_id == shop_id
            )
        )
    for statement in statements:
        for row in (await session.execute(statement)).mappings():
            values = dict(row)
            found[(values["cart_id"], values["lineage"], values["reminder_id"])] = values
    return list(found.values())


async def _click_rows(
    session: AsyncSession, shop_id: str, cart_ids: Sequence[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(set(cart_ids))):
        statement = select(*_CLICK_COLUMNS).where(
            RecoveryClick.shop_id == shop_id, RecoveryClick.cart_id.in_(chunk)
        )
        rows += [dict(row) for row in (await session.execute(statement)).mappings()]
    return rows


def _extra_items(
    ledger: Iterable[Mapping[str, Any]],
    clicks: Iterable[Mapping[str, Any]],
    lineages: Mapping[str, str | None],
    *,
    address: str | None = None,
) -> list[JournalItem]:
    """The items of the ledger rows and clicks that belong to the carts read, and of the
    ledger rows recorded with ``address`` (normalized; their lineage's clicks come along)."""
    items: list[JournalItem] = []
    others: set[tuple[str, str]] = set()
    for row in ledger:
        mine = _belongs(row["lineage"], lineages, row["cart_id"])
        if not mine and (address is None or row["email"] != address):
            continue
        if not mine:
            others.add((row["cart_id"], row["lineage"]))
        item = ledger_item(row)
        if item is not None:
            items.append(item)
    for row in clicks:
        if _belongs(row["lineage"], lineages, row["cart_id"]) or (
            (row["cart_id"], row["lineage"]) in others
        ):
            items.append(click_item(row))
    return items


def _customer_carts(
    shop_id: str, email: str, before: datetime | None = None
) -> list[ColumnElement[bool]]:
    where = [
        CartRecord.shop_id == shop_id,
        func.lower(CartRecord.customer_email) == func.lower(literal(email)),
    ]
    if before is not None:
        where.append(CartRecord.created_at <= before)
    return where


def customer_statement(shop_id: str, email: str, before: datetime | None = None) -> Select[Any]:
    """The carts of the customer (``email`` as given, any case) in the shop: their ids,
    lineages and journals; with ``before``, only those created at or before it."""
    return select(*_CART_COLUMNS).where(*_customer_carts(shop_id, email, before))


async def _cart_rows(
    session: AsyncSession, where: Sequence[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """The carts ``where`` selects, with their journals, read out of their snapshots by
    the database. A cart stored before the text rules (``outside-text-checked``) may hold
    a NUL or a lone surrogate: its snapshot keeps them as ``\\u0000`` and ``\\ud800``,
    which PostgreSQL's ``json`` stores as written but whose ``->`` refuses the whole
    document, for good (it answered 503 ``database_unavailable`` on every read). Then
    the carts are read again with their whole snapshots and their journals taken out in
    Python (slower, for such carts only); their texts are escaped where they are shown
    (``starter.output.readable``)."""
    try:
        result = await session.execute(select(*_CART_COLUMNS).where(*where))
        return [dict(row) for row in result.mappings()]
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) not in _UNREADABLE_JSON:
            raise
    await session.rollback()  # the failed statement ended the transaction
    rows = []
    result = await session.execute(select(*_CART_BASE, CartRecord.snapshot).where(*where))
    for row in result.mappings():
        values = dict(row)
        snapshot = values.pop("snapshot")
        whole = snapshot if isinstance(snapshot, dict) else {}
        values["journal"] = whole.get("journal")
        values["journal_dropped"] = whole.get("journal_dropped")
        rows.append(values)
    return rows


# --------------------------------------------------------------------------- queries


async def cart_journal(sessions: SessionFactory, shop_id: str, cart_id: str) -> CartJournal:
    """The cart's journal with its ledger rows and clicks, oldest first (see the
    module's doc); ``journal_not_found`` when the shop has no such cart."""
    shop, cart = _id(shop_id, "shop"), _id(cart_id, "cart")
    async with sessions() as session:
        found = await _cart_rows(session, [CartRecord.shop_id == shop, CartRecord.cart_id == cart])
        if not found:
            raise JournalQueryRefused("journal_not_found", f"shop {shop} has no cart {cart}")
        row = found[0]
        ledger = await _ledger_rows(session, shop, [cart])
        clicks = await _click_rows(session, shop, [cart])
    dropped = _count(row["journal_dropped"])
    items = journal_items(shop, cart, row["journal"], dropped)
    items += _extra_items(ledger, clicks, {cart: row["lineage"]})
    items.sort(key=lambda item: item.position)
    return CartJournal(
        shop_id=shop,
        cart_id=cart,
        state=row["state"],
        customer_email=row["customer_email"],
        items=tuple(items),
        dropped=dropped,
    )


async def customer_journal(
    sessions: SessionFactory,
    shop_id: str,
    email: str,
    *,
    limit: int = DEFAULT_LIMIT,
    after: str | None = None,
) -> JournalPage:
    """A page of the journal of every cart of the customer ``email`` (any case) in the
    shop, with their ledger rows and clicks, newest first (see the module's doc)."""
    shop, address, size = _id(shop_id, "shop"), _email(email), _limit(limit)
    scope = cursor_scope(shop, address)
    position = decode_cursor(after, scope) if after is not None else None
    before = position[0] if position is not None else None
    async with sessions() as session:
        carts = await _cart_rows(session, _customer_carts(shop, address, before))
        lineages = {row["cart_id"]: row["lineage"] for row in carts}
        normalized = normalize_email(address)
        ledger = await _ledger_rows(session, shop, list(lineages), normalized)
        clicked = list(lineages) + [row["cart_id"] for row in ledger]
        clicks = await _click_rows(session, shop, clicked)
    items: list[JournalItem] = []
    dropped: dict[str, int] = {}
    for row in carts:
        dropped[row["cart_id"]] = _count(row["journal_dropped"])
        items += journal_items(shop, row["cart_id"], row["journal"], dropped[row["cart_id"]])
    items += _extra_items(ledger, clicks, lineages, address=normalized)
    if position is not None:
        items = [item for item in items if item.position < position]
    items.sort(key=lambda item: item.position, reverse=True)
    page = items[:size]
    cursor = encode_cursor(page[-1], scope) if len(items) > size and page else None
    return JournalPage(
        shop_id=shop,
        email=address,
        items=tuple(page),
        next_cursor=cursor,
        dropped=dict(sorted(dropped.items())),
    )
