"""The daily digest: one e-mail a day to a shop's admins with what needs them (seed 004:
"the daily notification e-mail ... orders on hold, orders submitted but not confirmed,
locked carts") and what the reminders recovered.

Read from the read model (``carts``; it may lag the workflows by seconds):

1. **Locked carts**, locked longest first: cart, total, since when and why.
2. **Payments that need an admin**: carts with open attention items (an amount that
   differs, a payment without a cart, an unreadable result ...), oldest first.
3. **Payments on deleted or expired carts**: carts with a ``paid_after_close`` item (they
   are listed here, not in 2).
4. **Recovered orders of the day before**: carts ordered that day (in the shop's time
   zone) after a recovery link of a reminder (``recovered_via``), and the revenue per
   currency of the paid ones (their totals).

Each list shows at most ``LIST_LIMIT`` carts and says how many more there are. A digest
with nothing in it is not sent (``nothing_to_report``). No customer data: ids, states,
amounts, times.

``send_daily_digest(DigestInput(shop_id, day))`` (contract: ``workflows.alerts_contract``)
sends it once per (shop, day) (``activities.admin_mail.AdminMailer.deliver``, table
``admin_notices``) with a Message-ID derived from (shop, day). The ``DailyDigest``
workflow calls it every day; ``cartkeeper digest send`` (and the admin API) builds one
now. When one of them is sending it, another that comes meanwhile sends nothing: the
activity raises a retryable ``ApplicationError`` (type ``sending``), ``send`` by hand
answers ``sending`` (ask again shortly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Row, Select, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity

from activities import admin_mail
from activities.db import SessionFactory
from activities.models import CartRecord
from workflows.alerts_contract import (
    ACTIVITY_SEND_DAILY_DIGEST,
    ALERT_FAILED,
    ALERT_NOTHING_TO_REPORT,
    AlertResult,
    DigestInput,
)
from workflows.codes import AttentionKind
from workflows.digest_workflow import digest_day

log = admin_mail.log

#: at most this many carts per list (the digest says how many more there are)
LIST_LIMIT = 50


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


def day_bounds(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """``day`` in ``time_zone`` as a UTC range [start, end) (23 or 25 hours on DST days)."""
    zone = ZoneInfo(time_zone)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class LockedCart:
    cart_id: str
    total: int
    currency: str | None
    locked_at: datetime | None
    lock_reason: str | None


@dataclass(frozen=True)
class AttentionCart:
    cart_id: str
    state: str
    #: the open attention kinds, oldest first
    kinds: tuple[str, ...]
    total: int
    currency: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Revenue:
    currency: str
    #: recovered orders in this currency, and how many of them are paid
    orders: int
    paid_orders: int
    #: the paid orders' totals, in minor units
    amount: int


@dataclass(frozen=True)
class Digest:
    """What a shop's digest of ``day`` says (the recovered part covers the day before)."""

    shop_id: str
    day: date
    time_zone: str
    generated_at: datetime
    locked: list[LockedCart] = field(default_factory=list)
    locked_count: int = 0
    attention: list[AttentionCart] = field(default_factory=list)
    attention_count: int = 0
    paid_after_close: list[AttentionCart] = field(default_factory=list)
    paid_after_close_count: int = 0
    recovered: list[Revenue] = field(default_factory=list)

    @property
    def yesterday(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def recovered_orders(self) -> int:
        return sum(item.orders for item in self.recovered)

    @property
    def empty(self) -> bool:
        return not (
            self.locked_count
            or self.attention_count
            or self.paid_after_close_count
            or self.recovered_orders
        )


# --------------------------------------------------------------------------- the read model


async def _listed(
    session: AsyncSession, query: Select[*tuple[Any, ...]]
) -> tuple[Sequence[Row[Any]], int]:
    """The first ``LIST_LIMIT`` rows of ``query``, and how many it has in all (one query:
    the window's count is taken before the limit)."""
    rows = (
        await session.execute(
            query.add_columns(func.count().over().label("matching")).limit(LIST_LIMIT)
        )
    ).all()
    return rows, int(rows[0].matching) if rows else 0


async def _locked(session: AsyncSession, shop_id: str) -> tuple[list[LockedCart], int]:
    """The shop's locked carts, locked longest first."""
    carts = CartRecord
    rows, count = await _listed(
        session,
        select(carts.cart_id, carts.total, carts.currency, carts.locked_at, carts.lock_reason)
        .where(carts.shop_id == shop_id, carts.state == "locked")
        .order_by(func.coalesce(carts.locked_at, carts.updated_at).asc(), carts.cart_id.asc()),
    )
    listed = [
        LockedCart(row.cart_id, row.total, row.currency, row.locked_at, row.lock_reason)
        for row in rows
    ]
    return listed, count


async def _attention(
    session: AsyncSession, shop_id: str, *where: ColumnElement[bool]
) -> tuple[list[AttentionCart], int]:
    """The shop's carts with open attention items (and ``where``), oldest change first."""
    carts = CartRecord
    rows, count = await _listed(
        session,
        select(
            carts.cart_id,
            carts.state,
            carts.attention,
            carts.total,
            carts.currency,
            carts.updated_at,
        )
        .where(
            carts.shop_id == shop_id,
            carts.needs_admin.is_(True),
            carts.attention.is_not(None),
            carts.attention != "",
            *where,
        )
        .order_by(carts.updated_at.asc(), carts.cart_id.asc()),
    )
    listed = [
        AttentionCart(
            row.cart_id,
            row.state,
            tuple(kind for kind in row.attention.split(",") if kind),
            row.total,
            row.currency,
            row.updated_at,
        )
        for row in rows
    ]
    return listed, count


async def _recovered(
    session: AsyncSession, shop_id: str, start: datetime, end: datetime
) -> list[Revenue]:
    """The shop's orders in [start, end) after a reminder's recovery link, per currency."""
    carts = CartRecord
    # the same SQL text in SELECT and GROUP BY (a bound "" would be two parameters)
    currency = func.coalesce(carts.currency, literal_column("''"))
    paid = carts.order_paid.is_(True)
    rows = (
        await session.execute(
            select(
                currency.label("currency"),
                func.count().label("orders"),
                func.sum(case((paid, 1), else_=0)).label("paid_orders"),
                func.sum(case((paid, carts.total), else_=0)).label("amount"),
            )
            .where(
                carts.shop_id == shop_id,
                carts.recovered_via.is_not(None),
                carts.ordered_at >= start,
                carts.ordered_at < end,
            )
            .group_by(currency)
        )
    ).all()
    revenue = [
        Revenue(row.currency, int(row.orders), int(row.paid_orders), int(row.amount))
        for row in rows
    ]
    return sorted(revenue, key=lambda item: item.currency)


async def build_digest(
    session_factory: SessionFactory, shop_id: str, day: date, time_zone: str, now: datetime
) -> Digest:
    """The shop's digest of ``day``, from the read model as it is ``now``."""
    closed_paid = CartRecord.attention.like(f"%{AttentionKind.PAID_AFTER_CLOSE}%")
    async with session_factory() as session:
        locked, locked_count = await _locked(session, shop_id)
        open_items, open_count = await _attention(session, shop_id, ~closed_paid)
        after_close, after_close_count = await _attention(session, shop_id, closed_paid)
        recovered = await _recovered(
            session, shop_id, *day_bounds(day - timedelta(days=1), time_zone)
        )
    return Digest(
        shop_id=shop_id,
        day=day,
        time_zone=time_zone,
        generated_at=now,
        locked=locked,
        locked_count=locked_count,
        attention=open_items,
        attention_count=open_count,
        paid_after_close=after_close,
        paid_after_close_count=after_close_count,
        recovered=recovered,
    )


# --------------------------------------------------------------------------- the e-mail


def render_digest(
    digest: Digest, templates: admin_mail.AdminTemplates
) -> admin_mail.RenderedAdminMail:
    """The digest's subject, text and HTML."""
    shop = digest.shop_id
    now = digest.generated_at
    zone = ZoneInfo(digest.time_zone)

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if at is not None else "unknown"

    def listed(items: list[AttentionCart]) -> list[dict[str, Any]]:
        return [
            {
                "cart_id": item.cart_id,
                "state": item.state,
                "kinds": ", ".join(item.kinds),
                "total": admin_mail.amount(item.total, item.currency),
                "updated": local(item.updated_at),
            }
            for item in items
        ]

    return templates.render(
        "digest",
        {
            "shop_id": shop,
            "day": digest.day.isoformat(),
            "yesterday": digest.yesterday.isoformat(),
            "time_zone": digest.time_zone,
            "generated_at": local(now),
            "locked": [
                {
                    "cart_id": item.cart_id,
                    "total": admin_mail.amount(item.total, item.currency),
                    "locked_at": local(item.locked_at),
                    "locked_for": admin_mail.duration((now - item.locked_at).total_seconds())
                    if item.locked_at
                    else "unknown",
                    "reason": admin_mail.lock_reason(item.lock_reason, missing="-"),
                }
                for item in digest.locked
            ],
            "locked_count": digest.locked_count,
            "locked_more": digest.locked_count - len(digest.locked),
            "attention": listed(digest.attention),
            "attention_count": digest.attention_count,
            "attention_more": digest.attention_count - len(digest.attention),
            "closed": listed(digest.paid_after_close),
            "closed_count": digest.paid_after_close_count,
            "closed_more": digest.paid_after_close_count - len(digest.paid_after_close),
            "recovered_orders": digest.recovered_orders,
            "revenue": [
                {
                    "currency": item.currency or "(none)",
                    "orders": item.orders,
                    "paid_orders": item.paid_orders,
                    "amount": admin_mail.amount(item.amount, item.currency or None),
                }
                for item in digest.recovered
            ],
            "list_command": f"cartkeeper carts list --shop {shop} --needs-admin",
            "confirm_command": f"cartkeeper carts confirm CART --shop {shop}",
            "unlock_command": f"cartkeeper carts unlock CART --shop {shop}",
            "show_command": f"cartkeeper carts show CART --shop {shop}",
            "resolve_command": f"cartkeeper carts resolve CART --shop {shop} --note TEXT",
        },
    )


def _about(shop_id: str, day: date) -> str:
    """The digest as the logs and errors name it."""
    return f"digest of shop {shop_id} for {day}"


class DigestActivities(admin_mail.AdminMailer):
    """``send_daily_digest``, bound to the read model's sessions and the settings (admins,
    time zones, relay, sender)."""

    def all(self) -> list[Any]:
        """The activities to register on a worker."""
        return [self.send_daily_digest]

    @activity.defn(name=ACTIVITY_SEND_DAILY_DIGEST)
    async def send_daily_digest(self, request: DigestInput) -> AlertResult:
        """Send the shop's digest of ``request.day`` once (see the module's docstring)."""
        try:
            day = date.fromisoformat(request.day)
        except ValueError:
            return AlertResult(status=ALERT_FAILED, detail=f"{request.day!r} is not a day")
        return await self.answer(
            _about(request.shop_id, day), "digest", self.send(request.shop_id, day)
        )

    def today(self, shop_id: str) -> date:
        """Today in the shop's time zone."""
        return date.fromisoformat(digest_day(self.clock(), self.settings.time_zone_for(shop_id)))

    async def build(self, shop_id: str, day: date) -> Digest:
        return await build_digest(
            self.session_factory, shop_id, day, self.settings.time_zone_for(shop_id), self.clock()
        )

    def render(self, digest: Digest) -> admin_mail.RenderedAdminMail:
        return render_digest(digest, self.templates)

    async def send(self, shop_id: str, day: date) -> AlertResult:
        """Build and send the digest of ``day`` unless it was sent (``already_sent``) or
        another process is sending it right now (``sending``); ``MailError`` when the
        relay does not take it."""
        key = digest_key(day)
        settled = await self.settled(shop_id, key, _about(shop_id, day))
        if settled is not None:
            return settled
        digest = await self.build(shop_id, day)
        if digest.empty:
            log.info("%s: nothing to report", _about(shop_id, day))
            return AlertResult(
                status=ALERT_NOTHING_TO_REPORT,
                detail="no locked carts, no payments needing an admin, no recovered orders",
            )
        return await self.deliver(
            shop_id, key, admin_mail.KIND_DAILY_DIGEST, lambda: self.render(digest)
        )
